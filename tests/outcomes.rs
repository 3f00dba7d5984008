//! Every outcome code of CONTRACT §2 is produced by at least one real scenario.

use std::collections::HashSet;

use serialgate::domain::{Condition, UsnType};
use serialgate::engine::OrderPayload;
use serialgate::outcome::{OutcomeCode, PoReply, UnitError};
use serialgate::{AccountOptions, GrnMode};

use crate::util::*;

#[test]
fn every_outcome_code_has_a_scenario() {
    let mut seen: HashSet<OutcomeCode> = HashSet::new();
    let mut note = |errors: &[UnitError]| seen.extend(errors.iter().map(|e| e.code));

    // Type 2: GRN-time checks.
    let (_d2, engine) = type2(WritePath::Wal);
    po(&engine, "PO-1", &[("S1", 2), ("P1", 1)]);
    assert!(commit(
        &engine,
        &grn("G0", "PO-1", vec![item("S1", serials(&["OLD"]))])
    )
    .is_committed());
    let mut bad = item("S1", serials(&["QC"]));
    bad.condition = Some(Condition::Bad);
    let payload = grn(
        "G1",
        "PO-1",
        vec![
            item(
                "S1",
                serials(&["DUP", "DUP", "OLD", "bad serial", "X1", "X2"]),
            ),
            item("P1", serials(&["PL"])),
            plain("S1", 1),
            item("NOPE", serials(&["U1"])),
            item("S2", serials(&["W1"])),
            bad,
        ],
    );
    note(commit(&engine, &payload).errors());
    let mut with_serials = po_payload("PO-2", &[("1", "S1", 1, Some(&["Z1"]))]);
    with_serials.vendor_id = "V".into();
    if let PoReply::Rejected { errors, .. } = engine.create_po(ACCOUNT, with_serials).unwrap() {
        note(&errors);
    }

    // Type 1: expected serials.
    let (_d1, engine) = account_of(WritePath::Wal, AccountOptions::new(UsnType::SellerOnPo));
    for (reference, serial) in [("PO-1", "E1"), ("PO-2", "E2")] {
        let payload = po_payload(reference, &[("1", "S1", 1, Some(&[serial]))]);
        engine.create_po(ACCOUNT, payload).unwrap();
    }
    note(
        commit(
            &engine,
            &grn("G1", "PO-1", vec![item("S1", serials(&["E2", "NEW"]))]),
        )
        .errors(),
    );
    if let PoReply::Rejected { errors, .. } = engine
        .create_po(
            ACCOUNT,
            po_payload("PO-3", &[("1", "S1", 1, Some(&["E1"]))]),
        )
        .unwrap()
    {
        note(&errors);
    }

    // Type 3: generated serials; auto-GRN refused.
    let (_d3, engine) = account_of(WritePath::Wal, AccountOptions::new(UsnType::GeneratedForPo));
    po(&engine, "PO-1", &[("S1", 1)]);
    note(
        commit(
            &engine,
            &grn("G1", "PO-1", vec![item("S1", serials(&["UNKNOWN"]))]),
        )
        .errors(),
    );
    note(
        engine
            .receive(ACCOUNT, &grn("G2", "PO-1", vec![]), GrnMode::Auto)
            .unwrap()
            .errors(),
    );

    // After inward: outward and return.
    let (_d4, engine) = type2(WritePath::Wal);
    po(&engine, "PO-1", &[("S1", 2)]);
    let mut damaged = item("S1", serials(&["BAD1"]));
    damaged.condition = Some(Condition::Bad);
    damaged.qc_reason = Some("DENTED".into());
    let payload = grn("G1", "PO-1", vec![item("S1", serials(&["GOOD1"])), damaged]);
    assert!(commit(&engine, &payload).is_committed());
    let order = |values: &[&str]| OrderPayload {
        order: "SO-1".into(),
        serials: serials(values),
        ..OrderPayload::default()
    };
    note(
        engine
            .outward(ACCOUNT, &order(&["BAD1", "NONE"]))
            .unwrap()
            .errors(),
    );
    note(
        engine
            .return_units(ACCOUNT, &order(&["GOOD1"]))
            .unwrap()
            .errors(),
    );

    let missing: Vec<&str> = OutcomeCode::ALL
        .iter()
        .filter(|c| !seen.contains(c))
        .map(|c| c.as_str())
        .collect();
    assert!(missing.is_empty(), "no scenario produced {missing:?}");
}
