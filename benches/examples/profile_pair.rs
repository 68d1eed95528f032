//! One side of the `msgring` or `echo` scenario alone, for a profiler: no pairing, no report.
//!
//! ```text
//! cargo build --release -p xuring-bench --example profile_pair
//! perf record -e cpu-clock -a -g target/release/examples/profile_pair echo-xuring 200000 16 64
//! strace -c -f target/release/examples/profile_pair msgring-native 20000
//! ```
//!
//! Arguments: `SIDE [ops] [conns] [size] [one-cpu]`, SIDE one of `msgring-native`,
//! `msgring-raw`, `msgring-fallback`, `eventfd`, `mpsc`, `echo-xuring`, `echo-raw` (defaults:
//! 20,000 operations, 16 connections, 64 bytes). The main thread pins itself as the tour does
//! and the second thread goes to the other CPU, or to the same one with `one-cpu`.

use std::process::ExitCode;
use std::time::Instant;

use xuring_bench::BenchError;
use xuring_bench::echo::{EchoClient, Kind, Server};
use xuring_bench::pin::{CpuPair, cpu_pair, pin_to_one_cpu};
use xuring_bench::pingpong::{EventfdPingPong, MpscPingPong, RawMsgRing, XuringPingPong};
use xuring_core::{KernelLevel, Ring};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let side = args
        .first()
        .cloned()
        .unwrap_or_else(|| "msgring-native".into());
    let number = |i: usize, default: u64| {
        args.get(i)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let ops = number(1, 20_000);
    let conns = number(2, 16) as u32;
    let size = number(3, 64) as usize;
    let one_cpu = args.iter().any(|a| a == "one-cpu");
    let pinning = pin_to_one_cpu();
    let mut pair = cpu_pair();
    if one_cpu {
        pair.other = pair.main;
    }
    eprintln!("{pinning}; {pair}");
    match run(&side, ops, conns, size, &pair) {
        Ok(ns) => {
            println!("{side}: {ops} operations: {ns:.1} ns/op");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("profile_pair: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Warms `run` up with a tenth of `ops`, then times `ops`.
fn timed(ops: u64, mut run: impl FnMut(u64) -> Result<u64, BenchError>) -> Result<f64, BenchError> {
    run((ops / 10).max(1))?;
    let start = Instant::now();
    run(ops)?;
    Ok(start.elapsed().as_nanos() as f64 / ops.max(1) as f64)
}

fn run(side: &str, ops: u64, conns: u32, size: usize, pair: &CpuPair) -> Result<f64, BenchError> {
    let setup = Ring::init(64)?.features().setup;
    match side {
        "msgring-native" | "msgring-fallback" => {
            let level = if side == "msgring-native" {
                KernelLevel::Native
            } else {
                KernelLevel::V5_6
            };
            let mut x = XuringPingPong::new(level, pair)?;
            let ns = timed(ops, |n| x.run(n))?;
            x.finish()?;
            Ok(ns)
        }
        "msgring-raw" => {
            let mut r = RawMsgRing::new(setup, pair)?;
            let ns = timed(ops, |n| r.run(n))?;
            r.finish()?;
            Ok(ns)
        }
        "eventfd" => {
            let mut e = EventfdPingPong::new(pair)?;
            let ns = timed(ops, |n| e.run(n))?;
            e.finish()?;
            Ok(ns)
        }
        "mpsc" => {
            let mut m = MpscPingPong::new(pair)?;
            let ns = timed(ops, |n| m.run(n))?;
            m.finish()?;
            Ok(ns)
        }
        "echo-xuring" | "echo-raw" => {
            let kind = if side == "echo-xuring" {
                Kind::Xuring(None)
            } else {
                Kind::Raw
            };
            let server = Server::start(kind, conns, setup, pair)?;
            let mut client = EchoClient::connect(server.addr(), conns, size)?;
            let ops = ops.div_ceil(u64::from(conns)) * u64::from(conns);
            let ns = timed(ops, |n| client.run(n))?;
            client.finish(server)?;
            Ok(ns)
        }
        other => Err(BenchError::Other(format!("no side called {other}"))),
    }
}
