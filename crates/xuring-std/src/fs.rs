//! Files: read a whole file, write a whole file durably, copy a file through a pipe with
//! `splice`, and whole-buffer reads and writes on an fd.
//!
//! Paths are [`CPath`]s, as for [`Ring::open`]: `c"/etc/hostname"` (`'static`) or an owned
//! `CString`. Relative paths are relative to the current directory. Every helper closes what
//! it opened before it reports, on success and on every error path.

use std::os::fd::RawFd;

use xuring_core::{Backend, CPath, Errno, IoBuf, IoVecs, Offset, OpResult, Ring, Task, TaskHandle};

use crate::chunk::{Chunk, ChunkKind, Io, Moved, UNEXPECTED, Window, new_fd, transferred, unit};
use crate::job::{self, Machine, Progress, Step};
use crate::net::TransferJob;
use crate::pump::{Pump, Pumped};
use crate::{Error, Handle, Then, Transfer};

/// The size of the reads after the first in [`read_file`], and of each step of
/// [`copy_file`] (64 KiB, a default pipe's capacity).
pub const CHUNK_SIZE: usize = 64 * 1024;

/// Permission bits of files created by [`write_file`] and [`copy_file`], before the umask
/// (as `std::fs::File::create`).
pub const CREATE_MODE: u32 = 0o666;

const CREATE_FLAGS: i32 = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;

// ----- read_file -----

const OPEN: u16 = 0;
const STAT: u16 = 1;
const READ_FIRST: u16 = 2;
const READ_MORE: u16 = 3;
const CLOSE: u16 = 4;

struct ReadFile<B: Backend> {
    path: CPath,
    fd: RawFd,
    data: Vec<u8>,
    /// The scratch chunk of the reads after the first, when it is not in flight.
    scratch: Option<Chunk>,
    scratch_kind: ChunkKind,
    error: Option<Error>,
    then: Then<Result<Vec<u8>, Error>, B>,
}

impl<B: Backend + 'static> ReadFile<B> {
    fn close(
        &mut self,
        ring: &mut Ring<B>,
        step: &Step<B, Self>,
        error: Option<Error>,
    ) -> Progress<Result<Vec<u8>, Error>, B> {
        self.error = error;
        Progress::closing(ring.close(self.fd, step.ctx(CLOSE)))
    }

    fn read_more(&mut self, ring: &mut Ring<B>, step: &Step<B, Self>) -> TaskHandle<B> {
        let mut chunk = self
            .scratch
            .take()
            .unwrap_or_else(|| Chunk::new(ring, CHUNK_SIZE));
        chunk.set_len(CHUNK_SIZE);
        self.scratch_kind = chunk.kind();
        ring.read(self.fd, chunk.into_buf(), Offset::File, step.ctx(READ_MORE))
    }
}

impl<B: Backend + 'static> Machine<B> for ReadFile<B> {
    type Output = Result<Vec<u8>, Error>;

    fn start(&mut self, ring: &mut Ring<B>, step: &Step<B, Self>) -> TaskHandle<B> {
        ring.open(self.path.clone(), libc::O_RDONLY, 0, step.ctx(OPEN))
    }

    fn advance(
        &mut self,
        ring: &mut Ring<B>,
        task: &Task<B>,
        step: &Step<B, Self>,
    ) -> Progress<Self::Output, B> {
        let msg = task.msg();
        if msg == OPEN {
            return match new_fd(task.result) {
                Ok(fd) => {
                    self.fd = fd;
                    if step.cancelled() {
                        return self.close(ring, step, Some(Error::Os(Errno::ECANCELED)));
                    }
                    Progress::Wait(ring.stat(self.path.clone(), step.ctx(STAT)))
                }
                Err(e) => Progress::Finish(Err(Error::Os(e))),
            };
        }
        if msg == CLOSE {
            // A failed close still released the fd; after a read it loses nothing.
            return Progress::Finish(match self.error {
                Some(e) => Err(e),
                None => Ok(core::mem::take(&mut self.data)),
            });
        }
        if step.cancelled() {
            return self.close(ring, step, Some(Error::Os(Errno::ECANCELED)));
        }
        match msg {
            STAT => {
                let stat = match task.result {
                    Some(OpResult::Stat(Ok(stat))) => stat,
                    Some(OpResult::Stat(Err(e))) => return self.close(ring, step, Some(e.into())),
                    _ => return self.close(ring, step, Some(UNEXPECTED.into())),
                };
                if stat.is_dir() {
                    return self.close(ring, step, Some(Errno::EISDIR.into()));
                }
                // The size is a hint (the file may change, procfs files say 0): read until a
                // read returns 0. The first read goes straight into the result.
                let size = usize::try_from(stat.size).unwrap_or(usize::MAX);
                if size == 0 {
                    return Progress::Wait(self.read_more(ring, step));
                }
                let mut data = Vec::new();
                if data.try_reserve_exact(size).is_err() {
                    return self.close(ring, step, Some(Errno::ENOMEM.into()));
                }
                data.resize(size, 0);
                Progress::Wait(ring.read(self.fd, data, Offset::File, step.ctx(READ_FIRST)))
            }
            READ_FIRST => {
                self.data = task
                    .take_buf()
                    .and_then(IoBuf::into_vec)
                    .unwrap_or_default();
                match transferred(task.result) {
                    Ok(0) => {
                        self.data.clear();
                        self.close(ring, step, None)
                    }
                    Ok(n) => {
                        self.data.truncate(n);
                        Progress::Wait(self.read_more(ring, step))
                    }
                    Err(e) => self.close(ring, step, Some(e.into())),
                }
            }
            _ => {
                // READ_MORE: the bytes are in the scratch chunk.
                let chunk = task
                    .take_buf()
                    .and_then(|buf| Chunk::back(buf, self.scratch_kind));
                match (transferred(task.result), chunk) {
                    (Ok(0), _) => self.close(ring, step, None),
                    (Ok(n), Some(chunk)) => {
                        // A backend never reports more than it was given room for; if one
                        // did, the bytes past the chunk were never read.
                        let n = n.min(chunk.as_slice().len());
                        self.data.extend_from_slice(&chunk.as_slice()[..n]);
                        self.scratch = Some(chunk);
                        Progress::Wait(self.read_more(ring, step))
                    }
                    (Ok(_), None) => self.close(ring, step, Some(UNEXPECTED.into())),
                    (Err(e), _) => self.close(ring, step, Some(e.into())),
                }
            }
        }
    }

    fn then(&self) -> Then<Self::Output, B> {
        self.then
    }
}

/// Reads the whole file at `path`.
///
/// Steps: `open(O_RDONLY)`, `statx` for the size, one read of that size straight into the
/// result, then reads of [`CHUNK_SIZE`] until one returns 0 (so a file that grew, or a procfs
/// file that reports size 0, is read to its end), then `close`. Errors (after closing the
/// file, if it was opened): `open`'s (`ENOENT`, `EACCES`, ...), `statx`'s, `EISDIR` for a
/// directory, `ENOMEM` if the size cannot be allocated, a read's (`EIO`, ...), `ECANCELED`
/// after [`Handle::cancel`]. A failed `close` after a successful read is ignored (nothing can
/// be lost). Like `std::fs::read`, it has no size limit: do not point it at `/dev/zero`.
pub fn read_file<B: Backend + 'static>(
    ring: &mut Ring<B>,
    path: impl Into<CPath>,
    then: Then<Result<Vec<u8>, Error>, B>,
) -> Handle<B> {
    job::start(
        ring,
        ReadFile {
            path: path.into(),
            fd: -1,
            data: Vec::new(),
            scratch: None,
            scratch_kind: ChunkKind::Vec,
            error: None,
            then,
        },
    )
}

// ----- write_file -----

const WRITE: u16 = 1;
const FSYNC: u16 = 2;
const CLOSE_WRITTEN: u16 = 3;

/// The outcome of [`write_file`].
#[derive(Debug)]
pub struct Written {
    /// The caller's buffer, back.
    pub buf: IoBuf,
    /// Bytes written.
    pub len: usize,
    /// `Ok` when all of `buf` is written, synced and the file closed; otherwise the first
    /// error.
    pub status: Result<(), Error>,
}

struct WriteFile<B: Backend> {
    path: CPath,
    fd: RawFd,
    window: Window,
    error: Option<Error>,
    then: Then<Written, B>,
}

impl<B: Backend + 'static> WriteFile<B> {
    fn close(
        &mut self,
        ring: &mut Ring<B>,
        step: &Step<B, Self>,
        error: Option<Error>,
    ) -> Progress<Written, B> {
        self.error = error;
        Progress::closing(ring.close(self.fd, step.ctx(CLOSE_WRITTEN)))
    }

    fn finish(&mut self, status: Result<(), Error>) -> Progress<Written, B> {
        let (buf, len) = self.window.take();
        Progress::Finish(Written { buf, len, status })
    }
}

impl<B: Backend + 'static> Machine<B> for WriteFile<B> {
    type Output = Written;

    fn start(&mut self, ring: &mut Ring<B>, step: &Step<B, Self>) -> TaskHandle<B> {
        ring.open(self.path.clone(), CREATE_FLAGS, CREATE_MODE, step.ctx(OPEN))
    }

    fn advance(
        &mut self,
        ring: &mut Ring<B>,
        task: &Task<B>,
        step: &Step<B, Self>,
    ) -> Progress<Self::Output, B> {
        match task.msg() {
            OPEN => match new_fd(task.result) {
                Ok(fd) => {
                    self.fd = fd;
                    if step.cancelled() {
                        return self.close(ring, step, Some(Errno::ECANCELED.into()));
                    }
                    let (buf, _) = self.window.take();
                    self.window = Window::new(Io::Write(Offset::File), fd, buf, true);
                    Progress::Wait(self.window.submit_first(ring, step.ctx(WRITE)))
                }
                Err(e) => self.finish(Err(e.into())),
            },
            WRITE => match self
                .window
                .absorb(ring, task, step.ctx(WRITE), step.cancelled())
            {
                Moved::Done => Progress::Wait(ring.fsync(self.fd, step.ctx(FSYNC))),
                Moved::More(next) => Progress::Wait(next),
                Moved::Failed(e) => self.close(ring, step, Some(e)),
            },
            FSYNC => {
                let error = unit(task.result).err().map(Error::Os);
                self.close(ring, step, error)
            }
            _ => {
                // CLOSE_WRITTEN: a failed close can lose written data (NFS, ...): report it.
                let closed = unit(task.result).map_err(Error::Os);
                let status = match self.error {
                    Some(e) => Err(e),
                    None => closed,
                };
                self.finish(status)
            }
        }
    }

    fn then(&self) -> Then<Self::Output, B> {
        self.then
    }
}

/// Writes `buf` to the file at `path`, creating it (mode [`CREATE_MODE`] before the umask) or
/// truncating it, and makes it durable.
///
/// Steps: `open(O_WRONLY | O_CREAT | O_TRUNC)`, writes until all of `buf` is written (after a
/// short write, the same buffer advanced past what went out), `fsync`, `close`. `then` receives [`Written`]
/// with the buffer back. Errors (after closing the file, if it was opened): `open`'s
/// (`ENOENT` for a missing directory, `EACCES`, `EISDIR`, ...), a write's (`ENOSPC`, `EIO`,
/// ...), [`Error::WriteZero`], `fsync`'s, `close`'s, `ECANCELED` after [`Handle::cancel`].
pub fn write_file<B: Backend + 'static>(
    ring: &mut Ring<B>,
    path: impl Into<CPath>,
    buf: impl Into<IoBuf>,
    then: Then<Written, B>,
) -> Handle<B> {
    job::start(
        ring,
        WriteFile {
            path: path.into(),
            fd: -1,
            window: Window::new(Io::Write(Offset::File), -1, buf.into(), true),
            error: None,
            then,
        },
    )
}

// ----- copy_file -----

const OPEN_SRC: u16 = 0;
const OPEN_DST: u16 = 1;
const CLOSE_DST: u16 = 6;
const CLOSE_SRC: u16 = 7;

struct CopyFile<B: Backend> {
    from: CPath,
    to: CPath,
    src: RawFd,
    dst: RawFd,
    /// The copying, once both files are open.
    pump: Option<Pump>,
    copied: u64,
    error: Option<Error>,
    then: Then<Result<u64, Error>, B>,
}

impl<B: Backend + 'static> CopyFile<B> {
    /// Closes what is open (destination first), then reports.
    fn cleanup(
        &mut self,
        ring: &mut Ring<B>,
        step: &Step<B, Self>,
        error: Option<Error>,
    ) -> Progress<Copied, B> {
        if self.error.is_none() {
            self.error = error;
        }
        if let Some(pump) = self.pump.take() {
            self.copied = pump.moved();
        }
        if self.dst >= 0 {
            let fd = core::mem::replace(&mut self.dst, -1);
            return Progress::closing(ring.close(fd, step.ctx(CLOSE_DST)));
        }
        if self.src >= 0 {
            let fd = core::mem::replace(&mut self.src, -1);
            return Progress::closing(ring.close(fd, step.ctx(CLOSE_SRC)));
        }
        Progress::Finish(match self.error {
            Some(e) => Err(e),
            None => Ok(self.copied),
        })
    }

    /// What a step of the pump came to, for the job.
    fn pumped(
        &mut self,
        ring: &mut Ring<B>,
        step: &Step<B, Self>,
        pumped: Pumped<B>,
    ) -> Progress<Copied, B> {
        match pumped {
            Pumped::Wait(next) => Progress::Wait(next),
            Pumped::Done => self.cleanup(ring, step, None),
            Pumped::Failed(e) => self.cleanup(ring, step, Some(e)),
        }
    }
}

type Copied = Result<u64, Error>;

impl<B: Backend + 'static> Machine<B> for CopyFile<B> {
    type Output = Copied;

    fn start(&mut self, ring: &mut Ring<B>, step: &Step<B, Self>) -> TaskHandle<B> {
        ring.open(self.from.clone(), libc::O_RDONLY, 0, step.ctx(OPEN_SRC))
    }

    fn advance(
        &mut self,
        ring: &mut Ring<B>,
        task: &Task<B>,
        step: &Step<B, Self>,
    ) -> Progress<Self::Output, B> {
        match task.msg() {
            OPEN_SRC => match new_fd(task.result) {
                Ok(fd) => {
                    self.src = fd;
                    if step.cancelled() {
                        return self.cleanup(ring, step, Some(Errno::ECANCELED.into()));
                    }
                    Progress::Wait(ring.open(
                        self.to.clone(),
                        CREATE_FLAGS,
                        CREATE_MODE,
                        step.ctx(OPEN_DST),
                    ))
                }
                Err(e) => Progress::Finish(Err(e.into())),
            },
            OPEN_DST => match new_fd(task.result) {
                Ok(fd) => {
                    self.dst = fd;
                    let pump = self.pump.insert(Pump::new(
                        self.src,
                        None,
                        fd,
                        Io::Write(Offset::File),
                        None,
                    ));
                    let pumped = pump.start(ring, step);
                    self.pumped(ring, step, pumped)
                }
                Err(e) => self.cleanup(ring, step, Some(e.into())),
            },
            msg if Pump::owns(msg) => {
                let Some(pump) = self.pump.as_mut() else {
                    return self.cleanup(ring, step, Some(UNEXPECTED.into()));
                };
                let pumped = pump.advance(ring, task, step);
                self.pumped(ring, step, pumped)
            }
            CLOSE_DST => {
                // A failed close of the destination can lose data: report it.
                let error = unit(task.result).err().map(Error::Os);
                self.cleanup(ring, step, error)
            }
            _ => self.cleanup(ring, step, None),
        }
    }

    fn then(&self) -> Then<Self::Output, B> {
        self.then
    }
}

/// Copies the file at `from` to `to` (created with mode [`CREATE_MODE`] before the umask, or
/// truncated), returning the number of bytes copied.
///
/// Steps: `open(from, O_RDONLY)`, `open(to, O_WRONLY | O_CREAT | O_TRUNC)`, a pipe
/// (`std::io::pipe`), then `splice` from the source into the pipe and from the pipe into the
/// destination, [`CHUNK_SIZE`] at a time, until the source is exhausted: the bytes never pass
/// through user memory. Where `splice` is unavailable (`EOPNOTSUPP`: the kernel lacks the op)
/// or refused by the file system (`EINVAL` on the first splice), or no pipe can be made, it
/// copies with `read` and `write` through one buffer instead. Then both files are closed
/// (the destination first). No `fsync`: like `cp`, durability is the caller's choice.
///
/// Errors (after closing whatever was opened): either `open`'s (`ENOENT`, `EACCES`,
/// `EISDIR`, ...), a splice's, read's or write's (`ENOSPC`, `EIO`, ...), [`Error::WriteZero`],
/// a failed `close` of the destination, `ECANCELED` after [`Handle::cancel`] (the bytes
/// already in the pipe are written out first). The destination may hold a partial copy after
/// an error.
pub fn copy_file<B: Backend + 'static>(
    ring: &mut Ring<B>,
    from: impl Into<CPath>,
    to: impl Into<CPath>,
    then: Then<Result<u64, Error>, B>,
) -> Handle<B> {
    job::start(
        ring,
        CopyFile {
            from: from.into(),
            to: to.into(),
            src: -1,
            dst: -1,
            pump: None,
            copied: 0,
            error: None,
            then,
        },
    )
}

// ----- whole-buffer transfers on an fd -----

/// Writes all of `buf` to `fd` at `offset` ([`Offset::File`]: at the file position, the only
/// choice for pipes and terminals).
///
/// Steps: one write of the whole buffer; after a short write, the same buffer advanced past
/// what went out ([`IoBuf::advance`]: no copy), until all is written. `then` receives a [`Transfer`] with the buffer back. Errors:
/// a write's errno (`EBADF`, `EPIPE`, `ENOSPC`, ...), [`Error::WriteZero`], `ECANCELED` after
/// [`Handle::cancel`]; `len` says how much was written before.
pub fn write_all<B: Backend + 'static>(
    ring: &mut Ring<B>,
    fd: RawFd,
    buf: impl Into<IoBuf>,
    offset: Offset,
    then: Then<Transfer, B>,
) -> Handle<B> {
    TransferJob::start(ring, Io::Write(offset), fd, buf.into(), true, then)
}

/// Reads exactly `buf.len()` bytes from `fd` at `offset` into `buf`.
///
/// Steps: one read into the whole buffer; after a short read, another into the rest of the
/// same buffer (advanced past what arrived: no copy). Errors: a read's errno, [`Error::UnexpectedEof`] if
/// the file ended first (`len` bytes were read), `EFAULT` for a read-only buffer,
/// `ECANCELED` after [`Handle::cancel`].
pub fn read_exact<B: Backend + 'static>(
    ring: &mut Ring<B>,
    fd: RawFd,
    buf: impl Into<IoBuf>,
    offset: Offset,
    then: Then<Transfer, B>,
) -> Handle<B> {
    TransferJob::start(ring, Io::Read(offset), fd, buf.into(), true, then)
}

// ----- vectored writes -----

/// The outcome of [`writev_all`].
#[derive(Debug)]
pub struct VectoredTransfer {
    /// The fd written to (still open: the caller owns it).
    pub fd: RawFd,
    /// The caller's buffers, back, each at the offset it came with.
    pub bufs: IoVecs,
    /// Bytes written (all of the buffers' on success).
    pub len: usize,
    /// `Ok` when everything was written; otherwise why it stopped after `len` bytes.
    pub status: Result<(), Error>,
}

const WRITEV: u16 = 0;

/// A `writev` until every buffer is written.
struct WritevAll<B: Backend> {
    fd: RawFd,
    offset: Offset,
    /// The buffers, whenever they are not in flight.
    bufs: Option<IoVecs>,
    /// Each buffer's offset when handed over, if any was not 0 (else all are 0: no allocation).
    origins: Option<Vec<usize>>,
    total: usize,
    done: usize,
    then: Then<VectoredTransfer, B>,
}

impl<B: Backend + 'static> WritevAll<B> {
    fn submit(&self, ring: &mut Ring<B>, bufs: IoVecs, step: &Step<B, Self>) -> TaskHandle<B> {
        let at = match self.offset {
            Offset::File => Offset::File,
            Offset::At(o) => Offset::At(o.saturating_add(self.done as u64)),
        };
        ring.writev(self.fd, bufs, at, step.ctx(WRITEV))
    }

    fn finish(&mut self, status: Result<(), Error>) -> Progress<VectoredTransfer, B> {
        let mut bufs = self.bufs.take().unwrap_or_else(|| IoVecs::new(Vec::new()));
        for (i, buf) in bufs.bufs_mut().iter_mut().enumerate() {
            buf.rewind();
            let origin = self.origins.as_ref().and_then(|o| o.get(i)).copied();
            buf.advance(origin.unwrap_or(0).min(buf.len()));
        }
        Progress::Finish(VectoredTransfer {
            fd: self.fd,
            bufs,
            len: self.done,
            status,
        })
    }
}

impl<B: Backend + 'static> Machine<B> for WritevAll<B> {
    type Output = VectoredTransfer;

    fn start(&mut self, ring: &mut Ring<B>, step: &Step<B, Self>) -> TaskHandle<B> {
        let bufs = self.bufs.take().unwrap_or_else(|| IoVecs::new(Vec::new()));
        self.submit(ring, bufs, step)
    }

    fn advance(
        &mut self,
        ring: &mut Ring<B>,
        task: &Task<B>,
        step: &Step<B, Self>,
    ) -> Progress<Self::Output, B> {
        self.bufs = task.take_iovecs();
        let n = match task.result {
            Some(OpResult::Writev(r)) => r,
            _ => Err(UNEXPECTED),
        };
        let n = match n {
            Ok(n) => n.min(self.total - self.done),
            Err(e) => return self.finish(Err(e.into())),
        };
        self.done += n;
        if self.done == self.total {
            return self.finish(Ok(()));
        }
        if step.cancelled() {
            return self.finish(Err(Errno::ECANCELED.into()));
        }
        if n == 0 {
            return self.finish(Err(Error::WriteZero));
        }
        let Some(mut bufs) = self.bufs.take() else {
            return self.finish(Err(UNEXPECTED.into()));
        };
        // Skip what went out: whole buffers first, then part of the next, in place.
        let mut left = n;
        for buf in bufs.bufs_mut() {
            let skip = left.min(buf.len());
            buf.advance(skip);
            left -= skip;
        }
        Progress::Wait(self.submit(ring, bufs, step))
    }

    fn then(&self) -> Then<Self::Output, B> {
        self.then
    }
}

/// Writes all of `bufs`, in order, to `fd` at `offset` ([`Offset::File`]: at the file
/// position; the only choice for pipes and sockets), as one `writev` when the kernel takes it
/// all (a response's headers and body in one call, say).
///
/// Steps: one `writev` of every buffer; after a short write, another of the same buffers
/// advanced past what went out ([`IoBuf::advance`]: no copy), until all is written. `then`
/// receives a [`VectoredTransfer`] with the buffers back, each at the offset it came with.
/// Allocates nothing unless a buffer came with a non-zero offset. Errors: a write's errno
/// (`EBADF`, `EPIPE`, `ENOSPC`, ...), [`Error::WriteZero`], `ECANCELED` after
/// [`Handle::cancel`]; `len` says how much was written before. On a socket, `writev` is
/// `write`, which raises `SIGPIPE` when the peer is gone (ignore the signal, or use
/// [`send_all`](crate::net::send_all) per buffer, which does not).
pub fn writev_all<B: Backend + 'static>(
    ring: &mut Ring<B>,
    fd: RawFd,
    bufs: IoVecs,
    offset: Offset,
    then: Then<VectoredTransfer, B>,
) -> Handle<B> {
    let origins = bufs
        .bufs()
        .iter()
        .any(|b| b.offset() != 0)
        .then(|| bufs.bufs().iter().map(IoBuf::offset).collect());
    job::start(
        ring,
        WritevAll {
            fd,
            offset,
            total: bufs.total_len(),
            bufs: Some(bufs),
            origins,
            done: 0,
            then,
        },
    )
}
