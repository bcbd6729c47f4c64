#![no_main]
//! Fuzz target `jwt_structured`: see `fuzz_harness::jwt_structured` (fuzz/src/lib.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_harness::jwt_structured(data));
