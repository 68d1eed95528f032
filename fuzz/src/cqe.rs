//! Fuzz target `cqe`: the completion-stream decoder fed arbitrary `(user_data, res, flags)`
//! triples.
//!
//! Two parts. First, [`Op::decode`] of every op kind with arbitrary `res` values must return
//! that op's own `OpResult` variant and never panic. Second, a ring runs on [`Replay`], a
//! `Backend` that never touches the ops it is given and whose completion stream comes from the
//! input: completions of ops really in flight (with arbitrary results), arbitrary triples
//! (foreign, stale, or by chance a live task's id), duplicates of earlier completions, and
//! cross-ring messages. The ring must classify every CQE exactly once (a task's completion,
//! stale, foreign or a message), keep its task slots conserved, call every op back exactly
//! once, and never dereference anything for a CQE it does not recognise. Shared with
//! `crates/xuring-mock/tests/fuzz_replay.rs`, which replays the seeds.

use std::collections::VecDeque;
use std::ptr::NonNull;

use xuring_core::{
    Backend, Completion, Context, Errno, Features, KernelLevel, Offset, Op, OpKind, OpResult, Ring,
    RingBuilder, RingError, RunCondition, Task, TaskHandle, TaskState, Timespec,
};
use xuring_mock::track;
use xuring_sys::SqFull;

const MAX_ACTIONS: usize = 1024;

struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bytes<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = self.data.get(self.pos).copied();
        self.pos += 1;
        b
    }

    fn or0(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(core::array::from_fn(|_| self.or0()))
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(core::array::from_fn(|_| self.or0()))
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
}

/// A `Backend` whose completions come from the fuzz input. It records only the `user_data`
/// of what it is given: it never reads or writes an op.
pub struct Replay {
    features: Features,
    entries: u32,
    sq: VecDeque<u64>,
    in_flight: Vec<u64>,
    cq: VecDeque<Completion>,
    /// Completions to post at the next `enter`, planned by the driver from the input.
    plan: VecDeque<Planned>,
    /// Real completions already delivered (for duplicates).
    delivered_real: Vec<Completion>,
    /// CQEs with bit 63 set (cross-ring messages).
    pub messages: u64,
    /// Every other CQE (the ring must count each as stale or foreign).
    pub unknown: u64,
}

/// One completion the driver asks for.
#[derive(Clone, Copy, Debug)]
enum Planned {
    /// Complete the op in flight at this position (modulo) with `res`.
    Real { pick: u32, res: i32, flags: u32 },
    /// Post exactly this triple.
    Raw(Completion),
    /// Post again the completion delivered at this position (modulo).
    Duplicate { pick: u32 },
}

impl Replay {
    fn new(features: Features, entries: u32) -> Replay {
        Replay {
            features,
            entries,
            sq: VecDeque::new(),
            in_flight: Vec::new(),
            cq: VecDeque::new(),
            plan: VecDeque::new(),
            delivered_real: Vec::new(),
            messages: 0,
            unknown: 0,
        }
    }

    /// Posts `c`, classifying it by what the backend knows: a completion of an op in flight
    /// (which then leaves), a message, or something the ring must drop.
    fn post(&mut self, c: Completion) {
        if let Some(i) = self.in_flight.iter().position(|&u| u == c.user_data) {
            self.in_flight.swap_remove(i);
            self.delivered_real.push(c);
        } else if c.user_data & (1 << 63) != 0 {
            self.messages += 1;
        } else {
            self.unknown += 1;
        }
        self.cq.push_back(c);
    }

    fn holding(&self) -> usize {
        self.sq.len() + self.in_flight.len()
    }
}

// SAFETY: `Replay` never reads or writes an op (it keeps only `user_data`), so reporting any
// completion at any time, or being replaced through the `&mut` its `Control` hands out, cannot
// make anything use an op's memory after the ring recycles it: the contract's purpose holds.
// The ring must (and is fuzzed to) survive whatever completions it reports.
unsafe impl Backend for Replay {
    type Control<'a> = &'a mut Replay;

    fn control(&mut self) -> &mut Replay {
        self
    }

    fn stops_on_drop(&self) -> bool {
        // It never touches an op.
        true
    }

    fn close_undelivered(&mut self, _fd: std::os::fd::RawFd) {
        // The fds a replayed completion "creates" are made up: nothing to close.
    }

    fn features(&self) -> &Features {
        &self.features
    }

    fn space(&self) -> u32 {
        self.entries.saturating_sub(self.sq.len() as u32)
    }

    fn unsubmitted(&self) -> u32 {
        self.sq.len() as u32
    }

    unsafe fn push(&mut self, _op: NonNull<Op>, user_data: u64) -> Result<(), SqFull> {
        if self.sq.len() >= self.entries as usize {
            return Err(SqFull);
        }
        self.sq.push_back(user_data);
        Ok(())
    }

    fn enter(&mut self, min_complete: u32, _timeout: Option<Timespec>) -> Result<(), Errno> {
        self.in_flight.extend(self.sq.drain(..));
        while let Some(planned) = self.plan.pop_front() {
            match planned {
                Planned::Real { pick, res, flags } => {
                    if !self.in_flight.is_empty() {
                        let i = pick as usize % self.in_flight.len();
                        let user_data = self.in_flight[i];
                        self.post(Completion {
                            user_data,
                            res,
                            flags,
                        });
                    }
                }
                Planned::Raw(c) => self.post(c),
                Planned::Duplicate { pick } => {
                    if !self.delivered_real.is_empty() {
                        let i = pick as usize % self.delivered_real.len();
                        let c = self.delivered_real[i];
                        self.unknown += 1;
                        self.cq.push_back(c);
                    }
                }
            }
        }
        // Never block: when the ring waits and the plan gave it nothing, the oldest op in
        // flight completes with 0.
        if self.cq.len() < min_complete as usize && !self.in_flight.is_empty() {
            let user_data = self.in_flight[0];
            self.post(Completion {
                user_data,
                res: 0,
                flags: 0,
            });
        }
        if self.cq.len() < min_complete as usize {
            return Err(Errno::from_raw(libc::EDEADLK));
        }
        Ok(())
    }

    fn reap(&mut self, mut sink: impl FnMut(Completion)) {
        while let Some(c) = self.cq.pop_front() {
            sink(c);
        }
    }
}

/// `Op::decode` of every op kind (the list is `OpKind::ALL`, so a new op is covered as soon as
/// it is declared) with `res`: each returns its own variant, with the error `res` says, except
/// where the op reads an error as success (a timer's `ETIME`: it expired; a cancel-all's
/// `ENOENT`: nothing to cancel).
fn decode_every_kind(res: i32) {
    for &kind in OpKind::ALL {
        let op = kind.example();
        let result = op.decode(res);
        assert_eq!(
            result.kind(),
            Some(kind),
            "{op:?} decoded {res} as {result:?}"
        );
        let expected = (res < 0).then(|| Errno::from_raw(res.wrapping_neg()));
        let forgiven = match kind {
            OpKind::Timer => res == -libc::ETIME,
            OpKind::CancelAll => res == -libc::ENOENT,
            _ => false,
        };
        if !forgiven {
            assert_eq!(result.err(), expected, "{op:?} decoded {res} as {result:?}");
        }
        let count = match result {
            OpResult::Read(r)
            | OpResult::Write(r)
            | OpResult::Readv(r)
            | OpResult::Writev(r)
            | OpResult::Recv(r)
            | OpResult::Send(r)
            | OpResult::Splice(r) => r.ok(),
            _ => None,
        };
        if let Some(n) = count {
            assert_eq!(n, res as usize, "a byte count is the result as it is");
        }
    }
}

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
    assert_eq!(
        ring.in_flight() as usize,
        ring.count_tasks(TaskState::InFlight)
    );
}

fn check(ring: &Ring<Replay>) {
    conserved(ring);
    let replay = ring.backend();
    assert_eq!(
        ring.in_flight() as usize,
        replay.holding(),
        "the ring and the backend disagree on what is in flight"
    );
    let stats = ring.stats();
    assert_eq!(stats.messages, replay.messages, "messages");
    assert_eq!(
        stats.foreign_completions + stats.stale_completions,
        replay.unknown,
        "every unknown CQE is counted as stale or foreign: {stats:?}"
    );
    track::check();
}

/// A message handler (the ring hands each message to it as a task).
fn on_message(_ring: &mut Ring<Replay>, task: &Task<Replay>) -> Result<(), RingError> {
    assert!(matches!(task.result, Some(OpResult::Message(_))));
    Ok(())
}

/// Runs the byte string; panics on any violation.
pub fn run(data: &[u8]) {
    let mut input = Bytes { data, pos: 0 };
    let level = KernelLevel::ALL[usize::from(input.or0()) % KernelLevel::ALL.len()];
    let entries = 1 + u32::from(input.or0() % 8);
    track::reset();
    let leaked_before = xuring_core::leaked_tasks();
    let backend = Replay::new(Features::everything().clamp(level), entries);
    let mut ring = RingBuilder::new(entries)
        .chunk_size(16)
        .build_with(backend)
        .expect("ring");
    let mut handles: Vec<TaskHandle<Replay>> = Vec::new();
    let ctx = track::context::<Replay>;
    // With a message handler, `Once` would wait for a message that may never come.
    let mut handler = false;

    for _ in 0..MAX_ACTIONS {
        let Some(action) = input.byte() else {
            break;
        };
        match action % 12 {
            0 => handles.push(track::expect(ring.noop(ctx()))),
            1 => {
                let ts = Timespec {
                    sec: i64::from(input.or0()),
                    nsec: 0,
                };
                handles.push(track::expect(ring.timer(ts, ctx())));
            }
            2 => {
                let len = usize::from(input.or0() % 64);
                handles.push(track::expect(ring.read(
                    3,
                    vec![0u8; len],
                    Offset::File,
                    ctx(),
                )));
            }
            3 => handles.push(track::expect(ring.accept(4, ctx()))),
            4 => handles.push(track::expect(ring.stat(c"/", ctx()))),
            5 => {
                if !handles.is_empty() {
                    let target = handles[usize::from(input.or0()) % handles.len()];
                    track::expect(target.cancel(&mut ring, ctx()));
                }
            }
            6 => {
                track::expect(ring.cancel_all(ctx()));
            }
            7 => {
                let planned = Planned::Real {
                    pick: input.u32(),
                    res: input.u32() as i32,
                    flags: input.u32(),
                };
                ring.backend_mut().plan.push_back(planned);
            }
            8 => {
                let c = Completion {
                    user_data: input.u64(),
                    res: input.u32() as i32,
                    flags: input.u32(),
                };
                decode_every_kind(c.res);
                ring.backend_mut().plan.push_back(Planned::Raw(c));
            }
            9 => {
                let pick = input.u32();
                ring.backend_mut()
                    .plan
                    .push_back(Planned::Duplicate { pick });
            }
            10 => {
                if input.or0() & 1 == 0 {
                    handler = true;
                    ring.on_message(Context {
                        cb: on_message,
                        ..Context::default()
                    });
                }
                let c = Completion {
                    user_data: input.u64() | (1 << 63),
                    res: input.u32() as i32,
                    flags: 0,
                };
                ring.backend_mut().plan.push_back(Planned::Raw(c));
            }
            _ => {
                let condition = match input.or0() % 3 {
                    0 => RunCondition::NoWait,
                    1 if !handler => RunCondition::Once,
                    1 => RunCondition::NoWait,
                    _ => RunCondition::UntilDone,
                };
                ring.run(condition).expect("run");
            }
        }
        check(&ring);
        if input.is_empty() {
            break;
        }
    }
    // Drain: the backend completes what is left; every op gets exactly one callback.
    ring.backend_mut().plan.clear();
    for _ in 0..10_000 {
        if ring.in_flight() == 0 && ring.queued() == 0 {
            break;
        }
        ring.run(RunCondition::NoWait).expect("drain");
        let left = ring.backend().in_flight.clone();
        for user_data in left {
            // EIO, not ECANCELED: an ECANCELED nobody asked for is the kernel's own cancel,
            // which the ring answers by submitting the op again.
            ring.backend_mut().post(Completion {
                user_data,
                res: -libc::EIO,
                flags: 0,
            });
        }
    }
    ring.run(RunCondition::NoWait).expect("drain");
    check(&ring);
    assert!(ring.is_idle(), "idle after the drain");
    track::check_complete();
    drop(ring);
    assert_eq!(xuring_core::leaked_tasks(), leaked_before, "no task leaked");
}
