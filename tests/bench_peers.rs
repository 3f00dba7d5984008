//! `serialgate bench peers` and `bench scale` end to end at a small size, on the systems
//! that need no other server (serialgate embedded and over the protocol, RocksDB alone):
//! every workload runs, every duplicate is reported, and the Markdown section and SVG
//! plots are written in place. (PostgreSQL and Redis join in `tools/bench-peers`.)

use std::process::Command;

fn serialgate(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_serialgate"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("run serialgate");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn peers_runs_every_workload_and_writes_its_section_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("BENCHMARKS.md");
    std::fs::write(&doc, "# Benchmarks\n\nkept\n").unwrap();
    let plots = dir.path().join("plots");
    let text = serialgate(&[
        "bench",
        "peers",
        "--only",
        "in-process,wire,rocksdb",
        "--serials",
        "20000",
        "--preload",
        "20000",
        "--grn-size",
        "5000",
        "--expected",
        "10000",
        "--lookups",
        "2000",
        "--clients",
        "4",
        "--client-grns",
        "5",
        "--out",
        doc.to_str().unwrap(),
        "--plots",
        plots.to_str().unwrap(),
    ]);
    // 1 % of 20,000 duplicates in W2, every one reported by both serialgate systems.
    assert_eq!(text.matches("reported 200/200").count(), 2, "{text}");
    for workload in ["W1:", "W2:", "W3:", "W4:", "W5:"] {
        assert!(text.contains(workload), "{workload} missing: {text}");
    }
    let md = std::fs::read_to_string(&doc).unwrap();
    assert!(md.starts_with("# Benchmarks\n\nkept\n"), "{md}");
    assert_eq!(md.matches("<!-- peers-bench:start -->").count(), 1);
    assert!(md.contains("| serialgate over the protocol |"), "{md}");
    assert!(md.contains("| RocksDB alone (no checks) |"), "{md}");
    for plot in ["peers-throughput.svg", "peers-lookups.svg"] {
        let svg = std::fs::read_to_string(plots.join(plot)).unwrap();
        assert!(svg.contains("serialgate in-process"), "{plot}");
    }
}

#[test]
fn scale_reports_each_size_and_the_restart_times() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("BENCHMARKS.md");
    let plots = dir.path().join("plots");
    let text = serialgate(&[
        "bench",
        "scale",
        "--to",
        "1200000",
        "--grn-size",
        "200000",
        "--at",
        "200000,1200000",
        "--out",
        doc.to_str().unwrap(),
        "--plots",
        plots.to_str().unwrap(),
    ]);
    assert!(text.contains("at      200000 serials"), "{text}");
    assert!(text.contains("at     1200000 serials"), "{text}");
    assert!(text.contains("restart to serving"), "{text}");
    let md = std::fs::read_to_string(&doc).unwrap();
    assert!(md.contains("| 1,200,000 |"), "{md}");
    assert!(plots.join("scale-throughput.svg").exists());
    assert!(plots.join("scale-memory.svg").exists());
    let steps = std::fs::read_to_string(plots.join("scale-steps.csv")).unwrap();
    // A header and one line per GRN: six GRNs of 200,000.
    assert_eq!(steps.lines().count(), 7, "{steps}");
}
