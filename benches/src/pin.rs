//! Pinning the process to one CPU, so that A and B runs share a core and its caches.
//!
//! # Safety
//!
//! The two `unsafe` calls are the raw `sched_getaffinity`/`sched_setaffinity` system calls on
//! the calling thread (pid 0), each given a pointer to a local `[u64; 16]` mask (1024 CPUs, the
//! size of glibc's `cpu_set_t`) and its exact length in bytes; the kernel reads or writes only
//! within it.

use std::fmt;

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
    fn this_thread_may_run_somewhere() {
        assert!(!allowed_cpus().expect("sched_getaffinity").is_empty());
    }
}
