//! cargo-fuzz target `queue`: see `xuring_fuzz::queue`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xuring_fuzz::queue::run(data));
