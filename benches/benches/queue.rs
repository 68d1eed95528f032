//! Push and pop through xuring's intrusive `Queue` and `List` (256 nodes in, 256 out), next
//! to a `VecDeque` of pointers as a reference.
//!
//! Run with `cargo bench -p xuring-bench --bench queue` (HTML reports under
//! `target/criterion/`).

use std::collections::VecDeque;
use std::hint::black_box;
use std::ptr::NonNull;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use xuring_queue::{Link, List, Queue, impl_linked};

const NODES: usize = 256;

struct Node {
    value: u64,
    link: Link<Node>,
}

impl_linked!(Node, link);

fn nodes() -> Vec<Node> {
    (0..NODES as u64)
        .map(|value| Node {
            value,
            link: Link::new(),
        })
        .collect()
}

fn push_pop(c: &mut Criterion) {
    // Never resized or moved while linked: every node is unlinked again by the end of each
    // iteration, before the vector could go.
    let nodes = nodes();
    let ptrs: Vec<NonNull<Node>> = nodes.iter().map(NonNull::from).collect();
    let mut group = c.benchmark_group("queue_push_pop_256");
    group.throughput(Throughput::Elements(NODES as u64));
    group.bench_function("xuring Queue", |b| {
        let mut queue: Queue<Node> = Queue::new();
        b.iter(|| {
            for &node in &ptrs {
                // SAFETY: `node` points into `nodes`, which outlives the queue, and is on no
                // queue (each iteration pops every node it pushed).
                unsafe { queue.push_back(node) };
            }
            let mut sum = 0;
            while let Some(node) = queue.pop_front() {
                // SAFETY: a node just popped is a live element of `nodes`.
                sum += unsafe { node.as_ref() }.value;
            }
            black_box(sum)
        })
    });
    group.bench_function("xuring List", |b| {
        let mut list: List<Node> = List::new();
        b.iter(|| {
            for &node in &ptrs {
                // SAFETY: as for the queue: live, and on no list.
                unsafe { list.push_back(node) };
            }
            let mut sum = 0;
            while let Some(node) = list.pop_front() {
                // SAFETY: a node just popped is a live element of `nodes`.
                sum += unsafe { node.as_ref() }.value;
            }
            black_box(sum)
        })
    });
    group.bench_function("VecDeque of pointers", |b| {
        let mut deque: VecDeque<NonNull<Node>> = VecDeque::with_capacity(NODES);
        b.iter(|| {
            deque.extend(ptrs.iter().copied());
            let mut sum = 0;
            while let Some(node) = deque.pop_front() {
                // SAFETY: every pointer points into `nodes`, alive for the whole bench.
                sum += unsafe { node.as_ref() }.value;
            }
            black_box(sum)
        })
    });
    group.finish();
    drop(nodes);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = push_pop
}
criterion_main!(benches);
