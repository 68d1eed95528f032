//! Benchmarks of `Queue` and `List` against `VecDeque` and `std::collections::LinkedList`:
//!
//! * `fifo_batch`: push 1024 nodes at the back, then pop all 1024 from the front;
//! * `fifo_steady`: on a queue holding 64 nodes, pop the front node and push it at the back;
//! * `remove_middle`: on a list of 1024 nodes, remove a given node (chosen pseudo-randomly, so
//!   on average from the middle) and push it back at the end. `List::remove` is O(1) given the
//!   node; `VecDeque` must search and shift, `LinkedList` must search, split and re-append.
//!
//! Run with `cargo bench -p xuring-queue -- --warm-up-time 1 --measurement-time 2`.

use std::collections::{LinkedList, VecDeque};
use std::hint::black_box;
use std::ptr::NonNull;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use xuring_queue::{Link, List, Queue, impl_linked};

/// A task-like node: an id and two links (run queue and in-flight list).
struct Task {
    id: u64,
    run: Link<Task>,
    in_flight: Link<Task>,
}

/// Tag of `Task::in_flight`.
struct InFlight;

impl_linked!(Task, run);
impl_linked!(Task, in_flight, InFlight);

/// A slab of tasks. Every bench creates its slab before its lists, so the tasks outlive them;
/// they are never moved or mutably borrowed, which is the push contract.
fn slab(n: usize) -> Vec<Task> {
    (0..n as u64)
        .map(|id| Task {
            id,
            run: Link::new(),
            in_flight: Link::new(),
        })
        .collect()
}

const BATCH: usize = 1024;
const STEADY: usize = 64;
const LIST: usize = 1024;

fn fifo_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("fifo_batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    let tasks = slab(BATCH);
    let ptrs: Vec<NonNull<Task>> = tasks.iter().map(NonNull::from).collect();

    group.bench_function("xuring Queue", |b| {
        let mut queue: Queue<Task> = Queue::new();
        b.iter(|| {
            for &p in &ptrs {
                // SAFETY: see `slab`; every task is popped again below.
                unsafe { queue.push_back(black_box(p)) };
            }
            while let Some(p) = queue.pop_front() {
                black_box(p);
            }
        });
    });
    group.bench_function("xuring List", |b| {
        let mut list: List<Task, InFlight> = List::new();
        b.iter(|| {
            for &p in &ptrs {
                // SAFETY: see `slab`; every task is popped again below.
                unsafe { list.push_back(black_box(p)) };
            }
            while let Some(p) = list.pop_front() {
                black_box(p);
            }
        });
    });
    group.bench_function("VecDeque<NonNull>", |b| {
        let mut deque: VecDeque<NonNull<Task>> = VecDeque::with_capacity(BATCH);
        b.iter(|| {
            for &p in &ptrs {
                deque.push_back(black_box(p));
            }
            while let Some(p) = deque.pop_front() {
                black_box(p);
            }
        });
    });
    group.bench_function("LinkedList<u64>", |b| {
        let mut list: LinkedList<u64> = LinkedList::new();
        b.iter(|| {
            for t in &tasks {
                list.push_back(black_box(t.id));
            }
            while let Some(id) = list.pop_front() {
                black_box(id);
            }
        });
    });
    group.finish();
}

fn fifo_steady(c: &mut Criterion) {
    let mut group = c.benchmark_group("fifo_steady");
    group.throughput(Throughput::Elements(1));
    let tasks = slab(STEADY);
    let ptrs: Vec<NonNull<Task>> = tasks.iter().map(NonNull::from).collect();

    group.bench_function("xuring Queue", |b| {
        let mut queue: Queue<Task> = Queue::new();
        for &p in &ptrs {
            // SAFETY: see `slab`; the queue is dropped (unlinking all) before `tasks`.
            unsafe { queue.push_back(p) };
        }
        b.iter(|| {
            let p = black_box(queue.pop_front().unwrap());
            // SAFETY: see `slab`; `p` was just popped, so it is unlinked.
            unsafe { queue.push_back(p) };
        });
    });
    group.bench_function("xuring List", |b| {
        let mut list: List<Task, InFlight> = List::new();
        for &p in &ptrs {
            // SAFETY: see `slab`; the list is dropped (unlinking all) before `tasks`.
            unsafe { list.push_back(p) };
        }
        b.iter(|| {
            let p = black_box(list.pop_front().unwrap());
            // SAFETY: see `slab`; `p` was just popped, so it is unlinked.
            unsafe { list.push_back(p) };
        });
    });
    group.bench_function("VecDeque<NonNull>", |b| {
        let mut deque: VecDeque<NonNull<Task>> = ptrs.iter().copied().collect();
        b.iter(|| {
            let p = black_box(deque.pop_front().unwrap());
            deque.push_back(p);
        });
    });
    group.bench_function("LinkedList<u64>", |b| {
        let mut list: LinkedList<u64> = tasks.iter().map(|t| t.id).collect();
        b.iter(|| {
            let id = black_box(list.pop_front().unwrap());
            list.push_back(id);
        });
    });
    group.finish();
}

fn remove_middle(c: &mut Criterion) {
    let mut group = c.benchmark_group("remove_middle");
    group.throughput(Throughput::Elements(1));
    let tasks = slab(LIST);
    let ptrs: Vec<NonNull<Task>> = tasks.iter().map(NonNull::from).collect();
    // Pick the task to remove pseudo-randomly (xorshift), so that it sits anywhere in the list:
    // on average in the middle. (A fixed stride would soon always hit the front, since every
    // removed task is pushed back at the end.)
    let next_target = |k: &mut u64| {
        *k ^= *k << 13;
        *k ^= *k >> 7;
        *k ^= *k << 17;
        (*k % LIST as u64) as usize
    };

    group.bench_function("xuring List", |b| {
        let mut list: List<Task, InFlight> = List::new();
        for &p in &ptrs {
            // SAFETY: see `slab`; the list is dropped (unlinking all) before `tasks`.
            unsafe { list.push_back(p) };
        }
        let mut k = 0x9e37_79b9_7f4a_7c15;
        b.iter(|| {
            let target = &tasks[next_target(&mut k)];
            let p = list.remove(black_box(target));
            // SAFETY: see `slab`; `p` was just removed, so it is unlinked.
            unsafe { list.push_back(p) };
        });
    });
    group.bench_function("VecDeque<NonNull>", |b| {
        let mut deque: VecDeque<NonNull<Task>> = ptrs.iter().copied().collect();
        let mut k = 0x9e37_79b9_7f4a_7c15;
        b.iter(|| {
            let target = ptrs[next_target(&mut k)];
            let pos = deque.iter().position(|&p| p == black_box(target)).unwrap();
            let p = deque.remove(pos).unwrap();
            deque.push_back(p);
        });
    });
    group.bench_function("LinkedList<u64>", |b| {
        let mut list: LinkedList<u64> = tasks.iter().map(|t| t.id).collect();
        let mut k = 0x9e37_79b9_7f4a_7c15;
        b.iter(|| {
            let target = tasks[next_target(&mut k)].id;
            let pos = list.iter().position(|&id| id == black_box(target)).unwrap();
            let mut rest = list.split_off(pos);
            let id = rest.pop_front().unwrap();
            list.append(&mut rest);
            list.push_back(id);
        });
    });
    group.finish();
}

criterion_group!(benches, fifo_batch, fifo_steady, remove_middle);
criterion_main!(benches);
