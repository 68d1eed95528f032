//! `Config`: how long and how hard each scenario runs.

use std::time::Duration;

/// The knobs of a tour. [`Config::full`] is the default run (about 30 s on 2 cores, 8 s more
/// where fio is installed;
/// `--rounds 20` doubles it for steadier ratios),
/// [`Config::quick`] a few-second smoke run, [`Config::tiny`] what the tests use.
#[derive(Clone, Debug)]
pub struct Config {
    /// Paired rounds per case (each round runs every variant once, in turn).
    pub rounds: u32,
    /// How long one run of one variant should take; the operation count of a case is
    /// calibrated to it.
    pub target_run: Duration,
    /// A fixed operation count per run instead of calibrating (the tests use this).
    pub fixed_ops: Option<u64>,
    /// Size of the page-cached file that `read4k` reads.
    pub file_bytes: u64,
    /// Queue depths of `read4k`.
    pub read_depths: Vec<u32>,
    /// Batch sizes of `noop`.
    pub noop_batches: Vec<u32>,
    /// Run `fio` (if installed) for this long per queue depth; `None` skips it.
    pub fio_runtime: Option<Duration>,
    /// Operations measured per kind by `alloc`, after as many of warm-up.
    pub alloc_ops: u64,
    /// How long one run of a two-thread scenario (`msgring`, `echo`) should take: shorter
    /// than `target_run`, as they have more variants and cases, and a round trip between
    /// threads is long enough that a run of this length still holds thousands of them.
    pub pair_target_run: Duration,
    /// Connection counts of `echo`.
    pub echo_conns: Vec<u32>,
    /// Message sizes of `echo`, in bytes.
    pub echo_sizes: Vec<usize>,
    /// Timers per wave of `timers`.
    pub timer_counts: Vec<u32>,
    /// Whether the raw `io-uring` crate's baselines run (they cannot where io_uring is
    /// blocked: then each scenario runs xuring's side alone).
    pub raw: bool,
    /// Whether tokio's echo server runs next to xuring's in `echo`.
    pub tokio: bool,
    /// A label for the report.
    pub mode: &'static str,
}

impl Config {
    /// The default tour.
    pub fn full() -> Config {
        Config {
            rounds: 10,
            target_run: Duration::from_millis(60),
            fixed_ops: None,
            file_bytes: 128 << 20,
            read_depths: vec![32, 128],
            noop_batches: vec![1, 16, 64, 256],
            fio_runtime: Some(Duration::from_secs(2)),
            alloc_ops: 20_000,
            pair_target_run: Duration::from_millis(40),
            echo_conns: vec![1, 16, 128],
            echo_sizes: vec![64, 4096],
            timer_counts: vec![1, 256],
            raw: crate::backend::raw_available(),
            tokio: true,
            mode: "full",
        }
    }

    /// A few-second smoke run of every scenario.
    pub fn quick() -> Config {
        Config {
            rounds: 3,
            target_run: Duration::from_millis(20),
            file_bytes: 16 << 20,
            fio_runtime: None,
            alloc_ops: 2_000,
            pair_target_run: Duration::from_millis(10),
            mode: "quick",
            ..Config::full()
        }
    }

    /// The quick path with tiny, fixed counts, for tests: checks behaviour, not speed.
    pub fn tiny() -> Config {
        Config {
            rounds: 2,
            fixed_ops: Some(512),
            file_bytes: 1 << 20,
            alloc_ops: 300,
            mode: "tiny",
            ..Config::quick()
        }
    }
}
