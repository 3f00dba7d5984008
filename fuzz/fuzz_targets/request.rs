#![no_main]
//! See `serialgate::fuzz_targets::request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| serialgate::fuzz_targets::request(data));
