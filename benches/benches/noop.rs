//! xuring's noop round trip against the raw `io-uring` crate, batch 64, in one criterion run.
//!
//! Run with `cargo bench -p xuring-bench --bench noop`. Both rings have 256 entries and the
//! setup flags xuring's ring got. For paired, drift-resistant ratios use the tour instead
//! (`cargo run --release -p xuring-bench -- noop`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use xuring_bench::raw::RawNoop;
use xuring_bench::xuring_ops::XuringBatch;

const ENTRIES: u32 = 256;
const BATCH: u32 = 64;

fn noop_batch64(c: &mut Criterion) {
    let mut xuring = match XuringBatch::noop(ENTRIES, BATCH) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let setup = xuring.features().setup;
    let mut raw = RawNoop::new(ENTRIES, setup, BATCH).expect("raw ring");
    let mut group = c.benchmark_group("noop_batch64");
    group.throughput(Throughput::Elements(u64::from(BATCH)));
    group.bench_function("xuring", |b| {
        b.iter(|| xuring.run(u64::from(BATCH)).expect("xuring noop"))
    });
    group.bench_function("raw_io_uring", |b| {
        b.iter(|| raw.run(u64::from(BATCH)).expect("raw noop"))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = noop_batch64
}
criterion_main!(benches);
