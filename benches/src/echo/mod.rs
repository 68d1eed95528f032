//! The `echo` scenario's servers and its load generator.
//!
//! A server ([`Server`]) runs on its own thread with one ring: it accepts the number of
//! connections it was told to expect, then on each connection receives into a buffer, sends
//! the same bytes back from the same buffer, and receives again, until the peer closes; it
//! closes each connection on its end and stops once all of them are closed. Two servers do
//! exactly that: xuring's ([`xuring`]: callbacks, [`PoolBuf`](xuring_core::PoolBuf)s from the
//! ring's pool, no copy, on either executor) and a raw `io-uring` one ([`raw`]: a state
//! machine over `user_data`, one page per connection); a third, tokio's ([`tokio`]: a
//! `current_thread` runtime, a task per connection), takes the same steps.
//!
//! The load generator ([`EchoClient`]) is the main thread with plain blocking
//! `std::net::TcpStream`s: per wave it writes one message on each connection, then reads each
//! echo back and compares it with what it sent (every message carries its sequence number, so
//! a lost, duplicated or reordered echo is caught). Reads and writes time out after
//! [`IO_TIMEOUT`], so a server that stops answering ends the run with an error. Dropping the
//! client closes the connections, which is what stops the server.
//!
//! # Safety
//!
//! The `unsafe` of this module is one `setsockopt(2)` on the listener with a pointer to a
//! local `c_int` and its exact size; see [`raw`] and [`xuring`] for theirs.

pub mod raw;
pub mod tokio;
pub mod xuring;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd as _;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use xuring_core::Executor;
use xuring_sys::SetupFlags;

use crate::error::BenchError;
use crate::pin::CpuPair;
use crate::threads::{STOP_LIMIT, join_within, spawn_pinned};

/// The servers' receive buffer per connection: the largest message size.
pub const BUF_SIZE: usize = 4096;
/// The smallest message: room for the sequence number and the connection index.
pub const MIN_MESSAGE: usize = 16;
/// How long the client waits for one read or write before it gives up.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Accept failures a server tolerates before it gives up.
pub const MAX_ACCEPT_ERRORS: u64 = 64;

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// xuring's, on this executor (`None`: the default choice).
    Xuring(Option<Executor>),
    /// The raw `io-uring` one.
    Raw,
    /// tokio's (`current_thread`).
    Tokio,
}

/// When a server stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Once it has accepted this many connections and each has been closed by its peer.
    Closed(u32),
    /// Once `stop` (an eventfd) is readable: it stops accepting, cancels what is in flight
    /// and closes every connection still open. It serves up to `max_conns` connections at a
    /// time; one more is accepted and closed at once.
    Stopped {
        /// The eventfd that says stop.
        stop: std::os::fd::RawFd,
        /// Connections served at once.
        max_conns: u32,
    },
}

impl Until {
    /// The most connections open at once: the slots (and buffers) a server sets up.
    pub fn slots(self) -> u32 {
        match self {
            Until::Closed(n) => n,
            Until::Stopped { max_conns, .. } => max_conns,
        }
    }
}

/// What a server counted by the time it stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed (after their peer closed).
    pub closed: u64,
    /// Bytes sent back.
    pub echoed: u64,
    /// Messages (receives) sent back whole.
    pub echoes: u64,
    /// Operations that failed (accept, recv, send, close), not counting those cancelled
    /// or cut short by a stop.
    pub errors: u64,
    /// Connections accepted beyond [`Until::Stopped`]'s `max_conns` and closed at once.
    pub refused: u64,
}

/// Entries of a server's ring: a receive or send per connection, plus the accept.
pub fn ring_entries(conns: u32) -> u32 {
    (conns + 1).next_power_of_two().max(16)
}

/// A listener on `127.0.0.1:port` (0: an ephemeral one) with `TCP_NODELAY` set, which the connections
/// it accepts inherit (a small echo is never held back by Nagle's algorithm).
pub fn listen(port: u16) -> Result<TcpListener, BenchError> {
    let listener =
        TcpListener::bind(("127.0.0.1", port)).map_err(|e| BenchError::Io("bind 127.0.0.1", e))?;
    let one: libc::c_int = 1;
    // SAFETY: `one` is a live `c_int` for the duration of the call and its exact size is
    // passed; the listener's fd is open (it is borrowed from `listener`).
    let ret = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        return Err(BenchError::Io(
            "setsockopt(TCP_NODELAY)",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(listener)
}

/// A server on its own thread, waiting for its connections.
pub struct Server {
    kind: Kind,
    addr: SocketAddr,
    handle: Option<JoinHandle<Result<ServerStats, BenchError>>>,
}

impl Server {
    /// Starts a server of `kind` that expects `conns` connections, on a thread pinned to
    /// `pair.other`; `setup` gives the raw server's ring the flags of xuring's. Returns once
    /// its ring exists and it is accepting.
    pub fn start(
        kind: Kind,
        conns: u32,
        setup: SetupFlags,
        pair: &CpuPair,
    ) -> Result<Server, BenchError> {
        if conns == 0 || conns > u32::from(u16::MAX) {
            return Err(BenchError::Other(format!("echo: {conns} connections")));
        }
        let listener = listen(0)?;
        let addr = listener
            .local_addr()
            .map_err(|e| BenchError::Io("getsockname", e))?;
        let (tx, rx) = mpsc::sync_channel::<()>(1);
        let ready = move || {
            let _ = tx.send(());
        };
        let name = match kind {
            Kind::Xuring(_) => "xuring-echo",
            Kind::Raw => "raw-echo",
            Kind::Tokio => "tokio-echo",
        };
        let handle = spawn_pinned(name, pair, move || match kind {
            Kind::Xuring(executor) => {
                xuring::serve(&listener, Until::Closed(conns), executor, ready)
            }
            Kind::Raw => raw::serve(&listener, Until::Closed(conns), setup, ready),
            Kind::Tokio => tokio::serve(&listener, Until::Closed(conns), ready),
        })?;
        if rx.recv().is_err() {
            // It stopped before it was ready: its error says why.
            return Err(match join_within(name, handle, STOP_LIMIT) {
                Err(e) => e,
                Ok(_) => BenchError::Other(format!("{name}: stopped before it was ready")),
            });
        }
        Ok(Server {
            kind,
            addr,
            handle: Some(handle),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Which server it is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Waits (up to [`STOP_LIMIT`]) for it to stop, which it does once every connection it
    /// accepted has been closed by its peer; returns what it counted.
    pub fn wait(mut self) -> Result<ServerStats, BenchError> {
        match self.handle.take() {
            Some(handle) => join_within("echo server", handle, STOP_LIMIT),
            None => Ok(ServerStats::default()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = join_within("echo server", handle, STOP_LIMIT);
        }
    }
}

/// What a client and its server agree on at the end of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoCheck {
    /// Connections.
    pub conns: u32,
    /// Message size.
    pub size: usize,
    /// Messages sent and echoed back intact, over every run.
    pub messages: u64,
    /// The server's counts.
    pub server: ServerStats,
}

/// The load generator: `conns` blocking connections to one server, `size`-byte messages.
pub struct EchoClient {
    streams: Vec<TcpStream>,
    size: usize,
    /// The message in flight on each connection, to compare its echo with.
    sent: Vec<Vec<u8>>,
    echo: Vec<u8>,
    seq: u64,
    messages: u64,
}

impl EchoClient {
    /// Opens `conns` connections to `addr` (`TCP_NODELAY`, [`IO_TIMEOUT`] both ways).
    pub fn connect(addr: SocketAddr, conns: u32, size: usize) -> Result<EchoClient, BenchError> {
        if !(MIN_MESSAGE..=BUF_SIZE).contains(&size) {
            return Err(BenchError::Other(format!(
                "echo: messages of {size} bytes (from {MIN_MESSAGE} to {BUF_SIZE})"
            )));
        }
        let mut streams = Vec::with_capacity(conns as usize);
        let mut sent = Vec::with_capacity(conns as usize);
        for conn in 0..conns {
            let stream = TcpStream::connect(addr).map_err(|e| BenchError::Io("connect", e))?;
            let io = |e| BenchError::Io("setting up a client socket", e);
            stream.set_nodelay(true).map_err(io)?;
            stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
            stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
            streams.push(stream);
            // A pattern that differs per connection and per byte; the first 16 bytes are
            // stamped per message.
            sent.push(
                (0..size)
                    .map(|i| (i as u8).wrapping_mul(31) ^ (conn as u8))
                    .collect(),
            );
        }
        Ok(EchoClient {
            streams,
            size,
            sent,
            echo: vec![0; size],
            seq: 0,
            messages: 0,
        })
    }

    /// Connections.
    pub fn conns(&self) -> u32 {
        self.streams.len() as u32
    }

    /// Messages echoed back intact so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Sends `n` messages, a wave of one per connection at a time (the last wave may use
    /// only the first connections), and checks every echo byte for byte; returns how many
    /// came back intact.
    pub fn run(&mut self, n: u64) -> Result<u64, BenchError> {
        let mut left = n;
        let mut bad = 0u64;
        while left > 0 {
            let wave = left.min(self.streams.len() as u64) as usize;
            for (conn, (stream, message)) in self
                .streams
                .iter_mut()
                .zip(&mut self.sent)
                .enumerate()
                .take(wave)
            {
                message[..8].copy_from_slice(&self.seq.to_le_bytes());
                message[8..16].copy_from_slice(&(conn as u64).to_le_bytes());
                self.seq += 1;
                stream
                    .write_all(message)
                    .map_err(|e| BenchError::Io("echo client write", e))?;
            }
            for (stream, message) in self.streams.iter_mut().zip(&self.sent).take(wave) {
                stream
                    .read_exact(&mut self.echo)
                    .map_err(|e| BenchError::Io("echo client read", e))?;
                bad += u64::from(self.echo != *message);
            }
            left -= wave as u64;
        }
        if bad > 0 {
            return Err(BenchError::Failed {
                what: format!("echo client ({} B)", self.size),
                count: bad,
            });
        }
        self.messages += n;
        Ok(n)
    }

    /// Closes every connection, waits for `server` to stop, and checks that it saw every
    /// connection and echoed every byte, without an error.
    pub fn finish(self, server: Server) -> Result<EchoCheck, BenchError> {
        let conns = self.conns();
        let (size, messages) = (self.size, self.messages);
        drop(self);
        let stats = server.wait()?;
        let check = EchoCheck {
            conns,
            size,
            messages,
            server: stats,
        };
        let expected_bytes = messages * size as u64;
        if stats.errors > 0
            || stats.accepted != u64::from(conns)
            || stats.closed != u64::from(conns)
            || stats.echoed != expected_bytes
        {
            return Err(BenchError::Other(format!(
                "echo: the server's counts {stats:?} do not match {conns} connections and \
                 {expected_bytes} bytes sent"
            )));
        }
        Ok(check)
    }
}
