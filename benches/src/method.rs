//! The measuring method: calibrated runs, alternated variants, paired ratios, medians.
//!
//! The machine this project runs on has 2 vCPUs whose speed drifts (the host moves them
//! between fast and slow placements), often by more than the differences being measured. So:
//! - the process is pinned to one CPU ([`crate::pin`]) before anything is measured;
//! - each case runs its variants one after the other for a number of rounds, alternating
//!   A, B, C in even rounds with C, B, A in odd ones (so that no side always goes first or
//!   right after another), every run doing the same number of operations, calibrated so that
//!   one run takes about [`Config::target_run`](crate::Config::target_run);
//! - a comparison of A with B is the median over rounds of the per-round ratio
//!   `ns_per_op(B) / ns_per_op(A)`, i.e. A's throughput over B's (above 1: A is faster), so a
//!   drift that slows a whole round cancels out; the report also gives each side's median.
//!
//! Nothing here judges the numbers: tests never assert a timing.

use std::time::{Duration, Instant};

use crate::Config;
use crate::error::BenchError;

/// One variant's run: do this many operations, return how many completed.
pub type RunFn<'a> = Box<dyn FnMut(u64) -> Result<u64, BenchError> + 'a>;

/// One of the things a case compares.
pub struct Variant<'a> {
    /// Its name in the report.
    pub name: String,
    /// Its run.
    pub run: RunFn<'a>,
}

impl<'a> Variant<'a> {
    /// A named variant.
    pub fn new(
        name: impl Into<String>,
        run: impl FnMut(u64) -> Result<u64, BenchError> + 'a,
    ) -> Variant<'a> {
        Variant {
            name: name.into(),
            run: Box::new(run),
        }
    }
}

/// What one variant measured.
#[derive(Clone, Debug)]
pub struct VariantResult {
    /// Its name.
    pub name: String,
    /// Nanoseconds per operation, one per round.
    pub ns_per_op: Vec<f64>,
    /// Their median.
    pub median_ns: f64,
}

impl VariantResult {
    /// Operations per second at the median.
    pub fn ops_per_sec(&self) -> f64 {
        if self.median_ns > 0.0 {
            1e9 / self.median_ns
        } else {
            0.0
        }
    }
}

/// A paired comparison: A's throughput over B's, round by round.
#[derive(Clone, Debug)]
pub struct RatioResult {
    /// The variant on top (usually xuring).
    pub a: String,
    /// The variant below (usually the baseline).
    pub b: String,
    /// `ns_per_op(b) / ns_per_op(a)` of each round.
    pub per_round: Vec<f64>,
    /// Their median: above 1 means A is faster.
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

/// Everything a case measured.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// E.g. `batch=64`.
    pub label: String,
    /// Operations per run.
    pub ops_per_run: u64,
    /// Rounds run.
    pub rounds: u32,
    /// Per variant, in the order they ran.
    pub variants: Vec<VariantResult>,
    /// The comparisons asked for.
    pub ratios: Vec<RatioResult>,
}

impl CaseResult {
    /// The comparison of `a` with `b`, if it was made.
    pub fn ratio(&self, a: &str, b: &str) -> Option<&RatioResult> {
        self.ratios.iter().find(|r| r.a == a && r.b == b)
    }

    /// The variant named `name`.
    pub fn variant(&self, name: &str) -> Option<&VariantResult> {
        self.variants.iter().find(|v| v.name == name)
    }
}

/// The median (the mean of the middle two for an even count); 0 for no values.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 0 {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

fn timed(variant: &mut Variant<'_>, ops: u64) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let done = (variant.run)(ops)?;
    let elapsed = start.elapsed();
    crate::error::check_complete(&variant.name, ops, done)?;
    Ok(elapsed)
}

/// How many operations one run of `variant` should do to last about `config.target_run`
/// (rounded up to a multiple of `granule`); `config.fixed_ops` if set. Warms the variant up.
pub fn calibrate(
    variant: &mut Variant<'_>,
    config: &Config,
    granule: u64,
) -> Result<u64, BenchError> {
    let granule = granule.max(1);
    let round_up = |n: u64| n.div_ceil(granule).max(1) * granule;
    if let Some(ops) = config.fixed_ops {
        timed(variant, round_up(ops))?;
        return Ok(round_up(ops));
    }
    let mut probe = round_up(256);
    timed(variant, probe)?;
    loop {
        let elapsed = timed(variant, probe)?;
        if elapsed >= Duration::from_millis(2) || probe >= 1 << 26 {
            let ns_per_op = (elapsed.as_nanos() as f64 / probe as f64).max(1.0);
            let ops = (config.target_run.as_nanos() as f64 / ns_per_op) as u64;
            return Ok(round_up(ops.clamp(granule, 1 << 28)));
        }
        probe = round_up(probe * 4);
    }
}

/// Runs every variant `ops` operations per run, in turn (forward in even rounds, backward in
/// odd ones), for `rounds` rounds after one warm-up run each, and makes the comparisons
/// `(a, b)` asked for (indices into `variants`).
pub fn measure(
    label: impl Into<String>,
    variants: &mut [Variant<'_>],
    comparisons: &[(usize, usize)],
    rounds: u32,
    ops: u64,
) -> Result<CaseResult, BenchError> {
    let rounds = rounds.max(1);
    for variant in variants.iter_mut() {
        timed(variant, (ops / 4).max(1))?;
    }
    let mut ns: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds as usize); variants.len()];
    for round in 0..rounds {
        // Even rounds run A, B, C; odd rounds C, B, A: a variant's place in the round (and
        // a drift within it) does not favour any side over the whole run.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..variants.len()).collect()
        } else {
            (0..variants.len()).rev().collect()
        };
        for i in order {
            let elapsed = timed(&mut variants[i], ops)?;
            ns[i].push(elapsed.as_nanos() as f64 / ops as f64);
        }
    }
    let results: Vec<VariantResult> = variants
        .iter()
        .zip(&ns)
        .map(|(v, ns)| VariantResult {
            name: v.name.clone(),
            median_ns: median(ns),
            ns_per_op: ns.clone(),
        })
        .collect();
    let ratios = comparisons
        .iter()
        .filter(|(a, b)| *a < results.len() && *b < results.len())
        .map(|&(a, b)| {
            let per_round: Vec<f64> = ns[a]
                .iter()
                .zip(&ns[b])
                .map(|(na, nb)| if *na > 0.0 { nb / na } else { 0.0 })
                .collect();
            RatioResult {
                a: results[a].name.clone(),
                b: results[b].name.clone(),
                median: median(&per_round),
                min: per_round.iter().copied().fold(f64::INFINITY, f64::min),
                max: per_round.iter().copied().fold(0.0, f64::max),
                per_round,
            }
        })
        .collect();
    Ok(CaseResult {
        label: label.into(),
        ops_per_run: ops,
        rounds,
        variants: results,
        ratios,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn paired_ratios_compare_round_by_round() {
        // Both "complete" every operation at once: the structure, not the speed, is checked.
        let mut variants = vec![Variant::new("a", Ok), Variant::new("b", Ok)];
        let case = measure("t", &mut variants, &[(0, 1)], 3, 10).expect("measure");
        assert_eq!(case.variants.len(), 2);
        assert!(case.variants.iter().all(|v| v.ns_per_op.len() == 3));
        let ratio = case.ratio("a", "b").expect("ratio");
        assert_eq!(ratio.per_round.len(), 3);
        assert!(ratio.min <= ratio.median && ratio.median <= ratio.max);
    }

    #[test]
    fn an_incomplete_run_is_an_error() {
        let mut variants = vec![Variant::new("short", |ops| Ok(ops - 1))];
        assert!(matches!(
            measure("t", &mut variants, &[], 1, 8),
            Err(BenchError::Incomplete { .. })
        ));
    }
}
