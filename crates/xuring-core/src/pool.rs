//! The task pool: tasks in chunks at stable addresses, a flat table of them by index, and
//! the free stack.
//!
//! # Safety
//!
//! Each chunk is a boxed slice of tasks turned into a raw pointer with `Box::into_raw`; it is
//! turned back and freed only in [`TaskPool`]'s `Drop`, after every list has been emptied, or
//! never (when [`TaskPool::leak`] is called because the kernel may still use a task). So every
//! pointer this module hands out stays valid for the pool's whole life, and all of them carry
//! the provenance of their chunk's allocation.
//!
//! A task is put back only once nothing can reach its op: its completion was reaped, or it
//! never reached the backend, or the backend retracted its op before an `enter`; see `engine.rs`.
//!
//! [`TaskRef`] is how the rest of the crate reaches a task: only this module makes one (from
//! its chunks), and the engine that owns the pool keeps them only in its own fields and in
//! the locals of its methods, so a `TaskRef` never outlives the chunk it points into. That
//! is the one argument behind [`TaskRef::get`]; [`TaskList`] is the submission list over
//! `TaskRef`s.
//!
//! The free stack holds each free task exactly once: a task enters it in `grow` (new) or in
//! `put`, which refuses a task that is already `Free`, and leaves it in `get`, which hands it
//! out as no longer `Free` to the caller (the engine sets its state before it can reach `put`
//! again). So a task is never handed out twice.

use core::fmt;
use core::ptr::NonNull;

use xuring_queue::List;

use crate::Backend;
use crate::ready::ReadyQueue;
use crate::task::{Task, TaskId, TaskState};

/// A task of a pool, by address. Made only by [`TaskPool`] (and by [`TaskList`], which holds
/// only `TaskRef`s), from the pool's own chunks; kept only inside the engine that owns the
/// pool. See the module's `# Safety`.
pub(crate) struct TaskRef<B: Backend>(NonNull<Task<B>>);

impl<B: Backend> Clone for TaskRef<B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Backend> Copy for TaskRef<B> {}

impl<B: Backend> PartialEq for TaskRef<B> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<B: Backend> Eq for TaskRef<B> {}

impl<B: Backend> fmt::Debug for TaskRef<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TaskRef").field(&self.0).finish()
    }
}

impl<B: Backend> TaskRef<B> {
    /// The task. Its `Cell` fields may be used freely; the op and `result` only as the
    /// task's state allows (see `engine.rs`).
    #[inline(always)]
    pub(crate) fn get(&self) -> &Task<B> {
        // SAFETY: a `TaskRef` points into a chunk of the pool that made it, and lives only in
        // the engine that owns that pool (its fields, and the locals of its methods and of a
        // run, which cannot outlive it: a run keeps its engine alive until it ends even if a
        // callback drops the ring, see `run.rs`); chunks are freed only when the pool is
        // dropped, with the engine, or never. So the task is live for as long as this borrow
        // of the `TaskRef`.
        // The engine never makes a `&mut Task`, so a shared reference aliases nothing
        // mutable (the op and `result` are written through raw pointers, and only while no
        // reference from here is held).
        unsafe { self.0.as_ref() }
    }

    /// The task's address (for a [`TaskHandle`](crate::TaskHandle), and the raw writes of
    /// `Task::store_result`).
    #[inline(always)]
    pub(crate) fn as_ptr(self) -> NonNull<Task<B>> {
        self.0
    }

    /// The `TaskRef` of a task the engine stored by address.
    ///
    /// # Safety
    ///
    /// `task` must be the address of a `TaskRef` of the pool of the engine calling this.
    #[inline(always)]
    pub(crate) unsafe fn from_ptr(task: NonNull<Task<B>>) -> TaskRef<B> {
        TaskRef(task)
    }
}

/// The submission list: `TaskRef`s in order, doubly linked through the tasks so that a
/// cancel takes one out of the middle in O(1).
pub(crate) struct TaskList<B: Backend> {
    list: List<Task<B>>,
}

impl<B: Backend> TaskList<B> {
    pub(crate) fn new() -> TaskList<B> {
        TaskList { list: List::new() }
    }

    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    #[inline]
    pub(crate) fn push_back(&mut self, task: TaskRef<B>) {
        // SAFETY: a `TaskRef`'s task is live at a stable address for the engine's life (the
        // pool never moves or frees a chunk while it lives), and the engine empties the list
        // before the pool is dropped; linked tasks are used through shared references only.
        unsafe { self.list.push_back(task.0) };
    }

    #[inline]
    pub(crate) fn push_front(&mut self, task: TaskRef<B>) {
        // SAFETY: as in `push_back`.
        unsafe { self.list.push_front(task.0) };
    }

    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<TaskRef<B>> {
        // Only `TaskRef`s are ever linked here.
        self.list.pop_front().map(TaskRef)
    }

    /// Takes `task` out of the list (it must be linked here).
    #[inline]
    pub(crate) fn remove(&mut self, task: TaskRef<B>) {
        self.list.remove(task.get());
    }

    /// Unlinks everything (before the pool's memory is freed or leaked).
    pub(crate) fn clear(&mut self) {
        self.list.clear();
    }
}

/// Tasks in chunks that never move, and a LIFO free stack (the most recently used task is
/// the warmest in cache).
pub(crate) struct TaskPool<B: Backend> {
    chunks: Vec<NonNull<Task<B>>>,
    chunk_shift: u32,
    /// Every task, by index: `slots[i]` is the task whose id has index `i`.
    slots: Vec<TaskRef<B>>,
    /// The free tasks; its capacity is the pool's, so pushing never allocates.
    free: Vec<TaskRef<B>>,
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
            slots: Vec::new(),
            free: Vec::new(),
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
        let total = (base + size) as usize;
        self.slots.reserve_exact(total - self.slots.len());
        self.free.reserve_exact(total - self.free.len());
        for i in 0..size as usize {
            // SAFETY: `i < size`, inside the chunk just allocated.
            self.slots.push(TaskRef(unsafe { chunk.add(i) }));
        }
        // Push in reverse so that the lowest index is handed out first.
        for i in (0..size as usize).rev() {
            // SAFETY: as above.
            self.free.push(TaskRef(unsafe { chunk.add(i) }));
        }
    }

    /// A free task, growing the pool by a chunk if none is left; `ready` (the engine's
    /// ready queue) grows with the pool, so that it never allocates while the pool does not.
    #[inline]
    pub(crate) fn get(&mut self, ready: &mut ReadyQueue<B>) -> TaskRef<B> {
        match self.free.pop() {
            Some(task) => task,
            None => self.get_grown(ready),
        }
    }

    #[cold]
    #[inline(never)]
    fn get_grown(&mut self, ready: &mut ReadyQueue<B>) -> TaskRef<B> {
        self.grow();
        ready.reserve_for(self.capacity() as usize);
        self.free.pop().expect("a new chunk has free tasks")
    }

    /// Puts a task whose op has been reset back on the free list, under a new generation.
    #[inline]
    pub(crate) fn put(&mut self, task: TaskRef<B>) {
        let t = task.get();
        // SAFETY: the task is being recycled; nothing else accesses its op now.
        debug_assert!(!unsafe { t.op() }.owns_resources());
        // A task put twice would be handed out twice: checked in release builds too.
        assert!(
            t.state.get() != TaskState::Free,
            "a free task returned to the pool"
        );
        t.id.set(t.id.get().next());
        t.state.set(TaskState::Free);
        t.internal.set(None);
        // Never reallocates: every task is on the stack at most once, and its capacity is the
        // pool's.
        self.free.push(task);
    }

    /// The task in slot `index`, if the pool has one.
    #[inline]
    pub(crate) fn slot(&self, index: u32) -> Option<TaskRef<B>> {
        self.slots.get(index as usize).copied()
    }

    /// The task with this id, if it is still that task (same generation).
    #[inline]
    pub(crate) fn lookup(&self, id: TaskId) -> Option<TaskRef<B>> {
        let task = self.slot(id.index())?;
        (task.get().id.get() == id).then_some(task)
    }

    /// Every task slot, in index order.
    pub(crate) fn all(&self) -> impl Iterator<Item = TaskRef<B>> + '_ {
        self.slots.iter().copied()
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

    /// Takes a task the way the engine does: it leaves the pool no longer `Free`.
    fn take(pool: &mut TaskPool<Uring>) -> TaskRef<Uring> {
        let task = pool.get(&mut ReadyQueue::with_capacity(0));
        task.get().state.set(TaskState::Queued);
        task
    }

    #[test]
    fn grows_by_whole_chunks_only_when_empty_at_stable_addresses() {
        let mut pool: TaskPool<Uring> = TaskPool::new(4, 0);
        assert_eq!(pool.capacity(), 0);
        let first: Vec<_> = (0..4).map(|_| take(&mut pool)).collect();
        assert_eq!(pool.capacity(), 4, "one chunk for the first four");
        assert_eq!(pool.free_len(), 0);
        let fifth = take(&mut pool);
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
            let _ = take(&mut pool);
        }
        assert_eq!(pool.capacity(), 8);
        pool.clear_free();
    }

    #[test]
    fn recycling_changes_the_generation() {
        let mut pool: TaskPool<Uring> = TaskPool::new(1, 1);
        let task = take(&mut pool);
        let old = task.get().id.get();
        pool.put(task);
        let again = take(&mut pool);
        assert_eq!(again, task, "the same slot");
        let new = again.get().id.get();
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

    #[test]
    #[should_panic(expected = "a free task returned to the pool")]
    fn a_task_put_twice_is_refused() {
        let mut pool: TaskPool<Uring> = TaskPool::new(1, 1);
        let task = take(&mut pool);
        pool.put(task);
        pool.put(task);
    }
}
