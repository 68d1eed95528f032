//! Kernel versions as data, and the levels a test run can mask features down to.

use core::fmt;

/// A Linux kernel version, `major.minor`.
///
/// Versions are documentation and test data: runtime decisions come from probes, never from
/// comparing the running kernel's version string (distributions backport io_uring features).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    /// Major version (`6` in 6.1).
    pub major: u8,
    /// Minor version (`1` in 6.1).
    pub minor: u8,
}

impl KernelVersion {
    /// `major.minor`.
    pub const fn new(major: u8, minor: u8) -> Self {
        Self { major, minor }
    }

    /// `self <= other`, usable in constant context.
    pub const fn at_most(self, other: KernelVersion) -> bool {
        self.major < other.major || (self.major == other.major && self.minor <= other.minor)
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A kernel level to clamp the probed [`Features`](crate::Features) to, so that the fallback
/// paths for older kernels run on a newer one.
///
/// The levels are the kernels whose io_uring additions xuring adapts to. `Native` keeps
/// everything the running kernel offers. Select a level for a whole process with the
/// environment variable `XURING_KERNEL_LEVEL` (`5.6`, `5.10`, `5.11`, `5.18`, `5.19`, `6.0`,
/// `6.1`, `6.12` or `native`), e.g. `XURING_KERNEL_LEVEL=5.6 cargo test --workspace`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KernelLevel {
    /// Linux 5.6: `IORING_OP_READ`/`WRITE`, `OPENAT`, `STATX`, `SEND`/`RECV`.
    V5_6,
    /// Linux 5.10 (the oldest LTS kernel in the CI's reach): `SHUTDOWN` is still missing.
    V5_10,
    /// Linux 5.11: `IORING_ENTER_EXT_ARG` wait timeouts.
    V5_11,
    /// Linux 5.18: `MSG_RING`, `SETUP_SUBMIT_ALL`.
    V5_18,
    /// Linux 5.19: `SOCKET`, `SETUP_COOP_TASKRUN`, `ASYNC_CANCEL_ALL`.
    V5_19,
    /// Linux 6.0: `SETUP_SINGLE_ISSUER`.
    V6_0,
    /// Linux 6.1: `SETUP_DEFER_TASKRUN`.
    V6_1,
    /// Linux 6.12 (an LTS kernel the CI boots): futex and waitid ops, `FEAT_MIN_TIMEOUT`.
    V6_12,
    /// Whatever the running kernel offers.
    #[default]
    Native,
}

/// The environment variable that selects a [`KernelLevel`] for the process.
pub const KERNEL_LEVEL_ENV: &str = "XURING_KERNEL_LEVEL";

impl KernelLevel {
    /// Every level, oldest first.
    pub const ALL: [KernelLevel; 9] = [
        Self::V5_6,
        Self::V5_10,
        Self::V5_11,
        Self::V5_18,
        Self::V5_19,
        Self::V6_0,
        Self::V6_1,
        Self::V6_12,
        Self::Native,
    ];

    /// The kernel version of this level; `None` for `Native`.
    pub const fn version(self) -> Option<KernelVersion> {
        Some(match self {
            Self::V5_6 => KernelVersion::new(5, 6),
            Self::V5_10 => KernelVersion::new(5, 10),
            Self::V5_11 => KernelVersion::new(5, 11),
            Self::V5_18 => KernelVersion::new(5, 18),
            Self::V5_19 => KernelVersion::new(5, 19),
            Self::V6_0 => KernelVersion::new(6, 0),
            Self::V6_1 => KernelVersion::new(6, 1),
            Self::V6_12 => KernelVersion::new(6, 12),
            Self::Native => return None,
        })
    }

    /// Whether a feature added in `since` exists at this level.
    pub const fn allows(self, since: KernelVersion) -> bool {
        match self.version() {
            Some(v) => since.at_most(v),
            None => true,
        }
    }

    /// Parses `5.6`, `5.10`, `5.11`, `5.18`, `5.19`, `6.0`, `6.1`, `6.12` or `native`
    /// (case-insensitive).
    pub fn parse(s: &str) -> Option<KernelLevel> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("native") {
            return Some(Self::Native);
        }
        Self::ALL
            .into_iter()
            .find(|level| level.version().is_some_and(|v| v.to_string() == s))
    }

    /// The level named by `XURING_KERNEL_LEVEL`, `Native` when it is unset.
    ///
    /// An unparsable value is an error rather than a silent `Native`, so a typo cannot make a
    /// test run skip the fallback paths it was meant to exercise.
    pub fn from_env() -> Result<KernelLevel, InvalidKernelLevel> {
        match std::env::var(KERNEL_LEVEL_ENV) {
            Ok(value) => Self::parse(&value).ok_or(InvalidKernelLevel(value)),
            Err(std::env::VarError::NotPresent) => Ok(Self::Native),
            Err(std::env::VarError::NotUnicode(v)) => {
                Err(InvalidKernelLevel(v.to_string_lossy().into_owned()))
            }
        }
    }
}

impl fmt::Display for KernelLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version() {
            Some(v) => v.fmt(f),
            None => f.write_str("native"),
        }
    }
}

/// `XURING_KERNEL_LEVEL` holds a value that names no [`KernelLevel`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidKernelLevel(pub String);

impl fmt::Display for InvalidKernelLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{KERNEL_LEVEL_ENV}={:?} is not a kernel level; use one of 5.6, 5.10, 5.11, 5.18, 5.19, 6.0, 6.1, 6.12, native",
            self.0
        )
    }
}

impl std::error::Error for InvalidKernelLevel {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_every_level() {
        for level in KernelLevel::ALL {
            assert_eq!(KernelLevel::parse(&level.to_string()), Some(level));
        }
        assert_eq!(KernelLevel::parse("NATIVE"), Some(KernelLevel::Native));
        assert_eq!(KernelLevel::parse("5.7"), None);
        assert_eq!(KernelLevel::parse(""), None);
    }

    #[test]
    fn allows_compares_versions_not_strings() {
        assert!(KernelLevel::V5_6.allows(KernelVersion::new(5, 1)));
        assert!(KernelLevel::V5_6.allows(KernelVersion::new(5, 6)));
        assert!(!KernelLevel::V5_6.allows(KernelVersion::new(5, 7)));
        // 5.11 > 5.6 numerically even though "5.11" < "5.6" as text.
        assert!(!KernelLevel::V5_6.allows(KernelVersion::new(5, 11)));
        assert!(KernelLevel::V5_18.allows(KernelVersion::new(5, 11)));
        assert!(!KernelLevel::V6_0.allows(KernelVersion::new(6, 1)));
        assert!(KernelLevel::Native.allows(KernelVersion::new(9, 9)));
    }
}
