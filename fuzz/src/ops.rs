//! Fuzz target `ops`: arbitrary sequences of operations, cancels, runs and completion orders
//! through a ring on the mock backend.
//!
//! The first bytes choose the setup (seed, SQ and CQ sizes, completion order, fault rates,
//! kernel level); every following byte pair is one action: submit an op (noop, timer, file
//! or pipe read into an owned or pool buffer, write, a chain of follow-ups), cancel one,
//! cancel all, run in one of four ways, feed or close the pipe, hold or release completions,
//! advance virtual time. After every action the mock's invariants must hold (tasks conserved,
//! no identity reused, no op called back twice, injected duplicates and foreign completions
//! counted and dropped); at the end, after a drain, every op has had exactly one callback,
//! every buffer is back and no task leaked. Shared with
//! `crates/xuring-mock/tests/fuzz_replay.rs`, which replays the seeds.

use std::time::Duration;

use xuring_core::{
    Context, KernelLevel, Offset, Ring, RingBuilder, RingError, RunCondition, Task, TaskHandle,
    Timespec,
};
use xuring_mock::{DEADLOCK, Faults, Mock, MockBuilder, Order, check_invariants, track};

const FILE_FD: i32 = 3;
const PIPE_FD: i32 = 4;
const OUT_FD: i32 = 5;
const MAX_ACTIONS: usize = 2048;
const POOL: usize = 8;

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
}

/// A tracked op whose callback submits `msg` more noops, one after the other.
fn chain(ring: &mut Ring<Mock>, task: &Task<Mock>) -> Result<(), RingError> {
    track::record(task);
    if task.msg() > 0 {
        let next = Context {
            cb: chain,
            msg: task.msg() - 1,
            userdata: None,
        };
        track::expect(ring.noop(next));
    }
    Ok(())
}

fn faults(level: u8) -> Faults {
    match level % 4 {
        0 => Faults::none(),
        1 => Faults {
            short_io: 0.3,
            op_error: 0.2,
            ..Faults::none()
        },
        2 => Faults {
            enter_eintr: 0.3,
            enter_ebusy: 0.2,
            partial_submit: 0.5,
            duplicate: 0.3,
            foreign: 0.3,
            ..Faults::none()
        },
        _ => Faults::chaos(),
    }
}

/// Runs `condition`; a wait that only stuck pipe reads could end is not an error here.
fn run_ring(ring: &mut Ring<Mock>, condition: RunCondition) {
    match ring.run(condition) {
        Ok(()) => {}
        Err(RingError::Enter(e)) if e == DEADLOCK => {}
        Err(e) => panic!("run({condition:?}): {e}"),
    }
}

/// Runs the byte string as a setup and a sequence of actions; panics on any violation.
pub fn run(data: &[u8]) {
    let mut input = Bytes { data, pos: 0 };
    let seed = u64::from_le_bytes(core::array::from_fn(|_| input.or0()));
    let sq = 1 + u32::from(input.or0() % 8);
    let cq = sq + u32::from(input.or0() % 8);
    let order = match input.or0() % 3 {
        0 => Order::Submission,
        1 => Order::Reversed,
        _ => Order::Shuffled,
    };
    let fault_level = input.or0();
    let level = KernelLevel::ALL[usize::from(input.or0()) % KernelLevel::ALL.len()];

    track::reset();
    let leaked_before = xuring_core::leaked_tasks();
    let mut ring = MockBuilder::new()
        .seed(seed)
        .sq_entries(sq)
        .cq_entries(cq)
        .order(order)
        .faults(faults(fault_level))
        .level(level)
        .build_ring_with(
            RingBuilder::new(sq)
                .kernel_level(level)
                .chunk_size(16)
                .buffer_pool(POOL, 32),
        )
        .expect("ring");
    let pool = ring.buffers().expect("pool").clone();
    ring.backend_mut()
        .set_file(FILE_FD, (0..=255u8).collect::<Vec<u8>>());
    ring.backend_mut().pipe(PIPE_FD);
    let mut handles: Vec<TaskHandle<Mock>> = Vec::new();
    let ctx = track::context::<Mock>;

    for _ in 0..MAX_ACTIONS {
        let (Some(action), arg) = (input.byte(), input.or0()) else {
            break;
        };
        match action % 16 {
            0 => handles.push(track::expect(ring.noop(ctx()))),
            1 => {
                let ts = Timespec {
                    sec: i64::from(arg % 4),
                    nsec: u32::from(arg) * 1000,
                };
                let h = if arg & 0x80 != 0 {
                    ring.timer_at(ts, ctx())
                } else {
                    ring.timer(ts, ctx())
                };
                handles.push(track::expect(h));
            }
            2 => {
                let at = if arg & 1 == 0 {
                    Offset::File
                } else {
                    Offset::At(u64::from(arg))
                };
                let h = match pool.get().filter(|_| arg & 2 != 0) {
                    Some(buf) => ring.read(FILE_FD, buf, at, ctx()),
                    None => ring.read(FILE_FD, vec![0u8; usize::from(arg % 40)], at, ctx()),
                };
                handles.push(track::expect(h));
            }
            3 => {
                let h = match pool.get().filter(|_| arg & 1 != 0) {
                    Some(buf) => ring.read(PIPE_FD, buf, Offset::File, ctx()),
                    None => ring.read(PIPE_FD, vec![0u8; 8], Offset::File, ctx()),
                };
                handles.push(track::expect(h));
            }
            4 => {
                let h = ring.write(
                    OUT_FD,
                    vec![arg; usize::from(arg % 48)],
                    Offset::File,
                    ctx(),
                );
                handles.push(track::expect(h));
            }
            5 => {
                let first = Context {
                    cb: chain,
                    msg: u16::from(arg % 8),
                    userdata: None,
                };
                handles.push(track::expect(ring.noop(first)));
            }
            6 | 7 => {
                if !handles.is_empty() {
                    let target = handles[usize::from(arg) % handles.len()];
                    track::expect(target.cancel(&mut ring, ctx()));
                }
            }
            8 => {
                track::expect(ring.cancel_all(ctx()));
            }
            9 => run_ring(&mut ring, RunCondition::NoWait),
            10 => run_ring(&mut ring, RunCondition::Once),
            11 => run_ring(&mut ring, RunCondition::UntilDone),
            12 => run_ring(
                &mut ring,
                RunCondition::For(Duration::from_millis(u64::from(arg) * 20)),
            ),
            13 => match arg % 3 {
                0 => ring.backend_mut().feed(PIPE_FD, &[arg; 5]),
                1 => ring.backend_mut().close(PIPE_FD),
                _ => ring.backend_mut().pipe(PIPE_FD),
            },
            14 => {
                if arg & 1 == 0 {
                    ring.backend_mut().hold(arg & 2 != 0);
                } else {
                    ring.backend_mut().release_held();
                }
            }
            _ => ring
                .backend_mut()
                .advance(Duration::from_millis(u64::from(arg) * 10)),
        }
        check_invariants(&ring);
    }

    // Drain: every op ends, each with one callback, and every buffer comes back.
    ring.backend_mut().close(PIPE_FD);
    ring.backend_mut().hold(false);
    ring.backend_mut().release_held();
    ring.run(RunCondition::UntilDone).expect("drain");
    check_invariants(&ring);
    // Only the ring's own deadline timer may still be in flight (background work that
    // `UntilDone` does not wait for, possibly still in the mock's SQ); dropping the ring
    // cancels it, and the leak check below sees that it does.
    assert_eq!(
        (ring.queued(), ring.ready()),
        (0, 0),
        "nothing left after the drain"
    );
    let kinds = ring.backend().pending_kinds();
    assert_eq!(
        ring.backend().pending_wakes().len(),
        kinds.len(),
        "only background work after the drain: {kinds:?}"
    );
    track::check_complete();
    assert_eq!(pool.available(), POOL, "every pool buffer is back");
    drop(ring);
    assert_eq!(xuring_core::leaked_tasks(), leaked_before, "no task leaked");
}
