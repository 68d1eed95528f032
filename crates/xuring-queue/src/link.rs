//! The per-node [`Link`] and the [`Linked`] contract between a node type and a list.
//!
//! # Safety
//!
//! This module is one of the three modules of the crate that may contain `unsafe` code (the
//! others are [`crate::queue`] and [`crate::list`]). It holds:
//!
//! * the declaration of the `unsafe trait` [`Linked`], whose `# Safety` section states what an
//!   implementer promises;
//! * `link_of`, the one helper that turns a node pointer into a `&Link`. Every other place
//!   in the crate that reaches a node's link goes through it, so the argument "this pointer
//!   leads to a live, aligned `Link` inside a live node" is made once, here, and each caller
//!   only has to argue that the node is live.
//!
//! The state of a [`Link`] is kept in `Cell`s, so a list may update the link of a node that is
//! otherwise only reachable through shared references. A link is in exactly one of two states:
//!
//! * **unlinked**: `owner == UNLINKED` and `next == prev == None`;
//! * **linked**: `owner != UNLINKED`; the owner is `QUEUE_OWNER` for every node of every
//!   [`Queue`](crate::Queue) and a [`List`](crate::List)'s own id (from `new_list_id`) for the
//!   nodes of that list. List ids are never handed out twice, so `owner == list.id` tells that
//!   the node is on that very list.
#![allow(unsafe_code)]

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Marker field of the lists: makes them `!Send` and `!Sync` (they hold raw node pointers)
/// without tying any auto trait to `Tag`.
pub(crate) type ListMarker<T, Tag> = PhantomData<(*const T, fn() -> Tag)>;

/// `Link::owner` of a node that is on no list.
pub(crate) const UNLINKED: usize = 0;

/// `Link::owner` of a node that is on a [`Queue`](crate::Queue). Never a list id.
pub(crate) const QUEUE_OWNER: usize = usize::MAX;

/// The next list id to hand out. Ids run from 1 up to (not including) `QUEUE_OWNER`.
static NEXT_LIST_ID: AtomicUsize = AtomicUsize::new(1);

/// Hands out a list id that no other list has ever had.
///
/// Called once per list, lazily on its first push, so that `List::new` can stay a `const fn`.
#[cold]
#[inline(never)]
pub(crate) fn new_list_id() -> usize {
    let taken = NEXT_LIST_ID.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |id| {
        // Never wrap around: a reused id would make `remove` accept a node of another list.
        if id < QUEUE_OWNER { Some(id + 1) } else { None }
    });
    match taken {
        Ok(id) => id,
        Err(_) => panic!("xuring-queue: list ids exhausted"),
    }
}

/// The link a node embeds to be put on a [`Queue`](crate::Queue) or a [`List`](crate::List).
///
/// A node type embeds one `Link<Self>` per list it can be on at the same time and tells the
/// lists where each link is through [`Linked`] (usually with [`impl_linked!`](crate::impl_linked)).
///
/// The link is managed entirely by the lists: all its state sits in `Cell`s, so a list updates
/// it while the rest of the node is shared-referenced. From the outside a link can only be
/// created (unlinked) and asked whether it is linked.
///
/// A link is neither `Send` nor `Sync` (it holds raw pointers to its neighbours), so node types
/// embedding one are not either: lists and their nodes live on one thread.
///
/// # Dropping
///
/// A node must be unlinked before it is dropped (see the push methods' safety contract).
/// Dropping a `Link` that is still linked would leave its list pointing at freed memory, so it
/// aborts the process (by panicking inside a panic) instead of letting that happen.
pub struct Link<T> {
    /// Next node on the list, `None` at the tail and when unlinked.
    pub(crate) next: Cell<Option<NonNull<T>>>,
    /// Previous node (lists only; always `None` on a queue and when unlinked).
    pub(crate) prev: Cell<Option<NonNull<T>>>,
    /// Who owns the link: `UNLINKED`, `QUEUE_OWNER` or a list id.
    pub(crate) owner: Cell<usize>,
}

impl<T> Link<T> {
    /// Creates an unlinked link.
    #[inline]
    #[must_use]
    pub const fn new() -> Self {
        Self {
            next: Cell::new(None),
            prev: Cell::new(None),
            owner: Cell::new(UNLINKED),
        }
    }

    /// Returns `true` while the node is on a queue or a list through this link.
    #[inline]
    #[must_use]
    pub fn is_linked(&self) -> bool {
        self.owner.get() != UNLINKED
    }

    /// Marks an unlinked link as owned by `owner`; panics if it is already linked.
    ///
    /// This check runs in release builds too: linking a node twice would corrupt both lists.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn claim(&self, owner: usize) {
        let current = self.owner.get();
        if current != UNLINKED {
            already_linked(current);
        }
        debug_assert!(self.next.get().is_none() && self.prev.get().is_none());
        self.owner.set(owner);
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn already_linked(owner: usize) -> ! {
    if owner == QUEUE_OWNER {
        panic!("xuring-queue: push of a node that is already linked (it is on a queue)");
    }
    panic!("xuring-queue: push of a node that is already linked (it is on list #{owner})");
}

impl<T> Default for Link<T> {
    #[inline]
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Link<T> {
    /// Prints the state of the link only (`Link(unlinked)`, `Link(linked: queue)` or
    /// `Link(linked: list #3)`); neighbours are never read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.owner.get() {
            UNLINKED => f.write_str("Link(unlinked)"),
            QUEUE_OWNER => f.write_str("Link(linked: queue)"),
            id => write!(f, "Link(linked: list #{id})"),
        }
    }
}

impl<T> Drop for Link<T> {
    #[inline]
    fn drop(&mut self) {
        if self.owner.get() != UNLINKED {
            dropped_while_linked();
        }
    }
}

/// Aborts: a linked node is being dropped, and its list would go on to use freed memory.
///
/// `core` has no `abort`, so this panics while a guard whose destructor panics again is alive;
/// a panic during unwinding aborts the process (with `panic = "abort"` the first one does).
#[cold]
#[inline(never)]
fn dropped_while_linked() -> ! {
    struct AbortOnUnwind;
    impl Drop for AbortOnUnwind {
        fn drop(&mut self) {
            panic!("xuring-queue: aborting after a linked node was dropped");
        }
    }
    let _guard = AbortOnUnwind;
    panic!(
        "xuring-queue: a node was dropped while still linked in a queue or list; \
         unlink it (pop, remove, drain or drop the list) before freeing it"
    );
}

/// How a node type reaches one of its embedded [`Link`]s: the contract between the node type
/// and every [`Queue<Self, Tag>`](crate::Queue) and [`List<Self, Tag>`](crate::List).
///
/// `Tag` names the link, so that a node with several links (one per tag type) can be on several
/// lists at the same time. The default tag is `()`.
///
/// Do not implement this by hand unless you have to: [`impl_linked!`](crate::impl_linked)
/// implements it from a field name and checks the field at compile time.
///
/// # Safety
///
/// An implementer guarantees that [`link`](Linked::link), given a pointer to a live `Self`:
///
/// * returns a pointer to a `Link<Self>` that is a field (directly or through nested fields, never
///   behind a pointer, reference or `Deref`) of that same `Self` value, so it lives and stays put
///   exactly as long as the node does;
/// * derives the returned pointer from `node` (it keeps `node`'s provenance) by place projection
///   or pointer arithmetic only, without creating a reference to `*node` and without reading or
///   writing any part of it;
/// * returns a properly aligned pointer (the field is not in a `#[repr(packed)]` struct);
/// * returns the same link for the same node every time, and does nothing else: it does not
///   panic and has no side effects.
///
/// Nothing but the lists of this crate may change that link while it is linked; since all of a
/// `Link`'s state is private, this holds as long as the field is not overwritten or moved (which
/// the push methods' contract rules out anyway).
pub unsafe trait Linked<Tag = ()>: Sized {
    /// Returns a pointer to the `Link` of `node` that this tag selects.
    ///
    /// # Safety
    ///
    /// The caller passes a `node` that points to a live, properly aligned `Self`.
    unsafe fn link(node: NonNull<Self>) -> NonNull<Link<Self>>;
}

/// Returns the `Tag` link of `node` as a reference.
///
/// # Safety
///
/// The caller passes a `node` that points to a live `T` and stays live (not freed or moved) for
/// as long as the returned reference is used.
#[inline(always)]
pub(crate) unsafe fn link_of<'a, T: Linked<Tag>, Tag>(node: NonNull<T>) -> &'a Link<T> {
    // SAFETY: the caller guarantees that `node` points to a live `T`, which is what `link` needs.
    let link = unsafe { T::link(node) };
    // SAFETY: by the `Linked` contract `link` is an aligned pointer to a `Link<T>` field inside
    // the live node `*node`, derived from `node`; the caller keeps the node live while the
    // reference is used. All of `Link`'s state is in `Cell`s, so the shared reference does not
    // forbid the writes that lists make through other shared references to the same link.
    unsafe { link.as_ref() }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn list_ids_are_unique_and_never_reserved() {
        let mut ids: Vec<usize> = (0..1000).map(|_| new_list_id()).collect();
        assert!(ids.iter().all(|&id| id != UNLINKED && id != QUEUE_OWNER));
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn new_link_is_unlinked() {
        let link: Link<u8> = Link::new();
        assert!(!link.is_linked());
        assert!(link.next.get().is_none() && link.prev.get().is_none());
    }
}
