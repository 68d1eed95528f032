//! `Thread`: child rings on OS threads, talking over `msg_ring` (5.18) or the eventfd
//! fallback, at native level and at 5.6.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xuring_core::{
    Context, KernelLevel, Mail, Offset, OpResult, Peer, Ring, RingError, RunCondition, Task, Thread,
};

mod common;

fn parent(level: KernelLevel) -> Ring {
    Ring::builder(64).kernel_level(level).build().expect("ring")
}

// ----- ping-pong -----

thread_local! {
    static PONGS: Cell<u64> = const { Cell::new(0) };
    static SUM: Cell<u64> = const { Cell::new(0) };
    static TARGET: Cell<u64> = const { Cell::new(0) };
    static CHILD: std::cell::RefCell<Option<Peer>> = const { std::cell::RefCell::new(None) };
}

fn ping(ring: &mut Ring, mail: Mail<'_>) -> Result<(), RingError> {
    let parent = mail.reply_to.expect("a child knows its parent");
    parent.send(ring, pong, mail.payload, Context::default());
    Ok(())
}

fn pong(ring: &mut Ring, mail: Mail<'_>) -> Result<(), RingError> {
    let n = PONGS.with(|p| {
        p.set(p.get() + 1);
        p.get()
    });
    assert_eq!(
        mail.payload,
        n - 1,
        "round trips arrive in order, once each"
    );
    SUM.with(|s| s.set(s.get().wrapping_add(mail.payload.wrapping_mul(0x9e37_79b9))));
    if n < TARGET.with(Cell::get) {
        CHILD.with(|c| {
            let child = c.borrow();
            child
                .as_ref()
                .expect("child")
                .send(ring, ping, n, Context::default());
        });
    }
    Ok(())
}

fn ping_pong(level: KernelLevel, rounds: u64) -> Duration {
    ping_pong_on(parent(level), rounds)
}

fn ping_pong_on(mut ring: Ring, rounds: u64) -> Duration {
    let level = ring.features().level;
    PONGS.with(|p| p.set(0));
    SUM.with(|s| s.set(0));
    TARGET.with(|t| t.set(rounds));
    let thread = Thread::spawn(&mut ring, 64).expect("spawn");
    CHILD.with(|c| *c.borrow_mut() = Some(thread.peer().clone()));
    let start = Instant::now();
    thread.send(&mut ring, ping, 0, Context::default());
    while PONGS.with(Cell::get) < rounds {
        ring.run(RunCondition::Once).expect("run");
    }
    let elapsed = start.elapsed();
    let expected = (0..rounds).fold(0u64, |s, i| s.wrapping_add(i.wrapping_mul(0x9e37_79b9)));
    assert_eq!(
        PONGS.with(Cell::get),
        rounds,
        "{level}: no message lost or duplicated"
    );
    assert_eq!(SUM.with(Cell::get), expected, "{level}: checksum");
    CHILD.with(|c| *c.borrow_mut() = None);
    thread.join().expect("join");
    elapsed
}

fn rounds() -> u64 {
    std::env::var("XURING_PING_PONG_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

#[test]
fn a_million_round_trips_over_msg_ring() {
    let n = rounds();
    let took = ping_pong(KernelLevel::Native, n);
    eprintln!("native: {n} round trips in {took:?}");
}

#[test]
fn a_million_round_trips_over_the_eventfd_fallback() {
    let n = rounds();
    let took = ping_pong(KernelLevel::V5_6, n);
    eprintln!("5.6: {n} round trips in {took:?}");
}

/// A parent on the readiness executor (chosen in code, whatever `XURING_BACKEND` says): the
/// child runs there too, and its replies take the eventfd route into the parent.
#[test]
fn round_trips_with_a_parent_on_the_readiness_executor() {
    let ring = Ring::builder(64)
        .executor(xuring_core::ExecutorChoice::Epoll)
        .build()
        .expect("ring");
    let n = rounds().min(20_000);
    let took = ping_pong_on(ring, n);
    eprintln!("epoll: {n} round trips in {took:?}");
}

// ----- stopping -----

thread_local! {
    static STUCK: std::cell::RefCell<Option<(common::Fd, common::Fd)>> =
        const { std::cell::RefCell::new(None) };
}

fn start_stuck_read(ring: &mut Ring, _mail: Mail<'_>) -> Result<(), RingError> {
    let (r, w) = common::pipe();
    ring.read(r.raw(), vec![0u8; 64], Offset::File, Context::default());
    STUCK.with(|s| *s.borrow_mut() = Some((r, w)));
    Ok(())
}

fn wait_sent(ring: &mut Ring) {
    // Run the parent until its sends have completed.
    ring.run(RunCondition::UntilDone).expect("run");
}

#[test]
fn kill_while_the_child_has_io_pending() {
    for level in [KernelLevel::Native, KernelLevel::V5_6] {
        let mut ring = parent(level);
        let thread = Thread::spawn(&mut ring, 16).expect("spawn");
        thread.send(&mut ring, start_stuck_read, 0, Context::default());
        wait_sent(&mut ring);
        std::thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        thread.join().expect("a clean stop");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{level}: join returned in time"
        );
    }
}

#[test]
fn dropping_the_parent_first_is_safe() {
    for level in [KernelLevel::Native, KernelLevel::V5_6] {
        let mut ring = parent(level);
        let thread = Thread::spawn(&mut ring, 16).expect("spawn");
        let peer = thread.peer().clone();
        drop(ring);
        assert!(!peer.is_closed());
        thread.join().expect("join after the parent is gone");
        assert!(
            peer.is_closed(),
            "the child closed its mailbox when it stopped"
        );
        // Sending to a stopped child is refused, not lost.
        let mut other = parent(level);
        thread_local!(static GOT: Cell<Option<OpResult>> = const { Cell::new(None) });
        fn record(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
            GOT.with(|g| g.set(task.result));
            Ok(())
        }
        peer.send(
            &mut other,
            ping,
            1,
            Context {
                cb: record,
                ..Context::default()
            },
        );
        other.run(RunCondition::UntilDone).expect("run");
        assert_eq!(
            GOT.with(Cell::get),
            Some(OpResult::MsgRing(Err(xuring_core::Errno::EPIPE)))
        );
    }
}

fn fail(_ring: &mut Ring, _mail: Mail<'_>) -> Result<(), RingError> {
    Err(RingError::callback("the handler refused"))
}

fn explode(_ring: &mut Ring, _mail: Mail<'_>) -> Result<(), RingError> {
    panic!("handler exploded");
}

#[test]
fn a_failing_handler_ends_the_child_with_its_error() {
    for level in [KernelLevel::Native, KernelLevel::V5_6] {
        let mut ring = parent(level);
        let thread = Thread::spawn(&mut ring, 16).expect("spawn");
        thread.send(&mut ring, fail, 0, Context::default());
        wait_sent(&mut ring);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        match thread.join() {
            Err(RingError::Callback(e)) => assert_eq!(e.to_string(), "the handler refused"),
            other => panic!("{level}: {other:?}"),
        }
    }
}

#[test]
fn a_panicking_handler_reaches_join() {
    for level in [KernelLevel::Native, KernelLevel::V5_6] {
        let mut ring = parent(level);
        let thread = Thread::spawn(&mut ring, 16).expect("spawn");
        thread.send(&mut ring, explode, 0, Context::default());
        wait_sent(&mut ring);
        match thread.join() {
            Err(RingError::ThreadPanicked(m)) => assert!(m.contains("exploded"), "{m}"),
            other => panic!("{level}: {other:?}"),
        }
    }
}

// ----- fan-out and many senders -----

static RECEIVED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

fn collect(_ring: &mut Ring, mail: Mail<'_>) -> Result<(), RingError> {
    RECEIVED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(mail.payload);
    Ok(())
}

fn echo_back(ring: &mut Ring, mail: Mail<'_>) -> Result<(), RingError> {
    let parent = mail.reply_to.expect("parent");
    parent.send(ring, collect, mail.payload, Context::default());
    Ok(())
}

#[test]
fn fan_out_to_more_children_than_cores() {
    for level in [KernelLevel::Native, KernelLevel::V5_6] {
        RECEIVED.lock().expect("lock").clear();
        let mut ring = parent(level);
        let children: Vec<Thread> = (0..4)
            .map(|_| Thread::spawn(&mut ring, 32).expect("spawn"))
            .collect();
        let per_child = 2_000u64;
        for i in 0..per_child {
            for (c, child) in children.iter().enumerate() {
                child.send(
                    &mut ring,
                    echo_back,
                    (c as u64) << 32 | i,
                    Context::default(),
                );
            }
            if i % 64 == 0 {
                ring.run(RunCondition::NoWait).expect("run");
            }
        }
        let total = per_child as usize * children.len();
        let deadline = Instant::now() + Duration::from_secs(60);
        while RECEIVED.lock().expect("lock").len() < total && Instant::now() < deadline {
            ring.run(RunCondition::For(Duration::from_millis(10)))
                .expect("run");
        }
        let got = std::mem::take(&mut *RECEIVED.lock().expect("lock"));
        assert_eq!(got.len(), total, "{level}: every message came back");
        let unique: HashSet<u64> = got.iter().copied().collect();
        assert_eq!(unique.len(), total, "{level}: exactly once each");
        for child in children {
            child.join().expect("join");
        }
    }
}

static FROM_MANY: Mutex<Vec<u64>> = Mutex::new(Vec::new());

fn count_from_many(_ring: &mut Ring, mail: Mail<'_>) -> Result<(), RingError> {
    FROM_MANY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(mail.payload);
    Ok(())
}

/// Several parents (each a ring on its own thread) send to one child at the same time
/// through the fallback queue: every message arrives exactly once.
#[test]
fn concurrent_senders_through_the_fallback_queue() {
    FROM_MANY.lock().expect("lock").clear();
    let mut home = parent(KernelLevel::V5_6);
    let thread = Thread::spawn(&mut home, 32).expect("spawn");
    let peer = thread.peer().clone();
    let senders = 3u64;
    let each = 5_000u64;
    let handles: Vec<_> = (0..senders)
        .map(|s| {
            let peer = peer.clone();
            std::thread::spawn(move || {
                let mut ring = parent(KernelLevel::V5_6);
                for i in 0..each {
                    peer.send(&mut ring, count_from_many, s << 32 | i, Context::default());
                    if i % 32 == 0 {
                        ring.run(RunCondition::NoWait).expect("run");
                    }
                }
                ring.run(RunCondition::UntilDone).expect("run");
            })
        })
        .collect();
    for h in handles {
        h.join().expect("sender");
    }
    let total = (senders * each) as usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while FROM_MANY.lock().expect("lock").len() < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    thread.join().expect("join");
    let got = std::mem::take(&mut *FROM_MANY.lock().expect("lock"));
    assert_eq!(got.len(), total);
    let unique: HashSet<u64> = got.iter().copied().collect();
    assert_eq!(unique.len(), total, "exactly once each");
    // Each sender's messages arrive in the order it sent them.
    for s in 0..senders {
        let mine: Vec<u64> = got.iter().copied().filter(|p| p >> 32 == s).collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "sender {s} in order");
    }
}

// ----- cancel_all next to a mailbox -----

thread_local! {
    static CANCELLED: Cell<Option<u32>> = const { Cell::new(None) };
}

fn on_cancel_all(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    if let Some(OpResult::CancelAll(Ok(n))) = task.result {
        CANCELLED.with(|c| c.set(Some(n)));
    }
    Ok(())
}

/// A parent ring has a mailbox read in flight for its child's replies. `cancel_all` counts
/// the user's tasks only, and the mailbox keeps working afterwards.
fn cancel_all_counts_only_user_tasks(level: KernelLevel) {
    let mut ring = parent(level);
    let thread = Thread::spawn(&mut ring, 16).expect("spawn");
    let long = xuring_core::Timespec::from_duration(Duration::from_secs(60));
    for _ in 0..3 {
        ring.timer(long, Context::default());
    }
    ring.run(RunCondition::NoWait).expect("submit the timers");
    for _ in 0..2 {
        ring.timer(long, Context::default());
    }
    CANCELLED.with(|c| c.set(None));
    ring.cancel_all(Context {
        cb: on_cancel_all,
        msg: 0,
        userdata: None,
    });
    ring.run(RunCondition::UntilDone).expect("cancel");
    assert_eq!(
        CANCELLED.with(Cell::get),
        Some(5),
        "3 in flight and 2 queued, not the mailbox read ({level})"
    );
    // The mailbox still hears the child.
    PONGS.with(|p| p.set(0));
    SUM.with(|s| s.set(0));
    TARGET.with(|t| t.set(1));
    CHILD.with(|c| *c.borrow_mut() = Some(thread.peer().clone()));
    thread.send(&mut ring, ping, 0, Context::default());
    let start = Instant::now();
    while PONGS.with(Cell::get) < 1 && start.elapsed() < Duration::from_secs(5) {
        ring.run(RunCondition::For(Duration::from_millis(10)))
            .expect("run");
    }
    CHILD.with(|c| c.borrow_mut().take());
    assert_eq!(
        PONGS.with(Cell::get),
        1,
        "a reply after cancel_all ({level})"
    );
    thread.join().expect("join");
}

#[test]
fn cancel_all_leaves_the_mailbox_alone() {
    cancel_all_counts_only_user_tasks(KernelLevel::Native);
    cancel_all_counts_only_user_tasks(KernelLevel::V5_6);
}

#[test]
fn a_parent_with_a_mailbox_is_idle_when_its_own_work_is_done() {
    for level in [KernelLevel::Native, KernelLevel::V5_6] {
        let mut ring = parent(level);
        let thread = Thread::spawn(&mut ring, 8).expect("spawn");
        ring.noop(Context::default());
        assert!(!ring.is_idle(), "a noop queued ({level})");
        ring.run(RunCondition::UntilDone).expect("run");
        assert!(
            ring.is_idle(),
            "only the mailbox read is in flight ({level})"
        );
        thread.join().expect("join");
    }
}

// ----- out of file descriptors -----

const NOFILE_CHILD: &str = "XURING_THREAD_NOFILE_CHILD";

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// The lowest fd numbers not open, `n` of them.
fn free_fds(n: usize) -> Vec<libc::rlim_t> {
    (0..)
        .filter(|&fd| {
            // SAFETY: `F_GETFD` takes no argument and only reads the fd table.
            let ret = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            ret < 0
        })
        .take(n)
        .map(|fd| fd as libc::rlim_t)
        .collect()
}

fn set_nofile(soft: libc::rlim_t, hard: libc::rlim_t) {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `limit` is a valid rlimit for `setrlimit` to read.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(ret, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

/// Runs in a child process (it lowers the process's fd limit): each fd `Thread::spawn`
/// needs, in the order it is made, is refused in turn with `EMFILE`.
fn spawn_out_of_fds() {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `old` is a valid rlimit for `getrlimit` to fill.
    let ret = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) };
    assert_eq!(ret, 0, "getrlimit");
    let before = open_fds();
    let mut ring = parent(KernelLevel::Native);
    let os = |call| RingError::Os {
        call,
        errno: xuring_core::Errno::EMFILE,
    };
    // Room for this many new fds, and the error: the parent's mailbox needs a dup of its ring
    // fd, then an eventfd; once it has them (it keeps them), the child needs a ring, then a
    // dup and an eventfd for its own mailbox.
    let steps = [
        (0, os("fcntl(F_DUPFD_CLOEXEC)")),
        (1, os("eventfd")),
        (
            2,
            RingError::Setup(xuring_sys::SetupError::Os {
                call: match ring.executor() {
                    xuring_core::Executor::IoUring => "io_uring_setup",
                    xuring_core::Executor::Epoll => "epoll_create1",
                },
                errno: xuring_core::Errno::EMFILE,
            }),
        ),
        (1, os("fcntl(F_DUPFD_CLOEXEC)")),
        (2, os("eventfd")),
    ];
    for (room, expected) in steps {
        let free = free_fds(room + 1);
        set_nofile(free[room], old.rlim_max);
        let outcome = Thread::spawn(&mut ring, 8);
        set_nofile(old.rlim_cur, old.rlim_max);
        let err = match outcome {
            Ok(thread) => panic!("spawned with room for {room} fds: {:?}", thread.join()),
            Err(e) => e,
        };
        // RingError is not PartialEq (a callback's error is a trait object).
        assert_eq!(
            format!("{err:?}"),
            format!("{expected:?}"),
            "room for {room} fds"
        );
        if let RingError::Os { call, .. } = &err {
            assert_eq!(
                err.to_string(),
                format!("{call} failed: EMFILE: Too many open files (os error 24)")
            );
            assert!(std::error::Error::source(&err).is_some());
        }
    }
    // With the limit back, the same ring spawns a thread that works.
    let thread = Thread::spawn(&mut ring, 8).expect("spawn");
    thread.join().expect("join");
    drop(ring);
    assert_eq!(open_fds(), before, "no fd leaked");
}

#[test]
fn spawn_out_of_fds_is_an_os_error_naming_the_call() {
    if std::env::var_os(NOFILE_CHILD).is_some() {
        spawn_out_of_fds();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "spawn_out_of_fds_is_an_os_error_naming_the_call",
            "--test-threads=1",
        ])
        .env(NOFILE_CHILD, "1")
        .output()
        .expect("spawn the child");
    assert!(
        out.status.success(),
        "child failed: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
