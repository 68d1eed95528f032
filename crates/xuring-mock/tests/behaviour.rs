//! The generic behaviour suite (`xuring-core/tests/behaviour`) on the mock, with the mock's
//! invariants checked after every step, at several seeds and SQ sizes.

#[path = "../../xuring-core/tests/behaviour/mod.rs"]
mod behaviour;

use std::any::Any;
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

const MOCK: Fixture<Mock> = Fixture {
    build,
    stuck_fd,
    check: check_invariants,
    real_kernel: false,
};

const MOCK_SMALL_REVERSED: Fixture<Mock> = Fixture {
    build: build_reversed_small,
    stuck_fd,
    check: check_invariants,
    real_kernel: false,
};

const MOCK_SHUFFLED: Fixture<Mock> = Fixture {
    build: build_shuffled,
    stuck_fd,
    check: check_invariants,
    real_kernel: false,
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
];
