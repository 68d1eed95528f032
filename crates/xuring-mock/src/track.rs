//! Exactly-once callback tracking: register each op you submit with [`expect`], record each
//! callback with [`record`] (or use [`context`], whose callback only records), and
//! [`check`] that no op was called back twice and [`check_complete`] that every op was.
//!
//! The state is per thread (each test runs on its own thread); call [`reset`] at the start of
//! a test or of each proptest case. It works with any backend.
//!
//! ```
//! use xuring_core::{Ring, RunCondition};
//! use xuring_mock::{MockRingExt, track};
//!
//! track::reset();
//! let mut ring = Ring::init_mock();
//! for _ in 0..3 {
//!     track::expect(ring.noop(track::context()));
//! }
//! ring.run(RunCondition::UntilDone)?;
//! track::check_complete();
//! # Ok::<(), xuring_core::RingError>(())
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;

use xuring_core::{Backend, Context, OpResult, Ring, RingError, Task, TaskHandle, TaskId};

#[derive(Default)]
struct State {
    /// Expected ops and how many callbacks each has had.
    calls: BTreeMap<TaskId, u32>,
    results: BTreeMap<TaskId, Option<OpResult>>,
    violations: Vec<String>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Forgets everything tracked on this thread.
pub fn reset() {
    STATE.with(|s| *s.borrow_mut() = State::default());
}

/// Registers an op whose callback must run exactly once. Returns the handle.
pub fn expect<B: Backend>(handle: TaskHandle<B>) -> TaskHandle<B> {
    expect_id(handle.id());
    handle
}

/// Registers an op by id.
pub fn expect_id(id: TaskId) {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.calls.insert(id, 0).is_some() {
            s.violations.push(format!(
                "{id:?} was submitted twice (a task identity reused)"
            ));
        }
    });
}

/// Records `task`'s callback. Call it from the callbacks of tracked ops.
pub fn record<B: Backend>(task: &Task<B>) {
    let id = task.id();
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.results.insert(id, task.result);
        match s.calls.get_mut(&id) {
            Some(n) => {
                *n += 1;
                if *n > 1 {
                    let n = *n;
                    s.violations
                        .push(format!("{id:?} was called back {n} times"));
                }
            }
            None => s
                .violations
                .push(format!("{id:?} was called back but never expected")),
        }
    });
}

/// A callback that only [records](record).
pub fn callback<B: Backend>(_ring: &mut Ring<B>, task: &Task<B>) -> Result<(), RingError> {
    record(task);
    Ok(())
}

/// A context whose callback only [records](record).
pub fn context<B: Backend>() -> Context<B> {
    Context {
        cb: callback::<B>,
        ..Context::default()
    }
}

/// How many callbacks `id` has had (`None` if it was never expected).
pub fn calls(id: TaskId) -> Option<u32> {
    STATE.with(|s| s.borrow().calls.get(&id).copied())
}

/// The result `id`'s callback saw, if it ran.
pub fn result(id: TaskId) -> Option<OpResult> {
    STATE.with(|s| s.borrow().results.get(&id).copied().flatten())
}

/// Expected ops whose callback has not run yet.
pub fn outstanding() -> usize {
    STATE.with(|s| s.borrow().calls.values().filter(|&&n| n == 0).count())
}

/// Expected ops whose callback has run.
pub fn finished() -> usize {
    STATE.with(|s| s.borrow().calls.values().filter(|&&n| n > 0).count())
}

/// What went wrong so far (empty if nothing did).
pub fn violations() -> Vec<String> {
    STATE.with(|s| s.borrow().violations.clone())
}

/// Panics if an op was called back twice, or a callback ran for an op never expected.
pub fn check() {
    let v = violations();
    assert!(v.is_empty(), "callback tracking: {}", v.join("; "));
}

/// [`check`], and panics unless every expected op has been called back.
pub fn check_complete() {
    check();
    let missing: Vec<TaskId> = STATE.with(|s| {
        s.borrow()
            .calls
            .iter()
            .filter(|&(_, &n)| n == 0)
            .map(|(&id, _)| id)
            .collect()
    });
    assert!(
        missing.is_empty(),
        "callback tracking: {} op(s) never called back: {missing:?}",
        missing.len()
    );
}
