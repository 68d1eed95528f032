//! The io_uring hazards that the mock can stage deterministically (see `docs/reliability.md`):
//! enter failing after k of n SQEs were consumed, `EINTR`/`EAGAIN`/`EBUSY` from enter, CQ
//! overflow, callback storms on a 4-entry ring, cancel races, short transfers and `EAGAIN`
//! results, duplicate and foreign CQEs, teardown with work in flight, and no op the features
//! lack at any kernel level.
//!
//! Some of these need finer control over `enter` than the mock's fault rates give, or need to
//! see every op the ring hands over: [`Spy`] is a `Backend` that wraps a [`Mock`], stages the
//! pushed ops itself, feeds the mock exactly `k` of them before failing an `enter` on
//! request, and checks each pushed op against the features.
//!
//! Sizes shrink under Miri (`SCALE`), where this file runs with the rest of the mock's tests.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ptr::NonNull;
use std::time::Duration;

use xuring_core::{
    Backend, BufferPool, Completion, Context, Errno, Features, IoBuf, IoVecs, KernelLevel, Message,
    Offset, Op, OpKind, OpResult, Ring, RingBuilder, RingError, RunCondition, Task, TaskHandle,
    TaskId, TaskState, Timespec,
};
use xuring_mock::{
    DEADLOCK, Faults, Mock, MockBuilder, MockControl, Order, Reply, SplitMix64, check_invariants,
    run_seeds, track,
};
use xuring_sys::{CancelFlags, SqFull};

/// Divides the sizes of the heavier tests under Miri.
const SCALE: usize = if cfg!(miri) { 100 } else { 1 };

fn secs(sec: i64) -> Timespec {
    Timespec { sec, nsec: 0 }
}

// ----- the spy backend -----

/// What the spy does at one `enter`.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Hand every staged op to the mock and enter it as asked.
    Pass,
    /// Hand the mock only the first `k` staged ops, let it consume them (without waiting),
    /// then fail the `enter` with `errno`, as a kernel that consumed k SQEs and then hit an
    /// error would.
    FailAfter { k: usize, errno: Errno },
}

/// A `Backend` around a [`Mock`]: ops are staged here until an `enter` hands them over, so a
/// scripted `enter` can fail after exactly `k` of them were consumed; and every op pushed is
/// checked against the features (an op whose opcode they lack is a violation).
struct Spy {
    mock: Mock,
    entries: u32,
    staged: VecDeque<(NonNull<Op>, u64)>,
    script: VecDeque<Step>,
    /// Injected enter failures, by errno.
    injected: BTreeMap<i32, u64>,
    /// Opcodes pushed, by name.
    opcodes: BTreeSet<&'static str>,
    /// Ops pushed although the features lack them.
    unsupported: Vec<String>,
}

impl Spy {
    fn new(mock: Mock, entries: u32) -> Spy {
        Spy {
            mock,
            entries,
            staged: VecDeque::new(),
            script: VecDeque::new(),
            injected: BTreeMap::new(),
            opcodes: BTreeSet::new(),
            unsupported: Vec::new(),
        }
    }

    /// Moves up to `k` staged ops to the mock, oldest first.
    fn hand_over(&mut self, k: usize) {
        for _ in 0..k {
            let Some((op, user_data)) = self.staged.pop_front() else {
                return;
            };
            // SAFETY: `op` came through `Spy::push`, whose contract (live, unmoved, untouched
            // until its completion is reaped) is the same as the mock's; the completion can
            // only come from the mock, after this push.
            let pushed = unsafe { self.mock.push(op, user_data) };
            if pushed.is_err() {
                self.staged.push_front((op, user_data));
                return;
            }
        }
    }

    /// Ops the ring counts in flight: staged here, or not yet delivered by the mock.
    fn holding(&self) -> usize {
        self.staged.len() + self.mock.undelivered() as usize
    }
}

/// What `Ring<Spy>::backend_mut` gives: the mock's steering and the enter script, never the
/// `Spy` itself.
struct SpyControl<'a> {
    mock: MockControl<'a>,
    script: &'a mut VecDeque<Step>,
}

// SAFETY: the spy hands each op to its mock before the mock can complete it, and reports only
// the mock's completions, so the mock's guarantees are the spy's; `SpyControl` exposes only
// the mock's steering and the script, never the spy or the mock themselves.
unsafe impl Backend for Spy {
    type Control<'a> = SpyControl<'a>;

    fn control(&mut self) -> SpyControl<'_> {
        SpyControl {
            mock: self.mock.control(),
            script: &mut self.script,
        }
    }

    fn close_undelivered(&mut self, fd: std::os::fd::RawFd) {
        self.mock.close_undelivered(fd);
    }

    fn stops_on_drop(&self) -> bool {
        self.mock.stops_on_drop()
    }

    fn features(&self) -> &Features {
        self.mock.features()
    }

    fn space(&self) -> u32 {
        self.entries.saturating_sub(self.staged.len() as u32)
    }

    fn unsubmitted(&self) -> u32 {
        self.staged.len() as u32 + self.mock.unsubmitted()
    }

    unsafe fn push(&mut self, op: NonNull<Op>, user_data: u64) -> Result<(), SqFull> {
        if self.staged.len() >= self.entries as usize {
            return Err(SqFull);
        }
        // SAFETY: `push`'s contract: `op` points to a live op that nothing else touches
        // until its completion is reaped; this only reads it, before handing it on.
        let op_ref = unsafe { op.as_ref() };
        let features = *self.mock.features();
        let code = op_ref.kind().opcode();
        self.opcodes.insert(code.c_name());
        let all_any = CancelFlags::ALL | CancelFlags::ANY;
        if !features.supports(code) {
            self.unsupported
                .push(format!("{} at {:?}", code.c_name(), features.level));
        } else if op_ref.kind() == OpKind::CancelAll && !features.cancel.contains(all_any) {
            self.unsupported
                .push(format!("ASYNC_CANCEL ALL|ANY at {:?}", features.level));
        }
        self.staged.push_back((op, user_data));
        Ok(())
    }

    fn enter(&mut self, min_complete: u32, timeout: Option<Timespec>) -> Result<(), Errno> {
        match self.script.pop_front().unwrap_or(Step::Pass) {
            Step::Pass => {
                self.hand_over(usize::MAX);
                self.mock.enter(min_complete, timeout)
            }
            Step::FailAfter { k, errno } => {
                self.hand_over(k);
                // The mock consumes what it was given and posts what completes; with
                // `min_complete` 0 it never waits, and its own outcome does not matter here.
                let _ = self.mock.enter(0, None);
                *self.injected.entry(errno.raw()).or_default() += 1;
                Err(errno)
            }
        }
    }

    fn reap(&mut self, sink: impl FnMut(Completion)) {
        self.mock.reap(sink);
    }

    fn now(&self) -> Timespec {
        self.mock.now()
    }

    fn overflowed(&self) -> bool {
        self.mock.overflowed()
    }
}

/// Every task slot is in exactly one place, and the ring and the spy agree on what is in
/// flight: nothing was recycled while the backend still held it.
fn conserved<B: Backend>(ring: &Ring<B>) {
    let running = ring.count_tasks(TaskState::Running);
    let waiting = ring.count_tasks(TaskState::Waiting);
    let total = ring.free_tasks()
        + ring.queued()
        + ring.in_flight() as usize
        + ring.ready()
        + running
        + waiting;
    assert_eq!(total, ring.capacity() as usize, "tasks not conserved");
    assert_eq!(ring.free_tasks(), ring.count_tasks(TaskState::Free));
    assert_eq!(ring.queued(), ring.count_tasks(TaskState::Queued));
    assert_eq!(
        ring.in_flight() as usize,
        ring.count_tasks(TaskState::InFlight)
    );
    assert_eq!(ring.ready(), ring.count_tasks(TaskState::Ready));
}

fn spy_check(ring: &Ring<Spy>) {
    conserved(ring);
    assert_eq!(
        ring.in_flight() as usize,
        ring.backend().holding(),
        "the ring and the backend disagree on what is in flight"
    );
    if let Some(pool) = ring.buffers() {
        // Every op here holds a pool buffer: one lent out per op the backend holds, at least.
        let lent = pool.count() - pool.available();
        assert!(
            lent >= ring.in_flight() as usize,
            "a pool buffer came back while its op was in flight ({lent} lent, {} in flight)",
            ring.in_flight()
        );
    }
}

// ----- enter errors after k of n SQEs consumed -----

thread_local! {
    static FILE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

const FILE_FD: i32 = 3;
const CHUNK: usize = 64;

/// A read of chunk `msg` of the file: checks the bytes and that its buffer came back.
fn on_chunk<B: Backend>(_ring: &mut Ring<B>, task: &Task<B>) -> Result<(), RingError> {
    track::record(task);
    let at = usize::from(task.msg()) * CHUNK;
    assert_eq!(task.result, Some(OpResult::Read(Ok(CHUNK))), "chunk {at}");
    let buf = task.take_buf().expect("the buffer comes back");
    FILE.with(|f| assert_eq!(&buf.as_slice()[..CHUNK], &f.borrow()[at..at + CHUNK]));
    Ok(())
}

/// Runs until done, accepting only `expected` as an error (the ring stays usable after it).
fn run_through(ring: &mut Ring<Spy>, expected: Errno) -> u32 {
    let mut errors = 0;
    for _ in 0..1000 {
        spy_check(ring);
        match ring.run(RunCondition::UntilDone) {
            Ok(()) => return errors,
            Err(RingError::Enter(e)) if e == expected => errors += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    panic!("no progress after 1000 runs");
}

#[test]
fn enter_failing_after_k_of_n_consumed_loses_and_releases_nothing() {
    let data: Vec<u8> = (0..64 * CHUNK).map(|i| (i * 31 % 251) as u8).collect();
    FILE.with(|f| *f.borrow_mut() = data.clone());
    let mut cases = 0;
    // EINTR is retried at once, EAGAIN/EBUSY reap and go on, ENOMEM/EFAULT reach the caller.
    for errno in [
        Errno::EINTR,
        Errno::EAGAIN,
        Errno::EBUSY,
        Errno::ENOMEM,
        Errno::EFAULT,
    ] {
        for n in [1usize, 2, 4, 8] {
            for k in 0..=n {
                track::reset();
                let mock = MockBuilder::new().sq_entries(n as u32).build();
                let options = RingBuilder::new(n as u32).buffer_pool(2 * n + 2, CHUNK);
                let mut ring = options.build_with(Spy::new(mock, n as u32)).expect("ring");
                ring.backend_mut().mock.set_file(FILE_FD, data.clone());
                let pool = ring.buffers().expect("pool").clone();
                // Twice the SQ: a full batch of n, then more queued behind it.
                for chunk in 0..2 * n as u16 {
                    let ctx = Context {
                        cb: on_chunk::<Spy>,
                        msg: chunk,
                        userdata: None,
                    };
                    let buf = pool.get().expect("a free buffer");
                    let at = u64::from(chunk) * CHUNK as u64;
                    track::expect(ring.read(FILE_FD, buf, Offset::At(at), ctx));
                }
                ring.backend_mut()
                    .script
                    .push_back(Step::FailAfter { k, errno });
                let errors = run_through(&mut ring, errno);
                let reported = matches!(errno, Errno::ENOMEM | Errno::EFAULT);
                assert_eq!(errors, u32::from(reported), "{errno:?} k={k} n={n}");
                spy_check(&ring);
                track::check_complete();
                assert!(ring.is_idle());
                assert_eq!(pool.available(), pool.count(), "every buffer is back");
                assert_eq!(ring.backend().injected.values().sum::<u64>(), 1);
                let stats = ring.stats();
                match errno {
                    Errno::EINTR => assert_eq!(stats.eintr_retries, 1),
                    Errno::EAGAIN | Errno::EBUSY => assert_eq!(stats.busy_retries, 1),
                    _ => {}
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 5 * (2 + 3 + 5 + 9));
}

#[test]
fn random_enter_failures_at_every_enter_lose_nothing() {
    let data: Vec<u8> = (0..64 * CHUNK).map(|i| (i % 253) as u8).collect();
    FILE.with(|f| *f.borrow_mut() = data.clone());
    run_seeds(0xe47e5, (20 / SCALE.min(10)) as u32, |seed| {
        track::reset();
        let mut rng = SplitMix64::new(seed);
        let mock = MockBuilder::new().sq_entries(4).seed(seed).build();
        let mut ring = RingBuilder::new(4)
            .buffer_pool(64, CHUNK)
            .build_with(Spy::new(mock, 4))
            .expect("ring");
        ring.backend_mut().mock.set_file(FILE_FD, data.clone());
        let pool = ring.buffers().expect("pool").clone();
        let errnos = [Errno::EINTR, Errno::EAGAIN, Errno::EBUSY];
        for _ in 0..200 / SCALE {
            let step = Step::FailAfter {
                k: rng.below(5) as usize,
                errno: errnos[rng.below(3) as usize],
            };
            ring.backend_mut().script.push_back(step);
            if rng.chance(0.5) {
                ring.backend_mut().script.push_back(Step::Pass);
            }
        }
        for chunk in 0..64u16 {
            let ctx = Context {
                cb: on_chunk::<Spy>,
                msg: chunk,
                userdata: None,
            };
            let buf = pool.get().expect("a free buffer");
            track::expect(ring.read(
                FILE_FD,
                buf,
                Offset::At(u64::from(chunk) * CHUNK as u64),
                ctx,
            ));
            if rng.chance(0.3) {
                ring.run(RunCondition::NoWait).expect("retried faults only");
                spy_check(&ring);
            }
        }
        ring.run(RunCondition::UntilDone)
            .expect("retried faults only");
        spy_check(&ring);
        track::check_complete();
        assert_eq!(pool.available(), 64);
        let injected = &ring.backend().injected;
        let stats = ring.stats();
        assert_eq!(
            stats.eintr_retries,
            injected.get(&libc::EINTR).copied().unwrap_or(0)
        );
        assert_eq!(
            stats.busy_retries,
            injected.get(&libc::EAGAIN).copied().unwrap_or(0)
                + injected.get(&libc::EBUSY).copied().unwrap_or(0)
        );
    });
}

// ----- CQ overflow -----

#[test]
fn ten_thousand_completions_through_a_16_entry_cq() {
    for order in [Order::Submission, Order::Shuffled] {
        for faults in [Faults::none(), Faults::chaos()] {
            track::reset();
            let mut ring = MockBuilder::new()
                .sq_entries(16)
                .cq_entries(16)
                .order(order)
                .faults(faults)
                .seed(16)
                .build_ring();
            let n = 10_000 / SCALE;
            // Timers that all expire at one virtual instant, and noops that complete at once.
            for i in 0..n {
                if i % 2 == 0 {
                    track::expect(ring.timer_at(secs(5), track::context()));
                } else {
                    track::expect(ring.noop(track::context()));
                }
            }
            ring.run(RunCondition::UntilDone).expect("run");
            check_invariants(&ring);
            track::check_complete();
            assert_eq!(track::finished(), n);
            assert!(ring.backend().stats().overflowed > 0, "the CQ overflowed");
            assert!(ring.is_idle());
        }
    }
}

// ----- callback storms -----

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    static MAX_DEPTH: Cell<u32> = const { Cell::new(0) };
    static STORM_RNG: RefCell<SplitMix64> = const { RefCell::new(SplitMix64::new(0)) };
    static STORM_HANDLES: RefCell<Vec<TaskHandle<Mock>>> = const { RefCell::new(Vec::new()) };
    static STORM_BUDGET: Cell<u32> = const { Cell::new(0) };
    static STORM_STATS: RefCell<[u64; 6]> = const { RefCell::new([0; 6]) };
}

const PIPE_FD: i32 = 4;
const OUT_FD: i32 = 5;

fn storm_ctx() -> Context<Mock> {
    Context {
        cb: storm_cb,
        ..Context::default()
    }
}

fn storm_submit(ring: &mut Ring<Mock>, pick: u64) {
    let budget = STORM_BUDGET.with(Cell::get);
    if budget == 0 {
        return;
    }
    STORM_BUDGET.with(|b| b.set(budget - 1));
    let handle = match pick % 5 {
        0 => ring.noop(storm_ctx()),
        1 => ring.timer(secs((pick % 3) as i64), storm_ctx()),
        2 => ring.read(PIPE_FD, vec![0u8; 8], Offset::File, storm_ctx()),
        3 => ring.write(OUT_FD, vec![1u8; 8], Offset::File, storm_ctx()),
        _ => ring.read(FILE_FD, vec![0u8; 8], Offset::At(pick % 64), storm_ctx()),
    };
    track::expect(handle);
    STORM_HANDLES.with(|h| h.borrow_mut().push(handle));
}

/// Submits, cancels, feeds the pipe, tries a nested run, or stops the run, at random.
fn storm_cb(ring: &mut Ring<Mock>, task: &Task<Mock>) -> Result<(), RingError> {
    let depth = DEPTH.with(|d| {
        d.set(d.get() + 1);
        d.get()
    });
    MAX_DEPTH.with(|m| m.set(m.get().max(depth)));
    track::record(task);
    check_invariants(ring);
    let roll = STORM_RNG.with(|r| r.borrow_mut().next_u64());
    let outcome = match roll % 10 {
        0..=3 => {
            for i in 0..=(roll >> 8) % 3 {
                storm_submit(ring, (roll >> 16).wrapping_add(i));
            }
            STORM_STATS.with(|s| s.borrow_mut()[0] += 1);
            Ok(())
        }
        4 | 5 => {
            let target = STORM_HANDLES.with(|h| {
                let h = h.borrow();
                (!h.is_empty()).then(|| h[(roll >> 8) as usize % h.len()])
            });
            if let Some(target) = target {
                track::expect(target.cancel(ring, storm_ctx()));
            }
            STORM_STATS.with(|s| s.borrow_mut()[1] += 1);
            Ok(())
        }
        6 => {
            ring.backend_mut().feed(PIPE_FD, b"12345678");
            STORM_STATS.with(|s| s.borrow_mut()[2] += 1);
            Ok(())
        }
        7 => {
            assert!(
                matches!(ring.run(RunCondition::NoWait), Err(RingError::Reentrant)),
                "a nested run is refused"
            );
            STORM_STATS.with(|s| s.borrow_mut()[3] += 1);
            Ok(())
        }
        8 if roll % 97 == 0 => {
            track::expect(ring.cancel_all(storm_ctx()));
            STORM_STATS.with(|s| s.borrow_mut()[4] += 1);
            Ok(())
        }
        _ => {
            STORM_STATS.with(|s| s.borrow_mut()[5] += 1);
            Err(RingError::callback("the storm stops this run"))
        }
    };
    DEPTH.with(|d| d.set(d.get() - 1));
    outcome
}

#[test]
fn callback_storms_never_nest() {
    let mut callbacks = 0;
    let mut stops = 0;
    run_seeds(0x5707, (8 / SCALE.min(4)) as u32, |seed| {
        track::reset();
        MAX_DEPTH.with(|m| m.set(0));
        STORM_RNG.with(|r| *r.borrow_mut() = SplitMix64::new(seed));
        STORM_HANDLES.with(|h| h.borrow_mut().clear());
        STORM_BUDGET.with(|b| b.set((5_000 / SCALE) as u32));
        let mut ring = MockBuilder::new()
            .sq_entries(4)
            .cq_entries(4)
            .order(Order::Shuffled)
            .faults(Faults::chaos())
            .seed(seed)
            .build_ring();
        ring.backend_mut().pipe(PIPE_FD);
        ring.backend_mut().set_file(FILE_FD, vec![7u8; 128]);
        for pick in 0..8 {
            storm_submit(&mut ring, pick);
        }
        let mut closed = false;
        for _ in 0..1_000_000 {
            match ring.run(RunCondition::UntilDone) {
                Ok(()) => break,
                Err(RingError::Callback(_)) => stops += 1,
                // Only reads of the empty pipe are left: give them an end.
                Err(RingError::Enter(e)) if e == DEADLOCK && !closed => {
                    ring.backend_mut().close(PIPE_FD);
                    closed = true;
                }
                Err(e) => panic!("seed {seed}: {e}"),
            }
            check_invariants(&ring);
        }
        if !ring.is_idle() {
            ring.backend_mut().close(PIPE_FD);
            ring.run(RunCondition::UntilDone).expect("drain");
        }
        check_invariants(&ring);
        track::check_complete();
        callbacks += ring.stats().callbacks;
        assert_eq!(
            MAX_DEPTH.with(Cell::get),
            1,
            "seed {seed}: callbacks ran nested"
        );
    });
    assert!(
        callbacks > 0 && stops > 0,
        "{callbacks} callbacks, {stops} stops"
    );
    eprintln!(
        "callback storms: {callbacks} callbacks, {stops} stopped runs, actions {:?}",
        STORM_STATS.with(|s| *s.borrow())
    );
}

// ----- cancel races -----

/// Whether `result` is a final result of a target: its success, or `ECANCELED`.
fn target_result_ok(result: OpResult) -> bool {
    matches!(
        result,
        OpResult::Noop(Ok(()) | Err(Errno::ECANCELED))
            | OpResult::Timer(Ok(()) | Err(Errno::ECANCELED))
            | OpResult::Read(Ok(_) | Err(Errno::ECANCELED))
    )
}

fn cancelled(result: OpResult) -> bool {
    matches!(
        result,
        OpResult::Noop(Err(Errno::ECANCELED))
            | OpResult::Timer(Err(Errno::ECANCELED))
            | OpResult::Read(Err(Errno::ECANCELED))
    )
}

#[test]
fn ten_thousand_cancels_racing_their_targets() {
    const BLOCKED_FD: i32 = 7;
    const RACE_PIPE: i32 = 8;
    let mut total_cancels = 0usize;
    let mut verdicts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut stale_checked = 0usize;
    run_seeds(0xca9ce1, 4, |seed| {
        track::reset();
        let mut rng = SplitMix64::new(seed);
        let mut ring = MockBuilder::new()
            .sq_entries(8)
            .cq_entries(8)
            .order(Order::Shuffled)
            .seed(seed)
            .build_ring();
        // Some cancels find their target running and cannot stop it: EALREADY.
        let mut handler_rng = SplitMix64::new(seed ^ 0xa1);
        ring.backend_mut().handle(OpKind::Cancel, move |_req| {
            if handler_rng.chance(0.1) {
                Reply::Err(Errno::EALREADY)
            } else {
                Reply::Default
            }
        });
        let mut pairs: Vec<(TaskId, TaskId)> = Vec::new();
        let rounds = 50 / SCALE.min(25);
        for _round in 0..rounds {
            ring.backend_mut().set_file(BLOCKED_FD, vec![3u8; 64]);
            ring.backend_mut().block_fd(BLOCKED_FD);
            ring.backend_mut().pipe(RACE_PIPE);
            let mut round_pairs = Vec::new();
            let mut later = Vec::new();
            for _ in 0..50 {
                let target = match rng.below(4) {
                    0 => ring.noop(track::context()),
                    1 => ring.timer(secs(1 + rng.below(3) as i64), track::context()),
                    2 => ring.read(BLOCKED_FD, vec![0u8; 8], Offset::File, track::context()),
                    _ => ring.read(RACE_PIPE, vec![0u8; 8], Offset::File, track::context()),
                };
                track::expect(target);
                match rng.below(4) {
                    // Still queued.
                    0 => {
                        let c = track::expect(target.cancel(&mut ring, track::context()));
                        round_pairs.push((target.id(), c.id()));
                    }
                    _ => later.push(target),
                }
                match rng.below(6) {
                    0 => ring.backend_mut().hold(true),
                    1 => {
                        ring.backend_mut().hold(false);
                        ring.backend_mut().release_held();
                    }
                    2 => ring.backend_mut().feed(RACE_PIPE, b"ab"),
                    3 => ring.backend_mut().advance(Duration::from_secs(1)),
                    _ => {}
                }
                if rng.chance(0.5) {
                    ring.run(RunCondition::NoWait).expect("run");
                }
                // Cancel some of the earlier targets, which may have completed by now.
                while !later.is_empty() && rng.chance(0.6) {
                    let i = rng.below(later.len() as u64) as usize;
                    let target = later.swap_remove(i);
                    let c = track::expect(target.cancel(&mut ring, track::context()));
                    round_pairs.push((target.id(), c.id()));
                }
            }
            for target in later.drain(..) {
                let c = track::expect(target.cancel(&mut ring, track::context()));
                round_pairs.push((target.id(), c.id()));
            }
            // Let everything end: unblock, close the pipe, release what is held.
            ring.backend_mut().unblock_fd(BLOCKED_FD);
            ring.backend_mut().close(RACE_PIPE);
            ring.backend_mut().hold(false);
            ring.backend_mut().release_held();
            ring.run(RunCondition::UntilDone).expect("run");
            check_invariants(&ring);
            assert!(ring.is_idle());

            // A cancel of a recycled slot: aimed at a finished target whose slot now holds a
            // new timer, it misses and the timer still expires.
            let stale: Vec<TaskId> = round_pairs.iter().take(10).map(|p| p.0).collect();
            let mut occupants = Vec::new();
            for _ in 0..16 {
                occupants.push(track::expect(ring.timer(secs(1), track::context())));
            }
            for id in stale {
                let c = track::expect(ring.cancel(id, track::context()));
                ring.run(RunCondition::NoWait).expect("run");
                assert_eq!(
                    track::result(c.id()),
                    Some(OpResult::Cancel(Err(Errno::ENOENT))),
                    "a cancel of a recycled task misses"
                );
                stale_checked += 1;
            }
            ring.run(RunCondition::UntilDone).expect("run");
            for o in occupants {
                assert_eq!(track::result(o.id()), Some(OpResult::Timer(Ok(()))));
            }
            pairs.extend(round_pairs);
        }
        track::check_complete();
        check_invariants(&ring);
        for (target, cancel) in &pairs {
            let t = track::result(*target).expect("target result");
            let c = track::result(*cancel).expect("cancel result");
            assert!(target_result_ok(t), "target {t:?}");
            let verdict = match c {
                OpResult::Cancel(Ok(())) => "ok",
                OpResult::Cancel(Err(Errno::ENOENT)) => "ENOENT",
                OpResult::Cancel(Err(Errno::EALREADY)) => "EALREADY",
                other => panic!("cancel result {other:?}"),
            };
            *verdicts.entry(verdict).or_default() += 1;
            // A cancel that succeeded stopped its target; a target that reports ECANCELED
            // was stopped by its cancel.
            if verdict == "ok" {
                assert!(cancelled(t), "cancel ok but target {t:?}");
            }
            if cancelled(t) {
                assert_eq!(verdict, "ok", "target cancelled but the cancel says {c:?}");
            }
        }
        total_cancels += pairs.len();
    });
    eprintln!(
        "cancel races: {total_cancels} cancels, verdicts {verdicts:?}, {stale_checked} stale"
    );
    assert!(total_cancels >= 10_000 / SCALE);
    for verdict in ["ok", "ENOENT", "EALREADY"] {
        assert!(verdicts.get(verdict).copied().unwrap_or(0) > 0, "{verdict}");
    }
}

// ----- short transfers and EAGAIN results -----

/// A write-all or read-exact in progress, in the pattern of `xuring-std`'s `send_all` and
/// `recv_exact`, built from core ops only.
#[derive(Default)]
struct Transfer {
    fd: i32,
    data: Vec<u8>,
    done: usize,
    short: u32,
    retries: u32,
    finished: bool,
}

thread_local! {
    static TRANSFERS: RefCell<Vec<Transfer>> = const { RefCell::new(Vec::new()) };
}

fn transfer_ctx<B: Backend>(cb: xuring_core::Callback<B>, index: usize) -> Context<B> {
    Context {
        cb,
        msg: index as u16,
        userdata: None,
    }
}

/// Submits the rest of transfer `index` (writes when `write`).
fn transfer_next<B: Backend>(ring: &mut Ring<B>, index: usize, write: bool) {
    let (fd, rest) = TRANSFERS.with(|t| {
        let t = &t.borrow()[index];
        (t.fd, t.data.len() - t.done)
    });
    if write {
        let bytes = TRANSFERS.with(|t| {
            let t = &t.borrow()[index];
            t.data[t.done..].to_vec()
        });
        ring.write(fd, bytes, Offset::File, transfer_ctx(on_written, index));
    } else {
        ring.read(
            fd,
            vec![0u8; rest],
            Offset::File,
            transfer_ctx(on_read_some, index),
        );
    }
}

fn on_written<B: Backend>(ring: &mut Ring<B>, task: &Task<B>) -> Result<(), RingError> {
    let index = usize::from(task.msg());
    let more = TRANSFERS.with(|t| {
        let t = &mut t.borrow_mut()[index];
        match task.result {
            Some(OpResult::Write(Ok(n))) => {
                if n < t.data.len() - t.done {
                    t.short += 1;
                }
                t.done += n;
            }
            Some(OpResult::Write(Err(Errno::EAGAIN | Errno::EINTR))) => t.retries += 1,
            other => panic!("write: {other:?}"),
        }
        t.finished = t.done == t.data.len();
        !t.finished
    });
    if more {
        transfer_next(ring, index, true);
    }
    Ok(())
}

fn on_read_some<B: Backend>(ring: &mut Ring<B>, task: &Task<B>) -> Result<(), RingError> {
    let index = usize::from(task.msg());
    let buf = task.take_buf();
    let more = TRANSFERS.with(|t| {
        let t = &mut t.borrow_mut()[index];
        match task.result {
            Some(OpResult::Read(Ok(0))) => panic!("EOF after {} of {} bytes", t.done, t.data.len()),
            Some(OpResult::Read(Ok(n))) => {
                if n < t.data.len() - t.done {
                    t.short += 1;
                }
                let buf = buf.expect("the buffer comes back");
                let at = t.done;
                t.data[at..at + n].copy_from_slice(&buf.as_slice()[..n]);
                t.done += n;
            }
            Some(OpResult::Read(Err(Errno::EAGAIN | Errno::EINTR))) => t.retries += 1,
            other => panic!("read: {other:?}"),
        }
        t.finished = t.done == t.data.len();
        !t.finished
    });
    if more {
        transfer_next(ring, index, false);
    }
    Ok(())
}

#[test]
fn short_transfers_and_eagain_results_still_deliver_every_byte() {
    let (mut short, mut retries, mut bytes) = (0u32, 0u32, 0usize);
    run_seeds(0x5407, 4, |seed| {
        let faults = Faults {
            op_error: 0.2,
            errnos: vec![Errno::EAGAIN, Errno::EINTR],
            short_io: 0.6,
            ..Faults::none()
        };
        let mut ring = MockBuilder::new()
            .sq_entries(4)
            .order(Order::Shuffled)
            .faults(faults)
            .seed(seed)
            .build_ring();
        let len = 16_384 / SCALE;
        let mut sources = Vec::new();
        TRANSFERS.with(|t| t.borrow_mut().clear());
        for i in 0..8usize {
            let fd = 10 + i as i32;
            let data: Vec<u8> = (0..len).map(|b| (b * 7 + i) as u8).collect();
            let write = i % 2 == 0;
            if !write {
                ring.backend_mut().set_file(fd, data.clone());
            }
            sources.push((fd, data.clone(), write));
            TRANSFERS.with(|t| {
                t.borrow_mut().push(Transfer {
                    fd,
                    data: if write { data } else { vec![0u8; len] },
                    ..Transfer::default()
                })
            });
            transfer_next(&mut ring, i, write);
        }
        ring.run(RunCondition::UntilDone).expect("run");
        check_invariants(&ring);
        TRANSFERS.with(|t| {
            for (t, (fd, data, write)) in t.borrow().iter().zip(&sources) {
                assert!(t.finished, "fd {fd}: {} of {} bytes", t.done, data.len());
                if *write {
                    assert_eq!(ring.backend().written(*fd), &data[..], "fd {fd}");
                } else {
                    assert_eq!(&t.data, data, "fd {fd}");
                }
                short += t.short;
                retries += t.retries;
                bytes += t.done;
            }
        });
    });
    eprintln!("short transfers: {bytes} bytes, {short} short, {retries} EAGAIN/EINTR retries");
    assert!(short > 0 && retries > 0);
}

// ----- duplicate and foreign completions -----

#[test]
fn duplicate_and_foreign_completions_under_chaos_are_dropped() {
    let (mut dups, mut foreign) = (0u64, 0u64);
    run_seeds(0xd0b1e, 6, |seed| {
        track::reset();
        let faults = Faults {
            duplicate: 0.4,
            foreign: 0.5,
            ..Faults::chaos()
        };
        let mut ring = MockBuilder::new()
            .sq_entries(4)
            .cq_entries(4)
            .order(Order::Shuffled)
            .faults(faults)
            .seed(seed)
            .build_ring_with(RingBuilder::new(4).buffer_pool(8, 32))
            .expect("ring");
        ring.backend_mut().set_file(FILE_FD, vec![5u8; 256]);
        let pool = ring.buffers().expect("pool").clone();
        let mut rng = SplitMix64::new(seed);
        for i in 0..400 / SCALE {
            let handle = match rng.below(4) {
                0 => ring.noop(track::context()),
                1 => ring.timer(secs(rng.below(3) as i64), track::context()),
                2 => match pool.get() {
                    Some(buf) => {
                        ring.read(FILE_FD, buf, Offset::At(i as u64 % 200), track::context())
                    }
                    None => ring.noop(track::context()),
                },
                _ => ring.write(OUT_FD, vec![1u8; 16], Offset::File, track::context()),
            };
            track::expect(handle);
            if rng.chance(0.2) {
                ring.backend_mut().hold(rng.chance(0.5));
            }
            if rng.chance(0.3) {
                ring.run(RunCondition::NoWait).expect("run");
                check_invariants(&ring);
            }
        }
        ring.backend_mut().hold(false);
        ring.run(RunCondition::UntilDone).expect("run");
        check_invariants(&ring);
        track::check_complete();
        assert_eq!(pool.available(), 8);
        dups += ring.stats().stale_completions;
        foreign += ring.stats().foreign_completions;
    });
    eprintln!("duplicates dropped: {dups}, foreign dropped: {foreign}");
    assert!(dups > 0 && foreign > 0);
}

// ----- teardown with work in flight -----

/// Submits 8 pool-buffer reads that never complete on their own (an empty pipe, a blocked fd)
/// plus owned-buffer reads and timers, runs once without waiting, and returns the pool.
fn stage_teardown(ring: &mut Ring<Mock>, pattern: u8) -> BufferPool {
    let pool: BufferPool = ring.buffers().expect("pool").clone();
    ring.backend_mut().pipe(PIPE_FD);
    ring.backend_mut().block_fd(9);
    for i in 0..8 {
        let mut buf = pool.get().expect("buffer");
        buf.fill(pattern);
        let fd = if i % 2 == 0 { PIPE_FD } else { 9 };
        track::expect(ring.read(fd, buf, Offset::File, track::context()));
    }
    pool
}

fn check_returned(pool: &BufferPool, pattern: u8, round: u64) {
    assert_eq!(track::finished(), 0, "teardown runs no callbacks");
    assert_eq!(
        pool.available(),
        pool.count(),
        "round {round}: every buffer is back"
    );
    let bufs: Vec<_> = (0..pool.count())
        .map(|_| pool.get().expect("buffer"))
        .collect();
    for buf in &bufs {
        assert!(
            buf.iter().all(|&b| b == pattern),
            "round {round}: buffer {} changed",
            buf.index()
        );
    }
}

#[test]
fn dropping_a_ring_with_work_in_flight_returns_every_buffer_untouched() {
    const PATTERN: u8 = 0xA5;
    let leaked_before = xuring_core::leaked_tasks();
    for round in 0..20 {
        track::reset();
        let mut ring = MockBuilder::new()
            .sq_entries(16)
            .seed(round)
            .order(Order::Shuffled)
            .build_ring_with(RingBuilder::new(16).buffer_pool(8, 256))
            .expect("ring");
        let pool = stage_teardown(&mut ring, PATTERN);
        ring.run(RunCondition::NoWait).expect("submit");
        assert_eq!(ring.in_flight(), 8, "round {round}");
        // Owned buffers and timers too, still queued in the ring.
        for _ in 0..4 {
            track::expect(ring.read(PIPE_FD, vec![0u8; 64], Offset::File, track::context()));
            track::expect(ring.timer(secs(3600), track::context()));
        }
        assert_eq!(ring.queued(), 8);
        check_invariants(&ring);
        assert_eq!(pool.available(), 0, "every pool buffer is with an op");
        drop(ring);
        check_returned(&pool, PATTERN, round);
    }
    assert_eq!(xuring_core::leaked_tasks(), leaked_before);
}

/// BUG (xuring-core `Ring::teardown`, reported in `docs/reliability.md`): when the backend's
/// SQ is full at drop (here: `run(NoWait)` refilled it after its one `enter`), the teardown
/// cancel cannot be pushed, so teardown's first step is a wait with the whole teardown
/// deadline (`wait_until`) for ops that only the cancel would end. The deadline passes, the
/// cancel is pushed but never entered, and every task in flight is leaked with its buffer
/// (on the kernel: a 5 s hang in `drop`, then the leak). Fix: in teardown, submit without
/// waiting (`enter(0, None)`) while the submission queue is not empty, as `run_loop` does.
#[test]

fn dropping_a_ring_whose_sq_is_full_reaps_everything() {
    const PATTERN: u8 = 0x5A;
    track::reset();
    let leaked_before = xuring_core::leaked_tasks();
    let mut ring = MockBuilder::new()
        .sq_entries(4)
        .build_ring_with(RingBuilder::new(4).buffer_pool(8, 256))
        .expect("ring");
    let pool = stage_teardown(&mut ring, PATTERN);
    ring.run(RunCondition::NoWait).expect("submit");
    assert_eq!(ring.in_flight(), 8);
    assert_eq!(ring.backend().queued(), 4, "the mock's SQ is full again");
    drop(ring);
    assert_eq!(xuring_core::leaked_tasks(), leaked_before, "tasks leaked");
    check_returned(&pool, PATTERN, 0);
}

// ----- no unsupported op at any level -----

thread_local! {
    static LEVEL_RESULTS: RefCell<BTreeMap<u16, OpResult>> = const { RefCell::new(BTreeMap::new()) };
}

fn level_record(_ring: &mut Ring<Spy>, task: &Task<Spy>) -> Result<(), RingError> {
    let result = task.result.expect("a result");
    LEVEL_RESULTS.with(|r| r.borrow_mut().insert(task.msg(), result));
    Ok(())
}

fn level_ctx(msg: u16) -> Context<Spy> {
    Context {
        cb: level_record,
        msg,
        userdata: None,
    }
}

#[test]
fn no_op_the_features_lack_reaches_the_backend_at_any_level() {
    for level in KernelLevel::ALL {
        LEVEL_RESULTS.with(|r| r.borrow_mut().clear());
        let mock = MockBuilder::new().level(level).sq_entries(8).build();
        let mut ring = RingBuilder::new(8)
            .kernel_level(level)
            .build_with(Spy::new(mock, 8))
            .expect("ring");
        ring.backend_mut().mock.block_fd(9);
        let vecs = || IoVecs::new(vec![IoBuf::from(vec![0u8; 8]), IoBuf::from(vec![0u8; 8])]);
        let addr: std::net::SocketAddr = "127.0.0.1:9".parse().expect("addr");
        ring.noop(level_ctx(0));
        let timer = ring.timer(secs(30), level_ctx(1));
        ring.timer_at(secs(31), level_ctx(2));
        ring.read(3, vec![0u8; 8], Offset::At(0), level_ctx(3));
        ring.write(4, vec![1u8; 8], Offset::File, level_ctx(4));
        ring.readv(3, vecs(), Offset::At(0), level_ctx(5));
        ring.writev(4, vecs(), Offset::File, level_ctx(6));
        ring.open(c"/nonexistent", 0, 0, level_ctx(7));
        ring.close(100, level_ctx(8));
        ring.fsync(4, level_ctx(9));
        ring.fdatasync(4, level_ctx(10));
        ring.stat(c"/", level_ctx(11));
        ring.lstat(c"/", level_ctx(12));
        ring.socket(2, 1, 0, level_ctx(13));
        ring.connect(5, addr, level_ctx(14));
        ring.accept(5, level_ctx(15));
        ring.recv(5, vec![0u8; 8], 0, level_ctx(16));
        ring.send(5, vec![0u8; 8], 0, level_ctx(17));
        ring.poll(5, 1, level_ctx(18));
        ring.splice(3, None, 4, None, 8, 0, level_ctx(19));
        ring.msg_ring(6, Message { data: 1, value: 2 }, level_ctx(20));
        ring.shutdown(5, libc::SHUT_WR, level_ctx(26));
        let stuck = ring.read(9, vec![0u8; 8], Offset::File, level_ctx(21));
        // A deadline run: without EXT_ARG the ring bounds the wait with its own timer.
        ring.run(RunCondition::For(Duration::from_secs(1)))
            .expect("run");
        timer.cancel(&mut ring, level_ctx(22));
        stuck.cancel(&mut ring, level_ctx(23));
        ring.timer(secs(60), level_ctx(24));
        ring.run(RunCondition::NoWait).expect("run");
        ring.cancel_all(level_ctx(25));
        ring.run(RunCondition::UntilDone).expect("run");
        conserved(&ring);
        let spy = ring.backend();
        assert!(
            spy.unsupported.is_empty(),
            "{level}: unsupported ops reached the backend: {:?}",
            spy.unsupported
        );
        let results = LEVEL_RESULTS.with(|r| r.borrow().clone());
        assert_eq!(results.len(), 27, "{level}: {results:?}");
        let features = *ring.features();
        for (msg, code) in [
            (13, xuring_sys::Opcode::Socket),
            (19, xuring_sys::Opcode::Splice),
            (20, xuring_sys::Opcode::MsgRing),
            (26, xuring_sys::Opcode::Shutdown),
        ] {
            if !features.supports(code) {
                let result = results[&msg];
                let expected_err = match result {
                    OpResult::Socket(r) => r.err(),
                    OpResult::Splice(r) => r.err(),
                    OpResult::MsgRing(r) => r.err(),
                    OpResult::Shutdown(r) => r.err(),
                    other => panic!("{other:?}"),
                };
                assert_eq!(
                    expected_err,
                    Some(Errno::EOPNOTSUPP),
                    "{level}: {} falls back without reaching the backend",
                    code.c_name()
                );
            }
        }
        eprintln!("{level}: opcodes issued {:?}", spy.opcodes);
    }
}
