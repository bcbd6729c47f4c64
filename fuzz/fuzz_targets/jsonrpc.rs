#![no_main]
//! Fuzz target `jsonrpc`: see `fuzz_harness::jsonrpc` (fuzz/src/lib.rs).

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_harness::jsonrpc(data));
