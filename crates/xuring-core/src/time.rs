//! `Timespec`: the time format of timers and wait deadlines.

use core::time::Duration;

use xuring_sys::abi::__kernel_timespec;

/// Seconds and nanoseconds, as the kernel takes them (`struct __kernel_timespec`).
///
/// A relative timer counts from submission; an absolute one ([`Ring::timer_at`]) is a point on
/// `CLOCK_MONOTONIC` (see [`Timespec::now`]).
///
/// [`Ring::timer_at`]: crate::Ring::timer_at
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timespec {
    /// Whole seconds.
    pub sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nsec: u32,
}

impl Timespec {
    /// Zero.
    pub const ZERO: Timespec = Timespec { sec: 0, nsec: 0 };

    /// From a duration (saturating at `i64::MAX` seconds).
    pub const fn from_duration(d: Duration) -> Timespec {
        let sec = d.as_secs();
        Timespec {
            sec: if sec > i64::MAX as u64 {
                i64::MAX
            } else {
                sec as i64
            },
            nsec: d.subsec_nanos(),
        }
    }

    /// As a duration; negative times are zero.
    pub const fn to_duration(self) -> Duration {
        if self.sec < 0 {
            Duration::ZERO
        } else {
            Duration::new(self.sec as u64, self.nsec)
        }
    }

    /// The current `CLOCK_MONOTONIC` time, the clock absolute timers use.
    pub fn now() -> Timespec {
        xuring_sys::syscall::monotonic_now()
            .map(|ts| Timespec {
                sec: ts.tv_sec,
                nsec: ts.tv_nsec as u32,
            })
            .unwrap_or(Timespec::ZERO)
    }

    /// `self + d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Timespec {
        let total = self.to_duration().saturating_add(d);
        Timespec::from_duration(total)
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_sub(self, earlier: Timespec) -> Duration {
        self.to_duration().saturating_sub(earlier.to_duration())
    }

    pub(crate) const fn to_kernel(self) -> __kernel_timespec {
        __kernel_timespec {
            tv_sec: self.sec,
            tv_nsec: self.nsec as i64,
        }
    }
}

impl From<Duration> for Timespec {
    fn from(d: Duration) -> Timespec {
        Timespec::from_duration(d)
    }
}
