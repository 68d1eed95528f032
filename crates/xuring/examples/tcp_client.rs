//! `tcp_client`: the seed's multi-step state machine, written out by hand.
//!
//! `cargo run --example tcp_client -- ADDR [MESSAGE]` connects to `ADDR`, sends `MESSAGE`,
//! reads the same number of bytes back (an echo server's answer, e.g. the `echo_server`
//! example) and prints them. Without arguments it starts a small `std` echo server on
//! loopback and talks to that.
//!
//! Every step is one op, and the step travels in the op's `msg`:
//!
//! ```text
//! SOCKET --fd--> CONNECT --ok--> SEND --n--> (SEND the rest) --> RECV --n--> (RECV more) --> CLOSE
//!    \              \               \                              \
//!     +-- error ---> +--- error ---> +---------- error ------------> +--> CLOSE, then report
//! ```
//!
//! The state (address, fd, bytes) lives in a thread-local: the callbacks get `&mut Ring` and
//! `&Task`, and reach it without `unsafe`. (`xuring::stda::net` packages the same pattern as
//! `tcp_connect_to_addr`, `send_all` and `recv_exact`.)

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::RawFd;

use xuring::io_uring::{Context, Errno, IoBuf, OpResult, Ring, RingError, RunCondition, Task};

const SOCKET: u16 = 0;
const CONNECT: u16 = 1;
const SEND: u16 = 2;
const RECV: u16 = 3;
const CLOSE: u16 = 4;

struct Client {
    addr: SocketAddr,
    request: Vec<u8>,
    fd: RawFd,
    sent: usize,
    reply: Vec<u8>,
    /// The first error, reported once the socket is closed.
    error: Option<Errno>,
}

thread_local! {
    static CLIENT: RefCell<Option<Client>> = const { RefCell::new(None) };
}

fn ctx(msg: u16) -> Context {
    Context {
        cb: step,
        msg,
        userdata: None,
    }
}

/// One callback for every step; `task.msg()` says which step completed.
fn step(ring: &mut Ring, task: &Task) -> Result<(), RingError> {
    CLIENT.with(|client| {
        let mut client = client.borrow_mut();
        let Some(c) = client.as_mut() else {
            return Ok(());
        };
        let result = task.result;
        match (task.msg(), result) {
            (SOCKET, Some(OpResult::Socket(Ok(fd)))) => {
                c.fd = fd;
                ring.connect(fd, c.addr, ctx(CONNECT));
            }
            (SOCKET, Some(OpResult::Socket(Err(e)))) => {
                // No socket, nothing to close: done.
                c.error = Some(e);
            }
            (CONNECT, Some(OpResult::Connect(Ok(())))) => {
                ring.send(c.fd, c.request.clone(), 0, ctx(SEND));
            }
            (SEND, Some(OpResult::Send(Ok(n)))) => {
                c.sent += n;
                if c.sent < c.request.len() {
                    // A short send: send the rest.
                    let rest = c.request[c.sent..].to_vec();
                    ring.send(c.fd, rest, 0, ctx(SEND));
                } else {
                    ring.recv(c.fd, vec![0u8; c.request.len()], 0, ctx(RECV));
                }
            }
            (RECV, Some(OpResult::Recv(Ok(n)))) => {
                let buf = task
                    .take_buf()
                    .and_then(IoBuf::into_vec)
                    .unwrap_or_default();
                c.reply.extend_from_slice(&buf[..n.min(buf.len())]);
                let missing = c.request.len() - c.reply.len().min(c.request.len());
                if n == 0 || missing == 0 {
                    if missing > 0 {
                        c.error = Some(Errno::ECONNRESET);
                    }
                    ring.close(c.fd, ctx(CLOSE));
                } else {
                    ring.recv(c.fd, vec![0u8; missing], 0, ctx(RECV));
                }
            }
            (CLOSE, _) => {}
            (
                _,
                Some(OpResult::Connect(Err(e)) | OpResult::Send(Err(e)) | OpResult::Recv(Err(e))),
            ) => {
                // Any failure after the socket exists: close it first, report afterwards.
                c.error = Some(e);
                ring.close(c.fd, ctx(CLOSE));
            }
            (msg, other) => {
                return Err(RingError::callback(format!(
                    "step {msg}: unexpected {other:?}"
                )));
            }
        }
        Ok(())
    })
}

/// Connects to `addr`, sends `request`, and reads as many bytes back.
pub fn request(addr: SocketAddr, request: &[u8]) -> Result<Result<Vec<u8>, Errno>, RingError> {
    let mut ring = Ring::init(16)?;
    CLIENT.with(|client| {
        *client.borrow_mut() = Some(Client {
            addr,
            request: request.to_vec(),
            fd: -1,
            sent: 0,
            reply: Vec::new(),
            error: None,
        });
    });
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    ring.socket(domain, libc::SOCK_STREAM, 0, ctx(SOCKET));
    let run = ring.run(RunCondition::UntilDone);
    let client = CLIENT.with(|client| client.borrow_mut().take());
    run?;
    Ok(match client {
        Some(Client { error: Some(e), .. }) => Err(e),
        Some(c) => Ok(c.reply),
        None => Err(Errno::EIO),
    })
}

/// A one-connection `std` echo server on loopback, for the no-argument run.
pub fn std_echo_once() -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });
    Ok((addr, server))
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (addr, server) = match args.next() {
        Some(addr) => (addr.parse()?, None),
        None => {
            let (addr, server) = std_echo_once()?;
            println!("no address given: talking to a std echo server on {addr}");
            (addr, Some(server))
        }
    };
    let message = args
        .next()
        .unwrap_or_else(|| "hello from xuring".to_owned());
    let reply = request(addr, message.as_bytes())??;
    println!("{}", String::from_utf8_lossy(&reply));
    if let Some(server) = server {
        let _ = server.join();
    }
    Ok(())
}
