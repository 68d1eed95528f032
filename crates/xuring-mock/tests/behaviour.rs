//! The generic behaviour suite (`xuring-core/tests/behaviour`) on the mock, with the mock's
//! invariants checked after every step, at several seeds and SQ sizes.

#[path = "../../xuring-core/tests/behaviour/mod.rs"]
mod behaviour;

use std::any::Any;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use behaviour::Fixture;
use xuring_core::{Ring, RingBuilder, RingError};
use xuring_mock::{Mock, MockBuilder, Order, check_invariants};

/// Small pool chunks under Miri: every invariant check walks all task slots.
fn small(options: RingBuilder) -> RingBuilder {
    if cfg!(miri) {
        options.chunk_size(16)
    } else {
        options
    }
}

fn build(options: RingBuilder) -> Result<Ring<Mock>, RingError> {
    MockBuilder::new()
        .level(options.level()?)
        .build_ring_with(small(options))
}

fn build_reversed_small(options: RingBuilder) -> Result<Ring<Mock>, RingError> {
    MockBuilder::new()
        .level(options.level()?)
        .sq_entries(2)
        .cq_entries(2)
        .order(Order::Reversed)
        .build_ring_with(small(options))
}

fn build_shuffled(options: RingBuilder) -> Result<Ring<Mock>, RingError> {
    MockBuilder::new()
        .level(options.level()?)
        .seed(0xb0b)
        .order(Order::Shuffled)
        .build_ring_with(small(options))
}

/// An empty pipe: reads wait in flight until cancelled.
fn stuck_fd(ring: &mut Ring<Mock>) -> (RawFd, Box<dyn Any>) {
    static NEXT: AtomicI32 = AtomicI32::new(100);
    let fd = NEXT.fetch_add(1, Ordering::Relaxed);
    ring.backend_mut().pipe(fd);
    (fd, Box::new(()))
}

/// The mock's world stands in for the kernel's: a directory, files and links by path, a
/// pipe pair, a listening socket, the mock's own ring fd.
fn dir(ring: &mut Ring<Mock>) -> (String, Box<dyn Any>) {
    let path = "/tmp/behaviour".to_owned();
    ring.backend_mut().add_dir(&path);
    (path, Box::new(()))
}

fn file(ring: &mut Ring<Mock>, path: &str, data: &[u8]) {
    ring.backend_mut().add_file(path, data);
}

fn symlink(ring: &mut Ring<Mock>, path: &str, target: &str) {
    ring.backend_mut().add_symlink(path, target);
}

fn pipe(ring: &mut Ring<Mock>) -> (RawFd, RawFd) {
    ring.backend_mut().pipe_pair()
}

fn listener(ring: &mut Ring<Mock>) -> (RawFd, SocketAddr) {
    let fd = ring
        .backend_mut()
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)));
    (fd, ring.backend().local_addr(fd).expect("listening"))
}

fn ring_fd(ring: &Ring<Mock>) -> RawFd {
    ring.backend().ring_fd()
}

const MOCK: Fixture<Mock> = Fixture {
    build,
    stuck_fd,
    check: check_invariants,
    real_kernel: false,
    dir,
    file,
    symlink,
    pipe,
    listener,
    ring_fd,
};

const MOCK_SMALL_REVERSED: Fixture<Mock> = Fixture {
    build: build_reversed_small,
    stuck_fd,
    check: check_invariants,
    real_kernel: false,
    dir,
    file,
    symlink,
    pipe,
    listener,
    ring_fd,
};

const MOCK_SHUFFLED: Fixture<Mock> = Fixture {
    build: build_shuffled,
    stuck_fd,
    check: check_invariants,
    real_kernel: false,
    dir,
    file,
    symlink,
    pipe,
    listener,
    ring_fd,
};

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                behaviour::$name(&MOCK);
                behaviour::$name(&MOCK_SMALL_REVERSED);
                // Miri's time goes to the two orders most unlike each other.
                if !cfg!(miri) {
                    behaviour::$name(&MOCK_SHUFFLED);
                }
            }
        )*
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
