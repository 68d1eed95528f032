//! Timers: relative and absolute, and one cancelled before it fires.
//!
//! `cargo run --example timers` prints each callback as it runs, with the time since the
//! start. Expected order: the cancelled hour-long timer (`ECANCELED`) and its cancel, then the
//! 10 ms, the absolute 20 ms and the 30 ms timers.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use xuring::io_uring::{Context, Errno, OpResult, Ring, RingError, RunCondition, Task, Timespec};

/// One callback: which timer, its result, and when it ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    /// The timer's name.
    pub name: &'static str,
    /// `Ok` if it expired; `ECANCELED` if cancelled; for the cancel itself, the cancel's result.
    pub result: Result<(), Errno>,
    /// Time since the start.
    pub after: Duration,
}

const NAMES: [&str; 5] = [
    "30ms",
    "10ms",
    "absolute 20ms",
    "1h (cancelled)",
    "the cancel",
];

thread_local! {
    static LOG: RefCell<(Option<Instant>, Vec<Fired>)> = const { RefCell::new((None, Vec::new())) };
}

fn on_fired(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let result = match task.result {
        Some(OpResult::Timer(r) | OpResult::Cancel(r)) => r,
        other => return Err(RingError::callback(format!("unexpected {other:?}"))),
    };
    LOG.with(|log| {
        let (start, fired) = &mut *log.borrow_mut();
        fired.push(Fired {
            name: NAMES[usize::from(task.msg())],
            result,
            after: start.map(|s| s.elapsed()).unwrap_or_default(),
        });
    });
    Ok(())
}

fn ctx(msg: u16) -> Context {
    Context {
        cb: on_fired,
        msg,
        userdata: None,
    }
}

/// Sets the timers, cancels one, runs the ring until all have reported, and returns what fired,
/// in order.
pub fn run() -> Result<Vec<Fired>, RingError> {
    let mut ring = Ring::init(16)?;
    LOG.with(|log| *log.borrow_mut() = (Some(Instant::now()), Vec::new()));
    let ms = |n: u32| Timespec {
        sec: 0,
        nsec: n * 1_000_000,
    };
    ring.timer(ms(30), ctx(0));
    ring.timer(ms(10), ctx(1));
    // An absolute timer is a point on CLOCK_MONOTONIC.
    ring.timer_at(
        Timespec::now().saturating_add(Duration::from_millis(20)),
        ctx(2),
    );
    let long = ring.timer(Timespec { sec: 3600, nsec: 0 }, ctx(3));
    // The handle remembers the generation of the task it names: cancelling after the timer
    // fired (and its slot was reused) would miss with ENOENT instead of hitting a stranger.
    long.cancel(&mut ring, ctx(4));
    ring.run(RunCondition::UntilDone)?;
    Ok(LOG.with(|log| std::mem::take(&mut log.borrow_mut().1)))
}

#[allow(dead_code)]
fn main() -> Result<(), RingError> {
    for fired in run()? {
        println!(
            "{:>7.1?}  {:<16} {:?}",
            fired.after, fired.name, fired.result
        );
    }
    Ok(())
}
