//! The run loop: submit, wait, reap, call back; and teardown.

use core::time::Duration;

use xuring_sys::{Errno, FeatureFlags};

use crate::task::TaskState;
use crate::{Backend, Context, Op, Ring, RingError, TaskId, Timespec};

/// When [`Ring::run`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunCondition {
    /// When nothing is queued or in flight and every callback has run, including those of
    /// work the callbacks submitted.
    UntilDone,
    /// After at least one callback ran: submits, waits for a completion if none is ready,
    /// and runs the callbacks of everything completed by then. Returns at once if there is
    /// nothing to wait for, unless a message handler is set ([`Ring::on_message`]): then it
    /// waits for a message.
    Once,
    /// Submits, runs the callbacks of whatever has completed, and returns without waiting.
    NoWait,
    /// Like `UntilDone`, but returns once this much time has passed; with a message handler
    /// set ([`Ring::on_message`]) it waits for messages until then even when idle.
    For(Duration),
    /// Like `UntilDone`, but returns at this `CLOCK_MONOTONIC` time.
    Until(Timespec),
}

/// Resets the ring's run state even if a callback panics: the running task is recycled, so
/// the ring stays consistent and usable.
struct RunGuard<'a, B: Backend> {
    ring: &'a mut Ring<B>,
}

impl<B: Backend> Drop for RunGuard<'_, B> {
    fn drop(&mut self) {
        if let Some(task) = self.ring.current.take() {
            self.ring.recycle(task);
        }
        self.ring.running = false;
    }
}

impl<B: Backend> Ring<B> {
    /// Runs the event loop until `condition` holds.
    ///
    /// Errors: [`RingError::Reentrant`] if called from one of this ring's callbacks,
    /// [`RingError::Forked`] in a forked child, [`RingError::Enter`] if the kernel refuses
    /// to submit or wait (other than the retried `EINTR`, `EAGAIN` and `EBUSY`), and a
    /// callback's own error, which stops the run right after that callback. The ring stays
    /// usable after any of them: the next `run` continues with the remaining work.
    pub fn run(&mut self, condition: RunCondition) -> Result<(), RingError> {
        if self.running {
            return Err(RingError::Reentrant);
        }
        if self.backend.forked() {
            return Err(RingError::Forked);
        }
        let deadline = match condition {
            RunCondition::For(d) => Some(self.backend.now().saturating_add(d)),
            RunCondition::Until(t) => Some(t),
            _ => None,
        };
        self.running = true;
        let guard = RunGuard { ring: self };
        let result = guard.ring.run_loop(condition, deadline);
        let submitted = if guard.ring.admitted_unsubmitted {
            guard.ring.submit_admitted()
        } else {
            Ok(())
        };
        // The run's own error, if it had one, is the one to report.
        result.and(submitted)
    }

    /// Submits mailbox sends admitted but still in the backend's queue (left there by a
    /// refused `enter`, or by a callback's error ending the run), so that a send is never
    /// admitted while its ring waits elsewhere (say, in `Thread::join` on its receiver).
    #[cold]
    fn submit_admitted(&mut self) -> Result<(), RingError> {
        self.enter(0, None)
    }

    fn run_loop(
        &mut self,
        condition: RunCondition,
        deadline: Option<Timespec>,
    ) -> Result<(), RingError> {
        if condition == RunCondition::NoWait {
            self.flush();
            self.enter(0, None)?;
            self.reap();
            self.flush_unmarked();
            self.run_callbacks()?;
            return Ok(());
        }
        loop {
            self.flush();
            if self.completions.is_empty() {
                // Messages from other rings can arrive with nothing in flight: a ring with a
                // message handler keeps waiting in `Once` and deadline runs.
                let may_receive =
                    self.message_ctx.is_some() && condition != RunCondition::UntilDone;
                if self.has_no_user_work() && !may_receive {
                    return Ok(());
                }
                if let Some(d) = deadline
                    && self.backend.now() >= d
                {
                    return Ok(());
                }
                if !self.submission_q.is_empty() {
                    // The backend's queue is full and more work waits behind it: submit
                    // without waiting, so the rest gets in before we block.
                    self.enter(0, None)?;
                } else if let Some(d) = deadline {
                    self.wait_until(d)?;
                } else {
                    self.enter(1, None)?;
                }
                self.reap();
            }
            let ran = self.run_callbacks()?;
            if condition == RunCondition::Once && ran > 0 {
                self.flush_unmarked();
                return Ok(());
            }
        }
    }

    /// Nothing queued and nothing in flight but background tasks.
    fn has_no_user_work(&self) -> bool {
        self.submission_q.is_empty() && self.in_flight == self.background_in_flight
    }

    /// Waits for one completion or until `deadline`: with `FEAT_EXT_ARG` the wait itself has
    /// a timeout; without it, an internal absolute timer ends the wait.
    fn wait_until(&mut self, deadline: Timespec) -> Result<(), RingError> {
        if self.features().has(FeatureFlags::EXT_ARG) {
            return self.enter(1, Some(deadline));
        }
        if self.wake.is_none_or(|(_, at)| at > deadline) {
            let wake = self.queue(
                Op::Wake {
                    ts: deadline.to_kernel(),
                },
                Context::default(),
            );
            self.set_background(wake);
            self.wake = Some((wake.id(), deadline));
            self.flush();
        }
        self.enter(1, None)
    }

    /// Enters the backend, retrying `EINTR`; on `EBUSY`/`EAGAIN` (completions the CQ could not
    /// take, or a transient shortage) it reaps and returns so the caller can run callbacks.
    /// `deadline` is passed on as a wait timeout (only with `FEAT_EXT_ARG`); `ETIME` is not an
    /// error.
    pub(crate) fn enter(
        &mut self,
        min_complete: u32,
        deadline: Option<Timespec>,
    ) -> Result<(), RingError> {
        loop {
            let timeout = match deadline {
                Some(d) => {
                    let now = self.backend.now();
                    if now >= d {
                        return Ok(());
                    }
                    Some(Timespec::from_duration(d.saturating_sub(now)))
                }
                None => None,
            };
            self.stats.enters += 1;
            match self.backend.enter(min_complete, timeout) {
                Ok(()) => {
                    self.admitted_unsubmitted = false;
                    return Ok(());
                }
                Err(Errno::EINTR) => self.stats.eintr_retries += 1,
                Err(Errno::EBUSY | Errno::EAGAIN) => {
                    self.stats.busy_retries += 1;
                    self.reap();
                    return Ok(());
                }
                Err(Errno::ETIME) => return Ok(()),
                Err(e) => return Err(RingError::Enter(e)),
            }
        }
    }

    fn reap_and_recycle(&mut self) {
        self.reap();
        while let Some(task) = self.completions.pop_front() {
            self.recycle(task);
        }
    }

    /// Cancels and reaps everything in flight, without running callbacks, before the
    /// ring's memory is released. Gives up after the teardown timeout and leaks the tasks
    /// still in flight, which the kernel may still write into.
    pub(crate) fn teardown(&mut self) {
        if let Some(task) = self.current.take() {
            self.recycle(task);
        }
        while let Some(task) = self.submission_q.pop_front() {
            self.recycle(task);
        }
        while let Some(task) = self.completions.pop_front() {
            self.recycle(task);
        }
        if self.in_flight == 0 {
            return;
        }
        if self.backend.forked() {
            // The requests belong to the parent, and the kernel writes into the parent's
            // memory, not into this copy: nothing to cancel, nothing to wait for.
            return;
        }
        let deadline = self.backend.now().saturating_add(self.teardown_timeout);
        let targets: Vec<TaskId> = self.in_flight_user_tasks().collect();
        if self.cancel_any_supported() {
            self.queue(
                Op::CancelAny {
                    local: 0,
                    background: 0,
                },
                Context::default(),
            );
        } else {
            for target in targets {
                self.cancel(target, Context::default());
            }
        }
        loop {
            self.flush();
            if self.submission_q.is_empty() && self.in_flight == self.background_in_flight {
                break;
            }
            if self.backend.now() >= deadline {
                break;
            }
            // With cancels still queued behind a full SQ, submit without waiting: the ops in
            // flight may only end once those cancels reach the kernel.
            let entered = if self.submission_q.is_empty() {
                self.wait_until(deadline)
            } else {
                self.enter(0, None)
            };
            if entered.is_err() {
                break;
            }
            self.reap_and_recycle();
        }
        // Only background tasks may be left (our own wake-up timer, mailbox reads): cancel
        // them rather than wait. Their cancels complete at once, so this takes a couple of
        // enters at most.
        if self.submission_q.is_empty() && self.in_flight == self.background_in_flight {
            let wakes: Vec<TaskId> = self.in_flight_user_tasks().collect();
            for wake in wakes {
                self.cancel(wake, Context::default());
            }
            for _ in 0..16 {
                self.flush();
                if self.in_flight == 0 && self.submission_q.is_empty() {
                    break;
                }
                if self.enter(1, None).is_err() {
                    break;
                }
                self.reap_and_recycle();
            }
        }
        if self.in_flight > 0 {
            crate::ring::count_leaked(u64::from(self.in_flight));
            // Mark them so nothing mistakes them for free tasks.
            for task in self.pool.all() {
                // SAFETY: the pool's pointers are valid for the ring's life.
                let t = unsafe { task.as_ref() };
                if t.state.get() == TaskState::InFlight {
                    t.state.set(TaskState::Waiting);
                }
            }
            self.pool.leak();
        }
    }
}
