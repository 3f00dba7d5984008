#![no_main]
//! See `serialgate::fuzz_targets::inline`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| serialgate::fuzz_targets::inline(data));
