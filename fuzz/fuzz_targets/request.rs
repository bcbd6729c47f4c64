#![no_main]
//! Fuzz target `request`: see `fuzz_harness::request` (fuzz/src/lib.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_harness::request(data));
