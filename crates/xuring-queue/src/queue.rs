//! [`Queue`]: a singly linked intrusive FIFO.
//!
//! # Safety
//!
//! This module may contain `unsafe` code. Every `unsafe` block in it dereferences a node
//! pointer (through `link_of` or `NonNull::as_ref`), and each one is justified by the
//! following invariants of a `Queue` `q`, which every method keeps:
//!
//! 1. `q.head`, `q.tail` and `q.len` agree: `head.is_none() == tail.is_none() == (len == 0)`.
//! 2. Following `next` from `head` visits exactly `len` distinct nodes and ends at `tail`, whose
//!    `next` is `None`.
//! 3. Every node on that chain was pushed through `push_back`/`push_front`, whose contract
//!    keeps it live, in place and only shared-referenced until it leaves the queue; so every
//!    node reachable from `q` may be dereferenced (shared) at any time.
//! 4. Every node on the chain has `owner == QUEUE_OWNER` and `prev == None`; a node leaving the
//!    queue gets `owner == UNLINKED`, `next == None` (the unlinked state, see [`crate::link`]).
//!
//! Panics (double push) are raised before anything is modified, and no user code runs while
//! the queue is half updated, so a queue is valid whenever user code can observe it.
#![allow(unsafe_code)]

use core::fmt;
use core::iter::FusedIterator;
use core::marker::PhantomData;
use core::mem;
use core::ptr::NonNull;

use crate::link::{Linked, ListMarker, QUEUE_OWNER, UNLINKED, link_of};

/// A singly linked, intrusive FIFO queue of `T` nodes threaded through their `Tag` link.
///
/// The queue never allocates: it only stores the first and last node and a count, and each
/// node's [`Link`](crate::Link) points to the next one. Pushing and popping are O(1) and do not
/// touch any node besides the pushed/popped one and its neighbour; [`append`](Queue::append) is
/// O(1) too.
///
/// Nodes are handed in as `NonNull<T>` by the `unsafe` push methods (see their `# Safety`
/// sections) and handed back as `NonNull<T>` by [`pop_front`](Queue::pop_front) and
/// [`drain`](Queue::drain). While a node is queued it may be read through shared references
/// ([`front`](Queue::front), [`iter`](Queue::iter), or your own).
///
/// Dropping the queue unlinks (resets the links of) the nodes still on it; it does not free them.
///
/// # Example
///
/// ```
/// use core::ptr::NonNull;
/// use xuring_queue::{impl_linked, Link, Queue};
///
/// struct Job { n: u32, link: Link<Job> }
/// impl_linked!(Job, link);
///
/// let jobs = [1, 2, 3].map(|n| Job { n, link: Link::new() });
/// let mut queue: Queue<Job> = Queue::new();
/// for job in &jobs {
///     // SAFETY: `jobs` outlives `queue`, is not moved, and is only read while queued.
///     unsafe { queue.push_back(NonNull::from(job)) };
/// }
/// assert_eq!(queue.iter().map(|j| j.n).collect::<Vec<_>>(), [1, 2, 3]);
/// let first = queue.pop_front().unwrap();
/// assert!(core::ptr::eq(first.as_ptr(), &jobs[0]));
/// assert_eq!(queue.len(), 2);
/// ```
pub struct Queue<T: Linked<Tag>, Tag = ()> {
    head: Option<NonNull<T>>,
    tail: Option<NonNull<T>>,
    len: usize,
    _marker: ListMarker<T, Tag>,
}

impl<T: Linked<Tag>, Tag> Queue<T, Tag> {
    /// Creates an empty queue.
    #[inline]
    #[must_use]
    pub const fn new() -> Self {
        Self {
            head: None,
            tail: None,
            len: 0,
            _marker: PhantomData,
        }
    }

    /// Returns `true` if the queue holds no node.
    #[inline]
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Returns the number of nodes on the queue (O(1)).
    #[inline]
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Appends `node` at the back of the queue.
    ///
    /// # Panics
    ///
    /// If `node`'s `Tag` link is already linked (on this or any other queue or list with the
    /// same tag). The check runs in release builds too; nothing is changed when it fails.
    ///
    /// # Safety
    ///
    /// The caller guarantees that `node` points to a live `T` which, until it is unlinked again
    /// (popped, drained, or the queue is cleared or dropped):
    ///
    /// * stays at this address and is not freed, moved or overwritten, and
    /// * is accessed only through shared references (no `&mut T`); its `Tag` link belongs to
    ///   the queue.
    #[inline]
    #[track_caller]
    pub unsafe fn push_back(&mut self, node: NonNull<T>) {
        // SAFETY: the caller guarantees that `node` points to a live `T`; it stays live for
        // this call.
        let link = unsafe { link_of::<T, Tag>(node) };
        link.claim(QUEUE_OWNER);
        match self.tail {
            // SAFETY: `tail` is on this queue, so it is live (invariant 3). It is not `node`:
            // `node` was unlinked (checked by `claim`).
            Some(tail) => unsafe { link_of::<T, Tag>(tail) }.next.set(Some(node)),
            None => self.head = Some(node),
        }
        self.tail = Some(node);
        self.len += 1;
    }

    /// Inserts `node` at the front of the queue, so that it is popped next.
    ///
    /// Together with [`pop_front`](Queue::pop_front) this makes the queue a LIFO stack (for
    /// example a free list).
    ///
    /// # Panics
    ///
    /// If `node`'s `Tag` link is already linked; see [`push_back`](Queue::push_back).
    ///
    /// # Safety
    ///
    /// The same as for [`push_back`](Queue::push_back): `node` points to a live `T` that stays
    /// in place and is only shared-referenced until it is unlinked again.
    #[inline]
    #[track_caller]
    pub unsafe fn push_front(&mut self, node: NonNull<T>) {
        // SAFETY: the caller guarantees that `node` points to a live `T`.
        let link = unsafe { link_of::<T, Tag>(node) };
        link.claim(QUEUE_OWNER);
        link.next.set(self.head);
        if self.head.is_none() {
            self.tail = Some(node);
        }
        self.head = Some(node);
        self.len += 1;
    }

    /// Removes the front node and returns it, unlinked, or `None` if the queue is empty.
    ///
    /// The returned pointer is the one that was pushed (same provenance), so it may be used to
    /// free the node (for example with `Box::from_raw` if it came from `Box::into_raw`).
    #[inline]
    pub fn pop_front(&mut self) -> Option<NonNull<T>> {
        let node = self.head?;
        // SAFETY: `node` is the head of this queue, so it is live (invariant 3).
        let link = unsafe { link_of::<T, Tag>(node) };
        self.head = link.next.take();
        if self.head.is_none() {
            self.tail = None;
        }
        link.owner.set(UNLINKED);
        self.len -= 1;
        Some(node)
    }

    /// Returns a shared reference to the front node (the one [`pop_front`](Queue::pop_front)
    /// would return).
    #[inline]
    #[must_use]
    pub fn front(&self) -> Option<&T> {
        // SAFETY: the head is live (invariant 3) and only shared-referenced while queued; it
        // stays on the queue, hence live, while `self` is borrowed.
        self.head.map(|node| unsafe { node.as_ref() })
    }

    /// Same as [`front`](Queue::front).
    #[inline]
    #[must_use]
    pub fn peek(&self) -> Option<&T> {
        self.front()
    }

    /// Returns a shared reference to the back node (the most recently pushed at the back).
    #[inline]
    #[must_use]
    pub fn back(&self) -> Option<&T> {
        // SAFETY: as in `front`, for the tail.
        self.tail.map(|node| unsafe { node.as_ref() })
    }

    /// Moves all nodes of `other` to the back of `self`, in order, leaving `other` empty.
    ///
    /// O(1): the two chains are spliced, no node besides `self`'s tail is touched.
    #[inline]
    pub fn append(&mut self, other: &mut Self) {
        let Some(other_head) = other.head.take() else {
            return;
        };
        match self.tail {
            // SAFETY: `tail` is on this queue, so it is live (invariant 3).
            Some(tail) => unsafe { link_of::<T, Tag>(tail) }
                .next
                .set(Some(other_head)),
            None => self.head = Some(other_head),
        }
        // Every queued node has owner `QUEUE_OWNER`, so the moved nodes need no update.
        self.tail = other.tail.take();
        self.len += mem::take(&mut other.len);
    }

    /// Returns an iterator over shared references to the nodes, front to back.
    #[inline]
    pub fn iter(&self) -> Iter<'_, T, Tag> {
        Iter {
            next: self.head,
            len: self.len,
            _marker: PhantomData,
        }
    }

    /// Returns an iterator that pops the nodes front to back, yielding each one already
    /// unlinked (as [`pop_front`](Queue::pop_front) would).
    ///
    /// The queue is valid at every point, also if the caller panics while holding a drained
    /// node. Dropping the `Drain` before it is exhausted **unlinks the remaining nodes too**, so
    /// the queue is empty afterwards (also when it is dropped during a panic). If the `Drain` is
    /// leaked instead (`mem::forget`), the nodes not yet yielded stay on the queue, still valid.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_, T, Tag> {
        Drain { queue: self }
    }

    /// Unlinks every node, leaving the queue empty. The nodes are not freed. O(len).
    pub fn clear(&mut self) {
        let mut cursor = self.head.take();
        self.tail = None;
        self.len = 0;
        while let Some(node) = cursor {
            // SAFETY: `node` was on this queue (the chain is walked before any link of it is
            // reset), so it is live (invariant 3).
            let link = unsafe { link_of::<T, Tag>(node) };
            cursor = link.next.take();
            link.owner.set(UNLINKED);
        }
    }

    /// Checks every invariant of the queue and panics with a description of the first one that
    /// does not hold: `len` matches the chain, `head`/`tail` are its ends, every node is owned
    /// by a queue and has no `prev`. O(len); meant for tests.
    #[track_caller]
    pub fn assert_valid(&self) {
        let (Some(head), Some(tail)) = (self.head, self.tail) else {
            assert!(self.head.is_none(), "queue: head set but tail not");
            assert!(self.tail.is_none(), "queue: tail set but head not");
            assert_eq!(self.len, 0, "queue: empty but len != 0");
            return;
        };
        let mut count = 0;
        let mut cursor = Some(head);
        let mut last = head;
        while let Some(node) = cursor {
            count += 1;
            assert!(
                count <= self.len,
                "queue: chain longer than len {}",
                self.len
            );
            // SAFETY: `node` is on this queue, so it is live (invariant 3).
            let link = unsafe { link_of::<T, Tag>(node) };
            assert_eq!(
                link.owner.get(),
                QUEUE_OWNER,
                "queue: node {count} not owned by a queue"
            );
            assert!(link.prev.get().is_none(), "queue: node {count} has a prev");
            last = node;
            cursor = link.next.get();
        }
        assert_eq!(count, self.len, "queue: chain length != len");
        assert_eq!(last, tail, "queue: tail is not the last node");
    }
}

impl<T: Linked<Tag>, Tag> Drop for Queue<T, Tag> {
    /// Unlinks the nodes still on the queue (they are live by the push contract).
    fn drop(&mut self) {
        self.clear();
    }
}

impl<T: Linked<Tag>, Tag> Default for Queue<T, Tag> {
    #[inline]
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Linked<Tag> + fmt::Debug, Tag> fmt::Debug for Queue<T, Tag> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T: Linked<Tag>, Tag> IntoIterator for &'a Queue<T, Tag> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T, Tag>;

    #[inline]
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over shared references to the nodes of a [`Queue`], front to back.
///
/// Created by [`Queue::iter`].
pub struct Iter<'a, T: Linked<Tag>, Tag = ()> {
    next: Option<NonNull<T>>,
    len: usize,
    _marker: PhantomData<&'a Queue<T, Tag>>,
}

impl<'a, T: Linked<Tag>, Tag> Iterator for Iter<'a, T, Tag> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        let node = self.next?;
        // SAFETY: `node` is on the queue, which is shared-borrowed for `'a`: it cannot be
        // popped meanwhile, so it is live (invariant 3).
        let link = unsafe { link_of::<T, Tag>(node) };
        self.next = link.next.get();
        self.len -= 1;
        // SAFETY: as above; a queued node is only ever shared-referenced, so a `&'a T` may be
        // handed out for as long as the queue stays borrowed.
        Some(unsafe { node.as_ref() })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

impl<T: Linked<Tag>, Tag> ExactSizeIterator for Iter<'_, T, Tag> {}
impl<T: Linked<Tag>, Tag> FusedIterator for Iter<'_, T, Tag> {}

impl<T: Linked<Tag>, Tag> Clone for Iter<'_, T, Tag> {
    #[inline]
    fn clone(&self) -> Self {
        Self {
            next: self.next,
            len: self.len,
            _marker: PhantomData,
        }
    }
}

impl<T: Linked<Tag>, Tag> fmt::Debug for Iter<'_, T, Tag> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("remaining", &self.len)
            .finish()
    }
}

/// Draining iterator of a [`Queue`]: pops the nodes front to back.
///
/// Created by [`Queue::drain`]; each yielded node is already unlinked. Dropping it unlinks the
/// nodes not yet yielded (the queue ends empty).
pub struct Drain<'a, T: Linked<Tag>, Tag = ()> {
    queue: &'a mut Queue<T, Tag>,
}

impl<T: Linked<Tag>, Tag> Iterator for Drain<'_, T, Tag> {
    type Item = NonNull<T>;

    #[inline]
    fn next(&mut self) -> Option<NonNull<T>> {
        self.queue.pop_front()
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.queue.len, Some(self.queue.len))
    }
}

impl<T: Linked<Tag>, Tag> ExactSizeIterator for Drain<'_, T, Tag> {}
impl<T: Linked<Tag>, Tag> FusedIterator for Drain<'_, T, Tag> {}

impl<T: Linked<Tag>, Tag> Drop for Drain<'_, T, Tag> {
    fn drop(&mut self) {
        self.queue.clear();
    }
}

impl<T: Linked<Tag>, Tag> fmt::Debug for Drain<'_, T, Tag> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &self.queue.len)
            .finish()
    }
}
