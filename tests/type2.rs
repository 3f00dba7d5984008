//! USN type 2 end to end: seller serials given at GRN must be new to the account.

use serialgate::outcome::{GrnReply, OutcomeCode};
use serialgate::serial::SerialList;
use serialgate::{EngineError, GrnMode};

use crate::util::*;

#[test]
fn commit_receives_serials_and_plain_quantities() {
    for path in BOTH_PATHS {
        let (_dir, engine) = type2(path);
        po(&engine, "PO-1", &[("S1", 3), ("P1", 10)]);
        let mut serial_item = item("S1", serials(&["UK07812", "UK08912"]));
        serial_item.bin = Some("A-01".into());
        let mut bad = item("S1", serials(&["UK09012"]));
        bad.condition = Some(serialgate::domain::Condition::Bad);
        bad.qc_reason = Some("DAMAGED".into());
        let payload = grn("GRN-1", "PO-1", vec![serial_item, bad, plain("P1", 4)]);
        let reply = commit(&engine, &payload);
        assert_eq!(
            reply,
            GrnReply::Committed {
                grn_id: "GRN-1".into(),
                units: 7,
                serials: SerialList::new(),
                replayed: false
            },
            "{path:?}"
        );

        let view = engine.serial(ACCOUNT, b"UK07812").unwrap().unwrap();
        assert_eq!(view.sku.as_deref(), Some("S1"));
        assert_eq!(view.reference_code.as_deref(), Some("PO-1"));
        assert_eq!(view.line_item_number.as_deref(), Some("1"));
        assert_eq!(view.grn.as_deref(), Some("GRN-1"));
        assert_eq!(view.bin.as_deref(), Some("A-01"));
        assert_eq!(view.history.len(), 1);
        assert_eq!(view.history[0].event, "inwarded");
        let damaged = engine.serial(ACCOUNT, b"UK09012").unwrap().unwrap();
        assert_eq!(damaged.condition, serialgate::domain::Condition::Bad);
        assert_eq!(damaged.qc_reason.as_deref(), Some("DAMAGED"));
        assert!(engine.serial(ACCOUNT, b"UK00000").unwrap().is_none());
        // Case-sensitive: a lower-case variant is a different, unknown serial.
        assert!(engine.serial(ACCOUNT, b"uk07812").unwrap().is_none());

        let po_view = engine.po_view(ACCOUNT, "PO-1").unwrap();
        assert_eq!(po_view.lines[0].received, 3);
        assert_eq!(po_view.lines[1].received, 4);

        let many = engine
            .serials(ACCOUNT, &[b"UK08912".as_slice(), b"NOPE", b"bad serial"])
            .unwrap();
        assert!(many[0].is_some() && many[1].is_none() && many[2].is_none());
    }
}

#[test]
fn check_validates_and_writes_nothing() {
    let (_dir, engine) = type2(WritePath::Ingest);
    po(&engine, "PO-1", &[("S1", 2)]);
    let payload = grn("GRN-1", "PO-1", vec![item("S1", serials(&["A1", "A2"]))]);
    let reply = engine.receive(ACCOUNT, &payload, GrnMode::Check).unwrap();
    assert_eq!(
        reply,
        GrnReply::Valid {
            grn_id: "GRN-1".into(),
            units: 2
        }
    );
    assert!(engine.serial(ACCOUNT, b"A1").unwrap().is_none());
    assert_eq!(
        engine.po_view(ACCOUNT, "PO-1").unwrap().lines[0].received,
        0
    );
    // The same GRN still commits afterwards.
    assert!(commit(&engine, &payload).is_committed());
    let again = engine.receive(ACCOUNT, &payload, GrnMode::Check).unwrap();
    assert!(matches!(again, GrnReply::Committed { replayed: true, .. }));
}

#[test]
fn auto_grn_receives_everything_outstanding() {
    let (_dir, engine) = type2(WritePath::Ingest);
    po(&engine, "PO-1", &[("S1", 3), ("P1", 5)]);
    // Part of the plain line first.
    assert!(commit(&engine, &grn("GRN-0", "PO-1", vec![plain("P1", 2)])).is_committed());

    let short = grn("GRN-1", "PO-1", vec![item("S1", serials(&["A1", "A2"]))]);
    let reply = engine.receive(ACCOUNT, &short, GrnMode::Auto).unwrap();
    assert_eq!(reply.errors().len(), 1);
    assert_eq!(reply.errors()[0].code, OutcomeCode::SerialsRequired);

    let full = grn(
        "GRN-1",
        "PO-1",
        vec![item("S1", serials(&["A1", "A2", "A3"]))],
    );
    let reply = engine.receive(ACCOUNT, &full, GrnMode::Auto).unwrap();
    assert!(
        matches!(reply, GrnReply::Committed { units: 6, .. }),
        "{reply:?}"
    );
    let view = engine.po_view(ACCOUNT, "PO-1").unwrap();
    assert_eq!((view.lines[0].received, view.lines[1].received), (3, 5));

    // Nothing is left to receive.
    let err = engine
        .receive(ACCOUNT, &grn("GRN-2", "PO-1", vec![]), GrnMode::Auto)
        .unwrap_err();
    assert!(matches!(err, EngineError::BadRequest(_)), "{err}");
}

#[test]
fn over_receipt_is_refused_per_unit() {
    let (_dir, engine) = type2(WritePath::Wal);
    po(&engine, "PO-1", &[("S1", 2), ("P1", 3)]);
    let reply = commit(
        &engine,
        &grn(
            "GRN-1",
            "PO-1",
            vec![item("S1", serials(&["A1", "A2", "A3"])), plain("P1", 4)],
        ),
    );
    let errors = reply.errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].serial.as_deref(), Some("A3"));
    assert_eq!(errors[0].code, OutcomeCode::QuantityExceeded);
    assert_eq!(errors[1].serial, None);
    assert_eq!(errors[1].code, OutcomeCode::QuantityExceeded);
    // Exactly at the ordered quantity is fine.
    assert!(commit(
        &engine,
        &grn(
            "GRN-1",
            "PO-1",
            vec![item("S1", serials(&["A1", "A2"])), plain("P1", 3)]
        )
    )
    .is_committed());
    let one_more = commit(&engine, &grn("GRN-2", "PO-1", vec![plain("P1", 1)]));
    assert_eq!(one_more.errors()[0].code, OutcomeCode::QuantityExceeded);
}

#[test]
fn a_sku_on_two_lines_fills_them_in_order() {
    let (_dir, engine) = type2(WritePath::Ingest);
    po(&engine, "PO-1", &[("S1", 1), ("S2", 1), ("S1", 2)]);
    assert!(commit(
        &engine,
        &grn(
            "GRN-1",
            "PO-1",
            vec![item("S1", serials(&["A1", "A2", "A3"]))]
        )
    )
    .is_committed());
    let line = |s: &str| {
        engine
            .serial(ACCOUNT, s.as_bytes())
            .unwrap()
            .unwrap()
            .line_item_number
            .unwrap()
    };
    assert_eq!(
        (line("A1"), line("A2"), line("A3")),
        ("1".into(), "3".into(), "3".into())
    );
}

#[test]
fn every_failing_unit_is_reported_in_one_pass() {
    let (_dir, engine) = type2(WritePath::Ingest);
    po(&engine, "PO-0", &[("S1", 1)]);
    po(&engine, "PO-1", &[("S1", 3), ("P1", 1)]);
    assert!(commit(
        &engine,
        &grn("GRN-0", "PO-0", vec![item("S1", serials(&["OLD1"]))])
    )
    .is_committed());

    let mut bad_condition = item("S1", serials(&["QC1"]));
    bad_condition.condition = Some(serialgate::domain::Condition::Bad);
    let payload = grn(
        "GRN-1",
        "PO-1",
        vec![
            item("S1", serials(&["OK1", "DUP", "bad serial", "DUP", "OLD1"])),
            bad_condition,
            item("S2", serials(&["WRONGSKU1"])),
            item("NOPE", serials(&["UNKNOWN1"])),
            item("P1", serials(&["PLAIN1"])),
            item("S1", serials(&["OVER1", "OVER2"])),
        ],
    );
    let reply = commit(&engine, &payload);
    let got = codes(&reply);
    use OutcomeCode::*;
    let want = vec![
        ("DUP".to_string(), DuplicateInRequest),
        ("OLD1".to_string(), AlreadyInwarded),
        ("OVER2".to_string(), QuantityExceeded),
        ("PLAIN1".to_string(), SkuNotSerialized),
        ("QC1".to_string(), QcReasonRequired),
        ("UNKNOWN1".to_string(), UnknownSku),
        ("WRONGSKU1".to_string(), WrongSku),
        ("bad serial".to_string(), InvalidSerial),
    ];
    assert_eq!(got, want, "{reply:?}");
    let dup = reply
        .errors()
        .iter()
        .find(|e| e.code == DuplicateInRequest)
        .unwrap();
    assert_eq!(
        dup.detail.as_deref(),
        Some("first given at items[0].serials[1]")
    );
    // Nothing of it was written.
    assert!(engine.serial(ACCOUNT, b"OK1").unwrap().is_none());
    assert_eq!(
        engine.po_view(ACCOUNT, "PO-1").unwrap().lines[0].received,
        0
    );
}

#[test]
fn serial_syntax_edges() {
    let (_dir, engine) = type2(WritePath::Wal);
    po(&engine, "PO-1", &[("S1", 100)]);
    let max = "X".repeat(64);
    let over = "Y".repeat(65);
    let values: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        max.as_bytes().to_vec(),
        over.as_bytes().to_vec(),
        b"HAS SPACE".to_vec(),
        b" LEADING".to_vec(),
        b"TAB\tX".to_vec(),
        b"NUL\0X".to_vec(),
        "CAF\u{c9}".as_bytes().to_vec(),
        b"!~edge~!".to_vec(),
    ];
    let reply = commit(
        &engine,
        &grn("GRN-1", "PO-1", vec![item("S1", serials(&values))]),
    );
    let invalid: Vec<&str> = reply
        .errors()
        .iter()
        .filter(|e| e.code == OutcomeCode::InvalidSerial)
        .map(|e| e.serial.as_deref().unwrap())
        .collect();
    assert_eq!(invalid.len(), 7, "{reply:?}");
    assert!(!invalid.contains(&max.as_str()) && !invalid.contains(&"!~edge~!"));
    assert!(invalid.contains(&over.as_str()) && invalid.contains(&" LEADING"));
    let valid = grn(
        "GRN-1",
        "PO-1",
        vec![item("S1", serials(&[max.as_str(), "!~edge~!"]))],
    );
    assert!(commit(&engine, &valid).is_committed());
    assert!(engine.serial(ACCOUNT, max.as_bytes()).unwrap().is_some());
}

#[test]
fn duplicates_across_grns_and_paths() {
    for path in BOTH_PATHS {
        let (_dir, engine) = type2(path);
        po(&engine, "PO-1", &[("S1", 1000)]);
        let first: Vec<String> = (0..300).map(|i| format!("SER{i:05}")).collect();
        assert!(commit(
            &engine,
            &grn("GRN-1", "PO-1", vec![item("S1", serials(&first))])
        )
        .is_committed());
        let second: Vec<String> = (250..400).map(|i| format!("SER{i:05}")).collect();
        let reply = commit(
            &engine,
            &grn("GRN-2", "PO-1", vec![item("S1", serials(&second))]),
        );
        let dups = codes(&reply);
        assert_eq!(dups.len(), 50, "{path:?}");
        assert!(dups.iter().all(|(_, c)| *c == OutcomeCode::AlreadyInwarded));
        assert_eq!(dups[0].0, "SER00250");
    }
}

#[test]
fn idempotent_replay_and_conflicting_reuse_of_a_grn_id() {
    let (_dir, engine) = type2(WritePath::Ingest);
    po(&engine, "PO-1", &[("S1", 10)]);
    let payload = grn("GRN-1", "PO-1", vec![item("S1", serials(&["A1", "A2"]))]);
    assert!(matches!(
        commit(&engine, &payload),
        GrnReply::Committed {
            replayed: false,
            ..
        }
    ));
    assert_eq!(
        commit(&engine, &payload),
        GrnReply::Committed {
            grn_id: "GRN-1".into(),
            units: 2,
            serials: SerialList::new(),
            replayed: true
        }
    );
    // A retry does not receive twice.
    assert_eq!(
        engine.po_view(ACCOUNT, "PO-1").unwrap().lines[0].received,
        2
    );
    let other = grn("GRN-1", "PO-1", vec![item("S1", serials(&["A3"]))]);
    let err = engine
        .receive(ACCOUNT, &other, GrnMode::Commit)
        .unwrap_err();
    assert_eq!(err.code(), "GRN_EXISTS");
    // A rejected GRN id stays free.
    let rejected = grn("GRN-2", "PO-1", vec![item("S1", serials(&["A1"]))]);
    assert!(!commit(&engine, &rejected).is_committed());
    assert!(commit(
        &engine,
        &grn("GRN-2", "PO-1", vec![item("S1", serials(&["A4"]))])
    )
    .is_committed());
}

#[test]
fn request_level_errors_are_clear() {
    let (_dir, engine) = type2(WritePath::Wal);
    po(&engine, "PO-1", &[("S1", 10)]);
    let payload = grn("GRN-1", "PO-1", vec![item("S1", serials(&["A1"]))]);
    let err = engine
        .receive("nobody", &payload, GrnMode::Commit)
        .unwrap_err();
    assert_eq!(err.code(), "UNKNOWN_ACCOUNT");
    let err = engine
        .receive("bad id!", &payload, GrnMode::Commit)
        .unwrap_err();
    assert_eq!(err.code(), "ERR");
    let err = engine
        .receive(
            ACCOUNT,
            &grn("GRN-1", "PO-404", vec![item("S1", serials(&["A1"]))]),
            GrnMode::Commit,
        )
        .unwrap_err();
    assert_eq!(err.code(), "UNKNOWN_PO");
    let err = engine
        .receive(
            ACCOUNT,
            &grn("", "PO-1", vec![item("S1", serials(&["A1"]))]),
            GrnMode::Commit,
        )
        .unwrap_err();
    assert_eq!(err.code(), "ERR");
}

#[test]
fn grn_unit_limit_is_enforced_one_past_the_edge() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(WritePath::Wal);
    config.grn_units_max = 5;
    let engine = serialgate::Engine::open(dir.path(), config).unwrap();
    setup_type2(&engine);
    po(&engine, "PO-1", &[("S1", 10), ("P1", 10)]);
    let at_limit = grn(
        "G1",
        "PO-1",
        vec![item("S1", serials(&["A1", "A2", "A3"])), plain("P1", 2)],
    );
    assert!(commit(&engine, &at_limit).is_committed());
    let past = grn(
        "G2",
        "PO-1",
        vec![item("S1", serials(&["B1", "B2", "B3"])), plain("P1", 3)],
    );
    let err = engine.receive(ACCOUNT, &past, GrnMode::Commit).unwrap_err();
    assert_eq!(err.code(), "LIMIT");
}

#[test]
fn auto_grn_is_refused_for_types_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), WritePath::Wal);
    engine
        .create_account(
            ACCOUNT,
            serialgate::AccountOptions::new(serialgate::domain::UsnType::SellerOnPo),
        )
        .unwrap();
    let reply = engine
        .receive(ACCOUNT, &grn("G1", "PO-1", vec![]), GrnMode::Auto)
        .unwrap();
    assert_eq!(reply.errors()[0].code, OutcomeCode::AutoGrnNotSupported);
}
