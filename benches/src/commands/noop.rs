//! `noop --ops N --batch B`: NOPs through the full task lifecycle (get a task, submit,
//! complete, callback, recycle) with `B` in flight, against raw NOPs on the `io-uring` crate.

use xuring_core::Ring;
use xuring_sys::SetupFlags;

use super::{Bench, Impl, Param, Record, Stop, drive, no_side, record};
use crate::error::BenchError;
use crate::raw::RawNoop;
use crate::xuring_ops::XuringBatch;

/// The options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoopOpts {
    /// Operations per run (after a warm-up of a tenth as many).
    pub ops: u64,
    /// In flight at once (a batch: submitted together, reaped together).
    pub batch: u32,
}

impl Default for NoopOpts {
    fn default() -> NoopOpts {
        NoopOpts {
            ops: 4_000_000,
            batch: 64,
        }
    }
}

/// The largest batch: the kernel's largest SQ.
pub const MAX_BATCH: u32 = 32_768;

/// The noop subcommand.
pub struct NoopBench {
    opts: NoopOpts,
    entries: u32,
    setup: SetupFlags,
}

impl NoopBench {
    /// Checks the options and finds the setup flags both sides' rings get.
    pub fn new(opts: NoopOpts) -> Result<NoopBench, BenchError> {
        if opts.batch == 0 || opts.batch > MAX_BATCH || opts.ops == 0 {
            return Err(BenchError::Other(format!(
                "noop: --batch from 1 to {MAX_BATCH} and --ops above 0"
            )));
        }
        let entries = opts.batch.next_power_of_two().max(256);
        let setup = Ring::init(entries)?.features().setup;
        Ok(NoopBench {
            opts,
            entries,
            setup,
        })
    }
}

impl Bench for NoopBench {
    fn run(&mut self, imp: Impl) -> Result<Record, BenchError> {
        let NoopOpts { ops, batch } = self.opts;
        let chunk = u64::from(batch);
        let warmup = (ops / 10).max(chunk);
        let measured = match imp {
            Impl::Xuring | Impl::XuringOn(_) => {
                let mut ring = XuringBatch::noop_on(self.entries, batch, imp.executor())?;
                drive(&mut |n| ring.run(n), chunk, warmup, Stop::Ops(ops))?
            }
            Impl::IoUring => {
                let mut ring = RawNoop::new(self.entries, self.setup, batch)?;
                drive(&mut |n| ring.run(n), chunk, warmup, Stop::Ops(ops))?
            }
            Impl::Tokio => return Err(no_side(imp, "noop")),
        };
        // The operation count is the record's own `ops`.
        let params = vec![("batch", Param::Int(chunk))];
        Ok(record(
            imp,
            "noop",
            params,
            measured,
            Some("batch round trip"),
            true,
        ))
    }

    fn name(&self) -> &'static str {
        "noop"
    }
}
