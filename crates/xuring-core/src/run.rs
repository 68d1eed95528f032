//! The run loop: submit, wait, reap, call back; and teardown.
//!
//! # Safety
//!
//! A run keeps the address of the engine it drives and compares the ring handle's engine
//! with it after every callback: a callback may assign, swap or drop its ring, and then the
//! run stops (`RingError::Replaced`) without touching the handle's new engine. An engine
//! whose handle was dropped meanwhile is only marked orphaned by the handle; [`Engine::end_run`]
//! frees it, once, when the run ends. No reference to the engine is held across a callback.
//!
//! Tasks whose ops are in the backend's queue are `InFlight` from the push on (see
//! `engine.rs`): an `enter` may hand them to the kernel at any time, and from then on only
//! their reaped completions give their memory back.

use core::ptr::NonNull;
use core::time::Duration;

use xuring_sys::{Errno, FeatureFlags};

use crate::engine::Engine;
use crate::task::TaskState;
use crate::{Backend, Context, Ring, RingError, Timespec};

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

/// Ends a run however it ends (returned, failed, unwound from a panicking callback, or cut
/// short because a callback replaced the ring): see [`Engine::end_run`].
struct RunGuard<B: Backend> {
    engine: NonNull<Engine<B>>,
}

impl<B: Backend> RunGuard<B> {
    /// Ends the run normally, reporting `end_run`'s error.
    fn finish(self) -> Result<(), RingError> {
        let engine = self.engine;
        core::mem::forget(self);
        // SAFETY: as in `drop`, which will not run for this guard.
        unsafe { Engine::end_run(engine) }
    }
}

impl<B: Backend> Drop for RunGuard<B> {
    fn drop(&mut self) {
        let engine = self.engine;
        let end = move || {
            // SAFETY: the guard's engine is the one its run set `running` on: alive until
            // `end_run` frees it (only if orphaned), which happens here, once.
            unsafe { Engine::end_run(engine) }
        };
        if std::thread::panicking() {
            // A callback is unwinding: a second panic from the teardown of an orphaned engine
            // would abort the process. `shut_down` has leaked what it could not finish.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(end));
        } else {
            let _ = end();
        }
    }
}

impl<B: Backend> Ring<B> {
    /// Runs the event loop until `condition` holds.
    ///
    /// Errors: [`RingError::Reentrant`] if called from one of this ring's callbacks,
    /// [`RingError::Forked`] in a forked child, [`RingError::Enter`] if the kernel refuses
    /// to submit or wait (other than the retried `EINTR`, `EAGAIN` and `EBUSY`),
    /// [`RingError::Replaced`] if a callback assigned, swapped or dropped this ring, and a
    /// callback's own error, which stops the run right after that callback. The ring stays
    /// usable after any of them: the next `run` continues with the remaining work.
    ///
    /// A callback's error stops the whole run: a server should handle per-connection
    /// failures inside its callbacks and return `Err` only for what must stop the loop.
    pub fn run(&mut self, condition: RunCondition) -> Result<(), RingError> {
        let engine = self.engine();
        if engine.running {
            return Err(RingError::Reentrant);
        }
        if engine.backend.forked() {
            return Err(RingError::Forked);
        }
        let deadline = match condition {
            RunCondition::For(d) => Some(engine.backend.now().saturating_add(d)),
            RunCondition::Until(t) => Some(t),
            _ => None,
        };
        engine.running = true;
        let guard = RunGuard {
            engine: self.engine_ptr(),
        };
        let result = self.run_loop(condition, deadline);
        // The run's own error, if it had one, is the one to report.
        result.and(guard.finish())
    }

    fn run_loop(
        &mut self,
        condition: RunCondition,
        deadline: Option<Timespec>,
    ) -> Result<(), RingError> {
        if condition == RunCondition::NoWait {
            let engine = self.engine();
            engine.refuse_if_forked()?;
            engine.flush();
            engine.enter(0, None)?;
            engine.reap();
            engine.flush_unmarked();
            self.run_callbacks()?;
            return Ok(());
        }
        loop {
            let engine = self.engine();
            // A callback may have forked: the child's copy must stop here, before it touches
            // the SQ and CQ it shares with the parent.
            engine.refuse_if_forked()?;
            // A mailbox send is admitted only right before an `enter`: with callbacks about
            // to run, one of them could otherwise block (say, joining the send's receiver)
            // while the send waits in the SQ.
            if engine.completions.is_empty() {
                engine.flush();
            } else {
                engine.flush_unmarked();
            }
            if engine.completions.is_empty() {
                // Messages from other rings can arrive with nothing in flight: a ring with a
                // message handler keeps waiting in `Once` and deadline runs.
                let may_receive =
                    engine.receives_messages() && condition != RunCondition::UntilDone;
                if engine.has_no_user_work() && !may_receive {
                    return Ok(());
                }
                if let Some(d) = deadline
                    && engine.backend.now() >= d
                {
                    return Ok(());
                }
                if !engine.submission_q.is_empty() {
                    // The backend's queue is full and more work waits behind it: submit
                    // without waiting, so the rest gets in before we block.
                    engine.enter(0, None)?;
                } else if let Some(d) = deadline {
                    engine.wait_until(d)?;
                } else {
                    engine.enter(1, None)?;
                }
                engine.reap();
            }
            if engine.admitted_unsubmitted {
                // An `enter` was refused (`EBUSY`) with sends admitted: get them out before a
                // callback can wait for their receiver.
                engine.submit_admitted()?;
            }
            let ran = self.run_callbacks()?;
            if condition == RunCondition::Once && ran > 0 {
                self.engine().flush_unmarked();
                return Ok(());
            }
        }
    }

    /// Runs the callbacks of the completed tasks, in completion order. Stops at the first
    /// callback error, leaving the rest for the next `run`, and at once with
    /// [`RingError::Replaced`] when a callback replaced this ring (the engine it ran on is
    /// then no longer the handle's).
    pub(crate) fn run_callbacks(&mut self) -> Result<u32, RingError> {
        let engine_ptr = self.engine_ptr();
        let mut ran = 0;
        loop {
            let engine = self.engine();
            let Some(task) = engine.completions.pop_front() else {
                return Ok(ran);
            };
            // The engine outlives this callback even if the callback drops the ring
            // (`orphaned`), so `t` stays valid across it.
            let t = task.get();
            t.state.set(TaskState::Running);
            engine.current = Some(task);
            let cb = t.ctx.get().cb;
            // No reference to the engine is alive across the call: the callback reaches it
            // through `self` only.
            let outcome = cb(self, t);
            if self.engine_ptr() != engine_ptr {
                // The callback assigned, swapped or dropped the ring: this run is over.
                // `end_run` recycles the running task on the engine it belongs to.
                return Err(RingError::Replaced);
            }
            let engine = self.engine();
            engine.current = None;
            engine.recycle(task);
            engine.stats.callbacks += 1;
            ran += 1;
            outcome?;
            // The callback may have forked: the child must not run the parent's other
            // callbacks (nor go on to touch the SQ and CQ it shares with the parent).
            engine.refuse_if_forked()?;
        }
    }
}

impl<B: Backend> Engine<B> {
    /// Ends the run on the engine at `engine`: recycles the task whose callback was running
    /// (if the run stopped inside one), submits mailbox sends admitted but not yet submitted
    /// (so that a send is never admitted while its ring waits elsewhere, say in
    /// `Thread::join` on its receiver), and clears `running`. If the engine's handle was
    /// dropped during the run, tears the engine down and frees it.
    ///
    /// # Safety
    ///
    /// `engine` must be the live engine of a run that set `running`, with no reference to it
    /// alive, and this must be called once per such run.
    pub(crate) unsafe fn end_run(engine: NonNull<Engine<B>>) -> Result<(), RingError> {
        let ptr = engine.as_ptr();
        // SAFETY: the caller guarantees a live engine with no other reference to it.
        let this = unsafe { &mut *ptr };
        if let Some(task) = this.current.take() {
            this.recycle(task);
        }
        this.running = false;
        if this.orphaned {
            // SAFETY: the engine came from `Box::leak` in `Ring::from_engine`; its handle is
            // gone (it set `orphaned` instead of freeing it), so this is the only owner, and
            // `this` is not used again.
            drop(unsafe { Box::from_raw(ptr) });
            return Ok(());
        }
        if this.admitted_unsubmitted && !this.shut {
            return this.submit_admitted();
        }
        Ok(())
    }

    /// Nothing queued and nothing in flight but background tasks.
    /// Submits mailbox sends admitted but still in the backend's queue (left there by a
    /// refused `enter`, or by a callback's error ending the run). `EBUSY` (a full CQ) is
    /// retried a few times, reaping in between.
    #[cold]
    pub(crate) fn submit_admitted(&mut self) -> Result<(), RingError> {
        for _ in 0..8 {
            self.enter(0, None)?;
            if !self.admitted_unsubmitted {
                break;
            }
        }
        Ok(())
    }

    /// `RingError::Forked` in a forked child: the ring's queues are shared with the parent,
    /// and only the parent may use them. A fork can happen in a callback, mid-run, so the run
    /// loop asks before every pass, not only when it starts.
    #[inline]
    pub(crate) fn refuse_if_forked(&self) -> Result<(), RingError> {
        if self.backend.forked() {
            return Err(RingError::Forked);
        }
        Ok(())
    }

    /// Whether messages from other rings may arrive: a user handler or a mailbox is set.
    fn receives_messages(&self) -> bool {
        self.message_ctx.is_some() || self.mailbox_ctx.is_some()
    }

    pub(crate) fn has_no_user_work(&self) -> bool {
        self.submission_q.is_empty() && self.in_flight == self.background_in_flight
    }

    /// Waits for one completion or until `deadline`: with `FEAT_EXT_ARG` the wait itself has
    /// a timeout; without it, an internal absolute timer ends the wait.
    pub(crate) fn wait_until(&mut self, deadline: Timespec) -> Result<(), RingError> {
        if self.features().has(FeatureFlags::EXT_ARG) {
            return self.enter(1, Some(deadline));
        }
        if self.wake.is_none_or(|(_, at)| at > deadline) {
            if self.backend.space() == 0 {
                // Ops pushed at queue time can fill the SQ with nothing on the ring's own
                // queue: submit them first, or the timer would wait behind them.
                self.enter(0, None)?;
            }
            let wake = self.queue(crate::ops::Timer::wake(deadline).into(), Context::default());
            self.set_background(wake);
            self.wake = Some((wake.id(), deadline));
            self.flush();
        }
        if !self.submission_q.is_empty() {
            // Something (the timer perhaps) is still waiting for room: submit without
            // waiting; the run loop comes back here once it is in.
            return self.enter(0, None);
        }
        self.enter(1, None)
    }

    /// Enters the backend, retrying `EINTR`; on `EBUSY`/`EAGAIN` (completions the CQ could not
    /// take, or a transient shortage) it reaps and returns so the caller can run callbacks.
    /// `deadline` is passed on as a wait timeout (only with `FEAT_EXT_ARG`); `ETIME` is not an
    /// error.
    #[inline]
    pub(crate) fn enter(
        &mut self,
        min_complete: u32,
        deadline: Option<Timespec>,
    ) -> Result<(), RingError> {
        self.refuse_if_forked()?;
        let Some(deadline) = deadline else {
            loop {
                if let Some(done) = self.enter_once(min_complete, None) {
                    return done;
                }
            }
        };
        self.enter_until(min_complete, deadline)
    }

    /// [`enter`](Self::enter) with a deadline: each try waits at most until then.
    #[cold]
    fn enter_until(&mut self, min_complete: u32, deadline: Timespec) -> Result<(), RingError> {
        loop {
            let now = self.backend.now();
            if now >= deadline {
                return Ok(());
            }
            let timeout = Timespec::from_duration(deadline.saturating_sub(now));
            if let Some(done) = self.enter_once(min_complete, Some(timeout)) {
                return done;
            }
        }
    }

    /// One `enter` of the backend: `None` to retry (`EINTR`), else what `enter` returns.
    #[inline]
    fn enter_once(
        &mut self,
        min_complete: u32,
        timeout: Option<Timespec>,
    ) -> Option<Result<(), RingError>> {
        self.stats.enters += 1;
        match self.backend.enter(min_complete, timeout) {
            Ok(()) => {
                self.admitted_unsubmitted = false;
                Some(Ok(()))
            }
            Err(e) => self.entered_with(e),
        }
    }

    /// An `enter` that failed with `e`: `None` to retry (`EINTR`), else what `enter` returns.
    #[cold]
    fn entered_with(&mut self, e: Errno) -> Option<Result<(), RingError>> {
        match e {
            Errno::EINTR => {
                self.stats.eintr_retries += 1;
                None
            }
            Errno::EBUSY | Errno::EAGAIN => {
                self.stats.busy_retries += 1;
                self.reap();
                Some(Ok(()))
            }
            Errno::ETIME => Some(Ok(())),
            e => Some(Err(RingError::Enter(e))),
        }
    }
}
