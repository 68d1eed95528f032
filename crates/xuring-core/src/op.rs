//! What every operation is made of, and the macro that declares one.
//!
//! An operation is declared once, in [`ops`](crate::ops), with `declare_ops!` (below): its
//! arguments (the memory the kernel uses, owned by the task), its result type, its opcode, the
//! arguments it refuses, its SQE preparation, its result decoding, what happens where its
//! opcode is missing, and the `Ring` methods that submit it. Everything else follows from that
//! one entry: the [`Op`](crate::Op) variant and its argument struct, the
//! [`OpKind`](crate::OpKind) tag that [`OpResult`](crate::OpResult) shares, the dispatch the
//! engine and the io_uring backend use, the choice between the 5.6 floor and a per-op check
//! (from the opcode's kernel version), the fuzzers' list and the `docs/kernel-compat.md` row.
//! A backend that interprets ops (the mock) matches on [`Op`](crate::Op) without a wildcard,
//! so an op it does not model does not compile either.
//!
//! This module holds the pieces entries share: the argument types ([`Offset`], [`CPath`],
//! [`Message`], [`Accepted`]), the SQE helper every read/write-style op uses
//! ([`prep_rw`]) and the refusal checks.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use xuring_sys::Opcode;
use xuring_sys::abi::io_uring_sqe;

use crate::BufferPool;

/// Where a read or write happens in the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Offset {
    /// At the file's current position, which the operation advances (like `read(2)`); the
    /// only choice for pipes and sockets.
    #[default]
    File,
    /// At this byte offset, leaving the position alone (like `pread(2)`).
    At(u64),
}

impl Offset {
    /// The SQE `off` value: `-1` selects the current position (`FEAT_RW_CUR_POS`, 5.6).
    pub const fn to_raw(self) -> u64 {
        match self {
            Offset::File => u64::MAX,
            Offset::At(n) => n,
        }
    }
}

/// A path the kernel reads while the task is in flight: `'static` or owned by the task.
#[derive(Clone, Debug)]
pub enum CPath {
    /// A string that lives forever, e.g. `c"/dev/null"`.
    Static(&'static CStr),
    /// A string the task owns until it completes.
    Owned(CString),
}

impl CPath {
    /// The NUL-terminated bytes.
    pub fn as_c_str(&self) -> &CStr {
        match self {
            CPath::Static(s) => s,
            CPath::Owned(s) => s,
        }
    }
}

impl From<&'static CStr> for CPath {
    fn from(s: &'static CStr) -> CPath {
        CPath::Static(s)
    }
}

impl From<CString> for CPath {
    fn from(s: CString) -> CPath {
        CPath::Owned(s)
    }
}

/// `struct open_how` (`linux/openat2.h`): what `openat2` reads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenHow {
    /// `O_*` flags.
    pub flags: u64,
    /// Permission bits for a created file.
    pub mode: u64,
    /// `RESOLVE_*` flags.
    pub resolve: u64,
}

const _: () = assert!(core::mem::size_of::<OpenHow>() == 24);

/// A value posted into a ring by another ring's `msg_ring`, or by a `Thread`'s fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    /// The 63-bit payload (the CQE's `user_data` without its top bit).
    pub data: u64,
    /// The 32-bit value (the CQE's `res`).
    pub value: i32,
}

/// What a [`recv_from`](crate::Ring::recv_from) got: a byte count and where they came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes received: a datagram longer than the buffer is cut to it, as `recvfrom(2)` does,
    /// except with `MSG_TRUNC` in the flags, where this is the datagram's whole length, which
    /// can be more than the buffer holds (only `len.min(buf.len())` bytes are in it).
    pub len: usize,
    /// The sender (`None` for families other than IPv4/IPv6, or a connected stream socket,
    /// which reports none).
    pub peer: Option<std::net::SocketAddr>,
}

/// The peer of an accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The new connection.
    pub fd: RawFd,
    /// The peer's address (`None` for families other than IPv4/IPv6).
    pub peer: Option<std::net::SocketAddr>,
}

/// How a cancel reaches its target in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CancelVia {
    /// `IORING_OP_TIMEOUT_REMOVE`: the target is a timer.
    TimeoutRemove,
    /// `IORING_OP_ASYNC_CANCEL`: any other target.
    AsyncCancel,
}

/// What SQE preparation may need besides the op: the ring's registered buffers.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrepEnv<'a> {
    /// The buffer pool, when its buffers are registered with the kernel.
    pub fixed: Option<&'a BufferPool>,
}

/// The shape most ops share (liburing's `io_uring_prep_rw`): opcode, fd, address, length and
/// offset. An op's `prep` sets whatever else it needs after this.
#[inline(always)]
pub fn prep_rw(sqe: &mut io_uring_sqe, opcode: Opcode, fd: RawFd, addr: u64, len: u32, off: u64) {
    sqe.opcode = opcode as u8;
    sqe.fd = fd;
    sqe.addr = addr;
    sqe.len = len;
    sqe.off = off;
}

/// A buffer length as the SQE's 32-bit `len` (the kernel moves at most that much at once).
#[inline(always)]
pub(crate) fn sqe_len(len: usize) -> u32 {
    len.min(u32::MAX as usize) as u32
}

/// `Some(EPERM)` for a descriptor the runtime owns (a [`Thread`](crate::Thread) mailbox's
/// eventfd or ring fd duplicate): user ops must not close, read or otherwise use it. Such an
/// op completes with `EPERM` without reaching the kernel.
#[inline]
pub(crate) fn runtime_fd(fd: RawFd) -> Option<i32> {
    xuring_sys::runtime_fds::is_claimed(fd).then_some(libc::EPERM)
}

/// `Some(EINVAL)` for an offset the kernel would misread: `-1` (`u64::MAX`) means "the file
/// position" to it, and anything above `i64::MAX` is a negative `loff_t`. Like `pread(2)` with
/// such an offset, the op fails with `EINVAL` (without reaching the kernel).
#[inline]
pub(crate) fn bad_offset(offset: Offset) -> Option<i32> {
    matches!(offset, Offset::At(n) if n > i64::MAX as u64).then_some(libc::EINVAL)
}

/// `Some(EFAULT)` for a buffer the kernel would have to write but may not (`&'static` data,
/// `IoBuf::from_raw_parts`), like `read(2)` into read-only memory.
#[inline]
pub(crate) fn read_only(writable: bool) -> Option<i32> {
    (!writable).then_some(libc::EFAULT)
}

/// An op's result type, named by the op's argument struct: what
/// [`Task::output`](crate::Task::output) returns for it, so a callback for a read gets the
/// read's `Result<usize, Errno>` without matching the other variants of
/// [`OpResult`](crate::OpResult). Implemented by every op in [`ops`](crate::ops).
pub trait Outcome {
    /// What the op produces on success.
    type Output: Copy;

    /// This op's result, if `result` is one (`None` for another op's).
    fn of(result: &crate::OpResult) -> Option<Result<Self::Output, crate::Errno>>;
}

/// What the engine needs to know about one declared op's arguments before it queues them
/// (implemented by `declare_ops!` for each argument struct).
pub(crate) trait Declared: Into<crate::Op> {
    /// The op's tag.
    const KIND: crate::OpKind;
    /// Arguments the kernel must never see: the op completes with `-errno` instead.
    fn refuse(&self) -> Option<i32>;
    /// Whether the op uses memory its caller owns (a raw [`IoBuf`](crate::IoBuf)).
    fn borrows_memory(&self) -> bool;
}

/// Declares the operations: see the module docs, and [`ops`](crate::ops) for the entries.
///
/// Each entry reads:
///
/// ```text
/// /// docs of the op
/// Name -> Output {
///     /// field docs
///     [pub] field: Type,
///     ...
/// }
/// opcode: Opcode;                  // whose kernel version decides floor or per-op check
/// also: Opcode, ...;               // optional: other opcodes its `prep` may submit
/// buffer: input|output field;      // optional: the op's single IoBuf, which the kernel reads
///                                  // (input: a write's data) or fills (output: a read's)
/// iovecs: input|output field;      // optional: the op's IoVecs, likewise
/// note: "...";                     // optional: how it is used, for docs/kernel-compat.md
/// custom: method, ...;             // optional: Ring methods written by hand that submit it
/// refuse(op) { Option<errno> }     // bad arguments: completes with the errno, never submitted
/// prep(op, sqe, env) { ... }       // fills the SQE (`&mut self`, `&mut io_uring_sqe`, `PrepEnv`)
/// decode(op, res) { Result<Output, Errno> }   // from the CQE's `res` as `Result<u32, Errno>`
/// created(out) { fd }              // optional: the fd a success created, owned by the receiver
/// missing(op, backend) "what it does" { Option<res> }  // optional: where the opcode is missing, or the
///                                  // op was queued marked: `Some(res)` completes it, `None`
///                                  // submits it (default: `Some(-EOPNOTSUPP)`)
/// example { Name { ... } }         // a valid instance, for tests and fuzzers
/// methods {
///     /// docs
///     fn name(args..) [with engine] { Name { ... } }   // `Ring::name(args.., ctx)`
/// }
/// ```
macro_rules! declare_ops {
    ($(
        $(#[$doc:meta])*
        $Kind:ident -> $Out:ty {
            $( $(#[$fdoc:meta])* $fvis:vis $field:ident : $fty:ty ),* $(,)?
        }
        opcode: $opcode:ident;
        $(also: $($also:ident),+;)?
        $(buffer: $bdir:ident $buf:ident;)?
        $(iovecs: $idir:ident $iov:ident;)?
        $(note: $note:literal;)?
        $(custom: $($custom:ident),+;)?
        refuse($rop:ident) $refuse:block
        prep($pop:ident, $sqe:ident, $env:ident) $prep:block
        decode($dop:ident, $res:ident) $decode:block
        $(created($cout:ident) $created:block)?
        $(missing($mop:ident, $mback:ident) $mdesc:literal $missing:block)?
        example $example:block
        methods {
            $(
                $(#[$mdoc:meta])*
                fn $method:ident ( $($arg:ident : $aty:ty),* $(,)? ) $(with $eng:ident)? $body:block
            )*
        }
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $Kind {
                $( $(#[$fdoc])* $fvis $field: $fty, )*
            }

            impl From<$Kind> for Op {
                #[inline(always)]
                fn from(op: $Kind) -> Op {
                    Op::$Kind(op)
                }
            }

            impl $crate::op::Outcome for $Kind {
                type Output = $Out;

                #[inline(always)]
                fn of(result: &OpResult) -> Option<Result<$Out, Errno>> {
                    match result {
                        OpResult::$Kind(r) => Some(*r),
                        _ => None,
                    }
                }
            }

            impl $crate::op::Declared for $Kind {
                const KIND: OpKind = OpKind::$Kind;

                #[inline(always)]
                fn refuse(&self) -> Option<i32> {
                    let $rop = self;
                    $refuse
                }

                #[inline(always)]
                fn borrows_memory(&self) -> bool {
                    let _op = self;
                    false
                    $( || _op.$buf.is_borrowed() )?
                    $( || _op.$iov.bufs().iter().any($crate::IoBuf::is_borrowed) )?
                }
            }
        )*

        /// An operation and every argument the kernel reads or writes, owned by its task: what
        /// a [`Backend`](crate::Backend) executes and a mock handler sees. Each variant holds
        /// its op's argument struct of the same name. The ring builds them (through its op
        /// methods); nothing takes one from the caller.
        ///
        /// Deliberately not `#[non_exhaustive]`: a backend that interprets ops (the mock)
        /// matches on every variant, so a new op does not compile there until it is modelled.
        #[derive(Debug)]
        pub enum Op {
            $( $(#[$doc])* $Kind($Kind), )*
        }

        /// Which operation something is: the one tag an [`Op`] and its [`OpResult`] share.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum OpKind {
            $( $(#[$doc])* $Kind, )*
        }

        impl OpKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [OpKind] = &[$(OpKind::$Kind),*];

            /// How many kinds there are.
            pub const COUNT: usize = Self::ALL.len();

            /// The opcode the op submits (a registered-buffer read or write may use the
            /// `_FIXED` variant); its kernel version decides whether the op can run.
            pub const fn opcode(self) -> xuring_sys::Opcode {
                match self {
                    $( OpKind::$Kind => xuring_sys::Opcode::$opcode, )*
                }
            }

            /// Every opcode the op may submit: [`opcode`](Self::opcode) first, then the
            /// variants its preparation picks (`READ_FIXED` for a registered buffer, ...).
            pub const fn opcodes(self) -> &'static [xuring_sys::Opcode] {
                match self {
                    $( OpKind::$Kind => &[
                        xuring_sys::Opcode::$opcode,
                        $($(xuring_sys::Opcode::$also,)+)?
                    ], )*
                }
            }

            /// The kind's name, e.g. `"Read"`.
            pub const fn name(self) -> &'static str {
                match self {
                    $( OpKind::$Kind => stringify!($Kind), )*
                }
            }

            /// The [`Ring`](crate::Ring) methods that submit it.
            pub const fn methods(self) -> &'static [&'static str] {
                match self {
                    $( OpKind::$Kind => &[$(stringify!($method),)* $($(stringify!($custom),)+)?], )*
                }
            }

            /// What the op does where its opcode is missing, if it has a fallback (otherwise it
            /// completes with `EOPNOTSUPP` there).
            pub const fn fallback(self) -> Option<&'static str> {
                match self {
                    $( OpKind::$Kind => declare_ops!(@fallback $($mdesc)?), )*
                }
            }

            /// How the op is used, where that is more than its methods say.
            pub const fn note(self) -> Option<&'static str> {
                match self {
                    $( OpKind::$Kind => declare_ops!(@fallback $($note)?), )*
                }
            }

            /// A valid op of this kind with arbitrary arguments, never submitted: for tests and
            /// fuzzers that must cover every kind (e.g. decoding every kind's results).
            #[doc(hidden)]
            pub fn example(self) -> Op {
                match self {
                    $( OpKind::$Kind => Op::$Kind($example), )*
                }
            }

            /// The index of this kind in [`ALL`](Self::ALL).
            #[inline]
            pub const fn index(self) -> usize {
                self as usize
            }
        }

        /// The outcome of an operation, delivered in [`Task::result`](crate::Task::result)
        /// before its callback runs: one variant per [`OpKind`], named alike, each carrying
        /// `Result<T, Errno>` with the operation's natural `T`; and [`Message`](Self::Message),
        /// a message from another ring delivered to the [message
        /// handler](crate::Ring::on_message).
        ///
        /// An op the kernel does not support (by probe, or by the ring's kernel level)
        /// completes with `EOPNOTSUPP` without being submitted.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum OpResult {
            $( $(#[$doc])* $Kind(Result<$Out, Errno>), )*
            /// A message received from another ring (delivered to the message handler).
            Message(Message),
        }

        impl OpResult {
            /// The kind of op this is the result of; `None` for a received message.
            pub fn kind(&self) -> Option<OpKind> {
                match self {
                    $( OpResult::$Kind(_) => Some(OpKind::$Kind), )*
                    OpResult::Message(_) => None,
                }
            }

            /// The errno, if the op failed.
            pub fn err(&self) -> Option<Errno> {
                match self {
                    $( OpResult::$Kind(r) => r.as_ref().err().copied(), )*
                    OpResult::Message(_) => None,
                }
            }

            /// The descriptor a successful open, accept or socket created: the receiver owns
            /// it.
            pub fn created_fd(&self) -> Option<RawFd> {
                match self {
                    $( OpResult::$Kind(_r) => {
                        $( if let Ok($cout) = *_r { return Some($created); } )?
                        None
                    } )*
                    OpResult::Message(_) => None,
                }
            }
        }

        impl Default for Op {
            /// A noop: what a free task holds (it owns nothing).
            fn default() -> Op {
                Op::Noop(Noop {})
            }
        }

        impl Op {
            /// Which operation this is.
            #[inline(always)]
            pub fn kind(&self) -> OpKind {
                match self {
                    $( Op::$Kind(_) => OpKind::$Kind, )*
                }
            }

            /// Whether the op owns memory that must be dropped when its task is recycled. Ops
            /// that own nothing are left in place and overwritten by the next op without a
            /// drop, which keeps recycling a noop or a timer to a few stores.
            #[inline(always)]
            pub fn owns_resources(&self) -> bool {
                match self {
                    $( Op::$Kind(_) => core::mem::needs_drop::<$Kind>(), )*
                }
            }

            /// Whether the op uses memory its caller owns (a raw [`IoBuf`](crate::IoBuf), see
            /// [`IoBuf::is_borrowed`](crate::IoBuf::is_borrowed)).
            pub fn borrows_memory(&self) -> bool {
                match self {
                    $( Op::$Kind(op) => $crate::op::Declared::borrows_memory(op), )*
                }
            }

            /// The single buffer this op owns, if any.
            pub fn buf(&self) -> Option<&$crate::IoBuf> {
                match self {
                    $( Op::$Kind(_op) => {
                        $( return Some(&_op.$buf); )?
                        #[allow(unreachable_code)]
                        None
                    } )*
                }
            }

            /// The single buffer this op owns, mutably (for a backend that fills it).
            pub fn buf_mut(&mut self) -> Option<&mut $crate::IoBuf> {
                match self {
                    $( Op::$Kind(_op) => {
                        $( return Some(&mut _op.$buf); )?
                        #[allow(unreachable_code)]
                        None
                    } )*
                }
            }

            /// The vectored buffers this op owns, if any.
            pub fn iovecs(&self) -> Option<&$crate::IoVecs> {
                match self {
                    $( Op::$Kind(_op) => {
                        $( return Some(&_op.$iov); )?
                        #[allow(unreachable_code)]
                        None
                    } )*
                }
            }

            /// The buffers whose bytes the kernel reads (a write's, a send's, a writev's), in
            /// order; `None` for ops without such buffers.
            pub fn input_bufs(&self) -> Option<&[$crate::IoBuf]> {
                match self {
                    $( Op::$Kind(_op) => {
                        $( if declare_ops!(@is input $bdir) {
                            return Some(core::slice::from_ref(&_op.$buf));
                        } )?
                        $( if declare_ops!(@is input $idir) {
                            return Some(_op.$iov.bufs());
                        } )?
                        None
                    } )*
                }
            }

            /// The buffers the kernel fills (a read's, a receive's, a readv's), in order, for a
            /// backend that emulates the op; `None` for ops without such buffers.
            pub fn output_bufs_mut(&mut self) -> Option<&mut [$crate::IoBuf]> {
                match self {
                    $( Op::$Kind(_op) => {
                        $( if declare_ops!(@is output $bdir) {
                            return Some(core::slice::from_mut(&mut _op.$buf));
                        } )?
                        $( if declare_ops!(@is output $idir) {
                            return Some(_op.$iov.bufs_mut());
                        } )?
                        None
                    } )*
                }
            }

            /// Takes the op's single buffer out, leaving an empty one in its place.
            pub(crate) fn take_buf(&mut self) -> Option<$crate::IoBuf> {
                match self {
                    $( Op::$Kind(_op) => {
                        $( return Some(core::mem::take(&mut _op.$buf)); )?
                        #[allow(unreachable_code)]
                        None
                    } )*
                }
            }

            /// Takes the op's vectored buffers out, leaving none in their place.
            pub(crate) fn take_iovecs(&mut self) -> Option<$crate::IoVecs> {
                match self {
                    $( Op::$Kind(_op) => {
                        $( return Some(core::mem::take(&mut _op.$iov)); )?
                        #[allow(unreachable_code)]
                        None
                    } )*
                }
            }

            /// Fills `sqe` (zeroed but for what the caller set) for this op. Addresses in it
            /// point into the op and the memory it owns: valid while the op stays where it is.
            #[inline(always)]
            pub(crate) fn prep(&mut self, sqe: &mut io_uring_sqe, env: PrepEnv<'_>) {
                match self {
                    $( Op::$Kind(op) => {
                        let $pop = op;
                        let $sqe = sqe;
                        let $env = env;
                        $prep
                    } )*
                }
            }

            /// Turns a completion's `res` (`>= 0` success, `-errno` failure) into this op's
            /// result.
            pub fn decode(&self, res: i32) -> OpResult {
                let mut out = None;
                self.decode_into(res, &mut out);
                match out {
                    Some(result) => result,
                    None => unreachable!("decode_into always stores a result"),
                }
            }

            /// [`decode`](Self::decode) straight into `out`. Each arm stores only its own
            /// variant, so a noop's completion writes a tag, not the whole `OpResult`.
            #[inline(always)]
            pub(crate) fn decode_into(&self, res: i32, out: &mut Option<OpResult>) {
                let r = Errno::result(res);
                match self {
                    $( Op::$Kind(op) => {
                        let $dop = op;
                        let $res = r;
                        *out = Some(OpResult::$Kind($decode));
                    } )*
                }
            }

            /// For an op whose task was marked at queue time (its opcode is missing here, or
            /// it decides at submission): `Some(res)` completes it locally with `res`, `None`
            /// submits it.
            #[cold]
            pub(crate) fn missing<B: $crate::Backend>(&self, backend: &mut B) -> Option<i32> {
                match self {
                    $( Op::$Kind(op) => declare_ops!(@missing op, backend, $( ($mop, $mback) $missing )?), )*
                }
            }
        }

        impl<B: $crate::Backend> $crate::Ring<B> {
            $($(
                $(#[$mdoc])*
                #[inline]
                #[allow(clippy::too_many_arguments)]
                pub fn $method(&mut self, $($arg: $aty,)* ctx: $crate::Context<B>) -> $crate::TaskHandle<B> {
                    declare_ops!(@submit self, ctx, $Kind, $($eng)?, $body)
                }
            )*)*
        }
    };
    (@missing $op:ident, $backend:ident, ($mop:ident, $mback:ident) $body:block) => {{
        let $mop = $op;
        let $mback = $backend;
        $body
    }};
    (@is input input) => { true };
    (@is output output) => { true };
    (@is input output) => { false };
    (@is output input) => { false };
    (@fallback $desc:literal) => {
        Some($desc)
    };
    (@fallback) => {
        None
    };
    (@missing $op:ident, $backend:ident, ) => {{
        let _ = ($op, $backend);
        Some(-libc::EOPNOTSUPP)
    }};
    (@submit $ring:ident, $ctx:ident, $Kind:ident, $eng:ident, $body:block) => {{
        let $eng = $ring.engine();
        let op: $Kind = $body;
        $eng.submit(op, $ctx)
    }};
    (@submit $ring:ident, $ctx:ident, $Kind:ident, , $body:block) => {{
        let op: $Kind = $body;
        $ring.engine().submit(op, $ctx)
    }};
}
