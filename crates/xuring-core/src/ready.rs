//! The ready queue: tasks whose completion was reaped, in completion order, waiting for
//! their callback.
//!
//! A flat array of task pointers rather than a list threaded through the tasks: pushing and
//! popping touch this array only, not the neighbouring tasks. Tasks are appended at the end
//! and taken from a cursor; once the cursor reaches the end, both start over at the front.
//! Every task is in it at most once, so it never holds more live entries than the pool has
//! tasks: a push onto a full array first closes the gap the cursor left, and the array grows
//! only while the pool does, so a warm ring never allocates here. No `unsafe`: it only stores
//! pointers.

use crate::Backend;
use crate::pool::TaskRef;

pub(crate) struct ReadyQueue<B: Backend> {
    /// Entries before `next` were taken already.
    items: Vec<TaskRef<B>>,
    next: usize,
}

impl<B: Backend> ReadyQueue<B> {
    /// A queue with room for `capacity` tasks before it grows.
    pub(crate) fn with_capacity(capacity: usize) -> ReadyQueue<B> {
        ReadyQueue {
            items: Vec::with_capacity(capacity.max(16)),
            next: 0,
        }
    }

    /// Tasks waiting.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.items.len() - self.next
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.items.len() == self.next
    }

    /// Appends `task`.
    #[inline(always)]
    pub(crate) fn push_back(&mut self, task: TaskRef<B>) {
        if self.items.len() == self.items.capacity() && self.next > 0 {
            self.compact();
        }
        self.items.push(task);
    }

    /// The oldest task, removed.
    #[inline(always)]
    pub(crate) fn pop_front(&mut self) -> Option<TaskRef<B>> {
        let task = *self.items.get(self.next)?;
        self.next += 1;
        if self.next == self.items.len() {
            self.clear();
        }
        Some(task)
    }

    /// Forgets every task (they are recycled or leaked by the caller).
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.next = 0;
    }

    /// Makes room for `tasks` entries in all (the pool's size), so that pushing never
    /// allocates while every task is in the queue at most once.
    pub(crate) fn reserve_for(&mut self, tasks: usize) {
        self.compact();
        self.items.reserve(tasks.saturating_sub(self.items.len()));
    }

    /// Drops the entries already taken, making room without allocating.
    #[cold]
    #[inline(never)]
    fn compact(&mut self) {
        self.items.drain(..self.next);
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Uring;

    #[test]
    fn fifo_across_wrap_and_growth() {
        let pool: crate::pool::TaskPool<Uring> = crate::pool::TaskPool::new(256, 2048);
        let task = |n: usize| pool.slot(n as u32).expect("a slot");
        let fake = task;
        let mut q: ReadyQueue<Uring> = ReadyQueue::with_capacity(16);
        let mut next_in = 1;
        let mut next_out = 1;
        // Wrap around a few times at a steady length, then grow while wrapped.
        for round in 0..100 {
            for _ in 0..(if round < 50 { 10 } else { 13 }) {
                q.push_back(fake(next_in));
                next_in += 1;
            }
            for _ in 0..10 {
                assert_eq!(q.pop_front(), Some(fake(next_out)));
                next_out += 1;
            }
        }
        assert_eq!(q.len(), next_in - next_out);
        while let Some(t) = q.pop_front() {
            assert_eq!(t, fake(next_out));
            next_out += 1;
        }
        assert_eq!(next_out, next_in);
        assert!(q.is_empty());
    }
}
