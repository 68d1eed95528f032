//! Intrusive, allocation-free FIFO queues and doubly linked lists for `no_std`.
//!
//! # Intrusive lists
//!
//! An ordinary collection owns its elements, or at least allocates a cell per element that
//! points to it. An *intrusive* list does neither: each element (a **node**) embeds the list
//! pointers itself, in a [`Link`] field, and the list only remembers its first and last node.
//! So:
//!
//! * pushing and popping never allocate and never fail, they only write a few pointers;
//! * a node can be unlinked from the middle of a [`List`] in O(1) given just the node, because
//!   its neighbours are found through its own link;
//! * the nodes live wherever their owner keeps them (a slab, a `Box`, a static): the list does
//!   not own them, it only borrows their links;
//! * a node can be on several lists at once by embedding one link per list. Links are told
//!   apart by a *tag* type: `Link` fields are named to the lists through
//!   [`Linked<Tag>`], and a [`Queue<T, Tag>`]/[`List<T, Tag>`] uses the link that `Tag`
//!   selects. The default tag is `()`.
//!
//! This crate offers two lists:
//!
//! * [`Queue`]: singly linked; push at both ends, pop at the front, O(1) [`Queue::append`].
//!   A FIFO (submission queue, completion list) or, with `push_front`, a LIFO free list.
//! * [`List`]: doubly linked; in addition pop at the back, [`List::remove`] any node and
//!   [`List::contains`], both O(1) (an in-flight set). Its [`List::append`] rewrites the owner
//!   id of the shorter list's nodes, so it is O(min(len, other.len)).
//!
//! # The contract
//!
//! Because the list does not own its nodes, the compiler cannot check that a node outlives
//! its membership. That part is on you, and it is what the `unsafe` push methods
//! ([`Queue::push_back`], [`List::push_front`], ...) ask for. From the moment you push a node
//! until it is unlinked again (popped, removed, drained, or the list is cleared or dropped):
//!
//! 1. the node stays live at the same address: it is not freed, moved or overwritten;
//! 2. the node is accessed only through shared references (`&T`); its link belongs to the list.
//!
//! Dropping a list unlinks the nodes still on it, so the nodes need only outlive the lists
//! (declare them first). A list that is leaked (`mem::forget`) leaves its nodes linked for
//! good; such nodes must then be leaked too.
//!
//! The misuse that can be detected is detected, in release builds too:
//!
//! * pushing a node whose link is already linked panics (instead of corrupting two lists);
//! * [`List::remove`] panics unless the node is on that very list: each link records its
//!   owner (a unique, nonzero list id), so an unlinked node or one on another list is caught
//!   (so is a node that was moved while linked, before anything is changed);
//! * dropping a [`Link`] that is still linked aborts the process instead of leaving a dangling
//!   pointer behind (that is a broken contract, caught where it can be);
//! * operations that hand out nodes return the `NonNull<T>` that was pushed, with its
//!   provenance, so it can be used to free the node (e.g. `Box::from_raw`).
//!
//! Iterating ([`Queue::iter`], [`List::iter`]) yields `&T` borrowed from the list, so the list
//! cannot change meanwhile. Draining unlinks each node before yielding it, and a panic in your
//! code while draining leaves the list valid (see [`Queue::drain`]).
//!
//! A node type connects to a list through the `unsafe trait` [`Linked`]. Implement it with
//! [`impl_linked!`], naming the `Link` field; the macro projects to the field without pointer
//! arithmetic and without creating references to the node, and checks at compile time that the
//! field is a `Link<Node>` stored inline and aligned.
//!
//! Nodes with links are neither `Send` nor `Sync`; lists are meant for one thread (one ring).
//!
//! # Example
//!
//! A task that is on a run queue and, at the same time, on the list of all tasks:
//!
//! ```
//! use core::ptr::NonNull;
//! use xuring_queue::{impl_linked, Link, List, Queue};
//!
//! struct Task {
//!     name: &'static str,
//!     run_link: Link<Task>, // for `Queue<Task>` (tag `()`)
//!     all_link: Link<Task>, // for `List<Task, AllTasks>`
//! }
//!
//! /// Tag type naming `all_link`.
//! struct AllTasks;
//!
//! impl_linked!(Task, run_link);
//! impl_linked!(Task, all_link, AllTasks);
//!
//! fn spawn(name: &'static str) -> NonNull<Task> {
//!     let task = Box::new(Task { name, run_link: Link::new(), all_link: Link::new() });
//!     NonNull::from(Box::leak(task))
//! }
//!
//! let mut run_queue: Queue<Task> = Queue::new();
//! let mut all: List<Task, AllTasks> = List::new();
//!
//! for name in ["a", "b", "c"] {
//!     let task = spawn(name);
//!     // SAFETY: the task is boxed (it never moves) and is freed below only after being
//!     // unlinked from both lists; while linked it is only accessed through `&Task`.
//!     unsafe {
//!         run_queue.push_back(task);
//!         all.push_back(task);
//!     }
//! }
//! assert_eq!(run_queue.len(), 3);
//! assert_eq!(all.iter().map(|t| t.name).collect::<Vec<_>>(), ["a", "b", "c"]);
//!
//! // Run the tasks in FIFO order; a finished task leaves `all` and is freed.
//! while let Some(task) = run_queue.pop_front() {
//!     // SAFETY: the task is live: it is still on `all`, and only freed below.
//!     let task_ref = unsafe { task.as_ref() };
//!     assert!(!task_ref.run_link.is_linked() && all.contains(task_ref));
//!     let task = all.remove(task_ref);
//!     assert!(!task_ref.all_link.is_linked());
//!     // SAFETY: `task` came from `Box::leak` and is now on no list.
//!     drop(unsafe { Box::from_raw(task.as_ptr()) });
//! }
//! assert!(all.is_empty());
//! ```
//!
//! # `unsafe` in this crate
//!
//! The crate root denies `unsafe_code`. It is allowed only in the modules [`link`], [`queue`]
//! and [`list`], each of which opens with a `# Safety` section giving the invariants its
//! `unsafe` blocks rely on.
#![no_std]
#![deny(unsafe_code)]

pub mod link;
pub mod list;
pub mod queue;

pub use link::{Link, Linked};
pub use list::List;
pub use queue::Queue;

/// Implements [`Linked`] for a node type from the name of its [`Link`] field.
///
/// * `impl_linked!(Node, link)` implements `Linked<()>` (the default tag) through `link`;
/// * `impl_linked!(Node, other_link, OtherTag)` implements `Linked<OtherTag>` through
///   `other_link`, so that `Node` can also be on a `Queue<Node, OtherTag>`/`List<Node, OtherTag>`;
/// * the field may be nested: `impl_linked!(Node, header.link)`;
/// * for a generic node type, list its type parameters first, each with at most one bound:
///   `impl_linked!(impl<T> Node<T>, link)`, `impl_linked!(impl<B: Backend> Task<B>, link)`.
///   (For anything fancier, implement [`Linked`] by hand the same way: project with
///   `&raw const (*node.as_ptr()).field`.)
///
/// The generated code projects from the node pointer to the field with `&raw const`, so it
/// needs no pointer arithmetic and creates no reference to the node. It is rejected at compile
/// time unless the field is a `Link<Node>` stored inline in `Node` (not behind a pointer or
/// `Deref`) and not in a `#[repr(packed)]` struct, which is what makes the `unsafe impl` sound.
///
/// ```
/// use xuring_queue::{impl_linked, Link, Queue};
///
/// struct Header<T> { link: Link<Node<T>> }
/// struct Node<T> { value: T, header: Header<T> }
/// impl_linked!(impl<T> Node<T>, header.link);
///
/// let node = Node { value: 7, header: Header { link: Link::new() } };
/// let mut queue: Queue<Node<i32>> = Queue::new();
/// // SAFETY: `node` outlives `queue`, does not move and is only read while queued.
/// unsafe { queue.push_back(core::ptr::NonNull::from(&node)) };
/// assert_eq!(queue.front().map(|n| n.value), Some(7));
/// ```
///
/// A field of the wrong type is rejected:
///
/// ```compile_fail
/// use xuring_queue::{impl_linked, Link};
/// struct Other;
/// struct Node { link: Link<Other> }
/// impl_linked!(Node, link);
/// ```
///
/// So is a link behind a pointer (it would not move and die with the node):
///
/// ```compile_fail,E0609
/// use xuring_queue::{impl_linked, Link};
/// struct Inner { link: Link<Node> }
/// struct Node { inner: Box<Inner> }
/// impl_linked!(Node, inner.link);
/// ```
///
/// So is a link in a packed struct (it could be unaligned):
///
/// ```compile_fail,E0793
/// use xuring_queue::{impl_linked, Link};
/// #[repr(C, packed)]
/// struct Node { byte: u8, link: Link<Node> }
/// impl_linked!(Node, link);
/// ```
#[macro_export]
macro_rules! impl_linked {
    (impl<$($gen:ident $(: $bound:path)?),+ $(,)?> $node:ty, $($field:tt).+ $(,)?) => {
        $crate::impl_linked!(@impl [$($gen $(: $bound)?),+] $node, [$($field).+], ());
    };
    (impl<$($gen:ident $(: $bound:path)?),+ $(,)?> $node:ty, $($field:tt).+, $tag:ty $(,)?) => {
        $crate::impl_linked!(@impl [$($gen $(: $bound)?),+] $node, [$($field).+], $tag);
    };
    (@impl [$($generics:tt)*] $node:ty, [$($field:tt).+], $tag:ty) => {
        // SAFETY: `link` projects from `node` to the field `$field` with `&raw const`, which
        // keeps `node`'s provenance and creates no reference. `offset_of!` below only accepts a
        // path of fields stored inline in `$node` (no deref through pointers, references or
        // `Deref`), the return type forces the field to be a `Link<$node>`, and
        // `check_field` takes a reference to the field, which the compiler refuses for
        // possibly unaligned fields of packed structs. The function does nothing else.
        unsafe impl<$($generics)*> $crate::Linked<$tag> for $node {
            #[inline(always)]
            unsafe fn link(
                node: ::core::ptr::NonNull<Self>,
            ) -> ::core::ptr::NonNull<$crate::Link<Self>> {
                let _ = ::core::mem::offset_of!(Self, $($field).+);
                $crate::__private::check_field::<Self>(|node| &node.$($field).+);
                // SAFETY: the caller passes a pointer to a live `Self`, so the field place is
                // in bounds of it.
                let link = unsafe { &raw const (*node.as_ptr()).$($field).+ };
                // SAFETY: `link` points into the live node `*node`, so it is not null.
                unsafe { ::core::ptr::NonNull::new_unchecked(link.cast_mut()) }
            }
        }
    };
    ($node:ty, $($field:tt).+ $(,)?) => {
        $crate::impl_linked!(@impl [] $node, [$($field).+], ());
    };
    ($node:ty, $($field:tt).+, $tag:ty $(,)?) => {
        $crate::impl_linked!(@impl [] $node, [$($field).+], $tag);
    };
}

#[doc(hidden)]
pub mod __private {
    //! Support for [`impl_linked!`](crate::impl_linked); not a public API.

    /// Compile-time check that `field` selects a `Link<T>` that may be referenced (so it is
    /// aligned). Never runs anything.
    #[inline(always)]
    pub fn check_field<T>(field: for<'a> fn(&'a T) -> &'a crate::Link<T>) {
        let _ = field;
    }
}
