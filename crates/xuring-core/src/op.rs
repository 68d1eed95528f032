//! `Op`: an operation with every argument the kernel reads or writes, owned by its task.
//!
//! This is the interface between [`Ring`](crate::Ring) and a [`Backend`](crate::Backend):
//! the ring stores an `Op` in a task, at an address that does not change until the task
//! completes, and hands the backend a pointer to it. The real backend turns it into an SQE
//! (`backend::uring::prep`, one exhaustive `match`); the mock interprets it directly. Turning a
//! completion's `res` back into an [`OpResult`] is [`Op::decode`], also one exhaustive `match`,
//! so a new op without a decoder does not compile.

use std::os::fd::RawFd;

use xuring_sys::abi::__kernel_timespec;
use xuring_sys::{Errno, Opcode};

use crate::{IoBuf, OpResult, TaskId};

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

/// How a cancel reaches its target in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelVia {
    /// `IORING_OP_TIMEOUT_REMOVE`: the target is a timer.
    TimeoutRemove,
    /// `IORING_OP_ASYNC_CANCEL`: any other target.
    AsyncCancel,
}

/// An operation and its kernel-visible arguments.
#[derive(Debug, Default)]
#[non_exhaustive]
pub enum Op {
    /// A free task: no operation.
    #[default]
    Idle,
    /// `IORING_OP_NOP`.
    Noop,
    /// `IORING_OP_TIMEOUT` with no completion count: fires after `ts` (or at `ts`).
    Timer {
        /// The time the kernel reads.
        ts: __kernel_timespec,
        /// An absolute `CLOCK_MONOTONIC` time instead of a relative one.
        absolute: bool,
    },
    /// An internal absolute timer that bounds a deadline wait on kernels without
    /// `FEAT_EXT_ARG`; submitted like an absolute `Timer`.
    Wake {
        /// The deadline on `CLOCK_MONOTONIC`.
        ts: __kernel_timespec,
    },
    /// `IORING_OP_READ` (or `READ_FIXED` with a registered pool buffer).
    Read {
        /// The file to read.
        fd: RawFd,
        /// Where the bytes go.
        buf: IoBuf,
        /// Where in the file.
        offset: Offset,
    },
    /// `IORING_OP_WRITE` (or `WRITE_FIXED` with a registered pool buffer).
    Write {
        /// The file to write.
        fd: RawFd,
        /// The bytes.
        buf: IoBuf,
        /// Where in the file.
        offset: Offset,
    },
    /// Cancel one task in flight.
    Cancel {
        /// The target's `user_data`.
        target: TaskId,
        /// Which opcode cancels it.
        via: CancelVia,
    },
    /// `IORING_OP_ASYNC_CANCEL` with `ALL | ANY` (5.19): every request in flight.
    CancelAny {
        /// Tasks already cancelled locally (still queued) by the same `cancel_all`.
        local: u32,
    },
    /// A `cancel_all` waiting for its per-task cancels (kernels without `CANCEL_ALL`).
    CancelAllJoin {
        /// Cancels still outstanding.
        outstanding: u32,
        /// Targets cancelled so far.
        cancelled: u32,
    },
}

impl Op {
    /// The opcode this op submits, if it is submitted at all.
    pub fn opcode(&self) -> Option<Opcode> {
        Some(match self {
            Op::Idle | Op::CancelAllJoin { .. } => return None,
            Op::Noop => Opcode::Nop,
            Op::Timer { .. } | Op::Wake { .. } => Opcode::Timeout,
            Op::Read { .. } => Opcode::Read,
            Op::Write { .. } => Opcode::Write,
            Op::Cancel {
                via: CancelVia::TimeoutRemove,
                ..
            } => Opcode::TimeoutRemove,
            Op::Cancel {
                via: CancelVia::AsyncCancel,
                ..
            }
            | Op::CancelAny { .. } => Opcode::AsyncCancel,
        })
    }

    /// Whether cancelling this op needs `TIMEOUT_REMOVE` rather than `ASYNC_CANCEL`.
    pub(crate) fn is_timer(&self) -> bool {
        matches!(self, Op::Timer { .. } | Op::Wake { .. })
    }

    /// Turns a completion's `res` (`>= 0` success, `-errno` failure) into this op's result.
    pub fn decode(&self, res: i32) -> OpResult {
        let r = Errno::result(res);
        match self {
            Op::Idle | Op::Noop => OpResult::Noop,
            // A timer without a count completes with -ETIME when it expires.
            Op::Timer { .. } | Op::Wake { .. } => OpResult::Timer(match r {
                Err(Errno::ETIME) | Ok(_) => Ok(()),
                Err(e) => Err(e),
            }),
            Op::Read { .. } => OpResult::Read(r.map(|n| n as usize)),
            Op::Write { .. } => OpResult::Write(r.map(|n| n as usize)),
            Op::Cancel { .. } => OpResult::Cancel(r.map(|_| ())),
            Op::CancelAny { local } => OpResult::CancelAll(match r {
                Ok(n) => Ok(n + local),
                // Nothing in flight to cancel in the kernel.
                Err(Errno::ENOENT) => Ok(*local),
                Err(e) => Err(e),
            }),
            Op::CancelAllJoin { cancelled, .. } => OpResult::CancelAll(match r {
                Ok(_) => Ok(*cancelled),
                Err(e) => Err(e),
            }),
        }
    }

    /// The buffer this op owns, if any.
    pub fn buf(&self) -> Option<&IoBuf> {
        match self {
            Op::Read { buf, .. } | Op::Write { buf, .. } => Some(buf),
            _ => None,
        }
    }

    /// Takes the op's buffer out, leaving the op without one.
    pub(crate) fn take_buf(&mut self) -> Option<IoBuf> {
        match core::mem::take(self) {
            Op::Read { buf, .. } | Op::Write { buf, .. } => Some(buf),
            other => {
                *self = other;
                None
            }
        }
    }
}
