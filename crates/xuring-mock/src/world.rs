//! The mock's world: what its descriptors are (files, directories, pipes, sockets, its own
//! ring) and what each op does to them, as Linux would.
//!
//! Descriptors the world makes (an open, a socket, an accept, [`listen`](World::listen),
//! [`pipe_pair`](World::pipe_pair)) are numbered from [`FIRST_FD`] up, far above any real
//! descriptor, and never reused. Descriptors a test names itself
//! ([`set_file`](crate::MockControl::set_file), [`pipe`](crate::MockControl::pipe)) keep their
//! numbers. A number below [`FIRST_FD`] the world never heard of is *loose*: reads return 0
//! and writes are only recorded, as they were before the mock had a world; every other op on
//! it fails with `EBADF`, and so does every op on a descriptor that was closed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::os::fd::RawFd;

use xuring_core::{Errno, Offset};

use crate::fs::{Fs, Ino, Kind, Resolve};
use crate::net::{SockId, Socket, State, loopback, reaches};
use crate::pipe::Pipe;

/// The first descriptor number the mock hands out (its own ring's): `1 << 30`, above any
/// descriptor a process can have (Linux's `nr_open` is `1 << 20` by default), so mock and
/// real descriptors never collide.
pub const FIRST_FD: RawFd = 1 << 30;

/// How far into a file a write may reach (the mock keeps files in memory): past it, `EFBIG`.
pub(crate) const MAX_FILE: u64 = 1 << 30;

/// The first port the mock gives a socket that connects, or listens at port 0.
const FIRST_PORT: u16 = 40000;

/// What a descriptor refers to.
#[derive(Debug)]
enum Object {
    /// A regular file, with the position reads and writes at [`Offset::File`] use.
    File {
        ino: Ino,
        pos: u64,
        read: bool,
        write: bool,
        append: bool,
    },
    /// A directory (opened to be named, not read): the start of `openat2` lookups.
    Dir(Ino),
    /// A pipe's read end.
    PipeRead(u64),
    /// A pipe's write end.
    PipeWrite(u64),
    Socket(SockId),
    /// The mock's own ring (the target of a `msg_ring`).
    Ring,
}

#[derive(Debug)]
struct Desc {
    object: Object,
    /// `O_NONBLOCK`: an op that would wait fails with `EAGAIN` instead.
    nonblock: bool,
}

/// How much an fd can take or give now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Avail {
    /// This many bytes (0 at the end of a file or stream); `usize::MAX` for no limit.
    Bytes(usize),
    /// Nothing now, maybe later: the op waits.
    Wait,
    /// A loose descriptor (see the module docs): reads return 0, writes are only recorded.
    Loose,
}

/// What a `stat` reports.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StatInfo {
    pub(crate) ino: u64,
    pub(crate) mode: u32,
    pub(crate) size: u64,
    pub(crate) nlink: u32,
}

/// The world: its filesystem, descriptors, pipes and sockets.
#[derive(Debug)]
pub(crate) struct World {
    fs: Fs,
    fds: BTreeMap<RawFd, Desc>,
    /// Descriptors below [`FIRST_FD`] that were closed: no longer loose.
    retired: BTreeSet<RawFd>,
    pipes: BTreeMap<u64, Pipe>,
    sockets: BTreeMap<SockId, Socket>,
    /// Listening sockets by address.
    listeners: BTreeMap<SocketAddr, SockId>,
    next_fd: RawFd,
    next_id: u64,
    next_port: u16,
}

impl Default for World {
    fn default() -> World {
        let mut fds = BTreeMap::new();
        fds.insert(
            FIRST_FD,
            Desc {
                object: Object::Ring,
                nonblock: false,
            },
        );
        World {
            fs: Fs::default(),
            fds,
            retired: BTreeSet::new(),
            pipes: BTreeMap::new(),
            sockets: BTreeMap::new(),
            listeners: BTreeMap::new(),
            next_fd: FIRST_FD + 1,
            next_id: 1,
            next_port: FIRST_PORT,
        }
    }
}

fn has(flags: u32, flag: i32) -> bool {
    flags & flag as u32 != 0
}

impl World {
    // ----- descriptors -----

    fn desc(&self, fd: RawFd) -> Result<&Desc, Errno> {
        self.fds.get(&fd).ok_or(Errno::EBADF)
    }

    /// Whether `fd` is loose (see the module docs).
    fn loose(&self, fd: RawFd) -> bool {
        (0..FIRST_FD).contains(&fd) && !self.fds.contains_key(&fd) && !self.retired.contains(&fd)
    }

    /// A new descriptor for `object`.
    fn new_fd(&mut self, object: Object, nonblock: bool) -> RawFd {
        let fd = self.next_fd;
        self.next_fd = self
            .next_fd
            .checked_add(1)
            .expect("mock descriptors run out");
        self.fds.insert(fd, Desc { object, nonblock });
        fd
    }

    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn new_port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = self.next_port.checked_add(1).unwrap_or(FIRST_PORT);
        port
    }

    /// Puts `object` at `fd` (a number the test chose), releasing what was there.
    fn install(&mut self, fd: RawFd, object: Object) {
        if let Some(old) = self.fds.remove(&fd) {
            self.release(old.object);
        }
        self.retired.remove(&fd);
        self.fds.insert(
            fd,
            Desc {
                object,
                nonblock: false,
            },
        );
    }

    /// What closing the last descriptor of `object` does to the rest of the world.
    fn release(&mut self, object: Object) {
        match object {
            Object::PipeRead(id) | Object::PipeWrite(id) => {
                if let Some(pipe) = self.pipes.get_mut(&id) {
                    if matches!(object, Object::PipeRead(_)) {
                        pipe.reader = false;
                    } else {
                        pipe.writer = false;
                    }
                    if !pipe.reader && !pipe.writer {
                        self.pipes.remove(&id);
                    }
                }
            }
            Object::Socket(id) => self.drop_socket(id),
            Object::File { .. } | Object::Dir(_) | Object::Ring => {}
        }
    }

    /// Removes socket `id`: its peer sees the connection closed; connections waiting at a
    /// listener are closed too.
    fn drop_socket(&mut self, id: SockId) {
        let Some(socket) = self.sockets.remove(&id) else {
            return;
        };
        match socket.state {
            State::Connected { peer, .. } => {
                if let Some(Socket {
                    state: State::Connected { hung_up, .. },
                    ..
                }) = self.sockets.get_mut(&peer)
                {
                    *hung_up = true;
                }
            }
            State::Listening(queue) => {
                self.listeners.retain(|_, l| *l != id);
                for (waiting, _) in queue {
                    self.drop_socket(waiting);
                }
            }
            State::Fresh | State::Datagram(_) => {}
        }
    }

    /// `close`: `EBADF` for a descriptor the world does not have (or the ring's own, which
    /// io_uring refuses to close).
    pub(crate) fn close(&mut self, fd: RawFd) -> Result<(), Errno> {
        match self.fds.get(&fd) {
            None
            | Some(Desc {
                object: Object::Ring,
                ..
            }) => return Err(Errno::EBADF),
            Some(_) => {}
        }
        let desc = self.fds.remove(&fd).expect("looked up above");
        if fd < FIRST_FD {
            self.retired.insert(fd);
        }
        self.release(desc.object);
        Ok(())
    }

    /// `shutdown`: `SHUT_WR` ends this end's sending (the peer reads EOF once it has read
    /// what was sent), `SHUT_RD` its receiving; `ENOTSOCK` for other descriptors, `ENOTCONN`
    /// for a socket without a connection, `EINVAL` for another `how`.
    pub(crate) fn shutdown(&mut self, fd: RawFd, how: i32) -> Result<(), Errno> {
        let Object::Socket(id) = self.desc(fd)?.object else {
            return Err(Errno::ENOTSOCK);
        };
        let (read, write) = match how {
            libc::SHUT_RD => (true, false),
            libc::SHUT_WR => (false, true),
            libc::SHUT_RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        let Some(Socket {
            state: State::Connected {
                peer, eof, wr_shut, ..
            },
            ..
        }) = self.sockets.get_mut(&id)
        else {
            return Err(Errno::ENOTCONN);
        };
        *eof |= read;
        *wr_shut |= write;
        let peer = *peer;
        if write
            && let Some(Socket {
                state: State::Connected { eof, .. },
                ..
            }) = self.sockets.get_mut(&peer)
        {
            *eof = true;
        }
        Ok(())
    }

    /// Forgets `fd` if the world has it (the ring closed it in its teardown).
    pub(crate) fn forget(&mut self, fd: RawFd) {
        let _ = self.close(fd);
    }

    /// `fsync`: 0 for a file or directory, `EINVAL` for what cannot be synced.
    pub(crate) fn fsync(&self, fd: RawFd) -> Result<(), Errno> {
        match self.desc(fd)?.object {
            Object::File { .. } | Object::Dir(_) => Ok(()),
            Object::PipeRead(_) | Object::PipeWrite(_) | Object::Socket(_) | Object::Ring => {
                Err(Errno::EINVAL)
            }
        }
    }

    /// `fallocate`: mode 0 (growing the file), `FALLOC_FL_KEEP_SIZE`, and
    /// `FALLOC_FL_PUNCH_HOLE` or `FALLOC_FL_ZERO_RANGE` (which zero the range's bytes); other
    /// modes `EOPNOTSUPP`, as on a filesystem without them.
    pub(crate) fn fallocate(
        &mut self,
        fd: RawFd,
        mode: i32,
        offset: u64,
        len: u64,
    ) -> Result<(), Errno> {
        // In `vfs_fallocate`'s order.
        if len == 0 || offset > i64::MAX as u64 || len > i64::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        let ino = match self.desc(fd)?.object {
            Object::File {
                ino, write: true, ..
            } => ino,
            Object::File { .. } | Object::Dir(_) | Object::PipeRead(_) => return Err(Errno::EBADF),
            Object::PipeWrite(_) => return Err(Errno::ESPIPE),
            Object::Socket(_) | Object::Ring => return Err(Errno::ENODEV),
        };
        let keep = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let zero = match mode & !libc::FALLOC_FL_KEEP_SIZE {
            0 => false,
            libc::FALLOC_FL_PUNCH_HOLE if keep => true,
            libc::FALLOC_FL_ZERO_RANGE => true,
            _ => return Err(Errno::EOPNOTSUPP),
        };
        let end = offset.checked_add(len).ok_or(Errno::EFBIG)?;
        let Kind::File(data) = &mut self.fs.node_mut(ino).kind else {
            return Err(Errno::EBADF);
        };
        let size = data.len() as u64;
        if !keep && end > size {
            data.resize(end as usize, 0);
        }
        if zero {
            let stop = end.min(data.len() as u64) as usize;
            let start = (offset as usize).min(stop);
            data[start..stop].fill(0);
        }
        Ok(())
    }

    /// `posix_fadvise`: accepted (with no effect here) on anything but a pipe (`ESPIPE`), as
    /// `generic_fadvise` does; an unknown advice is `EINVAL`.
    pub(crate) fn fadvise(&self, fd: RawFd, advice: i32) -> Result<(), Errno> {
        if let Object::PipeRead(_) | Object::PipeWrite(_) = self.desc(fd)?.object {
            return Err(Errno::ESPIPE);
        }
        if !(0..=5).contains(&advice) {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    /// Whether `fd` is the mock's own ring (`Err(EBADFD)` for another descriptor, like
    /// `msg_ring` to something that is not a ring).
    pub(crate) fn ring(&self, fd: RawFd) -> Result<(), Errno> {
        match self.desc(fd)?.object {
            Object::Ring => Ok(()),
            _ => Err(Errno::from_raw(libc::EBADFD)),
        }
    }

    /// `Ok` if `fd` is a socket: `ENOTSOCK` for other descriptors (a `recv` on a pipe).
    pub(crate) fn socket_fd(&self, fd: RawFd) -> Result<(), Errno> {
        match self.desc(fd)?.object {
            Object::Socket(_) => Ok(()),
            _ => Err(Errno::ENOTSOCK),
        }
    }

    /// Whether `fd` is a pipe end.
    fn is_pipe(&self, fd: RawFd) -> Result<bool, Errno> {
        Ok(matches!(
            self.desc(fd)?.object,
            Object::PipeRead(_) | Object::PipeWrite(_)
        ))
    }

    /// `Wait`, or `EAGAIN` on a non-blocking descriptor.
    fn wait(&self, fd: RawFd) -> Result<Avail, Errno> {
        match self.fds.get(&fd) {
            Some(d) if d.nonblock => Err(Errno::EAGAIN),
            _ => Ok(Avail::Wait),
        }
    }

    // ----- reading and writing -----

    /// How many bytes a read of `fd` at `offset` gets now.
    pub(crate) fn readable(&self, fd: RawFd, offset: Offset) -> Result<Avail, Errno> {
        if self.loose(fd) {
            return Ok(Avail::Loose);
        }
        match &self.desc(fd)?.object {
            Object::File { read: false, .. } | Object::PipeWrite(_) => Err(Errno::EBADF),
            Object::File { ino, pos, .. } => {
                let start = match offset {
                    Offset::File => *pos,
                    Offset::At(at) => at,
                };
                let len = self.fs.node(*ino).size();
                Ok(Avail::Bytes(
                    usize::try_from(len.saturating_sub(start)).unwrap_or(usize::MAX),
                ))
            }
            Object::Dir(_) => Err(Errno::EISDIR),
            Object::PipeRead(id) => {
                let pipe = &self.pipes[id];
                if !pipe.data.is_empty() || !pipe.writer {
                    Ok(Avail::Bytes(pipe.data.len()))
                } else {
                    self.wait(fd)
                }
            }
            Object::Socket(id) => match &self.sockets[id].state {
                State::Connected {
                    rx, hung_up, eof, ..
                } => {
                    if !rx.is_empty() || *hung_up || *eof {
                        Ok(Avail::Bytes(rx.len()))
                    } else {
                        self.wait(fd)
                    }
                }
                // Nothing ever arrives at a datagram socket.
                State::Datagram(_) => self.wait(fd),
                State::Fresh | State::Listening(_) => Err(Errno::ENOTCONN),
            },
            Object::Ring => Err(Errno::EINVAL),
        }
    }

    /// Takes `n` bytes (no more than [`readable`](Self::readable) said) from `fd` at
    /// `offset`; a peek leaves them there.
    pub(crate) fn take(&mut self, fd: RawFd, offset: Offset, n: usize, peek: bool) -> Vec<u8> {
        let Some(desc) = self.fds.get_mut(&fd) else {
            return Vec::new();
        };
        match &mut desc.object {
            Object::File { ino, pos, .. } => {
                let start = match offset {
                    Offset::File => *pos,
                    Offset::At(at) => at,
                };
                let Kind::File(data) = &self.fs.node(*ino).kind else {
                    return Vec::new();
                };
                let start = usize::try_from(start).unwrap_or(usize::MAX).min(data.len());
                let end = start.saturating_add(n).min(data.len());
                if offset == Offset::File && !peek {
                    *pos += (end - start) as u64;
                }
                data[start..end].to_vec()
            }
            Object::PipeRead(id) => {
                let pipe = self.pipes.get_mut(id).expect("a pipe end's pipe");
                let n = n.min(pipe.data.len());
                pipe.data.drain(..n).collect()
            }
            Object::Socket(id) => match &mut self.sockets.get_mut(id).expect("a socket").state {
                State::Connected { rx, .. } => {
                    let n = n.min(rx.len());
                    if peek {
                        rx[..n].to_vec()
                    } else {
                        rx.drain(..n).collect()
                    }
                }
                _ => Vec::new(),
            },
            Object::Dir(_) | Object::PipeWrite(_) | Object::Ring => Vec::new(),
        }
    }

    /// How many bytes a write to `fd` may put now.
    pub(crate) fn writable(&self, fd: RawFd) -> Result<Avail, Errno> {
        if self.loose(fd) {
            return Ok(Avail::Loose);
        }
        match &self.desc(fd)?.object {
            Object::File { write: false, .. } | Object::Dir(_) | Object::PipeRead(_) => {
                Err(Errno::EBADF)
            }
            Object::File { .. } => Ok(Avail::Bytes(usize::MAX)),
            Object::PipeWrite(id) => {
                let pipe = &self.pipes[id];
                if !pipe.reader {
                    Err(Errno::EPIPE)
                } else if pipe.room() == 0 {
                    self.wait(fd)
                } else {
                    Ok(Avail::Bytes(pipe.room()))
                }
            }
            Object::Socket(id) => {
                let socket = &self.sockets[id];
                match &socket.state {
                    State::Connected { hung_up: true, .. }
                    | State::Connected { wr_shut: true, .. } => Err(Errno::EPIPE),
                    State::Connected { peer, .. } if !self.sockets.contains_key(peer) => {
                        Err(Errno::EPIPE)
                    }
                    State::Connected { .. } => Ok(Avail::Bytes(usize::MAX)),
                    State::Datagram(Some(_)) => Ok(Avail::Bytes(usize::MAX)),
                    State::Datagram(None) => Err(Errno::EDESTADDRREQ),
                    State::Fresh | State::Listening(_) => Err(Errno::EPIPE),
                }
            }
            Object::Ring => Err(Errno::EINVAL),
        }
    }

    /// Writes `bytes` (no more than [`writable`](Self::writable) said) to `fd` at `offset`.
    pub(crate) fn put(&mut self, fd: RawFd, offset: Offset, bytes: &[u8]) {
        let Some(desc) = self.fds.get_mut(&fd) else {
            return;
        };
        match &mut desc.object {
            Object::File {
                ino, pos, append, ..
            } => {
                let Kind::File(data) = &mut self.fs.node_mut(*ino).kind else {
                    return;
                };
                // With O_APPEND every write goes to the end, even one at an offset (as on
                // Linux).
                let at = match (*append, offset) {
                    (true, _) => data.len(),
                    (false, Offset::File) => usize::try_from(*pos).unwrap_or(usize::MAX),
                    (false, Offset::At(at)) => usize::try_from(at).unwrap_or(usize::MAX),
                };
                let end = at.saturating_add(bytes.len());
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[at..end].copy_from_slice(bytes);
                if offset == Offset::File || *append {
                    *pos = end as u64;
                }
            }
            Object::PipeWrite(id) => {
                if let Some(pipe) = self.pipes.get_mut(id) {
                    pipe.data.extend_from_slice(bytes);
                }
            }
            Object::Socket(id) => {
                if let Some(Socket {
                    state: State::Connected { peer, .. },
                    ..
                }) = self.sockets.get(id)
                {
                    let peer = *peer;
                    if let Some(Socket {
                        state: State::Connected { rx, .. },
                        ..
                    }) = self.sockets.get_mut(&peer)
                    {
                        rx.extend_from_slice(bytes);
                    }
                }
                // A datagram goes nowhere: nothing in the mock receives it.
            }
            Object::Dir(_) | Object::PipeRead(_) | Object::Ring => {}
        }
    }

    /// `poll`: the events of `events` (and `POLLERR`, `POLLHUP`, always reported) that `fd`
    /// has now; 0 to wait.
    pub(crate) fn poll(&self, fd: RawFd, events: u32) -> Result<u32, Errno> {
        const IN: u32 = (libc::POLLIN | libc::POLLRDNORM) as u32;
        const OUT: u32 = (libc::POLLOUT | libc::POLLWRNORM) as u32;
        const HUP: u32 = libc::POLLHUP as u32;
        const ERR: u32 = libc::POLLERR as u32;
        const RDHUP: u32 = libc::POLLRDHUP as u32;
        let ready = match &self.desc(fd)?.object {
            Object::File { .. } | Object::Dir(_) => IN | OUT,
            Object::PipeRead(id) => {
                let pipe = &self.pipes[id];
                (if pipe.data.is_empty() { 0 } else { IN }) | if pipe.writer { 0 } else { HUP }
            }
            Object::PipeWrite(id) => {
                let pipe = &self.pipes[id];
                (if pipe.room() > 0 { OUT } else { 0 }) | if pipe.reader { 0 } else { ERR }
            }
            Object::Socket(id) => match &self.sockets[id].state {
                State::Fresh => OUT | HUP,
                State::Listening(queue) => {
                    if queue.is_empty() {
                        0
                    } else {
                        IN
                    }
                }
                State::Connected {
                    rx, hung_up, eof, ..
                } => {
                    let done = *hung_up || *eof;
                    let readable = if !rx.is_empty() || done { IN } else { 0 };
                    readable | OUT | if done { RDHUP } else { 0 }
                }
                State::Datagram(_) => OUT,
            },
            Object::Ring => 0,
        };
        Ok(ready & (events | ERR | HUP))
    }

    /// `splice`: moves up to `len` bytes from `fd_in` to `fd_out`, one of which must be a pipe
    /// (`EINVAL` otherwise; `ESPIPE` for an offset on a pipe). `Ok(None)`: it waits (an empty
    /// pipe whose writer is open, a full one). `shorten` may cut the count (a short transfer).
    pub(crate) fn splice(
        &mut self,
        (fd_in, off_in): (RawFd, Option<u64>),
        (fd_out, off_out): (RawFd, Option<u64>),
        len: usize,
        nonblock: bool,
        shorten: impl FnOnce(usize) -> usize,
    ) -> Result<Option<usize>, Errno> {
        let (pipe_in, pipe_out) = (self.is_pipe(fd_in)?, self.is_pipe(fd_out)?);
        if !pipe_in && !pipe_out {
            return Err(Errno::EINVAL);
        }
        if (pipe_in && off_in.is_some()) || (pipe_out && off_out.is_some()) {
            return Err(Errno::ESPIPE);
        }
        if fd_in == fd_out
            || matches!(
                (&self.desc(fd_in)?.object, &self.desc(fd_out)?.object),
                (Object::PipeRead(a), Object::PipeWrite(b)) if a == b
            )
        {
            return Err(Errno::EINVAL);
        }
        if off_out.is_some_and(|at| at.saturating_add(len as u64) > MAX_FILE) {
            return Err(Errno::from_raw(libc::EFBIG));
        }
        let at_in = off_in.map_or(Offset::File, Offset::At);
        let at_out = off_out.map_or(Offset::File, Offset::At);
        let wait = |world: &World, fd| match world.wait(fd) {
            Ok(_) if nonblock => Err(Errno::EAGAIN),
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        };
        let room = match self.writable(fd_out)? {
            Avail::Bytes(n) => n,
            Avail::Wait => return wait(self, fd_out),
            Avail::Loose => unreachable!("a splice's descriptors are known"),
        };
        let available = match self.readable(fd_in, at_in)? {
            Avail::Bytes(n) => n,
            Avail::Wait => return wait(self, fd_in),
            Avail::Loose => unreachable!("a splice's descriptors are known"),
        };
        let n = len.min(available).min(room);
        if n == 0 {
            return Ok(Some(0));
        }
        let n = shorten(n);
        let bytes = self.take(fd_in, at_in, n, false);
        self.put(fd_out, at_out, &bytes);
        Ok(Some(bytes.len()))
    }

    // ----- the filesystem -----

    /// `open`: the `O_*` flags that matter (access mode, `O_CREAT`, `O_EXCL`, `O_TRUNC`,
    /// `O_APPEND`, `O_DIRECTORY`, `O_NOFOLLOW`, `O_NONBLOCK`); a fresh descriptor.
    pub(crate) fn open(&mut self, path: &[u8], flags: u32, mode: u32) -> Result<RawFd, Errno> {
        self.open_at(None, path, flags, mode, Resolve::default())
    }

    /// `openat2`: `open` relative to the directory `dir` (`None`: `/`, the mock's working
    /// directory) under the `RESOLVE_*` rules `how`. As `openat2(2)` demands, unknown `flags`
    /// bits and a `mode` without `O_CREAT` are `EINVAL`.
    pub(crate) fn openat2(
        &mut self,
        dir: RawFd,
        path: &[u8],
        how: &xuring_core::OpenHow,
    ) -> Result<RawFd, Errno> {
        const KNOWN_RESOLVE: u64 = libc::RESOLVE_NO_XDEV
            | libc::RESOLVE_NO_MAGICLINKS
            | libc::RESOLVE_NO_SYMLINKS
            | libc::RESOLVE_BENEATH
            | libc::RESOLVE_IN_ROOT
            | libc::RESOLVE_CACHED;
        let flags = u32::try_from(how.flags).map_err(|_| Errno::EINVAL)?;
        let creates = has(flags, libc::O_CREAT) || has(flags, libc::O_TMPFILE);
        if how.resolve & !KNOWN_RESOLVE != 0
            || (how.mode != 0 && !creates)
            || how.mode & !0o7777 != 0
            || (how.resolve & libc::RESOLVE_BENEATH != 0
                && how.resolve & libc::RESOLVE_IN_ROOT != 0)
        {
            return Err(Errno::EINVAL);
        }
        let resolve = Resolve {
            beneath: how.resolve & libc::RESOLVE_BENEATH != 0,
            in_root: how.resolve & libc::RESOLVE_IN_ROOT != 0,
            no_symlinks: how.resolve & libc::RESOLVE_NO_SYMLINKS != 0,
        };
        let dir = (dir != libc::AT_FDCWD).then_some(dir);
        self.open_at(dir, path, flags, how.mode as u32, resolve)
    }

    fn open_at(
        &mut self,
        dir: Option<RawFd>,
        path: &[u8],
        flags: u32,
        mode: u32,
        how: Resolve,
    ) -> Result<RawFd, Errno> {
        let start = match dir {
            None => self.fs.root(),
            Some(fd) => match self.desc(fd)?.object {
                Object::Dir(ino) => ino,
                _ => return Err(Errno::ENOTDIR),
            },
        };
        let access = flags & libc::O_ACCMODE as u32;
        if access == libc::O_ACCMODE as u32 {
            return Err(Errno::EINVAL);
        }
        let read = access != libc::O_WRONLY as u32;
        let write = access != libc::O_RDONLY as u32;
        let create = has(flags, libc::O_CREAT);
        let found = self
            .fs
            .lookup_at(start, path, !has(flags, libc::O_NOFOLLOW), how)?;
        let object = match found.node {
            Some(_) if create && has(flags, libc::O_EXCL) => return Err(Errno::EEXIST),
            Some(ino) => match &mut self.fs.node_mut(ino).kind {
                Kind::Symlink(_) => return Err(Errno::ELOOP),
                Kind::Dir(_) if write || create => return Err(Errno::EISDIR),
                Kind::Dir(_) => Object::Dir(ino),
                Kind::File(_) if has(flags, libc::O_DIRECTORY) => return Err(Errno::ENOTDIR),
                Kind::File(data) => {
                    if write && has(flags, libc::O_TRUNC) {
                        data.clear();
                    }
                    Object::File {
                        ino,
                        pos: 0,
                        read,
                        write,
                        append: has(flags, libc::O_APPEND),
                    }
                }
            },
            None if !create => return Err(Errno::ENOENT),
            None => {
                let ino = self.fs.make(Kind::File(Vec::new()), mode);
                self.fs.link(found.dir, found.name, ino);
                Object::File {
                    ino,
                    pos: 0,
                    read,
                    write,
                    append: has(flags, libc::O_APPEND),
                }
            }
        };
        Ok(self.new_fd(object, has(flags, libc::O_NONBLOCK)))
    }

    /// `unlinkat`: removes the name `path` (a directory's only with `AT_REMOVEDIR`, and only
    /// if it is empty). Descriptors open on the file keep it.
    pub(crate) fn unlink(&mut self, path: &[u8], flags: i32) -> Result<(), Errno> {
        if flags & !libc::AT_REMOVEDIR != 0 {
            return Err(Errno::EINVAL);
        }
        let found = self.fs.lookup(path, false)?;
        let ino = found.node.ok_or(Errno::ENOENT)?;
        if found.name.is_empty() {
            // `/`, `.` or `..`: not a name this call removes.
            return Err(Errno::EBUSY);
        }
        match (&self.fs.node(ino).kind, flags & libc::AT_REMOVEDIR != 0) {
            (Kind::Dir(entries), true) if !entries.is_empty() => return Err(Errno::ENOTEMPTY),
            (Kind::Dir(_), true) => {}
            (Kind::Dir(_), false) => return Err(Errno::EISDIR),
            (_, true) => return Err(Errno::ENOTDIR),
            (_, false) => {}
        }
        self.fs.unlink(found.dir, &found.name);
        Ok(())
    }

    /// `renameat2` with `flags` 0 or `RENAME_NOREPLACE` (others: `EINVAL`): moves the name
    /// `from` to `to`, replacing what `to` named if the kinds agree (an empty directory for
    /// a directory).
    pub(crate) fn rename(&mut self, from: &[u8], to: &[u8], flags: u32) -> Result<(), Errno> {
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return Err(Errno::EINVAL);
        }
        let source = self.fs.lookup(from, false)?;
        let moving = source.node.ok_or(Errno::ENOENT)?;
        let dest = self.fs.lookup(to, false)?;
        if source.name.is_empty() || dest.name.is_empty() {
            return Err(Errno::EBUSY);
        }
        if let Some(replaced) = dest.node {
            if replaced == moving {
                return Ok(());
            }
            if flags & libc::RENAME_NOREPLACE != 0 {
                return Err(Errno::EEXIST);
            }
            let from_dir = matches!(self.fs.node(moving).kind, Kind::Dir(_));
            match &self.fs.node(replaced).kind {
                Kind::Dir(_) if !from_dir => return Err(Errno::EISDIR),
                Kind::Dir(entries) if !entries.is_empty() => return Err(Errno::ENOTEMPTY),
                Kind::Dir(_) => {}
                _ if from_dir => return Err(Errno::ENOTDIR),
                _ => {}
            }
        }
        if matches!(self.fs.node(moving).kind, Kind::Dir(_)) && self.fs.is_within(dest.dir, moving)
        {
            // A directory cannot move into itself.
            return Err(Errno::EINVAL);
        }
        self.fs.unlink(source.dir, &source.name);
        self.fs.link(dest.dir, dest.name, moving);
        Ok(())
    }

    /// `mkdirat`: a new, empty directory (`mode`'s permission bits, no umask).
    pub(crate) fn mkdir(&mut self, path: &[u8], mode: u32) -> Result<(), Errno> {
        let found = self.fs.lookup(path, false)?;
        if found.node.is_some() {
            return Err(Errno::EEXIST);
        }
        let ino = self.fs.make(Kind::Dir(Default::default()), mode & 0o777);
        self.fs.link(found.dir, found.name, ino);
        Ok(())
    }

    /// `symlinkat`: a new symbolic link at `link` to `target` (which may not exist).
    pub(crate) fn symlink(&mut self, target: &[u8], link: &[u8]) -> Result<(), Errno> {
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        let found = self.fs.lookup(link, false)?;
        if found.node.is_some() {
            return Err(Errno::EEXIST);
        }
        let ino = self.fs.make(Kind::Symlink(target.to_vec()), 0o777);
        self.fs.link(found.dir, found.name, ino);
        Ok(())
    }

    /// `linkat` without `AT_SYMLINK_FOLLOW`: `to` becomes another name of what `from` names
    /// (a final symlink itself, not its target); directories cannot be linked.
    pub(crate) fn link(&mut self, from: &[u8], to: &[u8]) -> Result<(), Errno> {
        let existing = self.fs.lookup(from, false)?.node.ok_or(Errno::ENOENT)?;
        if matches!(self.fs.node(existing).kind, Kind::Dir(_)) {
            return Err(Errno::EPERM);
        }
        let found = self.fs.lookup(to, false)?;
        if found.node.is_some() {
            return Err(Errno::EEXIST);
        }
        self.fs.link(found.dir, found.name, existing);
        Ok(())
    }

    /// `statx` of `path` relative to the directory `dir` (`AT_FDCWD`: `/`), or of `dir`
    /// itself when `path` is empty (`AT_EMPTY_PATH`): a pipe or socket then reports its type
    /// with size 0, and an inode number of its own.
    pub(crate) fn stat_at(&self, dir: RawFd, path: &[u8], follow: bool) -> Result<StatInfo, Errno> {
        let start = if dir == libc::AT_FDCWD {
            self.fs.root()
        } else {
            match self.desc(dir)?.object {
                Object::Dir(ino) => ino,
                Object::File { ino, .. } if path.is_empty() => ino,
                _ if !path.is_empty() => return Err(Errno::ENOTDIR),
                Object::PipeRead(id) | Object::PipeWrite(id) => {
                    return Ok(Self::anonymous(libc::S_IFIFO | 0o600, id));
                }
                Object::Socket(id) => {
                    return Ok(Self::anonymous(libc::S_IFSOCK | 0o777, id));
                }
                Object::Ring => return Ok(Self::anonymous(0o600, 0)),
                Object::File { .. } => unreachable!("a file with a path was refused above"),
            }
        };
        let ino = if path.is_empty() {
            start
        } else {
            self.fs
                .lookup_at(start, path, follow, Resolve::default())?
                .node
                .ok_or(Errno::ENOENT)?
        };
        let node = self.fs.node(ino);
        Ok(StatInfo {
            ino,
            mode: node.mode(),
            size: node.size(),
            nlink: if matches!(node.kind, Kind::Dir(_)) {
                2
            } else {
                self.fs.names_of(ino).max(1)
            },
        })
    }

    /// What `stat` reports of a pipe, socket or ring: no filesystem inode behind it.
    fn anonymous(mode: u32, id: u64) -> StatInfo {
        StatInfo {
            // Far from the filesystem's numbers.
            ino: (1 << 40) + id,
            mode,
            size: 0,
            nlink: 1,
        }
    }

    /// A file at `path` holding `data` (missing directories are made).
    pub(crate) fn add_file(&mut self, path: &[u8], data: Vec<u8>, perm: u32) -> Result<(), Errno> {
        self.fs.put(path, Kind::File(data), perm).map(|_| ())
    }

    /// A directory at `path` (and the missing ones above it).
    pub(crate) fn add_dir(&mut self, path: &[u8]) -> Result<(), Errno> {
        self.fs.make_dirs(path).map(|_| ())
    }

    /// A symbolic link at `path` to `target`.
    pub(crate) fn add_symlink(&mut self, path: &[u8], target: &[u8]) -> Result<(), Errno> {
        self.fs
            .put(path, Kind::Symlink(target.to_vec()), 0o777)
            .map(|_| ())
    }

    /// The bytes of the file at `path`.
    pub(crate) fn file(&self, path: &[u8]) -> Option<&[u8]> {
        let ino = self.fs.lookup(path, true).ok()?.node?;
        match &self.fs.node(ino).kind {
            Kind::File(data) => Some(data),
            _ => None,
        }
    }

    // ----- sockets -----

    /// `socket`: an `AF_INET`, `AF_INET6` or `AF_UNIX` stream or datagram socket.
    pub(crate) fn socket(&mut self, domain: i32, ty: i32, protocol: i32) -> Result<RawFd, Errno> {
        if ![libc::AF_INET, libc::AF_INET6, libc::AF_UNIX].contains(&domain) {
            return Err(Errno::from_raw(libc::EAFNOSUPPORT));
        }
        let stream = match ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) {
            libc::SOCK_STREAM => true,
            libc::SOCK_DGRAM => false,
            _ => return Err(Errno::from_raw(libc::ESOCKTNOSUPPORT)),
        };
        let native = match (domain, stream) {
            (libc::AF_UNIX, _) => 0,
            (_, true) => libc::IPPROTO_TCP,
            (_, false) => libc::IPPROTO_UDP,
        };
        if protocol != 0 && protocol != native {
            return Err(Errno::from_raw(libc::EPROTONOSUPPORT));
        }
        let id = self.new_id();
        self.sockets.insert(
            id,
            Socket {
                domain,
                local: None,
                state: if stream {
                    State::Fresh
                } else {
                    State::Datagram(None)
                },
            },
        );
        Ok(self.new_fd(Object::Socket(id), ty & libc::SOCK_NONBLOCK != 0))
    }

    fn socket_of(&self, fd: RawFd) -> Result<SockId, Errno> {
        match self.desc(fd)?.object {
            Object::Socket(id) => Ok(id),
            _ => Err(Errno::ENOTSOCK),
        }
    }

    /// A stream socket listening at `addr` (at a free port if its port is 0).
    pub(crate) fn listen(&mut self, mut addr: SocketAddr) -> Result<RawFd, Errno> {
        if addr.port() == 0 {
            let port = self.new_port();
            addr.set_port(port);
        }
        let taken = self.listeners.keys().any(|l| {
            l.port() == addr.port()
                && l.is_ipv4() == addr.is_ipv4()
                && (reaches(*l, addr) || reaches(addr, *l))
        });
        if taken {
            return Err(Errno::EADDRINUSE);
        }
        let id = self.new_id();
        self.sockets.insert(
            id,
            Socket {
                domain: if addr.is_ipv4() {
                    libc::AF_INET
                } else {
                    libc::AF_INET6
                },
                local: Some(addr),
                state: State::Listening(Default::default()),
            },
        );
        self.listeners.insert(addr, id);
        Ok(self.new_fd(Object::Socket(id), false))
    }

    /// The address `fd` listens at, or is connected from.
    pub(crate) fn local_addr(&self, fd: RawFd) -> Option<SocketAddr> {
        let id = self.socket_of(fd).ok()?;
        self.sockets[&id].local
    }

    /// `connect`: a stream socket connects to a listener at `addr` (`ECONNREFUSED` if there
    /// is none), which queues the connection for `accept`; a datagram socket just takes
    /// `addr` as its peer.
    pub(crate) fn connect(&mut self, fd: RawFd, addr: Option<SocketAddr>) -> Result<(), Errno> {
        let id = self.socket_of(fd)?;
        let socket = &self.sockets[&id];
        let Some(addr) = addr else {
            return Err(Errno::EINVAL);
        };
        if socket.domain == libc::AF_UNIX {
            return Err(Errno::EINVAL);
        }
        if socket.domain == libc::AF_INET && addr.is_ipv6() {
            return Err(Errno::from_raw(libc::EAFNOSUPPORT));
        }
        let ip = if addr.ip().is_unspecified() {
            loopback(addr)
        } else {
            addr.ip()
        };
        match socket.state {
            State::Connected { .. } | State::Listening(_) => return Err(Errno::EISCONN),
            State::Datagram(_) => {
                let local = SocketAddr::new(ip, self.new_port());
                let socket = self.sockets.get_mut(&id).expect("looked up above");
                socket.state = State::Datagram(Some(addr));
                socket.local.get_or_insert(local);
                return Ok(());
            }
            State::Fresh => {}
        }
        let listener = self
            .listeners
            .iter()
            .find(|(l, _)| reaches(**l, addr))
            .map(|(_, id)| *id)
            .ok_or(Errno::ECONNREFUSED)?;
        let local = SocketAddr::new(ip, self.new_port());
        let accepted = self.new_id();
        let domain = self.sockets[&listener].domain;
        self.sockets.insert(
            accepted,
            Socket {
                domain,
                local: Some(SocketAddr::new(ip, addr.port())),
                state: State::Connected {
                    peer: id,
                    rx: Vec::new(),
                    hung_up: false,
                    eof: false,
                    wr_shut: false,
                },
            },
        );
        let socket = self.sockets.get_mut(&id).expect("looked up above");
        socket.local = Some(local);
        socket.state = State::Connected {
            peer: accepted,
            rx: Vec::new(),
            hung_up: false,
            eof: false,
            wr_shut: false,
        };
        if let Some(Socket {
            state: State::Listening(queue),
            ..
        }) = self.sockets.get_mut(&listener)
        {
            queue.push_back((accepted, local));
        }
        Ok(())
    }

    /// `accept`: the oldest connection waiting at listening socket `fd`, as a fresh
    /// descriptor and the peer's address; `Ok(None)` to wait for one.
    pub(crate) fn accept(&mut self, fd: RawFd) -> Result<Option<(RawFd, SocketAddr)>, Errno> {
        let id = self.socket_of(fd)?;
        let nonblock = self.desc(fd)?.nonblock;
        let Some(Socket {
            state: State::Listening(queue),
            ..
        }) = self.sockets.get_mut(&id)
        else {
            return Err(Errno::EINVAL);
        };
        match queue.pop_front() {
            Some((accepted, peer)) => {
                Ok(Some((self.new_fd(Object::Socket(accepted), false), peer)))
            }
            None if nonblock => Err(Errno::EAGAIN),
            None => Ok(None),
        }
    }

    // ----- what tests set up by number -----

    /// `fd` reads `data`, as a file no path names.
    pub(crate) fn set_file(&mut self, fd: RawFd, data: Vec<u8>) {
        let ino = self.fs.make(Kind::File(data), 0o644);
        self.install(
            fd,
            Object::File {
                ino,
                pos: 0,
                read: true,
                write: true,
                append: false,
            },
        );
    }

    /// `fd` is the read end of an empty pipe whose writer is the test.
    pub(crate) fn set_pipe(&mut self, fd: RawFd) {
        let id = self.new_id();
        self.pipes.insert(id, Pipe::new());
        self.install(fd, Object::PipeRead(id));
    }

    /// Bytes for reads of `fd`: into its pipe or socket, onto the end of its file; a loose
    /// `fd` becomes a pipe first.
    pub(crate) fn feed(&mut self, fd: RawFd, data: &[u8]) {
        if !self.fds.contains_key(&fd) {
            self.set_pipe(fd);
        }
        match &self.fds[&fd].object {
            Object::PipeRead(id) | Object::PipeWrite(id) => {
                if let Some(pipe) = self.pipes.get_mut(id) {
                    pipe.data.extend_from_slice(data);
                }
            }
            Object::File { ino, .. } => {
                if let Kind::File(bytes) = &mut self.fs.node_mut(*ino).kind {
                    bytes.extend_from_slice(data);
                }
            }
            Object::Socket(id) => {
                if let Some(Socket {
                    state: State::Connected { rx, .. },
                    ..
                }) = self.sockets.get_mut(id)
                {
                    rx.extend_from_slice(data);
                }
            }
            Object::Dir(_) | Object::Ring => {}
        }
    }

    /// The writer of `fd`'s pipe (or the peer of its connection) goes away: once the bytes
    /// are read, reads return 0.
    pub(crate) fn hang_up(&mut self, fd: RawFd) {
        match self.fds.get(&fd).map(|d| &d.object) {
            Some(Object::PipeRead(id) | Object::PipeWrite(id)) => {
                if let Some(pipe) = self.pipes.get_mut(id) {
                    pipe.writer = false;
                }
            }
            Some(Object::Socket(id)) => {
                if let Some(Socket {
                    state: State::Connected { hung_up, .. },
                    ..
                }) = self.sockets.get_mut(id)
                {
                    *hung_up = true;
                }
            }
            _ => {}
        }
    }

    /// A new pipe: (read end, write end).
    pub(crate) fn pipe_pair(&mut self) -> (RawFd, RawFd) {
        let id = self.new_id();
        self.pipes.insert(id, Pipe::new());
        let read = self.new_fd(Object::PipeRead(id), false);
        let write = self.new_fd(Object::PipeWrite(id), false);
        (read, write)
    }

    /// Whether the world has `fd` open.
    pub(crate) fn is_open(&self, fd: RawFd) -> bool {
        self.fds.contains_key(&fd)
    }
}
