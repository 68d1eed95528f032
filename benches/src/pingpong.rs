//! The sides of the `msgring` scenario: ping-pong between the main thread and a second thread,
//! one message each way per round trip, the next ping sent only once the pong is back.
//!
//! - [`XuringPingPong`]: a parent [`Ring`] and a [`Thread`] (its child ring on its own thread);
//!   the child's handler replies through [`Mail::reply_to`], the parent's handler sends the
//!   next ping. At native level messages travel by `IORING_OP_MSG_RING`; at
//!   [`KernelLevel::V5_6`] by the eventfd + queue fallback.
//! - [`RawMsgRing`]: two raw `io-uring` rings, each posting `MSG_RING` data to the other and
//!   waiting for the reply and for its own send's completion in one `io_uring_enter`.
//! - [`MpscPingPong`]: two `std::sync::mpsc` channels.
//! - [`EventfdPingPong`]: two eventfds, blocking `read` and `write`.
//!
//! Each second thread lives as long as its runner, so a run is only the round trips; it stops
//! when told (a stop message or a closed channel) and is joined within
//! [`crate::threads::STOP_LIMIT`].
//!
//! # Safety
//!
//! The one kind of `unsafe` is pushing a `MSG_RING` entry on a raw ring: such an entry names
//! no memory, only the target ring's fd, which each side holds a duplicate of (an `OwnedFd`)
//! for as long as it can send, so the number always names the same ring.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use io_uring::{IoUring, Submitter, opcode, types};
use xuring_core::{
    Context, KernelLevel, Mail, OpResult, Peer, Ring, RingError, RunCondition, Task, Thread,
};
use xuring_sys::SetupFlags;

use crate::error::{BenchError, check_complete};
use crate::pin::{CpuPair, pin_thread_to};
use crate::raw::raw_ring;
use crate::threads::{STOP_LIMIT, join_within, spawn_pinned};

/// Entries of every ring in this scenario: one message in flight each way needs few.
pub const RING_ENTRIES: u32 = 64;

// ----- xuring -----

/// The parent side's state, reached from the message handlers (which get only the ring and
/// the mail). One per thread: a thread runs one ping-pong at a time.
struct ParentState {
    /// The child to ping, set for the length of a run.
    child: RefCell<Option<Peer>>,
    /// Pongs received, which is also the payload the next one must carry.
    next: Cell<u64>,
    /// Round trips to do in this run.
    target: Cell<u64>,
    /// Pongs that came back with another payload than expected.
    bad: Cell<u64>,
    /// Sends of the parent that did not post.
    failed: Cell<u64>,
    /// The child's answer to [`pin_child`]: whether it pinned itself.
    pinned: Cell<Option<bool>>,
}

thread_local! {
    static PARENT: ParentState = const {
        ParentState {
            child: RefCell::new(None),
            next: Cell::new(0),
            target: Cell::new(0),
            bad: Cell::new(0),
            failed: Cell::new(0),
            pinned: Cell::new(None),
        }
    };
}

/// The parent's send completed: count it if it failed.
fn parent_sent(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    if !matches!(task.result, Some(OpResult::MsgRing(Ok(())))) {
        PARENT.with(|s| s.failed.set(s.failed.get() + 1));
    }
    Ok(())
}

const PARENT_SENT: Context = Context {
    cb: parent_sent,
    msg: 0,
    userdata: None,
};

/// The child's reply completed: a failure ends the child with an error (which `join` returns).
fn child_sent(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    match task.result {
        Some(OpResult::MsgRing(Ok(()))) => Ok(()),
        _ => Err(RingError::callback("the child's reply was not posted")),
    }
}

const CHILD_SENT: Context = Context {
    cb: child_sent,
    msg: 0,
    userdata: None,
};

/// On the child: send the payload straight back.
fn ping(ring: &mut Ring, mail: Mail<'_>) -> Result<(), RingError> {
    let Some(parent) = mail.reply_to else {
        return Err(RingError::callback(
            "a ping reached a ring without a parent",
        ));
    };
    parent.send(ring, pong, mail.payload, CHILD_SENT);
    Ok(())
}

/// On the parent: check the payload, then ping again until the run's count is done.
fn pong(ring: &mut Ring, mail: Mail<'_>) -> Result<(), RingError> {
    PARENT.with(|s| {
        let n = s.next.get();
        s.bad.set(s.bad.get() + u64::from(mail.payload != n));
        s.next.set(n + 1);
        if n + 1 < s.target.get() {
            match s.child.borrow().as_ref() {
                Some(child) => {
                    child.send(ring, ping, n + 1, PARENT_SENT);
                }
                None => s.failed.set(s.failed.get() + 1),
            }
        }
    });
    Ok(())
}

/// On the child: pin this thread to CPU `payload`, and say whether that worked.
fn pin_child(ring: &mut Ring, mail: Mail<'_>) -> Result<(), RingError> {
    let Some(parent) = mail.reply_to else {
        return Err(RingError::callback(
            "a pin request reached a ring without a parent",
        ));
    };
    let ok = usize::try_from(mail.payload).is_ok_and(|cpu| pin_thread_to(cpu).is_ok());
    parent.send(ring, pinned, u64::from(ok), CHILD_SENT);
    Ok(())
}

/// On the parent: the child's answer to [`pin_child`].
fn pinned(_ring: &mut Ring, mail: Mail<'_>) -> Result<(), RingError> {
    PARENT.with(|s| s.pinned.set(Some(mail.payload == 1)));
    Ok(())
}

fn child_gone() -> BenchError {
    BenchError::Other("the child thread is gone".to_owned())
}

/// Ping-pong between a parent ring and its [`Thread`], at a kernel level.
pub struct XuringPingPong {
    // Declared before the ring: the child is stopped before the parent ring goes.
    thread: Option<Thread>,
    ring: Ring,
    level: KernelLevel,
    child_pinned: bool,
    done: u64,
}

impl XuringPingPong {
    /// A parent ring at `level` and its child thread, which pins itself to `pair.other` (if
    /// set) before any round trip.
    pub fn new(level: KernelLevel, pair: &CpuPair) -> Result<XuringPingPong, BenchError> {
        let mut ring = Ring::builder(RING_ENTRIES).kernel_level(level).build()?;
        let thread = Thread::spawn(&mut ring, RING_ENTRIES)?;
        let mut me = XuringPingPong {
            thread: Some(thread),
            ring,
            level,
            child_pinned: false,
            done: 0,
        };
        if let Some(cpu) = pair.other {
            me.child_pinned = me.pin_child(cpu)?;
        }
        Ok(me)
    }

    /// Asks the child to pin itself to `cpu`; returns its answer.
    fn pin_child(&mut self, cpu: usize) -> Result<bool, BenchError> {
        PARENT.with(|s| {
            s.pinned.set(None);
            s.failed.set(0);
        });
        let thread = self.thread.as_ref().ok_or_else(child_gone)?;
        thread.send(&mut self.ring, pin_child, cpu as u64, PARENT_SENT);
        // The send's completion and the answer: two callbacks, a few more runs at most.
        for _ in 0..64 {
            let (answer, failed) = PARENT.with(|s| (s.pinned.get(), s.failed.get()));
            if let Some(ok) = answer {
                return Ok(ok);
            }
            if failed > 0 {
                break;
            }
            self.ring.run(RunCondition::Once)?;
        }
        Err(BenchError::Other(
            "the child ring did not answer the pin request".to_owned(),
        ))
    }

    /// The kernel level of both rings.
    pub fn level(&self) -> KernelLevel {
        self.level
    }

    /// Whether the child thread pinned itself to the CPU asked for.
    pub fn child_pinned(&self) -> bool {
        self.child_pinned
    }

    /// The parent ring's setup flags (the child's are the same).
    pub fn setup(&self) -> SetupFlags {
        self.ring.features().setup
    }

    /// Round trips completed over this runner's life.
    pub fn round_trips(&self) -> u64 {
        self.done
    }

    /// Does `n` round trips; returns how many came back, each with its own payload, in order.
    pub fn run(&mut self, n: u64) -> Result<u64, BenchError> {
        if n == 0 {
            return Ok(0);
        }
        let peer = self.thread.as_ref().ok_or_else(child_gone)?.peer().clone();
        PARENT.with(|s| {
            *s.child.borrow_mut() = Some(peer);
            s.next.set(0);
            s.target.set(n);
            s.bad.set(0);
            s.failed.set(0);
        });
        let result = self.round_trips_of(n);
        let (got, bad, failed) = PARENT.with(|s| {
            s.child.borrow_mut().take();
            (s.next.get(), s.bad.get(), s.failed.get())
        });
        result?;
        // A static name: a run may be one round trip, and must not allocate.
        let what = match self.level {
            KernelLevel::V5_6 => "xuring Thread (5.6)",
            _ => "xuring Thread (native)",
        };
        if bad + failed > 0 {
            return Err(BenchError::Failed {
                what: what.to_owned(),
                count: bad + failed,
            });
        }
        self.done += got;
        check_complete(what, n, got)
    }

    fn round_trips_of(&mut self, n: u64) -> Result<(), BenchError> {
        let thread = self.thread.as_ref().ok_or_else(child_gone)?;
        thread.send(&mut self.ring, ping, 0, PARENT_SENT);
        // Each run returns after at least one callback, and every round trip takes a pong
        // (plus the send's completion): at most a bounded number of runs per round trip.
        loop {
            let (got, failed) = PARENT.with(|s| (s.next.get(), s.failed.get()));
            if got >= n || failed > 0 {
                return Ok(());
            }
            self.ring.run(RunCondition::Once)?;
        }
    }

    /// Stops and joins the child; returns its error, if it had one.
    pub fn finish(mut self) -> Result<(), BenchError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), BenchError> {
        let Some(mut thread) = self.thread.take() else {
            return Ok(());
        };
        thread.kill();
        let deadline = Instant::now() + STOP_LIMIT;
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                // Joining would block on a child that does not stop: leave it to the process.
                std::mem::forget(thread);
                return Err(BenchError::Other(format!(
                    "xuring Thread ({}): the child did not stop within {STOP_LIMIT:?}",
                    self.level
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        thread.join().map_err(BenchError::from)
    }
}

impl Drop for XuringPingPong {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

// ----- raw io-uring MSG_RING -----

/// `user_data` of a side's own `MSG_RING` entries (its messages carry round-trip numbers).
const SENT: u64 = u64::MAX;
/// The message that stops the responder.
const STOP: u64 = 1 << 62;
/// The message a failing responder sends before it exits.
const FAIL: u64 = STOP + 1;

/// `submit_and_wait`, retrying `EINTR`; `EBUSY`/`EAGAIN` return so the caller reaps first.
fn submit_and_wait(submitter: &Submitter<'_>, want: usize) -> Result<(), BenchError> {
    loop {
        match submitter.submit_and_wait(want) {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EAGAIN)) => {
                return Ok(());
            }
            Err(e) => return Err(BenchError::Io("io_uring_enter (raw msg_ring)", e)),
        }
    }
}

/// Queues a `MSG_RING` that posts a CQE with `user_data = message` and `res = 0` into the
/// ring `target`; its own completion carries [`SENT`].
fn push_message(ring: &mut IoUring, target: RawFd, message: u64) -> Result<(), BenchError> {
    let entry = opcode::MsgRingData::new(types::Fd(target), 0, message, None)
        .build()
        .user_data(SENT);
    // SAFETY: a MSG_RING entry names no memory, only `target`, a ring fd the caller holds a
    // duplicate of (see the module's safety notes).
    let pushed = unsafe { ring.submission().push(&entry) };
    pushed.map_err(|_| BenchError::Other("raw SQ full".to_owned()))
}

/// The responder's loop: reply to each message until [`STOP`]; returns the replies sent.
fn respond(ring: &mut IoUring, main: RawFd) -> Result<u64, BenchError> {
    let mut replies = 0u64;
    // Own send completions still to come.
    let mut pending = 0usize;
    loop {
        // One enter submits the reply and waits for its completion and the next message.
        submit_and_wait(&ring.submitter(), pending + 1)?;
        let mut messages: [u64; 8] = [0; 8];
        let mut count = 0;
        for cqe in ring.completion() {
            match cqe.user_data() {
                SENT if cqe.result() < 0 => {
                    return Err(BenchError::Io(
                        "MSG_RING (raw responder)",
                        std::io::Error::from_raw_os_error(-cqe.result()),
                    ));
                }
                SENT => pending = pending.saturating_sub(1),
                STOP => return Ok(replies),
                seq if count < messages.len() => {
                    messages[count] = seq;
                    count += 1;
                }
                _ => return Err(BenchError::Other("raw responder: too many messages".into())),
            }
        }
        for &seq in &messages[..count] {
            push_message(ring, main, seq)?;
            pending += 1;
            replies += 1;
        }
    }
}

/// A duplicate of a raw ring's fd, which keeps the ring (and the number) alive while held.
fn dup(ring: &IoUring, what: &'static str) -> Result<OwnedFd, BenchError> {
    // SAFETY: `ring` owns its fd and outlives this call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(ring.as_raw_fd()) };
    xuring_sys::syscall::dup_cloexec(fd).map_err(|e| BenchError::Io(what, std::io::Error::from(e)))
}

/// The responder thread: its own ring (created here, where it is used: the ring may be
/// `SINGLE_ISSUER`), whose fd it hands back, then [`respond`].
fn responder(
    setup: SetupFlags,
    main: OwnedFd,
    ready: mpsc::SyncSender<Result<OwnedFd, BenchError>>,
) -> Result<u64, BenchError> {
    let mut ring = match raw_ring(RING_ENTRIES, setup) {
        Ok(ring) => ring,
        Err(e) => {
            let _ = ready.send(Err(BenchError::Io("io_uring_setup (raw responder)", e)));
            return Ok(0);
        }
    };
    let own = dup(&ring, "dup (raw responder ring)");
    let failed = own.is_err();
    if ready.send(own).is_err() || failed {
        return Ok(0);
    }
    let result = respond(&mut ring, main.as_raw_fd());
    if result.is_err() {
        // Wake the main side, which waits for a reply that will not come.
        if push_message(&mut ring, main.as_raw_fd(), FAIL).is_ok() {
            let _ = ring.submit();
        }
    }
    result
}

/// Ping-pong between two raw `io-uring` rings on two threads with `MSG_RING`.
pub struct RawMsgRing {
    ring: IoUring,
    /// A duplicate of the responder ring's fd: the number stays that ring's while we send.
    peer: OwnedFd,
    responder: Option<JoinHandle<Result<u64, BenchError>>>,
    done: u64,
}

impl RawMsgRing {
    /// Both rings with the io_uring setup flags `setup` (those of xuring's rings), the
    /// responder on a thread pinned to `pair.other`.
    pub fn new(setup: SetupFlags, pair: &CpuPair) -> Result<RawMsgRing, BenchError> {
        let ring =
            raw_ring(RING_ENTRIES, setup).map_err(|e| BenchError::Io("io_uring_setup", e))?;
        let main = dup(&ring, "dup (raw ring)")?;
        let (tx, rx) = mpsc::sync_channel(1);
        let handle = spawn_pinned("raw-msg-ring", pair, move || responder(setup, main, tx))?;
        let peer = match rx.recv() {
            Ok(Ok(fd)) => fd,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(match join_within("raw msg_ring", handle, STOP_LIMIT) {
                    Err(e) => e,
                    Ok(_) => BenchError::Other("the raw responder did not start".to_owned()),
                });
            }
        };
        Ok(RawMsgRing {
            ring,
            peer,
            responder: Some(handle),
            done: 0,
        })
    }

    /// Round trips completed over this runner's life.
    pub fn round_trips(&self) -> u64 {
        self.done
    }

    /// Does `n` round trips; returns how many came back with their own number.
    pub fn run(&mut self, n: u64) -> Result<u64, BenchError> {
        let target = self.peer.as_raw_fd();
        let mut got = 0u64;
        let mut bad = 0u64;
        for i in 0..n {
            push_message(&mut self.ring, target, i)?;
            let (mut sent, mut back) = (false, false);
            while !(sent && back) {
                let want = usize::from(!sent) + usize::from(!back);
                submit_and_wait(&self.ring.submitter(), want)?;
                for cqe in self.ring.completion() {
                    match cqe.user_data() {
                        SENT => {
                            sent = true;
                            bad += u64::from(cqe.result() < 0);
                        }
                        FAIL => {
                            return Err(BenchError::Other(
                                "the raw responder failed (its error comes with finish)".to_owned(),
                            ));
                        }
                        seq => {
                            back = true;
                            bad += u64::from(seq != i);
                            got += 1;
                        }
                    }
                }
            }
        }
        if bad > 0 {
            return Err(BenchError::Failed {
                what: "raw msg_ring".to_owned(),
                count: bad,
            });
        }
        self.done += got;
        check_complete("raw msg_ring", n, got)
    }

    /// Stops the responder and joins it; returns its error, or an error if the replies it
    /// counted differ from the round trips seen here.
    pub fn finish(mut self) -> Result<(), BenchError> {
        let replies = self.stop()?;
        if replies != self.done {
            return Err(BenchError::Other(format!(
                "raw msg_ring: the responder sent {replies} replies for {} round trips",
                self.done
            )));
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<u64, BenchError> {
        let Some(handle) = self.responder.take() else {
            return Ok(0);
        };
        push_message(&mut self.ring, self.peer.as_raw_fd(), STOP)?;
        submit_and_wait(&self.ring.submitter(), 0)?;
        join_within("raw msg_ring", handle, STOP_LIMIT)
    }
}

impl Drop for RawMsgRing {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

// ----- std mpsc -----

/// Ping-pong over two `std::sync::mpsc` channels.
pub struct MpscPingPong {
    to: Option<mpsc::Sender<u64>>,
    from: mpsc::Receiver<u64>,
    responder: Option<JoinHandle<Result<u64, BenchError>>>,
    done: u64,
}

impl MpscPingPong {
    /// The responder on a thread pinned to `pair.other`; it ends when the sending side is
    /// dropped.
    pub fn new(pair: &CpuPair) -> Result<MpscPingPong, BenchError> {
        let (to, to_rx) = mpsc::channel::<u64>();
        let (back, from) = mpsc::channel::<u64>();
        let responder = spawn_pinned("mpsc-responder", pair, move || {
            let mut replies = 0u64;
            for value in to_rx {
                back.send(value)
                    .map_err(|_| BenchError::Other("mpsc: the main side is gone".to_owned()))?;
                replies += 1;
            }
            Ok(replies)
        })?;
        Ok(MpscPingPong {
            to: Some(to),
            from,
            responder: Some(responder),
            done: 0,
        })
    }

    /// Round trips completed over this runner's life.
    pub fn round_trips(&self) -> u64 {
        self.done
    }

    /// Does `n` round trips; returns how many came back with their own number.
    pub fn run(&mut self, n: u64) -> Result<u64, BenchError> {
        let gone = || BenchError::Other("mpsc: the responder is gone".to_owned());
        let to = self.to.as_ref().ok_or_else(gone)?;
        let mut bad = 0u64;
        for i in 0..n {
            to.send(i).map_err(|_| gone())?;
            // A responder that exits drops its sender, so this cannot wait forever.
            let back = self.from.recv().map_err(|_| gone())?;
            bad += u64::from(back != i);
        }
        if bad > 0 {
            return Err(BenchError::Failed {
                what: "mpsc".to_owned(),
                count: bad,
            });
        }
        self.done += n;
        Ok(n)
    }

    /// Closes the channel and joins the responder; checks it replied to every ping.
    pub fn finish(mut self) -> Result<(), BenchError> {
        let replies = self.stop()?;
        if replies != self.done {
            return Err(BenchError::Other(format!(
                "mpsc: {replies} replies for {} round trips",
                self.done
            )));
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<u64, BenchError> {
        drop(self.to.take());
        match self.responder.take() {
            Some(handle) => join_within("mpsc", handle, STOP_LIMIT),
            None => Ok(0),
        }
    }
}

impl Drop for MpscPingPong {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

// ----- eventfd -----

/// The value that stops the eventfd responder (the largest an eventfd counter can hold).
const EVENTFD_STOP: u64 = u64::MAX - 1;
/// The value a failing eventfd responder writes before it exits.
const EVENTFD_FAIL: u64 = u64::MAX - 2;

fn eventfd() -> Result<File, BenchError> {
    let fd = xuring_sys::syscall::eventfd(false)
        .map_err(|e| BenchError::Io("eventfd", std::io::Error::from(e)))?;
    Ok(File::from(fd))
}

/// Reads an eventfd's counter (blocking until it is non-zero), which resets it.
fn read_counter(mut fd: &File) -> Result<u64, BenchError> {
    let mut bytes = [0u8; 8];
    fd.read_exact(&mut bytes)
        .map_err(|e| BenchError::Io("read(eventfd)", e))?;
    Ok(u64::from_ne_bytes(bytes))
}

/// Adds `value` to an eventfd's counter, waking its reader.
fn write_counter(mut fd: &File, value: u64) -> Result<(), BenchError> {
    fd.write_all(&value.to_ne_bytes())
        .map_err(|e| BenchError::Io("write(eventfd)", e))
}

/// Ping-pong over two eventfds with blocking `read`/`write`: each round trip writes `i + 1`
/// one way and reads it back the other (strict alternation, so a read sees exactly one write).
pub struct EventfdPingPong {
    to: std::sync::Arc<File>,
    back: std::sync::Arc<File>,
    responder: Option<JoinHandle<Result<u64, BenchError>>>,
    done: u64,
}

impl EventfdPingPong {
    /// Two blocking eventfds and the responder on a thread pinned to `pair.other`.
    pub fn new(pair: &CpuPair) -> Result<EventfdPingPong, BenchError> {
        let to = std::sync::Arc::new(eventfd()?);
        let back = std::sync::Arc::new(eventfd()?);
        let (their_to, their_back) = (to.clone(), back.clone());
        let responder = spawn_pinned("eventfd-responder", pair, move || {
            let serve = || -> Result<u64, BenchError> {
                let mut replies = 0u64;
                loop {
                    let value = read_counter(&their_to)?;
                    if value == EVENTFD_STOP {
                        return Ok(replies);
                    }
                    write_counter(&their_back, value)?;
                    replies += 1;
                }
            };
            let result = serve();
            if result.is_err() {
                let _ = write_counter(&their_back, EVENTFD_FAIL);
            }
            result
        })?;
        Ok(EventfdPingPong {
            to,
            back,
            responder: Some(responder),
            done: 0,
        })
    }

    /// Round trips completed over this runner's life.
    pub fn round_trips(&self) -> u64 {
        self.done
    }

    /// Does `n` round trips; returns how many came back with their own value.
    pub fn run(&mut self, n: u64) -> Result<u64, BenchError> {
        if self.responder.is_none() {
            return Err(BenchError::Other(
                "eventfd: the responder is gone".to_owned(),
            ));
        }
        let mut bad = 0u64;
        for i in 0..n {
            write_counter(&self.to, i + 1)?;
            let value = read_counter(&self.back)?;
            if value == EVENTFD_FAIL {
                return Err(BenchError::Other(
                    "the eventfd responder failed (its error comes with finish)".to_owned(),
                ));
            }
            bad += u64::from(value != i + 1);
        }
        if bad > 0 {
            return Err(BenchError::Failed {
                what: "eventfd".to_owned(),
                count: bad,
            });
        }
        self.done += n;
        Ok(n)
    }

    /// Stops and joins the responder; checks it replied to every ping.
    pub fn finish(mut self) -> Result<(), BenchError> {
        let replies = self.stop()?;
        if replies != self.done {
            return Err(BenchError::Other(format!(
                "eventfd: {replies} replies for {} round trips",
                self.done
            )));
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<u64, BenchError> {
        let Some(handle) = self.responder.take() else {
            return Ok(0);
        };
        write_counter(&self.to, EVENTFD_STOP)?;
        join_within("eventfd", handle, STOP_LIMIT)
    }
}

impl Drop for EventfdPingPong {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
