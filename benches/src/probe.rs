//! The probe report: which executor a ring with default options gets here (io_uring, or the
//! readiness executor over epoll where io_uring is blocked, and then why), and what that ring
//! can do at native level.
//!
//! Every capability comes from probes (feature bits, the opcode probe, the setup flags the
//! kernel accepted). The kernel release from `uname` is printed for the reader only.
//!
//! # Safety
//!
//! The one `unsafe` call is `uname(2)` into a local, zero-initialised `utsname`, which the
//! kernel fills with NUL-terminated strings; the zeroing itself is the other `unsafe` block
//! (`utsname` is arrays of `c_char`, for which all-zero bytes are valid).

use std::fmt::{self, Write as _};

use xuring_core::{Executor, ExecutorChoice, Features, KernelLevel, OpKind, Ring, RingError};
use xuring_sys::{BACKEND_ENV, CancelFlags, FeatureFlags, KERNEL_LEVEL_ENV, Opcode, SetupFlags};

use crate::pin::Pinning;

/// The kernel release as `uname -r` prints it.
pub fn kernel_release() -> String {
    // SAFETY: `utsname` is plain arrays of `c_char`; all-zero is a valid value.
    let mut uts: libc::utsname = unsafe { core::mem::zeroed() };
    // SAFETY: `uts` is a live, writable `utsname` for the duration of the call.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return format!("unknown ({})", std::io::Error::last_os_error());
    }
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `RLIMIT_MEMLOCK` (soft, hard), in bytes; `None` where unlimited.
pub fn memlock_limit() -> Option<(Option<u64>, Option<u64>)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    xuring_sys::syscall::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit).ok()?;
    let finite = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    Some((finite(limit.rlim_cur), finite(limit.rlim_max)))
}

/// The opcodes worth naming in the report, with their C names.
pub const NOTABLE_OPS: &[Opcode] = &[
    Opcode::ReadFixed,
    Opcode::WriteFixed,
    Opcode::Read,
    Opcode::Write,
    Opcode::Timeout,
    Opcode::AsyncCancel,
    Opcode::Accept,
    Opcode::Connect,
    Opcode::Send,
    Opcode::Recv,
    Opcode::ProvideBuffers,
    Opcode::MsgRing,
    Opcode::Socket,
    Opcode::UringCmd,
    Opcode::SendZc,
    Opcode::SendmsgZc,
];

/// What this kernel gives one of xuring's ops: `supported`, `fallback` (xuring does the same
/// work another way) or `unsupported` (the op completes with `EOPNOTSUPP`).
pub fn op_status(features: &Features, kind: OpKind) -> &'static str {
    if features.supports(kind.opcode()) {
        "supported"
    } else if kind.fallback().is_some() {
        "fallback"
    } else {
        "unsupported"
    }
}

/// Every op xuring declares.
pub fn used_ops() -> impl Iterator<Item = OpKind> {
    OpKind::ALL.iter().copied()
}

/// The setup flags xuring asks for by default, each reported as accepted or not.
pub const WANTED_SETUP: &[(SetupFlags, &str)] = &[
    (SetupFlags::SUBMIT_ALL, "SUBMIT_ALL"),
    (SetupFlags::COOP_TASKRUN, "COOP_TASKRUN"),
    (SetupFlags::SINGLE_ISSUER, "SINGLE_ISSUER"),
    (SetupFlags::DEFER_TASKRUN, "DEFER_TASKRUN"),
];

/// Everything the probe found.
#[derive(Debug)]
pub struct ProbeReport {
    /// `uname -r`.
    pub kernel_release: String,
    /// The features of a ring at native level, or why none could be created.
    pub features: Result<Features, RingError>,
    /// The executor that ring got.
    pub executor: Option<Executor>,
    /// Why a ring that asks for io_uring only could not be made, if it could not.
    pub io_uring_error: Option<String>,
    /// `XURING_BACKEND`, if set.
    pub env_backend: Option<String>,
    /// `XURING_KERNEL_LEVEL`, if set (the scenarios' rings use it).
    pub env_level: Option<String>,
    /// Opcodes the kernel supports by the `io-uring` crate's probe, counting those newer than
    /// xuring's table.
    pub kernel_opcodes: Option<usize>,
    /// `size_of::<xuring_core::Task>()`.
    pub task_size: usize,
    /// `RLIMIT_MEMLOCK`.
    pub memlock: Option<(Option<u64>, Option<u64>)>,
    /// What pinning did, if it was attempted.
    pub pinning: Option<Pinning>,
}

impl ProbeReport {
    /// Probes the kernel with a small ring at native level.
    pub fn collect(pinning: Option<Pinning>) -> ProbeReport {
        let ring = Ring::builder(4).kernel_level(KernelLevel::Native).build();
        let executor = ring.as_ref().ok().map(|ring| ring.executor());
        let features = ring.map(|ring| *ring.features());
        let io_uring_error = Ring::builder(4)
            .kernel_level(KernelLevel::Native)
            .executor(ExecutorChoice::IoUring)
            .build()
            .err()
            .map(|e| e.to_string());
        ProbeReport {
            executor,
            io_uring_error,
            env_backend: std::env::var(BACKEND_ENV).ok(),
            kernel_release: kernel_release(),
            kernel_opcodes: crate::raw::kernel_opcode_count().ok(),
            features,
            env_level: std::env::var(KERNEL_LEVEL_ENV).ok(),
            task_size: size_of::<xuring_core::Task>(),
            memlock: memlock_limit(),
            pinning,
        }
    }

    /// Whether xuring can make a ring here (on either executor).
    pub fn available(&self) -> bool {
        self.features.is_ok()
    }

    /// The executor lines: which one a default ring gets, and why when it is epoll.
    pub fn executor_lines(&self) -> Vec<String> {
        let env = match &self.env_backend {
            Some(v) => format!("{BACKEND_ENV}={v}"),
            None => format!("{BACKEND_ENV} unset"),
        };
        let epoll = "file and filesystem ops run synchronously in the ring's thread; what \
                     follows is what the readiness executor offers";
        match (self.executor, &self.io_uring_error) {
            (None, _) => vec!["none: no ring could be made (see below)".to_owned()],
            (Some(Executor::IoUring), _) => vec![format!("io_uring (a default ring's; {env})")],
            (Some(Executor::Epoll), Some(e)) => vec![
                format!("epoll, the readiness executor ({env})"),
                format!("why: io_uring refused: {e}"),
                epoll.to_owned(),
            ],
            (Some(Executor::Epoll), None) => vec![
                format!("epoll, the readiness executor ({env})"),
                format!("why: chosen by {env}; io_uring works here"),
                epoll.to_owned(),
            ],
        }
    }
}

/// `A | B | C`, plus a note of the bits xuring's table does not name.
fn flag_names<T>(names: impl Iterator<Item = (&'static str, T)>, unknown_bits: u32) -> String {
    let names: Vec<&str> = names.map(|(name, _)| name).collect();
    let mut out = if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(" | ")
    };
    if unknown_bits != 0 {
        let _ = write!(out, " (+ bits {unknown_bits:#x} newer than xuring's table)");
    }
    out
}

macro_rules! names {
    ($flags:expr, $ty:ty) => {{
        let flags: $ty = $flags;
        flag_names(flags.iter_names(), flags.bits() & !<$ty>::all().bits())
    }};
}

fn bytes(v: Option<u64>) -> String {
    match v {
        None => "unlimited".to_owned(),
        Some(b) if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        Some(b) if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        Some(b) => format!("{b} B"),
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

impl ProbeReport {
    /// The report as one JSON object (`probe --json`).
    pub fn json(&self) -> String {
        let mut line = crate::json::JsonLine::new()
            .str("scenario", "probe")
            .str("kernel_release", &self.kernel_release)
            .bool("available", self.available());
        if let Some(executor) = self.executor {
            line = line.str("executor", executor.name());
        }
        if let Some(e) = &self.io_uring_error {
            line = line.str("io_uring_error", e);
        }
        if let Some(level) = &self.env_level {
            line = line.str("env_level", level);
        }
        match &self.features {
            Err(e) => line = line.str("error", &e.to_string()),
            Ok(features) => {
                let status = |want: &'static str| {
                    used_ops()
                        .filter(move |kind| op_status(features, *kind) == want)
                        .map(OpKind::name)
                };
                line = line
                    .str("ring_level", &features.level.to_string())
                    .strs("feature_bits", features.flags.iter_names().map(|(n, _)| n))
                    .strs("setup_flags", features.setup.iter_names().map(|(n, _)| n))
                    .strs("cancel_flags", features.cancel.iter_names().map(|(n, _)| n))
                    .int("ops_in_table", features.ops.len() as u64)
                    .strs("ops_supported", status("supported"))
                    .strs("ops_fallback", status("fallback"))
                    .strs("ops_unsupported", status("unsupported"));
            }
        }
        if let Some(n) = self.kernel_opcodes {
            line = line.int("kernel_opcodes", n as u64);
        }
        line.int("task_size", self.task_size as u64).finish()
    }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "== probe")?;
        writeln!(
            f,
            "  kernel release       {} (uname; display only, capabilities come from probes)",
            self.kernel_release
        )?;
        match &self.env_level {
            Some(level) => writeln!(
                f,
                "  {KERNEL_LEVEL_ENV}  {level} (the scenarios' rings are clamped to it; the \
                 probe below is native)"
            )?,
            None => writeln!(f, "  {KERNEL_LEVEL_ENV}  unset (native)")?,
        }
        for (i, line) in self.executor_lines().iter().enumerate() {
            let head = if i == 0 { "executor" } else { "" };
            writeln!(f, "  {head:<20} {line}")?;
        }
        match &self.features {
            Err(e) => {
                writeln!(f, "  ring                 UNAVAILABLE: {e}")?;
            }
            Ok(features) => {
                writeln!(f, "  ring level           {}", features.level)?;
                writeln!(
                    f,
                    "  feature bits         {}",
                    names!(features.flags, FeatureFlags)
                )?;
                let known = Opcode::TABLE.len();
                write!(
                    f,
                    "  opcodes              {} of the {known} in xuring's table",
                    features.ops.len()
                )?;
                match self.kernel_opcodes {
                    Some(n) => writeln!(f, "; {n} supported by the kernel in all")?,
                    None => writeln!(f)?,
                }
                let notable: Vec<String> = NOTABLE_OPS
                    .iter()
                    .map(|op| {
                        let name = op.c_name().trim_start_matches("IORING_OP_");
                        format!("{name} {}", yes(features.supports(*op)))
                    })
                    .collect();
                for (i, line) in notable.chunks(6).enumerate() {
                    let head = if i == 0 {
                        "  notable ops          "
                    } else {
                        "                       "
                    };
                    writeln!(f, "{head}{}", line.join(", "))?;
                }
                writeln!(
                    f,
                    "  xuring's ops         (op, since, on this kernel, what xuring does)"
                )?;
                for kind in used_ops() {
                    writeln!(
                        f,
                        "    {:<14} {:<5} {:<11} {}",
                        kind.name(),
                        kind.opcode().since().to_string(),
                        op_status(features, kind),
                        kind.fallback().unwrap_or("")
                    )?;
                }
                let setup: Vec<String> = WANTED_SETUP
                    .iter()
                    .map(|(flag, name)| format!("{name} {}", yes(features.has_setup(*flag))))
                    .collect();
                writeln!(f, "  setup flags accepted {}", setup.join(", "))?;
                writeln!(
                    f,
                    "  ring setup flags     {}",
                    names!(features.setup, SetupFlags)
                )?;
                writeln!(
                    f,
                    "  cancel flags         {}",
                    names!(features.cancel, CancelFlags)
                )?;
                let ext_arg = features.has(FeatureFlags::EXT_ARG);
                let cancel_all = features
                    .cancel
                    .contains(CancelFlags::ALL | CancelFlags::ANY);
                writeln!(
                    f,
                    "  so                   deadline waits by {}; cancel_all by {}",
                    if ext_arg {
                        "EXT_ARG"
                    } else {
                        "an internal timeout SQE"
                    },
                    if cancel_all {
                        "one ASYNC_CANCEL ALL|ANY"
                    } else {
                        "one cancel per task"
                    }
                )?;
            }
        }
        writeln!(
            f,
            "  memory per Task      {} bytes (inline payload included; limit {}: {})",
            self.task_size,
            xuring_core::MAX_TASK_SIZE,
            if self.task_size <= xuring_core::MAX_TASK_SIZE {
                "ok"
            } else {
                "OVER"
            }
        )?;
        match self.memlock {
            Some((soft, hard)) => writeln!(
                f,
                "  RLIMIT_MEMLOCK       soft {}, hard {}",
                bytes(soft),
                bytes(hard)
            )?,
            None => writeln!(f, "  RLIMIT_MEMLOCK       unknown")?,
        }
        if let Some(pinning) = &self.pinning {
            writeln!(f, "  CPU                  {pinning}")?;
        }
        Ok(())
    }
}
