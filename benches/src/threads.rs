//! The second thread of the two-thread scenarios: spawned pinned, joined within a time limit.
//!
//! Every helper thread here ends on its own once its owner tells it to (a stop message, a
//! closed channel, closed connections); [`join_within`] bounds how long the owner waits for
//! that, so a lost stop turns into an error instead of a hung tour.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::BenchError;
use crate::pin::CpuPair;

/// How long an owner waits for its helper thread to stop before giving up on it.
pub const STOP_LIMIT: Duration = Duration::from_secs(5);

/// Spawns `body` on a thread called `name` that first pins itself to `pair.other` (if set).
pub fn spawn_pinned<T: Send + 'static>(
    name: &str,
    pair: &CpuPair,
    body: impl FnOnce() -> Result<T, BenchError> + Send + 'static,
) -> Result<JoinHandle<Result<T, BenchError>>, BenchError> {
    let pair = pair.clone();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            pair.pin_other();
            body()
        })
        .map_err(|e| BenchError::Io("spawning a helper thread", e))
}

/// Waits up to `limit` for `handle`'s thread to finish, then joins it and returns what it
/// returned. A thread still running after `limit` is left detached (it ends with the process)
/// and reported as an error; a panic is reported as an error too.
pub fn join_within<T>(
    what: &str,
    handle: JoinHandle<Result<T, BenchError>>,
    limit: Duration,
) -> Result<T, BenchError> {
    let deadline = Instant::now() + limit;
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            return Err(BenchError::Other(format!(
                "{what}: the helper thread did not stop within {limit:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    match handle.join() {
        Ok(result) => result,
        Err(_) => Err(BenchError::Other(format!(
            "{what}: the helper thread panicked"
        ))),
    }
}

/// The 1-minute load average (`/proc/loadavg`), if it can be read.
pub fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// A line for a two-thread scenario's report: the load when it started, since other
/// processes running on the same CPUs delay every wake-up these scenarios measure.
pub fn load_note(load: Option<f64>) -> String {
    match load {
        Some(l) if l >= 0.5 => format!(
            "load average {l:.2} at the start: other processes share these CPUs, so \
             wake-ups wait for them and the figures are noisy"
        ),
        Some(l) => format!("load average {l:.2} at the start (quiet machine)"),
        None => "load average unknown (no /proc/loadavg)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_note_says_whether_the_machine_is_busy() {
        assert!(load_note(Some(3.0)).contains("noisy"));
        assert!(load_note(Some(0.1)).contains("quiet"));
        assert!(load_note(None).contains("unknown"));
    }

    #[test]
    fn a_finished_thread_is_joined_and_a_stuck_one_reported() {
        let pair = CpuPair {
            main: None,
            other: None,
        };
        let quick = spawn_pinned("quick", &pair, || Ok(7)).expect("spawn");
        assert_eq!(join_within("quick", quick, STOP_LIMIT).expect("join"), 7);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let stuck = spawn_pinned("stuck", &pair, move || {
            let _ = rx.recv();
            Ok(())
        })
        .expect("spawn");
        assert!(join_within("stuck", stuck, Duration::from_millis(20)).is_err());
        drop(tx);
    }
}
