//! Formatting: compact tables of [`CaseResult`]s.

use std::fmt::Write as _;

use crate::method::CaseResult;

/// One line of the tour's closing table: a case, each side's median rate and the median of
/// the paired ratios xuring / io-uring.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// The scenario.
    pub scenario: String,
    /// The case's parameters.
    pub params: String,
    /// xuring's median operations per second.
    pub xuring: f64,
    /// The `io-uring` crate's.
    pub raw: f64,
    /// The median of the paired ratios (above 1: xuring faster).
    pub ratio: f64,
}

/// The row comparing variants `a` (xuring) and `b` (io-uring) of `case`, if it has both.
pub fn summary_row(
    scenario: &str,
    params: impl Into<String>,
    case: &CaseResult,
    a: &str,
    b: &str,
) -> Option<SummaryRow> {
    Some(SummaryRow {
        scenario: scenario.to_owned(),
        params: params.into(),
        xuring: case.variant(a)?.ops_per_sec(),
        raw: case.variant(b)?.ops_per_sec(),
        ratio: case.ratio(a, b)?.median,
    })
}

/// The tour's closing table.
pub fn summary_table(rows: &[SummaryRow]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    let sw = rows
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let pw = rows
        .iter()
        .map(|r| r.params.len())
        .max()
        .unwrap_or(0)
        .max(10);
    let _ = writeln!(
        out,
        "  {:<sw$}  {:<pw$}  {:>9}  {:>9}  {:>7}",
        "scenario", "parameters", "xuring", "io-uring", "ratio"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "  {:<sw$}  {:<pw$}  {:>9}  {:>9}  {:>7}",
            r.scenario,
            r.params,
            rate(r.xuring),
            rate(r.raw),
            ratio(r.ratio)
        );
    }
    let _ = writeln!(
        out,
        "  (ops/s at each side's median; ratio: median of paired rounds, xuring / io-uring)"
    );
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
