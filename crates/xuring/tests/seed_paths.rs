//! Every path the seed and the design brief name, through the facade: a rename or a lost
//! re-export fails to compile here.

// The seed's examples.
#[allow(unused_imports)]
use xuring::io_uring::{Context, Offset, OpResult, Ring, RingError, RunCondition, Task, Timespec};
// The rest of the public runtime.
#[allow(unused_imports)]
use xuring::io_uring::{
    Accepted, Backend, BufferPool, CPath, Callback, Errno, Features, IoBuf, IoVecs, KernelLevel,
    Message, Mock, MockRingExt, OpKind, PoolBuf, RingBuilder, RingStats, Stat, TaskHandle, TaskId,
    TaskState, Uring, leaked_tasks,
};
// Threads.
#[allow(unused_imports)]
use xuring::io_uring::{Handler, Mail, Peer, Thread};
// The helpers.
#[allow(unused_imports)]
use xuring::stda::fs::{
    CHUNK_SIZE, CREATE_MODE, Written, copy_file, read_exact, read_file, write_all, write_file,
};
#[allow(unused_imports)]
use xuring::stda::net::{
    AcceptEvent, accept_loop, recv_exact, recv_some, send_all, tcp_connect_to_addr, tcp_listen,
    udp_connect_to_addr,
};
#[allow(unused_imports)]
use xuring::stda::{Done, DoneFn, Error, Handle, Then, Transfer, jobs_in_flight};
// The mock.
#[allow(unused_imports)]
use xuring::mock::{Faults, MockBuilder, Reply, check_invariants, run_seeded};

#[test]
fn the_glob_import_is_enough_for_the_seeds_examples() {
    use xuring::io_uring::*;
    fn on_noop(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
        assert!(matches!(task.result, Some(OpResult::Noop(Ok(())))));
        Ok(())
    }
    let mut ring = Ring::init(16).expect("ring");
    ring.noop(Context {
        cb: on_noop,
        ..Context::default()
    });
    ring.run(RunCondition::UntilDone).expect("run");

    let mut mock = Ring::init_mock();
    mock.noop(Context::default());
    mock.run(RunCondition::Once).expect("run");
    assert_eq!(mock.stats().callbacks, 1);
}

/// What `tcp_connect_to_addr` and `udp_connect_to_addr` report: the connected socket.
type Connected = Result<std::os::fd::RawFd, Errno>;
type ConnectFn<B> = fn(&mut Ring<B>, std::net::SocketAddr, Then<Connected, B>) -> Handle<B>;

#[test]
fn the_seed_helpers_have_the_seed_shape() {
    // `tcp_connect_to_addr(ring, SocketAddr, ctx)`, generic over the backend.
    let _: ConnectFn<Uring> = tcp_connect_to_addr::<Uring>;
    let _: ConnectFn<Mock> = udp_connect_to_addr::<Mock>;
}

#[test]
fn the_seeds_thread_example() {
    use xuring::io_uring::{Ring, Thread};
    let mut ring = Ring::init(16).expect("ring");
    let thread = Thread::spawn(&mut ring, 16).expect("spawn");
    // Kill and join when done.
    thread.join().expect("join");
}
