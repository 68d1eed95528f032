//! Scratch buffers, and the transfer window: how a helper finishes a short transfer.
//!
//! [`Window`] submits the caller's buffer, and if the kernel moves fewer bytes than it holds,
//! submits the same buffer again advanced past what moved ([`IoBuf::advance`]): the rest goes
//! out, or comes in, in place, with no copy and no scratch memory. [`Chunk`]s are the scratch
//! buffers of the helpers that need their own memory (a file copy).

use std::os::fd::RawFd;

use xuring_core::{Backend, BufferPool, Context, Errno, IoBuf, Offset, OpResult, PoolBuf, Ring};
use xuring_core::{Task, TaskHandle};

use crate::Error;

/// The errno a step reports for a result of the wrong kind, which only a broken backend can
/// produce.
pub(crate) const UNEXPECTED: Errno = Errno::EIO;

/// The byte count of a transfer op's result.
pub(crate) fn transferred(result: Option<OpResult>) -> Result<usize, Errno> {
    match result {
        Some(
            OpResult::Read(r)
            | OpResult::Write(r)
            | OpResult::Recv(r)
            | OpResult::Send(r)
            | OpResult::Splice(r),
        ) => r,
        _ => Err(UNEXPECTED),
    }
}

/// The fd of a socket or open result.
pub(crate) fn new_fd(result: Option<OpResult>) -> Result<RawFd, Errno> {
    match result {
        Some(OpResult::Socket(r) | OpResult::Open(r)) => r,
        _ => Err(UNEXPECTED),
    }
}

/// The outcome of a connect, close or fsync.
pub(crate) fn unit(result: Option<OpResult>) -> Result<(), Errno> {
    match result {
        Some(OpResult::Connect(r) | OpResult::Close(r) | OpResult::Fsync(r)) => r,
        _ => Err(UNEXPECTED),
    }
}

/// Which kind of memory a chunk is, to get it back out of an [`IoBuf`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChunkKind {
    Vec,
    Pool,
}

/// A scratch buffer owned by a job: a buffer of the ring's pool, or a `Vec`.
#[derive(Debug)]
pub(crate) enum Chunk {
    Vec(Vec<u8>),
    Pool(PoolBuf),
}

impl Chunk {
    /// A scratch buffer for up to `want` bytes: a free buffer of the ring's pool if it has one
    /// (no allocation), else a new `Vec` of `want` bytes.
    pub(crate) fn new<B: Backend>(ring: &Ring<B>, want: usize) -> Chunk {
        if let Some(mut buf) = ring.buffers().and_then(BufferPool::get) {
            buf.set_len(want.min(buf.capacity()));
            return Chunk::Pool(buf);
        }
        Chunk::Vec(vec![0; want])
    }

    pub(crate) fn kind(&self) -> ChunkKind {
        match self {
            Chunk::Vec(_) => ChunkKind::Vec,
            Chunk::Pool(_) => ChunkKind::Pool,
        }
    }

    /// The most bytes the chunk holds without reallocating.
    pub(crate) fn limit(&self) -> usize {
        match self {
            Chunk::Vec(v) => v.capacity(),
            Chunk::Pool(p) => p.capacity(),
        }
    }

    /// Sets the length the next op uses (at most [`limit`](Self::limit)).
    pub(crate) fn set_len(&mut self, len: usize) {
        let len = len.min(self.limit());
        match self {
            Chunk::Vec(v) => v.resize(len, 0),
            Chunk::Pool(p) => p.set_len(len),
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Chunk::Vec(v) => v,
            Chunk::Pool(p) => p,
        }
    }

    pub(crate) fn into_buf(self) -> IoBuf {
        match self {
            Chunk::Vec(v) => v.into(),
            Chunk::Pool(p) => p.into(),
        }
    }

    /// The chunk back from the buffer an op returned.
    pub(crate) fn back(buf: IoBuf, kind: ChunkKind) -> Option<Chunk> {
        match kind {
            ChunkKind::Vec => buf.into_vec().map(Chunk::Vec),
            ChunkKind::Pool => buf.into_pool_buf().map(Chunk::Pool),
        }
    }
}

/// Which op a window uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Io {
    Send,
    Recv,
    Write(Offset),
    Read(Offset),
}

impl Io {
    /// Whether the kernel writes into the buffer.
    fn incoming(self) -> bool {
        matches!(self, Io::Recv | Io::Read(_))
    }
}

/// What a window's completion amounted to.
pub(crate) enum Moved<B: Backend> {
    /// The whole buffer was transferred (or, for a single-shot window, the one op finished).
    Done,
    /// The rest is in flight.
    More(TaskHandle<B>),
    /// The transfer failed, or was cancelled; what was moved so far is counted.
    Failed(Error),
}

/// Transfers a whole buffer over one fd, resubmitting the caller's buffer advanced past what
/// each op moved.
#[derive(Debug)]
pub(crate) struct Window {
    io: Io,
    fd: RawFd,
    /// The caller's buffer, whenever it is not in flight.
    caller: Option<IoBuf>,
    /// The buffer's own offset when the caller handed it over, restored when it goes back.
    origin: usize,
    total: usize,
    done: usize,
    /// Whether the caller's buffer is with an op.
    in_flight: bool,
    /// Whether to keep going until the buffer is full (false: one op only).
    whole: bool,
}

impl Window {
    pub(crate) fn new(io: Io, fd: RawFd, buf: IoBuf, whole: bool) -> Window {
        Window {
            io,
            fd,
            total: buf.len(),
            origin: buf.offset(),
            caller: Some(buf),
            done: 0,
            in_flight: false,
            whole,
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    /// Submits the caller's buffer: the first op.
    pub(crate) fn submit_first<B: Backend>(
        &mut self,
        ring: &mut Ring<B>,
        ctx: Context<B>,
    ) -> TaskHandle<B> {
        let buf = self
            .caller
            .take()
            .unwrap_or_else(|| IoBuf::from(Vec::new()));
        self.in_flight = true;
        self.submit(ring, buf, ctx)
    }

    fn submit<B: Backend>(&self, ring: &mut Ring<B>, buf: IoBuf, ctx: Context<B>) -> TaskHandle<B> {
        let at = |offset: Offset| match offset {
            Offset::File => Offset::File,
            Offset::At(o) => Offset::At(o.saturating_add(self.done as u64)),
        };
        match self.io {
            Io::Send => ring.send(self.fd, buf, 0, ctx),
            Io::Recv => ring.recv(self.fd, buf, 0, ctx),
            Io::Write(offset) => ring.write(self.fd, buf, at(offset), ctx),
            Io::Read(offset) => ring.read(self.fd, buf, at(offset), ctx),
        }
    }

    /// Takes in the completion of the window's op; submits the rest (with `ctx`) if some is
    /// left. `stop` (the job was cancelled) ends the transfer instead of continuing it.
    pub(crate) fn absorb<B: Backend>(
        &mut self,
        ring: &mut Ring<B>,
        task: &Task<B>,
        ctx: Context<B>,
        stop: bool,
    ) -> Moved<B> {
        if core::mem::replace(&mut self.in_flight, false) {
            self.caller = task.take_buf();
        }
        let n = match transferred(task.result) {
            Ok(n) => n,
            Err(e) => return Moved::Failed(Error::Os(e)),
        };
        let n = n.min(self.total - self.done);
        self.done += n;
        if self.done == self.total || !self.whole {
            return Moved::Done;
        }
        if stop {
            return Moved::Failed(Error::Os(Errno::ECANCELED));
        }
        if n == 0 {
            return Moved::Failed(if self.io.incoming() {
                Error::UnexpectedEof
            } else {
                Error::WriteZero
            });
        }
        let Some(mut buf) = self.caller.take() else {
            return Moved::Failed(Error::Os(UNEXPECTED));
        };
        // The rest of the same buffer, in place: `n` is at most what is left of it.
        buf.advance(n.min(buf.len()));
        self.in_flight = true;
        Moved::More(self.submit(ring, buf, ctx))
    }

    /// The caller's buffer (at the offset it came with) and the bytes moved, once nothing is
    /// in flight.
    pub(crate) fn take(&mut self) -> (IoBuf, usize) {
        debug_assert!(!self.in_flight);
        let mut buf = self
            .caller
            .take()
            .unwrap_or_else(|| IoBuf::from(Vec::new()));
        buf.rewind();
        buf.advance(self.origin.min(buf.len()));
        (buf, self.done)
    }
}
