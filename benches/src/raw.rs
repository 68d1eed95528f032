//! The baselines: the same work on the raw `io-uring` crate (0.7), with no runtime around it.
//!
//! Each baseline ring is created with the setup flags that xuring's ring got on this kernel
//! (see [`raw_ring`]), so the two sides differ only in what happens in user space.
//!
//! # Safety
//!
//! Pushing an SQE is `unsafe` in the `io-uring` crate: the caller keeps every buffer the entry
//! names valid until its completion is reaped. NOPs name no memory. The reads name one 4 KiB
//! page of [`RawReader`]'s own page array, indexed by the entry's `user_data`: a page is used
//! by at most one read at a time (it is reissued only after its completion was reaped), the
//! array is never resized, and every run reaps all of its reads before returning. The ring is
//! declared before the pages, so it is closed (and the registered buffers released) before the
//! pages are freed. Registering the pages as fixed buffers is `unsafe` for the same reason.

use std::hint::black_box;
use std::io;
use std::os::fd::RawFd;

use io_uring::{IoUring, Submitter, opcode, types};
use xuring_sys::SetupFlags;

use crate::error::{BenchError, check_complete};

/// The bytes of one read.
pub const BLOCK: usize = 4096;

/// A raw ring of `entries` entries with the io_uring setup flags of `setup` that the
/// `io-uring` crate can set (`SUBMIT_ALL`, `COOP_TASKRUN`, `SINGLE_ISSUER`, `DEFER_TASKRUN`,
/// `CLAMP`): pass the flags xuring's ring was created with, for a like-for-like baseline.
pub fn raw_ring(entries: u32, setup: SetupFlags) -> io::Result<IoUring> {
    let mut builder = IoUring::builder();
    if setup.contains(SetupFlags::CLAMP) {
        builder.setup_clamp();
    }
    if setup.contains(SetupFlags::SUBMIT_ALL) {
        builder.setup_submit_all();
    }
    if setup.contains(SetupFlags::COOP_TASKRUN) {
        builder.setup_coop_taskrun();
    }
    if setup.contains(SetupFlags::SINGLE_ISSUER) {
        builder.setup_single_issuer();
    }
    if setup.contains(SetupFlags::DEFER_TASKRUN) {
        builder.setup_defer_taskrun();
    }
    builder.build(entries)
}

/// How many opcodes the kernel reports as supported, counting those newer than xuring's table
/// (via the `io-uring` crate's probe on a small ring).
pub fn kernel_opcode_count() -> io::Result<usize> {
    let ring = IoUring::new(2)?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    Ok((0..=u8::MAX).filter(|&op| probe.is_supported(op)).count())
}

/// `submit_and_wait`, retrying `EINTR`; `EBUSY`/`EAGAIN` (CQ full, transient shortage) return
/// so the caller reaps first.
fn submit_and_wait(submitter: &Submitter<'_>, want: usize) -> Result<(), BenchError> {
    loop {
        match submitter.submit_and_wait(want) {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EAGAIN)) => {
                return Ok(());
            }
            Err(e) => return Err(BenchError::Io("io_uring_enter (raw)", e)),
        }
    }
}

fn ring_error(what: &'static str) -> impl FnOnce(io::Error) -> BenchError {
    move |e| BenchError::Io(what, e)
}

/// NOP round trips on a raw ring: push `batch` NOPs, `submit_and_wait(batch)`, drain the CQ.
pub struct RawNoop {
    ring: IoUring,
    batch: u32,
}

impl RawNoop {
    /// A raw ring of `entries` entries, created with `setup`, running NOPs `batch` at a time.
    pub fn new(entries: u32, setup: SetupFlags, batch: u32) -> Result<RawNoop, BenchError> {
        if batch == 0 || batch > entries {
            return Err(BenchError::Other(format!(
                "batch {batch} does not fit a ring of {entries}"
            )));
        }
        let ring = raw_ring(entries, setup).map_err(ring_error("io_uring_setup (raw)"))?;
        Ok(RawNoop { ring, batch })
    }

    /// Runs `ops` NOPs; returns the completions seen.
    pub fn run(&mut self, ops: u64) -> Result<u64, BenchError> {
        let mut done = 0u64;
        let mut failed = 0u64;
        while done < ops {
            let n = (ops - done).min(u64::from(self.batch)) as usize;
            let (submitter, mut sq, mut cq) = self.ring.split();
            for i in 0..n {
                let nop = opcode::Nop::new().build().user_data(i as u64);
                // SAFETY: a NOP names no memory.
                let pushed = unsafe { sq.push(&nop) };
                pushed.map_err(|_| BenchError::Other("raw SQ full".to_owned()))?;
            }
            sq.sync();
            let mut got = 0;
            while got < n {
                submit_and_wait(&submitter, n - got)?;
                cq.sync();
                for cqe in &mut cq {
                    failed += u64::from(cqe.result() < 0);
                    got += 1;
                }
            }
            done += got as u64;
        }
        if failed > 0 {
            return Err(BenchError::Failed {
                what: "raw NOP".to_owned(),
                count: failed,
            });
        }
        check_complete("raw NOP", ops, done)
    }
}

/// What the emulated callbacks update.
#[derive(Debug, Default)]
struct EmuState {
    completed: u64,
    failed: u64,
}

/// A callback of the emulated callback layer.
type EmuCallback = fn(&mut EmuState, i32);

/// One slab entry: the callback and the caller's word.
#[derive(Clone, Copy)]
struct Slot {
    cb: EmuCallback,
    data: u64,
}

fn emu_on_nop(state: &mut EmuState, res: i32) {
    state.failed += u64::from(res < 0);
    state.completed += 1;
}

/// The raw NOP loop plus what a naive callback layer adds: each submission takes a slab slot
/// holding a function pointer, and each completion looks its slot up by `user_data`, calls the
/// function through the pointer and frees the slot.
pub struct RawNoopCallbacks {
    ring: IoUring,
    batch: u32,
    slots: Vec<Slot>,
    free: Vec<u32>,
    state: EmuState,
}

impl RawNoopCallbacks {
    /// Like [`RawNoop::new`], with a slab of `entries` slots.
    pub fn new(entries: u32, setup: SetupFlags, batch: u32) -> Result<Self, BenchError> {
        let RawNoop { ring, batch } = RawNoop::new(entries, setup, batch)?;
        let slots = vec![
            Slot {
                cb: emu_on_nop,
                data: 0
            };
            entries as usize
        ];
        Ok(RawNoopCallbacks {
            ring,
            batch,
            slots,
            free: (0..entries).rev().collect(),
            state: EmuState::default(),
        })
    }

    /// Runs `ops` NOPs through the emulated callbacks; returns the callbacks run.
    pub fn run(&mut self, ops: u64) -> Result<u64, BenchError> {
        let Self {
            ring,
            batch,
            slots,
            free,
            state,
        } = self;
        state.completed = 0;
        state.failed = 0;
        let mut done = 0u64;
        while done < ops {
            let n = (ops - done).min(u64::from(*batch)) as usize;
            let (submitter, mut sq, mut cq) = ring.split();
            for _ in 0..n {
                let index = free
                    .pop()
                    .ok_or_else(|| BenchError::Other("slab empty".to_owned()))?;
                // `black_box` keeps the call indirect, as a real layer's would be.
                slots[index as usize] = Slot {
                    cb: black_box(emu_on_nop as EmuCallback),
                    data: u64::from(index),
                };
                let nop = opcode::Nop::new().build().user_data(u64::from(index));
                // SAFETY: a NOP names no memory.
                let pushed = unsafe { sq.push(&nop) };
                pushed.map_err(|_| BenchError::Other("raw SQ full".to_owned()))?;
            }
            sq.sync();
            let mut got = 0;
            while got < n {
                submit_and_wait(&submitter, n - got)?;
                cq.sync();
                for cqe in &mut cq {
                    let slot = slots[cqe.user_data() as usize];
                    (slot.cb)(state, cqe.result());
                    free.push(slot.data as u32);
                    got += 1;
                }
            }
            done += got as u64;
        }
        if state.failed > 0 {
            return Err(BenchError::Failed {
                what: "raw NOP + callbacks".to_owned(),
                count: state.failed,
            });
        }
        check_complete("raw NOP + callbacks", ops, state.completed)
    }
}

/// One page-aligned read buffer.
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
pub struct Page(pub [u8; BLOCK]);

/// 4 KiB random reads at a fixed queue depth on a raw ring: `qd` reads in flight, each
/// completion reissues a read into the same page at the next offset, until `ops` are done.
pub struct RawReader {
    // Declared before `pages`: the ring (and its buffer registration) goes first.
    ring: IoUring,
    pages: Vec<Page>,
    fixed: bool,
    fd: RawFd,
    offsets: std::rc::Rc<[u64]>,
    cursor: usize,
    qd: u32,
}

impl RawReader {
    /// A raw ring of `qd` entries (created with `setup`) reading `fd` at the offsets of
    /// `offsets` in turn; `fixed` registers the pages and uses `READ_FIXED`.
    pub fn new(
        fd: RawFd,
        offsets: std::rc::Rc<[u64]>,
        qd: u32,
        setup: SetupFlags,
        fixed: bool,
    ) -> Result<RawReader, BenchError> {
        if offsets.is_empty() || qd == 0 {
            return Err(BenchError::Other("no offsets or queue depth 0".to_owned()));
        }
        let ring = raw_ring(qd, setup).map_err(ring_error("io_uring_setup (raw)"))?;
        let pages = vec![Page([0; BLOCK]); qd as usize];
        let reader = RawReader {
            ring,
            pages,
            fixed,
            fd,
            offsets,
            cursor: 0,
            qd,
        };
        if fixed {
            let iovecs: Vec<libc::iovec> = reader
                .pages
                .iter()
                .map(|p| libc::iovec {
                    iov_base: p.0.as_ptr().cast_mut().cast(),
                    iov_len: BLOCK,
                })
                .collect();
            // SAFETY: the iovecs describe `reader.pages`, which is never resized and is freed
            // only after the ring (declared first) is closed.
            let registered = unsafe { reader.ring.submitter().register_buffers(&iovecs) };
            registered.map_err(ring_error("IORING_REGISTER_BUFFERS (raw)"))?;
        }
        Ok(reader)
    }

    /// Whether the reads use `READ_FIXED`.
    pub fn fixed(&self) -> bool {
        self.fixed
    }

    /// Runs `ops` reads; returns the completions seen. Every read must return 4096 bytes.
    pub fn run(&mut self, ops: u64) -> Result<u64, BenchError> {
        let Self {
            ring,
            pages,
            fixed,
            fd,
            offsets,
            cursor,
            qd,
        } = self;
        let (submitter, mut sq, mut cq) = ring.split();
        let mut push = |sq: &mut io_uring::SubmissionQueue<'_>, slot: usize| {
            let offset = offsets[*cursor];
            *cursor = (*cursor + 1) % offsets.len();
            let buf = pages[slot].0.as_mut_ptr();
            let entry = if *fixed {
                opcode::ReadFixed::new(types::Fd(*fd), buf, BLOCK as u32, slot as u16)
                    .offset(offset)
                    .build()
            } else {
                opcode::Read::new(types::Fd(*fd), buf, BLOCK as u32)
                    .offset(offset)
                    .build()
            }
            .user_data(slot as u64);
            // SAFETY: `buf` is page `slot`, which no other read in flight uses and which
            // outlives the ring (see the module's safety notes).
            let pushed = unsafe { sq.push(&entry) };
            pushed.map_err(|_| BenchError::Other("raw SQ full".to_owned()))
        };
        let mut issued = 0u64;
        let mut done = 0u64;
        let mut bad = 0u64;
        for slot in 0..(*qd as u64).min(ops) {
            push(&mut sq, slot as usize)?;
            issued += 1;
        }
        sq.sync();
        while done < issued {
            submit_and_wait(&submitter, 1)?;
            // The kernel consumed the SQEs: refresh the SQ's view of its head before pushing.
            sq.sync();
            cq.sync();
            for cqe in &mut cq {
                bad += u64::from(cqe.result() != BLOCK as i32);
                done += 1;
                if issued < ops {
                    push(&mut sq, cqe.user_data() as usize)?;
                    issued += 1;
                }
            }
            sq.sync();
        }
        if bad > 0 {
            return Err(BenchError::Failed {
                what: "raw read".to_owned(),
                count: bad,
            });
        }
        check_complete("raw read", ops, done)
    }
}

/// Waves of `count` concurrent relative timeouts (`IORING_OP_TIMEOUT`, no completion count)
/// on a raw ring: push them all (submitting whenever the SQ is full), wait for every one to
/// fire with `-ETIME`, repeat.
pub struct RawTimers {
    // Declared before `after`: the ring goes first.
    ring: IoUring,
    after: Box<types::Timespec>,
    count: u32,
}

impl RawTimers {
    /// A raw ring of `entries` entries, created with `setup`, arming `count` timers of `after`
    /// per wave.
    pub fn new(
        entries: u32,
        setup: SetupFlags,
        count: u32,
        after: std::time::Duration,
    ) -> Result<RawTimers, BenchError> {
        if count == 0 {
            return Err(BenchError::Other("0 timers".to_owned()));
        }
        let ring = raw_ring(entries, setup).map_err(ring_error("io_uring_setup (raw)"))?;
        let after = Box::new(
            types::Timespec::new()
                .sec(after.as_secs())
                .nsec(after.subsec_nanos()),
        );
        Ok(RawTimers { ring, after, count })
    }

    /// Fires `ops` timers, `count` at a time; returns the completions seen. Each must end
    /// with `-ETIME` (the timer expired).
    pub fn run(&mut self, ops: u64) -> Result<u64, BenchError> {
        let cq_entries = self.ring.params().cq_entries();
        let (submitter, mut sq, mut cq) = self.ring.split();
        let ts: *const types::Timespec = &*self.after;
        let mut done = 0u64;
        let mut bad = 0u64;
        while done < ops {
            let wave = (ops - done).min(u64::from(self.count));
            let mut pushed = 0u64;
            let mut got = 0u64;
            while got < wave {
                while pushed < wave {
                    let entry = opcode::Timeout::new(ts).build().user_data(pushed);
                    // SAFETY: `ts` points into `self.after`, which lives as long as the ring
                    // (see the module's safety notes).
                    if unsafe { sq.push(&entry) }.is_err() {
                        break;
                    }
                    pushed += 1;
                }
                sq.sync();
                // Wait for every timer in flight (as many as the CQ holds): one wake-up per
                // wave rather than one per timer.
                let in_flight = (pushed - got).min(u64::from(cq_entries)) as usize;
                submit_and_wait(&submitter, in_flight.max(1))?;
                sq.sync();
                cq.sync();
                for cqe in &mut cq {
                    bad += u64::from(cqe.result() != -libc::ETIME);
                    got += 1;
                }
            }
            done += got;
        }
        if bad > 0 {
            return Err(BenchError::Failed {
                what: "raw timer".to_owned(),
                count: bad,
            });
        }
        check_complete("raw timer", ops, done)
    }
}
