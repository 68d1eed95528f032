//! The task pool: tasks in chunks at stable addresses, and the free list.
//!
//! # Safety
//!
//! Each chunk is a boxed slice of tasks turned into a raw pointer with `Box::into_raw`; it is
//! turned back and freed only in [`TaskPool`]'s `Drop`, after every list has been emptied, or
//! never (when [`TaskPool::leak`] is called because the kernel may still use a task). So every
//! pointer this module hands out stays valid for the pool's whole life, and all of them carry
//! the provenance of their chunk's allocation.

use core::ptr::NonNull;

use xuring_queue::Queue;

use crate::Backend;
use crate::task::{Task, TaskId, TaskState};

/// Tasks in chunks that never move, and a LIFO free list (the most recently used task is the
/// warmest in cache).
pub(crate) struct TaskPool<B: Backend> {
    chunks: Vec<NonNull<Task<B>>>,
    chunk_shift: u32,
    free: Queue<Task<B>>,
    leaked: bool,
}

impl<B: Backend> TaskPool<B> {
    /// A pool that grows by `chunk_size` tasks (rounded up to a power of two) at a time,
    /// starting with `initial` tasks.
    pub(crate) fn new(chunk_size: u32, initial: u32) -> TaskPool<B> {
        let chunk_size = chunk_size.clamp(1, 1 << 16).next_power_of_two();
        let mut pool = TaskPool {
            chunks: Vec::new(),
            chunk_shift: chunk_size.trailing_zeros(),
            free: Queue::new(),
            leaked: false,
        };
        while pool.capacity() < initial {
            pool.grow();
        }
        pool
    }

    fn chunk_size(&self) -> u32 {
        1 << self.chunk_shift
    }

    /// The number of tasks in the pool.
    pub(crate) fn capacity(&self) -> u32 {
        self.chunks.len() as u32 * self.chunk_size()
    }

    /// Tasks on the free list.
    pub(crate) fn free_len(&self) -> usize {
        self.free.len()
    }

    /// Adds one chunk of tasks to the free list.
    #[cold]
    fn grow(&mut self) {
        let size = self.chunk_size();
        let base = self.capacity();
        let chunk: Box<[Task<B>]> = (0..size).map(|i| Task::new(base + i)).collect();
        let chunk = NonNull::from(Box::leak(chunk)).cast::<Task<B>>();
        self.chunks.push(chunk);
        // Push in reverse so that the lowest index is handed out first.
        for i in (0..size as usize).rev() {
            // SAFETY: `i < size`, inside the chunk just allocated.
            let task = unsafe { chunk.add(i) };
            // SAFETY: the task is live and stays at this address until the pool is dropped
            // (chunks are freed only in `Drop`, after the free list is cleared); the pool
            // accesses it only through shared references while it is linked.
            unsafe { self.free.push_front(task) };
        }
    }

    /// A free task, growing the pool by a chunk if none is left.
    #[inline]
    pub(crate) fn get(&mut self) -> NonNull<Task<B>> {
        match self.free.pop_front() {
            Some(task) => task,
            None => {
                self.grow();
                self.free.pop_front().expect("a new chunk has free tasks")
            }
        }
    }

    /// Puts a task whose op has been reset back on the free list, under a new generation.
    #[inline]
    pub(crate) fn put(&mut self, task: NonNull<Task<B>>) {
        // SAFETY: `task` came from this pool, so it points into a live chunk.
        let t = unsafe { task.as_ref() };
        // SAFETY: the task is being recycled; nothing else accesses its op now.
        debug_assert!(!unsafe { t.op() }.owns_resources());
        t.id.set(t.id.get().next());
        t.state.set(TaskState::Free);
        t.background.set(false);
        t.fallback.set(false);
        t.borrowed.set(false);
        t.internal.set(None);
        // SAFETY: as in `grow`: the task is live at a stable address for the pool's life.
        unsafe { self.free.push_front(task) };
    }

    /// The task in slot `index`, if the pool has one.
    #[inline]
    pub(crate) fn slot(&self, index: u32) -> Option<NonNull<Task<B>>> {
        let chunk = self.chunks.get((index >> self.chunk_shift) as usize)?;
        let offset = (index & (self.chunk_size() - 1)) as usize;
        // SAFETY: `offset < chunk_size`, inside the chunk.
        Some(unsafe { chunk.add(offset) })
    }

    /// The task with this id, if it is still that task (same generation).
    #[inline]
    pub(crate) fn lookup(&self, id: TaskId) -> Option<NonNull<Task<B>>> {
        let task = self.slot(id.index())?;
        // SAFETY: `slot` returns pointers into live chunks.
        (unsafe { task.as_ref() }.id.get() == id).then_some(task)
    }

    /// Every task slot, in index order.
    pub(crate) fn all(&self) -> impl Iterator<Item = NonNull<Task<B>>> + '_ {
        (0..self.capacity()).filter_map(|i| self.slot(i))
    }

    /// Empties the free list (before the pool's memory is freed or leaked).
    pub(crate) fn clear_free(&mut self) {
        self.free.clear();
    }

    /// Never frees the chunks: the kernel may still write into tasks (or buffers they own).
    pub(crate) fn leak(&mut self) {
        self.leaked = true;
    }

    /// Whether [`leak`](Self::leak) was called.
    pub(crate) fn is_leaked(&self) -> bool {
        self.leaked
    }
}

impl<B: Backend> Drop for TaskPool<B> {
    fn drop(&mut self) {
        self.free.clear();
        if self.leaked {
            return;
        }
        let size = self.chunk_size() as usize;
        for chunk in self.chunks.drain(..) {
            let slice = core::ptr::slice_from_raw_parts_mut(chunk.as_ptr(), size);
            // SAFETY: `slice` is exactly the boxed slice leaked in `grow`, freed once here.
            // The owner (the ring) has unlinked every task from its lists before dropping
            // the pool, and no backend holds a task (the ring drained them or leaked the pool).
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Uring;

    #[test]
    fn grows_by_whole_chunks_only_when_empty_at_stable_addresses() {
        let mut pool: TaskPool<Uring> = TaskPool::new(4, 0);
        assert_eq!(pool.capacity(), 0);
        let first: Vec<_> = (0..4).map(|_| pool.get()).collect();
        assert_eq!(pool.capacity(), 4, "one chunk for the first four");
        assert_eq!(pool.free_len(), 0);
        let fifth = pool.get();
        assert_eq!(
            pool.capacity(),
            8,
            "a second chunk only once the first is used up"
        );
        // The first chunk did not move when the second was added.
        for (i, task) in first.iter().enumerate() {
            assert_eq!(pool.slot(i as u32), Some(*task));
        }
        // Returning tasks refills the free list without growing.
        for task in first {
            pool.put(task);
        }
        pool.put(fifth);
        assert_eq!(pool.free_len(), 8);
        for _ in 0..8 {
            let _ = pool.get();
        }
        assert_eq!(pool.capacity(), 8);
        pool.clear_free();
    }

    #[test]
    fn recycling_changes_the_generation() {
        let mut pool: TaskPool<Uring> = TaskPool::new(1, 1);
        let task = pool.get();
        // SAFETY: the pool's pointers are valid for its life.
        let old = unsafe { task.as_ref() }.id.get();
        pool.put(task);
        let again = pool.get();
        assert_eq!(again, task, "the same slot");
        // SAFETY: as above.
        let new = unsafe { again.as_ref() }.id.get();
        assert_eq!(new.index(), old.index());
        assert_ne!(new.generation(), old.generation());
        assert_eq!(
            pool.lookup(old),
            None,
            "the old id no longer finds the slot"
        );
        assert_eq!(pool.lookup(new), Some(again));
        pool.put(again);
    }
}
