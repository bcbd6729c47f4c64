#![no_main]
//! Fuzz target `delta`: see `fuzz_harness::delta` (fuzz/src/lib.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_harness::delta(data));
