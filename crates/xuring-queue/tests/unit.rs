//! Unit tests of `Queue`, `List` and `Link`: behaviour, misuse panics, panic safety, Debug.

mod common;

use core::ptr::NonNull;
use std::format;
use std::panic::{AssertUnwindSafe, catch_unwind};

use common::{B, Node, Pool, expect_panic, id_of};
use xuring_queue::{Link, Linked, List, Queue, impl_linked};

// Pushing helpers. Every test declares its `Pool` (or its nodes) before its lists, so the nodes
// outlive the lists; nodes are never moved or mutably borrowed. That is the whole push
// contract, which is why each helper's `unsafe` block is sound.

fn qpush_back<Tag>(q: &mut Queue<Node, Tag>, p: NonNull<Node>)
where
    Node: Linked<Tag>,
{
    // SAFETY: see the comment above: `p` is live, pinned and only shared while queued.
    unsafe { q.push_back(p) }
}

fn qpush_front<Tag>(q: &mut Queue<Node, Tag>, p: NonNull<Node>)
where
    Node: Linked<Tag>,
{
    // SAFETY: as in `qpush_back`.
    unsafe { q.push_front(p) }
}

fn lpush_back<Tag>(l: &mut List<Node, Tag>, p: NonNull<Node>)
where
    Node: Linked<Tag>,
{
    // SAFETY: as in `qpush_back`.
    unsafe { l.push_back(p) }
}

fn lpush_front<Tag>(l: &mut List<Node, Tag>, p: NonNull<Node>)
where
    Node: Linked<Tag>,
{
    // SAFETY: as in `qpush_back`.
    unsafe { l.push_front(p) }
}

fn qids<Tag>(q: &Queue<Node, Tag>) -> Vec<usize>
where
    Node: Linked<Tag>,
{
    q.assert_valid();
    q.iter().map(|n| n.id).collect()
}

fn lids<Tag>(l: &List<Node, Tag>) -> Vec<usize>
where
    Node: Linked<Tag>,
{
    l.assert_valid();
    let ids: Vec<usize> = l.iter().map(|n| n.id).collect();
    let mut rev: Vec<usize> = l.iter().rev().map(|n| n.id).collect();
    rev.reverse();
    assert_eq!(ids, rev, "forward and backward iteration differ");
    ids
}

#[test]
fn queue_fifo() {
    let pool = Pool::new(4);
    let mut q: Queue<Node> = Queue::new();
    assert!(q.is_empty() && q.front().is_none() && q.peek().is_none() && q.back().is_none());
    for i in 0..4 {
        qpush_back(&mut q, pool.ptr(i));
        assert!(pool.node(i).a.is_linked());
        assert!(!pool.node(i).b.is_linked());
    }
    assert_eq!(qids(&q), [0, 1, 2, 3]);
    assert_eq!(q.len(), 4);
    assert_eq!(q.front().map(|n| n.id), Some(0));
    assert_eq!(q.peek().map(|n| n.id), Some(0));
    assert_eq!(q.back().map(|n| n.id), Some(3));
    assert_eq!(q.iter().len(), 4);
    assert_eq!((&q).into_iter().count(), 4);
    for i in 0..4 {
        let p = q.pop_front().unwrap();
        assert_eq!(p, pool.ptr(i));
        assert!(!pool.node(i).a.is_linked());
        q.assert_valid();
    }
    assert!(q.pop_front().is_none());
    assert!(q.is_empty());
    q.assert_valid();
}

#[test]
fn queue_push_front_is_lifo() {
    let pool = Pool::new(3);
    let mut q: Queue<Node> = Queue::new();
    qpush_front(&mut q, pool.ptr(0));
    qpush_front(&mut q, pool.ptr(1));
    qpush_back(&mut q, pool.ptr(2));
    assert_eq!(qids(&q), [1, 0, 2]);
    assert_eq!(q.back().map(|n| n.id), Some(2));
    assert_eq!(q.drain().map(id_of).collect::<Vec<_>>(), [1, 0, 2]);
    assert!(q.is_empty());
}

#[test]
fn queue_append() {
    let pool = Pool::new(6);
    let mut q1: Queue<Node> = Queue::new();
    let mut q2: Queue<Node> = Queue::new();
    // empty into empty
    q1.append(&mut q2);
    assert!(q1.is_empty() && q2.is_empty());
    // nonempty into empty
    qpush_back(&mut q2, pool.ptr(0));
    qpush_back(&mut q2, pool.ptr(1));
    q1.append(&mut q2);
    assert_eq!(qids(&q1), [0, 1]);
    assert_eq!(qids(&q2), Vec::<usize>::new());
    // empty into nonempty
    q1.append(&mut q2);
    assert_eq!(qids(&q1), [0, 1]);
    // nonempty into nonempty
    for i in 2..6 {
        qpush_back(&mut q2, pool.ptr(i));
    }
    q1.append(&mut q2);
    assert_eq!(qids(&q1), [0, 1, 2, 3, 4, 5]);
    assert!(q2.is_empty() && q2.is_empty());
    assert_eq!(q1.len(), 6);
    // the emptied queue still works
    let p = q1.pop_front().unwrap();
    qpush_back(&mut q2, p);
    assert_eq!(qids(&q2), [0]);
    assert_eq!(q1.back().map(|n| n.id), Some(5));
}

#[test]
#[should_panic(expected = "already linked")]
fn queue_double_push_panics() {
    let pool = Pool::new(1);
    let mut q: Queue<Node> = Queue::new();
    qpush_back(&mut q, pool.ptr(0));
    qpush_back(&mut q, pool.ptr(0));
}

#[test]
#[should_panic(expected = "already linked")]
fn queue_push_of_node_on_other_queue_panics() {
    let pool = Pool::new(1);
    let mut q1: Queue<Node> = Queue::new();
    let mut q2: Queue<Node> = Queue::new();
    qpush_back(&mut q1, pool.ptr(0));
    qpush_front(&mut q2, pool.ptr(0));
}

#[test]
#[should_panic(expected = "already linked")]
fn list_double_push_panics() {
    let pool = Pool::new(1);
    let mut l: List<Node> = List::new();
    lpush_back(&mut l, pool.ptr(0));
    lpush_front(&mut l, pool.ptr(0));
}

#[test]
#[should_panic(expected = "already linked")]
fn list_push_of_queued_node_panics() {
    let pool = Pool::new(1);
    let mut q: Queue<Node> = Queue::new();
    let mut l: List<Node> = List::new();
    qpush_back(&mut q, pool.ptr(0));
    lpush_back(&mut l, pool.ptr(0));
}

#[test]
fn rejected_push_changes_nothing() {
    let pool = Pool::new(3);
    let mut q: Queue<Node> = Queue::new();
    let mut l: List<Node> = List::new();
    qpush_back(&mut q, pool.ptr(0));
    qpush_back(&mut q, pool.ptr(1));
    lpush_back(&mut l, pool.ptr(2));
    for i in 0..3 {
        expect_panic("already linked", || qpush_back(&mut q, pool.ptr(i)));
        expect_panic("already linked", || qpush_front(&mut q, pool.ptr(i)));
        expect_panic("already linked", || lpush_back(&mut l, pool.ptr(i)));
        expect_panic("already linked", || lpush_front(&mut l, pool.ptr(i)));
    }
    assert_eq!(qids(&q), [0, 1]);
    assert_eq!(lids(&l), [2]);
}

#[test]
#[should_panic(expected = "not linked")]
fn list_remove_unlinked_panics() {
    let pool = Pool::new(2);
    let mut l: List<Node> = List::new();
    lpush_back(&mut l, pool.ptr(0));
    l.remove(pool.node(1));
}

#[test]
#[should_panic(expected = "not linked")]
fn list_remove_from_fresh_list_panics() {
    let node = Node::new(0);
    let mut l: List<Node> = List::new();
    l.remove(&node);
}

#[test]
#[should_panic(expected = "another list")]
fn list_remove_from_wrong_list_panics() {
    let pool = Pool::new(2);
    let mut l1: List<Node> = List::new();
    let mut l2: List<Node> = List::new();
    lpush_back(&mut l1, pool.ptr(0));
    lpush_back(&mut l2, pool.ptr(1));
    l2.remove(pool.node(0));
}

#[test]
#[should_panic(expected = "another list")]
fn list_remove_of_queued_node_panics() {
    let pool = Pool::new(1);
    let mut q: Queue<Node> = Queue::new();
    let mut l: List<Node> = List::new();
    qpush_back(&mut q, pool.ptr(0));
    l.remove(pool.node(0));
}

#[test]
fn rejected_remove_changes_nothing() {
    let pool = Pool::new(4);
    let mut l1: List<Node> = List::new();
    let mut l2: List<Node> = List::new();
    lpush_back(&mut l1, pool.ptr(0));
    lpush_back(&mut l1, pool.ptr(1));
    lpush_back(&mut l2, pool.ptr(2));
    expect_panic("another list", || l2.remove(pool.node(0)));
    expect_panic("another list", || l1.remove(pool.node(2)));
    expect_panic("not linked", || l1.remove(pool.node(3)));
    assert_eq!(lids(&l1), [0, 1]);
    assert_eq!(lids(&l2), [2]);
    // A node removed once is not on the list any more.
    l1.remove(pool.node(1));
    expect_panic("not linked", || l1.remove(pool.node(1)));
    assert_eq!(lids(&l1), [0]);
}

#[test]
fn list_both_ends_and_remove() {
    let pool = Pool::new(6);
    let mut l: List<Node> = List::new();
    assert!(l.is_empty() && l.front().is_none() && l.back().is_none() && l.peek().is_none());
    assert!(l.pop_back().is_none() && l.pop_front().is_none());
    for i in 0..5 {
        lpush_back(&mut l, pool.ptr(i));
    }
    lpush_front(&mut l, pool.ptr(5));
    assert_eq!(lids(&l), [5, 0, 1, 2, 3, 4]);
    assert_eq!(l.front().map(|n| n.id), Some(5));
    assert_eq!(l.peek().map(|n| n.id), Some(5));
    assert_eq!(l.back().map(|n| n.id), Some(4));
    // middle, head, tail
    assert_eq!(l.remove(pool.node(2)), pool.ptr(2));
    assert_eq!(lids(&l), [5, 0, 1, 3, 4]);
    assert_eq!(l.remove(pool.node(5)), pool.ptr(5));
    assert_eq!(lids(&l), [0, 1, 3, 4]);
    assert_eq!(l.remove(pool.node(4)), pool.ptr(4));
    assert_eq!(lids(&l), [0, 1, 3]);
    assert_eq!(l.pop_back(), Some(pool.ptr(3)));
    assert_eq!(l.pop_front(), Some(pool.ptr(0)));
    assert_eq!(lids(&l), [1]);
    // only node
    assert_eq!(l.remove(pool.node(1)), pool.ptr(1));
    assert_eq!(lids(&l), Vec::<usize>::new());
    assert!((0..6).all(|i| !pool.node(i).a.is_linked()));
}

#[test]
fn list_contains() {
    let pool = Pool::new(4);
    let mut q: Queue<Node> = Queue::new();
    let mut l1: List<Node> = List::new();
    let mut l2: List<Node> = List::new();
    assert!(!l1.contains(pool.node(0)));
    lpush_back(&mut l1, pool.ptr(0));
    lpush_back(&mut l2, pool.ptr(1));
    qpush_back(&mut q, pool.ptr(2));
    assert!(l1.contains(pool.node(0)));
    assert!(!l1.contains(pool.node(1)));
    assert!(!l1.contains(pool.node(2)));
    assert!(!l1.contains(pool.node(3)));
    assert!(l2.contains(pool.node(1)));
    assert!(!l2.contains(pool.node(0)));
    l1.pop_front();
    assert!(!l1.contains(pool.node(0)));
}

#[test]
fn list_append_restamps_owner() {
    let pool = Pool::new(8);
    let mut l1: List<Node> = List::new();
    let mut l2: List<Node> = List::new();
    // longer `self`: `other`'s nodes get `self`'s id
    for i in 0..3 {
        lpush_back(&mut l1, pool.ptr(i));
    }
    lpush_back(&mut l2, pool.ptr(3));
    l1.append(&mut l2);
    assert_eq!(lids(&l1), [0, 1, 2, 3]);
    assert!(l2.is_empty());
    l2.assert_valid();
    assert!((0..4).all(|i| l1.contains(pool.node(i)) && !l2.contains(pool.node(i))));
    // shorter `self`: `self`'s nodes get `other`'s id (and the ids are swapped)
    let mut l3: List<Node> = List::new();
    for i in 4..8 {
        lpush_back(&mut l3, pool.ptr(i));
    }
    let mut l4: List<Node> = List::new();
    assert_eq!(l1.remove(pool.node(3)), pool.ptr(3));
    lpush_back(&mut l4, pool.ptr(3));
    l4.append(&mut l3);
    assert_eq!(lids(&l4), [3, 4, 5, 6, 7]);
    assert!(l3.is_empty());
    assert!((3..8).all(|i| l4.contains(pool.node(i)) && !l3.contains(pool.node(i))));
    // both emptied lists still work and their ids stay distinct from the merged one
    lpush_back(&mut l3, pool.ptr(l1.pop_front().map(id_of).unwrap()));
    lpush_back(&mut l2, pool.ptr(l1.pop_front().map(id_of).unwrap()));
    assert_eq!(lids(&l3), [0]);
    assert_eq!(lids(&l2), [1]);
    assert!(!l4.contains(pool.node(0)) && !l2.contains(pool.node(0)));
    expect_panic("another list", || l4.remove(pool.node(0)));
    expect_panic("another list", || l3.remove(pool.node(4)));
    // empty into nonempty and nonempty into empty
    let mut l5: List<Node> = List::new();
    l4.append(&mut l5);
    assert_eq!(lids(&l4), [3, 4, 5, 6, 7]);
    l5.append(&mut l4);
    assert_eq!(lids(&l5), [3, 4, 5, 6, 7]);
    assert!(l4.is_empty());
    assert!(l5.contains(pool.node(7)) && !l4.contains(pool.node(7)));
    assert_eq!(l5.remove(pool.node(5)), pool.ptr(5));
    lpush_back(&mut l4, pool.ptr(5));
    assert!(!l5.contains(pool.node(5)) && l4.contains(pool.node(5)));
    assert_eq!(lids(&l1), [2]);
}

#[test]
fn node_on_two_lists_via_two_tags() {
    let pool = Pool::new(3);
    let mut run: Queue<Node> = Queue::new();
    let mut all: List<Node, B> = List::new();
    for i in 0..3 {
        qpush_back(&mut run, pool.ptr(i));
        lpush_back(&mut all, pool.ptr(i));
    }
    assert_eq!(qids(&run), [0, 1, 2]);
    assert_eq!(lids(&all), [0, 1, 2]);
    // Independent: removing from `all` leaves `run` untouched and vice versa.
    all.remove(pool.node(1));
    assert!(pool.node(1).a.is_linked() && !pool.node(1).b.is_linked());
    assert_eq!(qids(&run), [0, 1, 2]);
    assert_eq!(run.pop_front(), Some(pool.ptr(0)));
    assert!(!pool.node(0).a.is_linked() && pool.node(0).b.is_linked());
    assert_eq!(lids(&all), [0, 2]);
    // The same node can be on a `List<Node>` (tag `()`) only once it left `run`.
    let mut other: List<Node> = List::new();
    lpush_back(&mut other, pool.ptr(0));
    expect_panic("already linked", || lpush_back(&mut other, pool.ptr(1)));
    assert_eq!(lids(&other), [0]);
    assert_eq!(qids(&run), [1, 2]);
}

#[test]
fn panic_during_drain_leaves_lists_valid() {
    common::quiet_expected_panics();
    let pool = Pool::new(5);
    let mut q: Queue<Node> = Queue::new();
    let mut l: List<Node, B> = List::new();
    for i in 0..5 {
        qpush_back(&mut q, pool.ptr(i));
        lpush_back(&mut l, pool.ptr(i));
    }
    let mut seen = Vec::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        for p in q.drain() {
            let node = &pool.node(id_of(p));
            assert!(!node.a.is_linked(), "drain yields unlinked nodes");
            seen.push(node.id);
            if node.id == 1 {
                panic!("user panic in drain");
            }
        }
    }));
    assert!(result.is_err());
    assert_eq!(seen, [0, 1]);
    // Dropping the Drain during unwinding unlinked the rest.
    q.assert_valid();
    assert!(q.is_empty());
    assert!((0..5).all(|i| !pool.node(i).a.is_linked()));

    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut drain = l.drain();
        assert_eq!(drain.len(), 5);
        assert_eq!(drain.next_back().map(id_of), Some(4));
        assert_eq!(drain.next().map(id_of), Some(0));
        panic!("user panic in drain");
    }));
    assert!(result.is_err());
    l.assert_valid();
    assert!(l.is_empty());
    assert!((0..5).all(|i| !pool.node(i).b.is_linked()));

    // A panic while iterating changes nothing.
    for i in 0..5 {
        lpush_back(&mut l, pool.ptr(i));
    }
    let result = catch_unwind(AssertUnwindSafe(|| {
        for n in l.iter() {
            if n.id == 3 {
                panic!("user panic in iter");
            }
        }
    }));
    assert!(result.is_err());
    assert_eq!(lids(&l), [0, 1, 2, 3, 4]);
}

#[test]
fn leaked_drain_leaves_rest_linked() {
    let pool = Pool::new(4);
    let mut q: Queue<Node> = Queue::new();
    let mut l: List<Node> = List::new();
    for i in 0..2 {
        qpush_back(&mut q, pool.ptr(i));
    }
    for i in 2..4 {
        lpush_back(&mut l, pool.ptr(i));
    }
    let mut drain = q.drain();
    assert_eq!(drain.next().map(id_of), Some(0));
    core::mem::forget(drain);
    assert_eq!(qids(&q), [1]);
    let mut drain = l.drain();
    assert_eq!(drain.next_back().map(id_of), Some(3));
    core::mem::forget(drain);
    assert_eq!(lids(&l), [2]);
    assert!(l.contains(pool.node(2)));
}

#[test]
fn drain_partially_then_drop_unlinks_rest() {
    let pool = Pool::new(4);
    let mut l: List<Node> = List::new();
    for i in 0..4 {
        lpush_back(&mut l, pool.ptr(i));
    }
    {
        let mut drain = l.drain();
        assert_eq!(drain.size_hint(), (4, Some(4)));
        assert_eq!(drain.next().map(id_of), Some(0));
        assert!(format!("{drain:?}").contains("remaining: 3"));
    }
    assert!(l.is_empty());
    l.assert_valid();
    assert!((0..4).all(|i| !pool.node(i).a.is_linked()));
    // and the list is reusable
    lpush_back(&mut l, pool.ptr(2));
    assert_eq!(lids(&l), [2]);
}

#[test]
fn clear_and_drop_unlink() {
    let pool = Pool::new(4);
    {
        let mut q: Queue<Node> = Queue::new();
        let mut l: List<Node, B> = List::new();
        for i in 0..4 {
            qpush_back(&mut q, pool.ptr(i));
            lpush_back(&mut l, pool.ptr(i));
        }
        q.clear();
        q.assert_valid();
        assert!(q.is_empty());
        assert!((0..4).all(|i| !pool.node(i).a.is_linked() && pool.node(i).b.is_linked()));
        for i in 0..4 {
            qpush_front(&mut q, pool.ptr(i));
        }
        assert_eq!(qids(&q), [3, 2, 1, 0]);
    }
    assert!((0..4).all(|i| !pool.node(i).a.is_linked() && !pool.node(i).b.is_linked()));
    let mut l: List<Node> = List::new();
    for i in 0..4 {
        lpush_back(&mut l, pool.ptr(i));
    }
    l.clear();
    l.assert_valid();
    assert!((0..4).all(|i| !pool.node(i).a.is_linked()));
}

#[test]
fn iterators() {
    let pool = Pool::new(5);
    let mut l: List<Node> = List::new();
    for i in 0..5 {
        lpush_back(&mut l, pool.ptr(i));
    }
    let mut it = l.iter();
    assert_eq!(it.len(), 5);
    assert_eq!(it.next().map(|n| n.id), Some(0));
    assert_eq!(it.next_back().map(|n| n.id), Some(4));
    let copy = it.clone();
    assert_eq!(it.len(), 3);
    assert_eq!(it.map(|n| n.id).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(copy.rev().map(|n| n.id).collect::<Vec<_>>(), [3, 2, 1]);
    let mut it = l.iter();
    for _ in 0..5 {
        it.next_back();
    }
    assert!(it.next().is_none() && it.next_back().is_none());
    assert_eq!((&l).into_iter().count(), 5);

    let mut q: Queue<Node, B> = Queue::new();
    for i in 0..3 {
        qpush_back(&mut q, pool.ptr(i));
    }
    let mut it = q.iter();
    assert_eq!(it.next().map(|n| n.id), Some(0));
    let copy = it.clone();
    assert_eq!(it.size_hint(), (2, Some(2)));
    assert_eq!(copy.map(|n| n.id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(q.drain().len(), 3);
}

#[test]
fn debug_output() {
    let pool = Pool::new(2);
    let link: Link<Node> = Link::new();
    assert_eq!(format!("{link:?}"), "Link(unlinked)");
    assert_eq!(format!("{:?}", Link::<Node>::default()), "Link(unlinked)");
    let mut q: Queue<Node> = Queue::new();
    let mut l: List<Node, B> = List::new();
    qpush_back(&mut q, pool.ptr(0));
    lpush_back(&mut l, pool.ptr(0));
    assert_eq!(format!("{:?}", pool.node(0).a), "Link(linked: queue)");
    let b = format!("{:?}", pool.node(0).b);
    assert!(
        b.starts_with("Link(linked: list #") && b.ends_with(')'),
        "{b}"
    );
    assert_eq!(format!("{:?}", pool.node(1).a), "Link(unlinked)");
    assert_eq!(
        format!("{q:?}"),
        format!("[Node {{ id: 0, a: Link(linked: queue), b: {b} }}]")
    );
    assert_eq!(
        format!("{:?}", l),
        format!("[Node {{ id: 0, a: Link(linked: queue), b: {b} }}]")
    );
    assert_eq!(format!("{:?}", q.iter()), "Iter { remaining: 1 }");
    assert_eq!(format!("{:?}", l.iter()), "Iter { remaining: 1 }");
    assert_eq!(format!("{:?}", Queue::<Node>::new()), "[]");
    assert_eq!(format!("{:?}", List::<Node>::default()), "[]");
}

#[test]
fn const_construction() {
    const EMPTY_QUEUE: Queue<Node> = Queue::new();
    const EMPTY_LIST: List<Node, B> = List::new();
    const fn make(id: usize) -> Node {
        Node {
            id,
            a: Link::new(),
            b: Link::new(),
        }
    }
    let node = const { make(0) };
    let mut q = EMPTY_QUEUE;
    let mut l = EMPTY_LIST;
    qpush_back(&mut q, NonNull::from(&node));
    lpush_back(&mut l, NonNull::from(&node));
    assert_eq!(q.len() + l.len(), 2);
    assert!(l.contains(&node));
    drop(q);
    drop(l);
    assert!(!node.a.is_linked() && !node.b.is_linked());
}

#[test]
fn stack_nodes_and_moving_the_list() {
    // Nodes on the stack, pushed through shared references; the list itself may move freely.
    let nodes: Vec<Node> = (0..3).map(Node::new).collect();
    let mut l: List<Node> = List::new();
    for n in &nodes {
        lpush_back(&mut l, NonNull::from(n));
    }
    let mut moved = Box::new(l);
    assert_eq!(moved.remove(&nodes[1]), NonNull::from(&nodes[1]));
    let l = *moved;
    assert_eq!(lids(&l), [0, 2]);
    assert!(l.contains(&nodes[0]));
    let mut swapped: List<Node> = List::new();
    let mut l = l;
    core::mem::swap(&mut l, &mut swapped);
    assert!(swapped.contains(&nodes[2]) && !l.contains(&nodes[2]));
    assert_eq!(swapped.remove(&nodes[2]), NonNull::from(&nodes[2]));
}

#[test]
fn popped_pointer_can_free_the_node() {
    // The pointers handed back carry the provenance of the pushed `Box` pointer, so they may
    // free the node (Miri checks this).
    let mut l: List<Node> = List::new();
    let mut q: Queue<Node> = Queue::new();
    let ptrs: Vec<NonNull<Node>> = (0..4)
        .map(|i| NonNull::from(Box::leak(Box::new(Node::new(i)))))
        .collect();
    for &p in &ptrs[..2] {
        lpush_back(&mut l, p);
    }
    for &p in &ptrs[2..] {
        qpush_back(&mut q, p);
    }
    // SAFETY: node 1 is live (it is on `l`).
    let removed = l.remove(unsafe { ptrs[1].as_ref() });
    let popped = [
        l.pop_back().unwrap(),
        q.pop_front().unwrap(),
        q.pop_front().unwrap(),
    ];
    for p in [removed].into_iter().chain(popped) {
        // SAFETY: every node came from `Box::leak`, is unlinked now and is freed once.
        let mut node = unsafe { Box::from_raw(p.as_ptr()) };
        node.id += 100; // exclusive access is fine once unlinked
        assert!(!node.a.is_linked());
    }
    assert!(l.is_empty() && q.is_empty());
}

/// A node type with a generic parameter and a nested link field.
struct Generic<T> {
    value: T,
    header: Header<T>,
}
struct Header<T> {
    link: Link<Generic<T>>,
    other: Link<Generic<T>>,
}
struct Other;
impl_linked!(impl<T: Copy> Generic<T>, header.link);
impl_linked!(impl<T> Generic<T>, header.other, Other);

/// A node type whose parameter carries a bound on the struct itself.
struct Bounded<T: core::fmt::Debug> {
    value: T,
    link: Link<Bounded<T>>,
}
impl_linked!(impl<T: core::fmt::Debug,> Bounded<T>, link,);

#[test]
fn bounded_generic_node() {
    let node = Bounded {
        value: 3u8,
        link: Link::new(),
    };
    let mut q: Queue<Bounded<u8>> = Queue::new();
    // SAFETY: `node` outlives `q`, is not moved and only read while queued.
    unsafe { q.push_back(NonNull::from(&node)) };
    assert_eq!(q.front().map(|n| n.value), Some(3));
    assert!(node.link.is_linked());
    assert_eq!(q.pop_front(), Some(NonNull::from(&node)));
}

#[test]
fn generic_nested_links() {
    let nodes: Vec<Generic<&str>> = ["x", "y"]
        .into_iter()
        .map(|value| Generic {
            value,
            header: Header {
                link: Link::new(),
                other: Link::new(),
            },
        })
        .collect();
    let mut q: Queue<Generic<&str>> = Queue::new();
    let mut l: List<Generic<&str>, Other> = List::new();
    for n in &nodes {
        // SAFETY: `nodes` outlives the lists, is not moved and only read while linked.
        unsafe { q.push_back(NonNull::from(n)) };
        // SAFETY: as above.
        unsafe { l.push_front(NonNull::from(n)) };
    }
    q.assert_valid();
    l.assert_valid();
    assert_eq!(q.iter().map(|n| n.value).collect::<String>(), "xy");
    assert_eq!(l.iter().map(|n| n.value).collect::<String>(), "yx");
    assert!(nodes[0].header.link.is_linked() && nodes[0].header.other.is_linked());
}

/// Environment variable telling `child_drops_linked_node` to misbehave.
const ABORT_CHILD: &str = "XURING_QUEUE_ABORT_CHILD";

/// Run by `dropping_a_linked_node_aborts` in a child process: frees a node that is still
/// queued, which must abort the process before the queue can touch the freed memory.
#[test]
#[ignore = "run in a child process by dropping_a_linked_node_aborts"]
fn child_drops_linked_node() {
    if std::env::var_os(ABORT_CHILD).is_none() {
        return;
    }
    let mut q: Queue<Node> = Queue::new();
    let node = Box::new(Node::new(0));
    // SAFETY: deliberately broken below (the node is freed while queued); the point of the
    // test is that this is caught by an abort before any use after free.
    unsafe { q.push_back(NonNull::from(&*node)) };
    drop(node);
    unreachable!("dropping a linked node must abort");
}

#[test]
#[cfg_attr(miri, ignore = "Miri cannot spawn processes")]
fn dropping_a_linked_node_aborts() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_drops_linked_node",
            "--ignored",
            "--nocapture",
        ])
        .env(ABORT_CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "child succeeded: {stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            output.status.signal(),
            Some(6),
            "child not aborted: {stderr}"
        );
    }
    assert!(stderr.contains("dropped while still linked"), "{stderr}");
}
