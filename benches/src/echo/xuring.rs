//! xuring's echo server: one ring, callbacks, pool buffers.
//!
//! One accept is in flight until the expected connections are in (or, with
//! [`Until::Stopped`], until the stop eventfd is readable: then a `cancel_all` ends every
//! operation in flight and each connection is closed). Each connection owns one
//! [`PoolBuf`] of the ring's pool for its whole life: `recv` into it, then `send` it back with
//! its length set to the bytes received, then `recv` into it again; a short send moves the
//! unsent tail to the front (the only copy, and only then) and sends the rest. The task's
//! `msg` is the connection's index, `userdata` the server's state.
//!
//! # Safety
//!
//! Callbacks reach the server's state through `userdata`, a pointer to a `Box` that
//! [`serve`] declares before the ring, so it is dropped after the ring (and after every task
//! that points to it); it is only accessed through `&`, its fields being `Cell`s and a
//! `RefCell`.

use std::cell::{Cell, RefCell};
use std::net::TcpListener;
use std::os::fd::{AsRawFd as _, RawFd};
use std::ptr::NonNull;

use xuring_core::{
    Context, Executor, IoBuf, Offset, OpResult, PoolBuf, Ring, RingError, RunCondition, Task,
};

use super::{BUF_SIZE, MAX_ACCEPT_ERRORS, ServerStats, Until, ring_entries};
use crate::error::BenchError;
use crate::xuring_ops::state_of;

/// What the callbacks share.
struct State {
    listener: RawFd,
    /// Connections to accept in all ([`Until::Closed`]); `None` until stopped.
    expected: Option<u64>,
    /// Connections open at once, at most.
    slots: usize,
    accepted: Cell<u64>,
    closed: Cell<u64>,
    echoed: Cell<u64>,
    echoes: Cell<u64>,
    errors: Cell<u64>,
    refused: Cell<u64>,
    accept_errors: Cell<u64>,
    /// The stop eventfd has been read: no more accepts, failures are the cancellation's.
    stopping: Cell<bool>,
    /// Each connection's fd, by slot (the tasks' `msg`); -1 for a free slot.
    fds: RefCell<Vec<RawFd>>,
    /// Free slots below `fds.len()`.
    free: RefCell<Vec<u16>>,
}

/// The `msg` of a connection that had no slot: closed at once.
const REFUSED: u16 = u16::MAX;

impl State {
    fn stats(&self) -> ServerStats {
        ServerStats {
            accepted: self.accepted.get(),
            closed: self.closed.get(),
            echoed: self.echoed.get(),
            echoes: self.echoes.get(),
            errors: self.errors.get(),
            refused: self.refused.get(),
        }
    }

    /// Counts a failure, unless it is the stop's doing.
    fn error(&self) {
        if !self.stopping.get() {
            self.errors.set(self.errors.get() + 1);
        }
    }

    /// A slot for a new connection on `fd`, if one is free.
    fn take_slot(&self, fd: RawFd) -> Option<u16> {
        let mut fds = self.fds.borrow_mut();
        let slot = match self.free.borrow_mut().pop() {
            Some(slot) => slot,
            None if fds.len() < self.slots && fds.len() < usize::from(REFUSED) => {
                fds.push(-1);
                (fds.len() - 1) as u16
            }
            None => return None,
        };
        fds[usize::from(slot)] = fd;
        Some(slot)
    }

    /// Whether another accept should be queued.
    fn accepting(&self) -> bool {
        !self.stopping.get() && self.expected.is_none_or(|n| self.accepted.get() < n)
    }

    fn fd(&self, conn: u16) -> Result<RawFd, RingError> {
        self.fds
            .borrow()
            .get(usize::from(conn))
            .copied()
            .ok_or_else(|| RingError::callback("a task for an unknown connection"))
    }
}

fn state(task: &Task) -> Result<&State, RingError> {
    // SAFETY: every task of this server carries a pointer to its boxed `State`, which
    // outlives the ring (see the module's safety notes).
    let state = unsafe { state_of::<State>(task) };
    state.ok_or_else(|| RingError::callback("an echo task without its state"))
}

fn ctx(cb: xuring_core::Callback, conn: u16, task: &Task) -> Context {
    Context {
        cb,
        msg: conn,
        userdata: task.userdata(),
    }
}

fn pool_buf(task: &Task) -> Result<PoolBuf, RingError> {
    task.take_buf()
        .and_then(IoBuf::into_pool_buf)
        .ok_or_else(|| RingError::callback("an echo task without its pool buffer"))
}

fn on_accept(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let state = state(task)?;
    match task.result {
        Some(OpResult::Accept(Ok(accepted))) if state.stopping.get() => {
            // It came in as the server stopped: close it at once.
            state.accepted.set(state.accepted.get() + 1);
            ring.close(accepted.fd, ctx(on_close, REFUSED, task));
        }
        Some(OpResult::Accept(Ok(accepted))) => {
            state.accepted.set(state.accepted.get() + 1);
            match state.take_slot(accepted.fd) {
                Some(conn) => {
                    let buf = ring
                        .buffers()
                        .and_then(|pool| pool.get())
                        .ok_or_else(|| RingError::callback("the buffer pool is empty"))?;
                    ring.recv(accepted.fd, buf, 0, ctx(on_recv, conn, task));
                }
                None => {
                    state.refused.set(state.refused.get() + 1);
                    ring.close(accepted.fd, ctx(on_close, REFUSED, task));
                }
            }
        }
        _ if state.stopping.get() => {}
        _ => {
            state.error();
            state.accept_errors.set(state.accept_errors.get() + 1);
            if state.accept_errors.get() > MAX_ACCEPT_ERRORS {
                return Err(RingError::callback("accept keeps failing"));
            }
        }
    }
    if state.accepting() {
        ring.accept(state.listener, ctx(on_accept, 0, task));
    }
    Ok(())
}

fn on_stop(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let state = state(task)?;
    state.stopping.set(true);
    // Every accept, receive and send in flight ends with -ECANCELED, whose callbacks close
    // their connections.
    ring.cancel_all(ctx(on_cancelled, 0, task));
    Ok(())
}

fn on_cancelled(_ring: &mut Ring, _task: &Task) -> Result<(), RingError> {
    Ok(())
}

fn on_recv(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let state = state(task)?;
    let conn = task.msg();
    let fd = state.fd(conn)?;
    let mut buf = pool_buf(task)?;
    match task.result {
        // Once stopping, whatever arrives ends the connection.
        Some(OpResult::Recv(Ok(n))) if n > 0 && !state.stopping.get() => {
            buf.set_len(n);
            ring.send(fd, buf, 0, ctx(on_send, conn, task));
        }
        other => {
            // 0: the peer closed; anything else is an error. Either way, close our end.
            if !matches!(other, Some(OpResult::Recv(Ok(0)))) {
                state.error();
            }
            drop(buf);
            ring.close(fd, ctx(on_close, conn, task));
        }
    }
    Ok(())
}

fn on_send(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let state = state(task)?;
    let conn = task.msg();
    let fd = state.fd(conn)?;
    let mut buf = pool_buf(task)?;
    let len = buf.len();
    match task.result {
        Some(OpResult::Send(Ok(sent))) if sent > 0 && sent <= len && !state.stopping.get() => {
            state.echoed.set(state.echoed.get() + sent as u64);
            if sent == len {
                state.echoes.set(state.echoes.get() + 1);
                buf.set_len(buf.capacity());
                ring.recv(fd, buf, 0, ctx(on_recv, conn, task));
            } else {
                buf.copy_within(sent..len, 0);
                buf.set_len(len - sent);
                ring.send(fd, buf, 0, ctx(on_send, conn, task));
            }
        }
        _ => {
            state.error();
            drop(buf);
            ring.close(fd, ctx(on_close, conn, task));
        }
    }
    Ok(())
}

fn on_close(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let state = state(task)?;
    if !matches!(task.result, Some(OpResult::Close(Ok(())))) {
        state.error();
    }
    state.closed.set(state.closed.get() + 1);
    let conn = task.msg();
    if conn != REFUSED {
        if let Some(fd) = state.fds.borrow_mut().get_mut(usize::from(conn)) {
            *fd = -1;
        }
        state.free.borrow_mut().push(conn);
    }
    Ok(())
}

/// Serves connections on `listener` until `until` with a ring on `executor` (`None`: the
/// default choice), then returns what it counted. Calls
/// `ready` once the ring exists and the first accept is queued.
pub fn serve(
    listener: &TcpListener,
    until: Until,
    executor: Option<Executor>,
    ready: impl FnOnce(),
) -> Result<ServerStats, BenchError> {
    let slots = until.slots();
    // Declared before the ring, so dropped after it: tasks point to it.
    let state = Box::new(State {
        listener: listener.as_raw_fd(),
        expected: match until {
            Until::Closed(n) => Some(u64::from(n)),
            Until::Stopped { .. } => None,
        },
        slots: slots as usize,
        accepted: Cell::new(0),
        closed: Cell::new(0),
        echoed: Cell::new(0),
        echoes: Cell::new(0),
        errors: Cell::new(0),
        refused: Cell::new(0),
        accept_errors: Cell::new(0),
        stopping: Cell::new(false),
        fds: RefCell::new(Vec::with_capacity(slots as usize)),
        free: RefCell::new(Vec::with_capacity(slots as usize)),
    });
    let mut ring = crate::backend::builder(ring_entries(slots), executor)
        .buffer_pool(slots as usize, BUF_SIZE)
        .build()?;
    let first = Context {
        cb: on_accept,
        msg: 0,
        userdata: Some(NonNull::from(&*state).cast()),
    };
    ring.accept(state.listener, first);
    if let Until::Stopped { stop, .. } = until {
        let ctx = Context {
            cb: on_stop,
            ..first
        };
        ring.read(stop, IoBuf::from(vec![0u8; 8]), Offset::File, ctx);
    }
    ready();
    loop {
        let done = match state.expected {
            // Every connection ends with its peer closing it; the client closes them all
            // when it is done (and when it fails), so this ends.
            Some(n) => state.closed.get() >= n,
            // Every connection has been closed since the stop, and nothing is in flight.
            None => state.stopping.get() && state.closed.get() == state.accepted.get(),
        };
        if done {
            break;
        }
        if ring.is_idle() {
            return Err(BenchError::Other(format!(
                "xuring echo server: nothing left to wait for with {:?}",
                state.stats()
            )));
        }
        ring.run(RunCondition::Once)?;
    }
    Ok(state.stats())
}
