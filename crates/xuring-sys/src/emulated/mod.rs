//! The readiness executor: an io_uring that user space executes itself, over `epoll`, for
//! machines where the kernel's is blocked (a seccomp filter, `kernel.io_uring_disabled`) or
//! missing.
//!
//! The ring keeps the kernel's layout (the same [`SubmissionQueue`] and [`CompletionQueue`]
//! over private memory), so whoever fills SQEs and reaps CQEs does exactly what it does with
//! the kernel's ring, and pays nothing for the choice; only `enter` differs. There,
//! [`Emulator::enter`] consumes the published SQEs in order and, for each, does what the
//! kernel would: an attempt without blocking (`exec.rs`), and on "would block" a wait for the
//! descriptor's readiness (an edge-triggered registration made once, see [`Watch`]) or for a
//! timer's deadline, then another attempt. Files that epoll cannot wait for (regular files,
//! directories) and the filesystem ops run synchronously, inside `enter`. Completions go to
//! the CQ in the order the work finished; when it is full they wait in an overflow list, as
//! with `IORING_FEAT_NODROP`.
//!
//! # Safety
//!
//! The executor reads and writes the memory SQEs name, under the contract of
//! [`SubmissionQueue::push`]: valid until the entry's completion is posted. It posts a
//! completion only once it is done with the entry's memory, and keeps a waiting entry's SQE
//! (with its addresses) to itself until then. Dropping the executor drops waiting entries
//! without touching their memory, and the layer above reaps or gives up on everything in
//! flight before it drops a ring, as it must with the kernel's.

mod exec;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::os::fd::{OwnedFd, RawFd};

pub(crate) use exec::OPS;
pub use exec::emulation;
use exec::{Attempt, attempt};

use crate::abi::{__kernel_timespec, io_uring_cqe, io_uring_sqe};
use crate::{
    CancelFlags, CompletionQueue, EnterFlags, Errno, Opcode, SqRingFlags, SubmissionQueue,
    TimeoutFlags,
};

/// An entry that is waiting, kept with the SQE it came from.
#[derive(Clone, Copy, Debug)]
struct Parked {
    sqe: io_uring_sqe,
    /// What earlier attempts did (see [`attempt`]).
    progress: u32,
    /// The last wait of an attempt that readiness cannot announce (0: none yet).
    backoff: u64,
    /// Bumped when the slot is freed, so that a stale timer in the heap misses.
    generation: u32,
    wait: Wait,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// Not waiting (a free slot, or an entry being attempted).
    Free,
    Fd {
        fd: RawFd,
        events: u32,
    },
    /// A `TIMEOUT`: completes with `ETIME` at the deadline.
    Timer {
        deadline: u64,
    },
    /// An attempt that readiness cannot announce (a Unix `connect` into a full backlog: the
    /// socket is writable all along): tried again at the deadline.
    Backoff {
        deadline: u64,
    },
}

impl Wait {
    fn deadline(self) -> Option<u64> {
        match self {
            Wait::Timer { deadline } | Wait::Backoff { deadline } => Some(deadline),
            Wait::Free | Wait::Fd { .. } => None,
        }
    }
}

/// The first wait of an attempt that readiness cannot announce, doubling up to
/// [`BACKOFF_MAX_NS`].
const BACKOFF_FIRST_NS: u64 = 1_000_000;
const BACKOFF_MAX_NS: u64 = 100_000_000;

/// Who waits on one descriptor, and what epoll said of it.
///
/// A descriptor is registered once, edge-triggered, for everything an op may wait for, the
/// first time an op waits on it; an event makes its waiters try again. Epoll keys a
/// registration by the open file, and drops it when the file is closed: a descriptor number
/// closed and reused behind the executor's back would leave a waiter registered for nothing.
/// So the registration is forgotten when an op of this ring closes the descriptor or a new
/// one comes back under its number (accept, socket, open), and while ops wait without any
/// event, it is confirmed (`EPOLL_CTL_MOD`, `ADD` if it vanished) after [`CHECK_FIRST_NS`],
/// then at doubling intervals up to [`CHECK_MAX_NS`]: a descriptor closed and reused
/// elsewhere costs its waiter that delay, never a hang.
#[derive(Debug, Default)]
struct Watch {
    waiters: Vec<u32>,
    registered: bool,
    /// A stream socket (learned when registered): only there does a short receive mean the
    /// socket is empty (a datagram, a seqpacket record or a peek may leave data behind).
    stream: bool,
    /// The events epoll reported since an attempt last found the descriptor not ready for
    /// them; a receive waits without trying first while `EPOLLIN` is not among them.
    ready: u32,
    /// Events seen on this descriptor (a counter), and its value when the pending check was
    /// scheduled: a check that finds it changed knows the registration works.
    events_seen: u32,
    seen_at_check: u32,
    /// When the pending check is due (0: none), and the interval after it.
    check_at: u64,
    check_interval: u64,
}

/// The first confirmation of a registration that ops wait on without events.
const CHECK_FIRST_NS: u64 = 10_000_000;
/// The longest interval between confirmations (each costs one `EPOLL_CTL_MOD`).
const CHECK_MAX_NS: u64 = 1_000_000_000;

/// Everything a registration waits for; errors and hang-ups are always reported.
const REGISTERED: u32 = (libc::EPOLLIN
    | libc::EPOLLOUT
    | libc::EPOLLPRI
    | libc::EPOLLRDHUP
    | libc::EPOLLRDNORM
    | libc::EPOLLRDBAND
    | libc::EPOLLWRNORM
    | libc::EPOLLWRBAND
    | libc::EPOLLMSG
    | libc::EPOLLET) as u32;

/// The executor of one emulated ring.
#[derive(Debug)]
pub(crate) struct Emulator {
    /// The epoll instance, owned by the ring's fd (see [`Emulator::new`]).
    epoll: RawFd,
    parked: Vec<Parked>,
    free: Vec<u32>,
    /// By descriptor number.
    watches: Vec<Watch>,
    /// `(deadline, sequence, slot, generation)`, earliest first (then in submission order).
    timers: BinaryHeap<Reverse<(u64, u64, u32, u32)>>,
    /// Registration checks, `(due, fd)`, earliest first (see [`Watch`]); an entry whose time
    /// is no longer its watch's `check_at` is stale.
    checks: BinaryHeap<Reverse<(u64, RawFd)>>,
    /// Completions that did not fit the CQ, oldest first.
    overflow: VecDeque<io_uring_cqe>,
    incoming: Vec<io_uring_sqe>,
    events: Vec<libc::epoll_event>,
    scratch: Vec<u32>,
    /// Entries waiting for a descriptor.
    fd_waiters: u32,
    /// Timer heap entries whose timer still waits (the rest are stale: cancelled).
    live_timers: u32,
    /// Orders timers with the same deadline by submission.
    timer_seq: u64,
    /// Whether `epoll_pwait2` (5.11) is there; cleared on the first `ENOSYS`/`EPERM`.
    pwait2: bool,
    /// Entries backing off, and splices waiting (they use a descriptor other than the one
    /// they wait on): `forget` looks for them only while there are any.
    elsewhere: u32,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        crate::runtime_fds::release(self.epoll);
    }
}

/// Receives and sends: the ops whose partial progress a cancel reports.
fn is_transfer(opcode: u8) -> bool {
    opcode == Opcode::Recv as u8 || opcode == Opcode::Send as u8
}

/// `CLOCK_MONOTONIC` in nanoseconds, the clock io_uring's timeouts use.
fn now_ns() -> u64 {
    let ts = crate::syscall::monotonic_now().unwrap_or(__kernel_timespec {
        tv_sec: 0,
        tv_nsec: 0,
    });
    ns(&ts)
}

fn ns(ts: &__kernel_timespec) -> u64 {
    (ts.tv_sec.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec.max(0) as u64)
}

impl Emulator {
    /// A new executor with its epoll instance, which the returned fd owns: it stands for the
    /// ring, and whoever holds it keeps it open as long as the executor (`RawRing` drops the
    /// executor first).
    pub(crate) fn new(entries: u32) -> Result<(Emulator, OwnedFd), Errno> {
        // SAFETY: no pointer arguments; the result is a new descriptor we own, or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: `fd` was just created and nothing else owns it.
        let owned: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
        // The ring's own: ops refuse it (`EPERM`), as the kernel refuses to close an
        // io_uring's fd through itself. Released when the executor drops, before the fd
        // closes (`RawRing` drops the executor first).
        crate::runtime_fds::claim(fd);
        let room = entries as usize;
        Ok((
            Emulator {
                epoll: fd,
                parked: Vec::with_capacity(room),
                free: Vec::with_capacity(room),
                watches: Vec::new(),
                timers: BinaryHeap::with_capacity(room),
                checks: BinaryHeap::with_capacity(room),
                overflow: VecDeque::new(),
                incoming: Vec::with_capacity(room),
                events: Vec::with_capacity(room.clamp(16, 1024)),
                scratch: Vec::with_capacity(16),
                fd_waiters: 0,
                live_timers: 0,
                timer_seq: 0,
                pwait2: true,
                elsewhere: 0,
            },
            owned,
        ))
    }

    /// `io_uring_enter` for this ring: consumes up to `to_submit` published SQEs, then (with
    /// `GETEVENTS`) waits until the CQ holds `min_complete` completions or `timeout` (relative)
    /// has passed (`ETIME`). Interrupted by a signal: `EINTR`, as the kernel's.
    pub(crate) fn enter(
        &mut self,
        sq: &mut SubmissionQueue,
        cq: &mut CompletionQueue,
        to_submit: u32,
        min_complete: u32,
        flags: EnterFlags,
        timeout: Option<&__kernel_timespec>,
    ) -> Result<u32, Errno> {
        self.flush_overflow(sq, cq);
        let mut incoming = core::mem::take(&mut self.incoming);
        let submitted = sq.consume(to_submit, |sqe| incoming.push(sqe));
        for sqe in incoming.drain(..) {
            self.submit(sqe, sq, cq);
        }
        self.incoming = incoming;
        let deadline = timeout.map(|t| now_ns().saturating_add(ns(t)));
        let wait = flags.contains(EnterFlags::GETEVENTS) && min_complete > 0;
        // Whether this call has asked epoll yet.
        let mut polled = false;
        loop {
            let now = now_ns();
            self.expire_timers(now, sq, cq);
            self.run_checks(now, sq, cq);
            self.flush_overflow(sq, cq);
            let available = cq.ready() + self.overflow.len() as u32;
            if !wait || available >= min_complete {
                // Before returning, take what became ready since the last look: a ring whose
                // work keeps completing at once (a chain of noops, of file reads) must not
                // starve its sockets.
                if !polled && self.fd_waiters > 0 {
                    self.wait_events(Some(0), sq, cq)?;
                    self.flush_overflow(sq, cq);
                }
                return Ok(submitted);
            }
            polled = true;
            let next = match (self.next_timer(), self.checks.peek()) {
                (Some(t), Some(Reverse((c, _)))) => Some(t.min(*c)),
                (t, c) => t.or(c.map(|Reverse((c, _))| *c)),
            };
            let mut wait_ns = next.map(|t| t.saturating_sub(now));
            if let Some(deadline) = deadline {
                if now >= deadline {
                    return if submitted > 0 {
                        Ok(submitted)
                    } else {
                        Err(Errno::ETIME)
                    };
                }
                let left = deadline - now;
                wait_ns = Some(wait_ns.map_or(left, |w| w.min(left)));
            }
            match self.wait_events(wait_ns, sq, cq) {
                Ok(()) => {}
                Err(Errno::EINTR) if submitted > 0 => return Ok(submitted),
                Err(e) => return Err(e),
            }
        }
    }

    /// The earliest live timer's deadline.
    fn next_timer(&mut self) -> Option<u64> {
        while let Some(&Reverse((deadline, _, slot, generation))) = self.timers.peek() {
            let p = &self.parked[slot as usize];
            if p.generation == generation && p.wait.deadline().is_some() {
                return Some(deadline);
            }
            self.timers.pop();
        }
        None
    }

    /// Puts `slot` in the timer heap with `wait` (a `Timer` or a `Backoff`).
    fn set_timer(&mut self, slot: u32, wait: Wait) {
        let Some(deadline) = wait.deadline() else {
            return;
        };
        let p = &mut self.parked[slot as usize];
        if matches!(p.wait, Wait::Fd { .. }) {
            // From a readiness wait to a timed one (the slot left its watch's list).
            self.fd_waiters -= 1;
            if p.sqe.opcode == Opcode::Splice as u8 {
                self.elsewhere -= 1;
            }
        }
        if matches!(wait, Wait::Backoff { .. }) {
            self.elsewhere += 1;
        }
        p.wait = wait;
        self.timer_seq += 1;
        self.timers
            .push(Reverse((deadline, self.timer_seq, slot, p.generation)));
        self.live_timers += 1;
    }

    /// One `epoll_wait` (`None`: no time limit), then another attempt for every entry whose
    /// descriptor became ready.
    fn wait_events(
        &mut self,
        wait_ns: Option<u64>,
        sq: &mut SubmissionQueue,
        cq: &mut CompletionQueue,
    ) -> Result<(), Errno> {
        self.events.clear();
        let cap = self.events.capacity();
        let buf = self.events.as_mut_ptr();
        let mut n = -1;
        if self.pwait2 {
            // Nanoseconds (5.11): a timer fires on time, not at the next millisecond.
            let ts = wait_ns.map(|n| libc::timespec {
                tv_sec: (n / 1_000_000_000) as libc::time_t,
                tv_nsec: (n % 1_000_000_000) as libc::c_long,
            });
            let ts_ptr = ts.as_ref().map_or(core::ptr::null(), core::ptr::from_ref);
            // SAFETY: `buf` holds `cap` writable entries; `ts_ptr` is null or a live local;
            // no signal mask.
            n = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    self.epoll,
                    buf,
                    cap as libc::c_int,
                    ts_ptr,
                    core::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            } as i32;
            if n < 0 && matches!(Errno::last(), Errno::ENOSYS | Errno::EPERM) {
                // An older kernel, or a filter that does not know the call.
                self.pwait2 = false;
            }
        }
        if !self.pwait2 {
            // Rounded up: a timer must never fire early.
            let ms = match wait_ns {
                None => -1,
                Some(n) => n.div_ceil(1_000_000).min(i32::MAX as u64) as i32,
            };
            // SAFETY: `buf` holds `cap` writable entries.
            n = unsafe { libc::epoll_wait(self.epoll, buf, cap as libc::c_int, ms) };
        }
        if n < 0 {
            return Err(Errno::last());
        }
        // SAFETY: the kernel initialised the first `n <= cap` entries of the buffer.
        unsafe { self.events.set_len(n as usize) };
        for i in 0..n as usize {
            let event = self.events[i];
            let fd = event.u64 as RawFd;
            self.wake(fd, event.events, sq, cq);
        }
        Ok(())
    }

    /// `fd` reported `revents`: every entry waiting for one of them tries again.
    fn wake(
        &mut self,
        fd: RawFd,
        revents: u32,
        sq: &mut SubmissionQueue,
        cq: &mut CompletionQueue,
    ) {
        let Some(watch) = self.watches.get_mut(fd as usize) else {
            return;
        };
        watch.ready |= revents;
        watch.events_seen = watch.events_seen.wrapping_add(1);
        if watch.waiters.is_empty() {
            return;
        }
        let mut waiters =
            core::mem::replace(&mut watch.waiters, core::mem::take(&mut self.scratch));
        let failure = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
        for &slot in &waiters {
            let Wait::Fd { events, .. } = self.parked[slot as usize].wait else {
                continue;
            };
            if events & revents == 0 && revents & failure == 0 {
                // Not what it waits for: it stays.
                self.watches[fd as usize].waiters.push(slot);
                continue;
            }
            self.retry(slot, sq, cq);
        }
        waiters.clear();
        self.scratch = waiters;
    }

    /// Confirms the registrations whose checks are due (see [`Watch`]).
    fn run_checks(&mut self, now: u64, sq: &mut SubmissionQueue, cq: &mut CompletionQueue) {
        while let Some(&Reverse((due, fd))) = self.checks.peek() {
            if due > now {
                return;
            }
            self.checks.pop();
            let Some(watch) = self.watches.get_mut(fd as usize) else {
                continue;
            };
            if watch.check_at != due {
                continue;
            }
            watch.check_at = 0;
            if watch.waiters.is_empty() {
                continue;
            }
            if watch.events_seen != watch.seen_at_check {
                // Events arrived: the registration works.
                watch.check_interval = CHECK_FIRST_NS;
                self.schedule_check(fd, now);
                continue;
            }
            watch.check_interval = (watch.check_interval * 2).min(CHECK_MAX_NS);
            if self.register(fd, true).is_ok() {
                self.schedule_check(fd, now);
                continue;
            }
            // The descriptor is gone (closed while ops waited on it): each gets its next
            // attempt's answer (`EBADF`, from the call or from waiting again).
            let watch = &mut self.watches[fd as usize];
            watch.registered = false;
            let waiters = core::mem::take(&mut watch.waiters);
            for &slot in &waiters {
                self.retry(slot, sq, cq);
            }
        }
    }

    /// Schedules `fd`'s next registration check, `check_interval` from `now`.
    fn schedule_check(&mut self, fd: RawFd, now: u64) {
        let watch = &mut self.watches[fd as usize];
        let due = now.saturating_add(watch.check_interval).max(1);
        watch.check_at = due;
        watch.seen_at_check = watch.events_seen;
        self.checks.push(Reverse((due, fd)));
    }

    /// Forgets what is known of descriptor `fd`: an op of this ring closed it, or a new file
    /// came back under its number. Ops still waiting on it waited on a file that is gone from
    /// this number (io_uring would keep them on the old file; the executor waits on numbers,
    /// not files): they complete with `EBADF`, rather than ever taking the new file's data.
    fn forget(&mut self, fd: RawFd, sq: &mut SubmissionQueue, cq: &mut CompletionQueue) {
        let Some(watch) = self.watches.get_mut(fd as usize) else {
            return;
        };
        watch.registered = false;
        watch.ready = 0;
        let orphans = core::mem::replace(&mut watch.waiters, core::mem::take(&mut self.scratch));
        for &slot in &orphans {
            self.orphan(slot, sq, cq);
        }
        let mut orphans = orphans;
        orphans.clear();
        self.scratch = orphans;
        if self.elsewhere == 0 {
            return;
        }
        // Entries that use `fd` without waiting on its watch: a connect backing off, a splice
        // waiting on its other end.
        for slot in 0..self.parked.len() as u32 {
            let p = self.parked[slot as usize];
            let splice = p.sqe.opcode == Opcode::Splice as u8;
            let uses = p.sqe.fd == fd || (splice && p.sqe.splice_fd_in == fd);
            let elsewhere = match p.wait {
                Wait::Backoff { .. } => true,
                Wait::Fd { fd: waits_on, .. } => splice && waits_on != fd,
                Wait::Free | Wait::Timer { .. } => false,
            };
            if !uses || !elsewhere {
                continue;
            }
            if let Wait::Fd { fd: waits_on, .. } = p.wait
                && let Some(watch) = self.watches.get_mut(waits_on as usize)
            {
                watch.waiters.retain(|&s| s != slot);
            }
            self.orphan(slot, sq, cq);
        }
    }

    /// Ends an entry whose descriptor is gone from its number: `EBADF`, or what a
    /// `MSG_WAITALL` transfer already moved.
    fn orphan(&mut self, slot: u32, sq: &mut SubmissionQueue, cq: &mut CompletionQueue) {
        let p = self.parked[slot as usize];
        let res = if p.progress > 0 && is_transfer(p.sqe.opcode) {
            p.progress.min(i32::MAX as u32) as i32
        } else {
            -libc::EBADF
        };
        self.release(slot);
        self.post(p.sqe.user_data, res, sq, cq);
    }

    /// Takes a new entry.
    fn submit(&mut self, sqe: io_uring_sqe, sq: &mut SubmissionQueue, cq: &mut CompletionQueue) {
        match Opcode::from_u8(sqe.opcode) {
            Some(Opcode::Timeout) => self.timeout(sqe, sq, cq),
            Some(Opcode::TimeoutRemove) => {
                let found = self.cancel(
                    sq,
                    cq,
                    |p| matches!(p.wait, Wait::Timer { .. }) && p.sqe.user_data == sqe.addr,
                    false,
                );
                self.post(
                    sqe.user_data,
                    if found > 0 { 0 } else { -libc::ENOENT },
                    sq,
                    cq,
                );
            }
            Some(Opcode::AsyncCancel) => {
                let flags = CancelFlags::from_bits_retain(sqe.op_flags);
                let all = flags.contains(CancelFlags::ALL);
                let found = if flags.contains(CancelFlags::ANY) {
                    self.cancel(sq, cq, |_| true, all)
                } else if flags.contains(CancelFlags::FD) {
                    self.cancel(sq, cq, |p| p.sqe.fd == sqe.fd, all)
                } else {
                    self.cancel(sq, cq, |p| p.sqe.user_data == sqe.addr, all)
                };
                let res = match (found, all) {
                    (0, _) => -libc::ENOENT,
                    (n, true) => n as i32,
                    (_, false) => 0,
                };
                self.post(sqe.user_data, res, sq, cq);
            }
            _ => {
                let slot = self.slot(sqe);
                if self.known_empty(&sqe) && self.park(slot, sqe.fd, libc::EPOLLIN as u32).is_ok() {
                    // Nothing to receive yet: it waits, and saves a receive that would fail.
                    return;
                }
                self.retry(slot, sq, cq);
            }
        }
    }

    /// A pure timer (no completion count), relative or absolute.
    fn timeout(&mut self, sqe: io_uring_sqe, sq: &mut SubmissionQueue, cq: &mut CompletionQueue) {
        if sqe.len != 1 || sqe.off != 0 || sqe.addr == 0 {
            // Counted timeouts are not emulated.
            self.post(sqe.user_data, -libc::EINVAL, sq, cq);
            return;
        }
        // SAFETY: `addr` names the entry's timespec, valid until its completion (the module's
        // contract); it is read once, here.
        let ts = unsafe { (sqe.addr as usize as *const __kernel_timespec).read_unaligned() };
        let flags = TimeoutFlags::from_bits_retain(sqe.op_flags);
        let deadline = if flags.contains(TimeoutFlags::ABS) {
            ns(&ts)
        } else {
            now_ns().saturating_add(ns(&ts))
        };
        let slot = self.slot(sqe);
        self.set_timer(slot, Wait::Timer { deadline });
    }

    fn expire_timers(&mut self, now: u64, sq: &mut SubmissionQueue, cq: &mut CompletionQueue) {
        while let Some(&Reverse((deadline, _, slot, generation))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let p = self.parked[slot as usize];
            if p.generation != generation {
                continue;
            }
            match p.wait {
                Wait::Timer { .. } => {
                    self.release(slot);
                    self.post(p.sqe.user_data, -libc::ETIME, sq, cq);
                }
                Wait::Backoff { .. } => {
                    self.live_timers -= 1;
                    self.elsewhere -= 1;
                    self.parked[slot as usize].wait = Wait::Free;
                    self.retry(slot, sq, cq);
                }
                Wait::Free | Wait::Fd { .. } => {}
            }
        }
    }

    /// Drops the heap entries of cancelled timers once they outnumber the live ones: a
    /// cancelled hour-long timer must not hold its entry for an hour.
    fn compact_timers(&mut self) {
        if self.timers.len() <= 2 * self.live_timers as usize + 1024 {
            return;
        }
        let parked = &self.parked;
        self.timers.retain(|&Reverse((_, _, slot, generation))| {
            let p = &parked[slot as usize];
            p.generation == generation && p.wait.deadline().is_some()
        });
    }

    /// Completes the waiting entries `matches` selects (the first only, without `all`) with
    /// `ECANCELED`; returns how many.
    fn cancel(
        &mut self,
        sq: &mut SubmissionQueue,
        cq: &mut CompletionQueue,
        matches: impl Fn(&Parked) -> bool,
        all: bool,
    ) -> u32 {
        let mut found = 0;
        for slot in 0..self.parked.len() as u32 {
            let p = self.parked[slot as usize];
            if p.wait == Wait::Free || !matches(&p) {
                continue;
            }
            if let Wait::Fd { fd, .. } = p.wait
                && let Some(watch) = self.watches.get_mut(fd as usize)
            {
                watch.waiters.retain(|&s| s != slot);
            }
            self.release(slot);
            // A receive or send that already moved bytes (`MSG_WAITALL`) reports them, as
            // io_uring does: they are gone from (or into) the stream.
            let res = if p.progress > 0 && is_transfer(p.sqe.opcode) {
                p.progress.min(i32::MAX as u32) as i32
            } else {
                -libc::ECANCELED
            };
            self.post(p.sqe.user_data, res, sq, cq);
            found += 1;
            if !all {
                break;
            }
        }
        self.compact_timers();
        found
    }

    /// A slot for `sqe`.
    fn slot(&mut self, sqe: io_uring_sqe) -> u32 {
        let entry = |generation| Parked {
            sqe,
            progress: 0,
            backoff: 0,
            generation,
            wait: Wait::Free,
        };
        match self.free.pop() {
            Some(slot) => {
                let p = &mut self.parked[slot as usize];
                *p = entry(p.generation);
                slot
            }
            None => {
                self.parked.push(entry(0));
                (self.parked.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, slot: u32) {
        let p = &mut self.parked[slot as usize];
        match p.wait {
            Wait::Fd { .. } => {
                self.fd_waiters -= 1;
                if p.sqe.opcode == Opcode::Splice as u8 {
                    self.elsewhere -= 1;
                }
            }
            Wait::Timer { .. } => self.live_timers -= 1,
            Wait::Backoff { .. } => {
                self.live_timers -= 1;
                self.elsewhere -= 1;
            }
            Wait::Free => {}
        }
        p.wait = Wait::Free;
        p.generation = p.generation.wrapping_add(1);
        self.free.push(slot);
    }

    /// Whether `sqe` is a receive (that may wait) on a registered socket that a receive
    /// found empty, with no event since.
    fn known_empty(&self, sqe: &io_uring_sqe) -> bool {
        sqe.opcode == Opcode::Recv as u8
            && sqe.op_flags & libc::MSG_DONTWAIT as u32 == 0
            && self.watches.get(sqe.fd as usize).is_some_and(|w| {
                // An end of stream or an error is something to receive, too.
                let pending =
                    (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
                w.registered && w.stream && w.ready & pending == 0
            })
    }

    /// Another attempt at the entry in `slot`: it completes, or waits again.
    fn retry(&mut self, slot: u32, sq: &mut SubmissionQueue, cq: &mut CompletionQueue) {
        let mut may_block = false;
        loop {
            let p = &mut self.parked[slot as usize];
            let receive = p.sqe.opcode == Opcode::Recv as u8;
            let peek = p.sqe.op_flags & libc::MSG_PEEK as u32 != 0;
            let (fd, len) = (p.sqe.fd, p.sqe.len);
            match attempt(&mut p.sqe, &mut p.progress, may_block) {
                Attempt::Done(res) => {
                    let user_data = p.sqe.user_data;
                    let opcode = p.sqe.opcode;
                    if receive && res > 0 && (res as u32) < len && !peek {
                        // Short, on a stream socket: it held no more.
                        if let Some(w) = self.watches.get_mut(fd as usize)
                            && w.stream
                        {
                            w.ready &= !(libc::EPOLLIN as u32);
                        }
                    }
                    self.forget_on_completion(opcode, fd, res, sq, cq);
                    self.release(slot);
                    self.post(user_data, res, sq, cq);
                    return;
                }
                Attempt::Later => {
                    let next = match p.backoff {
                        0 => BACKOFF_FIRST_NS,
                        last => (last * 2).min(BACKOFF_MAX_NS),
                    };
                    p.backoff = next;
                    let deadline = now_ns().saturating_add(next);
                    self.set_timer(slot, Wait::Backoff { deadline });
                    return;
                }
                Attempt::Wait { fd, events } => match self.park(slot, fd, events) {
                    Ok(()) => return,
                    // Epoll cannot wait for it (a regular file): it does not block for long.
                    Err(Errno::EPERM) => may_block = true,
                    Err(e) => {
                        let user_data = self.parked[slot as usize].sqe.user_data;
                        self.release(slot);
                        self.post(user_data, -e.raw(), sq, cq);
                        return;
                    }
                },
            }
        }
    }

    /// What a finished op tells about descriptor numbers: a close of this ring frees its
    /// number, and a new descriptor may reuse one whose old file was closed elsewhere.
    fn forget_on_completion(
        &mut self,
        opcode: u8,
        fd: RawFd,
        res: i32,
        sq: &mut SubmissionQueue,
        cq: &mut CompletionQueue,
    ) {
        match Opcode::from_u8(opcode) {
            Some(Opcode::Close) if res == 0 => self.forget(fd, sq, cq),
            Some(Opcode::Accept | Opcode::Socket | Opcode::Openat | Opcode::Openat2)
                if res >= 0 =>
            {
                self.forget(res, sq, cq);
            }
            _ => {}
        }
    }

    /// Makes `slot` wait for `events` on `fd`: registers the descriptor the first time.
    fn park(&mut self, slot: u32, fd: RawFd, events: u32) -> Result<(), Errno> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        let index = fd as usize;
        if self.watches.len() <= index {
            self.watches.resize_with(index + 1, Watch::default);
        }
        if !self.watches[index].registered {
            self.register(fd, false)?;
            let stream = exec::stream_socket(fd);
            let watch = &mut self.watches[index];
            watch.registered = true;
            watch.stream = stream;
            // Adding reports what is ready now (edge-triggered registrations start with the
            // current state), so nothing that happened before is lost.
            watch.ready = 0;
        }
        let watch = &mut self.watches[index];
        // The attempt found it not ready for these.
        watch.ready &= !events;
        let first = watch.waiters.is_empty();
        watch.waiters.push(slot);
        let p = &mut self.parked[slot as usize];
        if !matches!(p.wait, Wait::Fd { .. }) {
            self.fd_waiters += 1;
            if p.sqe.opcode == Opcode::Splice as u8 {
                self.elsewhere += 1;
            }
        }
        p.wait = Wait::Fd { fd, events };
        if first {
            // A new wait: confirm the registration soon if nothing happens.
            let watch = &mut self.watches[index];
            watch.check_interval = CHECK_FIRST_NS;
            let now = now_ns();
            if watch.check_at == 0 || watch.check_at > now + CHECK_FIRST_NS {
                self.schedule_check(fd, now);
            }
        }
        Ok(())
    }

    /// Registers `fd` (`EPOLL_CTL_ADD`), or with `confirm` confirms its registration
    /// (`EPOLL_CTL_MOD`, `ADD` if epoll no longer has it).
    fn register(&self, fd: RawFd, confirm: bool) -> Result<(), Errno> {
        let mut event = libc::epoll_event {
            events: REGISTERED,
            u64: fd as u64,
        };
        let (first, second) = if confirm {
            (libc::EPOLL_CTL_MOD, libc::EPOLL_CTL_ADD)
        } else {
            (libc::EPOLL_CTL_ADD, libc::EPOLL_CTL_MOD)
        };
        // SAFETY: `event` is a live local for the call.
        let rc = unsafe { libc::epoll_ctl(self.epoll, first, fd, &raw mut event) };
        if rc == 0 {
            return Ok(());
        }
        let e = Errno::last();
        // ADD of a file epoll still has (an old registration under this number for the same
        // file), or MOD of one it dropped: the other call.
        if !matches!(e, Errno::EEXIST | Errno::ENOENT) {
            return Err(e);
        }
        // SAFETY: as above.
        let rc = unsafe { libc::epoll_ctl(self.epoll, second, fd, &raw mut event) };
        if rc == 0 { Ok(()) } else { Err(Errno::last()) }
    }

    /// Posts a completion, or keeps it in the overflow list while the CQ is full (or older
    /// ones wait there).
    fn post(
        &mut self,
        user_data: u64,
        res: i32,
        sq: &mut SubmissionQueue,
        cq: &mut CompletionQueue,
    ) {
        let cqe = io_uring_cqe {
            user_data,
            res,
            flags: 0,
        };
        if !self.overflow.is_empty() || !cq.post(cqe) {
            self.overflow.push_back(cqe);
            sq.set_flag(SqRingFlags::CQ_OVERFLOW, true);
        }
    }

    fn flush_overflow(&mut self, sq: &mut SubmissionQueue, cq: &mut CompletionQueue) {
        if self.overflow.is_empty() {
            return;
        }
        while let Some(&cqe) = self.overflow.front() {
            if !cq.post(cqe) {
                return;
            }
            self.overflow.pop_front();
        }
        sq.set_flag(SqRingFlags::CQ_OVERFLOW, false);
    }
}
