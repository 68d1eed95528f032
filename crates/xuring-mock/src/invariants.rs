//! `check_invariants`: what must hold between any two calls into a ring on the mock.

use xuring_core::{Ring, TaskState};

use crate::{Mock, track};

/// Panics, listing every violation and the mock's seed, unless all of these hold:
///
/// - every task slot is in exactly one state, and the ring's lists hold exactly the tasks in
///   theirs: `free_tasks() + queued() + in_flight() + ready() + running + waiting ==
///   capacity()`, each term equal to [`Ring::count_tasks`] of its state, at most one running;
/// - the ring and the mock agree: [`Ring::in_flight`] equals the ops the mock has not
///   delivered, and every push the ring counted reached the mock;
/// - no `user_data` was pushed twice (a task identity must change whenever its slot is
///   recycled);
/// - every duplicate and foreign completion the mock injected was counted and dropped
///   (`stale_completions`, `foreign_completions`), and every message a `msg_ring` posted
///   into the mock's own ring reached the ring as one (`messages`);
/// - with a buffer pool, at least as many buffers are lent out as ops in the mock hold one;
/// - the callback [tracker](crate::track) saw no op called back twice.
///
/// It only reads, so it can run after every step, including from inside a callback.
pub fn check_invariants(ring: &Ring<Mock>) {
    let mut problems: Vec<String> = Vec::new();
    let mock = ring.backend();
    let mstats = mock.stats();
    let rstats = ring.stats();

    let capacity = ring.capacity() as usize;
    let free = ring.free_tasks();
    let queued = ring.queued();
    let in_flight = ring.in_flight() as usize;
    let ready = ring.ready();
    let running = ring.count_tasks(TaskState::Running);
    let waiting = ring.count_tasks(TaskState::Waiting);
    let total = free + queued + in_flight + ready + running + waiting;
    if total != capacity {
        problems.push(format!(
            "tasks not conserved: free {free} + queued {queued} + in flight {in_flight} + \
             ready {ready} + running {running} + waiting {waiting} = {total} != capacity \
             {capacity}"
        ));
    }
    for (name, listed, state) in [
        ("free list", free, TaskState::Free),
        ("submission queue", queued, TaskState::Queued),
        ("in-flight count", in_flight, TaskState::InFlight),
        ("completion list", ready, TaskState::Ready),
    ] {
        let actual = ring.count_tasks(state);
        if listed != actual {
            problems.push(format!(
                "the {name} holds {listed} but {actual} tasks are {state:?}"
            ));
        }
    }
    if running > 1 {
        problems.push(format!("{running} tasks are running at once"));
    }

    if in_flight != mock.undelivered() as usize {
        problems.push(format!(
            "the ring has {in_flight} in flight but the mock has {} undelivered",
            mock.undelivered()
        ));
    }
    if rstats.submitted != mstats.pushed {
        problems.push(format!(
            "the ring submitted {} ops but the mock received {}",
            rstats.submitted, mstats.pushed
        ));
    }
    if !mock.reused_user_data().is_empty() {
        let reused: Vec<String> = mock
            .reused_user_data()
            .iter()
            .take(8)
            .map(|u| format!("{u:#x}"))
            .collect();
        problems.push(format!(
            "task identities reused: {} user_data value(s) pushed twice, e.g. {}",
            mock.reused_user_data().len(),
            reused.join(", ")
        ));
    }
    if rstats.foreign_completions != mstats.foreign_delivered {
        problems.push(format!(
            "the ring counted {} foreign completions, the mock delivered {}",
            rstats.foreign_completions, mstats.foreign_delivered
        ));
    }
    if rstats.messages != mstats.messages_delivered {
        problems.push(format!(
            "the ring counted {} messages, the mock delivered {}",
            rstats.messages, mstats.messages_delivered
        ));
    }
    if rstats.stale_completions != mstats.duplicates_delivered {
        problems.push(format!(
            "the ring counted {} stale completions, the mock delivered {} duplicates",
            rstats.stale_completions, mstats.duplicates_delivered
        ));
    }

    if let Some(pool) = ring.buffers() {
        let lent = pool.count() - pool.available();
        let held = mock.buffers_held(pool);
        if lent < held {
            problems.push(format!(
                "{held} ops in the mock hold pool buffers but only {lent} are lent out"
            ));
        }
    }

    problems.extend(track::violations());

    assert!(
        problems.is_empty(),
        "xuring-mock invariants violated (XURING_MOCK_SEED={}):\n  - {}",
        mock.seed(),
        problems.join("\n  - ")
    );
}
