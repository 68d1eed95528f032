//! What the bench test binaries share.

use xuring_core::{Ring, RingError};

/// Whether io_uring can be used here; says why not when it cannot.
pub fn kernel() -> bool {
    match Ring::init(2) {
        Ok(_) => true,
        Err(e @ RingError::Setup(_)) => {
            eprintln!("skipped: no io_uring here: {e}");
            false
        }
        Err(e) => panic!("unexpected ring error: {e}"),
    }
}
