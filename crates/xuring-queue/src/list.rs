//! [`List`]: a doubly linked intrusive list with O(1) removal of any node.
//!
//! # Safety
//!
//! This module may contain `unsafe` code. Every `unsafe` block in it dereferences a node
//! pointer (through `link_of` or `NonNull::as_ref`), and each one is justified by the
//! following invariants of a `List` `l`, which every method keeps:
//!
//! 1. `l.head`, `l.tail` and `l.len` agree: `head.is_none() == tail.is_none() == (len == 0)`.
//! 2. Following `next` from `head` visits exactly `len` distinct nodes and ends at `tail`;
//!    `prev` links mirror `next` links; `head.prev` and `tail.next` are `None`.
//! 3. Every node on that chain was pushed through `push_back`/`push_front`, whose contract
//!    keeps it live, in place and only shared-referenced until it leaves the list; so every
//!    node reachable from `l` may be dereferenced (shared) at any time.
//! 4. If `len > 0` then `l.id != UNLINKED`, and every node on the chain has `owner == l.id`.
//!    List ids are unique (see `new_list_id`; [`List::append`] moves an id from one list to
//!    the other, never copies it), so **a node whose owner is `l.id` is on `l`'s chain**. This
//!    is what makes [`List::remove`] and [`List::contains`] sound for an arbitrary `&T`.
//! 5. A node leaving the list gets `owner == UNLINKED`, `next == prev == None`.
//!
//! Panics (double push, removing a node that is not on this list) are raised before anything
//! is modified, and no user code runs while the list is half updated, so a list is valid
//! whenever user code can observe it.
#![allow(unsafe_code)]

use core::fmt;
use core::iter::FusedIterator;
use core::marker::PhantomData;
use core::mem;
use core::ptr::NonNull;

use crate::link::{Link, Linked, ListMarker, QUEUE_OWNER, UNLINKED, link_of, new_list_id};

/// A doubly linked, intrusive list of `T` nodes threaded through their `Tag` link.
///
/// Like [`Queue`](crate::Queue) it never allocates and pushes/pops at both ends in O(1); in
/// addition any node can be [`remove`](List::remove)d in O(1) given just a reference to it,
/// and [`contains`](List::contains) answers in O(1). Both work because each link records which
/// list owns it: every list gets a unique, nonzero id from a global counter the first time a
/// node is pushed on it (so [`List::new`] stays a `const fn`).
///
/// Dropping the list unlinks (resets the links of) the nodes still on it; it does not free them.
///
/// # Example
///
/// ```
/// use core::ptr::NonNull;
/// use xuring_queue::{impl_linked, Link, List};
///
/// struct Op { id: u64, link: Link<Op> }
/// impl_linked!(Op, link);
///
/// let ops = [10, 11, 12].map(|id| Op { id, link: Link::new() });
/// let mut in_flight: List<Op> = List::new();
/// for op in &ops {
///     // SAFETY: `ops` outlives the list, is not moved, and is only read while linked.
///     unsafe { in_flight.push_back(NonNull::from(op)) };
/// }
/// // The middle operation completes first:
/// let done = in_flight.remove(&ops[1]);
/// assert!(core::ptr::eq(done.as_ptr(), &ops[1]));
/// assert!(!in_flight.contains(&ops[1]) && in_flight.contains(&ops[2]));
/// assert_eq!(in_flight.iter().map(|op| op.id).collect::<Vec<_>>(), [10, 12]);
/// ```
pub struct List<T: Linked<Tag>, Tag = ()> {
    head: Option<NonNull<T>>,
    tail: Option<NonNull<T>>,
    len: usize,
    /// `UNLINKED` until the first push, then a unique list id.
    id: usize,
    _marker: ListMarker<T, Tag>,
}

impl<T: Linked<Tag>, Tag> List<T, Tag> {
    /// Creates an empty list.
    #[inline]
    #[must_use]
    pub const fn new() -> Self {
        Self {
            head: None,
            tail: None,
            len: 0,
            id: UNLINKED,
            _marker: PhantomData,
        }
    }

    /// Returns `true` if the list holds no node.
    #[inline]
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Returns the number of nodes on the list (O(1)).
    #[inline]
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// The list's id, assigned on first use.
    #[inline(always)]
    fn owner_id(&mut self) -> usize {
        if self.id == UNLINKED {
            self.id = new_list_id();
        }
        self.id
    }

    /// Appends `node` at the back of the list.
    ///
    /// # Panics
    ///
    /// If `node`'s `Tag` link is already linked (on this or any other list or queue with the
    /// same tag). The check runs in release builds too; nothing is changed when it fails.
    ///
    /// # Safety
    ///
    /// The caller guarantees that `node` points to a live `T` which, until it is unlinked again
    /// (popped, removed, drained, or the list is cleared or dropped):
    ///
    /// * stays at this address and is not freed, moved or overwritten, and
    /// * is accessed only through shared references (no `&mut T`); its `Tag` link belongs to
    ///   the list.
    #[inline]
    #[track_caller]
    pub unsafe fn push_back(&mut self, node: NonNull<T>) {
        let id = self.owner_id();
        // SAFETY: the caller guarantees that `node` points to a live `T`.
        let link = unsafe { link_of::<T, Tag>(node) };
        link.claim(id);
        link.prev.set(self.tail);
        match self.tail {
            // SAFETY: `tail` is on this list, so it is live (invariant 3); it is not `node`,
            // which was unlinked (checked by `claim`).
            Some(tail) => unsafe { link_of::<T, Tag>(tail) }.next.set(Some(node)),
            None => self.head = Some(node),
        }
        self.tail = Some(node);
        self.len += 1;
    }

    /// Inserts `node` at the front of the list.
    ///
    /// # Panics
    ///
    /// If `node`'s `Tag` link is already linked; see [`push_back`](List::push_back).
    ///
    /// # Safety
    ///
    /// The same as for [`push_back`](List::push_back): `node` points to a live `T` that stays
    /// in place and is only shared-referenced until it is unlinked again.
    #[inline]
    #[track_caller]
    pub unsafe fn push_front(&mut self, node: NonNull<T>) {
        let id = self.owner_id();
        // SAFETY: the caller guarantees that `node` points to a live `T`.
        let link = unsafe { link_of::<T, Tag>(node) };
        link.claim(id);
        link.next.set(self.head);
        match self.head {
            // SAFETY: `head` is on this list, so it is live (invariant 3); it is not `node`.
            Some(head) => unsafe { link_of::<T, Tag>(head) }.prev.set(Some(node)),
            None => self.tail = Some(node),
        }
        self.head = Some(node);
        self.len += 1;
    }

    /// Removes the front node and returns it, unlinked, or `None` if the list is empty.
    ///
    /// The returned pointer is the one that was pushed (same provenance).
    #[inline]
    pub fn pop_front(&mut self) -> Option<NonNull<T>> {
        let node = self.head?;
        // SAFETY: `node` is the head of this list, so it is live (invariant 3).
        let link = unsafe { link_of::<T, Tag>(node) };
        self.head = link.next.take();
        match self.head {
            // SAFETY: the new head is on this list, so it is live (invariant 3).
            Some(head) => unsafe { link_of::<T, Tag>(head) }.prev.set(None),
            None => self.tail = None,
        }
        link.owner.set(UNLINKED);
        self.len -= 1;
        Some(node)
    }

    /// Removes the back node and returns it, unlinked, or `None` if the list is empty.
    ///
    /// The returned pointer is the one that was pushed (same provenance).
    #[inline]
    pub fn pop_back(&mut self) -> Option<NonNull<T>> {
        let node = self.tail?;
        // SAFETY: `node` is the tail of this list, so it is live (invariant 3).
        let link = unsafe { link_of::<T, Tag>(node) };
        self.tail = link.prev.take();
        match self.tail {
            // SAFETY: the new tail is on this list, so it is live (invariant 3).
            Some(tail) => unsafe { link_of::<T, Tag>(tail) }.next.set(None),
            None => self.head = None,
        }
        link.owner.set(UNLINKED);
        self.len -= 1;
        Some(node)
    }

    /// Returns the link of a node given by reference.
    #[inline(always)]
    fn link_of_ref(node: &T) -> &Link<T> {
        // SAFETY: `node` is a reference, so it points to a live, aligned `T` for as long as the
        // returned reference (which has the same lifetime) is used.
        unsafe { link_of::<T, Tag>(NonNull::from(node)) }
    }

    /// Returns `true` if `node` is on this list (through its `Tag` link). O(1): it compares
    /// the owner recorded in the node's link with this list's id.
    #[inline]
    #[must_use]
    pub fn contains(&self, node: &T) -> bool {
        self.id != UNLINKED && Self::link_of_ref(node).owner.get() == self.id
    }

    /// Removes `node` from the list in O(1) and returns the pointer it was pushed with (same
    /// provenance, so it may be used to free the node, unlike one made from `node`).
    ///
    /// # Panics
    ///
    /// If `node` is not on this list: when its `Tag` link is unlinked, or linked on another
    /// list or a queue. The check runs in release builds too; nothing is changed when it fails.
    ///
    /// To remove a node you hold as a `NonNull<T>`, pass `unsafe { ptr.as_ref() }` (sound
    /// whenever the node is live, which it is if it is on this list).
    #[inline]
    #[track_caller]
    pub fn remove(&mut self, node: &T) -> NonNull<T> {
        let link = Self::link_of_ref(node);
        let owner = link.owner.get();
        if owner == UNLINKED || owner != self.id {
            not_on_this_list(owner);
        }
        // `owner == self.id`, so `node` is on this list (invariant 4).
        let prev = link.prev.get();
        let next = link.next.get();
        // SAFETY: `prev` is `node`'s neighbour on this list, so it is live (invariant 3).
        let prev_link = prev.map(|prev| unsafe { link_of::<T, Tag>(prev) });
        // The pointer the list stores for `node` (its predecessor's `next`, or the head). It
        // is checked, before anything changes, to be `node` itself: a node moved or copied
        // while linked (a broken push contract) is caught here rather than corrupting the list.
        let this = match prev_link {
            Some(prev_link) => prev_link.next.get(),
            None => self.head,
        };
        let this = match this {
            Some(this) if core::ptr::eq(this.as_ptr(), node) => this,
            _ => corrupted(),
        };
        match prev_link {
            Some(prev_link) => prev_link.next.set(next),
            None => self.head = next,
        }
        match next {
            // SAFETY: `next` is `node`'s neighbour on this list, so it is live (invariant 3).
            Some(next) => unsafe { link_of::<T, Tag>(next) }.prev.set(prev),
            None => self.tail = prev,
        }
        link.prev.set(None);
        link.next.set(None);
        link.owner.set(UNLINKED);
        self.len -= 1;
        this
    }

    /// Returns a shared reference to the front node.
    #[inline]
    #[must_use]
    pub fn front(&self) -> Option<&T> {
        // SAFETY: the head is live (invariant 3) and only shared-referenced while linked; it
        // stays on the list, hence live, while `self` is borrowed.
        self.head.map(|node| unsafe { node.as_ref() })
    }

    /// Same as [`front`](List::front).
    #[inline]
    #[must_use]
    pub fn peek(&self) -> Option<&T> {
        self.front()
    }

    /// Returns a shared reference to the back node.
    #[inline]
    #[must_use]
    pub fn back(&self) -> Option<&T> {
        // SAFETY: as in `front`, for the tail.
        self.tail.map(|node| unsafe { node.as_ref() })
    }

    /// Moves all nodes of `other` to the back of `self`, in order, leaving `other` empty.
    ///
    /// The chains are spliced in O(1), but the moved nodes must carry their new list's id, so
    /// the ids of the **shorter** of the two lists are rewritten: O(min(`self.len()`,
    /// `other.len()`)), and O(1) when either list is empty. (A [`Queue`](crate::Queue), which
    /// has no `remove`/`contains`, appends in O(1) always.)
    pub fn append(&mut self, other: &mut Self) {
        if other.is_empty() {
            return;
        }
        if self.is_empty() {
            // Both ids stay unique: each list keeps one of the two.
            mem::swap(self, other);
            return;
        }
        if other.len > self.len {
            // Keep `other`'s id for the merged list; `other` takes `self`'s old id, which no
            // node carries any more once `self`'s nodes are restamped.
            Self::restamp(self.head, other.id);
            mem::swap(&mut self.id, &mut other.id);
        } else {
            Self::restamp(other.head, self.id);
        }
        let (Some(tail), Some(other_head)) = (self.tail, other.head) else {
            corrupted();
        };
        // SAFETY: `tail` is on `self`, so it is live (invariant 3).
        unsafe { link_of::<T, Tag>(tail) }
            .next
            .set(Some(other_head));
        // SAFETY: `other_head` is on `other`, so it is live (invariant 3).
        unsafe { link_of::<T, Tag>(other_head) }
            .prev
            .set(Some(tail));
        self.tail = other.tail.take();
        other.head = None;
        self.len += mem::take(&mut other.len);
    }

    /// Sets the owner of every node of the chain starting at `cursor` to `id`.
    fn restamp(mut cursor: Option<NonNull<T>>, id: usize) {
        while let Some(node) = cursor {
            // SAFETY: `node` is on the chain of a list (the caller passes a list's head), so it
            // is live (invariant 3).
            let link = unsafe { link_of::<T, Tag>(node) };
            link.owner.set(id);
            cursor = link.next.get();
        }
    }

    /// Returns an iterator over shared references to the nodes, front to back (it is also
    /// double-ended).
    #[inline]
    pub fn iter(&self) -> Iter<'_, T, Tag> {
        Iter {
            head: self.head,
            tail: self.tail,
            len: self.len,
            _marker: PhantomData,
        }
    }

    /// Returns an iterator that pops the nodes from the front (or, with `next_back`, from the
    /// back), yielding each one already unlinked.
    ///
    /// The list is valid at every point, also if the caller panics while holding a drained
    /// node. Dropping the `Drain` before it is exhausted **unlinks the remaining nodes too**, so
    /// the list is empty afterwards (also when it is dropped during a panic). If the `Drain` is
    /// leaked instead (`mem::forget`), the nodes not yet yielded stay on the list, still valid.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_, T, Tag> {
        Drain { list: self }
    }

    /// Unlinks every node, leaving the list empty. The nodes are not freed. O(len).
    pub fn clear(&mut self) {
        let mut cursor = self.head.take();
        self.tail = None;
        self.len = 0;
        while let Some(node) = cursor {
            // SAFETY: `node` was on this list (the chain is walked before any link of it is
            // reset), so it is live (invariant 3).
            let link = unsafe { link_of::<T, Tag>(node) };
            cursor = link.next.take();
            link.prev.set(None);
            link.owner.set(UNLINKED);
        }
    }

    /// Checks every invariant of the list and panics with a description of the first one that
    /// does not hold: `len` matches the chain, `head`/`tail` are its ends, `prev` mirrors
    /// `next`, every node carries this list's id. O(len); meant for tests.
    #[track_caller]
    pub fn assert_valid(&self) {
        let (Some(head), Some(tail)) = (self.head, self.tail) else {
            assert!(self.head.is_none(), "list: head set but tail not");
            assert!(self.tail.is_none(), "list: tail set but head not");
            assert_eq!(self.len, 0, "list: empty but len != 0");
            return;
        };
        assert!(
            self.id != UNLINKED && self.id != QUEUE_OWNER,
            "list: nonempty list without a valid id"
        );
        let mut count = 0;
        let mut prev = None;
        let mut cursor = Some(head);
        while let Some(node) = cursor {
            count += 1;
            assert!(
                count <= self.len,
                "list: chain longer than len {}",
                self.len
            );
            // SAFETY: `node` is on this list, so it is live (invariant 3).
            let link = unsafe { link_of::<T, Tag>(node) };
            assert_eq!(
                link.owner.get(),
                self.id,
                "list: node {count} has a wrong owner"
            );
            assert_eq!(link.prev.get(), prev, "list: node {count} has a wrong prev");
            prev = Some(node);
            cursor = link.next.get();
        }
        assert_eq!(count, self.len, "list: chain length != len");
        assert_eq!(prev, Some(tail), "list: tail is not the last node");
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn not_on_this_list(owner: usize) -> ! {
    if owner == UNLINKED {
        panic!("xuring-queue: remove of a node that is not linked");
    }
    panic!("xuring-queue: remove of a node that is linked in another list or queue");
}

#[cold]
#[inline(never)]
#[track_caller]
fn corrupted() -> ! {
    panic!("xuring-queue: list invariant broken (a node was moved, freed or reused while linked)");
}

impl<T: Linked<Tag>, Tag> Drop for List<T, Tag> {
    /// Unlinks the nodes still on the list (they are live by the push contract).
    fn drop(&mut self) {
        self.clear();
    }
}

impl<T: Linked<Tag>, Tag> Default for List<T, Tag> {
    #[inline]
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Linked<Tag> + fmt::Debug, Tag> fmt::Debug for List<T, Tag> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T: Linked<Tag>, Tag> IntoIterator for &'a List<T, Tag> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T, Tag>;

    #[inline]
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Double-ended iterator over shared references to the nodes of a [`List`].
///
/// Created by [`List::iter`].
pub struct Iter<'a, T: Linked<Tag>, Tag = ()> {
    head: Option<NonNull<T>>,
    tail: Option<NonNull<T>>,
    /// Nodes between `head` and `tail` inclusive; the iterator ends when it reaches 0.
    len: usize,
    _marker: PhantomData<&'a List<T, Tag>>,
}

impl<'a, T: Linked<Tag>, Tag> Iterator for Iter<'a, T, Tag> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        if self.len == 0 {
            return None;
        }
        let node = self.head?;
        // SAFETY: `node` is on the list, which is shared-borrowed for `'a`: it cannot be
        // removed meanwhile, so it is live (invariant 3).
        let link = unsafe { link_of::<T, Tag>(node) };
        self.head = link.next.get();
        self.len -= 1;
        // SAFETY: as above; a linked node is only ever shared-referenced, so a `&'a T` may be
        // handed out for as long as the list stays borrowed.
        Some(unsafe { node.as_ref() })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

impl<'a, T: Linked<Tag>, Tag> DoubleEndedIterator for Iter<'a, T, Tag> {
    #[inline]
    fn next_back(&mut self) -> Option<&'a T> {
        if self.len == 0 {
            return None;
        }
        let node = self.tail?;
        // SAFETY: as in `next`.
        let link = unsafe { link_of::<T, Tag>(node) };
        self.tail = link.prev.get();
        self.len -= 1;
        // SAFETY: as in `next`.
        Some(unsafe { node.as_ref() })
    }
}

impl<T: Linked<Tag>, Tag> ExactSizeIterator for Iter<'_, T, Tag> {}
impl<T: Linked<Tag>, Tag> FusedIterator for Iter<'_, T, Tag> {}

impl<T: Linked<Tag>, Tag> Clone for Iter<'_, T, Tag> {
    #[inline]
    fn clone(&self) -> Self {
        Self {
            head: self.head,
            tail: self.tail,
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

/// Draining iterator of a [`List`]: pops nodes from the front (`next`) or the back
/// (`next_back`).
///
/// Created by [`List::drain`]; each yielded node is already unlinked. Dropping it unlinks the
/// nodes not yet yielded (the list ends empty).
pub struct Drain<'a, T: Linked<Tag>, Tag = ()> {
    list: &'a mut List<T, Tag>,
}

impl<T: Linked<Tag>, Tag> Iterator for Drain<'_, T, Tag> {
    type Item = NonNull<T>;

    #[inline]
    fn next(&mut self) -> Option<NonNull<T>> {
        self.list.pop_front()
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.list.len, Some(self.list.len))
    }
}

impl<T: Linked<Tag>, Tag> DoubleEndedIterator for Drain<'_, T, Tag> {
    #[inline]
    fn next_back(&mut self) -> Option<NonNull<T>> {
        self.list.pop_back()
    }
}

impl<T: Linked<Tag>, Tag> ExactSizeIterator for Drain<'_, T, Tag> {}
impl<T: Linked<Tag>, Tag> FusedIterator for Drain<'_, T, Tag> {}

impl<T: Linked<Tag>, Tag> Drop for Drain<'_, T, Tag> {
    fn drop(&mut self) {
        self.list.clear();
    }
}

impl<T: Linked<Tag>, Tag> fmt::Debug for Drain<'_, T, Tag> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &self.list.len)
            .finish()
    }
}
