//! xuring's echo server: one ring, callbacks, pool buffers.
//!
//! One accept is in flight until the expected connections are in. Each connection owns one
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

use xuring_core::{Context, IoBuf, OpResult, PoolBuf, Ring, RingError, RunCondition, Task};

use super::{BUF_SIZE, MAX_ACCEPT_ERRORS, ServerStats, ring_entries};
use crate::error::BenchError;
use crate::xuring_ops::state_of;

/// What the callbacks share.
struct State {
    listener: RawFd,
    expected: u64,
    accepted: Cell<u64>,
    closed: Cell<u64>,
    echoed: Cell<u64>,
    errors: Cell<u64>,
    accept_errors: Cell<u64>,
    /// Each connection's fd, by index (the tasks' `msg`); capacity `expected`.
    fds: RefCell<Vec<RawFd>>,
}

impl State {
    fn stats(&self) -> ServerStats {
        ServerStats {
            accepted: self.accepted.get(),
            closed: self.closed.get(),
            echoed: self.echoed.get(),
            errors: self.errors.get(),
        }
    }

    fn error(&self) {
        self.errors.set(self.errors.get() + 1);
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
        Some(OpResult::Accept(Ok(accepted))) => {
            let conn = {
                let mut fds = state.fds.borrow_mut();
                fds.push(accepted.fd);
                u16::try_from(fds.len() - 1)
                    .map_err(|_| RingError::callback("too many connections"))?
            };
            state.accepted.set(state.accepted.get() + 1);
            let buf = ring
                .buffers()
                .and_then(|pool| pool.get())
                .ok_or_else(|| RingError::callback("the buffer pool is empty"))?;
            ring.recv(accepted.fd, buf, 0, ctx(on_recv, conn, task));
        }
        _ => {
            state.error();
            state.accept_errors.set(state.accept_errors.get() + 1);
            if state.accept_errors.get() > MAX_ACCEPT_ERRORS {
                return Err(RingError::callback("accept keeps failing"));
            }
        }
    }
    if state.accepted.get() < state.expected {
        ring.accept(state.listener, ctx(on_accept, 0, task));
    }
    Ok(())
}

fn on_recv(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    let state = state(task)?;
    let conn = task.msg();
    let fd = state.fd(conn)?;
    let mut buf = pool_buf(task)?;
    match task.result {
        Some(OpResult::Recv(Ok(n))) if n > 0 => {
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
        Some(OpResult::Send(Ok(sent))) if sent > 0 && sent <= len => {
            state.echoed.set(state.echoed.get() + sent as u64);
            if sent == len {
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
    Ok(())
}

/// Serves `conns` connections on `listener`, then returns what it counted. Calls `ready`
/// once the ring exists and the first accept is queued.
pub fn serve(
    listener: &TcpListener,
    conns: u32,
    ready: impl FnOnce(),
) -> Result<ServerStats, BenchError> {
    // Declared before the ring, so dropped after it: tasks point to it.
    let state = Box::new(State {
        listener: listener.as_raw_fd(),
        expected: u64::from(conns),
        accepted: Cell::new(0),
        closed: Cell::new(0),
        echoed: Cell::new(0),
        errors: Cell::new(0),
        accept_errors: Cell::new(0),
        fds: RefCell::new(Vec::with_capacity(conns as usize)),
    });
    let mut ring = Ring::builder(ring_entries(conns))
        .buffer_pool(conns as usize, BUF_SIZE)
        .build()?;
    let first = Context {
        cb: on_accept,
        msg: 0,
        userdata: Some(NonNull::from(&*state).cast()),
    };
    ring.accept(state.listener, first);
    ready();
    // Every connection ends with its peer closing it; the client closes them all when it is
    // done (and when it fails), so this ends.
    while state.closed.get() < state.expected {
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
