//! `randread [--file PATH] [--size-mib M] [--qd Q] [--secs S]`: 4 KiB random reads at queue
//! depth `Q` from a page-cached file, each completion reissuing a read at the next offset of a
//! shared pseudo-random sequence. xuring reads into its registered pool (`READ_FIXED`); the
//! raw side registers its pages too when the pool got registered (plain `READ` otherwise).
//!
//! Without `--file`, a temporary file of `M` MiB is made and removed at the end; with one, an
//! existing file is read as it is and a missing one is made and kept. Either is read once
//! first so that it is in the page cache. There is no latency: a chunk of reads at depth `Q`
//! is not one read's latency.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use xuring_sys::SetupFlags;

use super::{Bench, Impl, Param, Record, Stop, drive, no_side, record, valid_secs};
use crate::datafile::DataFile;
use crate::error::BenchError;
use crate::raw::RawReader;
use crate::scenarios::read4k::OFFSETS;
use crate::xuring_ops::{BufSource, IoKind, XuringIo};

/// The options.
#[derive(Clone, Debug, PartialEq)]
pub struct RandreadOpts {
    /// The file to read; a temporary one if `None`.
    pub file: Option<PathBuf>,
    /// The size of a file made here, in MiB.
    pub size_mib: u64,
    /// Reads in flight.
    pub qd: u32,
    /// Seconds per run.
    pub secs: f64,
}

impl Default for RandreadOpts {
    fn default() -> RandreadOpts {
        RandreadOpts {
            file: None,
            size_mib: 128,
            qd: 32,
            secs: 2.0,
        }
    }
}

/// Chunks between looks at the clock, in queue depths: long enough that draining the queue
/// at the end of a chunk costs little.
const CHUNK_DEPTHS: u64 = 256;

/// The randread subcommand.
pub struct RandreadBench {
    opts: RandreadOpts,
    file: DataFile,
    offsets: Rc<[u64]>,
    /// Whether xuring's pool got registered: the raw side then uses `READ_FIXED` too.
    fixed: bool,
    /// The setup flags xuring's ring got, which the raw ring is created with.
    setup: SetupFlags,
}

impl RandreadBench {
    /// Checks the options and makes, opens and warms the file.
    pub fn new(opts: RandreadOpts) -> Result<RandreadBench, BenchError> {
        if opts.qd == 0 || opts.qd > 4096 || opts.size_mib == 0 || !valid_secs(opts.secs) {
            return Err(BenchError::Other(
                "randread: --qd from 1 to 4096, --size-mib and --secs above 0".to_owned(),
            ));
        }
        let len = opts.size_mib << 20;
        let file = match &opts.file {
            Some(path) => DataFile::at(path, len)?,
            None => DataFile::create(len)?,
        };
        let offsets = file.random_offsets(OFFSETS, 0x4b1d);
        let probe = XuringIo::new(
            file.fd(),
            offsets.clone(),
            opts.qd,
            IoKind::Read,
            BufSource::Pool,
        )?;
        let (fixed, setup) = (probe.fixed(), probe.features().setup);
        Ok(RandreadBench {
            opts,
            file,
            offsets,
            fixed,
            setup,
        })
    }
}

impl Bench for RandreadBench {
    fn run(&mut self, imp: Impl) -> Result<Record, BenchError> {
        let qd = self.opts.qd;
        let chunk = u64::from(qd) * CHUNK_DEPTHS;
        let stop = Stop::Time(Duration::from_secs_f64(self.opts.secs));
        let fd = self.file.fd();
        let offsets = self.offsets.clone();
        let measured = match imp {
            Impl::Xuring | Impl::XuringOn(_) => {
                let executor = imp.executor();
                let mut ring =
                    XuringIo::on(executor, fd, offsets, qd, IoKind::Read, BufSource::Pool)?;
                drive(&mut |n| ring.run(n), chunk, chunk, stop)?
            }
            Impl::IoUring => {
                let mut ring = RawReader::new(fd, offsets, qd, self.setup, self.fixed)?;
                drive(&mut |n| ring.run(n), chunk, chunk, stop)?
            }
            Impl::Tokio => return Err(no_side(imp, "randread")),
        };
        let params = vec![
            ("file", Param::Str(self.file.path().display().to_string())),
            ("size_mib", Param::Int(self.file.len() >> 20)),
            ("qd", Param::Int(u64::from(qd))),
            ("secs", Param::Num(self.opts.secs)),
        ];
        let mut record = record(imp, "randread", params, measured, None, true);
        record.note = match imp {
            Impl::IoUring if self.fixed => "READ_FIXED",
            Impl::IoUring => "READ",
            _ => "pool buffers",
        }
        .to_owned();
        Ok(record)
    }

    fn name(&self) -> &'static str {
        "randread"
    }
}
