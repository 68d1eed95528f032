//! cargo-fuzz target `ops`: see `xuring_fuzz::ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xuring_fuzz::ops::run(data));
