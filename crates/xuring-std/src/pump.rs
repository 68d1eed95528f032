//! Moving bytes from one fd to another without user memory: `splice` into a pipe and out of it,
//! or, where `splice` is refused, `read` into a buffer and a write of it. The copying part of
//! [`fs::copy_file`](crate::fs::copy_file) and [`net::send_file`](crate::net::send_file).

use std::io::{PipeReader, PipeWriter};
use std::os::fd::{AsRawFd, RawFd};

use xuring_core::{Backend, Errno, Offset, Ring, Task, TaskHandle};

use crate::Error;
use crate::chunk::{Chunk, ChunkKind, Io, Moved, UNEXPECTED, Window, transferred};
use crate::fs::CHUNK_SIZE;
use crate::job::{Machine, Step};

/// The steps a pump submits; a machine that owns one hands it every completion with one of
/// these (see [`Pump::owns`]) and keeps its own steps below them.
const SPLICE_IN: u16 = 0x100;
const SPLICE_OUT: u16 = 0x101;
const FALLBACK_READ: u16 = 0x102;
const FALLBACK_WRITE: u16 = 0x103;

/// What a pump's step came to.
pub(crate) enum Pumped<B: Backend> {
    /// Its next op is in flight.
    Wait(TaskHandle<B>),
    /// Everything asked for was moved (or the source ended, when no length was asked for).
    Done,
    /// It stopped: an error, a source that ended early, or a cancel.
    Failed(Error),
}

/// Moves bytes from `src` to `dst`: the fds are the caller's, never closed here.
#[derive(Debug)]
pub(crate) struct Pump {
    src: RawFd,
    /// Where the next read of `src` starts (`None`: its file position).
    at: Option<u64>,
    dst: RawFd,
    /// How the fallback writes to `dst` (`Io::Send` on a socket: no `SIGPIPE`).
    out: Io,
    /// Bytes still to move (`None`: until the source ends).
    left: Option<u64>,
    pipe: Option<(PipeReader, PipeWriter)>,
    /// Bytes in the pipe, not yet spliced out.
    in_pipe: usize,
    moved: u64,
    /// The fallback's buffer (when not in flight) and its write window.
    chunk: Option<Chunk>,
    chunk_kind: ChunkKind,
    window: Option<Window>,
}

impl Pump {
    pub(crate) fn new(src: RawFd, at: Option<u64>, dst: RawFd, out: Io, left: Option<u64>) -> Pump {
        Pump {
            src,
            at,
            dst,
            out,
            left,
            pipe: None,
            in_pipe: 0,
            moved: 0,
            chunk: None,
            chunk_kind: ChunkKind::Vec,
            window: None,
        }
    }

    /// Bytes moved into `dst` so far.
    pub(crate) fn moved(&self) -> u64 {
        self.moved
    }

    /// Whether a completion with step `msg` is the pump's.
    pub(crate) fn owns(msg: u16) -> bool {
        (SPLICE_IN..=FALLBACK_WRITE).contains(&msg)
    }

    /// The first step: a pipe and a splice into it, or the fallback if no pipe can be made.
    pub(crate) fn start<B: Backend + 'static, M: Machine<B>>(
        &mut self,
        ring: &mut Ring<B>,
        step: &Step<B, M>,
    ) -> Pumped<B> {
        match std::io::pipe() {
            Ok(pipe) => {
                self.pipe = Some(pipe);
                self.splice_in(ring, step)
            }
            // No pipe (out of fds): the fallback needs none.
            Err(_) => self.fallback_read(ring, step),
        }
    }

    /// How much the next read or splice from the source asks for; `None` once all is moved.
    fn want(&self) -> Option<usize> {
        match self.left {
            None => Some(CHUNK_SIZE),
            Some(0) => None,
            Some(left) => Some(usize::try_from(left).unwrap_or(CHUNK_SIZE).min(CHUNK_SIZE)),
        }
    }

    /// The end of the source: done if no length was asked for (or all of it was moved), else
    /// too early.
    fn source_ended<B: Backend>(&self) -> Pumped<B> {
        match self.left {
            None | Some(0) => Pumped::Done,
            Some(_) => Pumped::Failed(Error::UnexpectedEof),
        }
    }

    /// `n` bytes were taken from the source.
    fn took(&mut self, n: usize) {
        self.at = self.at.map(|at| at + n as u64);
    }

    /// `n` bytes reached the destination.
    fn gave(&mut self, n: usize) {
        self.moved += n as u64;
        self.left = self.left.map(|left| left.saturating_sub(n as u64));
    }

    /// How much the next read or splice from the source asks for; the pump's end instead
    /// once all is moved or the job was cancelled.
    fn next<B: Backend + 'static, M: Machine<B>>(
        &self,
        step: &Step<B, M>,
    ) -> Result<usize, Pumped<B>> {
        if step.cancelled() {
            return Err(Pumped::Failed(Errno::ECANCELED.into()));
        }
        self.want().ok_or(Pumped::Done)
    }

    fn splice_in<B: Backend + 'static, M: Machine<B>>(
        &mut self,
        ring: &mut Ring<B>,
        step: &Step<B, M>,
    ) -> Pumped<B> {
        let want = match self.next(step) {
            Ok(want) => want,
            Err(end) => return end,
        };
        let Some((_, writer)) = &self.pipe else {
            return Pumped::Failed(UNEXPECTED.into());
        };
        Pumped::Wait(ring.splice(
            self.src,
            self.at,
            writer.as_raw_fd(),
            None,
            want as u32,
            0,
            step.ctx(SPLICE_IN),
        ))
    }

    fn splice_out<B: Backend + 'static, M: Machine<B>>(
        &mut self,
        ring: &mut Ring<B>,
        step: &Step<B, M>,
    ) -> Pumped<B> {
        let Some((reader, _)) = &self.pipe else {
            return Pumped::Failed(UNEXPECTED.into());
        };
        Pumped::Wait(ring.splice(
            reader.as_raw_fd(),
            None,
            self.dst,
            None,
            u32::try_from(self.in_pipe).unwrap_or(u32::MAX),
            0,
            step.ctx(SPLICE_OUT),
        ))
    }

    fn fallback_read<B: Backend + 'static, M: Machine<B>>(
        &mut self,
        ring: &mut Ring<B>,
        step: &Step<B, M>,
    ) -> Pumped<B> {
        let want = match self.next(step) {
            Ok(want) => want,
            Err(end) => return end,
        };
        let mut chunk = self
            .chunk
            .take()
            .unwrap_or_else(|| Chunk::new(ring, CHUNK_SIZE));
        chunk.set_len(want);
        self.chunk_kind = chunk.kind();
        let at = self.at.map_or(Offset::File, Offset::At);
        Pumped::Wait(ring.read(self.src, chunk.into_buf(), at, step.ctx(FALLBACK_READ)))
    }

    /// Takes in the completion of one of the pump's steps and submits the next.
    pub(crate) fn advance<B: Backend + 'static, M: Machine<B>>(
        &mut self,
        ring: &mut Ring<B>,
        task: &Task<B>,
        step: &Step<B, M>,
    ) -> Pumped<B> {
        match task.msg() {
            SPLICE_IN => match transferred(task.result) {
                Ok(0) => self.source_ended(),
                Ok(n) => {
                    self.took(n);
                    self.in_pipe = n;
                    self.splice_out(ring, step)
                }
                // The kernel has no SPLICE op (before 5.7), or a file system cannot splice:
                // move through user memory instead, from where we are (the pipe is empty).
                Err(Errno::EOPNOTSUPP | Errno::EINVAL) if self.moved == 0 => {
                    self.pipe = None;
                    self.fallback_read(ring, step)
                }
                Err(e) => Pumped::Failed(e.into()),
            },
            SPLICE_OUT => match transferred(task.result) {
                Ok(0) => Pumped::Failed(Error::WriteZero),
                Ok(n) => {
                    let n = n.min(self.in_pipe);
                    self.in_pipe -= n;
                    self.gave(n);
                    if self.in_pipe > 0 {
                        // What is in the pipe must come out, even after a cancel: the pipe is
                        // ours alone, but the bytes belong to the destination.
                        self.splice_out(ring, step)
                    } else {
                        self.splice_in(ring, step)
                    }
                }
                Err(e) => Pumped::Failed(e.into()),
            },
            FALLBACK_READ => {
                let chunk = task
                    .take_buf()
                    .and_then(|buf| Chunk::back(buf, self.chunk_kind));
                match (transferred(task.result), chunk) {
                    (Ok(0), chunk) => {
                        self.chunk = chunk;
                        self.source_ended()
                    }
                    (Ok(n), Some(mut chunk)) => {
                        // Never more than was read into (a backend reporting more would
                        // otherwise send stale bytes of the buffer).
                        let n = n.min(chunk.as_slice().len());
                        self.took(n);
                        chunk.set_len(n);
                        let mut window = Window::new(self.out, self.dst, chunk.into_buf(), true);
                        let next = window.submit_first(ring, step.ctx(FALLBACK_WRITE));
                        self.window = Some(window);
                        Pumped::Wait(next)
                    }
                    (Ok(_), None) => Pumped::Failed(UNEXPECTED.into()),
                    (Err(e), chunk) => {
                        self.chunk = chunk;
                        Pumped::Failed(e.into())
                    }
                }
            }
            FALLBACK_WRITE => {
                let Some(window) = self.window.as_mut() else {
                    return Pumped::Failed(UNEXPECTED.into());
                };
                match window.absorb(ring, task, step.ctx(FALLBACK_WRITE), step.cancelled()) {
                    Moved::More(next) => Pumped::Wait(next),
                    done => {
                        let (buf, len) = window.take();
                        self.window = None;
                        self.gave(len);
                        self.chunk = Chunk::back(buf, self.chunk_kind);
                        match done {
                            Moved::Failed(e) => Pumped::Failed(e),
                            _ => self.fallback_read(ring, step),
                        }
                    }
                }
            }
            _ => Pumped::Failed(UNEXPECTED.into()),
        }
    }
}
