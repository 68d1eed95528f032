//! `echo`: TCP echo on loopback, one server thread, 1/16/128 connections, 64 B and 4 KiB.
//!
//! Per case, up to three servers run side by side, each on its own thread pinned to the
//! second CPU (where there is one): xuring's (callbacks, pool buffers, no copy, on the
//! executor a default ring gets), a raw `io-uring` one with the same structure (where
//! io_uring is not blocked), and tokio's `current_thread` one ([`crate::echo`]). The main
//! thread is the load generator of all, with its own blocking connections to each: a wave
//! writes one message per connection, then reads every echo back and checks it byte for byte.
//! The runs alternate, with the same number of messages, calibrated on xuring. At the end of
//! a case the client closes its connections; each server closes them on its side, stops by
//! itself, and its counts (connections, bytes echoed, errors) are checked against the
//! client's.

use std::fmt::Write as _;

use xuring_core::Ring;
use xuring_sys::SetupFlags;

use crate::Config;
use crate::backend::RAW_NAME;
use crate::echo::{EchoCheck, EchoClient, Kind, Server, ring_entries};
use crate::error::BenchError;
use crate::method::{CaseResult, Variant, calibrate, measure};
use crate::pin::{CpuPair, cpu_pair};
use crate::report::{cases_table, ratio, summary_row};
use crate::scenarios::{Output, raw_note};
use crate::threads::{load_average, load_note};

/// xuring's server.
pub const XURING: &str = "xuring server";
/// The raw server.
pub const RAW: &str = "raw io-uring server";
/// tokio's server.
pub const TOKIO: &str = "tokio server";

/// One case: a connection count and a message size.
#[derive(Clone, Debug)]
pub struct EchoCase {
    /// Connections per server.
    pub conns: u32,
    /// Bytes per message.
    pub size: usize,
    /// The paired measurements (one op is one request: a message and its echo).
    pub case: CaseResult,
    /// The xuring server's end-of-case check.
    pub xuring: EchoCheck,
    /// The raw server's (where it ran).
    pub raw: Option<EchoCheck>,
    /// tokio's (where it ran).
    pub tokio: Option<EchoCheck>,
}

/// What `echo` measured.
#[derive(Clone, Debug)]
pub struct EchoReport {
    /// The 1-minute load average when the scenario started.
    pub load: Option<f64>,
    /// Where the client and the servers ran.
    pub pair: CpuPair,
    /// The setup flags of xuring's rings, which the raw server's ring gets too.
    pub setup: SetupFlags,
    /// Per case, connections then size.
    pub cases: Vec<EchoCase>,
}

/// One case: every server, a client for each, the paired runs, then the checks.
fn one_case(
    conns: u32,
    size: usize,
    setup: SetupFlags,
    pair: &CpuPair,
    config: &Config,
) -> Result<EchoCase, BenchError> {
    let xuring_server = Server::start(Kind::Xuring(None), conns, setup, pair)?;
    let mut xuring = EchoClient::connect(xuring_server.addr(), conns, size)?;
    let mut raw = match config.raw {
        true => {
            let server = Server::start(Kind::Raw, conns, setup, pair)?;
            let client = EchoClient::connect(server.addr(), conns, size)?;
            Some((client, server))
        }
        false => None,
    };
    let mut tokio = match config.tokio {
        true => {
            let server = Server::start(Kind::Tokio, conns, setup, pair)?;
            let client = EchoClient::connect(server.addr(), conns, size)?;
            Some((client, server))
        }
        false => None,
    };
    let case = {
        let mut variants = vec![Variant::new(XURING, |n| xuring.run(n))];
        let mut comparisons = Vec::new();
        if let Some((client, _)) = raw.as_mut() {
            variants.push(Variant::new(RAW, move |n| client.run(n)));
            comparisons.push((0, variants.len() - 1));
        }
        if let Some((client, _)) = tokio.as_mut() {
            variants.push(Variant::new(TOKIO, move |n| client.run(n)));
            comparisons.push((0, variants.len() - 1));
        }
        let pair_config = Config {
            target_run: config.pair_target_run,
            ..config.clone()
        };
        let ops = calibrate(&mut variants[0], &pair_config, u64::from(conns))?;
        measure(
            format!("{conns} conn x {size} B"),
            &mut variants,
            &comparisons,
            config.rounds,
            ops,
        )?
    };
    let xuring = xuring.finish(xuring_server)?;
    let raw = raw
        .map(|(client, server)| client.finish(server))
        .transpose()?;
    let tokio = tokio
        .map(|(client, server)| client.finish(server))
        .transpose()?;
    Ok(EchoCase {
        conns,
        size,
        case,
        xuring,
        raw,
        tokio,
    })
}

/// Runs every case of `config.echo_conns` x `config.echo_sizes`.
pub fn run(config: &Config) -> Result<EchoReport, BenchError> {
    let load = load_average();
    let pair = cpu_pair();
    let setup = Ring::init(ring_entries(1))?.features().setup;
    let mut cases = Vec::new();
    for &conns in &config.echo_conns {
        for &size in &config.echo_sizes {
            cases.push(one_case(conns, size, setup, &pair, config)?);
        }
    }
    Ok(EchoReport {
        load,
        pair,
        setup,
        cases,
    })
}

impl EchoReport {
    /// The report's text and summary lines.
    pub fn output(&self) -> Output {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "== echo: TCP echo on 127.0.0.1, one server thread per server; op = one request \
             (a message and its echo)"
        );
        let _ = writeln!(text, "  {}", load_note(self.load));
        let _ = writeln!(
            text,
            "  pinning: {} (the main thread is the client, the second thread the server)",
            self.pair
        );
        let _ = writeln!(
            text,
            "  servers: xuring on {} (accept, recv into a PoolBuf, send the same buffer back, \
             run(Once)), raw io-uring (same steps, state machine over user_data; setup flags \
             {:?}), tokio current_thread (a task per connection: read, write_all)",
            crate::backend::backends()
                .executor()
                .map_or("?", |e| e.name()),
            self.setup
        );
        let _ = writeln!(
            text,
            "  client: blocking std TcpStreams, TCP_NODELAY; per wave one message on every \
             connection, then every echo read back and compared byte for byte"
        );
        if let Some(first) = self.cases.first() {
            let _ = writeln!(
                text,
                "  {} rounds of the servers in turn, reversed every other round; requests per run: {}",
                first.case.rounds,
                self.cases
                    .iter()
                    .map(|c| format!("{}@{}x{}", c.case.ops_per_run, c.conns, c.size))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let cases: Vec<CaseResult> = self.cases.iter().map(|c| c.case.clone()).collect();
        text.push_str(&cases_table(&cases, "req/s"));
        let mut summary = Vec::new();
        for c in &self.cases {
            for (other, name) in [(RAW, "raw"), (TOKIO, "tokio")] {
                if let Some(r) = c.case.ratio(XURING, other) {
                    summary.push(format!(
                        "echo {} conn x {} B: xuring/{name} = {}",
                        c.conns,
                        c.size,
                        ratio(r.median)
                    ));
                }
            }
        }
        if let Some(note) = raw_note(self.cases.first().map(|c| &c.case), RAW) {
            let _ = writeln!(text, "  {note}");
        }
        let messages: u64 = self
            .cases
            .iter()
            .map(|c| {
                c.xuring.messages
                    + c.raw.map_or(0, |r| r.messages)
                    + c.tokio.map_or(0, |t| t.messages)
            })
            .sum();
        let _ = writeln!(
            text,
            "  checked: {messages} messages echoed back intact; each server accepted and closed \
             every connection, echoed every byte, without an error, and stopped by itself"
        );
        let mut rows = Vec::new();
        for c in &self.cases {
            let params = format!("{} conns, {} B", c.conns, c.size);
            // Where the raw server could not run, tokio's row carries xuring's rate.
            if c.raw.is_some() || c.tokio.is_none() {
                rows.extend(summary_row(
                    "echo",
                    params.clone(),
                    &c.case,
                    XURING,
                    RAW,
                    RAW_NAME,
                ));
            }
            if c.tokio.is_some() {
                rows.extend(summary_row("echo", params, &c.case, XURING, TOKIO, "tokio"));
            }
        }
        Output {
            text,
            summary,
            rows,
        }
    }
}

/// The table's entry.
pub fn entry(config: &Config) -> Result<Output, BenchError> {
    run(config).map(|r| r.output())
}
