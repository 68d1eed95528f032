//! The subcommands (`noop`, `randread`, `echo`, `echo-server`, `msgring`, `timers`): one
//! scenario with the parameters given on the command line, on one implementation
//! (`--impl xuring|io-uring`) or on both in turn, one [`Record`] per run.
//!
//! Where the tour ([`crate::scenarios`]) calibrates and pairs many short runs to get ratios on
//! a noisy machine, a subcommand does exactly what it is told (`--ops`, `--secs`, ...) and
//! reports what it measured, as a line of text or, with `--json`, one JSON object per line
//! for scripts and external comparisons. With both implementations, runs alternate
//! (xuring first in even runs, io-uring first in odd ones) and the text output closes with
//! each side's median and the median of the per-pair ratios.
//!
//! A run is driven by [`drive`]: a warm-up, then the scenario's unit of work ("chunk": a
//! batch, a wave, a round trip) again and again until the operation count or the time is
//! reached, each chunk timed into a [`Histogram`] that never allocates. Where a chunk is a
//! meaningful latency (a round trip, a wave of echoes), the record carries its p50 and p99.

pub mod echo;
pub mod echo_server;
pub mod msgring;
pub mod noop;
pub mod randread;
pub mod timers;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use xuring_core::Executor;

use crate::alloc_count;
use crate::error::BenchError;
use crate::json::JsonLine;
use crate::latency::Histogram;
use crate::method::median;
use crate::report::{rate, ratio};

/// Which implementation runs a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// xuring's `Ring`, tasks and callbacks, on the executor a default ring gets.
    Xuring,
    /// The same, on this executor.
    XuringOn(Executor),
    /// The same work on the raw `io-uring` crate.
    IoUring,
    /// tokio (`current_thread`): the `echo` subcommand only.
    Tokio,
}

impl Impl {
    /// The pair a subcommand compares unless `--impl` says otherwise.
    pub const BOTH: [Impl; 2] = [Impl::Xuring, Impl::IoUring];

    /// Its name on the command line and in records.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Xuring => "xuring",
            Impl::XuringOn(Executor::Epoll) => "xuring-epoll",
            Impl::XuringOn(Executor::IoUring) => "xuring-io_uring",
            Impl::IoUring => "io-uring",
            Impl::Tokio => "tokio",
        }
    }

    /// The implementation called `name`.
    pub fn parse(name: &str) -> Result<Impl, String> {
        match name {
            "xuring" => Ok(Impl::Xuring),
            "xuring-epoll" => Ok(Impl::XuringOn(Executor::Epoll)),
            "xuring-io_uring" | "xuring-io-uring" | "xuring-uring" => {
                Ok(Impl::XuringOn(Executor::IoUring))
            }
            "io-uring" | "io_uring" | "raw" => Ok(Impl::IoUring),
            "tokio" => Ok(Impl::Tokio),
            _ => Err(format!(
                "--impl takes xuring, xuring-epoll, xuring-io_uring, io-uring or tokio (or two \
                 of them, comma-separated), not {name:?}"
            )),
        }
    }

    /// `--impl`'s value: one implementation, or two separated by a comma.
    pub fn parse_list(value: &str) -> Result<Vec<Impl>, String> {
        let list = value
            .split(',')
            .map(|name| Impl::parse(name.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        match list.as_slice() {
            [_] => Ok(list),
            [a, b] if a != b => Ok(list),
            _ => Err(format!(
                "--impl takes one implementation or two different ones, not {value:?}"
            )),
        }
    }

    /// For a xuring side, the executor it asks for (`Some(None)`: the default choice).
    pub fn xuring(self) -> Option<Option<Executor>> {
        match self {
            Impl::Xuring => Some(None),
            Impl::XuringOn(executor) => Some(Some(executor)),
            Impl::IoUring | Impl::Tokio => None,
        }
    }

    /// The executor its rings run on, for a xuring side that can run here.
    pub fn executor(self) -> Option<Executor> {
        match self.xuring()? {
            Some(executor) => Some(executor),
            None => crate::backend::backends().executor(),
        }
    }

    /// Whether it can run here; why not if it cannot.
    pub fn available(self) -> Result<(), String> {
        let found = crate::backend::backends();
        match self {
            Impl::Xuring => found.default.as_ref().map(drop).map_err(Clone::clone),
            Impl::XuringOn(Executor::IoUring) => found.io_uring.clone(),
            Impl::XuringOn(Executor::Epoll) | Impl::Tokio => Ok(()),
            Impl::IoUring => found.raw.clone(),
        }
    }

    /// Its name with the executor of a xuring side: `xuring on epoll`.
    pub fn label(self) -> String {
        match (self.xuring(), self.executor()) {
            (Some(_), Some(executor)) => format!("xuring on {executor}"),
            _ => self.name().to_owned(),
        }
    }
}

/// The error of a subcommand asked to run an implementation it has no side for.
pub fn no_side(imp: Impl, scenario: &str) -> BenchError {
    let hint = match imp {
        Impl::XuringOn(_) => {
            " (its xuring side runs on the default executor: set XURING_BACKEND \
                              to choose)"
        }
        Impl::Tokio => " (tokio runs in echo only)",
        _ => "",
    };
    BenchError::Other(format!("{scenario} has no {} side{hint}", imp.name()))
}

/// When a run stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After this many operations.
    Ops(u64),
    /// After the first chunk that ends past this much time.
    Time(Duration),
}

/// A parameter's value in a record.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    /// A count or size.
    Int(u64),
    /// A measure (seconds).
    Num(f64),
    /// A name or path.
    Str(String),
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Record {
    /// Who ran it.
    pub imp: Impl,
    /// The executor of a xuring side's rings.
    pub executor: Option<Executor>,
    /// The subcommand.
    pub scenario: &'static str,
    /// Its parameters, in command-line order.
    pub params: Vec<(&'static str, Param)>,
    /// Operations completed in the measured part.
    pub ops: u64,
    /// How long the measured part took.
    pub elapsed: Duration,
    /// Per-chunk times, where a chunk is a latency worth reporting.
    pub latency: Option<Histogram>,
    /// What one latency sample is ("round trip", ...).
    pub latency_unit: &'static str,
    /// Heap allocations on the measuring thread during the measured part, where the work is
    /// on that thread.
    pub allocations: Option<u64>,
    /// Anything else worth a word (setup flags, buffer kind).
    pub note: String,
}

impl Record {
    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ops as f64 / secs
        } else {
            0.0
        }
    }

    /// The median latency in microseconds.
    pub fn p50_us(&self) -> Option<f64> {
        self.latency.as_ref().and_then(|h| h.quantile_us(0.5))
    }

    /// The 99th percentile latency in microseconds.
    pub fn p99_us(&self) -> Option<f64> {
        self.latency.as_ref().and_then(|h| h.quantile_us(0.99))
    }

    /// Allocations per operation.
    pub fn allocs_per_op(&self) -> Option<f64> {
        self.allocations.map(|a| {
            if self.ops > 0 {
                a as f64 / self.ops as f64
            } else {
                0.0
            }
        })
    }

    /// The record as one JSON object.
    pub fn json(&self) -> String {
        let mut line = JsonLine::new()
            .str("impl", self.imp.name())
            .str("scenario", self.scenario);
        if let Some(executor) = self.executor {
            line = line.str("executor", executor.name());
        }
        for (key, value) in &self.params {
            line = match value {
                Param::Int(n) => line.int(key, *n),
                Param::Num(x) => line.num(key, *x),
                Param::Str(s) => line.str(key, s),
            };
        }
        line = line
            .int("ops", self.ops)
            .num("elapsed_secs", self.elapsed.as_secs_f64())
            .num("ops_per_sec", self.ops_per_sec());
        if let (Some(p50), Some(p99)) = (self.p50_us(), self.p99_us()) {
            line = line
                .num("p50_us", p50)
                .num("p99_us", p99)
                .str("latency_of", self.latency_unit);
        }
        if let Some(per_op) = self.allocs_per_op() {
            line = line.num("allocs_per_op", per_op);
        }
        if !self.note.is_empty() {
            line = line.str("note", &self.note);
        }
        line.finish()
    }

    /// Who ran it, with the executor of a xuring side: `xuring on epoll`.
    pub fn label(&self) -> String {
        match self.executor {
            Some(executor) if self.imp.xuring().is_some() => format!("xuring on {executor}"),
            _ => self.imp.name().to_owned(),
        }
    }

    /// The record as one line of text.
    pub fn text(&self) -> String {
        let mut out = format!("{:<16} {}", self.label(), self.scenario);
        for (key, value) in &self.params {
            let _ = match value {
                Param::Int(n) => write!(out, " {key}={n}"),
                Param::Num(x) => write!(out, " {key}={x}"),
                Param::Str(s) => write!(out, " {key}={s}"),
            };
        }
        let _ = write!(
            out,
            ": {} ops in {:.3} s, {} ops/s",
            self.ops,
            self.elapsed.as_secs_f64(),
            rate(self.ops_per_sec())
        );
        if let (Some(p50), Some(p99)) = (self.p50_us(), self.p99_us()) {
            let _ = write!(
                out,
                ", {} p50 {p50:.1} us p99 {p99:.1} us",
                self.latency_unit
            );
        }
        if let Some(per_op) = self.allocs_per_op() {
            let _ = write!(out, ", {per_op:.3} allocs/op");
        }
        if !self.note.is_empty() {
            let _ = write!(out, " ({})", self.note);
        }
        out
    }
}

/// Whether `secs` is a usable run time: above zero and below a year (so that it converts to
/// a `Duration`).
pub fn valid_secs(secs: f64) -> bool {
    secs.is_finite() && secs > 0.0 && secs < 3.2e7
}

/// What [`drive`] measured.
#[derive(Debug)]
pub struct Measured {
    /// Operations completed after the warm-up.
    pub ops: u64,
    /// Their time.
    pub elapsed: Duration,
    /// The time of every whole chunk.
    pub chunks: Histogram,
    /// Heap allocations on this thread while measuring.
    pub allocations: u64,
}

/// Runs `run` for `warmup` operations, then `chunk` operations at a time until `stop`, timing
/// each chunk. `run(n)` must return how many of its `n` operations completed.
pub fn drive(
    run: &mut dyn FnMut(u64) -> Result<u64, BenchError>,
    chunk: u64,
    warmup: u64,
    stop: Stop,
) -> Result<Measured, BenchError> {
    let chunk = chunk.max(1);
    if warmup > 0 {
        let done = run(warmup)?;
        crate::error::check_complete("warm-up", warmup, done)?;
    }
    let mut chunks = Histogram::new();
    let mut ops = 0u64;
    let allocations_before = alloc_count::allocations();
    let start = Instant::now();
    let mut last = start;
    loop {
        let n = match stop {
            Stop::Ops(total) if ops >= total => break,
            Stop::Ops(total) => chunk.min(total - ops),
            Stop::Time(limit) if last - start >= limit => break,
            Stop::Time(_) => chunk,
        };
        let done = run(n)?;
        crate::error::check_complete("run", n, done)?;
        let now = Instant::now();
        if n == chunk {
            chunks.record(now - last);
        }
        last = now;
        ops += n;
    }
    Ok(Measured {
        ops,
        elapsed: last - start,
        chunks,
        allocations: alloc_count::allocations() - allocations_before,
    })
}

/// A scenario that can run on either implementation.
pub trait Bench {
    /// One run on `imp`.
    fn run(&mut self, imp: Impl) -> Result<Record, BenchError>;

    /// Its name on the command line.
    fn name(&self) -> &'static str;

    /// Whether it has a side for `imp` (every subcommand has xuring's, on either executor,
    /// and the raw `io-uring` crate's; `echo` has tokio's too).
    fn has_side(&self, imp: Impl) -> bool {
        imp != Impl::Tokio
    }
}

/// The implementations of each of `runs` runs: the one side every time, or both of a pair,
/// alternating which goes first.
pub fn schedule(sides: &[Impl], runs: u32) -> Vec<Impl> {
    let mut order = Vec::new();
    for run in 0..runs.max(1) {
        if run % 2 == 0 {
            order.extend(sides.iter().copied());
        } else {
            order.extend(sides.iter().rev().copied());
        }
    }
    order
}

/// The sides to run of those asked for (`None`: [`Impl::BOTH`]): those `bench` has and this
/// machine can run. A side that cannot run here is left out with a note, which is returned;
/// if none is left, or `bench` has no such side, the error says why.
pub fn sides(
    bench: &dyn Bench,
    asked: Option<&[Impl]>,
) -> Result<(Vec<Impl>, Vec<String>), BenchError> {
    let asked = asked.unwrap_or(&Impl::BOTH);
    if let Some(imp) = asked.iter().find(|imp| !bench.has_side(**imp)) {
        return Err(no_side(*imp, bench.name()));
    }
    let mut run = Vec::new();
    let mut notes = Vec::new();
    for &imp in asked {
        match imp.available() {
            Ok(()) => run.push(imp),
            Err(why) => notes.push(format!("{}: unavailable here ({why})", imp.name())),
        }
    }
    if run.is_empty() {
        return Err(BenchError::Other(notes.join("; ")));
    }
    if !notes.is_empty() {
        let alone: Vec<String> = run.iter().map(|imp| imp.label()).collect();
        notes.push(format!("running {} alone", alone.join(", ")));
    }
    Ok((run, notes))
}

/// Runs `bench` on the sides asked for (`None`: xuring and the raw `io-uring` crate), as
/// [`schedule`] orders them, printing each record as it comes (JSON if `json`) and, in text
/// mode with two sides, the closing comparison. A side that cannot run here is left out,
/// with a line that says so (on standard error with `json`).
pub fn run_all(
    bench: &mut dyn Bench,
    asked: Option<&[Impl]>,
    runs: u32,
    json: bool,
) -> Result<(), BenchError> {
    let (sides, notes) = sides(bench, asked)?;
    if !notes.is_empty() {
        let line = notes.join("; ");
        if json {
            eprintln!("xuring-bench: {line}");
        } else {
            println!("{line}");
        }
    }
    let mut records = Vec::new();
    for imp in schedule(&sides, runs) {
        let mut record = bench.run(imp)?;
        record.executor = imp.executor();
        if json {
            println!("{}", record.json());
        } else {
            println!("{}", record.text());
        }
        records.push(record);
    }
    if let (false, [a, b]) = (json, sides.as_slice()) {
        print!("{}", comparison(&records, *a, *b));
    }
    Ok(())
}

/// Each side's median rate and the median of the per-pair ratios `a` / `b`.
pub fn comparison(records: &[Record], a: Impl, b: Impl) -> String {
    let rates = |imp: Impl| -> Vec<f64> {
        records
            .iter()
            .filter(|r| r.imp == imp)
            .map(Record::ops_per_sec)
            .collect()
    };
    let (x, y) = (rates(a), rates(b));
    let ratios: Vec<f64> = x
        .iter()
        .zip(&y)
        .filter(|(_, b)| **b > 0.0)
        .map(|(a, b)| a / b)
        .collect();
    if ratios.is_empty() {
        return String::new();
    }
    let label = |imp: Impl| {
        records
            .iter()
            .find(|r| r.imp == imp)
            .map_or_else(|| imp.label(), Record::label)
    };
    let (la, lb) = (label(a), label(b));
    format!(
        "median of {} runs each: {la} {} ops/s, {lb} {} ops/s; {la} / {lb} = {} \
         (median of {} paired ratios, range {:.3}-{:.3}; above 1: {la} is faster)\n",
        x.len().min(y.len()),
        rate(median(&x)),
        rate(median(&y)),
        ratio(median(&ratios)),
        ratios.len(),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    )
}

/// Builds the record of a run from what [`drive`] measured.
pub fn record(
    imp: Impl,
    scenario: &'static str,
    params: Vec<(&'static str, Param)>,
    measured: Measured,
    latency_unit: Option<&'static str>,
    same_thread: bool,
) -> Record {
    Record {
        imp,
        executor: imp.executor(),
        scenario,
        params,
        ops: measured.ops,
        elapsed: measured.elapsed,
        latency: latency_unit.map(|_| measured.chunks),
        latency_unit: latency_unit.unwrap_or(""),
        allocations: same_thread.then_some(measured.allocations),
        note: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_alternate_which_side_goes_first() {
        use Impl::*;
        assert_eq!(
            schedule(&Impl::BOTH, 3),
            [Xuring, IoUring, IoUring, Xuring, Xuring, IoUring]
        );
        assert_eq!(schedule(&[IoUring], 2), [IoUring, IoUring]);
        assert_eq!(schedule(&[Xuring], 0), [Xuring]);
        let pair = [XuringOn(Executor::Epoll), Tokio];
        assert_eq!(schedule(&pair, 2), [pair[0], Tokio, Tokio, pair[0]]);
    }

    #[test]
    fn drive_stops_at_the_count_and_times_whole_chunks() {
        let mut calls = Vec::new();
        let mut run = |n: u64| {
            calls.push(n);
            Ok(n)
        };
        let m = drive(&mut run, 4, 3, Stop::Ops(10)).expect("drive");
        assert_eq!(m.ops, 10);
        assert_eq!(calls, [3, 4, 4, 2]);
        assert_eq!(
            m.chunks.len(),
            2,
            "the partial chunk is not a latency sample"
        );
    }

    #[test]
    fn drive_reports_a_short_run() {
        let mut run = |n: u64| Ok(n - 1);
        assert!(drive(&mut run, 4, 0, Stop::Ops(8)).is_err());
    }

    #[test]
    fn drive_runs_for_the_time_asked() {
        let mut run = |n: u64| {
            std::thread::sleep(Duration::from_millis(1));
            Ok(n)
        };
        let m = drive(&mut run, 2, 0, Stop::Time(Duration::from_millis(20))).expect("drive");
        assert!(m.elapsed >= Duration::from_millis(20));
        assert_eq!(m.ops % 2, 0);
        assert_eq!(m.chunks.len(), m.ops / 2);
    }

    #[test]
    fn records_speak_json_and_text() {
        let mut latency = Histogram::new();
        latency.record(Duration::from_micros(10));
        let r = Record {
            imp: Impl::IoUring,
            executor: None,
            scenario: "msgring",
            params: vec![("round_trips", Param::Int(1000))],
            ops: 1000,
            elapsed: Duration::from_millis(10),
            latency: Some(latency),
            latency_unit: "round trip",
            allocations: Some(0),
            note: String::new(),
        };
        let json = r.json();
        assert!(json.starts_with(
            r#"{"impl":"io-uring","scenario":"msgring","round_trips":1000,"ops":1000,"#
        ));
        assert!(json.contains(r#""ops_per_sec":100000,"#), "{json}");
        assert!(json.contains(r#""p50_us":"#) && json.contains(r#""p99_us":"#));
        assert!(json.contains(r#""allocs_per_op":0"#));
        let text = r.text();
        assert!(
            text.contains("round_trips=1000") && text.contains("100.0k ops/s"),
            "{text}"
        );
    }

    #[test]
    fn impl_lists_parse() {
        assert_eq!(
            Impl::parse_list("xuring-epoll,tokio"),
            Ok(vec![Impl::XuringOn(Executor::Epoll), Impl::Tokio])
        );
        assert_eq!(Impl::parse_list("io-uring"), Ok(vec![Impl::IoUring]));
        assert!(Impl::parse_list("tokio,tokio").is_err());
        assert!(Impl::parse_list("xuring,io-uring,tokio").is_err());
        assert!(Impl::parse_list("monoio").is_err());
        assert_eq!(Impl::XuringOn(Executor::IoUring).name(), "xuring-io_uring");
    }

    #[test]
    fn the_comparison_pairs_runs() {
        let r = |imp, ms| Record {
            imp,
            executor: None,
            scenario: "noop",
            params: Vec::new(),
            ops: 1000,
            elapsed: Duration::from_millis(ms),
            latency: None,
            latency_unit: "",
            allocations: None,
            note: String::new(),
        };
        let text = comparison(
            &[
                r(Impl::Xuring, 10),
                r(Impl::IoUring, 5),
                r(Impl::IoUring, 10),
                r(Impl::Xuring, 10),
            ],
            Impl::Xuring,
            Impl::IoUring,
        );
        // Pairs: 100k/200k = 0.5 and 100k/100k = 1.0; the median of two is their mean.
        assert!(text.contains("= 0.750x"), "{text}");
    }
}
