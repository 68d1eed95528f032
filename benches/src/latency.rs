//! A fixed-size latency histogram: recording a sample never allocates, so a measured loop
//! can record every operation without disturbing the allocation count or the timing.
//!
//! Buckets are exact below 64 ns, then 32 per power of two (a bucket is at most 1/32 of its
//! value wide, about 3 %), up to 2^40 ns (18 minutes); longer samples land in the last bucket.

use std::time::Duration;

/// Sub-buckets per power of two, as a shift.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values below this have a bucket each.
const LINEAR: u64 = 64;
/// The largest exponent with buckets of its own.
const MAX_EXP: u32 = 40;
const BUCKETS: usize = LINEAR as usize + (MAX_EXP as usize - 5) * SUB;

/// Counts of samples per bucket.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new()
    }
}

fn bucket(ns: u64) -> usize {
    if ns < LINEAR {
        return ns as usize;
    }
    let exp = (63 - ns.leading_zeros()).min(MAX_EXP);
    let ns = ns.min((1u64 << (MAX_EXP + 1)) - 1);
    let sub = ((ns >> (exp - SUB_BITS)) as usize) & (SUB - 1);
    LINEAR as usize + (exp - 6) as usize * SUB + sub
}

/// The middle of bucket `i`, in nanoseconds.
fn bucket_mid(i: usize) -> f64 {
    if i < LINEAR as usize {
        return i as f64;
    }
    let exp = (i - LINEAR as usize) / SUB + 6;
    let sub = (i - LINEAR as usize) % SUB;
    let low = ((SUB + sub) as u64) << (exp - SUB_BITS as usize);
    let width = 1u64 << (exp - SUB_BITS as usize);
    low as f64 + width as f64 / 2.0
}

impl Histogram {
    /// An empty histogram (allocated once, here).
    pub fn new() -> Histogram {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
        }
    }

    /// Records one sample.
    #[inline]
    pub fn record(&mut self, sample: Duration) {
        let ns = u64::try_from(sample.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket(ns)] += 1;
        self.total += 1;
    }

    /// Samples recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether none were.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The `q` quantile (0.5: the median) in microseconds, `None` if empty.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        // The rank of the sample asked for, 1-based: the smallest with at least q of the
        // samples at or below it.
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bucket_mid(i) / 1000.0);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_narrow() {
        let mut last = 0;
        for ns in (0..100_000u64).chain([1 << 30, (1 << 40) + 5, u64::MAX]) {
            let b = bucket(ns);
            assert!(b >= last && b < BUCKETS, "{ns} -> {b}");
            last = b;
            if (LINEAR..1 << 40).contains(&ns) {
                let mid = bucket_mid(b);
                assert!((mid - ns as f64).abs() <= ns as f64 / 32.0, "{ns} in {mid}");
            }
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile_us(0.5), None);
        // 1..=1000 microseconds, once each.
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.len(), 1000);
        let p50 = h.quantile_us(0.5).expect("p50");
        let p99 = h.quantile_us(0.99).expect("p99");
        assert!((p50 - 500.0).abs() <= 500.0 / 32.0, "p50 {p50}");
        assert!((p99 - 990.0).abs() <= 990.0 / 32.0, "p99 {p99}");
        assert!(h.quantile_us(0.0).expect("min") <= 1.1);
    }
}
