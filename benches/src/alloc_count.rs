//! A counting global allocator, to check that operations do not allocate after warm-up.
//!
//! The library only defines [`CountingAlloc`]; a binary opts in with
//! `#[global_allocator] static A: CountingAlloc = CountingAlloc;` (the `xuring-bench` binary
//! and the tests do). Counts are per thread, so tests running in parallel do not see each
//! other's allocations.
//!
//! # Safety
//!
//! The `unsafe` here is the `GlobalAlloc` implementation, which forwards every call unchanged
//! to [`System`]: the caller's contract for each method is exactly `System`'s. Counting uses a
//! `const`-initialised thread-local `Cell<u64>`, which has no destructor and so never
//! allocates or registers anything on first use: it cannot recurse into the allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting the allocations (`alloc`, `alloc_zeroed`, `realloc`) made by
/// each thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountingAlloc;

#[inline]
fn bump() {
    // `try_with` fails only while the thread is being torn down; those calls go uncounted.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments, so it upholds the
// `GlobalAlloc` contract exactly as `System` does; the counter is a side effect that cannot
// fail, allocate or unwind.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: the caller's contract for `alloc_zeroed` is `System.alloc_zeroed`'s.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, that is by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: `ptr` was allocated by `System` with `layout`; the rest of the contract is
        // the caller's, as for `System.realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations made by this thread so far (0 forever if [`CountingAlloc`] is not the global
/// allocator).
pub fn allocations() -> u64 {
    ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}

/// Whether [`CountingAlloc`] is the process's global allocator: allocates once and looks.
pub fn installed() -> bool {
    let before = allocations();
    let probe = std::hint::black_box(Box::new(std::hint::black_box(7u64)));
    drop(probe);
    allocations() != before
}
