//! Pinning the process to one CPU, so that A and B runs share a core and its caches; and, for
//! the two-thread scenarios (`msgring`, `echo`), putting the second thread on another CPU.
//!
//! # Safety
//!
//! The two `unsafe` calls are the raw `sched_getaffinity`/`sched_setaffinity` system calls on
//! the calling thread (pid 0), each given a pointer to a local `[u64; 16]` mask (1024 CPUs, the
//! size of glibc's `cpu_set_t`) and its exact length in bytes; the kernel reads or writes only
//! within it.

use std::fmt;
use std::sync::OnceLock;

const MASK_WORDS: usize = 16;
type Mask = [u64; MASK_WORDS];

/// The CPUs this thread may run on.
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    let mut mask: Mask = [0; MASK_WORDS];
    // SAFETY: `mask` is a writable local of exactly the length passed; pid 0 is this thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            0,
            size_of::<Mask>(),
            mask.as_mut_ptr(),
        )
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((0..MASK_WORDS * 64)
        .filter(|&cpu| mask[cpu / 64] & (1 << (cpu % 64)) != 0)
        .collect())
}

/// Restricts the calling thread to `cpu`. A thread may move to any CPU of the process's cpuset,
/// not only to those of its current mask: a thread spawned by a pinned thread inherits its
/// mask and can still pin itself elsewhere.
pub fn pin_thread_to(cpu: usize) -> std::io::Result<()> {
    if cpu >= MASK_WORDS * 64 {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    set_affinity(cpu)
}

fn set_affinity(cpu: usize) -> std::io::Result<()> {
    let mut mask: Mask = [0; MASK_WORDS];
    mask[cpu / 64] |= 1 << (cpu % 64);
    // SAFETY: `mask` is a readable local of exactly the length passed; pid 0 is this thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            0,
            size_of::<Mask>(),
            mask.as_ptr(),
        )
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// What [`pin_to_one_cpu`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pinning {
    /// The process was already restricted to this one CPU (e.g. by `taskset -c 1`).
    Already(usize),
    /// It was allowed on `from`; it is now pinned to `cpu`.
    Pinned {
        /// The CPU chosen.
        cpu: usize,
        /// The CPUs allowed before.
        from: Vec<usize>,
    },
    /// Pinning failed; the run goes on unpinned.
    Failed(String),
}

impl fmt::Display for Pinning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Already(cpu) => write!(f, "already pinned to CPU {cpu}"),
            Self::Pinned { cpu, from } => write!(
                f,
                "pinned to CPU {cpu} with sched_setaffinity (was allowed on {}); \
                 `taskset -c {cpu}` does the same from outside",
                cpu_list(from)
            ),
            Self::Failed(why) => write!(
                f,
                "NOT pinned ({why}); run under `taskset -c 1` for stable numbers"
            ),
        }
    }
}

/// `0-3,6` style list.
pub fn cpu_list(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// Pins the calling thread (call it before spawning anything) to one CPU: CPU 1 where allowed
/// (CPU 0 takes most interrupts on a small VM), else the highest allowed one. Does nothing if
/// the thread is already restricted to a single CPU.
pub fn pin_to_one_cpu() -> Pinning {
    let allowed = match allowed_cpus() {
        Ok(cpus) => cpus,
        Err(e) => return Pinning::Failed(format!("sched_getaffinity: {e}")),
    };
    let _ = PROCESS_CPUS.set(allowed.clone());
    match allowed.as_slice() {
        [] => Pinning::Failed("no CPU in the affinity mask".to_owned()),
        [only] => Pinning::Already(*only),
        _ => {
            let cpu = if allowed.contains(&1) {
                1
            } else {
                allowed[allowed.len() - 1]
            };
            match set_affinity(cpu) {
                Ok(()) => Pinning::Pinned { cpu, from: allowed },
                Err(e) => Pinning::Failed(format!("sched_setaffinity: {e}")),
            }
        }
    }
}

/// The CPUs the process was allowed on before [`pin_to_one_cpu`] narrowed the main thread.
static PROCESS_CPUS: OnceLock<Vec<usize>> = OnceLock::new();

/// The CPUs the process may use: those allowed before [`pin_to_one_cpu`] ran, or (if it did
/// not run, as in the tests) those of the calling thread.
pub fn process_cpus() -> Vec<usize> {
    match PROCESS_CPUS.get() {
        Some(cpus) => cpus.clone(),
        None => allowed_cpus().unwrap_or_default(),
    }
}

/// Where the two threads of a two-thread scenario run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuPair {
    /// The CPU the calling (main) thread is pinned to, if it is pinned to one.
    pub main: Option<usize>,
    /// The CPU the second thread pins itself to: another CPU of the process where there is
    /// one, else the main thread's CPU (both then share it); `None` when the main thread is
    /// not pinned (the second thread is then left unpinned too).
    pub other: Option<usize>,
}

impl CpuPair {
    /// Whether the two threads run on two different CPUs.
    pub fn split(&self) -> bool {
        matches!((self.main, self.other), (Some(a), Some(b)) if a != b)
    }

    /// Pins the calling thread to [`other`](Self::other), if set; call it on the second
    /// thread. Returns whether it is now pinned there.
    pub fn pin_other(&self) -> bool {
        self.other.is_some_and(|cpu| pin_thread_to(cpu).is_ok())
    }
}

impl fmt::Display for CpuPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.main, self.other) {
            (Some(a), Some(b)) if a != b => write!(
                f,
                "main thread on CPU {a}, second thread on CPU {b} (each pinned with sched_setaffinity)"
            ),
            (Some(a), _) => write!(
                f,
                "both threads on CPU {a}, the only CPU allowed (every hand-off is a context switch)"
            ),
            (None, _) => {
                f.write_str("threads NOT pinned (the main thread is not pinned to one CPU)")
            }
        }
    }
}

/// The CPUs for a two-thread scenario started from the calling thread: see [`CpuPair`]. The
/// second CPU is the lowest allowed one other than the main thread's (CPU 0 next to CPU 1).
pub fn cpu_pair() -> CpuPair {
    let main = match allowed_cpus().as_deref() {
        Ok([only]) => Some(*only),
        _ => None,
    };
    let other = main.map(|cpu| {
        process_cpus()
            .into_iter()
            .find(|&c| c != cpu)
            .unwrap_or(cpu)
    });
    CpuPair { main, other }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_collapse_ranges() {
        assert_eq!(cpu_list(&[0, 1]), "0-1");
        assert_eq!(cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(cpu_list(&[3]), "3");
        assert_eq!(cpu_list(&[]), "");
    }

    #[test]
    fn a_pair_is_split_only_across_two_cpus() {
        let split = CpuPair {
            main: Some(1),
            other: Some(0),
        };
        assert!(split.split());
        assert!(split.to_string().contains("CPU 0"));
        let shared = CpuPair {
            main: Some(1),
            other: Some(1),
        };
        assert!(!shared.split());
        let loose = CpuPair {
            main: None,
            other: None,
        };
        assert!(!loose.split() && !loose.pin_other());
    }

    #[test]
    fn this_thread_may_run_somewhere() {
        assert!(!allowed_cpus().expect("sched_getaffinity").is_empty());
    }
}
