//! `Timespec`: the time format of timers and wait deadlines.

use core::cmp::Ordering;
use core::hash::{Hash, Hasher};
use core::time::Duration;

use xuring_sys::abi::__kernel_timespec;

const NANOS_PER_SEC: u32 = 1_000_000_000;

/// Seconds and nanoseconds, as the kernel takes them (`struct __kernel_timespec`).
///
/// A relative timer counts from submission; an absolute one ([`Ring::timer_at`]) is a point on
/// `CLOCK_MONOTONIC` (see [`Timespec::now`]).
///
/// The fields are public, so `nsec` may hold a whole second or more. Such a value means what
/// its total says (`{ sec: 0, nsec: 3_000_000_000 }` is three seconds): comparison, equality
/// and hashing go by the total, and every conversion ([`to_duration`](Self::to_duration),
/// the arithmetic, what the kernel is given) carries the extra seconds into `sec` first.
///
/// [`Ring::timer_at`]: crate::Ring::timer_at
#[derive(Clone, Copy, Debug, Default)]
pub struct Timespec {
    /// Whole seconds.
    pub sec: i64,
    /// Nanoseconds, normally `0..1_000_000_000`; more counts as whole seconds.
    pub nsec: u32,
}

impl Timespec {
    /// Zero.
    pub const ZERO: Timespec = Timespec { sec: 0, nsec: 0 };

    /// The latest time a `Timespec` can normalise to.
    const MAX: Timespec = Timespec {
        sec: i64::MAX,
        nsec: NANOS_PER_SEC - 1,
    };

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

    /// The same time with `nsec` below one second: whole seconds in `nsec` are carried into
    /// `sec`, saturating at the latest representable time.
    pub const fn normalized(self) -> Timespec {
        Timespec::from_total_nanos(self.total_nanos())
    }

    /// As a duration; negative times are zero.
    pub const fn to_duration(self) -> Duration {
        let total = self.total_nanos();
        if total <= 0 {
            return Duration::ZERO;
        }
        let nanos = NANOS_PER_SEC as i128;
        // At most `i64::MAX` seconds plus the four a `u32` of nanoseconds adds: fits a `u64`.
        Duration::new((total / nanos) as u64, (total % nanos) as u32)
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
        // Both fit an i128 many times over: seconds below 2^64, nanoseconds below 2^30.
        let total = self.total_nanos() + d.as_nanos() as i128;
        Timespec::from_total_nanos(total)
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_sub(self, earlier: Timespec) -> Duration {
        let diff = self.total_nanos() - earlier.total_nanos();
        if diff <= 0 {
            return Duration::ZERO;
        }
        let nanos = NANOS_PER_SEC as i128;
        match u64::try_from(diff / nanos) {
            Ok(sec) => Duration::new(sec, (diff % nanos) as u32),
            Err(_) => Duration::MAX,
        }
    }

    /// A kernel timespec read back (negative times are zero; nanoseconds clamped).
    pub(crate) fn from_kernel(ts: &__kernel_timespec) -> Timespec {
        if ts.tv_sec < 0 {
            return Timespec::ZERO;
        }
        Timespec {
            sec: ts.tv_sec,
            nsec: ts.tv_nsec.clamp(0, 999_999_999) as u32,
        }
    }

    /// What the kernel is given: normalised, so that the kernel reads the time this value
    /// means. `tv_nsec` is a fraction of a second in the ABI, and a timeout with a negative
    /// `tv_sec` (as `{ sec: -1, nsec: 1_500_000_000 }`, half a second, would have) fails with
    /// `EINVAL`.
    pub(crate) const fn to_kernel(self) -> __kernel_timespec {
        let ts = self.normalized();
        __kernel_timespec {
            tv_sec: ts.sec,
            tv_nsec: ts.nsec as i64,
        }
    }

    /// Nanoseconds since zero; exact for every value (an i128 holds `i64` seconds times 10^9
    /// plus a `u32`).
    const fn total_nanos(self) -> i128 {
        self.sec as i128 * NANOS_PER_SEC as i128 + self.nsec as i128
    }

    /// The time `total` nanoseconds from zero, saturating at both ends.
    const fn from_total_nanos(total: i128) -> Timespec {
        let nanos = NANOS_PER_SEC as i128;
        let sec = total.div_euclid(nanos);
        if sec > i64::MAX as i128 {
            Timespec::MAX
        } else if sec < i64::MIN as i128 {
            Timespec {
                sec: i64::MIN,
                nsec: 0,
            }
        } else {
            Timespec {
                sec: sec as i64,
                nsec: total.rem_euclid(nanos) as u32,
            }
        }
    }
}

impl PartialEq for Timespec {
    fn eq(&self, other: &Timespec) -> bool {
        self.total_nanos() == other.total_nanos()
    }
}

impl Eq for Timespec {}

impl PartialOrd for Timespec {
    fn partial_cmp(&self, other: &Timespec) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timespec {
    fn cmp(&self, other: &Timespec) -> Ordering {
        self.total_nanos().cmp(&other.total_nanos())
    }
}

impl Hash for Timespec {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // By the total, as equality is: equal times hash alike however they are written.
        self.total_nanos().hash(state);
    }
}

impl From<Duration> for Timespec {
    fn from(d: Duration) -> Timespec {
        Timespec::from_duration(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(sec: i64, nsec: u32) -> Timespec {
        Timespec { sec, nsec }
    }

    fn hash(t: Timespec) -> u64 {
        use std::collections::hash_map::DefaultHasher;
        let mut h = DefaultHasher::new();
        t.hash(&mut h);
        h.finish()
    }

    #[test]
    fn unnormalised_values_compare_by_their_total() {
        assert!(ts(0, 3_000_000_000) > ts(2, 0));
        assert!(ts(0, 3_000_000_000) < ts(3, 1));
        assert!(ts(2, 999_999_999) < ts(0, 3_000_000_000));
        assert_eq!(ts(0, 3_000_000_000), ts(3, 0));
        assert_eq!(ts(1, 2_500_000_000), ts(3, 500_000_000));
        assert_eq!(ts(-1, 1_000_000_000), Timespec::ZERO);
        assert_eq!(hash(ts(0, 3_000_000_000)), hash(ts(3, 0)));
        assert_eq!(
            ts(0, 3_000_000_000).cmp(&ts(3, 0)),
            Ordering::Equal,
            "Ord agrees with Eq"
        );
        // At the top of the range the total still orders exactly.
        assert!(ts(i64::MAX, 1_500_000_000) > ts(i64::MAX, 999_999_999));
    }

    #[test]
    fn normalized_carries_whole_seconds() {
        let n = ts(1, 2_500_000_000).normalized();
        assert_eq!((n.sec, n.nsec), (3, 500_000_000));
        let n = ts(-2, 4_294_967_295).normalized();
        assert_eq!((n.sec, n.nsec), (2, 294_967_295));
        let n = ts(5, 7).normalized();
        assert_eq!((n.sec, n.nsec), (5, 7));
        let n = ts(i64::MAX, 1_000_000_000).normalized();
        assert_eq!((n.sec, n.nsec), (i64::MAX, 999_999_999), "saturates");
    }

    #[test]
    fn conversions_normalise() {
        assert_eq!(ts(0, 3_000_000_000).to_duration(), Duration::from_secs(3));
        assert_eq!(
            ts(-1, 1_500_000_000).to_duration(),
            Duration::from_millis(500)
        );
        assert_eq!(ts(-1, 999_999_999).to_duration(), Duration::ZERO);
        let k = ts(0, 3_000_000_001).to_kernel();
        assert_eq!((k.tv_sec, k.tv_nsec), (3, 1));
        let k = ts(-1, 1_010_000_000).to_kernel();
        assert_eq!((k.tv_sec, k.tv_nsec), (0, 10_000_000));
    }

    #[test]
    fn arithmetic_normalises_and_saturates() {
        let t = ts(0, 3_000_000_000).saturating_add(Duration::from_millis(1500));
        assert_eq!((t.sec, t.nsec), (4, 500_000_000));
        let t = ts(-1, 0).saturating_add(Duration::from_millis(500));
        assert_eq!((t.sec, t.nsec), (-1, 500_000_000), "negative times add too");
        let t = ts(i64::MAX, 0).saturating_add(Duration::MAX);
        assert_eq!((t.sec, t.nsec), (i64::MAX, 999_999_999));
        assert_eq!(
            ts(0, 3_000_000_000).saturating_sub(ts(2, 0)),
            Duration::from_secs(1)
        );
        assert_eq!(
            ts(2, 0).saturating_sub(ts(0, 3_000_000_000)),
            Duration::ZERO
        );
        assert_eq!(
            ts(i64::MAX, 0).saturating_sub(ts(i64::MIN, 0)),
            Duration::from_secs(u64::MAX)
        );
        assert_eq!(
            ts(i64::MAX, 4_000_000_000).saturating_sub(ts(i64::MIN, 0)),
            Duration::MAX
        );
    }
}
