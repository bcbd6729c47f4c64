#![no_main]
//! Fuzz target `jwt`: see `fuzz_harness::jwt` (fuzz/src/lib.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_harness::jwt(data));
