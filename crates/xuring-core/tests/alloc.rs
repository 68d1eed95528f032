//! Zero allocation on the hot path: after warm-up, 100,000 each of noops, timers, reads and
//! writes (with buffers taken back and resubmitted) allocate nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use xuring_core::{Context, Offset, OpResult, Ring, RingError, RunCondition, Task, Timespec};

mod common;

struct Counting;

thread_local! {
    /// Counting on this thread: only the ring's own thread is measured, so the test harness
    /// printing another test's result meanwhile does not count.
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// The counter is global: the tests of this file measure one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
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
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as in `dealloc`, and the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Whether this thread counts (false while its thread-locals are torn down).
fn counting() -> bool {
    COUNTING.try_with(std::cell::Cell::get).unwrap_or(false)
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
    assert_eq!(task.result, Some(OpResult::Noop(Ok(()))));
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
        COUNTING.with(|c| c.set(round == 1));
        ALLOCATIONS.store(0, Ordering::SeqCst);
        for slot in bufs.iter_mut() {
            let c = ctx(cb, &mut state);
            start(&mut ring, &mut state, c, slot.take());
        }
        ring.run(RunCondition::UntilDone).expect("run");
        COUNTING.with(|c| c.set(false));
        result = ALLOCATIONS.load(Ordering::SeqCst);
        assert_eq!(state.done, OPS, "{name}: every op completed");
    }
    result
}

#[test]
fn hot_path_allocates_nothing() {
    let _serial = serial();
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

/// State of the chains in `other_ops_allocate_nothing`.
struct Chain {
    remaining: u32,
    done: u32,
    fds: [i32; 4],
}

#[allow(clippy::mut_from_ref)] // the state lives outside the task; see the SAFETY note
fn chain(task: &Task) -> &mut Chain {
    let ptr = task.userdata().expect("chain").cast::<Chain>();
    // SAFETY: the test keeps the `Chain` alive until `run` returns and touches it only
    // through callbacks, one at a time.
    unsafe { &mut *ptr.as_ptr() }
}

/// Counts a finished round; whether another one should start.
fn next_round(task: &Task) -> bool {
    let c = chain(task);
    c.done += 1;
    if c.remaining == 0 {
        return false;
    }
    c.remaining -= 1;
    true
}

fn on_stat(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    assert!(matches!(task.result, Some(OpResult::Stat(Ok(_)))));
    if next_round(task) {
        ring.stat(c"/dev/null", task.context());
    }
    Ok(())
}

fn on_open_close(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    match task.result {
        Some(OpResult::Open(Ok(fd))) => {
            ring.close(fd, task.context());
        }
        Some(OpResult::Close(Ok(()))) => {
            if next_round(task) {
                ring.open(c"/dev/null", libc::O_RDONLY, 0, task.context());
            }
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

fn on_poll(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    assert!(matches!(task.result, Some(OpResult::Poll(Ok(_)))));
    if next_round(task) {
        ring.poll(chain(task).fds[0], libc::POLLIN as u32, task.context());
    }
    Ok(())
}

fn on_send_recv(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let buf = task.take_buf().expect("buffer back");
    let fds = chain(task).fds;
    let mut ctx = task.context();
    match task.result {
        Some(OpResult::Send(Ok(64))) => {
            ctx.msg = 1;
            ring.recv(fds[1], buf, 0, ctx);
        }
        Some(OpResult::Recv(Ok(64))) => {
            if next_round(task) {
                ctx.msg = 0;
                ring.send(fds[0], buf, 0, ctx);
            }
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

thread_local! {
    /// Where the UDP chain's datagrams go (the second socket's address).
    static UDP_PEER: std::cell::Cell<Option<std::net::SocketAddr>> =
        const { std::cell::Cell::new(None) };
}

/// A datagram out with `send_to` and back in with `recv_from`, each round (the message
/// headers come from the ring's cache after the first rounds).
fn on_datagram(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let buf = task.take_buf().expect("buffer back");
    let fds = chain(task).fds;
    let mut ctx = task.context();
    match task.result {
        Some(OpResult::SendTo(Ok(64))) => {
            ctx.msg = 1;
            ring.recv_from(fds[1], buf, 0, ctx);
        }
        Some(OpResult::RecvFrom(Ok(xuring_core::Received {
            len: 64,
            peer: Some(_),
        }))) => {
            if next_round(task) {
                ctx.msg = 0;
                let to = UDP_PEER.get().expect("the peer's address");
                ring.send_to(fds[0], buf, to, 0, ctx);
            }
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

/// A receive that waits for its data (queued before the send that brings it), each round.
fn on_waiting_recv(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    static DATA: [u8; 64] = [9; 64];
    let fds = chain(task).fds;
    match task.result {
        Some(OpResult::Send(Ok(64))) => {}
        Some(OpResult::Recv(Ok(64))) => {
            let buf = task.take_buf().expect("buffer back");
            if next_round(task) {
                ring.recv(fds[1], buf, 0, task.context());
                ring.send(fds[0], &DATA[..], 0, task.context());
            }
        }
        ref other => panic!("{other:?}"),
    }
    Ok(())
}

fn on_vectored(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let bufs = task.take_iovecs().expect("buffers back");
    let fds = chain(task).fds;
    match task.result {
        Some(OpResult::Readv(Ok(96))) => {
            ring.writev(fds[1], bufs, Offset::File, task.context());
        }
        Some(OpResult::Writev(Ok(96))) => {
            if next_round(task) {
                ring.readv(fds[0], bufs, Offset::File, task.context());
            }
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

fn on_fsync(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    assert_eq!(task.result, Some(OpResult::Fsync(Ok(()))));
    if next_round(task) {
        ring.fdatasync(chain(task).fds[0], task.context());
    }
    Ok(())
}

fn on_splice(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let [src, null, pipe_r, pipe_w] = chain(task).fds;
    let mut ctx = task.context();
    match (task.msg(), task.result) {
        (0, Some(OpResult::Splice(Ok(n)))) => {
            ctx.msg = 1;
            ring.splice(pipe_r, None, null, None, n as u32, 0, ctx);
        }
        (1, Some(OpResult::Splice(Ok(_)))) => {
            if next_round(task) {
                ctx.msg = 0;
                ring.splice(src, Some(0), pipe_w, None, 512, 0, ctx);
            }
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

fn on_msg_sent(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    assert_eq!(task.result, Some(OpResult::MsgRing(Ok(()))));
    let _ = ring;
    Ok(())
}

fn on_msg_received(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    assert!(matches!(task.result, Some(OpResult::Message(_))));
    if next_round(task) {
        let mut ctx = task.context();
        ctx.cb = on_msg_sent;
        let fd = ring.fd();
        ring.msg_ring(fd, xuring_core::Message { data: 1, value: 2 }, ctx);
    }
    Ok(())
}

type ChainStart = fn(&mut Ring, [i32; 4], Context);

#[test]
fn other_ops_allocate_nothing() {
    let _serial = serial();
    let zero = common::open(c"/dev/zero", libc::O_RDONLY);
    let null = common::open(c"/dev/null", libc::O_WRONLY);
    let (pipe_r, pipe_w) = common::pipe();
    let mut pair = [0i32; 2];
    // SAFETY: `pair` is a valid array of two ints for `socketpair` to fill.
    let ret = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    };
    assert_eq!(ret, 0);
    let path = std::env::temp_dir().join(format!("xuring-alloc-{}", std::process::id()));
    let file = std::fs::File::create(&path).expect("temp file");
    let file_fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    // Splice's source: a regular file read at offset 0 each round. (`/dev/zero` is no splice
    // source before Linux 6.3: `EINVAL`, as `splice(2)` itself gives.)
    let src_path = std::env::temp_dir().join(format!("xuring-alloc-src-{}", std::process::id()));
    std::fs::write(&src_path, [7u8; 512]).expect("splice source");
    let src = std::fs::File::open(&src_path).expect("splice source");
    let src_fd = std::os::fd::AsRawFd::as_raw_fd(&src);
    let udp_a = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let udp_b = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    UDP_PEER.set(Some(udp_b.local_addr().expect("udp address")));
    let udp = [
        std::os::fd::AsRawFd::as_raw_fd(&udp_a),
        std::os::fd::AsRawFd::as_raw_fd(&udp_b),
        -1,
        -1,
    ];

    let cases: [(&str, u32, xuring_core::Callback, [i32; 4], ChainStart); 10] = [
        ("stat", 10_000, on_stat, [-1; 4], |ring, _, ctx| {
            ring.stat(c"/dev/null", ctx);
        }),
        (
            "open+close",
            10_000,
            on_open_close,
            [-1; 4],
            |ring, _, ctx| {
                ring.open(c"/dev/null", libc::O_RDONLY, 0, ctx);
            },
        ),
        (
            "poll",
            10_000,
            on_poll,
            [zero.raw(), -1, -1, -1],
            |ring, fds, ctx| {
                ring.poll(fds[0], libc::POLLIN as u32, ctx);
            },
        ),
        (
            "send+recv",
            10_000,
            on_send_recv,
            [pair[0], pair[1], -1, -1],
            |ring, fds, ctx| {
                ring.send(fds[0], vec![7u8; 64], 0, ctx);
            },
        ),
        (
            "send_to+recv_from",
            10_000,
            on_datagram,
            udp,
            |ring, fds, ctx| {
                let to = UDP_PEER.get().expect("the peer's address");
                ring.send_to(fds[0], vec![5u8; 64], to, 0, ctx);
            },
        ),
        (
            "waiting recv",
            10_000,
            on_waiting_recv,
            [pair[0], pair[1], -1, -1],
            |ring, fds, ctx| {
                ring.recv(fds[1], vec![0u8; 64], 0, ctx);
                ring.send(fds[0], &[9u8; 64][..], 0, ctx);
            },
        ),
        (
            "readv+writev",
            10_000,
            on_vectored,
            [zero.raw(), null.raw(), -1, -1],
            |ring, fds, ctx| {
                let bufs =
                    xuring_core::IoVecs::new(vec![vec![0u8; 32].into(), vec![0u8; 64].into()]);
                ring.readv(fds[0], bufs, Offset::File, ctx);
            },
        ),
        (
            "fdatasync",
            500,
            on_fsync,
            [file_fd, -1, -1, -1],
            |ring, fds, ctx| {
                ring.fdatasync(fds[0], ctx);
            },
        ),
        (
            "splice",
            10_000,
            on_splice,
            [src_fd, null.raw(), pipe_r.raw(), pipe_w.raw()],
            |ring, fds, ctx| {
                ring.splice(fds[0], Some(0), fds[3], None, 512, 0, ctx);
            },
        ),
        (
            "msg_ring",
            10_000,
            on_msg_received,
            [-1; 4],
            |ring, _, ctx| {
                let mut sent = ctx;
                sent.cb = on_msg_sent;
                let fd = ring.fd();
                ring.on_message(ctx);
                ring.msg_ring(fd, xuring_core::Message { data: 1, value: 2 }, sent);
            },
        ),
    ];
    // Each case on the ring `XURING_BACKEND` selects, and on the readiness executor.
    let executors = [None, Some(xuring_core::ExecutorChoice::Epoll)];
    for ((name, ops, cb, fds, start), executor) in executors
        .into_iter()
        .flat_map(|e| cases.into_iter().map(move |case| (case, e)))
    {
        let mut builder = Ring::builder(32);
        if let Some(choice) = executor {
            builder = builder.executor(choice);
        }
        let mut ring = builder.build().expect("ring");
        let unsupported = (name == "splice"
            && !ring.features().supports(xuring_sys::Opcode::Splice))
            || (name == "msg_ring" && !ring.features().supports(xuring_sys::Opcode::MsgRing));
        if unsupported {
            continue;
        }
        let depth = if name == "msg_ring" || name == "splice" || name == "waiting recv" {
            1
        } else {
            8
        };
        let mut counted = 0;
        for round in 0..2 {
            let mut state = Chain {
                remaining: ops - depth,
                done: 0,
                fds,
            };
            // Made before counting: the first buffers of the send/recv and vectored chains.
            let ctxs: Vec<Context> = (0..depth)
                .map(|_| Context {
                    cb,
                    msg: 0,
                    userdata: Some(std::ptr::NonNull::from(&mut state).cast()),
                })
                .collect();
            COUNTING.with(|c| c.set(round == 1));
            ALLOCATIONS.store(0, Ordering::SeqCst);
            for ctx in ctxs {
                start(&mut ring, fds, ctx);
            }
            let condition = if name == "msg_ring" {
                RunCondition::For(std::time::Duration::from_millis(500))
            } else {
                RunCondition::UntilDone
            };
            // The callbacks update `state` through the pointer in their context.
            #[allow(clippy::while_immutable_condition)]
            while state.done < ops {
                ring.run(condition).expect("run");
            }
            COUNTING.with(|c| c.set(false));
            counted = ALLOCATIONS.load(Ordering::SeqCst);
        }
        // The chains that start with a fresh buffer allocate exactly those, once per chain.
        let expected = match name {
            "send+recv" | "send_to+recv_from" | "waiting recv" => u64::from(depth),
            // The Vec of buffers, its two buffers and the iovec array.
            "readv+writev" => 4 * u64::from(depth),
            _ => 0,
        };
        assert_eq!(
            counted, expected,
            "{name} ({executor:?}): {counted} allocations after warm-up"
        );
    }
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&src_path);
    // SAFETY: closing the socketpair's descriptors, owned by this test.
    unsafe {
        libc::close(pair[0]);
    }
    // SAFETY: as above.
    unsafe {
        libc::close(pair[1]);
    }
}

/// A connection's state in `keyed_state_allocates_nothing`.
struct Conn {
    remaining: u32,
    done: u32,
}

/// A noop chain per connection whose state is reached by key through the ring: the taught
/// pattern for stateful servers (`Slab`, `Context::keyed`, `Ring::with_entry`), no `unsafe`.
fn on_keyed_noop(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    assert_eq!(task.result, Some(OpResult::Noop(Ok(()))));
    let key = task.key().expect("keyed");
    let found = ring.with_entry(key, |ring, conn: &mut Conn| {
        conn.done += 1;
        if conn.remaining == 0 {
            return;
        }
        conn.remaining -= 1;
        ring.noop(Context::keyed(on_keyed_noop, key));
    })?;
    assert!(found.is_some(), "a live connection");
    Ok(())
}

#[test]
fn keyed_state_allocates_nothing() {
    let _serial = serial();
    let mut ring = Ring::builder(32).build().expect("ring");
    ring.insert_state(xuring_core::Slab::<Conn>::with_capacity(DEPTH as usize));
    let per_chain = OPS / DEPTH;
    for round in 0..2 {
        COUNTING.with(|c| c.set(round == 1));
        ALLOCATIONS.store(0, Ordering::SeqCst);
        let keys = ring
            .with_state(|ring, conns: &mut xuring_core::Slab<Conn>| {
                // Connections come and go: the slab reuses the slots of the last round.
                conns.retain(|_, _| false);
                (0..DEPTH)
                    .map(|_| {
                        let key = conns.insert(Conn {
                            remaining: per_chain - 1,
                            done: 0,
                        });
                        ring.noop(Context::keyed(on_keyed_noop, key));
                        key
                    })
                    .count()
            })
            .expect("state");
        ring.run(RunCondition::UntilDone).expect("run");
        COUNTING.with(|c| c.set(false));
        let allocations = ALLOCATIONS.load(Ordering::SeqCst);
        assert_eq!(keys, DEPTH as usize);
        let done: u32 = ring
            .with_state(|_, conns: &mut xuring_core::Slab<Conn>| {
                conns.iter().map(|(_, c)| c.done).sum()
            })
            .expect("state");
        assert_eq!(done, per_chain * DEPTH, "every chain ran to its end");
        if round == 1 {
            assert_eq!(allocations, 0, "{allocations} allocations after warm-up");
        }
    }
}
