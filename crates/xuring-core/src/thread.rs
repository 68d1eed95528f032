//! `Thread`: a child ring on its own OS thread, sharing the parent's io-wq, and the
//! mailboxes that carry messages between rings.
//!
//! # Safety
//!
//! Two kinds of `unsafe` live here. Handlers travel between threads as indices into a
//! process-wide registry of `fn` pointers stored as `usize`: only values cast from a valid
//! [`Handler`] are ever stored, and a stored slot is never changed, so turning one back into a
//! `Handler` is sound. And callbacks reach their ring's [`Mailbox`] through the task's
//! `internal` field (never its `Context`, which user code can read back and resubmit), a
//! pointer to the mailbox inside the `Arc` that the ring's engine holds for its whole life; an
//! engine is freed only after the callback it is running has returned (even when that
//! callback drops the ring), so the pointer is valid whenever one of its callbacks runs.
//!
//! # How messages travel
//!
//! Every ring that talks to threads has a mailbox: a duplicate of its ring fd (so the fd
//! number cannot be reused while peers still hold it), an eventfd with a read always pending
//! on the ring (a background task), and a queue. A message is a handler and a `u64` payload.
//! - With `IORING_OP_MSG_RING` (5.18), the sender posts it straight into the receiver's CQ:
//!   the payload's low 62 bits and the `THREAD_MAIL` tag in `user_data`, the handler id and
//!   the payload's top two bits in `res`. No queue, no syscall on the receiving side. The
//!   receiving ring routes tagged messages to its mailbox, never to a user's `on_message`,
//!   and `Ring::msg_ring` cannot set the tag.
//! - Without it (or at `XURING_KERNEL_LEVEL=5.6`), the sender pushes it on the receiver's
//!   queue and writes the eventfd through its own ring; the receiver's pending read completes
//!   and drains the queue.
//!
//! Stopping is an explicit exchange: [`Thread::kill`] sets the stop flag and writes the
//! child's eventfd directly; the child finishes the callbacks of what it has received, closes
//! its mailbox (later sends fail with `EPIPE`), drops its ring (cancelling and reaping its own
//! I/O) and exits; [`Thread::join`] waits for that.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use xuring_sys::runtime_fds::RuntimeFd;
use xuring_sys::{KernelLevel, Opcode, syscall};

use crate::op::Message;
use crate::ops::MsgRing;
use crate::task::THREAD_MAIL;
use crate::{Context, IoBuf, Offset, OpResult, Ring, RingError, Task, TaskHandle, Uring};

/// What a message runs on the receiving ring: the ring, and the mail it came with.
pub type Handler = fn(&mut Ring, Mail<'_>) -> Result<(), RingError>;

/// A message as its handler sees it.
#[derive(Clone, Copy, Debug)]
pub struct Mail<'a> {
    /// The payload the sender chose.
    pub payload: u64,
    /// On a child ring: the parent, to reply to. `None` on the parent.
    pub reply_to: Option<&'a Peer>,
}

/// The most distinct handlers a process can send.
const MAX_HANDLERS: usize = 1024;

static HANDLERS: [AtomicUsize; MAX_HANDLERS] = [const { AtomicUsize::new(0) }; MAX_HANDLERS];
static HANDLER_COUNT: AtomicUsize = AtomicUsize::new(0);
static REGISTER: Mutex<()> = Mutex::new(());

/// The id of `handler` in the registry (ids start at 1), registering it on first use.
fn handler_id(handler: Handler) -> Option<u32> {
    let wanted = handler as usize;
    let find = |count: usize| (0..count).find(|&i| HANDLERS[i].load(Ordering::Acquire) == wanted);
    if let Some(i) = find(HANDLER_COUNT.load(Ordering::Acquire)) {
        return Some(i as u32 + 1);
    }
    let _guard = REGISTER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let count = HANDLER_COUNT.load(Ordering::Acquire);
    if let Some(i) = find(count) {
        return Some(i as u32 + 1);
    }
    if count == MAX_HANDLERS {
        return None;
    }
    HANDLERS[count].store(wanted, Ordering::Release);
    HANDLER_COUNT.store(count + 1, Ordering::Release);
    Some(count as u32 + 1)
}

/// The handler with this id.
fn handler_by_id(id: u32) -> Option<Handler> {
    let index = (id as usize).checked_sub(1)?;
    if index >= HANDLER_COUNT.load(Ordering::Acquire) {
        return None;
    }
    let raw = HANDLERS[index].load(Ordering::Acquire);
    if raw == 0 {
        return None;
    }
    // SAFETY: every non-zero slot holds a `Handler` cast to `usize` by `handler_id` (the
    // Acquire load pairs with its Release store), and slots never change once written; fn
    // pointers and `usize` have the same size on every target Linux supports.
    Some(unsafe { core::mem::transmute::<usize, Handler>(raw) })
}

/// Handler ids take the low 29 bits of `res`.
const ID_BITS: u32 = 29;
const ID_MASK: u32 = (1 << ID_BITS) - 1;
const PAYLOAD_LOW: u64 = (1 << 62) - 1;

/// A message's `data` carries the payload's low 62 bits and the [`THREAD_MAIL`] tag (so the
/// receiving ring routes it to its mailbox, never to a user's message handler, and a user's
/// `msg_ring`, which cannot set the tag, is never taken for one); `res` carries the handler
/// id and the payload's top two bits (bits 29 and 30, leaving `res` non-negative).
fn encode(id: u32, payload: u64) -> Message {
    let top = ((payload >> 62) as u32) << ID_BITS;
    Message {
        data: (payload & PAYLOAD_LOW) | THREAD_MAIL,
        value: (id & ID_MASK | top) as i32,
    }
}

fn decode(message: Message) -> (u32, u64) {
    let value = message.value as u32;
    let top = u64::from((value >> ID_BITS) & 0b11) << 62;
    (value & ID_MASK, (message.data & PAYLOAD_LOW) | top)
}

impl Mailbox {
    fn lock_queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Envelope>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refuses further messages (the receiving ring is going away). Taken under the queue's
    /// lock, so a message is either queued before (and drained) or refused after.
    pub(crate) fn close(&self) {
        let _queue = self.lock_queue();
        self.closed.store(true, Ordering::SeqCst);
    }

    /// A `msg_ring` send admitted by [`admit`](Self::admit) has been accounted for: it
    /// arrived here, or its sender saw it fail.
    pub(crate) fn settle(&self) {
        self.settled.fetch_add(1, Ordering::SeqCst);
    }

    /// `msg_ring` sends admitted but neither arrived nor failed yet.
    fn unsettled(&self) -> u64 {
        // Settled first: a send settles only after it was admitted, so this never underflows.
        let settled = self.settled.load(Ordering::SeqCst);
        self.admitted.load(Ordering::SeqCst).saturating_sub(settled)
    }

    /// Admits `message` as its send is submitted: `Some(-EPIPE)` if the mailbox has closed;
    /// otherwise `None`, after queueing it when it goes through the eventfd.
    pub(crate) fn admit(
        &self,
        message: Message,
        msg_ring: bool,
        admitted: &core::cell::Cell<bool>,
    ) -> Option<i32> {
        if msg_ring {
            // Count first, then look: with the receiver's close (store `closed`, then read
            // `admitted`), both sequentially consistent, either the receiver sees this send
            // and waits for it, or this send sees the close and is refused.
            self.admitted.fetch_add(1, Ordering::SeqCst);
            if self.closed.load(Ordering::SeqCst) {
                self.admitted.fetch_sub(1, Ordering::SeqCst);
                return Some(-libc::EPIPE);
            }
            admitted.set(true);
            return None;
        }
        let mut queue = self.lock_queue();
        if self.closed.load(Ordering::Acquire) {
            return Some(-libc::EPIPE);
        }
        let (handler, payload) = decode(message);
        queue.push_back(Envelope { handler, payload });
        None
    }

    /// The receiving ring's fd (a duplicate owned by the mailbox).
    pub(crate) fn ring_fd(&self) -> std::os::fd::RawFd {
        self.ring_fd.raw()
    }

    /// The mailbox's eventfd.
    pub(crate) fn eventfd(&self) -> std::os::fd::RawFd {
        self.eventfd.raw()
    }
}

/// One queued message of the eventfd path.
#[derive(Clone, Copy, Debug)]
struct Envelope {
    handler: u32,
    payload: u64,
}

/// A ring's receiving end, shared with everyone who can send to it.
#[derive(Debug)]
pub struct Mailbox {
    /// A duplicate of the ring's fd: it keeps the ring's file, and so the fd number senders
    /// use, alive as long as any peer holds the mailbox. Like the eventfd, a runtime fd: user
    /// ops refuse it.
    ring_fd: RuntimeFd,
    eventfd: RuntimeFd,
    queue: Mutex<VecDeque<Envelope>>,
    /// Set when the receiving ring stops taking messages.
    closed: AtomicBool,
    /// `msg_ring` sends admitted (counted as their sender pushes them to its kernel queue).
    admitted: AtomicU64,
    /// Admitted sends that arrived or failed: a stopping receiver waits until this
    /// reaches `admitted`, so a send reported `Ok` is never left in a CQ nobody reads.
    settled: AtomicU64,
    /// The parent of a child ring, for replies.
    parent: Option<Peer>,
    /// Whether the receiving ring is the kernel's io_uring, which `msg_ring` can post into
    /// (a ring the readiness executor runs takes its messages through the eventfd).
    kernel_ring: bool,
}

/// Something that can send messages to a ring: a cheap clone of its mailbox.
#[derive(Clone, Debug)]
pub struct Peer {
    mailbox: Arc<Mailbox>,
}

/// The eventfd counter increment, static so a send owns no buffer.
pub(crate) static EVENTFD_ONE: [u8; 8] = 1u64.to_ne_bytes();

impl Peer {
    /// Sends `payload` to run `handler` on the peer's ring, through `ring`. Completes with
    /// `OpResult::MsgRing(Ok(()))` once the message is posted, `EPIPE` if the peer has
    /// stopped, `ENOSPC` if the process has registered too many distinct handlers.
    /// Messages are not allocated: they travel in the CQE (`msg_ring`) or in a queue slot.
    pub fn send(
        &self,
        ring: &mut Ring,
        handler: Handler,
        payload: u64,
        ctx: Context,
    ) -> TaskHandle {
        let Some(id) = handler_id(handler) else {
            return ring.fail_now(libc::ENOSPC, ctx);
        };
        if self.mailbox.closed.load(Ordering::Acquire) {
            return ring.fail_now(libc::EPIPE, ctx);
        }
        // The op holds the mailbox (an `Arc` clone, no allocation): its fds stay open until
        // the message has left, and `Mailbox::admit` checks again at submission.
        // `msg_ring` needs it on both sides: the sender's kernel, and a receiver whose ring
        // is the kernel's (not one the readiness executor runs).
        let msg_ring = ring.features().supports(Opcode::MsgRing) && self.mailbox.kernel_ring;
        let op = MsgRing::to_mailbox(Arc::clone(&self.mailbox), encode(id, payload), msg_ring);
        ring.engine().queue_marked(op.into(), ctx)
    }

    /// Whether the receiving ring has stopped taking messages.
    pub fn is_closed(&self) -> bool {
        self.mailbox.closed.load(Ordering::Acquire)
    }
}

impl Ring<Uring> {
    /// This ring's mailbox, created on first use: sets the message handler and arms the
    /// eventfd read.
    pub(crate) fn mailbox(&mut self, parent: Option<Peer>) -> Result<Arc<Mailbox>, RingError> {
        if let Some(mailbox) = &self.engine_ref().mailbox {
            return Ok(Arc::clone(mailbox));
        }
        let os = |call| move |errno| RingError::Os { call, errno };
        let mailbox = Arc::new(Mailbox {
            ring_fd: RuntimeFd::new(
                syscall::dup_cloexec(self.engine_ref().backend.raw().as_fd())
                    .map_err(os("fcntl(F_DUPFD_CLOEXEC)"))?,
            ),
            // Non-blocking, so the pending read waits on poll instead of an io-wq thread.
            eventfd: RuntimeFd::new(syscall::eventfd(true).map_err(os("eventfd"))?),
            queue: Mutex::new(VecDeque::with_capacity(256)),
            closed: AtomicBool::new(false),
            admitted: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            parent,
            kernel_ring: self.executor() == xuring_sys::Executor::IoUring,
        });
        // The mailbox travels in each message task's `internal`, set by the engine.
        let ctx = Context {
            cb: on_message,
            ..Context::default()
        };
        let engine = self.engine();
        engine.mailbox_ctx = Some(ctx);
        engine.mailbox = Some(Arc::clone(&mailbox));
        self.arm_mailbox_read(vec![0u8; 8]);
        Ok(mailbox)
    }

    fn arm_mailbox_read(&mut self, buf: Vec<u8>) {
        let engine = self.engine();
        let Some(mailbox) = &engine.mailbox else {
            return;
        };
        let ctx = Context {
            cb: on_mailbox_read,
            ..Context::default()
        };
        let internal = core::ptr::NonNull::from(&**mailbox).cast();
        // Straight to the engine: `Ring::read` refuses the runtime's own fds.
        let op = crate::ops::Read {
            fd: mailbox.eventfd(),
            buf: buf.into(),
            offset: Offset::File,
        };
        let read = engine.queue(op.into(), ctx);
        engine.set_background(read);
        engine.task_of(read).get().internal.set(Some(internal));
    }

    /// A peer for this ring, so other rings (threads) can send it messages.
    pub fn peer(&mut self) -> Result<Peer, RingError> {
        Ok(Peer {
            mailbox: self.mailbox(None)?,
        })
    }

    /// A send that completes with `OpResult::MsgRing(Err(errno))` at the next `run`, without
    /// the backend.
    fn fail_now(&mut self, errno: i32, ctx: Context) -> TaskHandle {
        let engine = self.engine();
        engine.complete_now(MsgRing::unsent(), ctx, -errno)
    }
}

/// The mailbox of the ring a callback runs on.
fn mailbox_of(task: &Task) -> Option<&Mailbox> {
    let ptr = task.internal.get()?.cast::<Mailbox>();
    // SAFETY: only the engine sets `internal`, always together with the callback that reads
    // it: for `on_message` and `on_mailbox_read`, the mailbox inside the `Arc` the engine
    // holds for its whole life; the engine outlives the callbacks it runs (module docs).
    Some(unsafe { ptr.as_ref() })
}

fn dispatch(ring: &mut Ring, mailbox: &Mailbox, id: u32, payload: u64) -> Result<(), RingError> {
    match handler_by_id(id) {
        Some(handler) => handler(
            ring,
            Mail {
                payload,
                reply_to: mailbox.parent.as_ref(),
            },
        ),
        None => Ok(()),
    }
}

/// The message handler of a ring with a mailbox: messages posted with `msg_ring`.
fn on_message(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let (Some(mailbox), Some(OpResult::Message(message))) = (mailbox_of(task), task.result) else {
        return Ok(());
    };
    mailbox.settle();
    let (id, payload) = decode(message);
    dispatch(ring, mailbox, id, payload)
}

/// The mailbox eventfd became readable: re-arm the read, then drain the queue.
fn on_mailbox_read(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let Some(mailbox) = mailbox_of(task) else {
        return Ok(());
    };
    // Re-arm even after an error (a user's `cancel_all` cancels this read too): only a closed
    // mailbox stops listening. Teardown runs no callbacks, so this never loops there.
    if !mailbox.closed.load(Ordering::Acquire) {
        let buf = task
            .take_buf()
            .and_then(IoBuf::into_vec)
            .unwrap_or_else(|| vec![0u8; 8]);
        ring.arm_mailbox_read(buf);
    }
    drain_queue(ring, mailbox)
}

/// Runs the handler of every message queued in `mailbox` (the eventfd path), on whatever
/// ring `ring` is when each one runs: a handler may replace it, and the messages were sent to
/// this thread, not to one ring value. Stops at a handler's error, leaving the rest queued.
fn drain_queue(ring: &mut Ring, mailbox: &Mailbox) -> Result<(), RingError> {
    loop {
        let next = mailbox.lock_queue().pop_front();
        let Some(envelope) = next else {
            return Ok(());
        };
        dispatch(ring, mailbox, envelope.handler, envelope.payload)?;
    }
}

/// What the parent and the child share about the child's life.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
}

/// A child ring running its event loop on its own OS thread, attached to the parent's io-wq
/// worker pool (`IORING_SETUP_ATTACH_WQ`).
///
/// Send it work with [`send`](Self::send): a [`Handler`] and a payload, run on the child
/// with the child's own `&mut Ring`, so the handler can submit I/O there; it can reply
/// through [`Mail::reply_to`]. Dropping a `Thread` stops and joins it.
#[derive(Debug)]
pub struct Thread {
    peer: Peer,
    shared: Arc<Shared>,
    handle: Option<std::thread::JoinHandle<Result<(), RingError>>>,
    /// The process's fork generation when the thread started: a forked child's copy of a
    /// `Thread` has no thread behind it, and shares the mailbox's eventfd with the parent.
    fork_generation: u64,
}

impl Thread {
    /// Starts a child ring of `entries` entries on a new OS thread, at the parent's kernel
    /// level, sharing its io-wq. Returns once the child ring exists (its setup error, if any,
    /// is returned here).
    pub fn spawn(ring: &mut Ring, entries: u32) -> Result<Thread, RingError> {
        let parent = ring.peer()?;
        let level: KernelLevel = ring.features().level;
        // The child runs where its parent runs: a parent on the readiness executor may be
        // there because io_uring is blocked.
        let executor = match ring.executor() {
            xuring_sys::Executor::IoUring => xuring_sys::ExecutorChoice::IoUring,
            xuring_sys::Executor::Epoll => xuring_sys::ExecutorChoice::Epoll,
        };
        let wq = ring.fd();
        let shared = Arc::new(Shared::default());
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Peer, RingError>>(1);
        let child_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("xuring-child".into())
            .spawn(move || child_main(entries, level, executor, wq, parent, child_shared, tx))
            .map_err(RingError::from)?;
        match rx.recv() {
            Ok(Ok(peer)) => Ok(Thread {
                peer,
                shared,
                handle: Some(handle),
                fork_generation: syscall::fork_generation(),
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => Err(join_error(handle.join())),
        }
    }

    /// Sends `payload` to run `handler` on the child, through the parent's `ring`.
    pub fn send(
        &self,
        ring: &mut Ring,
        handler: Handler,
        payload: u64,
        ctx: Context,
    ) -> TaskHandle {
        self.peer.send(ring, handler, payload, ctx)
    }

    /// A peer for the child, to send it messages from other rings too.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Asks the child to stop: it finishes the callbacks of what it has received and exits.
    /// Messages sent after this fail with `EPIPE` once the child has closed its mailbox.
    pub fn kill(&mut self) {
        if self.forked() {
            // The thread is the parent's; waking it from here would stop it.
            return;
        }
        self.shared.stop.store(true, Ordering::Release);
        // A failed write means the eventfd is gone with a child that already exited.
        let _ = syscall::eventfd_write(self.peer.mailbox.eventfd.borrow(), 1);
    }

    /// Stops the child (see [`kill`](Self::kill)) and waits for it to exit. Returns the
    /// first error a handler of the child returned (a handler's error stops the child as
    /// `kill` does, after it has handled the messages already sent to it),
    /// [`RingError::ThreadPanicked`] if one panicked, [`RingError::MessagesLost`] if messages
    /// reported sent never arrived, [`RingError::Replaced`] if a handler replaced the child's
    /// ring, or [`RingError::Forked`] in a forked child (whose copy of the `Thread` has no
    /// thread behind it: the parent's is left alone).
    pub fn join(mut self) -> Result<(), RingError> {
        if self.forked() {
            // No thread runs behind this copy: nothing to stop or wait for.
            core::mem::forget(self.handle.take());
            return Err(RingError::Forked);
        }
        self.kill();
        match self.handle.take() {
            Some(handle) => flatten(handle.join()),
            None => Ok(()),
        }
    }

    /// Whether the child's thread has exited.
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }
}

impl Thread {
    /// Whether this is a forked child's copy of the `Thread`.
    fn forked(&self) -> bool {
        syscall::fork_generation() != self.fork_generation
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        if self.forked() {
            // See `join`: the thread is not this process's.
            core::mem::forget(self.handle.take());
            return;
        }
        if let Some(handle) = self.handle.take() {
            self.kill();
            let _ = handle.join();
        }
    }
}

fn flatten(joined: std::thread::Result<Result<(), RingError>>) -> Result<(), RingError> {
    match joined {
        Ok(result) => result,
        Err(panic) => Err(panic_error(panic)),
    }
}

fn join_error(joined: std::thread::Result<Result<(), RingError>>) -> RingError {
    match flatten(joined) {
        Err(e) => e,
        Ok(()) => RingError::InvalidOptions("the child thread exited before its ring was ready"),
    }
}

fn panic_error(panic: Box<dyn std::any::Any + Send>) -> RingError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a handler panicked".to_owned());
    RingError::ThreadPanicked(message)
}

/// Closes the child's mailbox however the child's loop ends (error, panic, stop).
struct CloseOnExit(Option<Arc<Mailbox>>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        if let Some(mailbox) = &self.0 {
            mailbox.closed.store(true, Ordering::Release);
        }
    }
}

/// How long a stopping child waits for messages admitted before it closed.
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long each of those waits blocks.
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_micros(200);

fn child_main(
    entries: u32,
    level: KernelLevel,
    executor: xuring_sys::ExecutorChoice,
    wq: std::os::fd::RawFd,
    parent: Peer,
    shared: Arc<Shared>,
    ready: std::sync::mpsc::SyncSender<Result<Peer, RingError>>,
) -> Result<(), RingError> {
    let built = Ring::builder(entries)
        .kernel_level(level)
        .executor(executor)
        .attach_wq(wq)
        .build()
        .and_then(|mut ring| {
            let mailbox = ring.mailbox(Some(parent))?;
            Ok((ring, mailbox))
        });
    let (mut ring, mailbox) = match built {
        Ok(pair) => pair,
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(());
        }
    };
    let _close = CloseOnExit(Some(Arc::clone(&mailbox)));
    let peer = Peer {
        mailbox: Arc::clone(&mailbox),
    };
    if ready.send(Ok(peer)).is_err() {
        return Ok(());
    }
    drop(ready);
    // A handler's error stops the child as `kill` does: the messages already sent to it
    // (their senders saw `Ok`) are still handled, and `join` reports the first error.
    let mut failed: Option<RingError> = None;
    while !shared.stop.load(Ordering::Acquire) && failed.is_none() {
        note(ring.run(crate::RunCondition::Once), &mut failed);
    }
    // Refuse new messages, then finish what has arrived. Every admitted `msg_ring` send
    // settles when its handler runs (or when its sender sees it fail): wait until none is
    // unsettled, bounded, so neither a lost send nor the child's own endless work (a chain
    // of ops that keeps completing) can keep `join` waiting. A sender submits what it
    // admitted before its `run` returns. Then the queue of the eventfd path, which needs no
    // waiting: a message is queued before its wake-up is sent.
    mailbox.close();
    let replaced = matches!(failed, Some(RingError::Replaced));
    if !replaced {
        // What has already arrived, in one pass.
        note(ring.run(crate::RunCondition::NoWait), &mut failed);
        let give_up = std::time::Instant::now() + SETTLE_LIMIT;
        while mailbox.unsettled() > 0 && !matches!(failed, Some(RingError::Replaced)) {
            if std::time::Instant::now() >= give_up {
                break;
            }
            note(ring.run(crate::RunCondition::For(SETTLE_POLL)), &mut failed);
        }
    }
    // The queue of the eventfd path, to the end even past a handler's error (each error
    // consumed its message) or a handler replacing the ring (they run on the new one).
    while let Err(e) = drain_queue(&mut ring, &mailbox) {
        note(Err(e), &mut failed);
    }
    let lost = mailbox.unsettled();
    match failed {
        Some(e) => Err(e),
        None if lost > 0 => Err(RingError::MessagesLost(lost)),
        None => Ok(()),
    }
}

/// Keeps the first error of the child's handlers in `failed`, so the child goes on handling
/// what was sent to it. A replaced ring (`RingError::Replaced`) is kept like any error: the
/// `msg_ring` messages in flight went to the old ring and cannot be waited for; the caller
/// checks for it.
fn note(result: Result<(), RingError>, failed: &mut Option<RingError>) {
    if let Err(e) = result {
        let replaced = matches!(e, RingError::Replaced);
        match failed {
            None => *failed = Some(e),
            // Whatever came first, a replaced ring ends the waiting: remember it.
            Some(_) if replaced => *failed = Some(RingError::Replaced),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_every_payload_bit() {
        for payload in [
            0,
            1,
            u64::MAX,
            1 << 63,
            (1 << 63) - 1,
            0xdead_beef_cafe_f00d,
        ] {
            for id in [1, 2, 1023, ID_MASK] {
                let message = encode(id, payload);
                assert_eq!(message.data >> 63, 0, "the top bit stays free");
                assert_ne!(message.data & THREAD_MAIL, 0, "tagged as thread mail");
                assert!(message.value >= 0);
                assert_eq!(decode(message), (id, payload));
            }
        }
    }

    static ARRIVED: AtomicU64 = AtomicU64::new(0);
    /// The tests below share `ARRIVED`.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn arrive(_ring: &mut Ring, _mail: Mail<'_>) -> Result<(), RingError> {
        ARRIVED.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// `n` msg_ring sends to a fresh child, admitted into the parent's SQ but not submitted
    /// (as a refused `enter` leaves them), then the child is told to stop. `None` on a
    /// kernel without `MSG_RING` (Debian's 5.10): there is no such handshake to test.
    fn admitted_then_killed(n: u64) -> Option<(Ring, Thread)> {
        admitted_then_killed_after(n, |_, _| {})
    }

    /// [`admitted_then_killed`], doing `first` once the child runs.
    fn admitted_then_killed_after(
        n: u64,
        first: impl FnOnce(&mut Ring, &Thread),
    ) -> Option<(Ring, Thread)> {
        ARRIVED.store(0, Ordering::SeqCst);
        // Native whatever `XURING_KERNEL_LEVEL` says: the handshake is msg_ring's.
        let mut ring = Ring::builder(64)
            .kernel_level(KernelLevel::Native)
            .build()
            .expect("ring");
        if !ring.features().supports(Opcode::MsgRing) {
            eprintln!("skipped: this kernel has no MSG_RING");
            return None;
        }
        let mut thread = Thread::spawn(&mut ring, 64).expect("spawn");
        first(&mut ring, &thread);
        for i in 0..n {
            thread.send(&mut ring, arrive, i, Context::default());
        }
        ring.engine().flush();
        assert!(
            ring.engine().admitted_unsubmitted,
            "admitted, still in the SQ"
        );
        thread.kill();
        Some((ring, thread))
    }

    #[test]
    #[cfg_attr(miri, ignore = "needs a real ring")]
    fn a_stopping_child_waits_for_admitted_sends() {
        let _serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((mut ring, thread)) = admitted_then_killed(8) else {
            return;
        };
        // Long enough for a child that did not wait to have exited.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!thread.is_finished(), "the child waits for its 8 messages");
        ring.run(crate::RunCondition::NoWait).expect("submit");
        thread.join().expect("join");
        assert_eq!(
            ARRIVED.load(Ordering::SeqCst),
            8,
            "every admitted send handled"
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "needs a real ring")]
    fn a_users_msg_ring_to_a_child_does_not_settle_a_thread_send() {
        let _serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((mut ring, thread)) = admitted_then_killed_after(3, |ring, thread| {
            // What `ring.msg_ring(child_fd, ..)` posts, with the child's ring fd learned any
            // way a user can (a handler replying `ring.fd()`): a message without the tag.
            let op = MsgRing::to_ring(thread.peer.mailbox.ring_fd(), Message { data: 9, value: 1 });
            ring.engine().queue(op.into(), Context::default());
            ring.run(crate::RunCondition::UntilDone).expect("posted");
        }) else {
            return;
        };
        let joined = thread.join();
        assert!(
            matches!(joined, Err(RingError::MessagesLost(3))),
            "all three unsent sends are reported: {joined:?}"
        );
        ring.run(crate::RunCondition::NoWait).expect("submit");
    }

    #[test]
    #[cfg_attr(miri, ignore = "needs a real ring")]
    fn a_child_whose_admitted_sends_never_come_reports_them() {
        let _serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((ring, thread)) = admitted_then_killed(3) else {
            return;
        };
        let start = std::time::Instant::now();
        let joined = thread.join();
        assert!(
            matches!(joined, Err(RingError::MessagesLost(3))),
            "{joined:?}"
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(ARRIVED.load(Ordering::SeqCst), 0);
        drop(ring);
    }
}
