#![no_main]
//! See `serialgate::fuzz_targets::resp`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| serialgate::fuzz_targets::resp(data));
