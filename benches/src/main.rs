//! `xuring-bench`: probe the kernel and run the benchmark tour.
//!
//! Run with `cargo run --release -p xuring-bench`.

fn main() {
    println!("xuring-bench: not yet implemented");
}
