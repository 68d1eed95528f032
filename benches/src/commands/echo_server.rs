//! `echo-server --port P [--secs S] [--max-conns M]`: a one-thread TCP echo server on
//! `127.0.0.1:P` (0: any free port) for external load generators. It runs on the main thread
//! until SIGINT or SIGTERM arrives, or `S` seconds pass, then stops accepting, ends every
//! connection it holds, and prints what it served (one JSON line with `--json`). Where it
//! listens goes to standard error first, as `listening on 127.0.0.1:PORT`.
//!
//! The signals never interrupt the ring: they are blocked on the main thread before anything
//! else starts (so every thread inherits the block), and a watcher thread takes them with
//! `sigtimedwait(2)`, then writes the server's stop eventfd, which the server's ring has a
//! read queued on.
//!
//! # Safety
//!
//! The `unsafe` here is libc's signal-set calls on a local, zero-initialised `sigset_t`
//! (`sigemptyset` makes it valid before any other use), `pthread_sigmask` and `sigtimedwait`
//! with pointers to such locals, and `eventfd(2)`, whose new fd is owned at once by an
//! `OwnedFd`.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xuring_core::Ring;

use super::{Impl, valid_secs};
use crate::echo::{ServerStats, Until, listen, raw, ring_entries, xuring};
use crate::error::BenchError;
use crate::json::JsonLine;
use crate::report::rate;

/// The options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EchoServerOpts {
    /// The port on 127.0.0.1; 0 for any free one.
    pub port: u16,
    /// Stop after this many seconds, if given.
    pub secs: Option<f64>,
    /// Connections served at once; more are accepted and closed.
    pub max_conns: u32,
}

impl Default for EchoServerOpts {
    fn default() -> EchoServerOpts {
        EchoServerOpts {
            port: 7878,
            secs: None,
            max_conns: 1024,
        }
    }
}

/// SIGINT and SIGTERM.
fn stop_signals() -> libc::sigset_t {
    // SAFETY: `sigset_t` is plain data; it is made valid by `sigemptyset` before any use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live, writable `sigset_t`.
    unsafe { libc::sigemptyset(&mut set) };
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `set` is a valid `sigset_t` and `signal` a valid signal number.
        unsafe { libc::sigaddset(&mut set, signal) };
    }
    set
}

/// Blocks SIGINT and SIGTERM on the calling thread (and so on the threads it starts).
fn block_stop_signals() -> Result<(), BenchError> {
    let set = stop_signals();
    // SAFETY: `set` is a valid `sigset_t`; the old mask is not asked for (null).
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(BenchError::Io(
            "pthread_sigmask",
            std::io::Error::from_raw_os_error(ret),
        ));
    }
    Ok(())
}

/// Waits up to `timeout` for SIGINT or SIGTERM (blocked); returns the signal if one came.
fn wait_for_signal(timeout: Duration) -> Option<i32> {
    let set = stop_signals();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` and `ts` are valid locals; no siginfo is asked for (null).
    let signal = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    (signal > 0).then_some(signal)
}

/// A new eventfd.
fn eventfd() -> Result<OwnedFd, BenchError> {
    // SAFETY: no pointers; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(BenchError::Io("eventfd", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by `eventfd` and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What the server did, and why it stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct Served {
    /// Who served.
    pub imp: Impl,
    /// Where.
    pub port: u16,
    /// For how long.
    pub elapsed: Duration,
    /// Its counts.
    pub stats: ServerStats,
    /// `SIGINT`, `SIGTERM`, or `time` for `--secs`.
    pub stopped_by: String,
}

impl Served {
    /// Echoes per second.
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.stats.echoes as f64 / secs
        } else {
            0.0
        }
    }

    /// One JSON object.
    pub fn json(&self) -> String {
        let mut line = JsonLine::new().str("impl", self.imp.name());
        if let Some(executor) = self.imp.executor() {
            line = line.str("executor", executor.name());
        }
        line.str("scenario", "echo-server")
            .int("port", u64::from(self.port))
            .num("elapsed_secs", self.elapsed.as_secs_f64())
            .int("ops", self.stats.echoes)
            .num("ops_per_sec", self.ops_per_sec())
            .int("accepted", self.stats.accepted)
            .int("closed", self.stats.closed)
            .int("echoed_bytes", self.stats.echoed)
            .int("refused", self.stats.refused)
            .int("errors", self.stats.errors)
            .str("stopped_by", &self.stopped_by)
            .finish()
    }

    /// One line of text.
    pub fn text(&self) -> String {
        format!(
            "{} echo-server on 127.0.0.1:{}: {} echoes ({} bytes) in {:.1} s, {} echoes/s; \
             {} connections accepted, {} closed, {} refused, {} errors; stopped by {}",
            self.imp.label(),
            self.port,
            self.stats.echoes,
            self.stats.echoed,
            self.elapsed.as_secs_f64(),
            rate(self.ops_per_sec()),
            self.stats.accepted,
            self.stats.closed,
            self.stats.refused,
            self.stats.errors,
            self.stopped_by
        )
    }
}

/// Serves until a stop signal or the time limit. Call it on a thread that has started no
/// other thread yet, so that none of them can take the signals.
pub fn serve(imp: Impl, opts: EchoServerOpts) -> Result<Served, BenchError> {
    if opts.max_conns == 0 || opts.max_conns > 8192 || opts.secs.is_some_and(|s| !valid_secs(s)) {
        return Err(BenchError::Other(
            "echo-server: --max-conns from 1 to 8192, --secs above 0".to_owned(),
        ));
    }
    if imp == Impl::Tokio {
        return Err(super::no_side(imp, "echo-server"));
    }
    if let Err(why) = imp.available() {
        return Err(BenchError::Other(format!(
            "echo-server: {} is unavailable here ({why})",
            imp.name()
        )));
    }
    block_stop_signals()?;
    let stop = eventfd()?;
    let listener = listen(opts.port)?;
    let port = listener
        .local_addr()
        .map_err(|e| BenchError::Io("getsockname", e))?
        .port();
    let deadline = opts
        .secs
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let done = Arc::new(AtomicBool::new(false));
    let mut stop_writer = File::from(
        stop.try_clone()
            .map_err(|e| BenchError::Io("dup the stop eventfd", e))?,
    );
    let watcher = {
        let done = done.clone();
        std::thread::Builder::new()
            .name("echo-server-signals".to_owned())
            .spawn(move || -> String {
                let why = loop {
                    if done.load(Ordering::Acquire) {
                        return "server".to_owned();
                    }
                    let mut slice = Duration::from_millis(100);
                    if let Some(deadline) = deadline {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break "time".to_owned();
                        }
                        slice = slice.min(left);
                    }
                    match wait_for_signal(slice) {
                        Some(libc::SIGINT) => break "SIGINT".to_owned(),
                        Some(libc::SIGTERM) => break "SIGTERM".to_owned(),
                        _ => {}
                    }
                };
                let _ = stop_writer.write_all(&1u64.to_ne_bytes());
                why
            })
            .map_err(|e| BenchError::Io("spawn the signal watcher", e))?
    };
    let until = Until::Stopped {
        stop: stop.as_raw_fd(),
        max_conns: opts.max_conns,
    };
    let ready = || {
        eprintln!("listening on 127.0.0.1:{port}");
    };
    let start = Instant::now();
    let result = match imp {
        Impl::Xuring => xuring::serve(&listener, until, None, ready),
        Impl::XuringOn(executor) => xuring::serve(&listener, until, Some(executor), ready),
        Impl::IoUring => {
            let setup = Ring::init(ring_entries(opts.max_conns))?.features().setup;
            raw::serve(&listener, until, setup, ready)
        }
        Impl::Tokio => Err(super::no_side(imp, "echo-server")),
    };
    let elapsed = start.elapsed();
    done.store(true, Ordering::Release);
    let stopped_by = watcher
        .join()
        .map_err(|_| BenchError::Other("the signal watcher panicked".to_owned()))?;
    Ok(Served {
        imp,
        port,
        elapsed,
        stats: result?,
        stopped_by,
    })
}
