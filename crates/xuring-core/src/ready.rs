//! The ready queue: tasks whose completion was reaped, in completion order, waiting for
//! their callback.
//!
//! A flat ring buffer of task pointers rather than a list threaded through the tasks: pushing
//! and popping touch this buffer only, not the neighbouring tasks. Every task is in it at most
//! once, so it never holds more than the pool has tasks: it grows (doubling) only while the
//! pool does, and a warm ring never allocates here. No `unsafe`: it only stores pointers.

use core::ptr::NonNull;

use crate::{Backend, Task};

pub(crate) struct ReadyQueue<B: Backend> {
    /// Slots, a power of two of them; those outside `head..head + len` (wrapping) hold
    /// stale pointers that are never read.
    slots: Box<[NonNull<Task<B>>]>,
    head: usize,
    len: usize,
}

impl<B: Backend> ReadyQueue<B> {
    /// A queue with room for `capacity` tasks (rounded up to a power of two) before it grows.
    pub(crate) fn with_capacity(capacity: usize) -> ReadyQueue<B> {
        let capacity = capacity.max(16).next_power_of_two();
        ReadyQueue {
            slots: vec![NonNull::dangling(); capacity].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Tasks waiting.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `task`.
    #[inline(always)]
    pub(crate) fn push_back(&mut self, task: NonNull<Task<B>>) {
        if self.len == self.slots.len() {
            self.grow();
        }
        let at = (self.head + self.len) & self.mask();
        self.slots[at] = task;
        self.len += 1;
    }

    /// The oldest task, removed.
    #[inline(always)]
    pub(crate) fn pop_front(&mut self) -> Option<NonNull<Task<B>>> {
        if self.len == 0 {
            return None;
        }
        let task = self.slots[self.head];
        self.head = (self.head + 1) & self.mask();
        self.len -= 1;
        Some(task)
    }

    /// Forgets every task (they are recycled or leaked by the caller).
    pub(crate) fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let mut slots = vec![NonNull::dangling(); self.slots.len() * 2].into_boxed_slice();
        for (i, slot) in slots.iter_mut().take(self.len).enumerate() {
            *slot = self.slots[(self.head + i) & self.mask()];
        }
        self.slots = slots;
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Uring;

    #[test]
    fn fifo_across_wrap_and_growth() {
        let tasks: Vec<Task<Uring>> = (0..1400).map(Task::new).collect();
        let fake = |n: usize| NonNull::from(&tasks[n]);
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
