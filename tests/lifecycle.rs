//! After inward: outward for an order, return from it, the history of every change, and the
//! USN report of a PO.

use serialgate::domain::{Condition, UsnType};
use serialgate::engine::OrderPayload;
use serialgate::outcome::{OrderReply, OutcomeCode};
use serialgate::{AccountOptions, EngineError};

use crate::util::*;

fn order(order: &str, values: &[&str]) -> OrderPayload {
    OrderPayload {
        order: order.into(),
        serials: serials(values),
        ..OrderPayload::default()
    }
}

fn reply_codes(reply: &OrderReply) -> Vec<(String, OutcomeCode)> {
    let mut out: Vec<(String, OutcomeCode)> = reply
        .errors()
        .iter()
        .map(|e| (e.serial.clone().unwrap_or_default(), e.code))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A type 2 account with A1..A3 inwarded good and D1 inwarded bad on PO-1.
fn stocked(path: WritePath) -> (tempfile::TempDir, serialgate::Engine) {
    let (dir, engine) = type2(path);
    po(&engine, "PO-1", &[("S1", 4)]);
    let mut damaged = item("S1", serials(&["D1"]));
    damaged.condition = Some(Condition::Bad);
    damaged.qc_reason = Some("CRUSHED".into());
    let payload = grn(
        "GRN-1",
        "PO-1",
        vec![item("S1", serials(&["A1", "A2", "A3"])), damaged],
    );
    assert!(commit(&engine, &payload).is_committed());
    (dir, engine)
}

#[test]
fn outward_then_return_keeps_history_in_order() {
    for path in BOTH_PATHS {
        let (_dir, engine) = stocked(path);
        let out = engine
            .outward(ACCOUNT, &order("SO-1", &["A1", "A2"]))
            .unwrap();
        assert_eq!(
            out,
            OrderReply::Outward {
                order: "SO-1".into(),
                units: 2,
                replayed: false
            }
        );
        // A retry changes nothing and says so.
        assert!(matches!(
            engine
                .outward(ACCOUNT, &order("SO-1", &["A1", "A2"]))
                .unwrap(),
            OrderReply::Outward { replayed: true, .. }
        ));
        assert_eq!(state_of(&engine, "A1").as_deref(), Some("outward"));

        let mut back = order("SO-1", &["A1"]);
        back.condition = Some(Condition::Bad);
        back.qc_reason = Some("SCRATCHED".into());
        back.bin = Some("RET-1".into());
        assert!(matches!(
            engine.return_units(ACCOUNT, &back).unwrap(),
            OrderReply::Returned {
                units: 1,
                replayed: false,
                ..
            }
        ));
        assert!(matches!(
            engine.return_units(ACCOUNT, &back).unwrap(),
            OrderReply::Returned { replayed: true, .. }
        ));
        let view = engine.serial(ACCOUNT, b"A1").unwrap().unwrap();
        assert_eq!(view.state, serialgate::domain::SerialState::Inwarded);
        assert_eq!(view.condition, Condition::Bad);
        assert_eq!(view.qc_reason.as_deref(), Some("SCRATCHED"));
        assert_eq!(view.bin.as_deref(), Some("RET-1"));
        assert_eq!(
            view.grn.as_deref(),
            Some("GRN-1"),
            "a return keeps the inward GRN"
        );
        let events: Vec<(&str, Option<&str>)> = view
            .history
            .iter()
            .map(|e| (e.event, e.order.as_deref()))
            .collect();
        assert_eq!(
            events,
            vec![
                ("inwarded", None),
                ("outward", Some("SO-1")),
                ("returned", Some("SO-1"))
            ]
        );
        assert!(view.history.windows(2).all(|w| w[0].at <= w[1].at));
        // Returned bad: it cannot leave again.
        assert_eq!(
            reply_codes(&engine.outward(ACCOUNT, &order("SO-2", &["A1"])).unwrap()),
            vec![("A1".into(), OutcomeCode::BadInventory)]
        );
    }
}

#[test]
fn outward_and_return_edges_are_atomic() {
    let (_dir, engine) = stocked(WritePath::Ingest);
    assert!(engine
        .outward(ACCOUNT, &order("SO-1", &["A1"]))
        .unwrap()
        .errors()
        .is_empty());
    let before = digest(&engine);
    use OutcomeCode::*;
    let reply = engine
        .outward(
            ACCOUNT,
            &order("SO-2", &["A1", "A2", "A2", "D1", "NOPE", "bad serial"]),
        )
        .unwrap();
    assert_eq!(
        reply_codes(&reply),
        vec![
            ("A1".into(), NotInwarded),
            ("A2".into(), DuplicateInRequest),
            ("D1".into(), BadInventory),
            ("NOPE".into(), NotInwarded),
            ("bad serial".into(), InvalidSerial),
        ]
    );
    assert_eq!(
        digest(&engine),
        before,
        "a rejected outward wrote something"
    );
    assert_eq!(state_of(&engine, "A2").as_deref(), Some("inwarded"));

    // Return: only units outwarded on that order.
    let reply = engine
        .return_units(ACCOUNT, &order("SO-2", &["A1", "A2", "NOPE"]))
        .unwrap();
    assert_eq!(
        reply_codes(&reply),
        vec![
            ("A1".into(), NotOnOrder),
            ("A2".into(), NotOnOrder),
            ("NOPE".into(), NotOnOrder),
        ]
    );
    let mut bad = order("SO-1", &["A1"]);
    bad.condition = Some(Condition::Bad);
    assert_eq!(
        reply_codes(&engine.return_units(ACCOUNT, &bad).unwrap()),
        vec![("A1".into(), QcReasonRequired)]
    );
    assert_eq!(digest(&engine), before);
    assert!(matches!(
        engine.outward(ACCOUNT, &order("SO-3", &[])),
        Err(EngineError::BadRequest(_))
    ));
    assert!(matches!(
        engine.outward("nobody", &order("SO-3", &["A1"])),
        Err(EngineError::UnknownAccount(_))
    ));
}

#[test]
fn po_report_lists_every_serial_of_the_po() {
    let (_dir, engine) = account_of(WritePath::Wal, AccountOptions::new(UsnType::SellerOnPo));
    let payload = po_payload(
        "PO-1",
        &[
            ("10", "S1", 3, Some(&["A1", "A,2", "A\"3"])),
            ("20", "P1", 2, None),
        ],
    );
    engine.create_po(ACCOUNT, payload).unwrap();
    let mut bad = item("S1", serials(&["A,2"]));
    bad.condition = Some(Condition::Bad);
    bad.qc_reason = Some("WET".into());
    bad.bin = Some("Q-1".into());
    let payload = grn("GRN-1", "PO-1", vec![item("S1", serials(&["A1"])), bad]);
    assert!(commit(&engine, &payload).is_committed());

    let csv = String::from_utf8(engine.po_report(ACCOUNT, "PO-1").unwrap()).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        serialgate::engine::REPORT_HEADER.to_vec()
    );
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().take(8).map(str::to_string).collect())
        .collect();
    let row = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        rows,
        vec![
            row(&["A1", "S1", "10", "inwarded", "GRN-1", "good", "", ""]),
            row(&["A,2", "S1", "10", "inwarded", "GRN-1", "bad", "Q-1", "WET"]),
            row(&["A\"3", "S1", "10", "expected", "", "good", "", ""]),
        ]
    );
    assert!(matches!(
        engine.po_report(ACCOUNT, "PO-404"),
        Err(EngineError::UnknownPo(_))
    ));
}
