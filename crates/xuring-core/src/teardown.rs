//! Teardown: what dropping a ring does. A ring's operations are cancelled and reaped before
//! any memory they use is released; what the kernel does not give back in time is leaked,
//! never freed (see `docs/reliability.md`).
//!
//! # Safety
//!
//! As in `engine.rs`: task pointers come from the engine's pool and stay valid for the
//! engine's life. A pool whose tasks could not all be reaped is leaked, so its chunks are
//! never freed under the kernel.

use crate::engine::Engine;
use crate::pool::TaskRef;
use crate::task::{BORROWED, TaskState};
use crate::{Backend, Context, OpResult, Ring, TaskId};

impl<B: Backend> Engine<B> {
    /// Closes the mailbox and tears down (cancels and reaps what is in flight, see
    /// `teardown`). Panic-safe: if something panics meanwhile (a mock's handler runs in its
    /// `enter`), ops may still be in flight, so every list is unlinked and the pool is leaked
    /// before the panic goes on: its chunks are never freed under the kernel.
    pub(crate) fn shut_down(&mut self) {
        if self.shut {
            return;
        }
        // Set first: a panic below must not lead to a second teardown.
        self.shut = true;
        if let Some(mailbox) = &self.mailbox {
            mailbox.close();
        }
        let torn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.teardown()));
        if let Err(panic) = torn {
            self.submission_q.clear();
            self.completions.clear();
            self.pool.clear_free();
            self.pool.leak();
            std::panic::resume_unwind(panic);
        }
    }

    /// Recycles a task whose callback will never run (the ring is going away). A result that
    /// carries a new descriptor (open, accept, socket) is closed first: no one else will ever
    /// learn its number.
    pub(crate) fn recycle_undelivered(&mut self, task: TaskRef<B>) {
        // The task is reaped or completed locally and off every list, and no callback runs
        // for it: its `result` is not being written.
        let fd = task.get().result.as_ref().and_then(OpResult::created_fd);
        if let Some(fd) = fd {
            self.backend.close_undelivered(fd);
        }
        self.recycle(task);
    }

    /// After the teardown timeout: waits, without a limit, for the ops still in flight on
    /// memory the caller owns (`read_raw`, `IoBuf::from_raw_parts`). Their memory cannot be
    /// leaked with the pool, and its owner may free it as soon as the ring is dropped, so
    /// the drop must not return while the kernel can still use it. Their cancels were
    /// submitted; this only waits. If the ring cannot even wait (its `enter` keeps failing),
    /// there is no sound way on: the process aborts.
    #[cold]
    fn wait_for_borrowed(&mut self) {
        let mut failures = 0;
        while self.borrowed_in_flight() {
            if self.enter(1, None).is_err() {
                failures += 1;
                if failures == 1000 {
                    eprintln!(
                        "xuring: a dropped ring cannot wait for the kernel to finish with \
                         caller-owned memory (io_uring_enter keeps failing); aborting"
                    );
                    std::process::abort();
                }
                continue;
            }
            failures = 0;
            self.reap_and_recycle();
        }
    }

    /// Whether an op on caller-owned memory is in flight.
    fn borrowed_in_flight(&self) -> bool {
        self.pool.all().any(|task| {
            let t = task.get();
            t.state.get() == TaskState::InFlight && t.has(BORROWED)
        })
    }

    fn reap_and_recycle(&mut self) {
        self.reap();
        while let Some(task) = self.completions.pop_front() {
            self.recycle_undelivered(task);
        }
    }

    /// Cancels and reaps everything in flight, without running callbacks, before the
    /// ring's memory is released. Gives up after the teardown timeout and leaks the tasks
    /// still in flight, which the kernel may still write into.
    pub(crate) fn teardown(&mut self) {
        // A running callback's task stays: its callback holds `&Task` (the ring is being
        // dropped from inside it); `end_run` recycles it.
        if !self.running
            && let Some(task) = self.current.take()
        {
            self.recycle(task);
        }
        // Ops no `enter` handed over are taken back from the backend's queue: the kernel
        // never sees them.
        for task in self.retract_pushed(|_| true) {
            self.recycle(task);
        }
        while let Some(task) = self.submission_q.pop_front() {
            self.recycle(task);
        }
        while let Some(task) = self.completions.pop_front() {
            self.recycle_undelivered(task);
        }
        // Nothing in flight, or an earlier teardown already gave up on what is (a ring dropped
        // inside its callback is torn down then, and again when its engine is freed).
        if self.in_flight == 0 || self.pool.is_leaked() {
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
            self.queue(crate::ops::CancelAll::any(0, 0).into(), Context::default());
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
        if self.in_flight > 0 && !self.backend.stops_on_drop() {
            self.wait_for_borrowed();
        }
        if self.in_flight > 0 {
            crate::ring::count_leaked(u64::from(self.in_flight));
            // Mark them so nothing mistakes them for free tasks.
            for task in self.pool.all() {
                let t = task.get();
                if t.state.get() == TaskState::InFlight {
                    t.state.set(TaskState::Waiting);
                }
            }
            self.pool.leak();
        }
    }
}

impl<B: Backend> Drop for Engine<B> {
    fn drop(&mut self) {
        self.shut_down();
        // Unlink everything before the pool frees its chunks.
        self.submission_q.clear();
        self.completions.clear();
        self.pool.clear_free();
    }
}

impl<B: Backend> Drop for Ring<B> {
    fn drop(&mut self) {
        let engine = self.engine();
        if engine.running {
            // A callback of this ring's own run dropped it (assigned or swapped it away and
            // dropped it). Dropping a ring waits for its operations, so they are cancelled and
            // reaped now, as for any drop; but that callback still holds `&Task` into the
            // engine's pool (teardown leaves its task alone), and its run goes on using the
            // engine until the callback returns: the run frees the engine then.
            engine.orphaned = true;
            engine.shut_down();
            return;
        }
        // SAFETY: the engine came from `Box::leak` in `from_engine`, this handle was its only
        // owner, and it is not running, so no run will touch it again: freed exactly once.
        drop(unsafe { Box::from_raw(self.engine_ptr().as_ptr()) });
    }
}
