//! The safe API's guarantees on the real kernel (docs/reliability.md, "What the safe API
//! guarantees"): a callback may replace its ring, teardown closes the descriptors no callback
//! received, a `Thread` is never joined with a message admitted but unsent, user ops cannot
//! touch the runtime's own fds, and a user's `msg_ring` cannot pass for a `Thread` message.
//! The memory cases also run on the mock under Miri (xuring-mock's `tests/soundness.rs`).

mod common;

use std::cell::RefCell;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use xuring_core::{
    Context, Errno, KernelLevel, Mail, Message, Offset, OpResult, Ring, RingError, RunCondition,
    Task, Thread,
};

fn ctx(cb: fn(&mut Ring, &Task) -> Result<(), RingError>) -> Context {
    Context {
        cb,
        ..Context::default()
    }
}

fn ring_at(level: KernelLevel) -> Ring {
    Ring::builder(16).kernel_level(level).build().expect("ring")
}

thread_local! {
    static RESULTS: RefCell<Vec<OpResult>> = const { RefCell::new(Vec::new()) };
}

fn record(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    if let Some(result) = task.result {
        RESULTS.with(|r| r.borrow_mut().push(result));
    }
    Ok(())
}

fn results() -> Vec<OpResult> {
    RESULTS.with(|r| r.borrow_mut().drain(..).collect())
}

fn stop(_ring: &mut Ring, _task: &Task) -> Result<(), RingError> {
    Err(RingError::callback("stop"))
}

fn replace(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    *ring = Ring::init(8).expect("a second ring");
    // The finished ring's task is still readable here.
    assert_eq!(task.result, Some(OpResult::Noop(Ok(()))));
    ring.noop(ctx(record));
    Ok(())
}

#[test]
fn a_callback_may_replace_its_ring_with_reads_in_flight() {
    let (rd, wr) = common::pipe();
    let mut ring = Ring::init(8).expect("ring");
    ring.read(rd.raw(), vec![0u8; 64], Offset::File, ctx(record));
    ring.noop(ctx(replace));
    assert!(matches!(
        ring.run(RunCondition::UntilDone),
        Err(RingError::Replaced)
    ));
    // The replaced ring was torn down when its run stopped: the read was cancelled, so the
    // bytes written now stay in the pipe for us.
    common::write_all(wr.raw(), b"late");
    let mut got = [0u8; 8];
    // SAFETY: `got` is a live 8-byte buffer.
    let n = unsafe { libc::read(rd.raw(), got.as_mut_ptr().cast(), got.len()) };
    assert_eq!(n, 4);
    assert_eq!(&got[..4], b"late");
    ring.run(RunCondition::UntilDone).expect("the new ring");
    assert_eq!(results(), [OpResult::Noop(Ok(()))]);
}

/// A FIFO with its read end open (non-blocking): it reads EOF only once every writer is
/// closed, so it shows whether fds opened for writing by the ring were closed.
struct Fifo {
    path: std::path::PathBuf,
    reader: std::fs::File,
}

impl Fifo {
    fn new(name: &str) -> Fifo {
        let path = std::env::temp_dir().join(format!("xuring-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: `c` is a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .expect("fifo reader");
        Fifo { path, reader }
    }

    fn c_path(&self) -> std::ffi::CString {
        std::ffi::CString::new(self.path.as_os_str().as_encoded_bytes()).expect("path")
    }

    /// `Ok(0)` once every writer is closed, `WouldBlock` while one is open.
    fn read(&mut self) -> std::io::Result<usize> {
        self.reader.read(&mut [0u8; 8])
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

use std::os::unix::fs::OpenOptionsExt;

fn teardown_closes_undelivered_opens(level: KernelLevel, name: &str) {
    let mut fifo = Fifo::new(name);
    let mut ring = ring_at(level);
    ring.noop(ctx(stop));
    for _ in 0..10 {
        ring.open(fifo.c_path(), libc::O_WRONLY, 0, ctx(record));
    }
    // The run stops at the noop's error; the opens finish in the kernel, uncalled back.
    assert!(matches!(
        ring.run(RunCondition::UntilDone),
        Err(RingError::Callback(_))
    ));
    while ring.in_flight() > 0 {
        let _ = ring.run(RunCondition::NoWait);
    }
    assert_eq!(
        fifo.read().map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "the ring holds open writers"
    );
    drop(ring);
    assert_eq!(fifo.read().expect("EOF"), 0, "every writer was closed");
    assert!(results().len() < 10, "not every open was called back");
}

#[test]
fn teardown_closes_files_opened_for_no_callback() {
    teardown_closes_undelivered_opens(KernelLevel::Native, "open-native");
    teardown_closes_undelivered_opens(KernelLevel::V5_6, "open-5.6");
}

#[test]
fn teardown_closes_accepted_sockets_no_callback_received() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let mut client =
        std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("timeout");
    let mut ring = Ring::init(8).expect("ring");
    ring.noop(ctx(stop));
    ring.accept(listener.as_raw_fd(), ctx(record));
    assert!(ring.run(RunCondition::UntilDone).is_err());
    // The connection waited in the backlog, so the accept completes at once; drain it
    // without running its callback.
    while ring.in_flight() > 0 {
        let _ = ring.run(RunCondition::NoWait);
    }
    drop(ring);
    let mut byte = [0u8; 1];
    assert_eq!(
        client.read(&mut byte).expect("EOF, not a timeout"),
        0,
        "the accepted end was closed"
    );
    drop(listener);
}

// ----- Thread -----

thread_local! {
    static THREAD: RefCell<Option<Thread>> = const { RefCell::new(None) };
    static JOINED: RefCell<Option<Result<(), String>>> = const { RefCell::new(None) };
}

/// Thread messages handled (on any child): the tests that count them hold `SERIAL`.
static HANDLED: AtomicU32 = AtomicU32::new(0);
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn handled(_ring: &mut Ring, _mail: Mail<'_>) -> Result<(), RingError> {
    HANDLED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

fn send_then_miss(ring: &mut Ring, _task: &Task) -> Result<(), RingError> {
    THREAD.with(|t| {
        let thread = t.borrow();
        let thread = thread.as_ref().expect("thread");
        thread.send(ring, handled, 1, ctx(record));
    });
    // Completes locally: the run has callbacks to run again before it enters.
    ring.cancel(
        xuring_core::TaskId::from_u64(1 << 32).expect("id"),
        ctx(join_now),
    );
    Ok(())
}

fn join_now(_ring: &mut Ring, _task: &Task) -> Result<(), RingError> {
    let thread = THREAD.with(|t| t.borrow_mut().take()).expect("thread");
    let joined = thread.join().map_err(|e| e.to_string());
    JOINED.with(|j| *j.borrow_mut() = Some(joined));
    Ok(())
}

fn join_after_send_in_the_same_run(level: KernelLevel) {
    let _serial = serial();
    HANDLED.store(0, Ordering::SeqCst);
    let mut ring = ring_at(level);
    let thread = Thread::spawn(&mut ring, 16).expect("spawn");
    THREAD.with(|t| *t.borrow_mut() = Some(thread));
    ring.noop(ctx(send_then_miss));
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(JOINED.with(|j| j.borrow_mut().take()), Some(Ok(())));
    // The send was queued when the child stopped: it is refused, never reported sent and lost.
    let sent = results();
    let handled = HANDLED.load(Ordering::SeqCst);
    match sent.as_slice() {
        [OpResult::MsgRing(Err(Errno::EPIPE))] => assert_eq!(handled, 0),
        [OpResult::MsgRing(Ok(()))] => assert_eq!(handled, 1, "sent, so handled"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn joining_from_a_callback_after_a_send_in_the_same_run_loses_nothing() {
    join_after_send_in_the_same_run(KernelLevel::Native);
    join_after_send_in_the_same_run(KernelLevel::V5_6);
}

static CHILD_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

fn tell_fd(ring: &mut Ring, _mail: Mail<'_>) -> Result<(), RingError> {
    CHILD_FD.store(ring.fd(), std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

/// The eventfds this process has open.
fn eventfds() -> Vec<i32> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            (target.to_str()? == "anon_inode:[eventfd]").then_some(fd)
        })
        .collect()
}

fn runtime_fds_are_not_the_users(level: KernelLevel) {
    let _serial = serial();
    HANDLED.store(0, Ordering::SeqCst);
    let before = eventfds();
    let mut ring = ring_at(level);
    let thread = Thread::spawn(&mut ring, 16).expect("spawn");
    let mailboxes: Vec<i32> = eventfds()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    assert_eq!(mailboxes.len(), 2, "the parent's and the child's mailbox");
    for &fd in &mailboxes {
        ring.close(fd, ctx(record));
        ring.read(fd, vec![0u8; 8], Offset::File, ctx(record));
        ring.write(fd, 1u64.to_ne_bytes().to_vec(), Offset::File, ctx(record));
    }
    ring.run(RunCondition::UntilDone).expect("run");
    let refused = [
        OpResult::Close(Err(Errno::EPERM)),
        OpResult::Read(Err(Errno::EPERM)),
        OpResult::Write(Err(Errno::EPERM)),
    ];
    assert_eq!(results(), [refused, refused].concat());
    // The mailboxes still work.
    thread.send(&mut ring, handled, 1, ctx(record));
    ring.run(RunCondition::UntilDone).expect("run");
    // Joining finishes what the child received.
    thread.join().expect("join");
    assert_eq!(HANDLED.load(Ordering::SeqCst), 1);
    assert_eq!(results(), [OpResult::MsgRing(Ok(()))]);
    drop(ring);
    assert_eq!(
        eventfds(),
        before,
        "the mailboxes' eventfds were closed with them"
    );
}

#[test]
fn user_ops_refuse_the_mailbox_eventfds() {
    runtime_fds_are_not_the_users(KernelLevel::Native);
    runtime_fds_are_not_the_users(KernelLevel::V5_6);
}

#[test]
fn a_users_msg_ring_cannot_pass_for_thread_mail() {
    let mut ring = Ring::init(16).expect("ring");
    if !ring.features().supports(xuring_sys::Opcode::MsgRing) {
        return;
    }
    let _serial = serial();
    HANDLED.store(0, Ordering::SeqCst);
    let thread = Thread::spawn(&mut ring, 16).expect("spawn");
    thread.send(&mut ring, tell_fd, 0, Context::default());
    // The child stores its ring's fd; nothing comes back to this ring, so poll in slices.
    while CHILD_FD.load(std::sync::atomic::Ordering::SeqCst) < 0 {
        ring.run(RunCondition::For(std::time::Duration::from_millis(10)))
            .expect("run");
    }
    let child = CHILD_FD.load(std::sync::atomic::Ordering::SeqCst);
    // Reserved bits are refused; a plain message reaches the child's ring, not its mailbox.
    ring.msg_ring(
        child,
        Message {
            data: 1 << 62,
            value: 1,
        },
        ctx(record),
    );
    ring.msg_ring(child, Message { data: 5, value: 1 }, ctx(record));
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(
        results(),
        [
            OpResult::MsgRing(Err(Errno::EINVAL)),
            OpResult::MsgRing(Ok(()))
        ]
    );
    thread.send(&mut ring, handled, 1, Context::default());
    ring.run(RunCondition::UntilDone).expect("run");
    thread
        .join()
        .expect("the child saw one thread message, and handled it");
    assert_eq!(HANDLED.load(Ordering::SeqCst), 1);
}

fn replace_the_child(ring: &mut Ring, _mail: Mail<'_>) -> Result<(), RingError> {
    *ring = Ring::init(8).expect("ring");
    Ok(())
}

#[test]
fn a_handler_replacing_the_child_ring_ends_the_child_cleanly() {
    let _serial = serial();
    let mut ring = Ring::init(16).expect("ring");
    let thread = Thread::spawn(&mut ring, 16).expect("spawn");
    thread.send(&mut ring, replace_the_child, 0, Context::default());
    ring.run(RunCondition::UntilDone).expect("run");
    while !thread.is_finished() {
        ring.run(RunCondition::For(std::time::Duration::from_millis(10)))
            .expect("run");
    }
    assert!(matches!(thread.join(), Err(RingError::Replaced)));
}

fn fail_handler(_ring: &mut Ring, _mail: Mail<'_>) -> Result<(), RingError> {
    Err(RingError::callback("handler failed"))
}

#[test]
fn a_failing_handler_still_lets_the_child_handle_what_was_sent() {
    for level in [KernelLevel::Native, KernelLevel::V5_6] {
        let _serial = serial();
        HANDLED.store(0, Ordering::SeqCst);
        let mut ring = ring_at(level);
        let thread = Thread::spawn(&mut ring, 16).expect("spawn");
        thread.send(&mut ring, fail_handler, 0, ctx(record));
        for i in 1..=3 {
            thread.send(&mut ring, handled, i, ctx(record));
        }
        ring.run(RunCondition::UntilDone).expect("run");
        assert_eq!(results(), [OpResult::MsgRing(Ok(())); 4], "all four sent");
        assert!(matches!(thread.join(), Err(RingError::Callback(_))));
        assert_eq!(
            HANDLED.load(Ordering::SeqCst),
            3,
            "none reported sent is dropped"
        );
    }
}

thread_local! {
    static USER_MESSAGES: RefCell<Vec<Message>> = const { RefCell::new(Vec::new()) };
}

fn user_message(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    if let Some(OpResult::Message(m)) = task.result {
        USER_MESSAGES.with(|u| u.borrow_mut().push(m));
    }
    Ok(())
}

fn take_over_messages(ring: &mut Ring, _mail: Mail<'_>) -> Result<(), RingError> {
    ring.on_message(Context::default());
    Ok(())
}

fn reply(ring: &mut Ring, mail: Mail<'_>) -> Result<(), RingError> {
    let parent = mail.reply_to.expect("a parent");
    parent.send(ring, handled_here, mail.payload, Context::default());
    Ok(())
}

thread_local! {
    static REPLIES: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

fn handled_here(_ring: &mut Ring, mail: Mail<'_>) -> Result<(), RingError> {
    REPLIES.with(|r| r.borrow_mut().push(mail.payload));
    Ok(())
}

#[test]
fn a_users_message_handler_never_takes_thread_mail() {
    let _serial = serial();
    HANDLED.store(0, Ordering::SeqCst);
    let mut ring = Ring::init(16).expect("ring");
    let thread = Thread::spawn(&mut ring, 16).expect("spawn");
    // On both sides: the parent's handler, and one a child's handler installs.
    ring.on_message(ctx(user_message));
    thread.send(&mut ring, take_over_messages, 0, Context::default());
    thread.send(&mut ring, reply, 7, Context::default());
    thread.send(&mut ring, handled, 1, Context::default());
    while REPLIES.with(|r| r.borrow().is_empty()) {
        ring.run(RunCondition::For(std::time::Duration::from_millis(10)))
            .expect("run");
    }
    assert_eq!(REPLIES.with(|r| r.borrow().clone()), [7]);
    assert!(USER_MESSAGES.with(|u| u.borrow().is_empty()));
    thread.join().expect("join");
    assert_eq!(HANDLED.load(Ordering::SeqCst), 1);
}

#[test]
fn a_pool_the_kernel_will_not_register_still_builds() {
    // Over the kernel's 1 GiB per-buffer limit: registration fails with EFAULT.
    let ring = Ring::builder(8)
        .buffer_pool(1, (1 << 30) + 4096)
        .build()
        .expect("an unregistered pool is still a pool");
    let pool = ring.buffers().expect("pool");
    assert!(!pool.is_registered());
}

#[test]
fn cancel_all_does_not_count_the_mailbox_read() {
    let mut ring = Ring::init(16).expect("ring");
    let _peer = ring.peer().expect("a mailbox");
    ring.cancel_all(ctx(record));
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(results(), [OpResult::CancelAll(Ok(0))]);
}

thread_local! {
    static RAW: std::cell::Cell<Option<(std::ptr::NonNull<u8>, i32, i32)>> =
        const { std::cell::Cell::new(None) };
    static LEFT_IN_PIPE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn drop_ring_then_free(ring: &mut Ring, _task: &Task) -> Result<(), RingError> {
    // `read_raw`'s contract ends when the ring is dropped: dropping it waits for its ops,
    // even from inside one of its callbacks.
    *ring = Ring::init(8).expect("ring");
    let (ptr, rd, wr) = RAW.with(std::cell::Cell::take).expect("raw");
    // SAFETY: the ring the read was given to has been dropped; the box is freed once.
    drop(unsafe { Box::from_raw(ptr.as_ptr().cast::<[u8; 64]>()) });
    // No read is left in the kernel: what is written now stays in the pipe.
    common::write_all(wr, b"after the drop");
    let mut got = [0u8; 64];
    // SAFETY: `got` is a live 64-byte buffer.
    let n = unsafe { libc::read(rd, got.as_mut_ptr().cast(), got.len()) };
    LEFT_IN_PIPE.with(|l| l.borrow_mut().extend_from_slice(&got[..n.max(0) as usize]));
    Ok(())
}

#[test]
fn dropping_the_ring_in_a_callback_waits_for_its_raw_read() {
    for level in [KernelLevel::Native, KernelLevel::V5_6] {
        LEFT_IN_PIPE.with(|l| l.borrow_mut().clear());
        let (r, w) = common::pipe();
        let mut ring = ring_at(level);
        let ptr = std::ptr::NonNull::from(Box::leak(Box::new([0u8; 64]))).cast::<u8>();
        RAW.with(|c| c.set(Some((ptr, r.raw(), w.raw()))));
        // SAFETY: 64 bytes owned by the box, valid until the ring is dropped (the callback
        // frees it right after dropping the ring).
        unsafe { ring.read_raw(r.raw(), ptr, 64, Offset::File, Context::default()) };
        ring.run(RunCondition::NoWait)
            .expect("the read is in flight");
        ring.noop(ctx(drop_ring_then_free));
        assert!(matches!(
            ring.run(RunCondition::UntilDone),
            Err(RingError::Replaced)
        ));
        assert_eq!(LEFT_IN_PIPE.with(|l| l.borrow().clone()), b"after the drop");
    }
}

static CHAIN_STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn chain(ring: &mut Ring, _task: &Task) -> Result<(), RingError> {
    if !CHAIN_STOP.load(Ordering::SeqCst) {
        ring.noop(ctx(chain));
    }
    Ok(())
}

fn start_chain(ring: &mut Ring, _mail: Mail<'_>) -> Result<(), RingError> {
    ring.noop(ctx(chain));
    Ok(())
}

#[test]
fn join_returns_while_the_childs_own_work_keeps_completing() {
    let _serial = serial();
    CHAIN_STOP.store(false, Ordering::SeqCst);
    let mut ring = Ring::init(16).expect("ring");
    let thread = Thread::spawn(&mut ring, 16).expect("spawn");
    thread.send(&mut ring, start_chain, 0, Context::default());
    thread.send(&mut ring, handled, 0, Context::default());
    ring.run(RunCondition::UntilDone).expect("run");
    // The child's noop chain never ends by itself; the stop cancels it.
    thread.join().expect("join");
    CHAIN_STOP.store(true, Ordering::SeqCst);
}

fn replace_child(ring: &mut Ring, _mail: Mail<'_>) -> Result<(), RingError> {
    *ring = Ring::init(8).expect("ring");
    Ok(())
}

#[test]
fn messages_after_a_failing_and_a_replacing_handler_are_still_handled() {
    let _serial = serial();
    for _ in 0..5 {
        HANDLED.store(0, Ordering::SeqCst);
        let mut ring = ring_at(KernelLevel::V5_6);
        let thread = Thread::spawn(&mut ring, 16).expect("spawn");
        thread.send(&mut ring, fail_handler, 0, Context::default());
        thread.send(&mut ring, replace_child, 0, Context::default());
        for i in 0..3 {
            thread.send(&mut ring, handled, i, Context::default());
        }
        ring.run(RunCondition::UntilDone).expect("run");
        let joined = thread.join();
        assert!(
            matches!(joined, Err(RingError::Callback(_) | RingError::Replaced)),
            "{joined:?}"
        );
        assert_eq!(HANDLED.load(Ordering::SeqCst), 3, "sent, so handled");
    }
}
