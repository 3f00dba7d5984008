//! `serialgate demo`: the newcomer's tour runs end to end against its own server and shows
//! each USN type's outcome.

use std::process::Command;

#[test]
fn demo_tours_every_usn_type_and_a_bulk_grn() {
    let out = Command::new(env!("CARGO_BIN_EXE_serialgate"))
        .args(["demo", "--serials", "20000"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run serialgate demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for usn in 1..=5 {
        assert!(
            text.contains(&format!("== USN type {usn}:")),
            "type {usn}: {text}"
        );
    }
    for shown in [
        "\"code\":\"NOT_EXPECTED\"",
        "\"code\":\"DUPLICATE_IN_REQUEST\"",
        "\"replayed\":true",
        "\"serials\":[\"BX000000000001\",\"BX000000000002\",\"BX000000000003\"]",
        "{\"status\":\"returned\",\"order\":\"SO-1\",\"units\":1}",
        "20000 serials committed",
        "Where next:",
    ] {
        assert!(
            text.contains(shown),
            "{shown:?} missing from the demo:\n{text}"
        );
    }
}
