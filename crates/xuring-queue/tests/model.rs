//! Model-based property tests: random sequences of every public operation on two queues and
//! three lists sharing one pool of nodes, checked against `VecDeque` models after every step.
//!
//! Structures 0 and 1 are `Queue<Node>`, 2 and 3 are `List<Node>` (all four share the nodes'
//! default-tag link `a`, so a node is on at most one of them), and 4 is a `List<Node, B>`
//! through the second link `b`. Misuse (pushing a linked node, removing a node that is not on
//! the list) is exercised too: it must panic and change nothing.

mod common;

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;

use common::{B, Node, Pool, expect_panic, id_of};
use proptest::prelude::*;
use xuring_queue::{Linked, List, Queue};

/// Number of nodes in the pool.
const NODES: usize = 8;
/// Number of structures: two queues, two lists, one `B`-tag list.
const STRUCTS: usize = 5;

/// Upper bound (exclusive) of the number of steps of a test case; smaller under Miri, where the
/// long fixed sequence below covers long lists.
const MAX_OPS: usize = if cfg!(miri) { 24 } else { 48 };

/// One step of a test case.
#[derive(Clone, Debug)]
enum Op {
    PushBack(usize, usize),
    PushFront(usize, usize),
    PopFront(usize),
    /// On a queue this pops the front (queues have no `pop_back`).
    PopBack(usize),
    /// Remove a node from list `2 + (s % 3)`.
    Remove(usize, usize),
    /// Append structure `src` to `dst`, both queues or both default-tag lists.
    Append {
        lists: bool,
        dst_first: bool,
    },
    /// Take `front` nodes from the front and `back` from the back (lists only), then drop the
    /// `Drain` (the rest is unlinked) or leak it (the rest stays).
    Drain {
        s: usize,
        front: usize,
        back: usize,
        leak: bool,
    },
    /// Drain, panicking after the `k`-th node.
    DrainPanic(usize, usize),
    Clear(usize),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let s = 0..STRUCTS;
    let n = 0..NODES;
    prop_oneof![
        6 => (s.clone(), n.clone()).prop_map(|(s, n)| Op::PushBack(s, n)),
        4 => (s.clone(), n.clone()).prop_map(|(s, n)| Op::PushFront(s, n)),
        3 => s.clone().prop_map(Op::PopFront),
        2 => s.clone().prop_map(Op::PopBack),
        4 => (s.clone(), n).prop_map(|(s, n)| Op::Remove(s, n)),
        2 => (any::<bool>(), any::<bool>())
            .prop_map(|(lists, dst_first)| Op::Append { lists, dst_first }),
        1 => (s.clone(), 0..4usize, 0..3usize, any::<bool>())
            .prop_map(|(s, front, back, leak)| Op::Drain { s, front, back, leak }),
        1 => (s.clone(), 0..6usize).prop_map(|(s, k)| Op::DrainPanic(s, k)),
        1 => s.prop_map(Op::Clear),
    ]
}

/// The operations the harness needs from one structure, so that queues and lists of either
/// tag share the driver code.
trait Structure {
    /// Pushes (the node is unlinked in this structure's link).
    fn push(&mut self, p: NonNull<Node>, back: bool);
    fn pop(&mut self, back: bool) -> Option<NonNull<Node>>;
    /// `None` for queues.
    fn remove(&mut self, n: &Node) -> Option<NonNull<Node>>;
    fn contains(&self, n: &Node) -> Option<bool>;
    fn drain_some(&mut self, front: usize, back: usize, leak: bool) -> Vec<usize>;
    fn drain_panic(&mut self, k: usize) -> (Vec<usize>, bool);
    fn clear(&mut self);
    fn check(&self, model: &VecDeque<usize>);
}

impl<Tag> Structure for Queue<Node, Tag>
where
    Node: Linked<Tag>,
{
    fn push(&mut self, p: NonNull<Node>, back: bool) {
        if back {
            // SAFETY: pool nodes outlive the structures, never move and are only shared.
            unsafe { self.push_back(p) }
        } else {
            // SAFETY: as above.
            unsafe { self.push_front(p) }
        }
    }
    fn pop(&mut self, _back: bool) -> Option<NonNull<Node>> {
        self.pop_front()
    }
    fn remove(&mut self, _n: &Node) -> Option<NonNull<Node>> {
        None
    }
    fn contains(&self, _n: &Node) -> Option<bool> {
        None
    }
    fn drain_some(&mut self, front: usize, _back: usize, leak: bool) -> Vec<usize> {
        let mut drain = self.drain();
        let taken = drain.by_ref().take(front).map(id_of).collect();
        if leak {
            core::mem::forget(drain);
        }
        taken
    }
    fn drain_panic(&mut self, k: usize) -> (Vec<usize>, bool) {
        let mut seen = Vec::new();
        let result = catch_unwind(AssertUnwindSafe(|| {
            for (i, p) in self.drain().enumerate() {
                seen.push(id_of(p));
                if i == k {
                    panic!("user panic");
                }
            }
        }));
        (seen, result.is_err())
    }
    fn clear(&mut self) {
        Queue::clear(self);
    }
    fn check(&self, model: &VecDeque<usize>) {
        self.assert_valid();
        assert_eq!(self.len(), model.len());
        assert_eq!(self.is_empty(), model.is_empty());
        assert!(self.iter().map(|n| n.id).eq(model.iter().copied()));
        assert_eq!(self.iter().len(), model.len());
        assert_eq!(self.front().map(|n| n.id), model.front().copied());
        assert_eq!(self.peek().map(|n| n.id), model.front().copied());
        assert_eq!(self.back().map(|n| n.id), model.back().copied());
    }
}

impl<Tag> Structure for List<Node, Tag>
where
    Node: Linked<Tag>,
{
    fn push(&mut self, p: NonNull<Node>, back: bool) {
        if back {
            // SAFETY: pool nodes outlive the structures, never move and are only shared.
            unsafe { self.push_back(p) }
        } else {
            // SAFETY: as above.
            unsafe { self.push_front(p) }
        }
    }
    fn pop(&mut self, back: bool) -> Option<NonNull<Node>> {
        if back {
            self.pop_back()
        } else {
            self.pop_front()
        }
    }
    fn remove(&mut self, n: &Node) -> Option<NonNull<Node>> {
        Some(List::remove(self, n))
    }
    fn contains(&self, n: &Node) -> Option<bool> {
        Some(List::contains(self, n))
    }
    fn drain_some(&mut self, front: usize, back: usize, leak: bool) -> Vec<usize> {
        let mut drain = self.drain();
        let mut taken: Vec<usize> = drain.by_ref().take(front).map(id_of).collect();
        taken.extend(drain.by_ref().rev().take(back).map(id_of));
        if leak {
            core::mem::forget(drain);
        }
        taken
    }
    fn drain_panic(&mut self, k: usize) -> (Vec<usize>, bool) {
        let mut seen = Vec::new();
        let result = catch_unwind(AssertUnwindSafe(|| {
            for (i, p) in self.drain().enumerate() {
                seen.push(id_of(p));
                if i == k {
                    panic!("user panic");
                }
            }
        }));
        (seen, result.is_err())
    }
    fn clear(&mut self) {
        List::clear(self);
    }
    fn check(&self, model: &VecDeque<usize>) {
        self.assert_valid();
        assert_eq!(self.len(), model.len());
        assert_eq!(self.is_empty(), model.is_empty());
        assert!(self.iter().map(|n| n.id).eq(model.iter().copied()));
        assert!(
            self.iter()
                .rev()
                .map(|n| n.id)
                .eq(model.iter().rev().copied())
        );
        assert_eq!(self.iter().len(), model.len());
        assert_eq!(self.front().map(|n| n.id), model.front().copied());
        assert_eq!(self.peek().map(|n| n.id), model.front().copied());
        assert_eq!(self.back().map(|n| n.id), model.back().copied());
    }
}

/// Runs one test case.
fn run(ops: &[Op]) {
    common::quiet_expected_panics();
    // The pool is declared first, so it is dropped last, after every structure unlinked.
    let pool = Pool::new(NODES);
    let mut q0: Queue<Node> = Queue::new();
    let mut q1: Queue<Node> = Queue::new();
    let mut l0: List<Node> = List::new();
    let mut l1: List<Node> = List::new();
    let mut lb: List<Node, B> = List::new();
    let mut models: [VecDeque<usize>; STRUCTS] = Default::default();

    for op in ops {
        {
            let mut structs: [&mut dyn Structure; STRUCTS] =
                [&mut q0, &mut q1, &mut l0, &mut l1, &mut lb];
            step(op, &pool, &mut structs, &mut models);
        }
        if let Op::Append { lists, dst_first } = *op {
            let (d, s) = if dst_first { (0, 1) } else { (1, 0) };
            if lists {
                let (dst, src) = if dst_first {
                    (&mut l0, &mut l1)
                } else {
                    (&mut l1, &mut l0)
                };
                dst.append(src);
                let moved: Vec<usize> = models[2 + s].drain(..).collect();
                models[2 + d].extend(moved);
            } else {
                let (dst, src) = if dst_first {
                    (&mut q0, &mut q1)
                } else {
                    (&mut q1, &mut q0)
                };
                dst.append(src);
                let moved: Vec<usize> = models[s].drain(..).collect();
                models[d].extend(moved);
            }
        }
        // Check everything after every step.
        let structs: [&dyn Structure; STRUCTS] = [&q0, &q1, &l0, &l1, &lb];
        for (s, model) in structs.iter().zip(&models) {
            s.check(model);
        }
        // Where each node is in the models (a node is at most once on each link).
        let mut on = [[false; STRUCTS]; NODES];
        for (s, model) in models.iter().enumerate() {
            for &i in model {
                assert!(!on[i][s], "node {i} twice in model {s}");
                on[i][s] = true;
            }
        }
        for (i, on) in on.iter().enumerate() {
            let node = pool.node(i);
            let on_a = on[..4].iter().filter(|&&x| x).count();
            assert!(on_a <= 1, "node {i} on several default-tag structures");
            assert_eq!(node.a.is_linked(), on_a == 1, "node {i} link a");
            assert_eq!(node.b.is_linked(), on[4], "node {i} link b");
            for s in 2..STRUCTS {
                assert_eq!(
                    structs[s].contains(node),
                    Some(on[s]),
                    "contains({i}) on {s}"
                );
            }
        }
    }
    // Dropping the structures unlinks every node (checked before the pool frees them).
    drop((q0, q1, l0, l1, lb));
    for i in 0..NODES {
        assert!(!pool.node(i).a.is_linked() && !pool.node(i).b.is_linked());
    }
}

/// Applies `op` to the structures (except `Append`, which needs the concrete types).
fn step(
    op: &Op,
    pool: &Pool,
    structs: &mut [&mut dyn Structure; STRUCTS],
    models: &mut [VecDeque<usize>; STRUCTS],
) {
    // Whether node `n` is linked through the link that structure `s` uses.
    let linked = |models: &[VecDeque<usize>; STRUCTS], s: usize, n: usize| {
        if s == 4 {
            models[4].contains(&n)
        } else {
            (0..4).any(|t| models[t].contains(&n))
        }
    };
    match *op {
        Op::PushBack(s, n) | Op::PushFront(s, n) => {
            let back = matches!(op, Op::PushBack(..));
            if linked(models, s, n) {
                expect_panic("already linked", || structs[s].push(pool.ptr(n), back));
            } else {
                structs[s].push(pool.ptr(n), back);
                if back {
                    models[s].push_back(n);
                } else {
                    models[s].push_front(n);
                }
            }
        }
        Op::PopFront(s) | Op::PopBack(s) => {
            let back = matches!(op, Op::PopBack(..)) && s >= 2;
            let got = structs[s].pop(back).map(id_of);
            let want = if back {
                models[s].pop_back()
            } else {
                models[s].pop_front()
            };
            assert_eq!(got, want);
        }
        Op::Remove(s, n) => {
            let s = 2 + s % 3;
            let node = pool.node(n);
            if let Some(pos) = models[s].iter().position(|&m| m == n) {
                let got = structs[s].remove(node);
                assert_eq!(got, Some(pool.ptr(n)));
                models[s].remove(pos);
            } else {
                let expected = if linked(models, s, n) {
                    "another list"
                } else {
                    "not linked"
                };
                expect_panic(expected, || structs[s].remove(node));
            }
        }
        Op::Append { .. } => {}
        Op::Drain {
            s,
            front,
            back,
            leak,
        } => {
            let taken = structs[s].drain_some(front, back, leak);
            let mut want: Vec<usize> = Vec::new();
            for _ in 0..front {
                want.extend(models[s].pop_front());
            }
            if s >= 2 {
                for _ in 0..back {
                    want.extend(models[s].pop_back());
                }
            }
            assert_eq!(taken, want);
            if !leak {
                models[s].clear();
            }
        }
        Op::DrainPanic(s, k) => {
            let len = models[s].len();
            let (seen, panicked) = structs[s].drain_panic(k);
            assert_eq!(panicked, k < len);
            let want: Vec<usize> = models[s].iter().copied().take(k + 1).collect();
            assert_eq!(seen, want);
            // Either way the list ends empty: the Drain unlinks the rest when dropped.
            models[s].clear();
        }
        Op::Clear(s) => {
            structs[s].clear();
            models[s].clear();
        }
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 10_000 },
        failure_persistence: if cfg!(miri) {
            None
        } else {
            ProptestConfig::default().failure_persistence
        },
        // The default ChaCha generator dominates the run time of a debug build.
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Every operation, on queues and lists sharing nodes, against `VecDeque` models.
    #[test]
    fn model(ops in prop::collection::vec(op_strategy(), 1..MAX_OPS)) {
        run(&ops);
    }
}

/// A fixed long sequence, so that Miri also sees long lists and every operation.
#[test]
fn long_fixed_sequence() {
    let mut ops = Vec::new();
    for round in 0..3 {
        for n in 0..NODES {
            ops.push(Op::PushBack((n + round) % STRUCTS, n));
            ops.push(Op::PushFront((n * 3 + round) % STRUCTS, (n + 3) % NODES));
        }
        ops.push(Op::Append {
            lists: round % 2 == 0,
            dst_first: round == 1,
        });
        ops.push(Op::Append {
            lists: round % 2 == 1,
            dst_first: round != 1,
        });
        for n in 0..NODES {
            ops.push(Op::Remove(n, n));
        }
        ops.push(Op::PopBack(round));
        ops.push(Op::PopFront(round + 1));
        ops.push(Op::Drain {
            s: round,
            front: 1,
            back: 1,
            leak: round == 2,
        });
        ops.push(Op::DrainPanic(round + 2, 1));
        ops.push(Op::Clear(4 - round));
    }
    run(&ops);
}
