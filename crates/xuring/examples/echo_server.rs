//! `echo_server`: a TCP echo server on one ring, with pool buffers and no copies.
//!
//! `cargo run --example echo_server` (no arguments) is a self-test: it listens on an ephemeral
//! loopback port, prints it, serves three connections from a built-in `std` client (which
//! checks every echoed byte), and exits. `cargo run --example echo_server -- ADDR
//! [--connections N]` serves real clients on `ADDR` (e.g. `127.0.0.1:7000`), forever or until
//! `N` connections have been accepted and closed; try it with the `tcp_client` example.
//!
//! How: [`stda::net::accept_loop`](xuring::stda::net::accept_loop) accepts and re-arms; each
//! connection receives into one of the ring's pool buffers
//! ([`recv_some`](xuring::stda::net::recv_some)), sends the same buffer back with its length
//! set to what arrived ([`send_all`](xuring::stda::net::send_all), which finishes short sends),
//! and receives again, until the client closes. When more connections are open than the pool
//! has buffers, the extra ones get a `Vec`.
//!
//! State, the pattern for stateful servers: the server's state is a value the ring holds
//! ([`Ring::insert_state`]); each connection's is an entry of a [`Slab`] in it, named by a
//! [`Key`] that travels with every helper the connection starts ([`Then::keyed`]). A callback
//! reaches both with [`Ring::with_state`], which lends the ring and the state at once, so it
//! can submit the next op while it updates the connection. No `unsafe`, no thread-locals, and
//! a completion for a connection that is gone finds nothing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use std::os::fd::RawFd;

use xuring::io_uring::{BufferPool, Context, IoBuf, Key, Ring, RingError, RunCondition, Slab};
use xuring::stda::net::{self, AcceptEvent};
use xuring::stda::{Done, Then, Transfer};

/// The size of each connection's buffer.
pub const BUF_SIZE: usize = 16 * 1024;
/// Buffers in the ring's pool.
pub const POOL_BUFFERS: usize = 64;

/// What the server did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub connections: u64,
    /// Bytes echoed.
    pub bytes: u64,
    /// Bytes echoed on the busiest connection.
    pub busiest: u64,
}

/// One connection.
struct Conn {
    fd: RawFd,
    echoed: u64,
}

/// What the ring holds for the server's callbacks.
#[derive(Default)]
struct Server {
    stats: Stats,
    conns: Slab<Conn>,
}

impl Server {
    /// Closes the connection `key` names and forgets it.
    fn close(&mut self, ring: &mut Ring, key: Key) {
        if let Some(conn) = self.conns.remove(key) {
            self.stats.busiest = self.stats.busiest.max(conn.echoed);
            ring.close(conn.fd, Context::default());
        }
    }
}

/// A ring with the pool the server uses.
pub fn server_ring() -> Result<Ring, RingError> {
    Ring::builder(64)
        .buffer_pool(POOL_BUFFERS, BUF_SIZE)
        .build()
}

/// A buffer for a connection: from the pool if one is free.
fn buffer(ring: &Ring) -> IoBuf {
    match ring.buffers().and_then(BufferPool::get) {
        Some(buf) => buf.into(),
        None => vec![0u8; BUF_SIZE].into(),
    }
}

/// Sets how many bytes of `buf` the next op uses, without copying.
fn with_len(ring: &Ring, buf: IoBuf, len: usize) -> IoBuf {
    if ring
        .buffers()
        .is_some_and(|pool| buf.pool_index(pool).is_some())
    {
        let mut buf = buf.into_pool_buf().expect("a buffer of the pool");
        buf.set_len(len.min(buf.capacity()));
        return buf.into();
    }
    let mut buf = buf.into_vec().unwrap_or_default();
    buf.resize(len, 0);
    buf.into()
}

fn on_event(ring: &mut Ring, done: Done<AcceptEvent>) -> Result<(), RingError> {
    match done.result {
        AcceptEvent::Connected(conn) => ring.with_state(|ring, server: &mut Server| {
            server.stats.connections += 1;
            let key = server.conns.insert(Conn {
                fd: conn.fd,
                echoed: 0,
            });
            let buf = buffer(ring);
            net::recv_some(ring, conn.fd, buf, Then::keyed(on_received, key));
        }),
        AcceptEvent::Failed(e) => {
            eprintln!("echo_server: accept: {e} (still listening)");
            Ok(())
        }
        AcceptEvent::Stopped { result, .. } => {
            // The listener is dropped (closed) here; open connections carry on.
            result.map_err(|e| RingError::callback(std::io::Error::from(e)))
        }
    }
}

fn on_received(ring: &mut Ring, done: Done<Transfer>) -> Result<(), RingError> {
    let key = done.key();
    let t = done.result;
    ring.with_state(|ring, server: &mut Server| {
        let Some(key) = key else { return };
        if t.status.is_err() || t.len == 0 {
            // The client closed (or failed): close our side; the buffer returns to the pool.
            server.close(ring, key);
            return;
        }
        let Some(conn) = server.conns.get_mut(key) else {
            return;
        };
        conn.echoed += t.len as u64;
        server.stats.bytes += t.len as u64;
        let buf = with_len(ring, t.buf, t.len);
        net::send_all(ring, t.fd, buf, Then::keyed(on_sent, key));
    })
}

fn on_sent(ring: &mut Ring, done: Done<Transfer>) -> Result<(), RingError> {
    let key = done.key();
    let t = done.result;
    ring.with_state(|ring, server: &mut Server| {
        let Some(key) = key else { return };
        if t.status.is_err() {
            server.close(ring, key);
            return;
        }
        let buf = with_len(ring, t.buf, BUF_SIZE);
        net::recv_some(ring, t.fd, buf, Then::keyed(on_received, key));
    })
}

/// Serves `listener` until `max_connections` connections (`None`: no limit) have been
/// accepted and all of them closed.
pub fn serve(
    ring: &mut Ring,
    listener: TcpListener,
    max_connections: Option<u64>,
) -> Result<Stats, RingError> {
    ring.insert_state(Server::default());
    net::accept_loop(ring, listener, max_connections, Then::new(on_event));
    let run = ring.run(RunCondition::UntilDone);
    let server: Server = ring
        .remove_state()
        .ok_or(RingError::NoState("echo_server::Server"))?;
    run?;
    if !server.conns.is_empty() {
        return Err(RingError::callback(std::io::Error::other(format!(
            "{} connections still open after the run",
            server.conns.len()
        ))));
    }
    Ok(server.stats)
}

/// A `std` client: one connection per message; checks that each comes back whole.
pub fn check_echo(addr: SocketAddr, message: &[u8]) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let reader = stream.try_clone()?;
    // Write and read at once: a large message does not fit the socket buffers.
    let expected = message.len();
    let read = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(expected);
        reader
            .take(expected as u64)
            .read_to_end(&mut got)
            .map(|_| got)
    });
    stream.write_all(message)?;
    let got = read
        .join()
        .map_err(|_| std::io::Error::other("reader panicked"))??;
    if got != message {
        return Err(std::io::Error::other(format!(
            "echo mismatch: sent {} bytes, got {}",
            message.len(),
            got.len()
        )));
    }
    Ok(())
}

/// The no-argument run: serve `messages.len()` connections from a built-in client on
/// loopback, one message each, and check every echo. Prints the port.
pub fn self_test(messages: Vec<Vec<u8>>) -> Result<Stats, Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    println!(
        "echo_server listening on {addr} (self-test: {} connections)",
        messages.len()
    );
    let n = messages.len() as u64;
    let client = std::thread::spawn(move || -> std::io::Result<()> {
        for message in &messages {
            check_echo(addr, message)?;
        }
        Ok(())
    });
    let mut ring = server_ring()?;
    let stats = serve(&mut ring, listener, Some(n))?;
    client.join().map_err(|_| "the client panicked")??;
    Ok(stats)
}

/// Three messages: small, a whole buffer, and one far larger than a buffer.
pub fn demo_messages() -> Vec<Vec<u8>> {
    vec![
        b"hello, echo".to_vec(),
        vec![b'x'; BUF_SIZE],
        (0..300_000u32).map(|i| (i % 251) as u8).collect(),
    ]
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stats = match args.as_slice() {
        [] => self_test(demo_messages())?,
        [addr, rest @ ..] => {
            let max = match rest {
                [] => None,
                [flag, n] if flag == "--connections" => Some(n.parse()?),
                _ => return Err("usage: echo_server [ADDR [--connections N]]".into()),
            };
            let listener = TcpListener::bind(addr.as_str())?;
            println!("echo_server listening on {}", listener.local_addr()?);
            let mut ring = server_ring()?;
            serve(&mut ring, listener, max)?
        }
    };
    println!(
        "served {} connections, echoed {} bytes",
        stats.connections, stats.bytes
    );
    Ok(())
}
