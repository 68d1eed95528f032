//! Formatting: compact tables of [`CaseResult`]s.

use std::fmt::Write as _;

use crate::method::CaseResult;

/// One line of the tour's closing table: a case, xuring's median rate, its baseline's and the
/// median of the paired ratios xuring / baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// The scenario.
    pub scenario: String,
    /// The case's parameters.
    pub params: String,
    /// xuring's median operations per second.
    pub xuring: f64,
    /// What xuring is compared with (`raw io_uring`, `tokio`, `xuring on io_uring`).
    pub baseline: String,
    /// The baseline's median operations per second; `None` where it could not run here.
    pub base: Option<f64>,
    /// The median of the paired ratios (above 1: xuring faster); `None` without a baseline.
    pub ratio: Option<f64>,
}

/// The row comparing variant `a` (xuring) of `case` with `b` (the baseline called
/// `baseline` in the table); without `b` in the case (it could not run here), xuring's rate
/// alone. `None` if `case` has no variant `a`.
pub fn summary_row(
    scenario: &str,
    params: impl Into<String>,
    case: &CaseResult,
    a: &str,
    b: &str,
    baseline: &str,
) -> Option<SummaryRow> {
    Some(SummaryRow {
        scenario: scenario.to_owned(),
        params: params.into(),
        xuring: case.variant(a)?.ops_per_sec(),
        baseline: baseline.to_owned(),
        base: case.variant(b).map(|v| v.ops_per_sec()),
        ratio: case.ratio(a, b).map(|r| r.median),
    })
}

/// The tour's closing table, headed by `headline` (where xuring ran); `notes` go under it.
pub fn summary_table(headline: &str, rows: &[SummaryRow], notes: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{headline}");
    if rows.is_empty() {
        return out;
    }
    let width =
        |f: fn(&SummaryRow) -> usize, min: usize| rows.iter().map(f).max().unwrap_or(0).max(min);
    let sw = width(|r| r.scenario.len(), 8);
    let pw = width(|r| r.params.len(), 10);
    let bw = width(|r| r.baseline.len(), 8);
    let _ = writeln!(
        out,
        "  {:<sw$}  {:<pw$}  {:>9}  {:<bw$}  {:>9}  {:>7}",
        "scenario", "parameters", "xuring", "baseline", "baseline", "ratio"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "  {:<sw$}  {:<pw$}  {:>9}  {:<bw$}  {:>9}  {:>7}",
            r.scenario,
            r.params,
            rate(r.xuring),
            r.baseline,
            r.base.map_or_else(|| "n/a".to_owned(), rate),
            r.ratio.map_or_else(|| "n/a".to_owned(), ratio)
        );
    }
    let _ = writeln!(
        out,
        "  (operations per second, each side's median over the rounds; ratio: the median of the\n   \
         per-round ratios xuring / baseline, each round running both sides back to back, so\n   \
         above 1 means xuring did the same work faster on this machine)"
    );
    for note in notes {
        let _ = writeln!(out, "  {note}");
    }
    out
}

/// `24.3M`, `812k`, `950`.
pub fn rate(per_sec: f64) -> String {
    if per_sec >= 1e9 {
        format!("{:.2}G", per_sec / 1e9)
    } else if per_sec >= 1e6 {
        format!("{:.2}M", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.1}k", per_sec / 1e3)
    } else {
        format!("{per_sec:.0}")
    }
}

/// `0.973x`.
pub fn ratio(r: f64) -> String {
    format!("{r:.3}x")
}

/// The table of a scenario's cases: per case, each variant's median ns/op and rate, then
/// each paired comparison. `rate_name` heads the rate column (`ops/s`, `IOPS`).
pub fn cases_table(cases: &[CaseResult], rate_name: &str) -> String {
    let width = cases
        .iter()
        .flat_map(|c| {
            c.variants
                .iter()
                .map(|v| v.name.len())
                .chain(c.ratios.iter().map(|r| r.a.len() + r.b.len() + 3))
        })
        .max()
        .unwrap_or(8)
        .max(8);
    let label_width = cases
        .iter()
        .map(|c| c.label.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:<label_width$}  {:<width$}  {:>9}  {:>9}",
        "case", "variant", "ns/op", rate_name
    );
    for case in cases {
        for (i, v) in case.variants.iter().enumerate() {
            let label = if i == 0 { case.label.as_str() } else { "" };
            let _ = writeln!(
                out,
                "  {label:<label_width$}  {:<width$}  {:>9.1}  {:>9}",
                v.name,
                v.median_ns,
                rate(v.ops_per_sec())
            );
        }
        for r in &case.ratios {
            let _ = writeln!(
                out,
                "  {:<label_width$}  {:<width$}  {:>9}  (median of {} paired rounds; range {:.3}-{:.3})",
                "",
                format!("{} / {}", r.a, r.b),
                ratio(r.median),
                r.per_round.len(),
                r.min,
                r.max
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_use_suffixes() {
        assert_eq!(rate(24_300_000.0), "24.30M");
        assert_eq!(rate(812_400.0), "812.4k");
        assert_eq!(rate(950.0), "950");
        assert_eq!(ratio(0.97251), "0.973x");
    }
}
