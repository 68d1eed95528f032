//! Timer arm and fire: xuring's `Ring::timer` (task, callback) against a raw
//! `IORING_OP_TIMEOUT` on the `io-uring` crate, one at a time and 64 at a time, zero-length
//! (so the time is arming and firing, not sleeping).
//!
//! Run with `cargo bench -p xuring-bench --bench timers`. For paired, drift-resistant ratios
//! use `cargo run --release -p xuring-bench -- timers` instead.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use xuring_bench::raw::RawTimers;
use xuring_bench::xuring_ops::XuringBatch;
use xuring_core::Timespec;

const ENTRIES: u32 = 256;

fn arm_fire(c: &mut Criterion) {
    for count in [1u32, 64] {
        let mut xuring = match XuringBatch::timer(ENTRIES, count, Timespec::from(Duration::ZERO)) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        let setup = xuring.features().setup;
        let mut raw = RawTimers::new(ENTRIES, setup, count, Duration::ZERO).expect("raw ring");
        let mut group = c.benchmark_group(format!("timer_arm_fire_{count}"));
        group.throughput(Throughput::Elements(u64::from(count)));
        group.bench_function("xuring", |b| {
            b.iter(|| xuring.run(u64::from(count)).expect("xuring timers"))
        });
        group.bench_function("raw_io_uring", |b| {
            b.iter(|| raw.run(u64::from(count)).expect("raw timers"))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = arm_fire
}
criterion_main!(benches);
