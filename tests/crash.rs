//! The crash loop's short version: ten rounds of kill -9 under GRN load, each checked
//! against the clients' oracle (`serialgate crash-loop`; `tools/crash-loop` runs 200).

use std::process::Command;

#[test]
fn ten_crash_rounds_lose_nothing_and_leave_nothing_partial() {
    let out = Command::new(env!("CARGO_BIN_EXE_serialgate"))
        .args(["crash-loop", "--rounds", "10", "--seed", "7"])
        .env("RUST_LOG", "error")
        .output()
        .expect("run serialgate crash-loop");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("violations: 0; offline check: consistent"),
        "{text}"
    );
}
