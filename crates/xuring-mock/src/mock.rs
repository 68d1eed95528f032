//! `Mock`: the kernel-free backend, its options and its controls.

use core::fmt;
use core::ptr::NonNull;
use core::time::Duration;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::CStr;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use xuring_core::{
    Backend, BufferPool, Completion, Errno, Features, IoBuf, KernelLevel, Offset, Op, OpKind, Ring,
    RingBuilder, RingError, TaskId, Timespec,
};
use xuring_sys::{CancelFlags, Opcode, SqFull};

use crate::rng::SplitMix64;
use crate::world::{Avail, StatInfo, World};

/// The errno the mock's `enter` returns when the ring waits for a completion that nothing can
/// ever produce (every pending op is stuck and no timer is running): a real kernel would block
/// forever. `run` reports it as `RingError::Enter(DEADLOCK)`.
pub const DEADLOCK: Errno = Errno::from_raw(libc::EDEADLK);

// ----- operation kinds, requests and replies -----

/// How far into an fd a default-handled write may reach (the mock keeps the bytes in memory).
const MAX_WRITTEN: u64 = crate::world::MAX_FILE;

/// What a [handler](MockControl::handle) is told about an operation the ring submitted.
#[derive(Debug)]
#[non_exhaustive]
pub struct Request<'a> {
    /// The kind of operation.
    pub kind: OpKind,
    /// The op with all its arguments (match on it for what the fields below do not say).
    pub op: &'a Op,
    /// The opcode the op submits on a kernel.
    pub opcode: Opcode,
    /// The submission's `user_data` (the task's [`TaskId`]).
    pub user_data: u64,
    /// The file the op works on (the output of a splice, the target ring of a `msg_ring`,
    /// the directory an `openat2` starts from, the file an `fstat` reports; `None` for the
    /// current directory).
    pub fd: Option<RawFd>,
    /// A splice's input.
    pub fd_in: Option<RawFd>,
    /// The length of the op's buffer(s) (a splice's `len`).
    pub len: usize,
    /// A read's or write's offset (a splice's output offset; `None` there means the file
    /// position, as `Offset::File`).
    pub offset: Option<Offset>,
    /// The bytes a write, writev or send would write, in order (empty for other ops).
    pub data: &'a [u8],
    /// The path an open, stat, unlink or mkdir names; a rename's or link's existing path; a
    /// symlink's target.
    pub path: Option<&'a CStr>,
    /// A rename's or link's new path; a symlink's own path.
    pub path_to: Option<&'a CStr>,
    /// The address a connect connects to.
    pub addr: Option<SocketAddr>,
    /// The op's flags word: an open's `O_*` flags, a recv's or send's `MSG_*`, a poll's
    /// events, a splice's `SPLICE_F_*`, a socket's type, a stat's `AT_SYMLINK_NOFOLLOW`, an
    /// fsync's `IORING_FSYNC_DATASYNC`; 0 for other ops.
    pub flags: u32,
    /// A cancel's target.
    pub target: Option<TaskId>,
    /// A timer's duration (relative) or deadline (absolute).
    pub timer: Option<Timespec>,
    /// Whether `timer` is an absolute deadline.
    pub absolute: bool,
    /// The mock's virtual time.
    pub now: Timespec,
    /// How many times this operation was offered before and answered [`Reply::Pending`].
    pub polls: u32,
}

/// A [handler](MockControl::handle)'s answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// Do what the mock does without a handler (fault injection included).
    Default,
    /// Complete with this raw result (`>= 0` success, `-errno` failure). A read's buffer is
    /// left as it is.
    Complete(i32),
    /// Fail with this errno.
    Err(Errno),
    /// For a read: place these bytes at the start of the buffer (as many as fit) and complete
    /// with their count. For another op: complete with the count, touching nothing.
    Bytes(Vec<u8>),
    /// Not now: the op stays in flight (cancellable), and the handler is asked again at the
    /// next `enter`.
    Pending,
}

/// A request handler: given a request, decides its outcome. See [`MockControl::handle`].
pub type RequestHandler = Box<dyn FnMut(&Request<'_>) -> Reply>;

// ----- options -----

/// The order in which completions that become available in the same step are posted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// In the order the operations were submitted.
    #[default]
    Submission,
    /// Reversed: the last submitted completes first.
    Reversed,
    /// Shuffled by the seed.
    Shuffled,
}

/// Fault injection rates (each a probability in `0.0..=1.0`), drawn from the seed.
///
/// Faults apply to what the mock does by default; an operation a [handler](MockControl::handle)
/// answers is not faulted. Per-op errors apply to noops and the transfers (read, write,
/// readv, writev, recv, send), short transfers to those and to splice; never to timers,
/// cancels, or the ops that make, name or close descriptors (open, close, stat, socket,
/// connect, accept, fsync, poll, msg_ring).
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Probability that a noop or a transfer (read, write, readv, writev, recv, send) fails
    /// with one of `errnos`.
    pub op_error: f64,
    /// The errnos an injected op error picks from, uniformly.
    pub errnos: Vec<Errno>,
    /// Probability that a transfer (or splice) of more than one byte moves fewer bytes.
    pub short_io: f64,
    /// Probability that `enter` returns `EINTR` before doing anything.
    pub enter_eintr: f64,
    /// Probability that `enter` returns `EBUSY` before doing anything.
    pub enter_ebusy: f64,
    /// Probability that `enter` consumes only some of two or more pushed operations.
    pub partial_submit: f64,
    /// Probability that a completion is posted a second time (never an `ECANCELED` one,
    /// which the ring may answer by submitting the op again under the same identity).
    pub duplicate: f64,
    /// Probability per `enter` that a completion with a `user_data` no task has is posted.
    pub foreign: f64,
}

impl Faults {
    /// No faults.
    pub fn none() -> Faults {
        Faults {
            op_error: 0.0,
            errnos: vec![
                Errno::EIO,
                Errno::EAGAIN,
                Errno::EINTR,
                Errno::ECANCELED,
                Errno::ENOBUFS,
            ],
            short_io: 0.0,
            enter_eintr: 0.0,
            enter_ebusy: 0.0,
            partial_submit: 0.0,
            duplicate: 0.0,
            foreign: 0.0,
        }
    }

    /// A bit of everything, at rates that keep runs making progress: 10% op errors, 20% short
    /// transfers, 10% `EINTR`, 5% `EBUSY`, 20% partial submissions, 5% duplicates, 5% foreign
    /// completions.
    pub fn chaos() -> Faults {
        Faults {
            op_error: 0.1,
            short_io: 0.2,
            enter_eintr: 0.1,
            enter_ebusy: 0.05,
            partial_submit: 0.2,
            duplicate: 0.05,
            foreign: 0.05,
            ..Faults::none()
        }
    }
}

impl Default for Faults {
    fn default() -> Faults {
        Faults::none()
    }
}

/// Options for a [`Mock`].
#[derive(Clone, Debug)]
pub struct MockBuilder {
    sq_entries: u32,
    cq_entries: Option<u32>,
    features: Features,
    seed: u64,
    order: Order,
    faults: Faults,
    auto_release: bool,
    outlives_drop: bool,
    trace: bool,
}

impl Default for MockBuilder {
    fn default() -> MockBuilder {
        MockBuilder::new()
    }
}

impl MockBuilder {
    /// 16 SQ entries, a CQ of twice that, [`Features::everything`], seed 0, completions in
    /// submission order, no faults.
    pub fn new() -> MockBuilder {
        MockBuilder {
            sq_entries: 16,
            cq_entries: None,
            features: Features::everything(),
            seed: 0,
            order: Order::Submission,
            faults: Faults::none(),
            auto_release: true,
            outlives_drop: false,
            trace: false,
        }
    }

    /// How many operations can be pushed before an `enter` (at least 1): small values exercise
    /// the ring's SQ-full paths.
    pub fn sq_entries(mut self, entries: u32) -> Self {
        self.sq_entries = entries.max(1);
        self
    }

    /// How many completions fit the CQ (at least 1; default twice the SQ). Completions beyond
    /// it wait in an overflow list ([`Backend::overflowed`] is true) until the next `enter`.
    pub fn cq_entries(mut self, entries: u32) -> Self {
        self.cq_entries = Some(entries.max(1));
        self
    }

    /// The features the mock reports.
    pub fn features(mut self, features: Features) -> Self {
        self.features = features;
        self
    }

    /// Clamps the features to what `level` had, so the ring takes its fallback paths (e.g.
    /// `V5_6`: no `EXT_ARG` wait timeouts, no `CANCEL_ALL`).
    pub fn level(mut self, level: KernelLevel) -> Self {
        self.features = self.features.clamp(level);
        self
    }

    /// The seed of every random choice.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The order of completions that become available together.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Fault injection rates.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Whether a wait that nothing else can satisfy releases [held](MockControl::hold) completions
    /// (default `true`: holding delays completions, as a slow kernel would, but never loses
    /// them, so dropping a ring always reaps everything). With `false` such a wait fails
    /// with [`DEADLOCK`] (or times out).
    pub fn auto_release(mut self, auto: bool) -> Self {
        self.auto_release = auto;
        self
    }

    /// Model a kernel that goes on with the ops it was given after the ring lets go of it, as
    /// io_uring does (default `false`: the mock's ops run only inside its `enter`, so once it
    /// is dropped nothing touches them). With `true`, a ring's teardown must wait for every op
    /// on caller-owned memory, past its timeout, as it does on the kernel.
    pub fn outlives_drop(mut self, outlives: bool) -> Self {
        self.outlives_drop = outlives;
        self
    }

    /// Record every completion handed to the ring, for [`Mock::trace`].
    pub fn trace(mut self, trace: bool) -> Self {
        self.trace = trace;
        self
    }

    /// The mock.
    pub fn build(self) -> Mock {
        let cq_entries = self.cq_entries.unwrap_or(self.sq_entries.saturating_mul(2));
        Mock {
            features: self.features,
            sq_entries: self.sq_entries,
            cq_entries,
            sq: VecDeque::new(),
            pending: Vec::new(),
            batch: Vec::new(),
            held: VecDeque::new(),
            cq: VecDeque::new(),
            overflow: VecDeque::new(),
            now: Timespec::ZERO,
            rng: SplitMix64::new(self.seed),
            seed: self.seed,
            order: self.order,
            faults: self.faults,
            hold: false,
            auto_release: self.auto_release,
            outlives_drop: self.outlives_drop,
            handlers: Default::default(),
            world: World::default(),
            written: BTreeMap::new(),
            blocked: BTreeSet::new(),
            last_enter_faulted: false,
            seen: BTreeSet::new(),
            reused: Vec::new(),
            closed_undelivered: Vec::new(),
            undelivered_close_watch: None,
            undelivered: 0,
            next_seq: 0,
            stats: MockStats::default(),
            trace: self.trace.then(Vec::new),
        }
    }

    /// A ring on the mock with default ring options (under Miri, with small task chunks:
    /// every [`check_invariants`](crate::check_invariants) walks all task slots).
    pub fn build_ring(self) -> Ring<Mock> {
        if cfg!(miri) {
            let options = RingBuilder::new(self.sq_entries).chunk_size(16);
            match self.build_ring_with(options) {
                Ok(ring) => ring,
                Err(_) => unreachable!("a ring without a buffer pool cannot fail to build"),
            }
        } else {
            Ring::with_backend(self.build())
        }
    }

    /// A ring on the mock with these ring options (e.g. a buffer pool). The ring's `entries`
    /// do not matter: the mock's SQ size is [`sq_entries`](Self::sq_entries).
    pub fn build_ring_with(self, options: RingBuilder) -> Result<Ring<Mock>, RingError> {
        options.build_with(self.build())
    }
}

// ----- the mock -----

/// Counters of what the mock did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MockStats {
    /// Operations pushed.
    pub pushed: u64,
    /// Calls of `enter`.
    pub enters: u64,
    /// Operations completed (posted to the CQ or held).
    pub completed: u64,
    /// Completions of pushed operations handed to the ring.
    pub delivered: u64,
    /// Operations cancelled by a cancel or cancel-all.
    pub cancelled: u64,
    /// Injected op errors.
    pub op_errors: u64,
    /// Injected short reads and writes.
    pub short_io: u64,
    /// Injected `EINTR` from `enter`.
    pub enter_eintr: u64,
    /// `EBUSY` from `enter` (injected, or because the overflow list did not fit the CQ).
    pub enter_ebusy: u64,
    /// `enter`s that consumed only part of the SQ.
    pub partial_submits: u64,
    /// Completions that went to the overflow list.
    pub overflowed: u64,
    /// Duplicate completions handed to the ring.
    pub duplicates_delivered: u64,
    /// Foreign completions handed to the ring.
    pub foreign_delivered: u64,
    /// Messages (`msg_ring` into the mock's own ring) handed to the ring.
    pub messages_delivered: u64,
    /// Times a wait advanced virtual time.
    pub time_jumps: u64,
    /// Held completions released because a wait could not be satisfied otherwise.
    pub auto_released: u64,
}

/// A pointer to an op received through [`Backend::push`], whose completion has not been
/// produced yet. It is created only in `push` and dropped when the op's completion is
/// produced, which happens before that completion can be handed to the ring: so while an
/// `OpPtr` exists, `push`'s contract keeps the op valid and untouched by the ring.
struct OpPtr(NonNull<Op>);

impl OpPtr {
    /// # Safety
    ///
    /// `op` must satisfy [`Backend::push`]'s contract for a completion that the mock has not
    /// delivered yet, and the returned value must be dropped before that completion is
    /// handed to the ring.
    #[allow(unsafe_code)]
    unsafe fn new(op: NonNull<Op>) -> OpPtr {
        OpPtr(op)
    }

    /// Runs `f` on the op.
    #[allow(unsafe_code)]
    fn with<R>(&mut self, f: impl FnOnce(&mut Op) -> R) -> R {
        // SAFETY: `OpPtr::new`'s contract: the op is live, at this address, and not accessed
        // by the ring until its completion is delivered, which happens only after this
        // `OpPtr` is dropped. The reference does not outlive `f`, and the mock is
        // single-threaded, so it is the only reference to the op meanwhile.
        f(unsafe { &mut *self.0.as_ptr() })
    }

    /// Runs `f` on the op, reading only.
    #[allow(unsafe_code)]
    fn peek<R>(&self, f: impl FnOnce(&Op) -> R) -> R {
        // SAFETY: as in `with`; a shared reference, for as long as `f` runs.
        f(unsafe { &*self.0.as_ptr() })
    }
}

impl fmt::Debug for OpPtr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OpPtr").field(&self.0).finish()
    }
}

/// An op pushed or in flight.
#[derive(Debug)]
struct Entry {
    op: OpPtr,
    user_data: u64,
    seq: u64,
    kind: OpKind,
    /// The ring's own deadline timer: it never reaches a handler.
    wake: bool,
    /// A timer's deadline, fixed when the mock consumes it.
    deadline: Option<Timespec>,
    polls: u32,
}

/// Where a completion came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Real,
    Duplicate,
    Foreign,
    /// A `msg_ring` into the mock's own ring.
    Message,
}

#[derive(Clone, Copy, Debug)]
struct Cqe {
    completion: Completion,
    seq: u64,
    origin: Origin,
}

enum Outcome {
    Done(i32),
    Pending,
}

/// A deterministic, kernel-free [`Backend`].
///
/// Pushed operations wait in a bounded SQ ([`MockBuilder::sq_entries`]); `enter` consumes
/// them in order and completes each one as its [handler](MockControl::handle) or the defaults say.
/// The defaults are Linux's, played on a small in-memory world: a filesystem of
/// directories, files and symbolic links by path ([`add_file`](MockControl::add_file),
/// [`add_dir`](MockControl::add_dir), [`add_symlink`](MockControl::add_symlink); relative
/// paths start at `/`), pipes ([`pipe_pair`](MockControl::pipe_pair),
/// [`pipe`](MockControl::pipe)), stream sockets that [listen](MockControl::listen) at an address
/// and connect to each other, and the mock's own [ring fd](Mock::ring_fd). Descriptors the
/// mock makes are numbered from [`FIRST_FD`](crate::FIRST_FD) (`1 << 30`) up, above any real
/// one, and never reused.
///
/// | op | default |
/// | --- | --- |
/// | noop | `0` |
/// | timer | `-ETIME` when virtual time reaches it |
/// | read | from the fd's file (at its position, which it moves, or at an offset), pipe or connection; an empty pipe or connection waits for bytes, returns 0 once its writer or peer is gone; `-EBADF` on a write-only or closed fd, `-EISDIR` on a directory |
/// | write | into the fd's file (at its position, an offset, or the end with `O_APPEND`; past the end leaves a hole), pipe (waits while 64 KiB are unread; `-EPIPE` without a reader) or connection (`-EPIPE` once the peer is gone); `-EBADF` on a read-only or closed fd. Recorded too, see [`written`](Self::written) |
/// | readv, writev | like read and write, over the buffers in order |
/// | open | the path's file or directory as a fresh fd; `O_CREAT` (with `mode`), `O_EXCL` (`-EEXIST`), `O_TRUNC`, `O_APPEND`, `O_DIRECTORY`, `O_NOFOLLOW`, `O_NONBLOCK` and the access mode as on Linux; `-ENOENT`, `-ENOTDIR`, `-EISDIR`, `-ELOOP` |
/// | close | `0`, and the fd is gone: a pipe's other end sees it closed, a connection's peer sees it hung up, a listener's waiting connections are dropped; `-EBADF` for an fd the mock does not have (or its own ring fd) |
/// | shutdown | on a connection: `SHUT_WR` ends sending (`-EPIPE` after; the peer reads EOF once it has read what was sent), `SHUT_RD` receiving; `-ENOTCONN` without a connection, `-ENOTSOCK` for other fds, `-EINVAL` for another `how` |
/// | fsync | `0` on a file or directory, `-EINVAL` on a pipe or socket, `-EBADF` otherwise |
/// | stat, lstat | the path's type and permissions, size, link count and inode (owner, device and times are 0); lstat does not follow a final link; `-ENOENT`, `-ENOTDIR`, `-ELOOP` |
/// | socket | a fresh fd: `AF_INET`, `AF_INET6`, `AF_UNIX`; `SOCK_STREAM`, `SOCK_DGRAM` (with `SOCK_NONBLOCK`) |
/// | connect | a stream socket connects to the mock listener at the address (or a wildcard one at its port), which queues the connection; `-ECONNREFUSED` where nobody listens, `-EISCONN` when connected; a datagram socket takes the address as its peer |
/// | accept | the oldest queued connection as a fresh fd, connected to the connecting socket, whose address it writes into the op; waits while none is queued; `-EINVAL` on a socket that does not listen, `-ENOTSOCK` on another fd |
/// | recv | like read, on a socket only (`-ENOTSOCK` otherwise); `MSG_PEEK` leaves the bytes, `MSG_DONTWAIT` fails with `-EAGAIN` instead of waiting |
/// | send | like write, on a socket only (`-ENOTSOCK` otherwise); `MSG_DONTWAIT` as in recv |
/// | send_to | like send (a datagram socket's datagram goes nowhere; the address is in the `Request`) |
/// | recv_from | like recv, with no sender (a connection has none; a datagram socket never receives) |
/// | poll | the asked events the fd has (`POLLIN` with bytes to read or a queued connection, `POLLOUT` with room, `POLLHUP` on a pipe without writer, `POLLERR` on one without reader, `POLLRDHUP` on a hung-up connection); waits while there are none |
/// | splice | moves bytes between a pipe and a file (at an offset, or at its position, which it moves), a pipe or a socket; waits on an empty pipe with a writer or a full one, returns 0 from one without writer; `-EINVAL` when neither side is a pipe, `-ESPIPE` for an offset on a pipe |
/// | msg_ring | to the mock's own [ring fd](Self::ring_fd): posts the message into this ring, `0`; `-EBADFD` for another fd, `-EBADF` for one the mock does not have (it knows no other ring) |
/// | cancel | finds the target among the ops still in flight: target `-ECANCELED`, cancel `0`; else `-ENOENT` |
/// | cancel-all | cancels every op in flight; the count, or `-ENOENT` if there was none |
///
/// A descriptor below [`FIRST_FD`](crate::FIRST_FD) that the mock never heard of is *loose*:
/// reads return 0 (EOF) and writes are only recorded, so a test that only reads or writes
/// needs no setup; every other op on it fails with `-EBADF`, as does every op on a
/// descriptor that was closed.
///
/// Where it deviates from Linux: descriptors are never reused; a created file's mode ignores
/// the umask; sockets are never full (a send takes everything), a connect completes at once
/// without a handshake, a send to a peer that closed fails with `-EPIPE` right away (TCP may
/// take one more send first), a datagram goes nowhere and a datagram socket never receives;
/// `MSG_WAITALL` is not modelled (a recv returns what is there); a write to a full pipe
/// writes what fits and completes short; an op waiting on an fd that is closed completes
/// with `-EBADF` (Linux keeps it waiting on the open file); an offset on a pipe or socket is
/// ignored.
///
/// Reads and writes (and recvs, sends, splices) on a [blocked](MockControl::block_fd) fd,
/// reads of an empty pipe, an accept with nothing queued, a poll with nothing ready and ops a
/// handler answers [`Reply::Pending`] stay in flight until unblocked, fed, connected,
/// answered, or cancelled. When the ring waits and only timers can complete, virtual time
/// jumps to the earliest one; a wait with a timeout that nothing satisfies jumps to the
/// timeout and returns `ETIME`. Nothing ever sleeps.
pub struct Mock {
    features: Features,
    sq_entries: u32,
    cq_entries: u32,
    /// Pushed, not yet consumed by `enter`.
    sq: VecDeque<Entry>,
    /// Consumed, not yet completed (timers, stuck I/O, pending handlers), in submission order.
    pending: Vec<Entry>,
    /// Completions produced by the current step, posted together in the chosen order.
    batch: Vec<Cqe>,
    /// Completions produced but held back until released.
    held: VecDeque<Cqe>,
    cq: VecDeque<Cqe>,
    overflow: VecDeque<Cqe>,
    now: Timespec,
    rng: SplitMix64,
    seed: u64,
    order: Order,
    faults: Faults,
    hold: bool,
    auto_release: bool,
    outlives_drop: bool,
    handlers: [Option<RequestHandler>; OpKind::COUNT],
    world: World,
    written: BTreeMap<RawFd, Vec<u8>>,
    blocked: BTreeSet<RawFd>,
    last_enter_faulted: bool,
    /// Every `user_data` ever pushed: a task's identity must never repeat.
    seen: BTreeSet<u64>,
    reused: Vec<u64>,
    /// Descriptors the ring closed because no callback received them.
    closed_undelivered: Vec<RawFd>,
    /// Told of each of those as it is closed (the mock itself goes with the ring).
    undelivered_close_watch: Option<Box<dyn FnMut(RawFd)>>,
    /// Pushed operations whose completion has not been handed to the ring.
    undelivered: u32,
    next_seq: u64,
    stats: MockStats,
    trace: Option<Vec<Completion>>,
}

impl fmt::Debug for Mock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mock")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("sq", &self.sq.len())
            .field("pending", &self.pending.len())
            .field("held", &self.held.len())
            .field("cq", &self.cq.len())
            .field("overflow", &self.overflow.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Default for Mock {
    fn default() -> Mock {
        MockBuilder::new().build()
    }
}

fn add(a: Timespec, b: Timespec) -> Timespec {
    a.saturating_add(b.to_duration())
}

/// The `user_data` bit that marks a completion as a message from a `msg_ring`, not a task's.
const MESSAGE: u64 = 1 << 63;

/// A short transfer, if the faults draw one: `n` cut to `1..n`.
fn shorten(rng: &mut SplitMix64, faults: &Faults, stats: &mut MockStats, n: usize) -> usize {
    if n > 1 && rng.chance(faults.short_io) {
        stats.short_io += 1;
        1 + rng.below(n as u64 - 1) as usize
    } else {
        n
    }
}

/// The first `n` bytes of `bufs`, in order.
fn gather(bufs: &[IoBuf], n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for buf in bufs {
        let want = n - out.len();
        if want == 0 {
            break;
        }
        let bytes = buf.as_slice();
        out.extend_from_slice(&bytes[..want.min(bytes.len())]);
    }
    out
}

/// Copies `bytes` into `bufs` in order; returns how many fit.
fn scatter(bufs: &mut [IoBuf], mut bytes: &[u8]) -> usize {
    let mut copied = 0;
    for buf in bufs {
        if bytes.is_empty() {
            break;
        }
        let Some(dst) = buf.as_mut_slice() else {
            break;
        };
        let n = dst.len().min(bytes.len());
        dst[..n].copy_from_slice(&bytes[..n]);
        copied += n;
        bytes = &bytes[n..];
    }
    copied
}

/// What a `statx` of a mock file says: its type and permissions, size, links and inode;
/// owner, device and times are 0.
fn fill_statx(statx: &mut libc::statx, info: StatInfo) {
    statx.stx_mask = libc::STATX_BASIC_STATS;
    statx.stx_mode = info.mode as u16;
    statx.stx_size = info.size;
    statx.stx_nlink = info.nlink;
    statx.stx_ino = info.ino;
    statx.stx_blocks = info.size.div_ceil(512);
    statx.stx_blksize = 4096;
    statx.stx_uid = 0;
    statx.stx_gid = 0;
}

impl Mock {
    /// A mock with default options ([`MockBuilder::new`]).
    pub fn new() -> Mock {
        Mock::default()
    }

    /// Options for a mock.
    pub fn builder() -> MockBuilder {
        MockBuilder::new()
    }

    /// The seed this mock was built with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// What the mock did.
    pub fn stats(&self) -> MockStats {
        self.stats
    }

    /// Every completion handed to the ring so far, if [tracing](MockBuilder::trace) is on.
    pub fn trace(&self) -> Option<&[Completion]> {
        self.trace.as_deref()
    }

    // ----- inspection of what was written and held -----

    /// Everything written to `fd` by default-handled writes: [`Offset::File`] appends,
    /// [`Offset::At`] writes at that offset.
    pub fn written(&self, fd: RawFd) -> &[u8] {
        self.written.get(&fd).map_or(&[], Vec::as_slice)
    }

    /// The bytes of the regular file at `path` (following symbolic links), if there is one.
    pub fn file(&self, path: impl AsRef<[u8]>) -> Option<&[u8]> {
        self.world.file(path.as_ref())
    }

    /// Whether the mock has `fd` open (made by an op or a control, not closed yet).
    pub fn is_open(&self, fd: RawFd) -> bool {
        self.world.is_open(fd)
    }

    /// The address a mock socket [listens](MockControl::listen) at or connected from.
    pub fn local_addr(&self, fd: RawFd) -> Option<SocketAddr> {
        self.world.local_addr(fd)
    }

    /// The descriptor that stands for the mock's own ring: a `msg_ring` to it posts the
    /// message into this ring, as a `msg_ring` of a ring to itself does.
    pub fn ring_fd(&self) -> RawFd {
        crate::FIRST_FD
    }

    /// How many completions are held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The `user_data` of the held completions, oldest first.
    pub fn held_user_data(&self) -> Vec<u64> {
        self.held.iter().map(|c| c.completion.user_data).collect()
    }
    /// The earliest deadline of a timer in flight.
    pub fn next_deadline(&self) -> Option<Timespec> {
        self.pending.iter().filter_map(|e| e.deadline).min()
    }

    // ----- inspection -----

    /// Ops pushed but not yet consumed by `enter`.
    pub fn queued(&self) -> usize {
        self.sq.len()
    }

    /// Ops consumed and still in flight (timers, stuck I/O, pending handlers).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The `user_data` of the ops still in flight, in submission order.
    pub fn pending_user_data(&self) -> Vec<u64> {
        self.pending.iter().map(|e| e.user_data).collect()
    }

    /// The kinds of the ops still in flight, in submission order.
    pub fn pending_kinds(&self) -> Vec<OpKind> {
        self.pending.iter().map(|e| e.kind).collect()
    }

    /// The `user_data` of the ring's own deadline timers in flight (see
    /// [`Timer::is_wake`](xuring_core::ops::Timer::is_wake)), in submission order.
    pub fn pending_wakes(&self) -> Vec<u64> {
        self.pending
            .iter()
            .filter(|e| e.wake)
            .map(|e| e.user_data)
            .collect()
    }

    /// Completions posted to the CQ (or its overflow list) and not yet reaped.
    pub fn posted(&self) -> usize {
        self.cq.len() + self.overflow.len()
    }

    /// Pushed operations whose completion has not been handed to the ring yet. Between ring
    /// calls it equals [`Ring::in_flight`].
    pub fn undelivered(&self) -> u32 {
        self.undelivered
    }

    /// Descriptors from completed opens, accepts and sockets that the ring closed because no
    /// callback ever received them (it was dropped first), in order.
    pub fn closed_undelivered(&self) -> &[RawFd] {
        &self.closed_undelivered
    }

    /// `user_data` values pushed more than once (a task identity reused: a ring bug).
    pub fn reused_user_data(&self) -> &[u64] {
        &self.reused
    }

    /// How many ops the mock holds (pushed or in flight) whose buffer belongs to `pool`.
    pub fn buffers_held(&self, pool: &BufferPool) -> usize {
        self.sq
            .iter()
            .chain(self.pending.iter())
            .filter(|e| {
                e.op.peek(|op| op.buf().and_then(|b| b.pool_index(pool)).is_some())
            })
            .count()
    }

    // ----- the engine -----

    fn post_cq(&mut self, cqe: Cqe) {
        if self.overflow.is_empty() && self.cq.len() < self.cq_entries as usize {
            self.cq.push_back(cqe);
        } else {
            self.stats.overflowed += 1;
            self.overflow.push_back(cqe);
        }
    }

    /// Finishes `entry` with `res`: its `OpPtr` is dropped here, before the completion can be
    /// delivered.
    fn complete(&mut self, entry: Entry, res: i32) {
        self.stats.completed += 1;
        if res == -libc::ECANCELED {
            // A cancelled op may come back under the same identity: the ring submits again
            // what the kernel cancelled without being asked.
            self.seen.remove(&entry.user_data);
        }
        self.batch.push(Cqe {
            completion: Completion {
                user_data: entry.user_data,
                res,
                flags: 0,
            },
            seq: entry.seq,
            origin: Origin::Real,
        });
        // `entry` (and its `OpPtr`) goes out of scope here, before the completion can be
        // delivered.
    }

    /// Posts the current batch in the chosen order, with duplicates where injected.
    fn post_batch(&mut self) {
        let mut batch = core::mem::take(&mut self.batch);
        match self.order {
            Order::Submission => batch.sort_by_key(|c| c.seq),
            Order::Reversed => batch.sort_by_key(|c| core::cmp::Reverse(c.seq)),
            Order::Shuffled => {
                batch.sort_by_key(|c| c.seq);
                for i in (1..batch.len()).rev() {
                    let j = self.rng.below(i as u64 + 1) as usize;
                    batch.swap(i, j);
                }
            }
        }
        let mut duplicates = Vec::new();
        for cqe in batch {
            // Never a cancelled op's: the ring submits an op the kernel cancelled on its own
            // again under the same identity, and a real kernel posts one completion per
            // submission, so a stale copy of that `ECANCELED` cannot exist.
            if cqe.origin == Origin::Real
                && self.rng.chance(self.faults.duplicate)
                && cqe.completion.res != -libc::ECANCELED
            {
                duplicates.push(Cqe {
                    origin: Origin::Duplicate,
                    ..cqe
                });
            }
            if self.hold {
                self.held.push_back(cqe);
            } else {
                self.post_cq(cqe);
            }
        }
        // A duplicate always comes after its original (held with it when holding), so the
        // ring sees it when the task is no longer in flight under that id: stale.
        for dup in duplicates {
            if self.hold {
                self.held.push_back(dup);
            } else {
                self.post_cq(dup);
            }
        }
    }

    /// A `user_data` no task of any ring has. (Values with bit 63 set are not used: the ring
    /// reads those as cross-ring messages, not as foreign completions.)
    fn foreign_user_data(&mut self) -> u64 {
        if self.rng.chance(0.5) {
            // Generation 0: no task ever has it.
            self.rng.below(1 << 32)
        } else {
            // A slot index far beyond any pool, generation 1.
            (1u64 << 32) | (u64::from(u32::MAX) - self.rng.below(1 << 10))
        }
    }

    fn inject_error(&mut self) -> Option<i32> {
        if self.faults.errnos.is_empty() || !self.rng.chance(self.faults.op_error) {
            return None;
        }
        let i = self.rng.below(self.faults.errnos.len() as u64) as usize;
        self.stats.op_errors += 1;
        Some(-self.faults.errnos[i].raw())
    }

    fn shorten(&mut self, n: usize) -> usize {
        shorten(&mut self.rng, &self.faults, &mut self.stats, n)
    }

    /// Offers `entry` to its handler, if any. `None`: no handler, or it said `Default`.
    fn ask_handler(&mut self, entry: &mut Entry) -> Option<Reply> {
        if entry.wake {
            return None;
        }
        let kind = entry.kind;
        let handler = self.handlers[kind.index()].as_mut()?;
        let now = self.now;
        let polls = entry.polls;
        let user_data = entry.user_data;
        let reply = entry.op.peek(|op| {
            let gathered: Cow<'_, [u8]> = match op.input_bufs() {
                Some([one]) => Cow::Borrowed(one.as_slice()),
                Some(bufs) => Cow::Owned(gather(bufs, usize::MAX)),
                None => Cow::Borrowed(&[]),
            };
            let mut req = Request {
                kind,
                op,
                opcode: kind.opcode(),
                user_data,
                fd: None,
                fd_in: None,
                len: 0,
                offset: None,
                data: &gathered,
                path: None,
                path_to: None,
                addr: None,
                flags: 0,
                target: None,
                timer: None,
                absolute: false,
                now,
                polls,
            };
            match op {
                Op::Noop(_) | Op::CancelAll(_) => {}
                Op::Read(r) => {
                    (req.fd, req.len, req.offset) = (Some(r.fd), r.buf.len(), Some(r.offset));
                }
                Op::Write(w) => {
                    (req.fd, req.len, req.offset) = (Some(w.fd), w.buf.len(), Some(w.offset));
                }
                Op::Readv(r) => {
                    (req.fd, req.len, req.offset) =
                        (Some(r.fd), r.bufs.total_len(), Some(r.offset));
                }
                Op::Writev(w) => {
                    (req.fd, req.len, req.offset) =
                        (Some(w.fd), w.bufs.total_len(), Some(w.offset));
                }
                Op::Recv(r) => {
                    (req.fd, req.len, req.flags) = (Some(r.fd), r.buf.len(), r.flags as u32);
                }
                Op::Send(s) => {
                    (req.fd, req.len, req.flags) = (Some(s.fd), s.buf.len(), s.flags as u32);
                }
                Op::SendTo(s) => {
                    (req.fd, req.len, req.flags) = (Some(s.fd), s.buf.len(), s.flags as u32);
                    req.addr = s.addr();
                }
                Op::RecvFrom(r) => {
                    (req.fd, req.len, req.flags) = (Some(r.fd), r.buf.len(), r.flags as u32);
                }
                Op::Timer(t) => {
                    req.timer = Some(t.time());
                    req.absolute = t.absolute;
                }
                Op::Cancel(c) => req.target = Some(c.target),
                Op::Open(o) => (req.path, req.flags) = (Some(o.path.as_c_str()), o.flags as u32),
                Op::Openat2(o) => {
                    req.fd = (o.dir != libc::AT_FDCWD).then_some(o.dir);
                    (req.path, req.flags) = (Some(o.path.as_c_str()), o.how().flags as u32);
                }
                Op::Unlink(u) => (req.path, req.flags) = (Some(u.path.as_c_str()), u.flags as u32),
                Op::Rename(r) => {
                    (req.path, req.path_to, req.flags) =
                        (Some(r.from.as_c_str()), Some(r.to.as_c_str()), r.flags);
                }
                Op::Mkdir(m) => (req.path, req.flags) = (Some(m.path.as_c_str()), m.mode),
                Op::Symlink(l) => {
                    (req.path, req.path_to) = (Some(l.target.as_c_str()), Some(l.link.as_c_str()));
                }
                Op::Link(l) => {
                    (req.path, req.path_to) = (Some(l.from.as_c_str()), Some(l.to.as_c_str()));
                }
                Op::Stat(s) => {
                    req.path = Some(s.path.as_c_str());
                    req.fd = (s.dir != libc::AT_FDCWD).then_some(s.dir);
                    req.flags = if s.nofollow {
                        libc::AT_SYMLINK_NOFOLLOW as u32
                    } else {
                        0
                    };
                }
                Op::Close(c) => req.fd = Some(c.fd),
                Op::Fallocate(a) => {
                    (req.fd, req.len, req.offset, req.flags) = (
                        Some(a.fd),
                        a.len as usize,
                        Some(Offset::At(a.offset)),
                        a.mode as u32,
                    );
                }
                Op::Fadvise(a) => {
                    (req.fd, req.len, req.offset, req.flags) = (
                        Some(a.fd),
                        a.len as usize,
                        Some(Offset::At(a.offset)),
                        a.advice as u32,
                    );
                }
                Op::Shutdown(c) => (req.fd, req.flags) = (Some(c.fd), c.how as u32),
                Op::Fsync(f) => {
                    req.fd = Some(f.fd);
                    req.flags = if f.datasync {
                        xuring_sys::FsyncFlags::DATASYNC.bits()
                    } else {
                        0
                    };
                }
                Op::Socket(s) => req.flags = s.ty as u32,
                Op::Connect(c) => (req.fd, req.addr) = (Some(c.fd), c.addr.to_socket_addr()),
                Op::Accept(a) => req.fd = Some(a.fd),
                Op::Poll(p) => (req.fd, req.flags) = (Some(p.fd), p.events),
                Op::Splice(s) => {
                    (req.fd, req.fd_in, req.len, req.flags) =
                        (Some(s.fd_out), Some(s.fd_in), s.len as usize, s.flags);
                    req.offset = Some(s.off_out.map_or(Offset::File, Offset::At));
                }
                Op::MsgRing(m) => req.fd = Some(m.target),
            }
            handler(&req)
        });
        match reply {
            Reply::Default => None,
            Reply::Bytes(bytes) => {
                // A read's (receive's, readv's) buffers get the bytes, as many as fit; any
                // other op completes with their count, touching nothing.
                let n = entry.op.with(|op| match op.output_bufs_mut() {
                    Some(bufs) => scatter(bufs, &bytes),
                    None => bytes.len(),
                });
                Some(Reply::Complete(i32::try_from(n).unwrap_or(i32::MAX)))
            }
            other => Some(other),
        }
    }

    /// Tries to complete `entry` (newly consumed, or pending since an earlier `enter`).
    fn attempt(&mut self, mut entry: Entry) {
        let outcome = match self.ask_handler(&mut entry) {
            Some(Reply::Complete(res)) => Outcome::Done(res),
            Some(Reply::Err(e)) => Outcome::Done(-e.raw()),
            Some(Reply::Pending) => Outcome::Pending,
            Some(Reply::Default | Reply::Bytes(_)) | None => self.default_outcome(&mut entry),
        };
        match outcome {
            Outcome::Done(res) => self.complete(entry, res),
            Outcome::Pending => {
                entry.polls += 1;
                self.pending.push(entry);
            }
        }
    }

    /// Whether the op's opcode is there (by the mock's features, as a kernel's probe).
    fn supported(&self, op: &Op) -> bool {
        let kind = op.kind();
        self.features.supports(kind.opcode())
            && (kind != OpKind::CancelAll
                || self
                    .features
                    .cancel
                    .contains(CancelFlags::ALL | CancelFlags::ANY))
    }

    fn default_outcome(&mut self, entry: &mut Entry) -> Outcome {
        if !entry.op.peek(|op| self.supported(op)) {
            return Outcome::Done(-Errno::EINVAL.raw());
        }
        // What each op does to the world; `Op` is matched without a wildcard, so a new op
        // does not compile here until it is modelled.
        enum Todo {
            Noop,
            Timer,
            Cancel,
            CancelAll,
            Read(RawFd, usize, Offset),
            Recv(RawFd, usize, i32),
            Write(RawFd, usize, Offset),
            Send(RawFd, usize, i32),
            Open(Vec<u8>, u32, u32),
            Openat2(RawFd, Vec<u8>, xuring_core::OpenHow),
            Unlink(Vec<u8>, i32),
            Rename(Vec<u8>, Vec<u8>, u32),
            Mkdir(Vec<u8>, u32),
            Symlink(Vec<u8>, Vec<u8>),
            Link(Vec<u8>, Vec<u8>),
            Close(RawFd),
            Fallocate(RawFd, i32, u64, u64),
            Fadvise(RawFd, i32),
            Shutdown(RawFd, i32),
            Fsync(RawFd),
            Stat(RawFd, Vec<u8>, bool),
            Socket(i32, i32, i32),
            Connect(RawFd, Option<SocketAddr>),
            Accept(RawFd),
            Poll(RawFd, u32),
            Splice((RawFd, Option<u64>), (RawFd, Option<u64>), usize, u32),
            MsgRing(RawFd, u64, i32),
        }
        let todo = entry.op.peek(|op| match op {
            Op::Noop(_) => Todo::Noop,
            Op::Timer(_) => Todo::Timer,
            Op::Cancel(_) => Todo::Cancel,
            Op::CancelAll(_) => Todo::CancelAll,
            Op::Read(r) => Todo::Read(r.fd, r.buf.len(), r.offset),
            Op::Readv(r) => Todo::Read(r.fd, r.bufs.total_len(), r.offset),
            Op::Recv(r) => Todo::Recv(r.fd, r.buf.len(), r.flags),
            Op::RecvFrom(r) => Todo::Recv(r.fd, r.buf.len(), r.flags),
            Op::Write(w) => Todo::Write(w.fd, w.buf.len(), w.offset),
            Op::Writev(w) => Todo::Write(w.fd, w.bufs.total_len(), w.offset),
            Op::Send(s) => Todo::Send(s.fd, s.buf.len(), s.flags),
            Op::SendTo(s) => Todo::Send(s.fd, s.buf.len(), s.flags),
            Op::Open(o) => Todo::Open(
                o.path.as_c_str().to_bytes().to_vec(),
                o.flags as u32,
                o.mode,
            ),
            Op::Openat2(o) => Todo::Openat2(o.dir, o.path.as_c_str().to_bytes().to_vec(), *o.how()),
            Op::Unlink(u) => Todo::Unlink(u.path.as_c_str().to_bytes().to_vec(), u.flags),
            Op::Rename(r) => Todo::Rename(
                r.from.as_c_str().to_bytes().to_vec(),
                r.to.as_c_str().to_bytes().to_vec(),
                r.flags,
            ),
            Op::Mkdir(m) => Todo::Mkdir(m.path.as_c_str().to_bytes().to_vec(), m.mode),
            Op::Symlink(l) => Todo::Symlink(
                l.target.as_c_str().to_bytes().to_vec(),
                l.link.as_c_str().to_bytes().to_vec(),
            ),
            Op::Link(l) => Todo::Link(
                l.from.as_c_str().to_bytes().to_vec(),
                l.to.as_c_str().to_bytes().to_vec(),
            ),
            Op::Close(c) => Todo::Close(c.fd),
            Op::Fallocate(a) => Todo::Fallocate(a.fd, a.mode, a.offset, a.len),
            Op::Fadvise(a) => Todo::Fadvise(a.fd, a.advice),
            Op::Shutdown(c) => Todo::Shutdown(c.fd, c.how),
            Op::Fsync(f) => Todo::Fsync(f.fd),
            Op::Stat(s) => Todo::Stat(s.dir, s.path.as_c_str().to_bytes().to_vec(), !s.nofollow),
            Op::Socket(s) => Todo::Socket(s.domain, s.ty, s.protocol),
            Op::Connect(c) => Todo::Connect(c.fd, c.addr.to_socket_addr()),
            Op::Accept(a) => Todo::Accept(a.fd),
            Op::Poll(p) => Todo::Poll(p.fd, p.events),
            Op::Splice(s) => Todo::Splice(
                (s.fd_in, s.off_in),
                (s.fd_out, s.off_out),
                s.len as usize,
                s.flags,
            ),
            Op::MsgRing(m) => Todo::MsgRing(m.target, m.message.data, m.message.value),
        });
        let done = |r: Result<(), Errno>| Outcome::Done(r.map_or_else(|e| -e.raw(), |()| 0));
        let fd = |r: Result<RawFd, Errno>| Outcome::Done(r.unwrap_or_else(|e| -e.raw()));
        match todo {
            Todo::Noop => Outcome::Done(self.inject_error().unwrap_or(0)),
            Todo::Timer => self.default_timer(entry),
            Todo::Cancel => self.default_cancel(entry),
            Todo::CancelAll => self.default_cancel_all(),
            Todo::Read(fd, len, offset) => self.read_into(entry, fd, len, offset, 0),
            Todo::Recv(fd, len, flags) => match self.world.socket_fd(fd) {
                Ok(()) => self.read_into(entry, fd, len, Offset::File, flags),
                Err(e) => Outcome::Done(-e.raw()),
            },
            Todo::Write(fd, len, offset) => self.write_from(entry, fd, len, offset, 0),
            Todo::Send(fd, len, flags) => match self.world.socket_fd(fd) {
                Ok(()) => self.write_from(entry, fd, len, Offset::File, flags),
                Err(e) => Outcome::Done(-e.raw()),
            },
            Todo::Open(path, flags, mode) => fd(self.world.open(&path, flags, mode)),
            Todo::Openat2(dir, path, how) => fd(self.world.openat2(dir, &path, &how)),
            Todo::Unlink(path, flags) => done(self.world.unlink(&path, flags)),
            Todo::Rename(from, to, flags) => done(self.world.rename(&from, &to, flags)),
            Todo::Mkdir(path, mode) => done(self.world.mkdir(&path, mode)),
            Todo::Symlink(target, link) => done(self.world.symlink(&target, &link)),
            Todo::Link(from, to) => done(self.world.link(&from, &to)),
            Todo::Close(target) => done(self.world.close(target)),
            Todo::Fallocate(target, mode, offset, len) => {
                done(self.world.fallocate(target, mode, offset, len))
            }
            Todo::Fadvise(target, advice) => done(self.world.fadvise(target, advice)),
            Todo::Shutdown(target, how) => done(self.world.shutdown(target, how)),
            Todo::Fsync(target) => done(self.world.fsync(target)),
            Todo::Stat(dir, path, follow) => match self.world.stat_at(dir, &path, follow) {
                Ok(info) => {
                    entry.op.with(|op| {
                        if let Op::Stat(s) = op {
                            fill_statx(s.statx_mut(), info);
                        }
                    });
                    Outcome::Done(0)
                }
                Err(e) => Outcome::Done(-e.raw()),
            },
            Todo::Socket(domain, ty, protocol) => fd(self.world.socket(domain, ty, protocol)),
            Todo::Connect(target, addr) => done(self.world.connect(target, addr)),
            Todo::Accept(target) => match self.world.accept(target) {
                Ok(Some((new, peer))) => {
                    entry.op.with(|op| {
                        if let Op::Accept(a) = op {
                            a.addr.set(peer);
                        }
                    });
                    Outcome::Done(new)
                }
                Ok(None) => Outcome::Pending,
                Err(e) => Outcome::Done(-e.raw()),
            },
            Todo::Poll(target, events) => match self.world.poll(target, events) {
                Ok(0) => Outcome::Pending,
                Ok(revents) => Outcome::Done(revents as i32),
                Err(e) => Outcome::Done(-e.raw()),
            },
            Todo::Splice(input, output, len, flags) => {
                if self.blocked.contains(&input.0) || self.blocked.contains(&output.0) {
                    return Outcome::Pending;
                }
                let nonblock = flags & libc::SPLICE_F_NONBLOCK != 0;
                let (rng, faults, stats) = (&mut self.rng, &self.faults, &mut self.stats);
                let shorten = |n| shorten(rng, faults, stats, n);
                match self.world.splice(input, output, len, nonblock, shorten) {
                    Ok(Some(n)) => Outcome::Done(i32::try_from(n).unwrap_or(i32::MAX)),
                    Ok(None) => Outcome::Pending,
                    Err(e) => Outcome::Done(-e.raw()),
                }
            }
            Todo::MsgRing(target, data, value) => match self.world.ring(target) {
                Ok(()) => {
                    // Into the mock's own ring: a completion that is no task's, read by the
                    // ring as a message.
                    self.batch.push(Cqe {
                        completion: Completion {
                            user_data: data | MESSAGE,
                            res: value,
                            flags: 0,
                        },
                        seq: entry.seq,
                        origin: Origin::Message,
                    });
                    Outcome::Done(0)
                }
                Err(e) => Outcome::Done(-e.raw()),
            },
        }
    }

    fn default_timer(&mut self, entry: &mut Entry) -> Outcome {
        let deadline = match entry.deadline {
            Some(d) => d,
            None => {
                let now = self.now;
                let d = entry.op.peek(|op| match op {
                    Op::Timer(t) if t.absolute => t.time(),
                    Op::Timer(t) => add(now, t.time()),
                    other => unreachable!("a timer entry holds a timer, not {other:?}"),
                });
                entry.deadline = Some(d);
                d
            }
        };
        if deadline <= self.now {
            Outcome::Done(-Errno::ETIME.raw())
        } else {
            Outcome::Pending
        }
    }

    fn default_cancel(&mut self, entry: &mut Entry) -> Outcome {
        let (target, timer_only) = entry.op.peek(|op| match op {
            Op::Cancel(c) => (c.target.to_u64(), c.timer_only()),
            other => unreachable!("a cancel entry holds a cancel, not {other:?}"),
        });
        let found = self
            .pending
            .iter()
            .position(|e| e.user_data == target && (!timer_only || e.kind == OpKind::Timer));
        match found {
            Some(i) => {
                let victim = self.pending.remove(i);
                self.stats.cancelled += 1;
                self.complete(victim, -Errno::ECANCELED.raw());
                Outcome::Done(0)
            }
            None => Outcome::Done(-Errno::ENOENT.raw()),
        }
    }

    fn default_cancel_all(&mut self) -> Outcome {
        let (victims, kept): (Vec<Entry>, Vec<Entry>) = core::mem::take(&mut self.pending)
            .into_iter()
            .partition(|e| !matches!(e.kind, OpKind::Cancel | OpKind::CancelAll));
        self.pending = kept;
        let n = victims.len();
        for victim in victims {
            self.stats.cancelled += 1;
            self.complete(victim, -Errno::ECANCELED.raw());
        }
        if n == 0 {
            Outcome::Done(-Errno::ENOENT.raw())
        } else {
            Outcome::Done(i32::try_from(n).unwrap_or(i32::MAX))
        }
    }

    /// A read, readv or recv (with `MSG_*` `flags`) of up to `len` bytes of `fd` at `offset`,
    /// into the op's buffers in order.
    fn read_into(
        &mut self,
        entry: &mut Entry,
        fd: RawFd,
        len: usize,
        offset: Offset,
        flags: i32,
    ) -> Outcome {
        if self.blocked.contains(&fd) {
            return Outcome::Pending;
        }
        let available = match self.world.readable(fd, offset) {
            Err(e) => return Outcome::Done(-e.raw()),
            // A descriptor nobody set up reads as an empty file.
            Ok(Avail::Loose) => return Outcome::Done(self.inject_error().unwrap_or(0)),
            Ok(Avail::Wait) if len == 0 => 0,
            Ok(Avail::Wait) if flags & libc::MSG_DONTWAIT != 0 => {
                return Outcome::Done(-Errno::EAGAIN.raw());
            }
            Ok(Avail::Wait) => return Outcome::Pending,
            Ok(Avail::Bytes(n)) => n,
        };
        if let Some(res) = self.inject_error() {
            return Outcome::Done(res);
        }
        let n = self.shorten(len.min(available));
        let bytes = if n == 0 {
            Vec::new()
        } else {
            self.world.take(fd, offset, n, flags & libc::MSG_PEEK != 0)
        };
        let copied = entry.op.with(|op| match op.output_bufs_mut() {
            Some(bufs) => scatter(bufs, &bytes),
            None => 0,
        });
        Outcome::Done(i32::try_from(copied).unwrap_or(i32::MAX))
    }

    /// A write, writev or send (with `MSG_*` `flags`) of the op's `len` bytes to `fd` at
    /// `offset`. What it writes is also recorded (see [`written`](Mock::written)).
    fn write_from(
        &mut self,
        entry: &mut Entry,
        fd: RawFd,
        len: usize,
        offset: Offset,
        flags: i32,
    ) -> Outcome {
        if self.blocked.contains(&fd) {
            return Outcome::Pending;
        }
        let room = match self.world.writable(fd) {
            Err(e) => return Outcome::Done(-e.raw()),
            Ok(Avail::Wait) if len == 0 => 0,
            Ok(Avail::Wait) if flags & libc::MSG_DONTWAIT != 0 => {
                return Outcome::Done(-Errno::EAGAIN.raw());
            }
            Ok(Avail::Wait) => return Outcome::Pending,
            // A descriptor nobody set up takes everything (recorded only).
            Ok(Avail::Loose) => usize::MAX,
            Ok(Avail::Bytes(n)) => n,
        };
        if let Some(res) = self.inject_error() {
            return Outcome::Done(res);
        }
        let n = self.shorten(len).min(room).min(i32::MAX as usize);
        if let Offset::At(at) = offset
            && at.saturating_add(n as u64) > MAX_WRITTEN
        {
            // The mock keeps what is written in memory: past its limit, a file too large.
            return Outcome::Done(-libc::EFBIG);
        }
        let sink = self.written.entry(fd).or_default();
        let world = &mut self.world;
        entry.op.peek(|op| {
            let bytes: Cow<'_, [u8]> = match op.input_bufs() {
                Some([one]) => Cow::Borrowed(&one.as_slice()[..n]),
                Some(bufs) => Cow::Owned(gather(bufs, n)),
                None => Cow::Borrowed(&[]),
            };
            match offset {
                Offset::File => sink.extend_from_slice(&bytes),
                Offset::At(at) => {
                    let at = usize::try_from(at).unwrap_or(usize::MAX);
                    let end = at.saturating_add(n);
                    if sink.len() < end {
                        sink.resize(end, 0);
                    }
                    sink[at..end].copy_from_slice(&bytes);
                }
            }
            world.put(fd, offset, &bytes);
        });
        Outcome::Done(n as i32)
    }

    /// Retries the ops in flight from earlier steps (timers due, fds unblocked, pipes fed,
    /// handlers that may answer now).
    fn poll_pending(&mut self) {
        let pending = core::mem::take(&mut self.pending);
        for entry in pending {
            self.attempt(entry);
        }
    }

    /// Retries the default-handled ops that wait on the world (a recv, an accept, a poll,
    /// ...) for as long as retrying completes some: an op consumed in this step (a send, a
    /// connect, a close) may have made an earlier one ready.
    fn settle(&mut self) {
        loop {
            let before = self.stats.completed;
            let pending = core::mem::take(&mut self.pending);
            for entry in pending {
                let waits_on_world = self.handlers[entry.kind.index()].is_none()
                    && entry.deadline.is_none()
                    && !entry.wake;
                if waits_on_world {
                    self.attempt(entry);
                } else {
                    self.pending.push(entry);
                }
            }
            if self.stats.completed == before {
                break;
            }
        }
    }

    /// Completes the timers due by now; other pending ops are left alone.
    fn expire_timers(&mut self) {
        let now = self.now;
        let (due, kept): (Vec<Entry>, Vec<Entry>) = core::mem::take(&mut self.pending)
            .into_iter()
            .partition(|e| e.deadline.is_some_and(|d| d <= now));
        self.pending = kept;
        for entry in due {
            self.complete(entry, -Errno::ETIME.raw());
        }
    }

    fn flush_overflow(&mut self) {
        while self.cq.len() < self.cq_entries as usize {
            match self.overflow.pop_front() {
                Some(cqe) => self.cq.push_back(cqe),
                None => break,
            }
        }
    }
}

/// What [`Ring::backend_mut`](xuring_core::Ring::backend_mut) gives for a mock: its handlers,
/// byte sources, held completions and clock, to steer; everything of [`Mock`] that only reads
/// through `Deref`. It cannot replace the mock or drive it (push, enter, reap): those stay
/// the ring's, so a test cannot make the ring and its backend disagree about what is in
/// flight.
pub struct MockControl<'a>(&'a mut Mock);

impl core::ops::Deref for MockControl<'_> {
    type Target = Mock;

    fn deref(&self) -> &Mock {
        self.0
    }
}

impl fmt::Debug for MockControl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MockControl").field(&*self.0).finish()
    }
}

impl MockControl<'_> {
    /// Calls `watch` with each descriptor the ring closes because no callback received it
    /// (a completed open, accept or socket whose ring was dropped first; see
    /// [`Mock::closed_undelivered`]). That happens in the ring's teardown, when the mock goes
    /// too: this is how a test sees it.
    pub fn on_undelivered_close(&mut self, watch: impl FnMut(RawFd) + 'static) {
        self.0.undelivered_close_watch = Some(Box::new(watch));
    }

    // ----- handlers and byte sources -----

    /// Sets the handler for `kind`, replacing any earlier one. It is called when an op of that
    /// kind is consumed, and again at each `enter` while it answers [`Reply::Pending`].
    ///
    /// ```
    /// use xuring_core::{Context, Errno, Offset, Ring, RunCondition};
    /// use xuring_mock::{MockRingExt, OpKind, Reply};
    ///
    /// let mut ring = Ring::init_mock();
    /// ring.backend_mut().handle(OpKind::Read, |req| match req.fd {
    ///     Some(3) => Reply::Bytes(b"hello".to_vec()),
    ///     _ => Reply::Err(Errno::EBADF),
    /// });
    /// ring.read(3, vec![0; 16], Offset::File, Context::default());
    /// ring.run(RunCondition::UntilDone)?;
    /// # Ok::<(), xuring_core::RingError>(())
    /// ```
    pub fn handle(&mut self, kind: OpKind, handler: impl FnMut(&Request<'_>) -> Reply + 'static) {
        self.0.handlers[kind.index()] = Some(Box::new(handler));
    }

    /// Removes the handler for `kind`: the defaults apply again.
    pub fn clear_handler(&mut self, kind: OpKind) {
        self.0.handlers[kind.index()] = None;
    }

    /// Makes `fd` a file holding `data` (one no path names): reads at [`Offset::File`] read on
    /// from the current position, reads at [`Offset::At`] from that offset; the end reads as
    /// EOF. Writes go into it too. Whatever `fd` was before is closed.
    pub fn set_file(&mut self, fd: RawFd, data: impl Into<Vec<u8>>) {
        self.0.world.set_file(fd, data.into());
    }

    /// Makes `fd` the read end of an empty pipe whose writer is the test: a read waits (in
    /// flight, cancellable) until bytes are [fed](MockControl::feed) or the writer
    /// [closed](MockControl::close). Whatever `fd` was before is closed.
    pub fn pipe(&mut self, fd: RawFd) {
        self.0.world.set_pipe(fd);
    }

    /// Appends bytes for reads of `fd`: into its pipe or connection, onto the end of its
    /// file; an `fd` that is nothing yet becomes a [pipe](Self::pipe) first. Waiting reads
    /// complete at the next `enter`.
    pub fn feed(&mut self, fd: RawFd, data: &[u8]) {
        self.0.world.feed(fd, data);
    }

    /// Closes the writing end of `fd`'s pipe (or the peer of `fd`'s connection): once its
    /// bytes are read, reads return 0. (The op `Ring::close` closes `fd` itself.)
    pub fn close(&mut self, fd: RawFd) {
        self.0.world.hang_up(fd);
    }

    // ----- the world: files, pipes, sockets -----

    /// A regular file at `path` holding `data`, mode `0o644`, replacing what `path` named;
    /// missing directories above it are made. `open` and `stat` find it. Relative paths
    /// start at `/`.
    ///
    /// ```
    /// use xuring_core::{Context, OpResult, Ring, RunCondition};
    /// use xuring_mock::MockRingExt;
    ///
    /// let mut ring = Ring::init_mock();
    /// ring.backend_mut().add_file("/etc/motd", b"hello");
    /// ring.open(c"/etc/motd", libc::O_RDONLY, 0, Context::default());
    /// ring.stat(c"/etc/motd", Context::default());
    /// ring.run(RunCondition::UntilDone)?;
    /// # Ok::<(), xuring_core::RingError>(())
    /// ```
    ///
    /// # Panics
    ///
    /// If a component of `path` above the file is a file, or its last one is `.` or `..`.
    pub fn add_file(&mut self, path: impl AsRef<[u8]>, data: impl Into<Vec<u8>>) {
        let path = path.as_ref();
        if let Err(e) = self.0.world.add_file(path, data.into(), 0o644) {
            panic!("add_file {:?}: {e:?}", String::from_utf8_lossy(path));
        }
    }

    /// A directory at `path`, and the missing ones above it (like `mkdir -p`).
    ///
    /// # Panics
    ///
    /// If a component of `path` is a file.
    pub fn add_dir(&mut self, path: impl AsRef<[u8]>) {
        let path = path.as_ref();
        if let Err(e) = self.0.world.add_dir(path) {
            panic!("add_dir {:?}: {e:?}", String::from_utf8_lossy(path));
        }
    }

    /// A symbolic link at `path` to `target` (followed by `open` and `stat`, not by `lstat`
    /// or `O_NOFOLLOW`).
    ///
    /// # Panics
    ///
    /// As [`add_file`](Self::add_file).
    pub fn add_symlink(&mut self, path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) {
        let path = path.as_ref();
        if let Err(e) = self.0.world.add_symlink(path, target.as_ref()) {
            panic!("add_symlink {:?}: {e:?}", String::from_utf8_lossy(path));
        }
    }

    /// A new pipe, as `pipe(2)` makes one: `(read end, write end)`, both fresh descriptors.
    /// Closing the write end (with `Ring::close`) makes reads return 0 once it is drained;
    /// closing the read end makes writes fail with `EPIPE`.
    pub fn pipe_pair(&mut self) -> (RawFd, RawFd) {
        self.0.world.pipe_pair()
    }

    /// A stream socket listening at `addr` (a free port if its port is 0; see
    /// [`Mock::local_addr`]): a `connect` to that address queues a connection, an `accept`
    /// on the returned descriptor takes it.
    ///
    /// ```
    /// use xuring_core::{Context, Ring, RunCondition};
    /// use xuring_mock::MockRingExt;
    ///
    /// let mut ring = Ring::init_mock();
    /// let listener = ring.backend_mut().listen("127.0.0.1:8080".parse().unwrap());
    /// ring.accept(listener, Context::default()); // waits for a connection
    /// let fd = ring.backend_mut().socket(libc::AF_INET, libc::SOCK_STREAM);
    /// ring.connect(fd, "127.0.0.1:8080".parse().unwrap(), Context::default());
    /// ring.run(RunCondition::UntilDone)?;
    /// # Ok::<(), xuring_core::RingError>(())
    /// ```
    ///
    /// # Panics
    ///
    /// If another mock socket listens at `addr` already (`EADDRINUSE`).
    pub fn listen(&mut self, addr: SocketAddr) -> RawFd {
        match self.0.world.listen(addr) {
            Ok(fd) => fd,
            Err(e) => panic!("listen {addr}: {e:?}"),
        }
    }

    /// A new socket, as the `socket` op makes one (without going through the ring).
    ///
    /// # Panics
    ///
    /// If the op would fail (a domain or type the mock does not have).
    pub fn socket(&mut self, domain: i32, ty: i32) -> RawFd {
        match self.0.world.socket(domain, ty, 0) {
            Ok(fd) => fd,
            Err(e) => panic!("socket({domain}, {ty}): {e:?}"),
        }
    }

    /// Reads and writes (readv, writev, recv, send, splice) on `fd` stay in flight
    /// (cancellable) until [`unblock_fd`].
    ///
    /// [`unblock_fd`]: Self::unblock_fd
    pub fn block_fd(&mut self, fd: RawFd) {
        self.0.blocked.insert(fd);
    }

    /// Lets the ops on `fd` proceed at the next `enter`.
    pub fn unblock_fd(&mut self, fd: RawFd) {
        self.0.blocked.remove(&fd);
    }

    // ----- holding completions -----

    /// While `hold` is on, completions are produced (the op is done: a cancel no longer finds
    /// it) but not posted to the CQ until [released](MockControl::release_held). Models completions
    /// the kernel has not posted yet, to stage cancel races.
    pub fn hold(&mut self, hold: bool) {
        self.0.hold = hold;
    }

    /// Posts every held completion now. Returns how many.
    pub fn release_held(&mut self) -> usize {
        self.release_held_where(|_| true)
    }

    /// Posts the held completions `keep` selects, in order. Returns how many.
    pub fn release_held_where(&mut self, mut select: impl FnMut(&Completion) -> bool) -> usize {
        let mut released = 0;
        let mut kept = VecDeque::new();
        while let Some(cqe) = self.0.held.pop_front() {
            if select(&cqe.completion) {
                self.0.post_cq(cqe);
                released += 1;
            } else {
                kept.push_back(cqe);
            }
        }
        self.0.held = kept;
        released
    }

    // ----- time -----

    /// Moves virtual time forward; timers due by then complete at the next `enter`.
    pub fn advance(&mut self, by: Duration) {
        self.0.now = self.0.now.saturating_add(by);
    }
}

// SAFETY: the mock reports a `user_data` once, when it produces that op's completion, after
// dropping its `OpPtr` (see `OpPtr`); duplicates come after the original, when the ring no
// longer has that id in flight, and foreign values are ones no task can have
// (`foreign_user_data`). `Control` is `MockControl`, which neither hands out `&mut Mock` nor
// pushes, enters or reaps. Dropping the mock drops its `OpPtr`s without touching the ops.
#[allow(unsafe_code)]
unsafe impl Backend for Mock {
    type Control<'a> = MockControl<'a>;

    fn control(&mut self) -> MockControl<'_> {
        MockControl(self)
    }

    fn stops_on_drop(&self) -> bool {
        // Ops run only inside `enter`: once the mock is gone, nothing touches them, unless the
        // test asked it to behave like the kernel.
        !self.outlives_drop
    }

    fn socket_fallback(&mut self, domain: i32, ty: i32, protocol: i32) -> i32 {
        self.world
            .socket(domain, ty, protocol)
            .unwrap_or_else(|e| -e.raw())
    }

    fn close_undelivered(&mut self, fd: RawFd) {
        self.world.forget(fd);
        self.closed_undelivered.push(fd);
        if let Some(watch) = &mut self.undelivered_close_watch {
            watch(fd);
        }
    }

    fn features(&self) -> &Features {
        &self.features
    }

    fn space(&self) -> u32 {
        self.sq_entries.saturating_sub(self.sq.len() as u32)
    }

    fn unsubmitted(&self) -> u32 {
        self.sq.len() as u32
    }

    #[allow(unsafe_code)]
    unsafe fn push(&mut self, op: NonNull<Op>, user_data: u64) -> Result<(), SqFull> {
        if self.sq.len() >= self.sq_entries as usize {
            return Err(SqFull);
        }
        // SAFETY: `push`'s own contract is `OpPtr::new`'s; the `OpPtr` is dropped in
        // `Mock::complete`, before the completion is posted, let alone delivered.
        let op = unsafe { OpPtr::new(op) };
        let (kind, wake) = op.peek(|op| match op {
            Op::Timer(t) => (OpKind::Timer, t.is_wake()),
            other => (other.kind(), false),
        });
        if !self.seen.insert(user_data) {
            self.reused.push(user_data);
        }
        self.stats.pushed += 1;
        self.undelivered += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.sq.push_back(Entry {
            op,
            user_data,
            seq,
            kind,
            wake,
            deadline: None,
            polls: 0,
        });
        Ok(())
    }

    fn enter(&mut self, min_complete: u32, timeout: Option<Timespec>) -> Result<(), Errno> {
        self.stats.enters += 1;
        // Injected faults never strike twice in a row, so a ring that retries always gets on.
        if !self.last_enter_faulted {
            if self.rng.chance(self.faults.enter_eintr) {
                self.last_enter_faulted = true;
                self.stats.enter_eintr += 1;
                return Err(Errno::EINTR);
            }
            if self.rng.chance(self.faults.enter_ebusy) {
                self.last_enter_faulted = true;
                self.stats.enter_ebusy += 1;
                return Err(Errno::EBUSY);
            }
        }
        self.last_enter_faulted = false;
        self.flush_overflow();
        if !self.overflow.is_empty() {
            // The CQ is still full of completions the ring has not reaped: like the kernel,
            // refuse to submit more until it does.
            self.stats.enter_ebusy += 1;
            return Err(Errno::EBUSY);
        }
        let limit = timeout.map(|t| add(self.now, t));

        // Ops in flight from earlier steps first, then what was pushed since.
        self.poll_pending();
        let mut take = self.sq.len();
        if take > 1 && self.rng.chance(self.faults.partial_submit) {
            self.stats.partial_submits += 1;
            take = 1 + self.rng.below(take as u64 - 1) as usize;
        }
        for _ in 0..take {
            let Some(entry) = self.sq.pop_front() else {
                break;
            };
            self.attempt(entry);
        }
        self.settle();
        if self.rng.chance(self.faults.foreign) {
            let user_data = self.foreign_user_data();
            self.batch.push(Cqe {
                completion: Completion {
                    user_data,
                    res: 0,
                    flags: 0,
                },
                seq: u64::MAX,
                origin: Origin::Foreign,
            });
        }
        self.post_batch();

        // Wait: only timers can still complete something on their own.
        while (self.posted() as u64) < u64::from(min_complete) {
            let next = self.next_deadline();
            if let Some(at) = next.filter(|&at| limit.is_none_or(|l| at <= l)) {
                if at > self.now {
                    self.now = at;
                    self.stats.time_jumps += 1;
                }
                self.expire_timers();
                self.post_batch();
                continue;
            }
            if self.auto_release && !self.held.is_empty() {
                self.stats.auto_released += self.control().release_held() as u64;
                continue;
            }
            if let Some(l) = limit {
                if l > self.now {
                    self.now = l;
                    self.stats.time_jumps += 1;
                }
                return Err(Errno::ETIME);
            }
            return Err(DEADLOCK);
        }
        Ok(())
    }

    fn reap(&mut self, mut sink: impl FnMut(Completion)) {
        while let Some(cqe) = self.cq.pop_front() {
            match cqe.origin {
                Origin::Real => {
                    self.stats.delivered += 1;
                    self.undelivered -= 1;
                }
                Origin::Duplicate => self.stats.duplicates_delivered += 1,
                Origin::Foreign => self.stats.foreign_delivered += 1,
                Origin::Message => self.stats.messages_delivered += 1,
            }
            if let Some(trace) = &mut self.trace {
                trace.push(cqe.completion);
            }
            sink(cqe.completion);
        }
    }

    fn now(&self) -> Timespec {
        self.now
    }

    fn overflowed(&self) -> bool {
        !self.overflow.is_empty()
    }
}
