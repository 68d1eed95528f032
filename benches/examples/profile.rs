//! One side of the `noop` scenario alone, for a profiler: no pairing, no report.
//!
//! ```text
//! cargo build --release -p xuring-bench --example profile
//! valgrind --tool=callgrind target/release/examples/profile xuring 640000
//! valgrind --tool=callgrind target/release/examples/profile raw 640000
//! ```
//!
//! Subtract a run with 0 operations (setup only) and divide by the count to get instructions
//! per operation. Arguments: `xuring|raw|callbacks [ops] [batch]` (defaults 2,000,000 and 64).

use std::process::ExitCode;

use xuring_bench::BenchError;
use xuring_bench::raw::{RawNoop, RawNoopCallbacks};
use xuring_bench::xuring_ops::XuringBatch;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let side = args.next().unwrap_or_else(|| "xuring".to_owned());
    let ops: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let batch: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(64);
    match run(&side, ops, batch) {
        Ok(ns) => {
            println!("{side}: {ops} noops at batch {batch}: {ns:.1} ns/op");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("profile: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(side: &str, ops: u64, batch: u32) -> Result<f64, BenchError> {
    let mut xuring = XuringBatch::noop(256, batch)?;
    let setup = xuring.features().setup;
    let mut run: Box<dyn FnMut(u64) -> Result<u64, BenchError>> = match side {
        "xuring" => Box::new(move |n| xuring.run(n)),
        "raw" => {
            let mut raw = RawNoop::new(256, setup, batch)?;
            Box::new(move |n| raw.run(n))
        }
        "callbacks" => {
            let mut emulated = RawNoopCallbacks::new(256, setup, batch)?;
            Box::new(move |n| emulated.run(n))
        }
        other => return Err(BenchError::Other(format!("no side called {other}"))),
    };
    // Warm-up: the task pool's first chunk, the caches.
    run(u64::from(batch) * 100)?;
    let start = std::time::Instant::now();
    run(ops)?;
    Ok(start.elapsed().as_nanos() as f64 / ops.max(1) as f64)
}
