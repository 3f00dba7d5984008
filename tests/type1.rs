//! USN type 1 end to end: seller serials listed on the PO (exactly `quantity` per serialized
//! line), and a GRN serial must be expected on this PO line.

use serialgate::domain::{SkuKind, UsnType};
use serialgate::engine::PoPayload;
use serialgate::outcome::{OutcomeCode, PoReply};
use serialgate::{AccountOptions, EngineError, GrnMode};

use crate::util::*;

fn type1(path: WritePath) -> (tempfile::TempDir, serialgate::Engine) {
    account_of(path, AccountOptions::new(UsnType::SellerOnPo))
}

/// The contract's Create-PO payload, verbatim.
const SEED_PO: &str = r#"{"vendorId":"VENDORE123","referenceCode":"TestPo22232","createOrUpdate":"I","isCancel":0,
 "items":[{"lineItemNumber":"12","sku":"SODA01","quantity":"3","unitPrice":5,
           "serials":["UK07812","UK08912","UK09012"]}]}"#;

#[test]
fn contract_seed_payload_creates_expected_serials_then_receives_them() {
    for path in BOTH_PATHS {
        let (_dir, engine) = type1(path);
        engine
            .set_skus(ACCOUNT, SkuKind::Serialized, &["SODA01".into()])
            .unwrap();
        let payload: PoPayload = serde_json::from_str(SEED_PO).unwrap();
        let reply = engine.create_po(ACCOUNT, payload).unwrap();
        assert_eq!(
            reply,
            PoReply::Created {
                reference_code: "TestPo22232".into(),
                lines: 1,
                expected: 3
            }
        );
        assert_eq!(state_of(&engine, "UK09012").as_deref(), Some("expected"));
        let view = engine.serial(ACCOUNT, b"UK07812").unwrap().unwrap();
        assert_eq!(view.reference_code.as_deref(), Some("TestPo22232"));
        assert_eq!(view.line_item_number.as_deref(), Some("12"));
        assert_eq!(view.sku.as_deref(), Some("SODA01"));
        assert_eq!(line_counts(&engine, "TestPo22232"), vec![(3, 3, 0)]);

        let payload = grn(
            "GRN-1",
            "TestPo22232",
            vec![item("SODA01", serials(&["UK07812", "UK08912"]))],
        );
        assert!(commit(&engine, &payload).is_committed(), "{path:?}");
        assert_eq!(state_of(&engine, "UK07812").as_deref(), Some("inwarded"));
        assert_eq!(history_of(&engine, "UK07812"), vec!["expected", "inwarded"]);
        assert_eq!(line_counts(&engine, "TestPo22232"), vec![(3, 3, 2)]);
        // The last unit; then the line is full and nothing more is expected.
        let last = grn(
            "GRN-2",
            "TestPo22232",
            vec![item("SODA01", serials(&["UK09012"]))],
        );
        assert!(commit(&engine, &last).is_committed());
        let again = grn(
            "GRN-3",
            "TestPo22232",
            vec![item("SODA01", serials(&["UK09012"]))],
        );
        assert_eq!(
            codes(&commit(&engine, &again)),
            vec![("UK09012".into(), OutcomeCode::AlreadyInwarded)]
        );
    }
}

#[test]
fn po_creation_reports_every_failing_serial_and_writes_nothing() {
    let (_dir, engine) = type1(WritePath::Ingest);
    let first = po_payload("PO-1", &[("1", "S1", 2, Some(&["A1", "A2"]))]);
    assert!(matches!(
        engine.create_po(ACCOUNT, first).unwrap(),
        PoReply::Created { expected: 2, .. }
    ));
    let received = grn("GRN-1", "PO-1", vec![item("S1", serials(&["A1"]))]);
    assert!(commit(&engine, &received).is_committed());

    let before = digest(&engine);
    let bad = po_payload(
        "PO-2",
        &[
            // A1 was received, A2 is expected elsewhere, B1 is repeated, one is malformed.
            ("1", "S1", 5, Some(&["A1", "A2", "B1", "B1", "bad serial"])),
            // Too few serials for the quantity.
            ("2", "S2", 3, Some(&["C1"])),
            // Too many.
            ("3", "S1", 1, Some(&["D1", "D2"])),
            // A plain SKU takes no serials.
            ("4", "P1", 1, Some(&["E1"])),
            ("5", "NOPE", 1, None),
        ],
    );
    let reply = engine.create_po(ACCOUNT, bad).unwrap();
    use OutcomeCode::*;
    assert_eq!(
        po_codes(&reply),
        vec![
            ("".into(), SerialsRequired),
            ("".into(), UnknownSku),
            ("A1".into(), AlreadyInwarded),
            ("A2".into(), AlreadyExists),
            ("B1".into(), DuplicateInRequest),
            ("D2".into(), QuantityExceeded),
            ("E1".into(), SkuNotSerialized),
            ("bad serial".into(), InvalidSerial),
        ],
        "{reply:?}"
    );
    assert_eq!(digest(&engine), before, "a rejected PO wrote something");
    assert!(matches!(
        engine.po_view(ACCOUNT, "PO-2"),
        Err(EngineError::UnknownPo(_))
    ));
}

#[test]
fn grn_serial_must_be_expected_on_this_po_line() {
    for path in BOTH_PATHS {
        let (_dir, engine) = type1(path);
        for (reference, lines) in [
            (
                "PO-1",
                vec![
                    ("1", "S1", 2, Some(&["A1", "A2"][..])),
                    ("2", "S2", 1, Some(&["B1"][..])),
                    ("3", "P1", 4, None),
                ],
            ),
            ("PO-2", vec![("1", "S1", 1, Some(&["OTHER1"][..]))]),
        ] {
            let reply = engine
                .create_po(ACCOUNT, po_payload(reference, &lines))
                .unwrap();
            assert!(matches!(reply, PoReply::Created { .. }), "{reply:?}");
        }
        let before = digest(&engine);
        let payload = grn(
            "GRN-1",
            "PO-1",
            vec![
                item("S1", serials(&["A1", "NEVER", "OTHER1"])),
                // B1 is expected on this PO, but for S2.
                item("S1", serials(&["B1"])),
            ],
        );
        use OutcomeCode::*;
        assert_eq!(
            codes(&commit(&engine, &payload)),
            vec![
                ("B1".into(), WrongSku),
                ("NEVER".into(), NotExpected),
                ("OTHER1".into(), WrongPo),
            ]
        );
        assert_eq!(digest(&engine), before);

        let good = grn(
            "GRN-1",
            "PO-1",
            vec![
                item("S1", serials(&["A2", "A1"])),
                item("S2", serials(&["B1"])),
                plain("P1", 4),
            ],
        );
        assert!(commit(&engine, &good).is_committed());
        assert_eq!(
            line_counts(&engine, "PO-1"),
            vec![(2, 2, 2), (1, 1, 1), (4, 0, 4)]
        );
        let auto = engine
            .receive(ACCOUNT, &grn("GRN-A", "PO-2", vec![]), GrnMode::Auto)
            .unwrap();
        assert_eq!(auto.errors()[0].code, AutoGrnNotSupported);
    }
}

#[test]
fn cancel_frees_unreceived_serials_for_reuse() {
    let (_dir, engine) = type1(WritePath::Ingest);
    let po1 = po_payload("PO-1", &[("1", "S1", 3, Some(&["A1", "A2", "A3"]))]);
    engine.create_po(ACCOUNT, po1).unwrap();
    assert!(commit(
        &engine,
        &grn("G1", "PO-1", vec![item("S1", serials(&["A1"]))])
    )
    .is_committed());

    let mut cancel = po_payload("PO-1", &[]);
    cancel.is_cancel = Some(1);
    assert_eq!(
        engine.create_po(ACCOUNT, cancel.clone()).unwrap(),
        PoReply::Cancelled {
            reference_code: "PO-1".into(),
            cancelled: 2
        }
    );
    // Cancelling again is a safe retry.
    assert!(matches!(
        engine.create_po(ACCOUNT, cancel).unwrap(),
        PoReply::Cancelled { cancelled: 0, .. }
    ));
    assert_eq!(state_of(&engine, "A1").as_deref(), Some("inwarded"));
    assert_eq!(state_of(&engine, "A2").as_deref(), Some("cancelled"));
    assert!(matches!(
        engine.receive(
            ACCOUNT,
            &grn("G2", "PO-1", vec![item("S1", serials(&["A2"]))]),
            GrnMode::Commit
        ),
        Err(EngineError::PoCancelled(_))
    ));
    // The cancelled values may be listed again; the received one may not.
    let po2 = po_payload("PO-2", &[("1", "S1", 2, Some(&["A2", "A1"]))]);
    assert_eq!(
        po_codes(&engine.create_po(ACCOUNT, po2).unwrap()),
        vec![("A1".into(), OutcomeCode::AlreadyInwarded)]
    );
    let po2 = po_payload("PO-2", &[("1", "S1", 2, Some(&["A2", "A3"]))]);
    assert!(matches!(
        engine.create_po(ACCOUNT, po2).unwrap(),
        PoReply::Created { expected: 2, .. }
    ));
    assert_eq!(
        history_of(&engine, "A2"),
        vec!["expected", "cancelled", "expected"]
    );
    let view = engine.serial(ACCOUNT, b"A2").unwrap().unwrap();
    assert_eq!(view.reference_code.as_deref(), Some("PO-2"));
}

#[test]
fn update_changes_only_unreceived_lines() {
    let (_dir, engine) = type1(WritePath::Wal);
    let original = po_payload(
        "PO-1",
        &[
            ("1", "S1", 2, Some(&["A1", "A2"])),
            ("2", "S2", 2, Some(&["B1", "B2"])),
            ("3", "S1", 1, Some(&["C1"])),
        ],
    );
    engine.create_po(ACCOUNT, original).unwrap();
    assert!(commit(
        &engine,
        &grn("G1", "PO-1", vec![item("S1", serials(&["A1"]))])
    )
    .is_committed());

    let update = |lines: &[Line<'_>]| {
        let mut payload = po_payload("PO-1", lines);
        payload.create_or_update = "U".into();
        engine.create_po(ACCOUNT, payload)
    };
    // Line 1 has a received unit: it cannot change, and cannot go away.
    let before = digest(&engine);
    assert!(matches!(
        update(&[
            ("1", "S1", 3, Some(&["A1", "A2", "A9"])),
            ("2", "S2", 2, None),
            ("3", "S1", 1, None)
        ]),
        Err(EngineError::LineReceived(_))
    ));
    assert!(matches!(
        update(&[("2", "S2", 2, None)]),
        Err(EngineError::LineReceived(_))
    ));
    // A changed line's serials are validated like at creation.
    let reply = update(&[
        ("1", "S1", 2, None),
        ("2", "S2", 2, Some(&["B1", "A2"])),
        ("3", "S1", 1, None),
    ])
    .unwrap();
    assert_eq!(
        po_codes(&reply),
        vec![("A2".into(), OutcomeCode::AlreadyExists)]
    );
    assert_eq!(digest(&engine), before);

    // Line 2 changes (B2 dropped, B3 added), line 3 goes away, line 4 is new.
    let reply = update(&[
        ("1", "S1", 2, None),
        ("2", "S2", 2, Some(&["B1", "B3"])),
        ("4", "S2", 1, Some(&["C1"])),
    ])
    .unwrap();
    assert_eq!(
        reply,
        PoReply::Updated {
            reference_code: "PO-1".into(),
            lines: 3,
            expected: 3,
            cancelled: 1
        }
    );
    assert_eq!(state_of(&engine, "B2").as_deref(), Some("cancelled"));
    assert_eq!(state_of(&engine, "B3").as_deref(), Some("expected"));
    // C1 moved from the removed line 3 to the new line 4.
    let c1 = engine.serial(ACCOUNT, b"C1").unwrap().unwrap();
    assert_eq!(c1.line_item_number.as_deref(), Some("4"));
    assert_eq!(c1.sku.as_deref(), Some("S2"));
    let view = engine.po_view(ACCOUNT, "PO-1").unwrap();
    let numbers: Vec<&str> = view
        .lines
        .iter()
        .map(|l| l.line_item_number.as_str())
        .collect();
    assert_eq!(numbers, vec!["1", "2", "4"]);
    let payload = grn(
        "G2",
        "PO-1",
        vec![
            item("S2", serials(&["B1", "B3", "C1"])),
            item("S1", serials(&["A2"])),
        ],
    );
    assert!(commit(&engine, &payload).is_committed());
    assert_eq!(
        codes(&commit(
            &engine,
            &grn("G3", "PO-1", vec![item("S2", serials(&["B2"]))])
        )),
        vec![("B2".into(), OutcomeCode::NotExpected)]
    );
}
