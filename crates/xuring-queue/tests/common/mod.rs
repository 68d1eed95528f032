//! Shared test fixtures: a node type with two links and a pool of heap-allocated nodes.
#![allow(dead_code)]

use core::ptr::NonNull;
use xuring_queue::{Link, impl_linked};

/// Test node: `a` is the default-tag link, `b` the `B`-tag link.
#[derive(Debug)]
pub struct Node {
    pub id: usize,
    pub a: Link<Node>,
    pub b: Link<Node>,
}

/// Tag of `Node::b`.
#[derive(Debug)]
pub struct B;

impl_linked!(Node, a);
impl_linked!(Node, b, B);

impl Node {
    pub fn new(id: usize) -> Self {
        Self {
            id,
            a: Link::new(),
            b: Link::new(),
        }
    }
}

/// A fixed pool of boxed nodes, freed when the pool is dropped. Declare a pool before the lists
/// that use it, so that the lists are dropped (and unlink the nodes) first.
pub struct Pool {
    nodes: Vec<NonNull<Node>>,
}

impl Pool {
    pub fn new(n: usize) -> Self {
        Self {
            nodes: (0..n)
                .map(|id| NonNull::from(Box::leak(Box::new(Node::new(id)))))
                .collect(),
        }
    }

    /// The pointer to node `i` (with the provenance of its `Box`).
    pub fn ptr(&self, i: usize) -> NonNull<Node> {
        self.nodes[i]
    }

    /// A shared reference to node `i`.
    pub fn node(&self, i: usize) -> &Node {
        // SAFETY: the node is live until the pool is dropped and is never mutably referenced.
        unsafe { self.nodes[i].as_ref() }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for &node in &self.nodes {
            // SAFETY: each pointer came from `Box::leak` and is freed exactly once, here.
            drop(unsafe { Box::from_raw(node.as_ptr()) });
        }
    }
}

/// The id of the node behind `p`.
pub fn id_of(p: NonNull<Node>) -> usize {
    // SAFETY: tests only pass pointers into a live pool.
    unsafe { p.as_ref() }.id
}

/// Installs (once) a panic hook that stays silent for the panics the tests provoke on
/// purpose (messages starting with `xuring-queue:` or `user panic`) and reports all others.
pub fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !(msg.starts_with("xuring-queue:") || msg.starts_with("user panic")) {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, expecting it to panic with a message containing `expected`.
pub fn expect_panic<R>(expected: &str, f: impl FnOnce() -> R) {
    quiet_expected_panics();
    let err = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic containing {expected:?}"),
        Err(err) => err,
    };
    let msg = err
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| err.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("");
    assert!(
        msg.contains(expected),
        "panic {msg:?} does not contain {expected:?}"
    );
}
