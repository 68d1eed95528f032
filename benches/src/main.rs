//! `xuring-bench`: probe the kernel and run the benchmark tour.
//!
//! Run with `cargo run --release -p xuring-bench [-- probe|noop|read4k|alloc|all] [--rounds N]
//! [--quick]`; see `--help`.

use std::process::ExitCode;

use xuring_bench::alloc_count::CountingAlloc;

/// Counts allocations per thread for the `alloc` scenario; otherwise the system allocator.
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() -> ExitCode {
    xuring_bench::cli::run(std::env::args().skip(1))
}
