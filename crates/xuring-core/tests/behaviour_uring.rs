//! The generic behaviour suite (`tests/behaviour`) on the real kernel. The mock runs the same
//! suite in `xuring-mock/tests/behaviour.rs`.
#![cfg(not(miri))]

mod behaviour;
mod common;

use std::any::Any;
use std::os::fd::RawFd;

use behaviour::Fixture;
use xuring_core::{Ring, RingBuilder, Uring};

/// An empty pipe whose write end stays open: reads wait in flight until cancelled.
fn stuck_fd(_ring: &mut Ring<Uring>) -> (RawFd, Box<dyn Any>) {
    let (read, write) = common::pipe();
    (read.raw(), Box::new((read, write)))
}

const URING: Fixture<Uring> = Fixture {
    build: RingBuilder::build,
    stuck_fd,
    check: |_ring| {},
    real_kernel: true,
};

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                behaviour::$name(&URING);
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
