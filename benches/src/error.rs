//! `BenchError`: why a scenario could not produce its numbers.

use std::fmt;

use xuring_core::RingError;

/// A failure of a scenario: the ring, the raw ring, the file it reads, or a check on the work
/// done (every operation must complete, and succeed).
#[derive(Debug)]
pub enum BenchError {
    /// xuring's ring failed (its message says why and what to do).
    Ring(RingError),
    /// A system call failed; the text says which step.
    Io(&'static str, std::io::Error),
    /// A run finished with fewer (or more) completions than operations submitted.
    Incomplete {
        /// Which variant.
        what: String,
        /// Operations asked for.
        expected: u64,
        /// Completions seen.
        got: u64,
    },
    /// Operations completed with an error or a short transfer.
    Failed {
        /// Which variant.
        what: String,
        /// How many operations failed.
        count: u64,
    },
    /// Anything else, described.
    Other(String),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ring(e) => write!(f, "xuring: {e}"),
            Self::Io(what, e) => write!(f, "{what}: {e}"),
            Self::Incomplete {
                what,
                expected,
                got,
            } => write!(f, "{what}: {got} completions for {expected} operations"),
            Self::Failed { what, count } => {
                write!(f, "{what}: {count} operations failed or were short")
            }
            Self::Other(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Ring(e) => Some(e),
            Self::Io(_, e) => Some(e),
            _ => None,
        }
    }
}

impl From<RingError> for BenchError {
    fn from(e: RingError) -> Self {
        BenchError::Ring(e)
    }
}

/// Checks that a run completed exactly `expected` operations.
pub fn check_complete(what: &str, expected: u64, got: u64) -> Result<u64, BenchError> {
    if got == expected {
        Ok(got)
    } else {
        Err(BenchError::Incomplete {
            what: what.to_owned(),
            expected,
            got,
        })
    }
}
