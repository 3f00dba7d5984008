//! A full disk and a failing device under the real server (tools/diskfull.c makes every
//! write to a regular file fail with ENOSPC, or every fsync with EIO, while a flag file
//! exists): GRNs on both write paths fail cleanly with `-STORAGE`, nothing of them is
//! stored, reads go on, the server reopens its engine by itself once the fault is gone,
//! and everything acknowledged is there, then and after a restart.

use std::path::PathBuf;

use crate::server::{Raw, Server};

fn serials(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:07}")).collect()
}

fn grn(con: &mut Raw, id: &str, serials: &[String]) -> String {
    let list: Vec<String> = serials.iter().map(|s| format!("\"{s}\"")).collect();
    let body = format!(
        r#"{{"grnId":"{id}","referenceCode":"PO-1","items":[{{"sku":"S1","serials":[{}]}}]}}"#,
        list.join(",")
    );
    con.command(&[b"GRN.COMMIT", b"acme", body.as_bytes()])
}

fn known(con: &mut Raw, serial: &str) -> bool {
    con.command(&[b"SERIAL.GET", b"acme", serial.as_bytes()]) != "(nil)"
}

/// A server (with `extra` arguments) on a fresh data directory under tools/diskfull.c,
/// whose fault `variable` names is on while the returned flag file exists. Returns the
/// temporary directory, the flag, the data directory and the server.
fn start_faulty(variable: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf, Server) {
    let dir = tempfile::tempdir().unwrap();
    let shim = crate::util::build_shim("diskfull", dir.path());
    let flag = dir.path().join("fault-on");
    let data = dir.path().join("data");
    let env = [
        ("LD_PRELOAD", shim.as_os_str()),
        (variable, flag.as_os_str()),
    ];
    let server = Server::start_with_env(&data, extra, &env);
    (dir, flag, data, server)
}

/// A type 2 account `acme` with SKU S1 and PO-1 for a million of it.
fn setup(con: &mut Raw) {
    assert!(con
        .command(&[b"ACCOUNT.CREATE", b"acme", b"USN", b"2"])
        .contains("created"));
    assert_eq!(
        con.command(&[b"SKU.SET", b"acme", b"SERIALIZED", b"S1"]),
        ":1"
    );
    let po = r#"{"referenceCode":"PO-1","items":[{"lineItemNumber":"1","sku":"S1","quantity":1000000}]}"#;
    assert!(con
        .command(&[b"PO.CREATE", b"acme", po.as_bytes()])
        .contains("created"));
}

/// Waits until `INFO` shows the engine serving again after `reopens` reopens.
fn wait_until_reopened(con: &mut Raw, reopens: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let info = con.command(&[b"INFO"]);
        if info.contains("engine_state:serving") {
            assert!(
                info.contains(&format!("engine_reopens:{reopens}")),
                "{info}"
            );
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reopened: {info}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_full_disk_fails_writes_cleanly_and_loses_nothing_acknowledged() {
    let (_dir, flag, data, mut server) =
        start_faulty("SERIALGATE_DISK_FULL", &["--prefilter-snapshot-min", "0"]);
    let mut con = Raw::connect(server.addr);
    setup(&mut con);

    // Acknowledged before the disk fills: a small GRN (WAL) and a bulk one (ingested SSTs).
    let small_ok = serials("OKW", 100);
    let bulk_ok = serials("OKB", 30_000);
    assert!(grn(&mut con, "G-1", &small_ok).contains("\"committed\""));
    assert!(grn(&mut con, "G-2", &bulk_ok).contains("\"committed\""));

    // A bulk GRN is written as SST files before anything is ingested: with the disk full
    // it fails having applied nothing, and once there is room again it goes through, with
    // no restart.
    let bulk_lost = serials("NOB", 30_000);
    std::fs::write(&flag, b"").unwrap();
    let reply = grn(&mut con, "G-3", &bulk_lost);
    assert!(reply.starts_with("-STORAGE storage I/O error"), "{reply}");
    assert!(reply.contains("No space left on device"), "{reply}");
    assert!(!known(&mut con, &bulk_lost[0]) && !known(&mut con, &bulk_lost[29_999]));
    std::fs::remove_file(&flag).unwrap();
    let bulk_later = serials("LTB", 30_000);
    assert!(grn(&mut con, "G-4", &bulk_later).contains("\"committed\""));

    // A small GRN's WAL append fails. A WAL record may survive a failed append, so the
    // outcome is unknown, and the engine takes no more writes until a reopen has rebuilt
    // its prefilter from what is really stored. Reads go on meanwhile, and while the disk
    // stays full the server does not reopen.
    let small_lost = serials("NOW", 100);
    let after = serials("AFT", 10);
    std::fs::write(&flag, b"").unwrap();
    let reply = grn(&mut con, "G-5", &small_lost);
    assert!(
        reply.starts_with("-STORAGE storage write outcome unknown"),
        "{reply}"
    );
    assert!(reply.contains("No space left on device"), "{reply}");
    let reply = grn(&mut con, "G-6", &after);
    assert!(reply.starts_with("-STORAGE"), "{reply}");
    assert!(reply.contains("until the engine is reopened"), "{reply}");
    assert_eq!(con.command(&[b"PING"]), "+PONG");
    for s in [&small_ok[0], &bulk_ok[29_999], &bulk_later[0]] {
        assert!(known(&mut con, s), "{s} missing");
    }
    // The server checks the disk again and again (backing off up to 2 s): still full.
    std::thread::sleep(std::time::Duration::from_millis(1_600));
    let info = con.command(&[b"INFO"]);
    assert!(info.contains("engine_state:refusing_writes"), "{info}");
    assert!(info.contains("engine_reopens:0"), "{info}");

    // Once there is room the server reopens the engine by itself and takes writes again.
    std::fs::remove_file(&flag).unwrap();
    wait_until_reopened(&mut con, 1);
    let check_all = |con: &mut Raw| {
        for s in [
            &small_ok[0],
            &small_ok[99],
            &bulk_ok[0],
            &bulk_ok[29_999],
            &bulk_later[0],
        ] {
            assert!(known(con, s), "{s} lost");
        }
    };
    check_all(&mut con);
    assert!(
        !known(&mut con, &bulk_lost[0]),
        "a failed bulk GRN left serials"
    );
    // The small GRN's outcome was unknown: it is whole or absent, and sending it again is
    // safe either way (a replay of the same GRN id, or a first commit).
    let stored = small_lost.iter().filter(|s| known(&mut con, s)).count();
    assert!(
        stored == 0 || stored == small_lost.len(),
        "{stored} of 100 stored"
    );
    let reply = grn(&mut con, "G-5", &small_lost);
    assert!(reply.contains("\"committed\""), "{reply}");
    assert!(grn(&mut con, "G-6", &after).contains("\"committed\""));
    assert!(grn(&mut con, "G-3", &bulk_lost).contains("\"committed\""));
    let view = con.command(&[b"PO.GET", b"acme", b"PO-1"]);
    assert!(view.contains("\"received\":90210"), "{view}");
    drop(con);

    // The reopened engine is healthy: a clean stop leaves its prefilter snapshot, and after
    // a restart everything is there.
    assert!(server.terminate(), "clean stop");
    assert!(data.join("PREFILTER.snapshot").exists());
    let server = Server::start(&data, &[]);
    let mut con = Raw::connect(server.addr);
    assert!(con.command(&[b"INFO"]).contains("prefilter_restored:1"));
    check_all(&mut con);
    for s in [&small_lost[0], &after[9], &bulk_lost[29_999]] {
        assert!(known(&mut con, s), "{s} lost");
    }
}

/// A device whose fsync fails (EIO) while writes still land in the page cache: what was
/// written since the last good sync may or may not be on the disk.
#[test]
fn a_failing_fsync_stops_writes_until_the_device_answers() {
    let (_dir, flag, data, mut server) = start_faulty("SERIALGATE_SYNC_FAILS", &[]);
    let mut con = Raw::connect(server.addr);
    setup(&mut con);
    let acknowledged = serials("OKW", 100);
    assert!(grn(&mut con, "G-1", &acknowledged).contains("\"committed\""));

    // The sync that would acknowledge a GRN fails: it is not acknowledged, and as nobody
    // knows what reached the disk, no write is taken until the engine is reopened.
    std::fs::write(&flag, b"").unwrap();
    let unknown = serials("UNK", 100);
    let reply = grn(&mut con, "G-2", &unknown);
    assert!(
        reply.starts_with("-STORAGE storage write outcome unknown"),
        "{reply}"
    );
    assert!(reply.contains("Input/output error"), "{reply}");
    let later = serials("LAT", 10);
    let reply = grn(&mut con, "G-3", &later);
    assert!(reply.contains("until the engine is reopened"), "{reply}");
    assert!(known(&mut con, &acknowledged[99]), "reads are served");
    std::thread::sleep(std::time::Duration::from_millis(1_600));
    let info = con.command(&[b"INFO"]);
    assert!(info.contains("engine_state:refusing_writes"), "{info}");

    // The device answers again: the server reopens the engine and takes writes.
    std::fs::remove_file(&flag).unwrap();
    wait_until_reopened(&mut con, 1);
    assert!(known(&mut con, &acknowledged[0]) && known(&mut con, &acknowledged[99]));
    let stored = unknown.iter().filter(|s| known(&mut con, s)).count();
    assert!(
        stored == 0 || stored == unknown.len(),
        "{stored} of 100 stored"
    );
    assert!(grn(&mut con, "G-2", &unknown).contains("\"committed\""));
    assert!(grn(&mut con, "G-3", &later).contains("\"committed\""));
    drop(con);

    // And after a kill -9 and a restart without the shim, everything acknowledged is there.
    server.kill9();
    let server = Server::start(&data, &[]);
    let mut con = Raw::connect(server.addr);
    for s in [&acknowledged[0], &unknown[99], &later[9]] {
        assert!(known(&mut con, s), "{s} lost");
    }
}
