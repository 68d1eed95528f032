//! The generic behaviour suite (`tests/behaviour`) on the real kernel: on io_uring (or what
//! `XURING_BACKEND` selects), and in `epoll::` on the readiness executor. The mock runs the
//! same suite in `xuring-mock/tests/behaviour.rs`.
#![cfg(not(miri))]

mod behaviour;
mod common;

use std::any::Any;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{IntoRawFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use behaviour::Fixture;
use xuring_core::{ExecutorChoice, Ring, RingBuilder, Uring};

/// An empty pipe whose write end stays open: reads wait in flight until cancelled.
fn stuck_fd(_ring: &mut Ring<Uring>) -> (RawFd, Box<dyn Any>) {
    let (read, write) = common::pipe();
    (read.raw(), Box::new((read, write)))
}

/// A directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(_ring: &mut Ring<Uring>) -> (String, Box<dyn Any>) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("xuring-behaviour-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).expect("temp dir");
    let name = path.to_str().expect("a UTF-8 temp dir").to_owned();
    (name, Box::new(TempDir(path)))
}

fn file(_ring: &mut Ring<Uring>, path: &str, data: &[u8]) {
    // Missing parent directories are created, as the mock's `add_file` does.
    if let Some(parent) = std::path::Path::new(path).parent() {
        std::fs::create_dir_all(parent).expect("the file's directory");
    }
    std::fs::write(path, data).expect("write the file");
}

fn symlink(_ring: &mut Ring<Uring>, path: &str, target: &str) {
    std::os::unix::fs::symlink(target, path).expect("symlink");
}

/// A pipe whose ends the test closes through the ring.
fn pipe(_ring: &mut Ring<Uring>) -> (RawFd, RawFd) {
    let (read, write) = common::pipe();
    (read.0.into_raw_fd(), write.0.into_raw_fd())
}

/// A TCP listener on the loopback whose fd the test closes through the ring.
fn listener(_ring: &mut Ring<Uring>) -> (RawFd, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    (listener.into_raw_fd(), addr)
}

const URING: Fixture<Uring> = Fixture {
    build: RingBuilder::build,
    stuck_fd,
    check: |_ring| {},
    real_kernel: true,
    dir,
    file,
    symlink,
    pipe,
    listener,
    ring_fd: Ring::fd,
};

/// The same, on the readiness executor whatever the environment says.
const EPOLL: Fixture<Uring> = Fixture {
    build: |options| {
        let ring = options.executor(ExecutorChoice::Epoll).build()?;
        assert_eq!(ring.executor(), xuring_core::Executor::Epoll);
        Ok(ring)
    },
    ..URING
};

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                behaviour::$name(&URING);
            }
        )*
        mod epoll {
            $(
                #[test]
                fn $name() {
                    super::behaviour::$name(&super::EPOLL);
                }
            )*
        }
    };
}

suite![
    recycling,
    oversubscription,
    cancel_queued,
    cancel_in_flight,
    cancel_recycled,
    cancel_all_native,
    cancel_all_fallback,
    chaining,
    reentrant_run,
    callback_error,
    callback_panic,
    teardown,
    timers_in_deadline_order,
    files_read_write,
    files_open_and_stat,
    files_names,
    files_allocate_and_advise,
    files_openat2,
    files_fstat,
    pipes,
    buffer_windows,
    sockets,
    send_to_and_recv_from,
    shutdown,
    splice,
    msg_ring,
];
