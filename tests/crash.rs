//! The crash loop's short versions: ten rounds of kill -9 under GRN load, and ten more with
//! a simulated power loss after every kill, each checked against the clients' oracle
//! (`serialgate crash-loop`; `tools/crash-loop` runs 200 and 100).

use std::process::Command;

/// Runs `serialgate crash-loop` with `args`; returns what it printed, having checked that
/// it passed with no violation.
fn crash_loop(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_serialgate"))
        .arg("crash-loop")
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("run serialgate crash-loop");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("violations: 0; offline check: consistent"),
        "{text}"
    );
    text
}

#[test]
fn ten_crash_rounds_lose_nothing_and_leave_nothing_partial() {
    let text = crash_loop(&["--rounds", "10", "--seed", "7"].map(std::ffi::OsStr::new));
    // Rounds 4 and 8 end in a clean stop; both restarts take the prefilter snapshot, and
    // the oracle's checks after them pass like every other round's.
    assert!(
        text.contains("2 clean stops (SIGTERM), 2 restarts from the prefilter snapshot"),
        "{text}"
    );
}

#[test]
fn ten_power_loss_rounds_lose_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let shim = crate::util::build_shim("powerloss", dir.path());
    let mut args = ["--rounds", "10", "--seed", "11", "--power-loss-shim"]
        .map(std::ffi::OsStr::new)
        .to_vec();
    args.push(shim.as_os_str());
    let text = crash_loop(&args);
    // The simulation did drop unsynced data.
    let dropped: u64 = text
        .split("files cut back to their synced length, ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(dropped > 0, "{text}");
}
