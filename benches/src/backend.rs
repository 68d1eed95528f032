//! Which executor xuring runs on here, and whether the raw `io-uring` crate's baselines can run.
//!
//! A ring made with default options runs on the kernel's io_uring, or, where io_uring is
//! blocked (a seccomp filter as in Docker's default profile, `kernel.io_uring_disabled`) or
//! forced off (`XURING_BACKEND=epoll`), on xuring's readiness executor over `epoll`. The tool
//! says which, every time: in the probe report, in the first line of the tour's closing table
//! and in every record of a subcommand. The raw `io-uring` crate has no such fallback: where
//! io_uring is blocked its baselines cannot run, and the tool runs xuring's side alone and
//! says so.

use std::sync::OnceLock;

use xuring_core::{Executor, ExecutorChoice, Ring, RingBuilder};
use xuring_sys::BACKEND_ENV;

/// What this process found when it made a few small rings.
#[derive(Clone, Debug)]
pub struct Backends {
    /// The executor a ring with default options gets (or why no ring could be made).
    pub default: Result<Executor, String>,
    /// Whether a ring that asks for io_uring only can be made; its setup error if not.
    pub io_uring: Result<(), String>,
    /// Whether the raw `io-uring` crate can make a ring; its setup error if not.
    pub raw: Result<(), String>,
    /// `XURING_BACKEND`, if set.
    pub env: Option<String>,
}

impl Backends {
    /// Makes the rings and looks (a few milliseconds).
    pub fn detect() -> Backends {
        let default = Ring::builder(4)
            .build()
            .map(|ring| ring.executor())
            .map_err(|e| e.to_string());
        let io_uring = Ring::builder(4)
            .executor(ExecutorChoice::IoUring)
            .build()
            .map(drop)
            .map_err(|e| e.to_string());
        let raw = io_uring::IoUring::new(2)
            .map(drop)
            .map_err(|e| format!("io_uring_setup: {e}"));
        Backends {
            default,
            io_uring,
            raw,
            env: std::env::var(BACKEND_ENV).ok(),
        }
    }

    /// The executor of xuring's default rings, if one can be made.
    pub fn executor(&self) -> Option<Executor> {
        self.default.as_ref().ok().copied()
    }

    /// Whether the raw `io-uring` crate's baselines can run.
    pub fn raw_available(&self) -> bool {
        self.raw.is_ok()
    }

    /// Whether a xuring ring can run on `executor` here.
    pub fn can_run(&self, executor: Executor) -> bool {
        match executor {
            Executor::IoUring => self.io_uring.is_ok(),
            // The readiness executor needs only epoll, which every Linux has.
            Executor::Epoll => true,
        }
    }

    /// Why io_uring is not used by default, when it is not.
    pub fn why_epoll(&self) -> Option<String> {
        if self.executor() != Some(Executor::Epoll) {
            return None;
        }
        Some(match &self.io_uring {
            Err(e) => format!("io_uring is blocked here: {e}"),
            Ok(()) => format!(
                "chosen by {BACKEND_ENV}={}; io_uring works here",
                self.env.as_deref().unwrap_or("?")
            ),
        })
    }

    /// The first line of the tour's closing table: where xuring ran.
    pub fn headline(&self) -> String {
        match &self.default {
            Ok(Executor::IoUring) => "xuring on io_uring".to_owned(),
            Ok(Executor::Epoll) => match &self.io_uring {
                Err(_) => {
                    "xuring on epoll (readiness executor; io_uring is blocked here)".to_owned()
                }
                Ok(()) => format!(
                    "xuring on epoll (readiness executor, chosen by {BACKEND_ENV}={}; io_uring \
                     works here)",
                    self.env.as_deref().unwrap_or("?")
                ),
            },
            Err(e) => format!("xuring could not make a ring here: {e}"),
        }
    }

    /// The line that says the raw baselines did not run, if they did not.
    pub fn raw_note(&self) -> Option<String> {
        self.raw.as_ref().err().map(|e| {
            format!("{RAW_NAME}: unavailable here ({e}); its comparisons ran xuring's side alone")
        })
    }
}

/// How the raw `io-uring` crate's baseline is named in tables.
pub const RAW_NAME: &str = "raw io_uring";

/// What [`Backends::detect`] found the first time this process asked.
pub fn backends() -> &'static Backends {
    static FOUND: OnceLock<Backends> = OnceLock::new();
    FOUND.get_or_init(Backends::detect)
}

/// Whether the raw `io-uring` crate's baselines can run here.
pub fn raw_available() -> bool {
    backends().raw_available()
}

/// The builder of a ring of `entries` entries on `executor`, or with the default choice
/// (`XURING_BACKEND`, else io_uring where it works and epoll where it is blocked) if `None`.
pub fn builder(entries: u32, executor: Option<Executor>) -> RingBuilder {
    let builder = Ring::builder(entries);
    match executor {
        None => builder,
        Some(Executor::IoUring) => builder.executor(ExecutorChoice::IoUring),
        Some(Executor::Epoll) => builder.executor(ExecutorChoice::Epoll),
    }
}
