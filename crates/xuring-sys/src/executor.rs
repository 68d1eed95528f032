//! Which executor runs a ring: the kernel's io_uring, or the readiness executor (`epoll`) that
//! stands in where io_uring is blocked; and how a program chooses (`XURING_BACKEND`).

use core::fmt;

/// The environment variable that forces an executor: `io_uring`, `epoll` or `auto`.
pub const BACKEND_ENV: &str = "XURING_BACKEND";

/// What executes a ring's operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Executor {
    /// The kernel's io_uring.
    IoUring,
    /// The readiness executor: the same ring, executed in user space over `epoll`, with
    /// regular-file and filesystem operations run synchronously.
    Epoll,
}

impl Executor {
    /// `io_uring` or `epoll`, as [`BACKEND_ENV`] spells them.
    pub const fn name(self) -> &'static str {
        match self {
            Executor::IoUring => "io_uring",
            Executor::Epoll => "epoll",
        }
    }
}

impl fmt::Display for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which executor a new ring may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ExecutorChoice {
    /// io_uring, or the readiness executor where io_uring is forbidden (`EPERM`: a seccomp
    /// filter, `kernel.io_uring_disabled`) or missing (`ENOSYS`).
    #[default]
    Auto,
    /// io_uring only: setup fails where it is unavailable.
    IoUring,
    /// The readiness executor, even where io_uring works.
    Epoll,
}

impl ExecutorChoice {
    /// Parses `io_uring` (or `uring`), `epoll` or `auto` (case-insensitive).
    pub fn parse(s: &str) -> Option<ExecutorChoice> {
        let s = s.trim();
        [
            ("auto", ExecutorChoice::Auto),
            ("io_uring", ExecutorChoice::IoUring),
            ("uring", ExecutorChoice::IoUring),
            ("epoll", ExecutorChoice::Epoll),
        ]
        .into_iter()
        .find(|(name, _)| s.eq_ignore_ascii_case(name))
        .map(|(_, choice)| choice)
    }

    /// The choice [`BACKEND_ENV`] names, `None` when it is unset. A value that names none is
    /// an error, so that a typo cannot run a test suite on the wrong executor.
    pub fn from_env() -> Result<Option<ExecutorChoice>, InvalidExecutor> {
        match std::env::var(BACKEND_ENV) {
            Ok(value) => Self::parse(&value).map(Some).ok_or(InvalidExecutor(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(v)) => {
                Err(InvalidExecutor(v.to_string_lossy().into_owned()))
            }
        }
    }
}

/// `XURING_BACKEND` holds a value that names no executor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidExecutor(pub String);

impl fmt::Display for InvalidExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{BACKEND_ENV}={:?} names no backend; use io_uring, epoll or auto",
            self.0
        )
    }
}

impl std::error::Error for InvalidExecutor {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_by_name_and_nothing_else_does() {
        assert_eq!(ExecutorChoice::parse("EPOLL"), Some(ExecutorChoice::Epoll));
        assert_eq!(
            ExecutorChoice::parse(" io_uring "),
            Some(ExecutorChoice::IoUring)
        );
        assert_eq!(ExecutorChoice::parse("auto"), Some(ExecutorChoice::Auto));
        assert_eq!(ExecutorChoice::parse("kqueue"), None);
        assert_eq!(Executor::Epoll.to_string(), "epoll");
    }
}
