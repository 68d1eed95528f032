//! Fuzz target `queue`: arbitrary sequences of `xuring-queue` operations on two `Queue`s and
//! two `List`s sharing eight nodes, checked against `VecDeque` models after every step.
//!
//! Each step is two bytes: the operation and the structure (first byte), the node or count
//! (second byte). Only valid operations are issued (a node is pushed only while unlinked,
//! removed only from its own list): misuse panics by design, and a fuzzer treats a panic as
//! a crash. Shared with `crates/xuring-queue/tests/fuzz_replay.rs`, which replays the seeds.

use std::collections::VecDeque;
use std::ptr::NonNull;

use xuring_queue::{Link, List, Queue, impl_linked};

const NODES: usize = 8;
/// Structures 0 and 1 are queues, 2 and 3 lists; all use the nodes' one link.
const STRUCTS: usize = 4;
const MAX_STEPS: usize = 4096;

struct Node {
    id: usize,
    link: Link<Node>,
}

impl_linked!(Node, link);

fn id_of(node: NonNull<Node>, nodes: &[Node; NODES]) -> usize {
    let index = nodes
        .iter()
        .position(|n| core::ptr::eq(n, node.as_ptr()))
        .expect("a node of the pool");
    assert_eq!(nodes[index].id, index);
    index
}

/// Runs the byte string as a sequence of steps; panics on any divergence from the models.
pub fn run(data: &[u8]) {
    // The nodes are declared before the structures, so the structures (which unlink their
    // nodes when dropped) go first; the nodes never move while linked.
    let nodes: [Node; NODES] = core::array::from_fn(|id| Node {
        id,
        link: Link::new(),
    });
    let mut queues: [Queue<Node>; 2] = [Queue::new(), Queue::new()];
    let mut lists: [List<Node>; 2] = [List::new(), List::new()];
    let mut models: [VecDeque<usize>; STRUCTS] = Default::default();
    let mut home: [Option<usize>; NODES] = [None; NODES];
    let ptr = |n: usize| NonNull::from(&nodes[n]);

    for step in data.chunks(2).take(MAX_STEPS) {
        let op = step[0];
        let arg = step.get(1).copied().unwrap_or(0);
        let s = usize::from(op >> 4) % STRUCTS;
        let n = usize::from(arg) % NODES;
        match op % 10 {
            // push_back / push_front of an unlinked node
            code @ (0 | 1) if home[n].is_none() => {
                let back = code == 0;
                // `nodes` outlives the structures and does not move; a linked node is only
                // read through shared references.
                match (s, back) {
                    // SAFETY: `nodes` outlives the structures and never moves; linked nodes are only read.
                    (0 | 1, true) => unsafe { queues[s].push_back(ptr(n)) },
                    // SAFETY: `nodes` outlives the structures and never moves; linked nodes are only read.
                    (0 | 1, false) => unsafe { queues[s].push_front(ptr(n)) },
                    // SAFETY: `nodes` outlives the structures and never moves; linked nodes are only read.
                    (_, true) => unsafe { lists[s - 2].push_back(ptr(n)) },
                    // SAFETY: `nodes` outlives the structures and never moves; linked nodes are only read.
                    (_, false) => unsafe { lists[s - 2].push_front(ptr(n)) },
                }
                if back {
                    models[s].push_back(n);
                } else {
                    models[s].push_front(n);
                }
                home[n] = Some(s);
            }
            // pop_front
            2 => {
                let got = if s < 2 {
                    queues[s].pop_front()
                } else {
                    lists[s - 2].pop_front()
                };
                let expected = models[s].pop_front();
                assert_eq!(got.map(|p| id_of(p, &nodes)), expected, "pop_front of {s}");
                if let Some(e) = expected {
                    home[e] = None;
                }
            }
            // pop_back (lists)
            3 if s >= 2 => {
                let got = lists[s - 2].pop_back();
                let expected = models[s].pop_back();
                assert_eq!(got.map(|p| id_of(p, &nodes)), expected, "pop_back of {s}");
                if let Some(e) = expected {
                    home[e] = None;
                }
            }
            // remove a node from the list it is on
            4 => {
                if let Some(at @ (2 | 3)) = home[n] {
                    let got = lists[at - 2].remove(&nodes[n]);
                    assert_eq!(id_of(got, &nodes), n);
                    let i = models[at].iter().position(|&x| x == n).expect("modelled");
                    models[at].remove(i);
                    home[n] = None;
                }
            }
            // append the other structure of the same kind
            5 => {
                let (dst, src) = if s < 2 { (s, 1 - s) } else { (s, 5 - s) };
                if s < 2 {
                    let [a, b] = &mut queues;
                    if dst == 0 { a.append(b) } else { b.append(a) }
                } else {
                    let [a, b] = &mut lists;
                    if dst == 2 { a.append(b) } else { b.append(a) }
                }
                let moved: Vec<usize> = models[src].drain(..).collect();
                for &m in &moved {
                    home[m] = Some(dst);
                }
                models[dst].extend(moved);
            }
            // drain some from the front (lists: also from the back), drop the rest
            6 | 7 => {
                let front = usize::from(arg) % 4;
                let back = if op % 10 == 7 {
                    usize::from(arg >> 2) % 3
                } else {
                    0
                };
                let mut got = Vec::new();
                let mut got_back = Vec::new();
                if s < 2 {
                    let mut drain = queues[s].drain();
                    got.extend(drain.by_ref().take(front).map(|p| id_of(p, &nodes)));
                } else {
                    let mut drain = lists[s - 2].drain();
                    got.extend(drain.by_ref().take(front).map(|p| id_of(p, &nodes)));
                    for _ in 0..back {
                        match drain.next_back() {
                            Some(p) => got_back.push(id_of(p, &nodes)),
                            None => break,
                        }
                    }
                }
                let expected: Vec<usize> = models[s].iter().take(front).copied().collect();
                assert_eq!(got, expected, "drain front of {s}");
                if s >= 2 {
                    let rest: Vec<usize> = models[s]
                        .iter()
                        .skip(front)
                        .rev()
                        .take(back)
                        .copied()
                        .collect();
                    assert_eq!(got_back, rest, "drain back of {s}");
                }
                for m in models[s].drain(..) {
                    home[m] = None;
                }
            }
            // clear
            8 => {
                if s < 2 {
                    queues[s].clear();
                } else {
                    lists[s - 2].clear();
                }
                for m in models[s].drain(..) {
                    home[m] = None;
                }
            }
            // membership
            9 if s >= 2 => {
                assert_eq!(lists[s - 2].contains(&nodes[n]), home[n] == Some(s));
            }
            _ => {}
        }
        check(&queues, &lists, &models, &home, &nodes);
    }
}

fn check(
    queues: &[Queue<Node>; 2],
    lists: &[List<Node>; 2],
    models: &[VecDeque<usize>; STRUCTS],
    home: &[Option<usize>; NODES],
    nodes: &[Node; NODES],
) {
    for (s, q) in queues.iter().enumerate() {
        q.assert_valid();
        assert_eq!(q.len(), models[s].len(), "len of {s}");
        assert_eq!(q.is_empty(), models[s].is_empty());
        let order: Vec<usize> = q.iter().map(|n| n.id).collect();
        assert_eq!(order, Vec::from(models[s].clone()), "order of {s}");
        assert_eq!(q.front().map(|n| n.id), models[s].front().copied());
        assert_eq!(q.back().map(|n| n.id), models[s].back().copied());
    }
    for (i, l) in lists.iter().enumerate() {
        let s = i + 2;
        l.assert_valid();
        assert_eq!(l.len(), models[s].len(), "len of {s}");
        let order: Vec<usize> = l.iter().map(|n| n.id).collect();
        assert_eq!(order, Vec::from(models[s].clone()), "order of {s}");
        assert_eq!(l.front().map(|n| n.id), models[s].front().copied());
        assert_eq!(l.back().map(|n| n.id), models[s].back().copied());
    }
    for (n, node) in nodes.iter().enumerate() {
        assert_eq!(node.link.is_linked(), home[n].is_some(), "node {n} linked");
    }
}
