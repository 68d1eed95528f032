//! `xuring_std::fs` on the real kernel with real files: whole-file reads and writes of many
//! sizes checked against `std::fs`, procfs, missing files and directories, copies through
//! splice and through the read/write fallback (a ring masked to 5.6, before `SPLICE`),
//! offset transfers on an fd, a pipe, cancellation, and open-fd counts around every error.

use std::os::fd::AsRawFd;

use xuring_core::{Context, Task};
use xuring_core::{Errno, IoBuf, KernelLevel, Offset, OpResult, Ring, RingError, RunCondition};
use xuring_std::fs::{self, Written};
use xuring_std::{Error, Then, Transfer};

mod common;
use common::{
    c_path, keep, keep_cb, kept, one, open_fds, open_fds_settled, pattern, run_bounded, serial,
    temp_path,
};

fn ring() -> Ring {
    Ring::init(16).expect("ring")
}

#[test]
fn write_file_then_read_file_round_trips_every_size() {
    let _serial = serial();
    let mut ring = ring();
    let before = open_fds();
    for (i, len) in [0usize, 1, 4095, 4096, 100_007, 3 << 20]
        .into_iter()
        .enumerate()
    {
        let path = temp_path(&format!("round-{i}"));
        let data = pattern(len);
        fs::write_file(&mut ring, c_path(&path), data.clone(), Then::new(keep_cb));
        run_bounded(&mut ring);
        let w = one::<Written>();
        assert_eq!(w.status, Ok(()), "len {len}");
        assert_eq!(w.len, len);
        assert_eq!(w.buf.into_vec().expect("vec"), data, "buffer back intact");
        assert!(std::fs::read(&path).expect("std read") == data, "len {len}");

        fs::read_file(&mut ring, c_path(&path), Then::new(keep_cb));
        run_bounded(&mut ring);
        let got = one::<Result<Vec<u8>, Error>>().expect("read_file");
        assert!(got == data, "len {len}: read {} bytes", got.len());
        let _ = std::fs::remove_file(&path);
    }
    assert!(open_fds_settled(before) <= before, "every file was closed");
}

#[test]
fn write_file_truncates_and_applies_the_umask() {
    let _serial = serial();
    use std::os::unix::fs::PermissionsExt;
    let mut ring = ring();
    let path = temp_path("truncate");
    std::fs::write(&path, vec![b'x'; 10_000]).expect("std write");
    fs::write_file(&mut ring, c_path(&path), b"short", Then::new(keep_cb));
    run_bounded(&mut ring);
    assert_eq!(one::<Written>().status, Ok(()));
    assert_eq!(std::fs::read(&path).expect("read"), b"short");
    let fresh = temp_path("mode");
    let _ = std::fs::remove_file(&fresh);
    fs::write_file(&mut ring, c_path(&fresh), b"new", Then::new(keep_cb));
    run_bounded(&mut ring);
    assert_eq!(one::<Written>().status, Ok(()));
    let mode = std::fs::metadata(&fresh)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    let std_file = temp_path("mode-std");
    std::fs::write(&std_file, b"new").expect("std");
    let std_mode = std::fs::metadata(&std_file)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, std_mode, "the same mode as std::fs::File::create");
    for p in [path, fresh, std_file] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn read_file_errors_are_reported_after_closing() {
    let _serial = serial();
    let mut ring = ring();
    let before = open_fds();
    let dir = std::env::temp_dir();
    fs::read_file(&mut ring, c"/nonexistent/xuring-std", Then::new(keep_cb));
    fs::read_file(&mut ring, c_path(&dir), Then::new(keep_cb));
    run_bounded(&mut ring);
    let mut results = kept::<Result<Vec<u8>, Error>>();
    results.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        results,
        [Err(Error::Os(Errno::EISDIR)), Err(Error::Os(Errno::ENOENT))]
    );
    assert!(
        open_fds_settled(before) <= before,
        "the directory was opened, then closed"
    );
}

#[test]
fn read_file_reads_procfs_files_that_report_size_zero() {
    let _serial = serial();
    let mut ring = ring();
    assert_eq!(
        std::fs::metadata("/proc/self/cmdline").expect("meta").len(),
        0
    );
    fs::read_file(&mut ring, c"/proc/self/cmdline", Then::new(keep_cb));
    run_bounded(&mut ring);
    let got = one::<Result<Vec<u8>, Error>>().expect("read");
    assert_eq!(got, std::fs::read("/proc/self/cmdline").expect("std"));
    assert!(!got.is_empty());
}

#[test]
fn write_file_errors_return_the_buffer() {
    let _serial = serial();
    let mut ring = ring();
    let before = open_fds();
    fs::write_file(
        &mut ring,
        c"/nonexistent/dir/file",
        vec![1u8; 10],
        Then::new(keep_cb),
    );
    fs::write_file(
        &mut ring,
        c_path(&std::env::temp_dir()),
        vec![2u8; 10],
        Then::new(keep_cb),
    );
    run_bounded(&mut ring);
    let mut all = kept::<Written>();
    all.sort_by_key(|w| w.buf.as_slice()[0]);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].status, Err(Error::Os(Errno::ENOENT)));
    assert_eq!(all[1].status, Err(Error::Os(Errno::EISDIR)));
    for w in &all {
        assert_eq!(w.len, 0);
        assert_eq!(w.buf.len(), 10, "the buffer comes back");
    }
    assert!(open_fds_settled(before) <= before, "no fd leaked");
}

fn copy_and_check(ring: &mut Ring, name: &str, len: usize) {
    let src = temp_path(&format!("{name}-src"));
    let dst = temp_path(&format!("{name}-dst"));
    let data = pattern(len);
    std::fs::write(&src, &data).expect("write src");
    std::fs::write(&dst, b"old contents that must go").expect("write dst");
    fs::copy_file(ring, c_path(&src), c_path(&dst), Then::new(keep_cb));
    run_bounded(ring);
    assert_eq!(one::<Result<u64, Error>>(), Ok(len as u64), "{name}");
    assert!(std::fs::read(&dst).expect("read dst") == data, "{name}");
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
}

#[test]
fn copy_file_splices_through_a_pipe() {
    let _serial = serial();
    let mut ring = ring();
    let before = open_fds();
    for (i, len) in [0usize, 1, 65_536, 300_001].into_iter().enumerate() {
        copy_and_check(&mut ring, &format!("splice-{i}"), len);
    }
    assert_eq!(open_fds_settled(before), before, "files and pipe closed");
}

#[test]
fn copy_file_falls_back_to_read_and_write_without_splice() {
    fn on_splice(_ring: &mut Ring, task: &Task) -> Result<(), RingError> {
        keep(task.result);
        Ok(())
    }
    let _serial = serial();
    let mut ring = Ring::builder(16)
        .kernel_level(KernelLevel::V5_6)
        .build()
        .expect("ring");
    // At 5.6 the ring has no SPLICE: the op itself reports EOPNOTSUPP ...
    let file = std::fs::File::open("/proc/self/cmdline").expect("open");
    ring.splice(
        file.as_raw_fd(),
        None,
        file.as_raw_fd(),
        None,
        1,
        0,
        Context {
            cb: on_splice,
            ..Context::default()
        },
    );
    ring.run(RunCondition::UntilDone).expect("run");
    assert_eq!(
        kept::<Option<OpResult>>(),
        [Some(OpResult::Splice(Err(Errno::EOPNOTSUPP)))]
    );
    // ... and the copy still works, through user memory.
    let before = open_fds();
    for (i, len) in [0usize, 65_535, 200_000].into_iter().enumerate() {
        copy_and_check(&mut ring, &format!("fallback-{i}"), len);
    }
    assert!(open_fds_settled(before) <= before, "no fd leaked");
    // With a pool, the fallback's buffer is a pool buffer, and it goes back.
    let mut ring = Ring::builder(16)
        .kernel_level(KernelLevel::V5_6)
        .buffer_pool(2, 4096)
        .build()
        .expect("ring");
    copy_and_check(&mut ring, "fallback-pool", 50_000);
    assert_eq!(ring.buffers().expect("pool").available(), 2);
}

#[test]
fn copy_file_errors_close_what_was_opened() {
    let _serial = serial();
    let mut ring = ring();
    let before = open_fds();
    let src = temp_path("copy-err-src");
    std::fs::write(&src, b"data").expect("write");
    fs::copy_file(
        &mut ring,
        c"/nonexistent/src",
        c_path(&temp_path("never")),
        Then::new(keep_cb),
    );
    run_bounded(&mut ring);
    assert_eq!(one::<Result<u64, Error>>(), Err(Error::Os(Errno::ENOENT)));
    // The source opens, the destination does not: the source must be closed.
    fs::copy_file(
        &mut ring,
        c_path(&src),
        c"/nonexistent/dir/dst",
        Then::new(keep_cb),
    );
    run_bounded(&mut ring);
    assert_eq!(one::<Result<u64, Error>>(), Err(Error::Os(Errno::ENOENT)));
    // Copying a directory: open works, the first splice or read fails.
    fs::copy_file(
        &mut ring,
        c_path(&std::env::temp_dir()),
        c_path(&temp_path("dir-copy")),
        Then::new(keep_cb),
    );
    run_bounded(&mut ring);
    assert_eq!(one::<Result<u64, Error>>(), Err(Error::Os(Errno::EISDIR)));
    assert!(open_fds_settled(before) <= before, "no fd leaked");
    for p in [src, temp_path("dir-copy")] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn write_all_and_read_exact_at_offsets() {
    let _serial = serial();
    let mut ring = ring();
    let path = temp_path("offsets");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("open");
    let fd = file.as_raw_fd();
    let data = pattern(70_000);
    fs::write_all(
        &mut ring,
        fd,
        data.clone(),
        Offset::At(10),
        Then::new(keep_cb),
    );
    run_bounded(&mut ring);
    let t = one::<Transfer>();
    assert_eq!((t.fd, t.len, t.status), (fd, data.len(), Ok(())));
    let on_disk = std::fs::read(&path).expect("read");
    assert_eq!(&on_disk[..10], &[0u8; 10]);
    assert!(on_disk[10..] == data[..]);
    fs::read_exact(
        &mut ring,
        fd,
        vec![0u8; 5000],
        Offset::At(1010),
        Then::new(keep_cb),
    );
    run_bounded(&mut ring);
    let t = one::<Transfer>();
    assert_eq!(t.status, Ok(()));
    assert_eq!(t.buf.into_vec().expect("vec"), &data[1000..6000]);
    // Past the end: the file ends first.
    fs::read_exact(
        &mut ring,
        fd,
        vec![0u8; 100],
        Offset::At(70_000),
        Then::new(keep_cb),
    );
    run_bounded(&mut ring);
    let t = one::<Transfer>();
    assert_eq!((t.len, t.status), (10, Err(Error::UnexpectedEof)));
    assert_eq!(&t.buf.as_slice()[..10], &data[69_990..]);
    // A read-only buffer cannot be read into.
    fs::read_exact(
        &mut ring,
        fd,
        IoBuf::from(b"ro"),
        Offset::At(0),
        Then::new(keep_cb),
    );
    run_bounded(&mut ring);
    assert_eq!(one::<Transfer>().status, Err(Error::Os(Errno::EFAULT)));
    drop(file);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn write_all_into_a_pipe_with_a_slow_reader() {
    let _serial = serial();
    let mut ring = ring();
    let (mut reader, writer) = std::io::pipe().expect("pipe");
    let len = 1 << 20;
    let drain = std::thread::spawn(move || {
        use std::io::Read;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = reader.read(&mut buf).expect("read");
            if n == 0 {
                break got;
            }
            got.extend_from_slice(&buf[..n]);
            if got.len() % 65_536 < n {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    });
    fs::write_all(
        &mut ring,
        writer.as_raw_fd(),
        pattern(len),
        Offset::File,
        Then::new(keep_cb),
    );
    run_bounded(&mut ring);
    let t = one::<Transfer>();
    assert_eq!((t.len, t.status), (len, Ok(())));
    drop(writer);
    assert!(drain.join().expect("drain") == pattern(len));
}

#[test]
fn cancelling_a_file_job_before_it_runs_reports_ecanceled() {
    let _serial = serial();
    let mut ring = ring();
    let before = open_fds();
    let path = temp_path("cancelled");
    std::fs::write(&path, b"never read").expect("write");
    let read = fs::read_file(&mut ring, c_path(&path), Then::new(keep_cb));
    let copy = fs::copy_file(
        &mut ring,
        c_path(&path),
        c_path(&temp_path("cancelled-copy")),
        Then::new(keep_cb),
    );
    let write = fs::write_file(
        &mut ring,
        c_path(&temp_path("cancelled-w")),
        b"x",
        Then::new(keep_cb),
    );
    for h in [read, copy, write] {
        assert!(h.cancel(&mut ring));
    }
    run_bounded(&mut ring);
    assert_eq!(
        kept::<Result<Vec<u8>, Error>>(),
        [Err(Error::Os(Errno::ECANCELED))]
    );
    assert_eq!(
        kept::<Result<u64, Error>>(),
        [Err(Error::Os(Errno::ECANCELED))]
    );
    assert_eq!(one::<Written>().status, Err(Error::Os(Errno::ECANCELED)));
    assert!(open_fds_settled(before) <= before, "no fd leaked");
    let _ = std::fs::remove_file(&path);
}

/// A cancel that arrives while a job closes what it opened leaves the close alone: taken
/// back before it ran, it would leave the descriptor open. Cancelled at every step in turn
/// (the close is one of them), the job never leaks a descriptor.
#[test]
fn cancelling_a_job_at_any_step_leaks_no_descriptor() {
    let _serial = serial();
    let path = temp_path("cancel-at-each-step");
    std::fs::write(&path, b"hello").expect("write");
    for step in 0..6 {
        let before = open_fds();
        let mut ring = ring();
        let handle = fs::read_file(&mut ring, c_path(&path), Then::new(keep_cb));
        for _ in 0..step {
            if handle.is_active() {
                ring.run(RunCondition::Once).expect("run");
            }
        }
        let _ = handle.cancel(&mut ring);
        run_bounded(&mut ring);
        assert!(!handle.is_active());
        assert_eq!(kept::<Result<Vec<u8>, Error>>().len(), 1, "one report");
        drop(ring);
        assert_eq!(
            open_fds_settled(before),
            before,
            "cancelled after {step} steps"
        );
    }
    let _ = std::fs::remove_file(&path);
}
