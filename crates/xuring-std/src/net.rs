//! Sockets: connect (TCP and UDP), a listener with an accept loop, and transfers that finish
//! what a short send or receive left.
//!
//! Every helper here is generic over the [`Backend`], starts from the caller's thread with
//! ops queued on `ring`, and reports through its [`Then`] from a later
//! [`Ring::run`](xuring_core::Ring::run). IPv4 and IPv6 both work; addresses are
//! `std::net::SocketAddr`.
//!
//! ## Connect: the seed's multi-step pattern
//!
//! [`tcp_connect_to_addr`] and [`udp_connect_to_addr`] are the pattern every callback ring
//! uses for multi-step work, with the step in each op's `msg`:
//!
//! 1. `socket()` with `msg = 0`; the callback reads the new fd from the result;
//! 2. `connect()` with `msg = 1`; the callback reads the connect result;
//! 3. success: the fd is delivered to the caller, who owns it from then on; failure: the
//!    socket is closed (`msg = 2`) *before* the error is delivered, so no fd leaks.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};

use xuring_core::{Accepted, Backend, Errno, IoBuf, OpResult, Ring, Task, TaskHandle};

use crate::chunk::{Io, Moved, UNEXPECTED, Window, new_fd, unit};
use crate::job::{self, Machine, Progress, Step};
use crate::pump::{Pump, Pumped};
use crate::{Error, Handle, Then, Transfer};

// ----- connect -----

const SOCKET: u16 = 0;
const CONNECT: u16 = 1;
const CLOSE: u16 = 2;

struct Connect<B: Backend> {
    addr: SocketAddr,
    ty: i32,
    fd: RawFd,
    /// Why the job failed after the socket was made (delivered once it is closed).
    error: Errno,
    then: Then<Result<RawFd, Errno>, B>,
}

impl<B: Backend + 'static> Connect<B> {
    fn close(&mut self, ring: &mut Ring<B>, step: &Step<B, Self>, error: Errno) -> TaskHandle<B> {
        self.error = error;
        ring.close(self.fd, step.ctx(CLOSE))
    }
}

impl<B: Backend + 'static> Machine<B> for Connect<B> {
    type Output = Result<RawFd, Errno>;

    fn start(&mut self, ring: &mut Ring<B>, step: &Step<B, Self>) -> TaskHandle<B> {
        let domain = match self.addr {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        };
        ring.socket(domain, self.ty, 0, step.ctx(SOCKET))
    }

    fn advance(
        &mut self,
        ring: &mut Ring<B>,
        task: &Task<B>,
        step: &Step<B, Self>,
    ) -> Progress<Self::Output, B> {
        match task.msg() {
            SOCKET => match new_fd(task.result) {
                Ok(fd) => {
                    self.fd = fd;
                    if step.cancelled() {
                        return Progress::closing(self.close(ring, step, Errno::ECANCELED));
                    }
                    Progress::Wait(ring.connect(fd, self.addr, step.ctx(CONNECT)))
                }
                Err(e) => Progress::Finish(Err(e)),
            },
            CONNECT => match unit(task.result) {
                Ok(()) if !step.cancelled() => Progress::Finish(Ok(self.fd)),
                Ok(()) => Progress::closing(self.close(ring, step, Errno::ECANCELED)),
                Err(e) => Progress::closing(self.close(ring, step, e)),
            },
            // CLOSE: the socket is gone (a failed close still released the fd), report.
            _ => Progress::Finish(Err(self.error)),
        }
    }

    fn then(&self) -> Then<Self::Output, B> {
        self.then
    }
}

fn connect<B: Backend + 'static>(
    ring: &mut Ring<B>,
    addr: SocketAddr,
    ty: i32,
    then: Then<Result<RawFd, Errno>, B>,
) -> Handle<B> {
    job::start(
        ring,
        Connect {
            addr,
            ty,
            fd: -1,
            error: UNEXPECTED,
            then,
        },
    )
}

/// Opens a TCP connection to `addr` (IPv4 or IPv6) and delivers the connected socket.
///
/// Steps: `socket(AF_INET or AF_INET6, SOCK_STREAM | SOCK_CLOEXEC)` (the kernel's `SOCKET` op,
/// or a direct `socket(2)` before 5.19), then `connect`. On success `then` receives
/// `Ok(fd)`, and the caller owns `fd` (close it with [`Ring::close`] when done). On failure it
/// receives the errno: of `socket` (e.g. `EMFILE`), or of `connect` (`ECONNREFUSED`,
/// `ETIMEDOUT`, `ENETUNREACH`, ...) after the socket was closed; `ECANCELED` after
/// [`Handle::cancel`]. No fd is left open on any error path.
pub fn tcp_connect_to_addr<B: Backend + 'static>(
    ring: &mut Ring<B>,
    addr: SocketAddr,
    then: Then<Result<RawFd, Errno>, B>,
) -> Handle<B> {
    connect(ring, addr, libc::SOCK_STREAM, then)
}

/// Makes a UDP socket connected to `addr` (IPv4 or IPv6): sends go to `addr` and only its
/// datagrams are received.
///
/// Steps and errors as in [`tcp_connect_to_addr`], with `SOCK_DGRAM`. A UDP connect sends
/// nothing, so it succeeds even if nobody listens at `addr`: that shows up later as
/// `ECONNREFUSED` from a send or receive.
pub fn udp_connect_to_addr<B: Backend + 'static>(
    ring: &mut Ring<B>,
    addr: SocketAddr,
    then: Then<Result<RawFd, Errno>, B>,
) -> Handle<B> {
    connect(ring, addr, libc::SOCK_DGRAM, then)
}

// ----- listen and accept -----

/// What an accept loop reports, once per event.
#[derive(Debug)]
pub enum AcceptEvent {
    /// A new connection. The handler owns `fd` from now on (close it with [`Ring::close`]).
    Connected(Accepted),
    /// `accept` failed for one pending connection (`ECONNABORTED`, `EPROTO`, `ENETDOWN`,
    /// `EHOSTUNREACH`, `EPERM`, ... the network errors `accept(2)` says to retry); the loop goes
    /// on listening.
    Failed(Errno),
    /// The loop has stopped: the last event it reports. `result` is `Ok(())` after
    /// `max_connections` connections or [`Handle::cancel`], or the error that ended it (e.g.
    /// `EMFILE`: out of fds, `EINVAL`: not listening). The listener comes back, still open,
    /// to restart the loop or drop.
    Stopped {
        /// The listener.
        listener: TcpListener,
        /// Why the loop stopped.
        result: Result<(), Errno>,
    },
}

const ACCEPT: u16 = 0;
const STOP: u16 = 1;

struct AcceptLoop<B: Backend> {
    listener: Option<TcpListener>,
    max: Option<u64>,
    accepted: u64,
    stop: Result<(), Errno>,
    then: Then<AcceptEvent, B>,
}

/// `accept(2)`'s errors that concern one pending connection, not the listener.
fn retry_accept(e: Errno) -> bool {
    [
        libc::ECONNABORTED,
        libc::EINTR,
        libc::EAGAIN,
        libc::EPROTO,
        libc::ENETDOWN,
        libc::ENOPROTOOPT,
        libc::EHOSTDOWN,
        libc::ENONET,
        libc::EHOSTUNREACH,
        libc::ENETUNREACH,
        libc::EPERM,
    ]
    .contains(&e.raw())
}

impl<B: Backend + 'static> AcceptLoop<B> {
    fn fd(&self) -> RawFd {
        self.listener.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    fn more(&self) -> bool {
        self.max.is_none_or(|max| self.accepted < max)
    }

    /// Ends the loop from a later completion (a noop), so `Stopped` is reported on its own.
    fn stop_later(&mut self, ring: &mut Ring<B>, step: &Step<B, Self>) -> TaskHandle<B> {
        self.stop = Ok(());
        ring.noop(step.ctx(STOP))
    }

    fn stopped(&mut self, result: Result<(), Errno>) -> Progress<AcceptEvent, B> {
        match self.listener.take() {
            Some(listener) => Progress::Finish(AcceptEvent::Stopped { listener, result }),
            None => Progress::Finish(AcceptEvent::Failed(UNEXPECTED)),
        }
    }
}

impl<B: Backend + 'static> Machine<B> for AcceptLoop<B> {
    type Output = AcceptEvent;

    fn start(&mut self, ring: &mut Ring<B>, step: &Step<B, Self>) -> TaskHandle<B> {
        if self.more() {
            ring.accept(self.fd(), step.ctx(ACCEPT))
        } else {
            self.stop_later(ring, step)
        }
    }

    fn advance(
        &mut self,
        ring: &mut Ring<B>,
        task: &Task<B>,
        step: &Step<B, Self>,
    ) -> Progress<Self::Output, B> {
        if task.msg() == STOP {
            let result = self.stop;
            return self.stopped(result);
        }
        match task.result {
            Some(OpResult::Accept(Ok(accepted))) => {
                self.accepted += 1;
                let next = if self.more() && !step.cancelled() {
                    ring.accept(self.fd(), step.ctx(ACCEPT))
                } else {
                    self.stop_later(ring, step)
                };
                Progress::Emit(AcceptEvent::Connected(accepted), next)
            }
            _ if step.cancelled() => self.stopped(Ok(())),
            Some(OpResult::Accept(Err(e))) if retry_accept(e) => Progress::Emit(
                AcceptEvent::Failed(e),
                ring.accept(self.fd(), step.ctx(ACCEPT)),
            ),
            Some(OpResult::Accept(Err(e))) => self.stopped(Err(e)),
            _ => self.stopped(Err(UNEXPECTED)),
        }
    }

    fn then(&self) -> Then<Self::Output, B> {
        self.then
    }
}

/// Accepts connections on `listener` until `max_connections` (`None`: no limit) have been
/// accepted, the loop is cancelled, or `accept` fails for good.
///
/// Steps: one `accept` (`accept4(2)` with `SOCK_CLOEXEC`) in flight at a time; after each
/// connection the handler gets [`AcceptEvent::Connected`] and the next `accept` is already
/// submitted, so a handler that starts the connection's first receive does not delay the next
/// client. Per-connection errors are reported as [`AcceptEvent::Failed`] and the loop re-arms;
/// the last event is always [`AcceptEvent::Stopped`], which gives the listener back. Stop it
/// early with [`Handle::cancel`] (also from the handler itself).
///
/// Make the listener with `std`: `TcpListener::bind(addr)` binds, listens and sets
/// `SO_REUSEADDR`; see also [`tcp_listen`].
pub fn accept_loop<B: Backend + 'static>(
    ring: &mut Ring<B>,
    listener: TcpListener,
    max_connections: Option<u64>,
    then: Then<AcceptEvent, B>,
) -> Handle<B> {
    job::start(
        ring,
        AcceptLoop {
            listener: Some(listener),
            max: max_connections,
            accepted: 0,
            stop: Ok(()),
            then,
        },
    )
}

/// Binds a TCP listener to `addr` with `std` (port 0: the kernel picks one) and starts an
/// [`accept_loop`] on it. Returns the address it listens on (with the real port) and the
/// loop's handle.
///
/// Errors: those of `TcpListener::bind` (`AddrInUse`, `PermissionDenied`, ...), returned
/// directly; nothing is started then.
pub fn tcp_listen<B: Backend + 'static>(
    ring: &mut Ring<B>,
    addr: SocketAddr,
    max_connections: Option<u64>,
    then: Then<AcceptEvent, B>,
) -> std::io::Result<(SocketAddr, Handle<B>)> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    Ok((local, accept_loop(ring, listener, max_connections, then)))
}

// ----- transfers -----

const TRANSFER: u16 = 0;

/// A transfer job over one fd (shared with `fs::write_all` and `fs::read_exact`).
pub(crate) struct TransferJob<B: Backend> {
    window: Window,
    then: Then<Transfer, B>,
}

impl<B: Backend + 'static> TransferJob<B> {
    pub(crate) fn start(
        ring: &mut Ring<B>,
        io: Io,
        fd: RawFd,
        buf: IoBuf,
        whole: bool,
        then: Then<Transfer, B>,
    ) -> Handle<B> {
        job::start(
            ring,
            TransferJob {
                window: Window::new(io, fd, buf, whole),
                then,
            },
        )
    }

    fn finish(&mut self, status: Result<(), crate::Error>) -> Progress<Transfer, B> {
        let (buf, len) = self.window.take();
        Progress::Finish(Transfer {
            fd: self.window.fd(),
            buf,
            len,
            status,
        })
    }
}

impl<B: Backend + 'static> Machine<B> for TransferJob<B> {
    type Output = Transfer;

    fn start(&mut self, ring: &mut Ring<B>, step: &Step<B, Self>) -> TaskHandle<B> {
        self.window.submit_first(ring, step.ctx(TRANSFER))
    }

    fn advance(
        &mut self,
        ring: &mut Ring<B>,
        task: &Task<B>,
        step: &Step<B, Self>,
    ) -> Progress<Self::Output, B> {
        match self
            .window
            .absorb(ring, task, step.ctx(TRANSFER), step.cancelled())
        {
            Moved::Done => self.finish(Ok(())),
            Moved::More(next) => Progress::Wait(next),
            Moved::Failed(e) => self.finish(Err(e)),
        }
    }

    fn then(&self) -> Then<Self::Output, B> {
        self.then
    }
}

/// Sends all of `buf` on the connected socket `fd`.
///
/// Steps: one `send` (`MSG_NOSIGNAL`) of the whole buffer; after a short send, the same
/// buffer again, advanced past what went out ([`IoBuf::advance`]: no copy), until everything
/// is sent. `then` receives a [`Transfer`] with the buffer back and
/// `len` = bytes sent. Errors: the send's errno (`EPIPE`/`ECONNRESET` when the peer is gone,
/// `EBADF`, `ENOTSOCK`, ...), [`Error::WriteZero`] if a send moved
/// nothing, `ECANCELED` after [`Handle::cancel`]; `len` says how much went out before.
pub fn send_all<B: Backend + 'static>(
    ring: &mut Ring<B>,
    fd: RawFd,
    buf: impl Into<IoBuf>,
    then: Then<Transfer, B>,
) -> Handle<B> {
    TransferJob::start(ring, Io::Send, fd, buf.into(), true, then)
}

/// Receives exactly `buf.len()` bytes from the connected socket `fd` into `buf`.
///
/// Steps: one `recv` into the whole buffer; after a short receive, another into the rest of
/// the same buffer (advanced past what arrived: no copy), until it is full. Errors: the receive's
/// errno, [`Error::UnexpectedEof`] if the peer closed first
/// (`len` bytes arrived), `EFAULT` for a read-only (`&'static`) buffer, `ECANCELED` after
/// [`Handle::cancel`].
pub fn recv_exact<B: Backend + 'static>(
    ring: &mut Ring<B>,
    fd: RawFd,
    buf: impl Into<IoBuf>,
    then: Then<Transfer, B>,
) -> Handle<B> {
    TransferJob::start(ring, Io::Recv, fd, buf.into(), true, then)
}

/// One `recv` into `buf`, reported as a [`Transfer`]: `len` bytes arrived (0: the peer
/// closed the connection). The same as [`Ring::recv`] but the callback gets the fd and the
/// buffer without having to keep them anywhere, which is what a connection loop needs.
pub fn recv_some<B: Backend + 'static>(
    ring: &mut Ring<B>,
    fd: RawFd,
    buf: impl Into<IoBuf>,
    then: Then<Transfer, B>,
) -> Handle<B> {
    TransferJob::start(ring, Io::Recv, fd, buf.into(), false, then)
}

// ----- send_file -----

/// Sends a file's bytes on a socket.
struct SendFile<B: Backend> {
    pump: Pump,
    /// How the first step ended, if it ended at once (nothing to send).
    early: Option<Result<u64, Error>>,
    then: Then<Result<u64, Error>, B>,
}

impl<B: Backend + 'static> Machine<B> for SendFile<B> {
    type Output = Result<u64, Error>;

    fn start(&mut self, ring: &mut Ring<B>, step: &Step<B, Self>) -> TaskHandle<B> {
        let early = match self.pump.start(ring, step) {
            Pumped::Wait(next) => return next,
            Pumped::Done => Ok(0),
            Pumped::Failed(e) => Err(e),
        };
        // Nothing to send (a zero length): report at the next run, like every helper.
        self.early = Some(early);
        ring.noop(step.ctx(DONE))
    }

    fn advance(
        &mut self,
        ring: &mut Ring<B>,
        task: &Task<B>,
        step: &Step<B, Self>,
    ) -> Progress<Self::Output, B> {
        if let Some(early) = self.early.take() {
            return Progress::Finish(early);
        }
        let pumped = if Pump::owns(task.msg()) {
            self.pump.advance(ring, task, step)
        } else {
            Pumped::Failed(crate::chunk::UNEXPECTED.into())
        };
        match pumped {
            Pumped::Wait(next) => Progress::Wait(next),
            Pumped::Done => Progress::Finish(Ok(self.pump.moved())),
            Pumped::Failed(e) => Progress::Finish(Err(e)),
        }
    }

    fn then(&self) -> Then<Self::Output, B> {
        self.then
    }
}

const DONE: u16 = 0;

/// Sends `len` bytes of the file `file`, from `offset`, on the connected socket `sock`: a
/// response body straight from the page cache, never through user memory. The file's
/// position is not used or moved (so one open file can serve many responses at once); both
/// fds stay the caller's.
///
/// Steps: a pipe (`std::io::pipe`), then `splice` from the file into the pipe and from the
/// pipe into the socket, [`CHUNK_SIZE`](crate::fs::CHUNK_SIZE) at a time, until `len` bytes
/// are sent. Where `splice` is unavailable (`EOPNOTSUPP`: the kernel lacks the op) or
/// refused (`EINVAL` on the first splice), or no pipe can be made, it reads into one buffer
/// and sends it (`MSG_NOSIGNAL`). `then` receives the bytes sent.
///
/// Errors: a splice's, read's or send's errno (`EPIPE`/`ECONNRESET` when the peer is gone),
/// [`Error::UnexpectedEof`] if the file ends before `len` bytes, [`Error::WriteZero`],
/// `ECANCELED` after [`Handle::cancel`] (bytes already in the pipe are sent first). Where
/// splice runs, a peer that is gone may also raise `SIGPIPE`, which Rust programs ignore by
/// default.
pub fn send_file<B: Backend + 'static>(
    ring: &mut Ring<B>,
    file: RawFd,
    offset: u64,
    len: u64,
    sock: RawFd,
    then: Then<Result<u64, Error>, B>,
) -> Handle<B> {
    job::start(
        ring,
        SendFile {
            pump: Pump::new(file, Some(offset), sock, Io::Send, Some(len)),
            early: None,
            then,
        },
    )
}
