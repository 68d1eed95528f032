//! `msgring [--round-trips N] [--level native|5.6]`: ping-pong between the main thread's ring
//! and a second ring on a second thread (on the other CPU where there is one), one message
//! each way per round trip. xuring's side is a [`Thread`](xuring_core::Thread) (by
//! `MSG_RING`, or at `--level 5.6` by its eventfd fallback); the raw side is two `io-uring`
//! rings posting `MSG_RING` data to each other. The latency is that of one round trip.

use xuring_core::{KernelLevel, Ring};
use xuring_sys::SetupFlags;

use super::{Bench, Impl, Param, Record, Stop, drive, no_side, record};
use crate::error::{BenchError, check_complete};
use crate::pin::{CpuPair, cpu_pair};
use crate::pingpong::{RING_ENTRIES, RawMsgRing, XuringPingPong};

/// The options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgringOpts {
    /// Round trips per run (after a warm-up of a tenth as many).
    pub round_trips: u64,
    /// The level of xuring's rings: native (`MSG_RING`) or 5.6 (eventfd fallback).
    pub level: KernelLevel,
}

impl Default for MsgringOpts {
    fn default() -> MsgringOpts {
        MsgringOpts {
            round_trips: 200_000,
            level: KernelLevel::Native,
        }
    }
}

/// The msgring subcommand.
pub struct MsgringBench {
    opts: MsgringOpts,
    pair: CpuPair,
    setup: SetupFlags,
}

impl MsgringBench {
    /// Checks the options, picks the CPUs and finds the raw rings' setup flags.
    pub fn new(opts: MsgringOpts) -> Result<MsgringBench, BenchError> {
        if opts.round_trips == 0 {
            return Err(BenchError::Other(
                "msgring: --round-trips above 0".to_owned(),
            ));
        }
        Ok(MsgringBench {
            opts,
            pair: cpu_pair(),
            setup: Ring::init(RING_ENTRIES)?.features().setup,
        })
    }
}

impl Bench for MsgringBench {
    fn run(&mut self, imp: Impl) -> Result<Record, BenchError> {
        let n = self.opts.round_trips;
        let warmup = (n / 10).clamp(1, 20_000);
        let stop = Stop::Ops(n);
        let measured = match imp {
            Impl::Xuring => {
                let mut side = XuringPingPong::new(self.opts.level, &self.pair)?;
                let measured = drive(&mut |k| side.run(k), 1, warmup, stop)?;
                check_complete("xuring child's replies", n + warmup, side.round_trips())?;
                side.finish()?;
                measured
            }
            Impl::IoUring => {
                let mut side = RawMsgRing::new(self.setup, &self.pair)?;
                let measured = drive(&mut |k| side.run(k), 1, warmup, stop)?;
                check_complete("raw child's replies", n + warmup, side.round_trips())?;
                side.finish()?;
                measured
            }
            Impl::XuringOn(_) | Impl::Tokio => return Err(no_side(imp, "msgring")),
        };
        let level = match (imp, self.opts.level) {
            (Impl::Xuring, KernelLevel::V5_6) => "5.6",
            _ => "native",
        };
        let params = vec![
            ("round_trips", Param::Int(n)),
            ("level", Param::Str(level.to_owned())),
        ];
        let mut record = record(imp, "msgring", params, measured, Some("round trip"), true);
        record.note = format!("{}", self.pair);
        Ok(record)
    }

    fn name(&self) -> &'static str {
        "msgring"
    }

    /// xuring's side runs on the default executor only: its `Thread` makes the child ring
    /// with default options.
    fn has_side(&self, imp: Impl) -> bool {
        matches!(imp, Impl::Xuring | Impl::IoUring)
    }
}
