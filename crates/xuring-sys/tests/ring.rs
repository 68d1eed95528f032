//! The sys layer on the real kernel: setup and teardown, a raw NOP round trip, the probe,
//! the level masks, and the wait timeout.

use xuring_sys::abi::{__kernel_timespec, io_uring_sqe};
use xuring_sys::syscall::io_uring_enter;
use xuring_sys::{
    EnterFlags, Errno, FeatureFlags, Features, KernelLevel, KernelVersion, OpSet, Opcode, RawRing,
    SetupError, SetupFlags, SetupOptions,
};

mod common;

fn ring(entries: u32) -> RawRing {
    RawRing::kernel(&SetupOptions::new(entries, KernelLevel::Native)).expect("io_uring works here")
}

/// Pushes `count` NOPs with user data `base..base+count`, submits and waits for them all.
fn nop_round_trip(ring: &mut RawRing, base: u64, count: u32) -> Vec<(u64, i32)> {
    for i in 0..count {
        let sqe = io_uring_sqe {
            opcode: Opcode::Nop as u8,
            user_data: base + u64::from(i),
            ..io_uring_sqe::ZEROED
        };
        // SAFETY: a NOP names no memory.
        unsafe { ring.sq().push(&sqe) }.expect("room for the batch");
    }
    ring.sq().publish();
    let mut done = Vec::new();
    let mut to_submit = count;
    while done.len() < count as usize {
        let want = count - done.len() as u32;
        let submitted = io_uring_enter(ring.as_fd(), to_submit, want, EnterFlags::GETEVENTS, None)
            .expect("enter");
        to_submit -= submitted;
        ring.cq().reap(|cqe| done.push((cqe.user_data, cqe.res)));
    }
    done
}

#[test]
fn setup_and_teardown_from_1_to_4096_entries() {
    if !common::kernel_io_uring() {
        return;
    }
    let mut entries = 1;
    while entries <= 4096 {
        let mut r = ring(entries);
        assert_eq!(r.sq().capacity(), entries, "sq entries for {entries}");
        assert_eq!(r.cq().capacity(), entries * 2, "default cq is twice the sq");
        // A batch the size of the ring fits exactly; one more does not.
        let done = nop_round_trip(&mut r, 0, entries.min(64));
        assert_eq!(done.len() as u32, entries.min(64));
        entries *= 2;
    }
    // Non-powers of two round up.
    assert_eq!(ring(3).sq().capacity(), 4);
}

#[test]
fn nop_round_trip_returns_user_data_in_order() {
    if !common::kernel_io_uring() {
        return;
    }
    let mut r = ring(8);
    let done = nop_round_trip(&mut r, 1000, 8);
    assert_eq!(
        done,
        (1000..1008).map(|u| (u, 0)).collect::<Vec<_>>(),
        "NOPs complete inline, in submission order, with res 0"
    );
    // The ring is reusable after wrapping around several times.
    for round in 0..10 {
        let done = nop_round_trip(&mut r, round * 100, 8);
        assert_eq!(done.len(), 8);
    }
}

#[test]
fn retracted_entries_never_reach_the_kernel_and_published_ones_stay() {
    if !common::kernel_io_uring() {
        return;
    }
    let mut r = ring(8);
    let nop = |user_data| io_uring_sqe {
        opcode: Opcode::Nop as u8,
        user_data,
        ..io_uring_sqe::ZEROED
    };
    // Published (but not yet submitted): out of reach of `retract_unpublished`.
    // SAFETY: NOPs name no memory.
    unsafe { r.sq().push(&nop(1)) }.expect("room");
    r.sq().publish();
    for u in 2..=6 {
        // SAFETY: as above.
        unsafe { r.sq().push(&nop(u)) }.expect("room");
    }
    assert_eq!(r.sq().unpublished(), 5);
    let taken = r
        .sq()
        .retract_unpublished(|sqe| sqe.user_data % 2 == 1 || sqe.user_data == 4);
    assert_eq!(taken, 3, "3, 4 and 5 (1 is published)");
    let taken = r.sq().retract_unpublished(|sqe| sqe.user_data == 4);
    assert_eq!(taken, 0, "gone already");
    assert_eq!(r.sq().unpublished(), 2);
    assert_eq!(r.sq().pending(), 3);
    r.sq().publish();
    io_uring_enter(r.as_fd(), 3, 3, EnterFlags::GETEVENTS, None).expect("enter");
    let mut done = Vec::new();
    r.cq().reap(|cqe| done.push(cqe.user_data));
    assert_eq!(done, [1, 2, 6], "the kept entries, in order");
    // Wrapping around the ring: retract from entries that straddle the end of the array.
    for round in 0..4u64 {
        let base = 100 * round;
        for u in 0..6 {
            // SAFETY: as above.
            unsafe { r.sq().push(&nop(base + u)) }.expect("room");
        }
        assert_eq!(
            r.sq()
                .retract_unpublished(|sqe| (sqe.user_data - base) % 3 == 0),
            2
        );
        r.sq().publish();
        io_uring_enter(r.as_fd(), 4, 4, EnterFlags::GETEVENTS, None).expect("enter");
        let mut done = Vec::new();
        r.cq().reap(|cqe| done.push(cqe.user_data));
        assert_eq!(done, [base + 1, base + 2, base + 4, base + 5]);
    }
}

#[test]
fn full_sq_refuses_the_extra_entry() {
    if !common::kernel_io_uring() {
        return;
    }
    let mut r = ring(2);
    let sqe = io_uring_sqe::ZEROED;
    // SAFETY: NOPs name no memory.
    unsafe {
        r.sq().push(&sqe).expect("slot 1");
    }
    // SAFETY: as above.
    unsafe {
        r.sq().push(&sqe).expect("slot 2");
    }
    let third = {
        // SAFETY: as above.
        unsafe { r.sq().push(&sqe) }
    };
    assert!(third.is_err(), "a third SQE does not fit");
    assert_eq!(r.sq().space(), 0);
    r.sq().publish();
    io_uring_enter(r.as_fd(), 2, 2, EnterFlags::GETEVENTS, None).expect("enter");
    assert_eq!(r.sq().space(), 2, "the kernel consumed both");
    assert_eq!(r.cq().reap(|_| {}), 2);
}

#[test]
fn split_mappings_work_like_a_single_one() {
    if !common::kernel_io_uring() {
        return;
    }
    let mut options = SetupOptions::new(16, KernelLevel::Native);
    options.split_mmap = true;
    let mut split = RawRing::kernel(&options).expect("setup");
    assert!(!split.single_mmap());
    assert!(ring(16).single_mmap(), "this kernel has FEAT_SINGLE_MMAP");
    let done = nop_round_trip(&mut split, 7, 16);
    assert_eq!(done.len(), 16);
}

#[test]
fn cq_size_can_be_chosen() {
    if !common::kernel_io_uring() {
        return;
    }
    let mut options = SetupOptions::new(4, KernelLevel::Native);
    options.cq_entries = Some(64);
    let mut r = RawRing::kernel(&options).expect("setup");
    assert_eq!(r.cq().capacity(), 64);
    assert!(r.features().has_setup(SetupFlags::CQSIZE));
}

/// The running kernel's `major.minor` (tests only: the runtime itself never reads it).
fn running_version() -> KernelVersion {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut numbers = release
        .split(['.', '-', '+'])
        .map(|n| n.trim().parse::<u8>());
    let (Some(Ok(major)), Some(Ok(minor))) = (numbers.next(), numbers.next()) else {
        panic!("an unparsable kernel release {release:?}");
    };
    KernelVersion::new(major, minor)
}

#[test]
fn probe_reports_every_opcode_up_to_this_kernel() {
    if !common::kernel_io_uring() {
        return;
    }
    let r = ring(4);
    let features = r.features();
    let running = running_version();
    for info in Opcode::TABLE {
        if info.since.at_most(running) {
            assert!(
                features.supports(info.opcode),
                "{} (since {}) missing from the probe on this {running} kernel",
                info.c_name,
                info.since
            );
        }
    }
    for info in FeatureFlags::TABLE {
        if info.since.at_most(running) {
            assert!(
                features.has(info.flag),
                "{:?} (since {}) missing on this {running} kernel",
                info.flag,
                info.since
            );
        }
    }
}

#[test]
fn native_setup_gets_every_wanted_flag_here() {
    if !common::kernel_io_uring() {
        return;
    }
    let r = ring(4);
    let setup = r.features().setup;
    // Which flags this kernel must accept follows from its version.
    let running = running_version();
    for info in SetupFlags::TABLE {
        let wanted = (SetupOptions::DEFAULT_WANTED | SetupFlags::CLAMP).contains(info.flag);
        if wanted && info.since.at_most(running) {
            assert!(
                setup.contains(info.flag),
                "{:?} (since {}) accepted by this {running} kernel",
                info.flag,
                info.since
            );
        }
    }
}

#[test]
fn each_level_removes_exactly_the_newer_features() {
    if !common::kernel_io_uring() {
        return;
    }
    let native = *ring(4).features();
    for level in KernelLevel::ALL {
        let r = RawRing::kernel(&SetupOptions::new(4, level)).expect("setup at every level");
        let f = r.features();
        assert_eq!(f.level, level);
        for info in Opcode::TABLE {
            let expected = native.supports(info.opcode) && level.allows(info.since);
            assert_eq!(
                f.supports(info.opcode),
                expected,
                "{} at {level}",
                info.c_name
            );
        }
        for info in FeatureFlags::TABLE {
            let expected = native.has(info.flag) && level.allows(info.since);
            assert_eq!(f.has(info.flag), expected, "{} at {level}", info.c_name);
        }
        for info in SetupFlags::TABLE {
            // The ring was really created without the newer flags, not just reported so.
            let real = SetupFlags::from_bits_retain(r.params().flags);
            assert!(
                !real.contains(info.flag) || level.allows(info.since),
                "{} used at {level}",
                info.c_name
            );
            let expected = native.has_setup(info.flag) && level.allows(info.since);
            assert_eq!(
                f.has_setup(info.flag),
                expected,
                "{} at {level}",
                info.c_name
            );
        }
    }
    // Clamping never raises.
    let low = Features::from_probe(
        native.flags,
        native.ops,
        native.setup,
        native.cancel,
        KernelLevel::V5_6,
    );
    assert_eq!(low.clamp(KernelLevel::Native), low);
    assert!(!low.ops.contains(Opcode::Socket));
    assert_eq!(low.ops, native.ops.clamp(KernelLevel::V5_6));
    assert_ne!(low.ops, OpSet::all());
}

#[test]
fn enter_with_timeout_returns_etime() {
    if !common::kernel_io_uring() {
        return;
    }
    let r = ring(4);
    let ts = __kernel_timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000,
    };
    let start = std::time::Instant::now();
    let err = io_uring_enter(r.as_fd(), 0, 1, EnterFlags::GETEVENTS, Some(&ts))
        .expect_err("nothing completes");
    assert_eq!(err, Errno::ETIME);
    assert!(start.elapsed() >= std::time::Duration::from_millis(1));
}

#[test]
fn invalid_entries_is_a_typed_error() {
    if !common::kernel_io_uring() {
        return;
    }
    match RawRing::kernel(&SetupOptions::new(0, KernelLevel::Native)) {
        Err(SetupError::InvalidArgument { entries: 0, .. }) => {}
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    let message = SetupError::InvalidArgument {
        entries: 0,
        flags: SetupFlags::CLAMP,
    }
    .to_string();
    assert!(message.contains("1..=32768"), "{message}");
}

#[test]
fn kernel_level_from_env_rejects_typos() {
    // The process environment is shared by the tests of this binary: only this test touches
    // XURING_KERNEL_LEVEL, through a child process so nothing leaks.
    let exe = std::env::current_exe().expect("test binary");
    if let Ok(value) = std::env::var("XURING_LEVEL_CHILD") {
        let parsed = KernelLevel::from_env();
        match value.as_str() {
            "5.19" => assert_eq!(parsed, Ok(KernelLevel::V5_19)),
            _ => assert!(parsed.is_err(), "{value} must be refused"),
        }
        return;
    }
    for value in ["5.19", "5.20", "six"] {
        let status = std::process::Command::new(&exe)
            .args(["--exact", "kernel_level_from_env_rejects_typos", "--quiet"])
            .env("XURING_LEVEL_CHILD", value)
            .env("XURING_KERNEL_LEVEL", value)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("spawn child");
        assert!(status.success(), "child for {value}");
    }
}
