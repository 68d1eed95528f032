//! cargo-fuzz target `cqe`: see `xuring_fuzz::cqe`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xuring_fuzz::cqe::run(data));
