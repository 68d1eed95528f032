//! `echo [--conns C] [--size S] [--secs T]`: a one-thread TCP echo server on 127.0.0.1 (on
//! the other CPU where there is one) and, on the main thread, a load generator with `C`
//! blocking connections sending `S`-byte messages in waves (one message per connection, then
//! every echo read back and checked byte for byte), for `T` seconds. The server is xuring's
//! (on the executor of a default ring, or the one `--impl xuring-epoll|xuring-io_uring` names),
//! the raw `io-uring` one or tokio's `current_thread` one (see [`crate::echo`]). An operation is one message and its
//! echo; the latency is that of one wave.

use std::time::Duration;

use xuring_core::Ring;
use xuring_sys::SetupFlags;

use super::{Bench, Impl, Param, Record, Stop, drive, record, valid_secs};
use crate::echo::{BUF_SIZE, EchoClient, Kind, MIN_MESSAGE, Server, ring_entries};
use crate::error::BenchError;
use crate::pin::{CpuPair, cpu_pair};

/// The options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EchoOpts {
    /// Connections.
    pub conns: u32,
    /// Bytes per message.
    pub size: usize,
    /// Seconds per run.
    pub secs: f64,
}

impl Default for EchoOpts {
    fn default() -> EchoOpts {
        EchoOpts {
            conns: 16,
            size: 64,
            secs: 2.0,
        }
    }
}

/// The echo subcommand.
pub struct EchoBench {
    opts: EchoOpts,
    pair: CpuPair,
    setup: SetupFlags,
}

impl EchoBench {
    /// Checks the options, picks the CPUs and finds the raw server's setup flags.
    pub fn new(opts: EchoOpts) -> Result<EchoBench, BenchError> {
        if opts.conns == 0
            || opts.conns > 4096
            || !(MIN_MESSAGE..=BUF_SIZE).contains(&opts.size)
            || !valid_secs(opts.secs)
        {
            return Err(BenchError::Other(format!(
                "echo: --conns from 1 to 4096, --size from {MIN_MESSAGE} to {BUF_SIZE}, \
                 --secs above 0"
            )));
        }
        Ok(EchoBench {
            opts,
            pair: cpu_pair(),
            setup: Ring::init(ring_entries(opts.conns))?.features().setup,
        })
    }
}

impl Bench for EchoBench {
    fn run(&mut self, imp: Impl) -> Result<Record, BenchError> {
        let EchoOpts { conns, size, secs } = self.opts;
        let kind = match imp {
            Impl::Xuring => Kind::Xuring(None),
            Impl::XuringOn(executor) => Kind::Xuring(Some(executor)),
            Impl::IoUring => Kind::Raw,
            Impl::Tokio => Kind::Tokio,
        };
        let server = Server::start(kind, conns, self.setup, &self.pair)?;
        let mut client = EchoClient::connect(server.addr(), conns, size)?;
        let wave = u64::from(conns);
        let stop = Stop::Time(Duration::from_secs_f64(secs));
        let measured = drive(&mut |n| client.run(n), wave, wave * 10, stop)?;
        // Closes the connections, waits for the server and checks its counts.
        client.finish(server)?;
        let params = vec![
            ("conns", Param::Int(wave)),
            ("size", Param::Int(size as u64)),
            ("secs", Param::Num(secs)),
        ];
        let mut record = record(imp, "echo", params, measured, Some("wave"), false);
        record.note = format!("{}", self.pair);
        Ok(record)
    }

    fn name(&self) -> &'static str {
        "echo"
    }

    fn has_side(&self, _imp: Impl) -> bool {
        true
    }
}
