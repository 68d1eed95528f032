//! Owned I/O buffers: what the kernel may read or write travels with the task and comes
//! back in the completion.
//!
//! # Safety
//!
//! This module holds the `unsafe` code of the buffer pool: one allocation carved into
//! fixed-size buffers, each handed out as a [`PoolBuf`] that is the only way to reach its
//! bytes. The allocation is reference-counted by the pool and by every outstanding
//! [`PoolBuf`], so it outlives every buffer and every task holding one; it is freed when the
//! last of them is gone, and a ring that registered it with the kernel holds a reference until
//! its file descriptor is closed.

use core::cell::{Cell, RefCell};
use core::ptr::NonNull;
use std::alloc::Layout;
use std::rc::Rc;

/// A buffer for an operation: owned, so it can never be freed while the kernel uses it.
///
/// Build one from a `Vec<u8>`, a `Box<[u8]>`, a [`PoolBuf`], or (for writes only) a
/// `&'static [u8]`; memory the caller owns comes in through
/// [`from_raw_parts_mut`](IoBuf::from_raw_parts_mut), or, read-only and for writes only,
/// [`from_raw_parts`](IoBuf::from_raw_parts). The kernel reads (write ops) or writes (read ops) its
/// [`len`](IoBuf::len) bytes, and the completion tells how many bytes were transferred. Take
/// the buffer back with [`Task::take_buf`](crate::Task::take_buf) in the callback to reuse it
/// without allocating.
///
/// A buffer is a window: [`advance`](IoBuf::advance) skips bytes at its front, so the rest of a
/// short send goes out in place, and a receive appends after the bytes already there:
///
/// ```
/// use xuring_core::IoBuf;
///
/// let mut buf = IoBuf::from(b"GET / HTTP/1.1\r\n".to_vec());
/// buf.advance(4); // say the kernel sent 4 bytes: resubmit `buf` for the rest
/// assert_eq!(buf.as_slice(), b"/ HTTP/1.1\r\n");
/// assert_eq!(buf.offset(), 4);
/// ```
#[derive(Debug)]
pub struct IoBuf {
    repr: Repr,
    /// Bytes at the front the next op skips (see [`advance`](IoBuf::advance)); at most the
    /// length of `repr`.
    start: usize,
}

#[derive(Debug)]
enum Repr {
    Vec(Vec<u8>),
    Boxed(Box<[u8]>),
    Static(&'static [u8]),
    Pool(PoolBuf),
    /// Caller-owned memory that may only be read (`from_raw_parts`).
    RawRead {
        ptr: NonNull<u8>,
        len: usize,
    },
    /// Caller-owned memory that may be read and written (`from_raw_parts_mut`).
    RawMut {
        ptr: NonNull<u8>,
        len: usize,
    },
}

impl IoBuf {
    /// A read-only buffer over memory the caller keeps ownership of, for operations that
    /// only read it (writes, sends). Like a `&'static [u8]` it is not
    /// [writable](Self::is_writable): [`as_mut_ptr`](Self::as_mut_ptr) and
    /// [`as_mut_slice`](Self::as_mut_slice) return `None`, and a read or receive given it
    /// completes with `EFAULT` without reaching the kernel. The memory may be read-only
    /// (a `static`, a read-only mapping). For memory the kernel may write, use
    /// [`from_raw_parts_mut`](Self::from_raw_parts_mut).
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads of `len` bytes for as long as this `IoBuf` exists, and
    /// once it is given to an operation, until that operation's callback has run or the ring
    /// running it has been dropped. Dropping a ring (even from inside one of its callbacks)
    /// waits for every operation on caller-owned memory, past the teardown timeout, however
    /// long the kernel takes. Leaking the ring with `mem::forget` leaves the operation
    /// running: the memory must then stay valid for as long as the process lives. Nothing may
    /// write the memory meanwhile.
    pub unsafe fn from_raw_parts(ptr: NonNull<u8>, len: usize) -> IoBuf {
        IoBuf::whole(Repr::RawRead { ptr, len })
    }

    /// A writable buffer over memory the caller keeps ownership of, for any operation: the
    /// kernel (or a backend, through [`as_mut_slice`](Self::as_mut_slice)) may write it.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` bytes for as long as this `IoBuf`
    /// exists, and once it is given to an operation, until that operation's callback has run
    /// or the ring running it has been dropped. Dropping a ring (even from inside one of its
    /// callbacks) waits for every operation on caller-owned memory, past the teardown
    /// timeout, however long the kernel takes. Leaking the ring with `mem::forget` leaves the
    /// operation running: the memory must then stay valid for as long as the process lives.
    /// Nothing else may access the memory meanwhile.
    pub unsafe fn from_raw_parts_mut(ptr: NonNull<u8>, len: usize) -> IoBuf {
        IoBuf::whole(Repr::RawMut { ptr, len })
    }

    /// A buffer over all of `repr`.
    const fn whole(repr: Repr) -> IoBuf {
        IoBuf { repr, start: 0 }
    }

    /// The length of the whole buffer, window aside.
    fn full_len(&self) -> usize {
        match &self.repr {
            Repr::Vec(v) => v.len(),
            Repr::Boxed(b) => b.len(),
            Repr::Static(s) => s.len(),
            Repr::Pool(p) => p.len(),
            Repr::RawRead { len, .. } | Repr::RawMut { len, .. } => *len,
        }
    }

    /// The number of bytes the operation transfers at most: the buffer's, less those
    /// [`advance`](Self::advance) skipped.
    pub fn len(&self) -> usize {
        self.full_len() - self.start
    }

    /// Skips `n` more bytes at the front: the next op reads or fills the rest of the buffer
    /// in place (after a short send, the unsent rest; after a partial receive, the room after
    /// what arrived). Nothing moves or is copied. [`offset`](Self::offset) tells how many
    /// bytes are skipped, [`rewind`](Self::rewind) undoes it, and the `into_*` methods give
    /// the whole buffer back.
    ///
    /// # Panics
    ///
    /// If `n` is more than [`len`](Self::len), as slicing past the end does.
    pub fn advance(&mut self, n: usize) {
        assert!(
            n <= self.len(),
            "IoBuf::advance({n}) past the end ({} bytes left)",
            self.len()
        );
        self.start += n;
    }

    /// How many bytes at the front the next op skips ([`advance`](Self::advance)).
    pub fn offset(&self) -> usize {
        self.start
    }

    /// Makes the next op use the whole buffer again.
    pub fn rewind(&mut self) {
        self.start = 0;
    }

    /// The whole buffer, skipped bytes included (what a receive appended to, say).
    pub fn whole_slice(&self) -> &[u8] {
        match &self.repr {
            Repr::Vec(v) => v,
            Repr::Boxed(b) => b,
            Repr::Static(s) => s,
            Repr::Pool(p) => p,
            Repr::RawRead { ptr, len } | Repr::RawMut { ptr, len } => {
                // SAFETY: the contracts of `from_raw_parts` and `from_raw_parts_mut` make
                // `ptr` valid for reads of `len` bytes, with no writer, for as long as this
                // `IoBuf` exists, and the slice borrows `self`.
                unsafe { core::slice::from_raw_parts(ptr.as_ptr(), *len) }
            }
        }
    }

    /// Whether [`len`](Self::len) is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the kernel may write into the buffer (everything but `&'static [u8]` and
    /// [`from_raw_parts`](Self::from_raw_parts)).
    pub fn is_writable(&self) -> bool {
        !matches!(self.repr, Repr::Static(_) | Repr::RawRead { .. })
    }

    /// Whether the memory is the caller's ([`from_raw_parts`](Self::from_raw_parts) or
    /// [`from_raw_parts_mut`](Self::from_raw_parts_mut)): the ring cannot keep it alive, so it
    /// must wait for the op however long that takes, never leak it and move on.
    pub fn is_borrowed(&self) -> bool {
        matches!(self.repr, Repr::RawRead { .. } | Repr::RawMut { .. })
    }

    /// The start of the bytes (after the skipped ones), for the kernel to read.
    pub fn as_ptr(&self) -> *const u8 {
        let base = match &self.repr {
            Repr::Vec(v) => v.as_ptr(),
            Repr::Boxed(b) => b.as_ptr(),
            Repr::Static(s) => s.as_ptr(),
            Repr::Pool(p) => p.as_ptr(),
            Repr::RawRead { ptr, .. } | Repr::RawMut { ptr, .. } => ptr.as_ptr(),
        };
        // In bounds: `start` is at most the buffer's length (one past its end at most).
        base.wrapping_add(self.start)
    }

    /// The start of the bytes (after the skipped ones), for the kernel to write; `None` for
    /// a read-only buffer (`&'static [u8]`, [`from_raw_parts`](Self::from_raw_parts)).
    pub fn as_mut_ptr(&mut self) -> Option<*mut u8> {
        let base = match &mut self.repr {
            Repr::Vec(v) => v.as_mut_ptr(),
            Repr::Boxed(b) => b.as_mut_ptr(),
            Repr::Static(_) | Repr::RawRead { .. } => return None,
            Repr::Pool(p) => p.as_mut_ptr(),
            Repr::RawMut { ptr, .. } => ptr.as_ptr(),
        };
        // In bounds, as in `as_ptr`.
        Some(base.wrapping_add(self.start))
    }

    /// The bytes after the skipped ones, for a backend that copies them (the mock).
    pub fn as_slice(&self) -> &[u8] {
        &self.whole_slice()[self.start..]
    }

    /// The bytes after the skipped ones, for a backend that fills them (the mock); `None` for
    /// a read-only buffer (`&'static [u8]`, [`from_raw_parts`](Self::from_raw_parts)).
    pub fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        let start = self.start;
        let whole: &mut [u8] = match &mut self.repr {
            Repr::Vec(v) => v,
            Repr::Boxed(b) => b,
            Repr::Static(_) | Repr::RawRead { .. } => return None,
            Repr::Pool(p) => p,
            Repr::RawMut { ptr, len } => {
                // SAFETY: `from_raw_parts_mut`'s contract makes `ptr` valid for reads and
                // writes of `len` bytes, with no other access, for as long as this `IoBuf`
                // exists, and the slice borrows `self` mutably. Read-only memory never gets
                // here: `from_raw_parts` makes a `RawRead`.
                unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr(), *len) }
            }
        };
        whole.get_mut(start..)
    }

    /// The pool buffer's index, if this is a buffer of `pool` (for fixed-buffer ops).
    pub fn pool_index(&self, pool: &BufferPool) -> Option<u16> {
        match &self.repr {
            Repr::Pool(p) if Rc::ptr_eq(&p.shared, &pool.shared) => Some(p.index),
            _ => None,
        }
    }

    /// The `Vec` back, if the buffer was made from one (all of it: skipped bytes included).
    pub fn into_vec(self) -> Option<Vec<u8>> {
        match self.repr {
            Repr::Vec(v) => Some(v),
            _ => None,
        }
    }

    /// The pool buffer back, if it is one (all of it: skipped bytes included).
    pub fn into_pool_buf(self) -> Option<PoolBuf> {
        match self.repr {
            Repr::Pool(p) => Some(p),
            _ => None,
        }
    }

    /// The `Box` back, if the buffer was made from one (all of it: skipped bytes included).
    pub fn into_boxed_slice(self) -> Option<Box<[u8]>> {
        match self.repr {
            Repr::Boxed(b) => Some(b),
            _ => None,
        }
    }
}

impl Default for IoBuf {
    /// An empty, read-only buffer (what a task keeps once its buffer was taken back).
    fn default() -> IoBuf {
        IoBuf::whole(Repr::Static(&[]))
    }
}

impl From<Vec<u8>> for IoBuf {
    fn from(v: Vec<u8>) -> IoBuf {
        IoBuf::whole(Repr::Vec(v))
    }
}

impl From<Box<[u8]>> for IoBuf {
    fn from(b: Box<[u8]>) -> IoBuf {
        IoBuf::whole(Repr::Boxed(b))
    }
}

impl From<&'static [u8]> for IoBuf {
    fn from(s: &'static [u8]) -> IoBuf {
        IoBuf::whole(Repr::Static(s))
    }
}

impl<const N: usize> From<&'static [u8; N]> for IoBuf {
    fn from(s: &'static [u8; N]) -> IoBuf {
        IoBuf::whole(Repr::Static(s))
    }
}

impl From<&'static str> for IoBuf {
    fn from(s: &'static str) -> IoBuf {
        IoBuf::whole(Repr::Static(s.as_bytes()))
    }
}

impl From<PoolBuf> for IoBuf {
    fn from(p: PoolBuf) -> IoBuf {
        IoBuf::whole(Repr::Pool(p))
    }
}

/// The memory shared by a pool and its buffers.
struct PoolShared {
    memory: NonNull<u8>,
    layout: Layout,
    buf_size: usize,
    count: u16,
    /// Indices of the buffers not handed out; capacity `count`, so pushing never allocates.
    free: RefCell<Vec<u16>>,
    /// Whether a ring registered the memory as fixed buffers.
    registered: Cell<bool>,
}

impl Drop for PoolShared {
    fn drop(&mut self) {
        // SAFETY: `memory` was allocated in `BufferPool::new` with `layout` and is freed only
        // here, when the last reference (pool, buffer or ring) is gone.
        unsafe { std::alloc::dealloc(self.memory.as_ptr(), self.layout) };
    }
}

/// A set of equal-size buffers in one page-aligned allocation, made once.
///
/// Getting and returning a buffer never allocates. A ring created with a pool
/// ([`RingBuilder::buffer_pool`](crate::RingBuilder::buffer_pool)) registers it with the
/// kernel where it can, so reads and writes with its buffers use `READ_FIXED`/`WRITE_FIXED`
/// and skip the per-op page pinning.
#[derive(Clone)]
pub struct BufferPool {
    shared: Rc<PoolShared>,
}

impl core::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BufferPool")
            .field("count", &self.shared.count)
            .field("buf_size", &self.shared.buf_size)
            .field("available", &self.available())
            .field("registered", &self.shared.registered.get())
            .finish()
    }
}

impl BufferPool {
    /// `count` buffers of `buf_size` bytes each, zeroed. `None` if `count` is 0 or above
    /// 65,535, `buf_size` is 0, or the allocation fails.
    pub fn new(count: usize, buf_size: usize) -> Option<BufferPool> {
        let count = u16::try_from(count).ok().filter(|&c| c > 0)?;
        if buf_size == 0 {
            return None;
        }
        let total = buf_size.checked_mul(usize::from(count))?;
        let layout = Layout::from_size_align(total, 4096).ok()?;
        // SAFETY: `layout` has a non-zero size (count > 0, buf_size > 0).
        let memory = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })?;
        let mut free: Vec<u16> = Vec::with_capacity(usize::from(count));
        // Hand out low indices first.
        free.extend((0..count).rev());
        Some(BufferPool {
            shared: Rc::new(PoolShared {
                memory,
                layout,
                buf_size,
                count,
                free: RefCell::new(free),
                registered: Cell::new(false),
            }),
        })
    }

    /// A free buffer, its length set to [`buf_size`](Self::buf_size); `None` when all are
    /// in use.
    pub fn get(&self) -> Option<PoolBuf> {
        let index = self.shared.free.borrow_mut().pop()?;
        let len = self.shared.buf_size;
        Some(PoolBuf {
            shared: Rc::clone(&self.shared),
            index,
            len,
        })
    }

    /// The number of buffers.
    pub fn count(&self) -> usize {
        usize::from(self.shared.count)
    }

    /// The size of each buffer in bytes.
    pub fn buf_size(&self) -> usize {
        self.shared.buf_size
    }

    /// Buffers not handed out.
    pub fn available(&self) -> usize {
        self.shared.free.borrow().len()
    }

    /// Whether the kernel knows the pool as fixed buffers.
    pub fn is_registered(&self) -> bool {
        self.shared.registered.get()
    }

    /// Start and length of each buffer, for registration.
    pub(crate) fn iovecs(&self) -> impl Iterator<Item = (*mut u8, usize)> + '_ {
        let size = self.shared.buf_size;
        (0..usize::from(self.shared.count)).map(move |i| {
            // SAFETY: `i * size` is within the allocation of `count * size` bytes.
            let ptr = unsafe { self.shared.memory.as_ptr().add(i * size) };
            (ptr, size)
        })
    }

    pub(crate) fn set_registered(&self, registered: bool) {
        self.shared.registered.set(registered);
    }
}

/// One buffer of a [`BufferPool`]; it returns to the pool when dropped.
///
/// It dereferences to its first [`len`](PoolBuf::len) bytes; `len` starts at the pool's buffer
/// size and can be set anywhere up to it (e.g. to the byte count of a read, before writing the
/// same bytes out).
pub struct PoolBuf {
    shared: Rc<PoolShared>,
    index: u16,
    len: usize,
}

impl core::fmt::Debug for PoolBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PoolBuf")
            .field("index", &self.index)
            .field("len", &self.len)
            .finish()
    }
}

impl PoolBuf {
    /// The index of this buffer in its pool (its fixed-buffer index when registered).
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The length the next operation uses.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the length is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer's full size.
    pub fn capacity(&self) -> usize {
        self.shared.buf_size
    }

    /// Sets the length; panics if it exceeds the capacity.
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.capacity(),
            "PoolBuf::set_len({len}) beyond its capacity {}",
            self.capacity()
        );
        self.len = len;
    }

    fn base(&self) -> *mut u8 {
        // SAFETY: `index < count`, so the offset stays inside the pool's allocation.
        unsafe {
            self.shared
                .memory
                .as_ptr()
                .add(usize::from(self.index) * self.shared.buf_size)
        }
    }

    fn as_ptr(&self) -> *const u8 {
        self.base()
    }

    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.base()
    }
}

impl core::ops::Deref for PoolBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: this `PoolBuf` is the only handle to buffer `index` (the free list holds
        // each index once and `get` removes it), the bytes are initialised (zeroed at
        // allocation) and `len <= buf_size`; the allocation lives while `shared` does.
        unsafe { core::slice::from_raw_parts(self.base(), self.len) }
    }
}

impl core::ops::DerefMut for PoolBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access.
        unsafe { core::slice::from_raw_parts_mut(self.base(), self.len) }
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        // Cannot allocate: the free list's capacity is the pool's buffer count.
        self.shared.free.borrow_mut().push(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_hands_out_each_buffer_once_and_takes_them_back() {
        let pool = BufferPool::new(3, 64).expect("pool");
        let mut a = pool.get().expect("a");
        let b = pool.get().expect("b");
        let c = pool.get().expect("c");
        assert!(pool.get().is_none());
        assert_eq!((a.index(), b.index(), c.index()), (0, 1, 2));
        a[0] = 7;
        a.set_len(1);
        assert_eq!(&*a, &[7]);
        assert_eq!(b.len(), 64);
        drop(b);
        assert_eq!(pool.available(), 1);
        let b2 = pool.get().expect("b again");
        assert_eq!(b2.index(), 1);
        // Buffers outlive the pool handle.
        drop(pool);
        assert_eq!(a[0], 7);
    }

    #[test]
    fn io_buf_reports_lengths_and_writability() {
        let v = IoBuf::from(vec![1u8, 2, 3]);
        assert_eq!(v.len(), 3);
        assert!(v.is_writable());
        let mut s = IoBuf::from(b"hello");
        assert_eq!(s.len(), 5);
        assert!(!s.is_writable());
        assert!(s.as_mut_ptr().is_none());
        assert_eq!(v.into_vec(), Some(vec![1, 2, 3]));
    }

    /// Bytes in a `static`: the compiler may place them in read-only memory, so a write
    /// through any pointer to them is undefined behaviour (and a crash where they are).
    static READ_ONLY: [u8; 4] = *b"abcd";

    #[test]
    fn read_only_raw_buffer_gives_no_mutable_access() {
        let ptr = NonNull::from(&READ_ONLY).cast::<u8>();
        // SAFETY: `READ_ONLY` is valid for reads of 4 bytes for the whole program and nothing
        // writes it.
        let mut buf = unsafe { IoBuf::from_raw_parts(ptr, READ_ONLY.len()) };
        assert_eq!(buf.len(), 4);
        assert!(!buf.is_writable(), "a read-only buffer is not writable");
        assert!(buf.as_mut_ptr().is_none(), "no pointer to write through");
        assert!(buf.as_mut_slice().is_none(), "no mutable slice");
        assert_eq!(buf.as_ptr(), ptr.as_ptr().cast_const());
        assert_eq!(buf.as_slice(), b"abcd");
        // A read-only raw buffer cannot be the target of a vectored read either.
        let mut vecs = IoVecs::new(vec![buf]);
        assert!(vecs.prepare(true).is_none());
        let iov = vecs.prepare(false).expect("fine for a write");
        assert_eq!(
            iov[0].iov_base.cast_const(),
            ptr.as_ptr().cast_const().cast()
        );
    }

    #[test]
    fn writable_raw_buffer_writes_reach_the_callers_memory() {
        let mut memory = [0u8; 4];
        let ptr = NonNull::from(&mut memory).cast::<u8>();
        {
            // SAFETY: `memory` is valid for reads and writes of 4 bytes while `buf` lives, and
            // nothing else touches it meanwhile.
            let mut buf = unsafe { IoBuf::from_raw_parts_mut(ptr, 4) };
            assert!(buf.is_writable());
            assert_eq!(buf.as_mut_ptr(), Some(ptr.as_ptr()));
            buf.as_mut_slice()
                .expect("writable")
                .copy_from_slice(b"wxyz");
            assert_eq!(buf.as_slice(), b"wxyz");
        }
        assert_eq!(&memory, b"wxyz");
    }

    #[test]
    #[should_panic(expected = "beyond its capacity")]
    fn set_len_beyond_capacity_panics() {
        let pool = BufferPool::new(1, 8).expect("pool");
        pool.get().expect("buf").set_len(9);
    }
}

/// Owned buffers for vectored I/O (`readv`/`writev`), with the iovec array the kernel reads.
///
/// Both live in the task while the operation runs; take them back with
/// [`Task::take_iovecs`](crate::Task::take_iovecs) and resubmit: the iovec array is rebuilt
/// in place, so reuse allocates nothing.
#[derive(Debug, Default)]
pub struct IoVecs {
    bufs: Vec<IoBuf>,
    iovecs: Vec<libc::iovec>,
}

impl IoVecs {
    /// Vectored buffers from `bufs` (the iovec array is allocated here, once).
    pub fn new(bufs: Vec<IoBuf>) -> IoVecs {
        let iovecs = Vec::with_capacity(bufs.len());
        IoVecs { bufs, iovecs }
    }

    /// The buffers.
    pub fn bufs(&self) -> &[IoBuf] {
        &self.bufs
    }

    /// The buffers, mutably (for a backend that fills them).
    pub fn bufs_mut(&mut self) -> &mut [IoBuf] {
        &mut self.bufs
    }

    /// The buffers back.
    pub fn into_bufs(self) -> Vec<IoBuf> {
        self.bufs
    }

    /// Total length of all buffers.
    pub fn total_len(&self) -> usize {
        self.bufs.iter().map(IoBuf::len).sum()
    }

    /// Rebuilds the iovec array for the kernel and returns it. `writable` asks for pointers
    /// the kernel may write through (a read); `None` if a buffer is read-only.
    pub fn prepare(&mut self, writable: bool) -> Option<&[libc::iovec]> {
        self.iovecs.clear();
        for buf in &mut self.bufs {
            let base = if writable {
                buf.as_mut_ptr()?
            } else {
                buf.as_ptr().cast_mut()
            };
            self.iovecs.push(libc::iovec {
                iov_base: base.cast(),
                iov_len: buf.len(),
            });
        }
        Some(&self.iovecs)
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn advance_skips_bytes_in_place_and_rewind_brings_them_back() {
        let mut buf = IoBuf::from(b"hello world".to_vec());
        let base = buf.as_ptr();
        buf.advance(6);
        assert_eq!(
            (buf.len(), buf.offset(), buf.as_slice()),
            (5, 6, &b"world"[..])
        );
        assert_eq!(buf.as_ptr(), base.wrapping_add(6), "no copy");
        buf.as_mut_slice().expect("writable")[0] = b'W';
        assert_eq!(buf.whole_slice(), b"hello World");
        buf.advance(5);
        assert!(buf.is_empty());
        assert_eq!(buf.as_mut_slice().map(|s| s.len()), Some(0));
        buf.rewind();
        assert_eq!(buf.len(), 11);
        buf.advance(2);
        assert_eq!(
            buf.into_vec().as_deref(),
            Some(&b"hello World"[..]),
            "all of it"
        );
    }

    #[test]
    #[should_panic(expected = "past the end")]
    fn advancing_past_the_end_panics() {
        let mut buf = IoBuf::from(&b"abc"[..]);
        buf.advance(2);
        buf.advance(2);
    }

    #[test]
    fn a_read_only_window_stays_read_only() {
        let mut buf = IoBuf::from("static");
        buf.advance(3);
        assert_eq!(buf.as_slice(), b"tic");
        assert!(buf.as_mut_ptr().is_none() && buf.as_mut_slice().is_none());
    }

    #[test]
    fn pool_buffer_windows_stay_inside_their_buffer() {
        let pool = BufferPool::new(2, 16).expect("pool");
        let mut p = pool.get().expect("buffer");
        p.set_len(10);
        let start = p.as_ptr();
        let mut buf = IoBuf::from(p);
        buf.advance(4);
        assert_eq!(buf.as_ptr(), start.wrapping_add(4));
        assert_eq!(buf.len(), 6);
        let p = buf.into_pool_buf().expect("pool buffer");
        assert_eq!(p.len(), 10, "the whole buffer back");
    }
}
