//! Stopping on a signal: a server waits for `SIGINT`/`SIGTERM` on its ring like for any other
//! event, then stops accepting and closes its connections from an ordinary callback.

use std::os::fd::{AsFd, AsRawFd};

use xuring_core::{Backend, Errno, OpResult, Ring, SignalFd, Task, TaskHandle};

use crate::chunk::UNEXPECTED;
use crate::job::{self, Machine, Progress, Step};
use crate::{Error, Handle, Then};

const WAIT: u16 = 0;
const FAILED: u16 = 1;

/// Waits for one of a set of signals.
struct StopOn<B: Backend> {
    /// The signals' descriptor, or why it could not be made.
    signals: Result<SignalFd, Errno>,
    then: Then<Result<i32, Error>, B>,
}

impl<B: Backend + 'static> StopOn<B> {
    fn wait(&self, ring: &mut Ring<B>, step: &Step<B, Self>) -> TaskHandle<B> {
        match &self.signals {
            Ok(fd) => ring.poll(fd.as_fd().as_raw_fd(), libc::POLLIN as u32, step.ctx(WAIT)),
            Err(_) => ring.noop(step.ctx(FAILED)),
        }
    }
}

impl<B: Backend + 'static> Machine<B> for StopOn<B> {
    type Output = Result<i32, Error>;

    fn start(&mut self, ring: &mut Ring<B>, step: &Step<B, Self>) -> TaskHandle<B> {
        self.wait(ring, step)
    }

    fn advance(
        &mut self,
        ring: &mut Ring<B>,
        task: &Task<B>,
        step: &Step<B, Self>,
    ) -> Progress<Self::Output, B> {
        let fd = match &self.signals {
            Ok(fd) => fd,
            Err(e) => return Progress::Finish(Err(Error::Os(*e))),
        };
        match task.result {
            Some(OpResult::Poll(Ok(_))) => {}
            Some(OpResult::Poll(Err(e))) => return Progress::Finish(Err(Error::Os(e))),
            _ => return Progress::Finish(Err(Error::Os(UNEXPECTED))),
        }
        match fd.take() {
            Ok(Some(signal)) => Progress::Finish(Ok(signal)),
            Err(e) => Progress::Finish(Err(Error::Os(e))),
            // Readable, then taken by someone else (another reader of the same signals).
            Ok(None) if step.cancelled() => Progress::Finish(Err(Error::Os(Errno::ECANCELED))),
            Ok(None) => Progress::Wait(self.wait(ring, step)),
        }
    }

    fn then(&self) -> Then<Self::Output, B> {
        self.then
    }
}

/// Calls `then` with the number of the first of `signals` that arrives (`libc::SIGINT`,
/// `libc::SIGTERM`, ...), as an ordinary callback of the ring: the place to stop accepting,
/// close connections and let the run end.
///
/// Steps: blocks `signals` in the calling thread and opens a `signalfd` for them
/// ([`SignalFd`]), polls it on the ring, reads the signal. When the job ends (the signal came,
/// or [`Handle::cancel`]), the descriptor is closed and the signals are unblocked again, so a
/// second `^C` during a slow shutdown ends the process as usual.
///
/// A signal mask is a thread's: a signal sent to the process goes to any thread that does not
/// block it. Call this on the ring's thread before spawning others (they inherit the mask), or
/// block the signals in them too.
///
/// Errors: `EINVAL` for an empty list or a signal that cannot be blocked (`SIGKILL`,
/// `SIGSTOP`), `signalfd`'s errors (`EMFILE`), `ECANCELED` after [`Handle::cancel`].
///
/// ```no_run
/// use xuring_core::{Ring, RingError, RunCondition};
/// use xuring_std::{Done, Error, Then, signal};
///
/// fn on_signal(_ring: &mut Ring, done: Done<Result<i32, Error>>) -> Result<(), RingError> {
///     if let Ok(signal) = done.result {
///         eprintln!("stopping on signal {signal}");
///         // Stop accepting and close connections here; the run ends when nothing is left.
///     }
///     Ok(())
/// }
///
/// let mut ring = Ring::init(64)?;
/// signal::stop_on(&mut ring, &[libc::SIGINT, libc::SIGTERM], Then::new(on_signal));
/// ring.run(RunCondition::UntilDone)?;
/// # Ok::<(), RingError>(())
/// ```
pub fn stop_on<B: Backend + 'static>(
    ring: &mut Ring<B>,
    signals: &[i32],
    then: Then<Result<i32, Error>, B>,
) -> Handle<B> {
    job::start(
        ring,
        StopOn {
            signals: SignalFd::new(signals),
            then,
        },
    )
}
