//! `timers --count N [--waves W] [--after-us U]`: waves of `N` concurrent relative timers,
//! each armed with the same timeout and all fired before the next wave, against raw
//! `IORING_OP_TIMEOUT`s on the `io-uring` crate. With the default `--after-us 0` the timers
//! expire at once and the run measures the cost of arming and firing them; a longer timeout
//! measures mostly the sleeping.

use std::time::Duration;

use xuring_core::{Ring, Timespec};
use xuring_sys::SetupFlags;

use super::{Bench, Impl, Param, Record, Stop, drive, no_side, record};
use crate::error::BenchError;
use crate::raw::RawTimers;
use crate::xuring_ops::XuringBatch;

/// The options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimersOpts {
    /// Timers in flight at once.
    pub count: u32,
    /// Waves per run (after one of warm-up).
    pub waves: u64,
    /// Each timer's timeout, in microseconds.
    pub after_us: u64,
}

impl Default for TimersOpts {
    fn default() -> TimersOpts {
        TimersOpts {
            count: 1024,
            waves: 500,
            after_us: 0,
        }
    }
}

/// The largest SQ either side's ring gets; larger waves are submitted in parts.
const MAX_ENTRIES: u32 = 4096;

/// The timers subcommand.
pub struct TimersBench {
    opts: TimersOpts,
    entries: u32,
    setup: SetupFlags,
}

impl TimersBench {
    /// Checks the options and finds the setup flags both sides' rings get.
    pub fn new(opts: TimersOpts) -> Result<TimersBench, BenchError> {
        if opts.count == 0 || opts.waves == 0 {
            return Err(BenchError::Other(
                "timers: --count and --waves above 0".to_owned(),
            ));
        }
        let entries = opts.count.next_power_of_two().clamp(16, MAX_ENTRIES);
        let setup = Ring::init(entries)?.features().setup;
        Ok(TimersBench {
            opts,
            entries,
            setup,
        })
    }
}

impl Bench for TimersBench {
    fn run(&mut self, imp: Impl) -> Result<Record, BenchError> {
        let TimersOpts {
            count,
            waves,
            after_us,
        } = self.opts;
        let after = Duration::from_micros(after_us);
        let chunk = u64::from(count);
        let stop = Stop::Ops(chunk * waves);
        let measured = match imp {
            Impl::Xuring | Impl::XuringOn(_) => {
                let after = Timespec::from(after);
                let mut ring = XuringBatch::timer_on(self.entries, count, after, imp.executor())?;
                drive(&mut |n| ring.run(n), chunk, chunk, stop)?
            }
            Impl::IoUring => {
                let mut ring = RawTimers::new(self.entries, self.setup, count, after)?;
                drive(&mut |n| ring.run(n), chunk, chunk, stop)?
            }
            Impl::Tokio => return Err(no_side(imp, "timers")),
        };
        let params = vec![
            ("count", Param::Int(chunk)),
            ("waves", Param::Int(waves)),
            ("after_us", Param::Int(after_us)),
        ];
        Ok(record(imp, "timers", params, measured, Some("wave"), true))
    }

    fn name(&self) -> &'static str {
        "timers"
    }
}
