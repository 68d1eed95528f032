//! Setup flags the queues cannot drive are refused before `io_uring_setup`, with a typed error
//! and no fd created; the flags xuring drives still build.
//!
//! The cases run one at a time (a lock), because the fd counts would see other tests'
//! descriptors.

use xuring_sys::{KernelLevel, RawRing, SetupError, SetupFlags, SetupOptions};

mod common;
use common::{open_fds, serial};

/// `IORING_SETUP_NO_SQARRAY` (6.6): newer than xuring's table, and it removes the SQ index
/// array the submission queue fills.
const NO_SQARRAY: u32 = 1 << 16;

/// Every flag xuring does not drive, alone and (for SQ_AFF) with the flag it needs.
fn undriven() -> Vec<(&'static str, SetupFlags)> {
    vec![
        ("SQE128", SetupFlags::SQE128),
        ("CQE32", SetupFlags::CQE32),
        ("SQPOLL", SetupFlags::SQPOLL),
        ("SQ_AFF", SetupFlags::SQPOLL | SetupFlags::SQ_AFF),
        ("IOPOLL", SetupFlags::IOPOLL),
        ("R_DISABLED", SetupFlags::R_DISABLED),
        ("bit 16", SetupFlags::from_bits_retain(NO_SQARRAY)),
    ]
}

fn refused(options: &SetupOptions) -> SetupError {
    match RawRing::kernel(options) {
        Ok(ring) => panic!(
            "built a ring with flags {:?}",
            SetupFlags::from_bits_retain(ring.params().flags)
        ),
        Err(e) => e,
    }
}

#[test]
fn undriven_flags_are_refused_wanted_or_required_without_an_fd() {
    let _serial = serial();
    // Under the lock: its probe ring must not show up in another test's fd count.
    if !common::kernel_io_uring() {
        return;
    }
    let before = open_fds();
    for (name, flags) in undriven() {
        let mut wanted = SetupOptions::new(8, KernelLevel::Native);
        wanted.wanted |= flags;
        let mut required = SetupOptions::new(8, KernelLevel::Native);
        required.required = flags;
        // A level older than the flag must not hide it either: the request itself is wrong.
        let mut old = SetupOptions::new(8, KernelLevel::V5_6);
        old.wanted = flags;
        for options in [wanted, required, old] {
            let err = refused(&options);
            assert_eq!(
                err,
                SetupError::UnsupportedFlags { flags },
                "{name} at {}",
                options.level
            );
            let message = err.to_string();
            assert!(message.contains(name), "{name}: {message}");
            assert!(message.contains("does not drive"), "{name}: {message}");
        }
    }
    assert_eq!(open_fds(), before, "no fd created or leaked");
}

#[test]
fn only_the_undriven_bits_are_reported() {
    let _serial = serial();
    // Under the lock: its probe ring must not show up in another test's fd count.
    if !common::kernel_io_uring() {
        return;
    }
    let mut options = SetupOptions::new(8, KernelLevel::Native);
    options.wanted = SetupOptions::DEFAULT_WANTED | SetupFlags::CQE32;
    options.required = SetupFlags::CLAMP | SetupFlags::from_bits_retain(NO_SQARRAY);
    let flags = SetupFlags::CQE32 | SetupFlags::from_bits_retain(NO_SQARRAY);
    assert_eq!(refused(&options), SetupError::UnsupportedFlags { flags });
    let message = SetupError::UnsupportedFlags { flags }.to_string();
    assert!(
        message.contains("IORING_SETUP_CQE32 | bit 16"),
        "both named: {message}"
    );
    assert!(
        message.contains("IORING_SETUP_DEFER_TASKRUN"),
        "the accepted flags are listed: {message}"
    );
}

#[test]
fn driven_flags_still_build() {
    let _serial = serial();
    // Under the lock: its probe ring must not show up in another test's fd count.
    if !common::kernel_io_uring() {
        return;
    }
    let before = open_fds();
    // The defaults: what this kernel accepts of them is what the flags below must keep.
    let ring = RawRing::kernel(&SetupOptions::new(8, KernelLevel::Native)).expect("default flags");
    let defaults = SetupFlags::from_bits_retain(ring.params().flags);
    drop(ring);
    // Everything accepted at once. CQSIZE and ATTACH_WQ come from `cq_entries` and
    // `attach_wq`; named in the flag sets without them, they are ignored rather than sent
    // with a CQ size of 0 or the fd 0 (which would make the kernel refuse the other flags).
    let mut options = SetupOptions::new(8, KernelLevel::Native);
    options.wanted = SetupFlags::DRIVEN;
    let ring = RawRing::kernel(&options).expect("every driven flag");
    let set = SetupFlags::from_bits_retain(ring.params().flags);
    assert!(set.contains(defaults), "{set:?} keeps {defaults:?}");
    if defaults.contains(SetupFlags::COOP_TASKRUN) {
        // Both 5.19.
        assert!(set.contains(SetupFlags::TASKRUN_FLAG), "{set:?}");
    }
    assert!(
        !set.intersects(SetupFlags::CQSIZE | SetupFlags::ATTACH_WQ),
        "{set:?}"
    );
    // With their options they are used.
    let mut options = SetupOptions::new(8, KernelLevel::Native);
    options.wanted = SetupFlags::DRIVEN;
    options.cq_entries = Some(64);
    options.attach_wq = Some(ring.fd());
    let shared = RawRing::kernel(&options).expect("CQSIZE and ATTACH_WQ with their options");
    let set = SetupFlags::from_bits_retain(shared.params().flags);
    assert!(
        set.contains(SetupFlags::CQSIZE | SetupFlags::ATTACH_WQ),
        "{set:?}"
    );
    assert_eq!(shared.params().cq_entries, 64);
    drop(shared);
    drop(ring);
    assert_eq!(open_fds(), before, "no fd leaked");
}

#[test]
fn attach_wq_falls_back_without_costing_flags_or_sharing() {
    let _serial = serial();
    // Under the lock: its probe ring must not show up in another test's fd count.
    if !common::kernel_io_uring() {
        return;
    }
    let before = open_fds();
    let plain = RawRing::kernel(&SetupOptions::new(8, KernelLevel::Native)).expect("ring");
    let plain_flags = SetupFlags::from_bits_retain(plain.params().flags);
    let pipe = {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is an array of two ints for `pipe2` to fill.
        let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(ret, 0, "pipe2");
        fds
    };
    // Not open (ENXIO; no process can have fd i32::MAX) and open but not a ring (EINVAL):
    // a private io-wq, with every flag a ring gets without attach_wq.
    for fd in [i32::MAX, pipe[0]] {
        let mut options = SetupOptions::new(8, KernelLevel::Native);
        options.attach_wq = Some(fd);
        let ring = RawRing::kernel(&options).unwrap_or_else(|e| panic!("attach_wq({fd}): {e}"));
        let set = SetupFlags::from_bits_retain(ring.params().flags);
        assert_eq!(set, plain_flags, "fd {fd}");
    }
    // A refused flag (DEFER_TASKRUN needs SINGLE_ISSUER) costs the flag, not the sharing.
    let mut options = SetupOptions::new(8, KernelLevel::Native);
    options.wanted = SetupFlags::SUBMIT_ALL | SetupFlags::DEFER_TASKRUN;
    options.attach_wq = Some(plain.fd());
    let shared = RawRing::kernel(&options).expect("shared ring");
    let set = SetupFlags::from_bits_retain(shared.params().flags);
    // (SUBMIT_ALL where this kernel has it: 5.18.)
    assert_eq!(
        set,
        (SetupFlags::CLAMP | SetupFlags::SUBMIT_ALL) & plain_flags | SetupFlags::ATTACH_WQ
    );
    drop(shared);
    drop(plain);
    for fd in pipe {
        // SAFETY: the pipe's fds are ours and closed once, here.
        unsafe { libc::close(fd) };
    }
    assert_eq!(open_fds(), before, "no fd leaked");
}
