//! Replays every committed fuzz corpus input (`fuzz/corpus/<target>/`) through the same
//! entry points the cargo-fuzz targets call, on stable Rust, so CI covers what fuzzing found.

use std::path::Path;

use serialgate::fuzz_targets;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    inputs.sort();
    for input in &inputs {
        let data = std::fs::read(input).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target} panicked on {}", input.display());
    }
    inputs.len()
}

#[test]
fn resp_corpus() {
    assert!(replay("resp", fuzz_targets::resp) > 0);
}

#[test]
fn inline_corpus() {
    assert!(replay("inline", fuzz_targets::inline) > 0);
}

#[test]
fn json_corpus() {
    assert!(replay("json", fuzz_targets::json) > 0);
}

#[test]
fn request_corpus() {
    assert!(replay("request", fuzz_targets::request) > 0);
    fuzz_targets::verify_request_store();
}
