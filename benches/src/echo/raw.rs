//! The raw `io-uring` echo server: the same structure as xuring's, as a hand-written state
//! machine over `user_data` (the connection's index and the step).
//!
//! One accept is in flight until the expected connections are in; each connection owns one
//! page: `RECV` into it, `SEND` the bytes received from it (the rest of them after a short
//! send), `RECV` again; `CLOSE` when the peer has closed.
//!
//! # Safety
//!
//! Pushing an entry is `unsafe`: every buffer it names must stay valid until its completion is
//! reaped. The receives and sends name a range of one page of [`Pages`], the one of the
//! entry's connection: a connection has at most one operation in flight, the pages are
//! allocated once for every expected connection and never resized, and the ring is declared
//! after them in [`serve`], so it is dropped (closed, its operations gone) before they are
//! freed. Accepts name no memory (no peer address is asked for); closes name none.

use std::net::TcpListener;
use std::os::fd::{AsRawFd as _, RawFd};

use io_uring::{IoUring, opcode, squeue, types};
use xuring_sys::SetupFlags;

use super::{BUF_SIZE, MAX_ACCEPT_ERRORS, ServerStats, ring_entries};
use crate::error::BenchError;
use crate::raw::raw_ring;

const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;
const CLOSE: u64 = 4;

fn user_data(conn: usize, step: u64) -> u64 {
    ((conn as u64) << 8) | step
}

/// One receive buffer.
#[repr(C, align(4096))]
struct Page([u8; BUF_SIZE]);

/// One page per connection.
type Pages = Vec<Page>;

/// A connection's progress.
#[derive(Clone, Copy, Debug)]
struct Conn {
    fd: RawFd,
    /// Bytes received and being sent back.
    len: usize,
    /// Of which sent.
    sent: usize,
}

fn push(ring: &mut IoUring, entry: &squeue::Entry) -> Result<(), BenchError> {
    // SAFETY: every entry this server pushes names only the page of its own connection,
    // which no other operation uses and which outlives the ring (see the module's safety
    // notes), or no memory at all.
    let pushed = unsafe { ring.submission().push(entry) };
    pushed.map_err(|_| BenchError::Other("raw echo: SQ full".to_owned()))
}

fn accept(listener: RawFd) -> squeue::Entry {
    opcode::Accept::new(
        types::Fd(listener),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    )
    .flags(libc::SOCK_CLOEXEC)
    .build()
    .user_data(user_data(0, ACCEPT))
}

fn recv(pages: &mut Pages, conn: usize, fd: RawFd) -> squeue::Entry {
    opcode::Recv::new(types::Fd(fd), pages[conn].0.as_mut_ptr(), BUF_SIZE as u32)
        .build()
        .user_data(user_data(conn, RECV))
}

fn send(pages: &Pages, conn: usize, c: &Conn) -> squeue::Entry {
    let rest = &pages[conn].0[c.sent..c.len];
    opcode::Send::new(types::Fd(c.fd), rest.as_ptr(), rest.len() as u32)
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(user_data(conn, SEND))
}

fn close(conn: usize, fd: RawFd) -> squeue::Entry {
    opcode::Close::new(types::Fd(fd))
        .build()
        .user_data(user_data(conn, CLOSE))
}

/// `submit_and_wait`, retrying `EINTR`; `EBUSY`/`EAGAIN` return so the caller reaps first.
fn submit_and_wait(ring: &IoUring, want: usize) -> Result<(), BenchError> {
    loop {
        match ring.submitter().submit_and_wait(want) {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EAGAIN)) => {
                return Ok(());
            }
            Err(e) => return Err(BenchError::Io("io_uring_enter (raw echo)", e)),
        }
    }
}

/// Serves `conns` connections on `listener` with a raw ring created with `setup`, then
/// returns what it counted. Calls `ready` once the ring exists and the first accept is
/// queued.
pub fn serve(
    listener: &TcpListener,
    conns: u32,
    setup: SetupFlags,
    ready: impl FnOnce(),
) -> Result<ServerStats, BenchError> {
    let expected = conns as usize;
    let listener = listener.as_raw_fd();
    // Declared before the ring, so freed after it (see the module's safety notes).
    let mut pages: Pages = (0..expected).map(|_| Page([0; BUF_SIZE])).collect();
    let mut ring = raw_ring(ring_entries(conns), setup)
        .map_err(|e| BenchError::Io("io_uring_setup (raw echo)", e))?;
    let mut table: Vec<Conn> = Vec::with_capacity(expected);
    let mut stats = ServerStats::default();
    let mut accept_errors = 0u64;
    // Completions are copied out first: handling one pushes entries on the same ring.
    let mut cqes: Vec<(u64, i32)> = Vec::with_capacity(ring.params().cq_entries() as usize);
    push(&mut ring, &accept(listener))?;
    ready();
    let mut in_flight = 1usize;
    // Every connection ends with its peer closing it; the client closes them all when it is
    // done (and when it fails), so this ends.
    while (stats.closed as usize) < expected {
        if in_flight == 0 {
            return Err(BenchError::Other(format!(
                "raw echo server: nothing left to wait for with {stats:?}"
            )));
        }
        submit_and_wait(&ring, 1)?;
        cqes.clear();
        cqes.extend(ring.completion().map(|cqe| (cqe.user_data(), cqe.result())));
        for &(data, res) in &cqes {
            in_flight -= 1;
            let conn = (data >> 8) as usize;
            match data & 0xff {
                ACCEPT => {
                    if res >= 0 {
                        let index = table.len();
                        if index >= expected {
                            return Err(BenchError::Other("raw echo: too many connections".into()));
                        }
                        table.push(Conn {
                            fd: res,
                            len: 0,
                            sent: 0,
                        });
                        stats.accepted += 1;
                        push(&mut ring, &recv(&mut pages, index, res))?;
                        in_flight += 1;
                    } else {
                        stats.errors += 1;
                        accept_errors += 1;
                        if accept_errors > MAX_ACCEPT_ERRORS {
                            return Err(BenchError::Io(
                                "accept (raw echo)",
                                std::io::Error::from_raw_os_error(-res),
                            ));
                        }
                    }
                    if (stats.accepted as usize) < expected {
                        push(&mut ring, &accept(listener))?;
                        in_flight += 1;
                    }
                }
                RECV => {
                    let c = &mut table[conn];
                    if res > 0 {
                        c.len = res as usize;
                        c.sent = 0;
                        push(&mut ring, &send(&pages, conn, c))?;
                    } else {
                        stats.errors += u64::from(res < 0);
                        push(&mut ring, &close(conn, c.fd))?;
                    }
                    in_flight += 1;
                }
                SEND => {
                    let c = &mut table[conn];
                    if res > 0 && c.sent + res as usize <= c.len {
                        c.sent += res as usize;
                        stats.echoed += res as u64;
                        if c.sent == c.len {
                            let fd = c.fd;
                            push(&mut ring, &recv(&mut pages, conn, fd))?;
                        } else {
                            push(&mut ring, &send(&pages, conn, c))?;
                        }
                    } else {
                        stats.errors += 1;
                        push(&mut ring, &close(conn, c.fd))?;
                    }
                    in_flight += 1;
                }
                CLOSE => {
                    stats.errors += u64::from(res < 0);
                    stats.closed += 1;
                }
                _ => return Err(BenchError::Other("raw echo: a stray completion".into())),
            }
        }
    }
    drop(ring);
    drop(pages);
    Ok(stats)
}
