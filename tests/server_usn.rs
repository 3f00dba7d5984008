//! The five USN workflows, outward/return and the PO report over the wire: the real server
//! binary, driven with raw RESP and redis-cli.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::server::{redis_cli, Raw, Server};

fn json(reply: &str) -> Value {
    serde_json::from_str(reply).unwrap_or_else(|e| panic!("not JSON ({e}): {reply}"))
}

fn cmd(raw: &mut Raw, args: &[&str]) -> String {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    raw.command(&args)
}

fn setup(raw: &mut Raw, account: &str, options: &[&str]) {
    let mut args = vec!["ACCOUNT.CREATE", account];
    args.extend_from_slice(options);
    assert!(cmd(raw, &args).contains("\"created\""));
    assert_eq!(
        cmd(raw, &["SKU.SET", account, "SERIALIZED", "SODA01"]),
        ":1"
    );
    assert_eq!(cmd(raw, &["SKU.SET", account, "PLAIN", "PLAIN1"]), ":1");
}

fn serials_of(reply: &Value) -> Vec<String> {
    reply["serials"]
        .as_array()
        .unwrap_or_else(|| panic!("no serials in {reply}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn quoted(serials: &[String]) -> String {
    serials
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(",")
}

const PLAIN_PO: &str = r#"{"referenceCode":"PO-1","vendorId":"V",
  "items":[{"lineItemNumber":"1","sku":"SODA01","quantity":"3"},
           {"lineItemNumber":"2","sku":"PLAIN1","quantity":2}]}"#;

#[test]
fn type1_seller_serials_on_the_po() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut raw = Raw::connect(server.addr);
    setup(&mut raw, "t1", &["USN", "1"]);
    // The contract's payload, verbatim.
    let po = r#"{"vendorId":"VENDORE123","referenceCode":"TestPo22232","createOrUpdate":"I","isCancel":0,
 "items":[{"lineItemNumber":"12","sku":"SODA01","quantity":"3","unitPrice":5,
           "serials":["UK07812","UK08912","UK09012"]}]}"#;
    let created = json(&cmd(&mut raw, &["PO.CREATE", "t1", po]));
    assert_eq!(created["status"], "created");
    assert_eq!(created["expected"], 3);
    // A second PO listing a known serial is rejected, every failing serial listed.
    let clash = po
        .replace("TestPo22232", "PO-2")
        .replace("UK08912\",\"UK09012", "UK07812\",\"bad serial");
    let rejected = json(&cmd(&mut raw, &["PO.CREATE", "t1", &clash]));
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    let codes: HashSet<&str> = rejected["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        HashSet::from(["ALREADY_EXISTS", "DUPLICATE_IN_REQUEST", "INVALID_SERIAL"])
    );

    let grn = r#"{"grnId":"GRN-1","referenceCode":"TestPo22232",
      "items":[{"sku":"SODA01","serials":["UK07812","UK08912"],"bin":"A-01"}]}"#;
    assert_eq!(
        json(&cmd(&mut raw, &["GRN.CHECK", "t1", grn]))["status"],
        "valid"
    );
    assert_eq!(
        json(&cmd(&mut raw, &["GRN.COMMIT", "t1", grn]))["status"],
        "committed"
    );
    let replay = json(&cmd(&mut raw, &["GRN.COMMIT", "t1", grn]));
    assert_eq!(replay["replayed"], true);
    let stranger = grn.replace("GRN-1", "GRN-2").replace("UK08912", "NOPE1");
    let rejected = json(&cmd(&mut raw, &["GRN.COMMIT", "t1", &stranger]));
    assert_eq!(rejected["errors"][0]["code"], "ALREADY_INWARDED");
    assert_eq!(rejected["errors"][1]["code"], "NOT_EXPECTED");
    let auto = r#"{"grnId":"GRN-A","referenceCode":"TestPo22232"}"#;
    assert_eq!(
        json(&cmd(&mut raw, &["GRN.AUTO", "t1", auto]))["errors"][0]["code"],
        "AUTO_GRN_NOT_SUPPORTED"
    );
    let po_view = json(&cmd(&mut raw, &["PO.GET", "t1", "TestPo22232"]));
    assert_eq!(po_view["lines"][0]["generated"], 3);
    assert_eq!(po_view["lines"][0]["received"], 2);
    let serial = json(&cmd(&mut raw, &["SERIAL.GET", "t1", "UK07812"]));
    assert_eq!(serial["history"][0]["event"], "expected");
    assert_eq!(serial["history"][1]["event"], "inwarded");
    assert_eq!(serial["history"][1]["grn"], "GRN-1");

    // The report, through redis-cli.
    let report = redis_cli(&server.port(), &["PO.REPORT", "t1", "TestPo22232"]);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines[0],
        "serial,sku,lineItemNumber,state,grn,condition,bin,qcReason,updatedAt"
    );
    assert!(lines[1].starts_with("UK07812,SODA01,12,inwarded,GRN-1,good,A-01,,"));
    assert!(lines[3].starts_with("UK09012,SODA01,12,expected,,good,,,"));

    // Cancel: the unreceived serial is freed.
    let cancel = r#"{"referenceCode":"TestPo22232","isCancel":"1"}"#;
    let cancelled = json(&cmd(&mut raw, &["PO.CREATE", "t1", cancel]));
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["cancelled"], 1);
    assert!(cmd(
        &mut raw,
        &["GRN.COMMIT", "t1", &grn.replace("GRN-1", "GRN-9")]
    )
    .starts_with("-PO_CANCELLED"));
}

#[test]
fn type3_generated_for_the_po_and_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut raw = Raw::connect(server.addr);
    setup(
        &mut raw,
        "t3",
        &[
            "USN",
            "3",
            "TOLERANCE_PCT",
            "10",
            "TOLERANCE_QTY",
            "1",
            "PREFIX",
            "T3-",
        ],
    );
    assert_eq!(
        json(&cmd(&mut raw, &["PO.CREATE", "t3", PLAIN_PO]))["status"],
        "created"
    );
    // ordered 3, allowance max(ceil(0.3), 1) = 1: 4 serials may be generated.
    let port = server.port();
    let generated = json(&redis_cli(
        &port,
        &[
            "SERIALS.GENERATE",
            "t3",
            "PO",
            "PO-1",
            "SKU",
            "SODA01",
            "COUNT",
            "4",
        ],
    ));
    let serials = serials_of(&generated);
    assert_eq!(serials.len(), 4);
    assert!(serials.iter().all(|s| s.starts_with("T3-")));
    assert!(cmd(
        &mut raw,
        &[
            "SERIALS.GENERATE",
            "t3",
            "PO",
            "PO-1",
            "SKU",
            "SODA01",
            "COUNT",
            "1"
        ]
    )
    .starts_with("-QUANTITY_EXCEEDED"));
    assert!(cmd(
        &mut raw,
        &[
            "SERIALS.GENERATE",
            "t3",
            "PO",
            "PO-1",
            "SKU",
            "PLAIN1",
            "COUNT",
            "1"
        ]
    )
    .starts_with("-SKU_NOT_SERIALIZED"));
    assert!(cmd(&mut raw, &["SERIALS.GENERATE", "t3", "COUNT", "1"]).starts_with("-ERR"));
    assert!(cmd(
        &mut raw,
        &[
            "SERIALS.GENERATE",
            "t3",
            "PO",
            "PO-1",
            "SKU",
            "SODA01",
            "COUNT",
            "x"
        ]
    )
    .starts_with("-ERR"));
    // Scanned without a SKU, all four (one within tolerance) plus the plain line.
    let grn = format!(
        r#"{{"grnId":"G1","referenceCode":"PO-1","items":[{{"serials":[{}]}},{{"sku":"PLAIN1","quantity":2}}]}}"#,
        quoted(&serials)
    );
    let committed = json(&cmd(&mut raw, &["GRN.COMMIT", "t3", &grn]));
    assert_eq!(committed["status"], "committed", "{committed}");
    assert_eq!(committed["units"], 6);
    let serial = json(&cmd(&mut raw, &["SERIAL.GET", "t3", &serials[0]]));
    assert_eq!(serial["sku"], "SODA01");
    assert_eq!(serial["referenceCode"], "PO-1");
    let unknown =
        r#"{"grnId":"G2","referenceCode":"PO-1","items":[{"serials":["T3-999999999999"]}]}"#;
    assert_eq!(
        json(&cmd(&mut raw, &["GRN.COMMIT", "t3", unknown]))["errors"][0]["code"],
        "NOT_GENERATED"
    );
}

#[test]
fn type4_serials_generated_by_the_grn() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut raw = Raw::connect(server.addr);
    setup(
        &mut raw,
        "t4",
        &["USN", "4", "CHECK", "gs1", "SEQUENCE", "random"],
    );
    cmd(&mut raw, &["PO.CREATE", "t4", PLAIN_PO]);
    let grn = r#"{"grnId":"G1","referenceCode":"PO-1","items":[{"sku":"SODA01","quantity":"2"}]}"#;
    let first = json(&cmd(&mut raw, &["GRN.COMMIT", "t4", grn]));
    let serials = serials_of(&first);
    assert_eq!(serials.len(), 2);
    // A retry answers the same serials.
    let replay = json(&cmd(&mut raw, &["GRN.COMMIT", "t4", grn]));
    assert_eq!(replay["replayed"], true);
    assert_eq!(serials_of(&replay), serials);
    let given =
        r#"{"grnId":"G2","referenceCode":"PO-1","items":[{"sku":"SODA01","serials":["MINE"]}]}"#;
    assert_eq!(
        json(&cmd(&mut raw, &["GRN.COMMIT", "t4", given]))["errors"][0]["code"],
        "SERIALS_NOT_ALLOWED"
    );
    let auto = json(&cmd(
        &mut raw,
        &["GRN.AUTO", "t4", r#"{"grnId":"GA","referenceCode":"PO-1"}"#],
    ));
    assert_eq!(auto["units"], 3, "{auto}");
    let rest = serials_of(&auto);
    assert_eq!(rest.len(), 1);
    assert!(!serials.contains(&rest[0]));
    let po_view = json(&cmd(&mut raw, &["PO.GET", "t4", "PO-1"]));
    assert_eq!(po_view["lines"][0]["received"], 3);
    assert_eq!(po_view["lines"][1]["received"], 2);
}

#[test]
fn type5_pool_then_outward_and_return() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut raw = Raw::connect(server.addr);
    setup(&mut raw, "t5", &["USN", "5", "PREFIX", "P5-"]);
    let pool = serials_of(&json(&cmd(
        &mut raw,
        &["SERIALS.GENERATE", "t5", "COUNT", "3"],
    )));
    let bound = serials_of(&json(&cmd(
        &mut raw,
        &["SERIALS.GENERATE", "t5", "COUNT", "1", "SKU", "SODA01"],
    )));
    cmd(&mut raw, &["PO.CREATE", "t5", PLAIN_PO]);
    assert_eq!(
        json(&cmd(
            &mut raw,
            &["GRN.AUTO", "t5", r#"{"grnId":"GA","referenceCode":"PO-1"}"#]
        ))["errors"][0]["code"],
        "AUTO_GRN_NOT_SUPPORTED"
    );
    let grn = format!(
        r#"{{"grnId":"G1","referenceCode":"PO-1","items":[{{"sku":"SODA01","serials":[{},{}]}},{{"sku":"SODA01","serials":["{}"],"condition":"bad","qcReason":"TORN"}}]}}"#,
        quoted(&pool[..1]),
        quoted(&bound),
        pool[1]
    );
    assert_eq!(
        json(&cmd(&mut raw, &["GRN.COMMIT", "t5", &grn]))["status"],
        "committed"
    );

    // Outward the good units; the bad one is refused, atomically.
    let out = format!(
        r#"{{"order":"SO-1","serials":[{},{}]}}"#,
        quoted(&pool[..2]),
        quoted(&bound)
    );
    let refused = json(&cmd(&mut raw, &["OUTWARD", "t5", &out]));
    assert_eq!(refused["status"], "rejected");
    assert_eq!(refused["errors"][0]["code"], "BAD_INVENTORY");
    assert_eq!(
        json(&cmd(&mut raw, &["SERIAL.GET", "t5", &pool[0]]))["state"],
        "inwarded"
    );
    let out = format!(
        r#"{{"order":"SO-1","serials":[{},{}]}}"#,
        quoted(&pool[..1]),
        quoted(&bound)
    );
    let done = json(&cmd(&mut raw, &["OUTWARD", "t5", &out]));
    assert_eq!(done["status"], "outward");
    assert_eq!(done["units"], 2);
    assert_eq!(
        json(&cmd(&mut raw, &["OUTWARD", "t5", &out]))["replayed"],
        true
    );
    let back = format!(
        r#"{{"order":"SO-1","serials":[{}],"condition":"bad","qcReason":"OPENED"}}"#,
        quoted(&pool[..1])
    );
    assert_eq!(
        json(&cmd(&mut raw, &["RETURN", "t5", &back]))["status"],
        "returned"
    );
    let wrong = format!(r#"{{"order":"SO-2","serials":[{}]}}"#, quoted(&bound));
    assert_eq!(
        json(&cmd(&mut raw, &["RETURN", "t5", &wrong]))["errors"][0]["code"],
        "NOT_ON_ORDER"
    );
    let record = json(&cmd(&mut raw, &["SERIAL.GET", "t5", &pool[0]]));
    let events: Vec<&str> = record["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, vec!["generated", "inwarded", "outward", "returned"]);
    assert_eq!(record["condition"], "bad");
    assert!(cmd(&mut raw, &["OUTWARD", "t5", "{\"order\":1}"]).starts_with("-BADJSON"));
    assert!(cmd(&mut raw, &["RETURN", "nobody", &back]).starts_with("-UNKNOWN_ACCOUNT"));
}

#[test]
fn generated_serials_are_never_reissued_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let mut raw = Raw::connect(server.addr);
    setup(&mut raw, "t5", &["USN", "5"]);
    let addr = server.addr;
    let streamer = std::thread::spawn(move || {
        let mut raw = Raw::connect(addr);
        let mut acked: Vec<String> = Vec::new();
        for _ in 0..100_000 {
            let reply = cmd(&mut raw, &["SERIALS.GENERATE", "t5", "COUNT", "5000"]);
            match serde_json::from_str::<Value>(&reply) {
                Ok(value) => acked.extend(serials_of(&value)),
                Err(_) => break, // the server died mid-request
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(1500));
    server.kill9();
    let acked = streamer.join().unwrap();
    assert!(acked.len() >= 5000, "too few batches before the kill");

    let server = Server::start(dir.path(), &[]);
    let mut raw = Raw::connect(server.addr);
    for chunk in acked.chunks(2000) {
        let mut args = vec!["SERIAL.MGET", "t5"];
        args.extend(chunk.iter().map(String::as_str));
        let reply = cmd(&mut raw, &args);
        assert_eq!(
            reply.matches("\"state\":\"generated\"").count(),
            chunk.len(),
            "an acknowledged generated serial was lost"
        );
    }
    let acked: HashSet<String> = acked.into_iter().collect();
    let fresh = serials_of(&json(&cmd(
        &mut raw,
        &["SERIALS.GENERATE", "t5", "COUNT", "20000"],
    )));
    assert!(
        fresh.iter().all(|s| !acked.contains(s)),
        "a serial was issued twice across the crash"
    );

    // The data directory passes the offline check once the server is gone.
    drop(raw);
    drop(server);
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_serialgate"))
        .args(["check", "--data"])
        .arg(dir.path())
        .args(["t5", "nobody"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    // An unknown account is an error, after the known one was reported consistent.
    assert!(stdout.contains("t5: consistent"), "{stdout}");
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("unknown account"));
}

#[test]
fn workflow_limits_one_past_their_edge() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-grn-units", "3"]);
    let mut raw = Raw::connect(server.addr);
    setup(&mut raw, "t5", &["USN", "5"]);
    // SERIALS.GENERATE: 1..=1,000,000 per request.
    assert!(cmd(&mut raw, &["SERIALS.GENERATE", "t5", "COUNT", "1000001"]).starts_with("-LIMIT"));
    assert!(cmd(&mut raw, &["SERIALS.GENERATE", "t5", "COUNT", "0"]).starts_with("-ERR"));
    let pool = serials_of(&json(&cmd(
        &mut raw,
        &["SERIALS.GENERATE", "t5", "COUNT", "4"],
    )));
    // Prefix: 1-32 bytes.
    let long = "P".repeat(33);
    assert!(cmd(
        &mut raw,
        &["ACCOUNT.CREATE", "t5", "USN", "5", "PREFIX", &long]
    )
    .starts_with("-ERR"));
    let at_edge = "P".repeat(32);
    assert!(cmd(
        &mut raw,
        &["ACCOUNT.CREATE", "t5", "USN", "5", "PREFIX", &at_edge]
    )
    .contains("\"updated\""));
    // Units per request (--max-grn-units 3): GRN and OUTWARD alike.
    cmd(&mut raw, &["PO.CREATE", "t5", PLAIN_PO]);
    let grn = |serials: &[String]| {
        format!(
            r#"{{"grnId":"G","referenceCode":"PO-1","items":[{{"sku":"SODA01","serials":[{}]}}]}}"#,
            quoted(serials)
        )
    };
    assert!(cmd(&mut raw, &["GRN.COMMIT", "t5", &grn(&pool)]).starts_with("-LIMIT"));
    assert_eq!(
        json(&cmd(&mut raw, &["GRN.COMMIT", "t5", &grn(&pool[..3])]))["status"],
        "committed"
    );
    let out = format!(r#"{{"order":"SO-1","serials":[{}]}}"#, quoted(&pool));
    assert!(cmd(&mut raw, &["OUTWARD", "t5", &out]).starts_with("-LIMIT"));
}
