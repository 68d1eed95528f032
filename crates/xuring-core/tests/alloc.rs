//! Zero allocation on the hot path: after warm-up, 100,000 each of noops, timers, reads and
//! writes (with buffers taken back and resubmitted) allocate nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use xuring_core::{Context, Offset, OpResult, Ring, RingError, RunCondition, Task, Timespec};

mod common;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as in `dealloc`, and the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const OPS: u32 = 100_000;
const DEPTH: u32 = 64;

/// Per-test state reached through `userdata`.
struct Load {
    remaining: u32,
    fd: i32,
    done: u32,
}

#[allow(clippy::mut_from_ref)] // the state lives outside the task; see the SAFETY note
fn load(task: &Task) -> &mut Load {
    let ptr = task.userdata().expect("load").cast::<Load>();
    // SAFETY: the test keeps the `Load` alive until `run` returns and touches it only
    // through callbacks, one at a time.
    unsafe { &mut *ptr.as_ptr() }
}

fn ctx(cb: xuring_core::Callback, state: &mut Load) -> Context {
    Context {
        cb,
        msg: 0,
        userdata: Some(std::ptr::NonNull::from(state).cast()),
    }
}

/// Counts a completion; the context to resubmit with, if ops remain.
fn again(task: &Task) -> Option<Context> {
    let l = load(task);
    l.done += 1;
    if l.remaining == 0 {
        return None;
    }
    l.remaining -= 1;
    Some(task.context())
}

fn on_noop(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    assert_eq!(task.result, Some(OpResult::Noop));
    if let Some(ctx) = again(task) {
        ring.noop(ctx);
    }
    Ok(())
}

fn on_timer(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    assert_eq!(task.result, Some(OpResult::Timer(Ok(()))));
    if let Some(ctx) = again(task) {
        ring.timer(Timespec::ZERO, ctx);
    }
    Ok(())
}

fn on_read(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    assert_eq!(task.result, Some(OpResult::Read(Ok(512))));
    let buf = task.take_buf().expect("buffer back");
    let fd = load(task).fd;
    if let Some(ctx) = again(task) {
        ring.read(fd, buf, Offset::File, ctx);
    }
    Ok(())
}

fn on_write(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    assert_eq!(task.result, Some(OpResult::Write(Ok(512))));
    let buf = task.take_buf().expect("buffer back");
    let fd = load(task).fd;
    if let Some(ctx) = again(task) {
        ring.write(fd, buf, Offset::File, ctx);
    }
    Ok(())
}

type Start = fn(&mut Ring, &mut Load, Context, Option<xuring_core::PoolBuf>);

/// Runs `OPS` ops at depth `DEPTH` twice: once to warm up, once counting allocations.
fn measure(name: &str, cb: xuring_core::Callback, fd: i32, pool: bool, start: Start) -> u64 {
    let mut builder = Ring::builder(32);
    if pool {
        builder = builder.buffer_pool(DEPTH as usize, 512);
    }
    let mut ring = builder.build().expect("ring");
    let mut result = 0;
    for round in 0..2 {
        let mut state = Load {
            remaining: OPS - DEPTH,
            fd,
            done: 0,
        };
        // Buffers for the read/write loops are made before counting starts.
        let mut bufs: Vec<Option<xuring_core::PoolBuf>> = (0..DEPTH)
            .map(|_| ring.buffers().and_then(|p| p.get()))
            .collect();
        COUNTING.store(round == 1, Ordering::SeqCst);
        ALLOCATIONS.store(0, Ordering::SeqCst);
        for slot in bufs.iter_mut() {
            let c = ctx(cb, &mut state);
            start(&mut ring, &mut state, c, slot.take());
        }
        ring.run(RunCondition::UntilDone).expect("run");
        COUNTING.store(false, Ordering::SeqCst);
        result = ALLOCATIONS.load(Ordering::SeqCst);
        assert_eq!(state.done, OPS, "{name}: every op completed");
    }
    result
}

#[test]
fn hot_path_allocates_nothing() {
    let zero = common::open(c"/dev/zero", libc::O_RDONLY);
    let null = common::open(c"/dev/null", libc::O_WRONLY);
    let noop: Start = |ring, _, ctx, _| {
        ring.noop(ctx);
    };
    let timer: Start = |ring, _, ctx, _| {
        ring.timer(Timespec::ZERO, ctx);
    };
    // The first read of each chain allocates its Vec while counting; the resubmissions
    // reuse it, so exactly DEPTH allocations show up.
    let read_vec: Start = |ring, state, ctx, _| {
        ring.read(state.fd, vec![0u8; 512], Offset::File, ctx);
    };
    let read_pool: Start = |ring, state, ctx, buf| {
        let mut buf = buf.expect("pool buffer");
        buf.set_len(512);
        ring.read(state.fd, buf, Offset::File, ctx);
    };
    let write_pool: Start = |ring, state, ctx, buf| {
        let mut buf = buf.expect("pool buffer");
        buf.set_len(512);
        ring.write(state.fd, buf, Offset::File, ctx);
    };
    let results = [
        ("noop", measure("noop", on_noop, -1, false, noop)),
        ("timer", measure("timer", on_timer, -1, false, timer)),
        (
            "read (pool)",
            measure("read", on_read, zero.raw(), true, read_pool),
        ),
        (
            "write (pool)",
            measure("write", on_write, null.raw(), true, write_pool),
        ),
    ];
    for (name, allocations) in results {
        assert_eq!(
            allocations, 0,
            "{name}: {allocations} allocations after warm-up"
        );
    }
    // Vec buffers: the initial `vec!`s allocate (DEPTH of them); resubmitting them does not.
    let vec_allocs = measure("read", on_read, zero.raw(), false, read_vec);
    assert_eq!(
        vec_allocs,
        u64::from(DEPTH),
        "only the {DEPTH} initial Vec buffers allocate"
    );
}
