//! `serialgate report`: a PO's USN report as CSV and XLSX (read back with calamine), a
//! serial's record with its history, and a type 3 PO's reconciliation with over-receipt
//! within tolerance, missing units, open serials and an outward unit.

use std::path::Path;
use std::process::{Command, Output};

use calamine::{open_workbook_auto, Data, Reader};
use serialgate::domain::UsnType;
use serialgate::engine::{GrnItem, OrderPayload};
use serialgate::{AccountOptions, GrnMode};

use crate::server::Server;
use crate::util::{self, WritePath, ACCOUNT};

fn report(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_serialgate"))
        .arg("report")
        .args(args)
        .args(["--data", dir.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run serialgate report")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Type 3, allowance max(ceil(10% × 10), 1) = 1. PO-1: line 1 S1 × 10 (11 generated,
/// 11 received, one outward), line 2 S2 × 5 (3 generated, 2 received).
fn type3_store() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = util::open(dir.path(), WritePath::Wal);
    util::setup_account(
        &engine,
        AccountOptions {
            tolerance_pct: Some(10),
            tolerance_qty: Some(1),
            prefix: Some("SG".into()),
            ..AccountOptions::new(UsnType::GeneratedForPo)
        },
    );
    util::po(&engine, "PO-1", &[("S1", 10), ("S2", 5)]);
    let s1 = util::strings(
        &engine
            .generate_for_po(ACCOUNT, "PO-1", "S1", 11)
            .unwrap()
            .serials,
    );
    let s2 = util::strings(
        &engine
            .generate_for_po(ACCOUNT, "PO-1", "S2", 3)
            .unwrap()
            .serials,
    );
    let scanned = |values: &[String]| GrnItem {
        serials: Some(util::serials(values)),
        ..GrnItem::default()
    };
    let reply = engine
        .receive(
            ACCOUNT,
            &util::grn("G-1", "PO-1", vec![scanned(&s1), scanned(&s2[..2])]),
            GrnMode::Commit,
        )
        .unwrap();
    assert!(reply.is_committed(), "{reply:?}");
    let order = OrderPayload {
        order: "SO-1".into(),
        serials: util::serials(&s1[..1]),
        ..OrderPayload::default()
    };
    assert!(engine.outward(ACCOUNT, &order).unwrap().errors().is_empty());
    let mut all = s1;
    all.extend(s2);
    (dir, all)
}

#[test]
fn reconciliation_counts_over_tolerance_missing_open_and_outward() {
    let (dir, _) = type3_store();
    let csv = ok(report(dir.path(), &["reconcile", ACCOUNT, "PO-1"]));
    assert_eq!(
        csv,
        "lineItemNumber,sku,ordered,listed,received,overTolerance,missing,open,outward,cancelled\n\
         1,S1,10,11,11,1,0,0,1,0\n\
         2,S2,5,3,2,0,3,1,0,0\n\
         TOTAL,,15,14,13,1,3,1,1,0\n"
    );

    let xlsx = dir.path().join("reconcile.xlsx");
    let xlsx_arg = xlsx.to_str().unwrap();
    ok(report(
        dir.path(),
        &[
            "reconcile",
            ACCOUNT,
            "PO-1",
            "--format",
            "xlsx",
            "--out",
            xlsx_arg,
        ],
    ));
    let mut book = open_workbook_auto(&xlsx).unwrap();
    let sheet = book.worksheet_range("Reconciliation").unwrap();
    assert_eq!(sheet.get((2, 0)), Some(&Data::String("2".into())));
    assert_eq!(
        sheet.get((2, 6)),
        Some(&Data::Float(3.0)),
        "missing on line 2"
    );
    assert_eq!(sheet.get((1, 5)), Some(&Data::Float(1.0)), "over tolerance");
}

#[test]
fn usn_report_as_csv_and_xlsx_agree_and_match_the_protocol() {
    let (dir, serials) = type3_store();
    let csv = ok(report(dir.path(), &["po", ACCOUNT, "PO-1"]));
    let engine = util::open(dir.path(), WritePath::Wal);
    let direct = String::from_utf8(engine.po_report(ACCOUNT, "PO-1").unwrap()).unwrap();
    drop(engine);
    assert_eq!(csv, direct);
    assert_eq!(csv.lines().count(), 1 + serials.len());

    let xlsx = dir.path().join("usn.xlsx");
    ok(report(
        dir.path(),
        &[
            "po",
            ACCOUNT,
            "PO-1",
            "--format",
            "xlsx",
            "--out",
            xlsx.to_str().unwrap(),
        ],
    ));
    let mut book = open_workbook_auto(&xlsx).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let from_xlsx: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    let from_csv: Vec<Vec<String>> = csv
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(from_xlsx, from_csv);

    let no_out = report(dir.path(), &["po", ACCOUNT, "PO-1", "--format", "xlsx"]);
    assert!(!no_out.status.success());
    assert!(String::from_utf8_lossy(&no_out.stderr).contains("--out"));
    let unknown = report(dir.path(), &["po", ACCOUNT, "PO-404"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("UNKNOWN_PO"));
}

#[test]
fn serial_report_shows_the_record_and_its_history_from_a_server() {
    let (dir, serials) = type3_store();
    let server = Server::start(dir.path(), &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_serialgate"))
        .args(["report", "serial", ACCOUNT, &serials[0]])
        .args(["--server", &server.addr.to_string()])
        .output()
        .unwrap();
    let text = ok(out);
    assert!(text.contains("state      outward"), "{text}");
    assert!(text.contains("order      SO-1"), "{text}");
    let events: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "history")
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(events, ["generated", "inwarded", "outward"]);

    let out = Command::new(env!("CARGO_BIN_EXE_serialgate"))
        .args(["report", "serial", ACCOUNT, "NOT-A-SERIAL", "--json"])
        .args(["--server", &server.addr.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown"));
}
