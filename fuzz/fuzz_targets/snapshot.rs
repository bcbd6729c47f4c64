#![no_main]
//! Fuzz target `snapshot`: see `fuzz_harness::snapshot` (fuzz/src/lib.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_harness::snapshot(data));
