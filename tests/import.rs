//! `serialgate import`: the real binary on real sheets (CSV with BOMs, CRLF and quotes,
//! XLSX written by rust_xlsxwriter, an ODS fixture), on a data directory and through a
//! running server. A rejected import must leave the store byte-for-byte as it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serialgate::domain::{Condition, SerialState, UsnType};
use serialgate::AccountOptions;
use tempfile::TempDir;

use crate::server::Server;
use crate::util::{self, WritePath, ACCOUNT};

fn serialgate(args: &[&str], paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_serialgate"))
        .args(args)
        .args(paths)
        .env("RUST_LOG", "warn")
        .env_remove("SERIALGATE_PASSWORD")
        .output()
        .expect("run serialgate")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A stopped store with a type `usn` account (SKUs S1, S2 serialized, P1 plain) and, for
/// types 2, a PO `PO-1` with lines 1: S1 × 10, 2: S2 × 10, 3: P1 × 10.
fn store(usn: UsnType) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let engine = util::open(dir.path(), WritePath::Wal);
    util::setup_account(&engine, AccountOptions::new(usn));
    if usn == UsnType::SellerAtGrn {
        util::po(&engine, "PO-1", &[("S1", 10), ("S2", 10), ("P1", 10)]);
    }
    dir
}

fn digest_of(dir: &Path) -> u128 {
    util::digest(&util::open(dir, WritePath::Wal))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `(serial, state, condition, bin, qcReason)` as the engine now has it.
fn unit(
    dir: &Path,
    serial: &str,
) -> Option<(SerialState, Condition, Option<String>, Option<String>)> {
    let engine = util::open(dir, WritePath::Wal);
    engine
        .serial(ACCOUNT, serial.as_bytes())
        .unwrap()
        .map(|v| (v.state, v.condition, v.bin, v.qc_reason))
}

fn import_grn(dir: &Path, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["import", "grn", ACCOUNT, "--data", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    serialgate(&args, &[file])
}

#[test]
fn grn_csv_with_bom_crlf_quotes_and_unknown_columns_imports() {
    let data = store(UsnType::SellerAtGrn);
    let files = tempfile::tempdir().unwrap();
    // A plain SKU's row is a quantity; blank rows are skipped; short rows read as empty.
    let csv = write(
        files.path(),
        "grn.csv",
        b"\xEF\xBB\xBFSKU,Serial,CONDITION,bin,QCReason,remarks,Quantity\r\n\
          S1,SN-1,good,A-01,,first\r\n\
          S1,\"SN,2\",,A-01,,\"quoted, with comma\"\r\n\
          S2,SN-3,Bad,,DAMAGED,\r\n\
          P1,,,,,,4\r\n\
          ,,,,,,\r\n",
    );
    let out = import_grn(data.path(), &csv, &["--grn", "G-1", "--po", "PO-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("7 units from 4 rows"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        unit(data.path(), "SN-1"),
        Some((
            SerialState::Inwarded,
            Condition::Good,
            Some("A-01".into()),
            None
        ))
    );
    assert_eq!(
        unit(data.path(), "SN,2").map(|u| u.0),
        Some(SerialState::Inwarded)
    );
    assert_eq!(
        unit(data.path(), "SN-3"),
        Some((
            SerialState::Inwarded,
            Condition::Bad,
            None,
            Some("DAMAGED".into())
        ))
    );
    let engine = util::open(data.path(), WritePath::Wal);
    assert_eq!(
        util::line_counts(&engine, "PO-1"),
        vec![(10, 0, 2), (10, 0, 1), (10, 0, 4)]
    );
    drop(engine);

    // The same file again is a safe retry: the original result, nothing changed.
    let before = digest_of(data.path());
    let again = import_grn(data.path(), &csv, &["--grn", "G-1", "--po", "PO-1"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("already committed"),
        "{}",
        stdout(&again)
    );
    assert_eq!(digest_of(data.path()), before);
}

#[test]
fn rejected_grn_writes_nothing_and_lists_the_failing_rows() {
    let data = store(UsnType::SellerAtGrn);
    let files = tempfile::tempdir().unwrap();
    let first = write(files.path(), "first.csv", b"sku,serial\nS1,OLD-1\n");
    assert!(
        import_grn(data.path(), &first, &["--grn", "G-0", "--po", "PO-1"])
            .status
            .success()
    );
    let before = digest_of(data.path());
    let csv = write(
        files.path(),
        "grn.csv",
        b"grnId,referenceCode,sku,serial\n\
          G-1,PO-1,S1,NEW-1\n\
          G-1,PO-1,S1,OLD-1\n\
          G-1,PO-1,S1,\" SN 7 \"\n\
          G-1,PO-1,S2,TWICE\n\
          G-1,PO-1,S2,TWICE\n\
          G-1,PO-1,NOPE,NEW-2\n",
    );
    let out = import_grn(data.path(), &csv, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing was imported"),
        "{}",
        stderr(&out)
    );
    assert_eq!(digest_of(data.path()), before, "a rejected import wrote");

    let errors = std::fs::read_to_string(files.path().join("grn.errors.csv")).unwrap();
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(
        lines[0],
        "grnId,referenceCode,sku,serial,errorRow,errorCode,errorDetail"
    );
    let rows: Vec<(String, String, String)> = lines[1..]
        .iter()
        .map(|l| {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(l.as_bytes());
            let record = reader.records().next().unwrap().unwrap();
            (
                record[3].to_string(),
                record[4].to_string(),
                record[5].to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("OLD-1".into(), "3".into(), "ALREADY_INWARDED".into()),
            (" SN 7 ".into(), "4".into(), "INVALID_SERIAL".into()),
            ("TWICE".into(), "5".into(), "DUPLICATE_IN_REQUEST".into()),
            ("TWICE".into(), "6".into(), "DUPLICATE_IN_REQUEST".into()),
            ("NEW-2".into(), "7".into(), "UNKNOWN_SKU".into()),
        ]
    );

    // Fixed and uploaded again, the error file itself imports (its own error columns are
    // ignored).
    let fixed = errors
        .replace("OLD-1", "NEW-3")
        .replace(" SN 7 ", "SN-7")
        .replacen("TWICE", "ONCE", 1)
        .replace("NOPE", "S2");
    let fixed = write(files.path(), "fixed.csv", fixed.as_bytes());
    let out = import_grn(data.path(), &fixed, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        unit(data.path(), "SN-7").map(|u| u.0),
        Some(SerialState::Inwarded)
    );
}

#[test]
fn bad_sheets_name_the_file_row_and_column_and_write_nothing() {
    let data = store(UsnType::SellerAtGrn);
    let before = digest_of(data.path());
    let files = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &[&str]); 9] = [
        // Latin-1 bytes in a serial: named as the cell's fault, not lost.
        (
            "latin1.csv",
            b"sku,serial\nS1,SN\xE9\n",
            &["row 2, column serial", "UTF-8"],
        ),
        // Quantities adding up past u64 must not wrap to a small number.
        (
            "overflow.csv",
            b"sku,quantity\nP1,18446744073709551615\nP1,2\n",
            &["LIMIT"],
        ),
        (
            "misspelled.csv",
            b"sku,serail\nS1,A\n",
            &["\"serial\"", "\"serail\""],
        ),
        ("no-unit-column.csv", b"sku,bin\nS1,A\n", &["\"serial\""]),
        ("empty.csv", b"", &["empty"]),
        ("header-only.csv", b"sku,serial\r\n", &["no data rows"]),
        (
            "mixed-po.csv",
            b"referenceCode,sku,serial\nPO-1,S1,A\nPO-2,S1,B\n",
            &["row 3, column referenceCode", "WRONG_PO"],
        ),
        (
            "bad-condition.csv",
            b"sku,serial,condition\nS1,A,good\nS1,B,broken\n",
            &["row 3, column condition", "\"broken\""],
        ),
        (
            "bad-quantity.csv",
            b"sku,quantity\nP1,2\nP1,-1\nP1,1.5\n",
            &["row 3, column quantity", "row 4, column quantity"],
        ),
    ];
    for (name, bytes, needles) in cases {
        let path = write(files.path(), name, bytes);
        let out = import_grn(data.path(), &path, &["--grn", "G-1", "--po", "PO-1"]);
        assert!(!out.status.success(), "{name} was accepted");
        let err = stderr(&out);
        assert!(
            err.contains(name),
            "{name}: the message names no file: {err}"
        );
        for needle in needles {
            assert!(err.contains(needle), "{name}: {needle:?} missing in {err}");
        }
    }
    assert_eq!(digest_of(data.path()), before);
    let errors = std::fs::read_to_string(files.path().join("bad-quantity.errors.csv")).unwrap();
    assert_eq!(errors.lines().count(), 3, "{errors}");
}

#[test]
fn one_bad_row_at_the_end_of_a_large_file_rejects_it_all() {
    let data = store(UsnType::SellerAtGrn);
    {
        // Room for every row on one line.
        let engine = util::open(data.path(), WritePath::Wal);
        util::po(&engine, "BIG", &[("S1", 500_000)]);
    }
    let before = digest_of(data.path());
    let files = tempfile::tempdir().unwrap();
    // Over 8 MiB, so the file is read in parallel parts; the bad row sends it back to a
    // whole-file read that numbers it exactly.
    let rows = 450_000;
    let mut text = String::from("sku,serial,condition\n");
    for i in 0..rows {
        text.push_str(&format!("S1,BULK-{i:08},good\n"));
    }
    text.push_str("S1,BULK-LAST,brand-new\n");
    let csv = write(files.path(), "big.csv", text.as_bytes());
    let out = import_grn(data.path(), &csv, &["--grn", "G-BIG", "--po", "BIG"]);
    assert!(!out.status.success());
    let bad_row = rows + 2;
    assert!(
        stderr(&out).contains(&format!("big.csv: row {bad_row}, column condition")),
        "{}",
        stderr(&out)
    );
    assert_eq!(digest_of(data.path()), before);
    let errors = std::fs::read_to_string(files.path().join("big.errors.csv")).unwrap();
    assert_eq!(errors.lines().count(), 2);
    assert!(errors.contains(&format!("BULK-LAST,brand-new,{bad_row},INVALID_CELL")));

    // Without the bad row, all of it goes in as one GRN.
    text.truncate(text.len() - "S1,BULK-LAST,brand-new\n".len());
    std::fs::write(&csv, text).unwrap();
    let out = import_grn(data.path(), &csv, &["--grn", "G-BIG", "--po", "BIG"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let engine = util::open(data.path(), WritePath::Wal);
    assert_eq!(
        util::line_counts(&engine, "BIG"),
        vec![(500_000, 0, rows as u64)]
    );
}

#[test]
fn xlsx_and_ods_sheets_import() {
    let data = store(UsnType::SellerAtGrn);
    let files = tempfile::tempdir().unwrap();
    let xlsx = files.path().join("grn.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("Receipt").unwrap();
    for (c, h) in ["Sku", "Serial", "Bin", "Extra"].iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    // A numeric serial typed into a spreadsheet is a float cell: it must read "123456".
    sheet.write_string(1, 0, "S1").unwrap();
    sheet.write_number(1, 1, 123456.0).unwrap();
    sheet.write_string(1, 2, "X-9").unwrap();
    sheet.write_string(2, 0, "S1").unwrap();
    sheet.write_string(2, 1, "XL-2").unwrap();
    book.save(&xlsx).unwrap();
    let out = import_grn(
        data.path(),
        &xlsx,
        &["--grn", "G-X", "--po", "PO-1", "--sheet", "Receipt"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        unit(data.path(), "123456"),
        Some((
            SerialState::Inwarded,
            Condition::Good,
            Some("X-9".into()),
            None
        ))
    );

    let ods = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/grn.ods");
    let out = import_grn(data.path(), &ods, &["--grn", "G-O", "--po", "PO-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        unit(data.path(), "ODS-3"),
        Some((
            SerialState::Inwarded,
            Condition::Bad,
            None,
            Some("DAMAGED".into())
        ))
    );
    assert_eq!(
        unit(data.path(), "ODS-1").map(|u| u.2),
        Some(Some("A-01".into()))
    );

    let missing = import_grn(
        data.path(),
        &xlsx,
        &["--grn", "G-Y", "--po", "PO-1", "--sheet", "Nope"],
    );
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("\"Nope\""),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn po_import_creates_every_po_or_none() {
    let data = store(UsnType::SellerOnPo);
    let before = digest_of(data.path());
    let files = tempfile::tempdir().unwrap();
    let csv = write(
        files.path(),
        "pos.csv",
        b"ReferenceCode,VendorId,LineItemNumber,SKU,Quantity,Serial\n\
          PO-A,V1,1,S1,2,A-1\n\
          PO-A,V1,1,S1,2,A-2\n\
          PO-A,V1,2,P1,5,\n\
          PO-B,V2,1,S2,1,A-2\n",
    );
    let args = [
        "import",
        "po",
        ACCOUNT,
        "--data",
        data.path().to_str().unwrap(),
    ];
    let out = serialgate(&args, &[&csv]);
    assert!(!out.status.success());
    assert_eq!(digest_of(data.path()), before, "a rejected PO import wrote");
    let errors = std::fs::read_to_string(files.path().join("pos.errors.csv")).unwrap();
    assert!(
        errors.contains("PO-B,V2,1,S2,1,A-2,5,DUPLICATE_IN_REQUEST"),
        "{errors}"
    );

    // A disagreeing line is the row's fault, found before the engine is asked.
    let disagree = write(
        files.path(),
        "disagree.csv",
        b"referenceCode,lineItemNumber,sku,quantity,serial\nPO-C,1,S1,2,C-1\nPO-C,1,S1,3,C-2\n",
    );
    let out = serialgate(&args, &[&disagree]);
    assert!(
        stderr(&out).contains("row 3, column quantity"),
        "{}",
        stderr(&out)
    );

    let fixed = std::fs::read_to_string(&csv)
        .unwrap()
        .replace("S2,1,A-2", "S2,1,B-1");
    std::fs::write(&csv, fixed).unwrap();
    let check = serialgate(&[&args[..], &["--check"]].concat(), &[&csv]);
    assert!(check.status.success(), "{}", stderr(&check));
    assert_eq!(digest_of(data.path()), before, "--check wrote");
    let out = serialgate(&args, &[&csv]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 POs created (3 lines, 3 serials expected)"));
    assert_eq!(
        unit(data.path(), "A-2").map(|u| u.0),
        Some(SerialState::Expected)
    );
    let engine = util::open(data.path(), WritePath::Wal);
    assert_eq!(
        util::line_counts(&engine, "PO-A"),
        vec![(2, 2, 0), (5, 0, 0)]
    );
    drop(engine);

    // The expected serials then arrive by a GRN sheet.
    let grn = write(files.path(), "grn.csv", b"serial,sku\nA-1,S1\nA-2,S1\n");
    let out = import_grn(data.path(), &grn, &["--grn", "G-A", "--po", "PO-A"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        unit(data.path(), "A-1").map(|u| u.0),
        Some(SerialState::Inwarded)
    );

    // Importing the file again: its POs exist, so every row of them is reported.
    let out = serialgate(&args, &[&csv]);
    assert!(!out.status.success());
    let errors = std::fs::read_to_string(files.path().join("pos.errors.csv")).unwrap();
    assert_eq!(errors.matches("PO_EXISTS").count(), 3, "{errors}");
}

#[test]
fn imports_go_through_a_running_server() {
    let data = store(UsnType::SellerAtGrn);
    let server = Server::start(data.path(), &[]);
    let addr = server.addr.to_string();
    let files = tempfile::tempdir().unwrap();
    let csv = write(
        files.path(),
        "grn.csv",
        b"sku,serial\nS1,R-1\nS1,R-2\nS2,R-3\n",
    );
    let remote = |file: &Path, extra: &[&str]| {
        let mut args = vec![
            "import",
            "grn",
            ACCOUNT,
            "--server",
            addr.as_str(),
            "--po",
            "PO-1",
        ];
        args.extend_from_slice(extra);
        serialgate(&args, &[file])
    };
    let check = remote(&csv, &["--grn", "G-R", "--check"]);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(stdout(&check).contains("check passed: 3 units"));
    let out = remote(&csv, &["--grn", "G-R"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reply = crate::server::redis_cli(&server.port(), &["PO.GET", ACCOUNT, "PO-1"]);
    assert!(reply.contains("\"received\":2"), "{reply}");

    let dup = write(files.path(), "dup.csv", b"sku,serial\nS1,R-9\nS1,R-1\n");
    let out = remote(&dup, &["--grn", "G-R2"]);
    assert!(!out.status.success());
    let errors = std::fs::read_to_string(files.path().join("dup.errors.csv")).unwrap();
    assert!(errors.contains("S1,R-1,3,ALREADY_INWARDED"), "{errors}");

    // A request-level refusal is named and nothing is left half done.
    let out = serialgate(
        &[
            "import",
            "grn",
            ACCOUNT,
            "--server",
            &addr,
            "--po",
            "NO-SUCH-PO",
            "--grn",
            "G-Z",
        ],
        &[&csv],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("UNKNOWN_PO"), "{}", stderr(&out));
}

#[test]
fn po_import_over_the_protocol_checks_limits_and_bad_bodies() {
    let data = store(UsnType::SellerOnPo);
    let server = Server::start(data.path(), &[]);
    let port = server.port();
    let cli = |args: &[&str]| crate::server::redis_cli(&port, args);
    let one = r#"[{"referenceCode":"W-1","items":[{"lineItemNumber":"1","sku":"S1","quantity":"1","serials":["W-S1"]}]}]"#;
    assert!(cli(&["PO.IMPORT", ACCOUNT, "CHECK", one]).contains("\"status\":\"valid\""));
    assert!(cli(&["PO.GET", ACCOUNT, "W-1"]).contains("UNKNOWN_PO"));
    assert!(cli(&["PO.IMPORT", ACCOUNT, one]).contains("\"status\":\"created\""));
    assert!(cli(&["PO.IMPORT", ACCOUNT, one]).contains("PO_EXISTS"));
    assert!(cli(&["PO.IMPORT", ACCOUNT, "[{"]).starts_with("BADJSON"));
    assert!(cli(&["PO.IMPORT", ACCOUNT, "[]"]).starts_with("ERR"));
    assert!(cli(&["PO.IMPORT", ACCOUNT, "NOW", one]).starts_with("ERR"));
    let update = r#"[{"referenceCode":"W-2","createOrUpdate":"U","items":[{"lineItemNumber":"1","sku":"S1","quantity":1,"serials":["W-S2"]}]}]"#;
    assert!(cli(&["PO.IMPORT", ACCOUNT, update]).contains("only inserts"));

    // One PO past the limit is refused before anything is looked at.
    let mut con = redis::Client::open(format!("redis://{}/", server.addr))
        .unwrap()
        .get_connection()
        .unwrap();
    let pos: Vec<serde_json::Value> = (0..=serialgate::engine::PO_IMPORT_POS_MAX)
        .map(|i| serde_json::json!({"referenceCode": format!("L-{i}"), "items": []}))
        .collect();
    let err = redis::cmd("PO.IMPORT")
        .arg(ACCOUNT)
        .arg(serde_json::to_vec(&pos).unwrap())
        .query::<String>(&mut con)
        .unwrap_err();
    assert_eq!(err.code(), Some("LIMIT"), "{err}");

    // Through the importer, on the same server.
    let files = tempfile::tempdir().unwrap();
    let csv = write(
        files.path(),
        "pos.csv",
        b"referenceCode,lineItemNumber,sku,quantity,serial\nW-3,1,S2,1,W-S3\n",
    );
    let out = serialgate(
        &[
            "import",
            "po",
            ACCOUNT,
            "--server",
            &server.addr.to_string(),
        ],
        &[&csv],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cli(&["SERIAL.GET", ACCOUNT, "W-S3"]).contains("\"state\":\"expected\""));
}
