//! `read4k`: 4 KiB random reads from a page-cached file at queue depth 32 and 128.
//!
//! Every side keeps `qd` reads in flight and reissues a read into the buffer of each
//! completion, at the next offset of one shared pseudo-random sequence, until the run's count
//! is done. xuring runs it twice: with the ring's registered [`BufferPool`]
//! (`READ_FIXED`), and with plain `Vec<u8>` buffers taken back with `Task::take_buf`
//! (`READ`); each is paired with the raw `io-uring` crate doing the same (`READ_FIXED` on
//! registered pages, `READ` on plain pages). `fio --ioengine=io_uring` with the same
//! parameters runs afterwards if it is installed.
//!
//! [`BufferPool`]: xuring_core::BufferPool

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xuring_core::Executor;

use crate::Config;
use crate::backend::RAW_NAME;
use crate::datafile::DataFile;
use crate::error::BenchError;
use crate::method::{CaseResult, Variant, calibrate, measure};
use crate::raw::RawReader;
use crate::report::{cases_table, rate, ratio, summary_row};
use crate::scenarios::{Output, raw_note};
use crate::xuring_ops::{BufSource, IoKind, XuringIo};

/// How many offsets the shared random sequence has before it repeats.
pub const OFFSETS: usize = 1 << 16;

/// What fio did for one queue depth.
#[derive(Clone, Debug, PartialEq)]
pub enum Fio {
    /// Not run; the text says why.
    Skipped(String),
    /// Its read IOPS with plain buffers and with `--fixedbufs`.
    Ran {
        /// Plain buffers (`READ`).
        plain: f64,
        /// `--fixedbufs` (`READ_FIXED`).
        fixed: f64,
    },
    /// It ran and failed.
    Failed(String),
}

/// One queue depth's results.
#[derive(Clone, Debug)]
pub struct DepthResult {
    /// The queue depth.
    pub qd: u32,
    /// The paired measurements.
    pub case: CaseResult,
    /// Whether xuring's pool was registered (so its reads were `READ_FIXED`).
    pub pool_fixed: bool,
    /// fio's numbers.
    pub fio: Fio,
    /// Where both executors ran: the names of the epoll variant and of the io_uring one,
    /// and the executor of the default rings (the other variants').
    pub executors: Option<(String, String, Executor)>,
}

/// What `read4k` measured.
#[derive(Clone, Debug)]
pub struct Read4kReport {
    /// The file's size.
    pub file_bytes: u64,
    /// Per queue depth.
    pub depths: Vec<DepthResult>,
}

/// Variant names, in run order.
fn names(pool_fixed: bool) -> [&'static str; 4] {
    if pool_fixed {
        [
            "xuring pool (READ_FIXED)",
            "raw READ_FIXED",
            "xuring Vec (READ)",
            "raw READ",
        ]
    } else {
        [
            "xuring pool (READ, unregistered)",
            "raw READ (pages)",
            "xuring Vec (READ)",
            "raw READ",
        ]
    }
}

/// The executor to run a second xuring pool variant on, next to the default one, so that the
/// two executors are compared on the same reads: epoll where the default is io_uring, and
/// io_uring where epoll was chosen (`XURING_BACKEND`) although io_uring works; none where
/// io_uring is blocked.
pub fn other_executor() -> Option<Executor> {
    let found = crate::backend::backends();
    match found.executor()? {
        Executor::IoUring => Some(Executor::Epoll),
        Executor::Epoll if found.can_run(Executor::IoUring) => Some(Executor::IoUring),
        Executor::Epoll => None,
    }
}

/// The name of the xuring pool variant on `executor`.
pub fn on_executor(executor: Executor) -> String {
    format!("xuring pool on {executor}")
}

/// Creates and warms the file, then measures each queue depth.
pub fn run(config: &Config) -> Result<Read4kReport, BenchError> {
    let file = DataFile::create(config.file_bytes)?;
    let offsets = file.random_offsets(OFFSETS, 0x4b1d);
    let mut depths = Vec::new();
    let default = crate::backend::backends().executor();
    for &qd in &config.read_depths {
        let mut pool = XuringIo::new(
            file.fd(),
            offsets.clone(),
            qd,
            IoKind::Read,
            BufSource::Pool,
        )?;
        let pool_fixed = pool.fixed();
        let setup = pool.features().setup;
        let mut vec = XuringIo::new(file.fd(), offsets.clone(), qd, IoKind::Read, BufSource::Vec)?;
        let (mut raw_fixed, mut raw_plain) = if config.raw {
            (
                Some(RawReader::new(
                    file.fd(),
                    offsets.clone(),
                    qd,
                    setup,
                    pool_fixed,
                )?),
                Some(RawReader::new(
                    file.fd(),
                    offsets.clone(),
                    qd,
                    setup,
                    false,
                )?),
            )
        } else {
            (None, None)
        };
        let other = other_executor();
        let mut alt = match other {
            Some(executor) => Some(XuringIo::on(
                Some(executor),
                file.fd(),
                offsets.clone(),
                qd,
                IoKind::Read,
                BufSource::Pool,
            )?),
            None => None,
        };
        let [n0, n1, n2, n3] = names(pool_fixed);
        let mut variants = vec![Variant::new(n0, |n| pool.run(n))];
        let mut comparisons = Vec::new();
        if let Some(raw) = raw_fixed.as_mut() {
            variants.push(Variant::new(n1, move |n| raw.run(n)));
            comparisons.push((0, 1));
        }
        variants.push(Variant::new(n2, |n| vec.run(n)));
        let vec_at = variants.len() - 1;
        if let Some(raw) = raw_plain.as_mut() {
            variants.push(Variant::new(n3, move |n| raw.run(n)));
            comparisons.push((vec_at, vec_at + 1));
        }
        let mut executors = None;
        if let (Some(executor), Some(alt), Some(default)) = (other, alt.as_mut(), default) {
            variants.push(Variant::new(on_executor(executor), move |n| alt.run(n)));
            let alt_at = variants.len() - 1;
            // Always epoll over io_uring.
            let (epoll, uring) = if executor == Executor::Epoll {
                (alt_at, 0)
            } else {
                (0, alt_at)
            };
            comparisons.push((epoll, uring));
            executors = Some((
                variants[epoll].name.clone(),
                variants[uring].name.clone(),
                default,
            ));
        }
        let ops = calibrate(&mut variants[0], config, u64::from(qd))?;
        let case = measure(
            format!("qd={qd}"),
            &mut variants,
            &comparisons,
            config.rounds,
            ops,
        )?;
        drop(variants);
        let fio = match config.fio_runtime {
            None => Fio::Skipped(format!("not run in {} mode", config.mode)),
            Some(_) if !config.raw => Fio::Skipped("io_uring is blocked here".to_owned()),
            Some(runtime) => run_fio(file.path(), file.len(), qd, runtime),
        };
        depths.push(DepthResult {
            qd,
            case,
            pool_fixed,
            fio,
            executors,
        });
    }
    Ok(Read4kReport {
        file_bytes: file.len(),
        depths,
    })
}

/// Where `fio` is on `PATH`, like `command -v fio`.
pub fn fio_path() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("fio"))
        .find(|candidate| candidate.is_file())
}

/// Runs fio twice (plain buffers, then `--fixedbufs`) on the same file, queue depth, block
/// size and pattern, batching submissions and completions up to the queue depth and with
/// `--gtod_reduce` (its fastest settings on this machine: fio's defaults submit one I/O per
/// system call); it inherits this process's CPU affinity.
pub fn run_fio(path: &Path, len: u64, qd: u32, runtime: Duration) -> Fio {
    let Some(fio) = fio_path() else {
        return Fio::Skipped(
            "fio is not installed (`apt-get install fio` to compare with it)".to_owned(),
        );
    };
    let one = |fixed: bool| -> Result<f64, String> {
        let mut cmd = Command::new(&fio);
        cmd.args([
            "--name=xuring-read4k",
            "--ioengine=io_uring",
            "--rw=randread",
            "--bs=4k",
            "--direct=0",
            // Keep the page cache: fio drops the file's cached pages by default.
            "--invalidate=0",
            "--norandommap=1",
            "--randrepeat=0",
            "--time_based=1",
            "--ramp_time=1",
            "--output-format=terse",
            "--terse-version=3",
        ])
        .arg(format!("--filename={}", path.display()))
        .arg(format!("--size={len}"))
        .arg(format!("--iodepth={qd}"))
        // fio's fastest settings here, closest to the loops above: submit everything queued
        // in one call and reap up to a queue's worth, without per-I/O clock reads.
        .arg(format!("--iodepth_batch_submit={qd}"))
        .arg(format!("--iodepth_batch_complete_max={qd}"))
        .arg("--gtod_reduce=1")
        .arg(format!("--runtime={}", runtime.as_secs().max(1)));
        if fixed {
            cmd.arg("--fixedbufs=1");
        }
        let out = cmd
            .output()
            .map_err(|e| format!("could not start fio: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "fio exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        parse_terse_read_iops(&String::from_utf8_lossy(&out.stdout))
            .ok_or_else(|| "could not read fio's terse output".to_owned())
    };
    match (one(false), one(true)) {
        (Ok(plain), Ok(fixed)) => Fio::Ran { plain, fixed },
        (Err(e), _) | (_, Err(e)) => Fio::Failed(e),
    }
}

/// The read IOPS of fio's terse (version 3) output: field 8 of the job's line.
pub fn parse_terse_read_iops(output: &str) -> Option<f64> {
    output
        .lines()
        .find(|line| line.starts_with("3;"))
        .and_then(|line| line.split(';').nth(7))
        .and_then(|field| field.trim().parse().ok())
}

impl Read4kReport {
    /// The report's text and summary lines.
    pub fn output(&self) -> Output {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "== read4k: 4 KiB random reads, page-cached file of {} MiB, buffered (no O_DIRECT); \
             a completion reissues its buffer at the next offset",
            self.file_bytes >> 20
        );
        if let Some(first) = self.depths.first() {
            let _ = writeln!(
                text,
                "  {} rounds of the four variants in turn, reversed every other round; ops per run: {}",
                first.case.rounds,
                self.depths
                    .iter()
                    .map(|d| format!("{}@qd{}", d.case.ops_per_run, d.qd))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let cases: Vec<CaseResult> = self.depths.iter().map(|d| d.case.clone()).collect();
        text.push_str(&cases_table(&cases, "IOPS"));
        let mut summary = Vec::new();
        for d in &self.depths {
            let [pool, raw_fixed, vec, raw] = names(d.pool_fixed);
            if let Some(r) = d.case.ratio(pool, raw_fixed) {
                summary.push(format!(
                    "read4k qd {}: {pool} / {raw_fixed} = {}",
                    d.qd,
                    ratio(r.median)
                ));
            }
            if let Some(r) = d.case.ratio(vec, raw) {
                summary.push(format!(
                    "read4k qd {}: {vec} / {raw} = {}",
                    d.qd,
                    ratio(r.median)
                ));
            }
            if let Some((epoll, uring, _)) = &d.executors {
                if let Some(r) = d.case.ratio(epoll, uring) {
                    let line = format!(
                        "read4k qd {}: xuring on epoll / on io_uring = {} (range {:.3}-{:.3}; \
                         on epoll each read is a pread(2) run in the ring's thread)",
                        d.qd,
                        ratio(r.median),
                        r.min,
                        r.max
                    );
                    let _ = writeln!(text, "  {line}");
                    summary.push(line);
                }
            }
            match &d.fio {
                Fio::Skipped(why) => {
                    let _ = writeln!(text, "  fio qd={}: skipped: {why}", d.qd);
                }
                Fio::Failed(why) => {
                    let _ = writeln!(text, "  fio qd={}: failed: {why}", d.qd);
                }
                Fio::Ran { plain, fixed } => {
                    let x_pool = d.case.variant(pool).map_or(0.0, |v| v.ops_per_sec());
                    let x_vec = d.case.variant(vec).map_or(0.0, |v| v.ops_per_sec());
                    let line = format!(
                        "read4k qd {}: fio {} IOPS plain, {} --fixedbufs (batched, gtod_reduce); \
                         xuring Vec/fio = {}, xuring pool/fio fixedbufs = {} (unpaired: fio ran \
                         after the rounds)",
                        d.qd,
                        rate(*plain),
                        rate(*fixed),
                        ratio(x_vec / plain),
                        ratio(x_pool / fixed)
                    );
                    let _ = writeln!(text, "  {line}");
                    summary.push(line);
                }
            }
        }
        let first = self.depths.first();
        if let Some(note) = first.and_then(|d| raw_note(Some(&d.case), names(d.pool_fixed)[1])) {
            let _ = writeln!(text, "  {note}");
        }
        let mut rows = Vec::new();
        for d in &self.depths {
            let [a, b, _, _] = names(d.pool_fixed);
            let params = format!("4 KiB, QD {}", d.qd);
            rows.extend(summary_row("randread", params, &d.case, a, b, RAW_NAME));
            if let Some((epoll, uring, _)) = &d.executors {
                let params = format!("4 KiB, QD {}, epoll", d.qd);
                rows.extend(summary_row(
                    "randread",
                    params,
                    &d.case,
                    epoll,
                    uring,
                    "xuring on io_uring",
                ));
            }
        }
        Output {
            text,
            summary,
            rows,
        }
    }
}

/// The table's entry.
pub fn entry(config: &Config) -> Result<Output, BenchError> {
    run(config).map(|r| r.output())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terse_output_gives_read_iops() {
        let line = "3;fio-3.33;xuring-read4k;0;0;4000000;1333333;333333;3000;0;0";
        assert_eq!(parse_terse_read_iops(line), Some(333_333.0));
        assert_eq!(parse_terse_read_iops("garbage"), None);
    }
}
