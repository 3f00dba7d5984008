#![no_main]
//! See `serialgate::fuzz_targets::json`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| serialgate::fuzz_targets::json(data));
