//! The canary: proof that the invariant checks catch a broken ring.
//!
//! Built normally, this is a plain test that the invariants hold over a few recycles. Built
//! with the canary cfg, core's `Ring::recycle` keeps the slot's old generation (a deliberately
//! broken recycle), and the test then passes only if [`check_invariants`] panics about it:
//!
//! ```text
//! RUSTFLAGS="--cfg xuring_canary" CARGO_TARGET_DIR=target/canary \
//!     cargo test -p xuring-mock --test canary
//! ```
//!
//! (A separate target dir keeps the canary build from invalidating the normal one.) Under the
//! same cfg, the behaviour suite's `recycling` test and the model tests fail outright.

use xuring_core::{Ring, RunCondition};
use xuring_mock::{MockRingExt, check_invariants, track};

#[test]
#[cfg_attr(xuring_canary, should_panic(expected = "task identities reused"))]
fn invariants_catch_a_broken_recycle() {
    track::reset();
    let mut ring = Ring::init_mock();
    for _ in 0..3 {
        track::expect(ring.noop(track::context()));
        ring.run(RunCondition::UntilDone).expect("run");
        check_invariants(&ring);
    }
    track::check_complete();
}
