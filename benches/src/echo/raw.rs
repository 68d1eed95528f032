//! The raw `io-uring` echo server: the same structure as xuring's, as a hand-written state
//! machine over `user_data` (the connection's index and the step).
//!
//! One accept is in flight until the expected connections are in (or, with
//! [`Until::Stopped`], until the stop eventfd is readable: then the accept is cancelled and
//! every open connection shut down, which ends its receive); each connection owns one
//! page: `RECV` into it, `SEND` the bytes received from it (the rest of them after a short
//! send), `RECV` again; `CLOSE` when the peer has closed.
//!
//! # Safety
//!
//! Pushing an entry is `unsafe`: every buffer it names must stay valid until its completion is
//! reaped. The receives and sends name a range of one page of `Pages`, the one of the
//! entry's connection: a connection has at most one operation in flight, the pages are
//! allocated once for every expected connection and never resized, and the ring is declared
//! after them in [`serve`], so it is dropped (closed, its operations gone) before they are
//! freed. Accepts name no memory (no peer address is asked for); closes, shutdowns and
//! cancels name none. The stop read names an 8-byte buffer that [`serve`] declares before the
//! ring, for the same reason.

use std::net::TcpListener;
use std::os::fd::{AsRawFd as _, RawFd};

use io_uring::{IoUring, opcode, squeue, types};
use xuring_sys::SetupFlags;

use super::{BUF_SIZE, MAX_ACCEPT_ERRORS, ServerStats, Until, ring_entries};
use crate::error::BenchError;
use crate::raw::raw_ring;

const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;
const CLOSE: u64 = 4;
const STOP: u64 = 5;
const CANCEL: u64 = 6;
const SHUTDOWN: u64 = 7;

/// The connection index of one accepted as the server stopped or with no slot free.
const REFUSED: usize = (u32::MAX >> 1) as usize;

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

/// Pushes `entry`, submitting what is queued first if the SQ is full.
fn push(ring: &mut IoUring, entry: &squeue::Entry) -> Result<(), BenchError> {
    for _ in 0..2 {
        // SAFETY: every entry this server pushes names only the page of its own connection,
        // which no other operation uses and which outlives the ring, the stop buffer, which
        // outlives the ring too (see the module's safety notes), or no memory at all.
        let pushed = unsafe { ring.submission().push(entry) };
        if pushed.is_ok() {
            return Ok(());
        }
        ring.submit()
            .map_err(|e| BenchError::Io("io_uring_enter (raw echo)", e))?;
    }
    Err(BenchError::Other("raw echo: SQ full".to_owned()))
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

/// Serves connections on `listener` with a raw ring created with `setup` until `until`,
/// then returns what it counted. Calls `ready` once the ring exists and the first accept is
/// queued.
pub fn serve(
    listener: &TcpListener,
    until: Until,
    setup: SetupFlags,
    ready: impl FnOnce(),
) -> Result<ServerStats, BenchError> {
    let slots = until.slots() as usize;
    let expected = match until {
        Until::Closed(n) => Some(u64::from(n)),
        Until::Stopped { .. } => None,
    };
    let listener = listener.as_raw_fd();
    // Declared before the ring, so freed after it (see the module's safety notes).
    let mut pages: Pages = (0..slots).map(|_| Page([0; BUF_SIZE])).collect();
    let mut stop_buf = [0u8; 8];
    let mut ring = raw_ring(ring_entries(until.slots()), setup)
        .map_err(|e| BenchError::Io("io_uring_setup (raw echo)", e))?;
    let mut table: Vec<Conn> = Vec::with_capacity(slots);
    let mut free: Vec<usize> = Vec::with_capacity(slots);
    let mut stats = ServerStats::default();
    let mut accept_errors = 0u64;
    let mut stopping = false;
    // Completions are copied out first: handling one pushes entries on the same ring.
    let mut cqes: Vec<(u64, i32)> = Vec::with_capacity(ring.params().cq_entries() as usize);
    push(&mut ring, &accept(listener))?;
    let mut in_flight = 1usize;
    if let Until::Stopped { stop, .. } = until {
        let read = opcode::Read::new(types::Fd(stop), stop_buf.as_mut_ptr(), 8)
            .build()
            .user_data(user_data(0, STOP));
        push(&mut ring, &read)?;
        in_flight += 1;
    }
    ready();
    loop {
        let done = match expected {
            // Every connection ends with its peer closing it; the client closes them all
            // when it is done (and when it fails), so this ends.
            Some(n) => stats.closed >= n,
            None => stopping && stats.closed == stats.accepted && in_flight == 0,
        };
        if done {
            break;
        }
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
                ACCEPT if res >= 0 => {
                    stats.accepted += 1;
                    let slot = if stopping {
                        None
                    } else if let Some(slot) = free.pop() {
                        Some(slot)
                    } else if table.len() < slots {
                        table.push(Conn {
                            fd: -1,
                            len: 0,
                            sent: 0,
                        });
                        Some(table.len() - 1)
                    } else {
                        None
                    };
                    match slot {
                        Some(index) => {
                            table[index] = Conn {
                                fd: res,
                                len: 0,
                                sent: 0,
                            };
                            push(&mut ring, &recv(&mut pages, index, res))?;
                        }
                        None => {
                            stats.refused += u64::from(!stopping);
                            push(&mut ring, &close(REFUSED, res))?;
                        }
                    }
                    in_flight += 1;
                    if !stopping && expected.is_none_or(|n| stats.accepted < n) {
                        push(&mut ring, &accept(listener))?;
                        in_flight += 1;
                    }
                }
                ACCEPT => {
                    if !stopping {
                        stats.errors += 1;
                        accept_errors += 1;
                        if accept_errors > MAX_ACCEPT_ERRORS {
                            return Err(BenchError::Io(
                                "accept (raw echo)",
                                std::io::Error::from_raw_os_error(-res),
                            ));
                        }
                        push(&mut ring, &accept(listener))?;
                        in_flight += 1;
                    }
                }
                RECV => {
                    let c = &mut table[conn];
                    if res > 0 && !stopping {
                        c.len = res as usize;
                        c.sent = 0;
                        push(&mut ring, &send(&pages, conn, c))?;
                    } else {
                        stats.errors += u64::from(res < 0 && !stopping);
                        push(&mut ring, &close(conn, c.fd))?;
                    }
                    in_flight += 1;
                }
                SEND => {
                    let c = &mut table[conn];
                    if res > 0 && c.sent + res as usize <= c.len && !stopping {
                        c.sent += res as usize;
                        stats.echoed += res as u64;
                        if c.sent == c.len {
                            stats.echoes += 1;
                            let fd = c.fd;
                            push(&mut ring, &recv(&mut pages, conn, fd))?;
                        } else {
                            push(&mut ring, &send(&pages, conn, c))?;
                        }
                    } else {
                        stats.errors += u64::from(!stopping);
                        push(&mut ring, &close(conn, c.fd))?;
                    }
                    in_flight += 1;
                }
                CLOSE => {
                    stats.errors += u64::from(res < 0);
                    stats.closed += 1;
                    if conn != REFUSED {
                        table[conn].fd = -1;
                        free.push(conn);
                    }
                }
                STOP => {
                    stopping = true;
                    let cancel = opcode::AsyncCancel::new(user_data(0, ACCEPT))
                        .build()
                        .user_data(user_data(0, CANCEL));
                    push(&mut ring, &cancel)?;
                    in_flight += 1;
                    // A shutdown ends the receive in flight (it returns 0), whose completion
                    // closes the connection.
                    for (index, c) in table.iter().enumerate() {
                        if c.fd >= 0 {
                            let shutdown = opcode::Shutdown::new(types::Fd(c.fd), libc::SHUT_RDWR)
                                .build()
                                .user_data(user_data(index, SHUTDOWN));
                            push(&mut ring, &shutdown)?;
                            in_flight += 1;
                        }
                    }
                }
                CANCEL | SHUTDOWN => {}
                _ => return Err(BenchError::Other("raw echo: a stray completion".into())),
            }
        }
    }
    drop(ring);
    drop(pages);
    Ok(stats)
}
