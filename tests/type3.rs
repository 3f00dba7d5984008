//! USN type 3 end to end: the engine generates serials for a PO line after PO creation; a
//! GRN serial must be generated for this PO line, scanning it identifies SKU and PO, and PO
//! tolerance may allow over-receipt.

use std::collections::HashSet;

use serialgate::domain::{CheckChar, SerialOrder, UsnType};
use serialgate::engine::GrnItem;
use serialgate::generator;
use serialgate::outcome::OutcomeCode;
use serialgate::{AccountOptions, EngineError, GrnMode};

use crate::util::*;

fn type3_options(pct: u32, qty: u64) -> AccountOptions {
    AccountOptions {
        tolerance_pct: Some(pct),
        tolerance_qty: Some(qty),
        prefix: Some("SG".into()),
        ..AccountOptions::new(UsnType::GeneratedForPo)
    }
}

/// An item without a SKU: the scanned serials identify it.
fn scanned(values: &[String]) -> GrnItem {
    GrnItem {
        serials: Some(serials(values)),
        ..GrnItem::default()
    }
}

#[test]
fn generated_serials_are_received_by_scanning_within_tolerance() {
    for path in BOTH_PATHS {
        // allowance = max(ceil(10% of 10), 1) = 1: the line takes 11.
        let (_dir, engine) = account_of(path, type3_options(10, 1));
        po(&engine, "PO-1", &[("S1", 10), ("P1", 5)]);
        let generated = engine.generate_for_po(ACCOUNT, "PO-1", "S1", 11).unwrap();
        let generated_serials = strings(&generated.serials);
        assert_eq!(generated.count, 11);
        assert_eq!(generated_serials[0], "SG000000000001");
        assert_eq!(
            generated_serials.iter().collect::<HashSet<_>>().len(),
            11,
            "repeats"
        );
        assert_eq!(line_counts(&engine, "PO-1")[0], (10, 11, 0));
        assert_eq!(
            state_of(&engine, &generated_serials[3]).as_deref(),
            Some("generated")
        );
        // Past ordered + allowance: refused, nothing generated.
        let over = engine.generate_for_po(ACCOUNT, "PO-1", "S1", 1);
        assert!(
            matches!(
                over,
                Err(EngineError::Outcome(OutcomeCode::QuantityExceeded, _))
            ),
            "{over:?}"
        );

        // Without tolerance, 11 is one past what the line takes.
        engine.create_account(ACCOUNT, type3_options(0, 0)).unwrap();
        let all = grn(
            "GRN-1",
            "PO-1",
            vec![scanned(&generated_serials), plain("P1", 5)],
        );
        let reply = commit(&engine, &all);
        assert_eq!(reply.errors().len(), 1, "{reply:?}");
        assert_eq!(reply.errors()[0].code, OutcomeCode::QuantityExceeded);
        // Exactly at the allowance: taken.
        engine
            .create_account(ACCOUNT, type3_options(10, 1))
            .unwrap();
        let reply = commit(&engine, &all);
        assert!(reply.is_committed(), "{reply:?}");
        assert_eq!(line_counts(&engine, "PO-1"), vec![(10, 11, 11), (5, 0, 5)]);
        let view = engine
            .serial(ACCOUNT, generated_serials[0].as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(view.sku.as_deref(), Some("S1"));
        assert_eq!(view.reference_code.as_deref(), Some("PO-1"));
        assert_eq!(
            view.history.iter().map(|e| e.event).collect::<Vec<_>>(),
            vec!["generated", "inwarded"]
        );
    }
}

#[test]
fn tolerance_quantity_edge() {
    // allowance = max(ceil(0% of 5), 2) = 2: the line takes 7, not 8.
    let (_dir, engine) = account_of(WritePath::Wal, type3_options(0, 2));
    po(&engine, "PO-1", &[("S1", 5)]);
    assert!(engine.generate_for_po(ACCOUNT, "PO-1", "S1", 8).is_err());
    let generated_serials = strings(
        &engine
            .generate_for_po(ACCOUNT, "PO-1", "S1", 7)
            .unwrap()
            .serials,
    );
    let reply = commit(
        &engine,
        &grn("G", "PO-1", vec![scanned(&generated_serials)]),
    );
    assert!(reply.is_committed(), "{reply:?}");
}

#[test]
fn grn_serial_must_be_generated_for_this_po_line() {
    let (_dir, engine) = account_of(WritePath::Ingest, type3_options(0, 0));
    po(&engine, "PO-1", &[("S1", 2), ("S2", 1)]);
    po(&engine, "PO-2", &[("S1", 1)]);
    let s1 = strings(
        &engine
            .generate_for_po(ACCOUNT, "PO-1", "S1", 2)
            .unwrap()
            .serials,
    );
    let s2 = strings(
        &engine
            .generate_for_po(ACCOUNT, "PO-1", "S2", 1)
            .unwrap()
            .serials,
    );
    let other = strings(
        &engine
            .generate_for_po(ACCOUNT, "PO-2", "S1", 1)
            .unwrap()
            .serials,
    );
    assert!(matches!(
        engine.generate_for_po(ACCOUNT, "PO-1", "P1", 1),
        Err(EngineError::Outcome(OutcomeCode::SkuNotSerialized, _))
    ));
    assert!(matches!(
        engine.generate_for_po(ACCOUNT, "PO-1", "NOPE", 1),
        Err(EngineError::Outcome(OutcomeCode::UnknownSku, _))
    ));
    assert!(matches!(
        engine.generate_pool(ACCOUNT, 1, None),
        Err(EngineError::BadRequest(_))
    ));

    let before = digest(&engine);
    let payload = grn(
        "GRN-1",
        "PO-1",
        vec![
            item(
                "S1",
                serials(&[s1[0].as_str(), "SG999999999999", other[0].as_str()]),
            ),
            // Generated for this PO, but for S2.
            item("S1", serials(&[s2[0].as_str()])),
        ],
    );
    use OutcomeCode::*;
    let mut want = vec![
        (s2[0].clone(), WrongSku),
        ("SG999999999999".to_string(), NotGenerated),
        (other[0].clone(), WrongPo),
    ];
    want.sort();
    assert_eq!(codes(&commit(&engine, &payload)), want);
    assert_eq!(digest(&engine), before);
    let auto = engine
        .receive(ACCOUNT, &grn("GRN-A", "PO-1", vec![]), GrnMode::Auto)
        .unwrap();
    assert_eq!(auto.errors()[0].code, AutoGrnNotSupported);

    let good = grn(
        "GRN-1",
        "PO-1",
        vec![scanned(&[s1[1].clone(), s2[0].clone()])],
    );
    assert!(commit(&engine, &good).is_committed());
    assert_eq!(
        codes(&commit(
            &engine,
            &grn("GRN-2", "PO-1", vec![scanned(&[s2[0].clone()])])
        )),
        vec![(s2[0].clone(), AlreadyInwarded)]
    );
}

#[test]
fn generated_serials_are_never_reissued_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = HashSet::new();
    for round in 0..3 {
        let engine = open(dir.path(), WritePath::Ingest);
        if round == 0 {
            engine
                .create_account(
                    ACCOUNT,
                    AccountOptions {
                        check_char: Some(CheckChar::Luhn),
                        order: Some(SerialOrder::Random),
                        prefix: Some("LB".into()),
                        ..AccountOptions::new(UsnType::GeneratedForPo)
                    },
                )
                .unwrap();
            engine
                .set_skus(
                    ACCOUNT,
                    serialgate::domain::SkuKind::Serialized,
                    &["S1".into()],
                )
                .unwrap();
            po(&engine, "PO-1", &[("S1", 300_000)]);
        }
        let generated = engine
            .generate_for_po(ACCOUNT, "PO-1", "S1", 100_000)
            .unwrap();
        for serial in strings(&generated.serials) {
            assert_eq!(serial.len(), 2 + generator::COUNTER_DIGITS + 1);
            let digits = &serial.as_bytes()[2..2 + generator::COUNTER_DIGITS];
            assert_eq!(
                generator::luhn(digits),
                *serial.as_bytes().last().unwrap(),
                "{serial}"
            );
            assert!(seen.insert(serial), "reissued after reopen {round}");
        }
        assert_eq!(
            engine.account(ACCOUNT).unwrap().last_serial_counter,
            100_000 * (round + 1)
        );
    }
    assert_eq!(seen.len(), 300_000);
}

#[test]
fn generation_skips_values_the_account_already_knows() {
    // "X" + 000000000001 + Luhn 8 spells the same as "X0" + counter 18 without a check.
    let options = |prefix: &str, check| AccountOptions {
        prefix: Some(prefix.into()),
        check_char: Some(check),
        ..AccountOptions::new(UsnType::Pool)
    };
    let (_dir, engine) = account_of(WritePath::Wal, options("X", CheckChar::Luhn));
    let first = strings(&engine.generate_pool(ACCOUNT, 1, None).unwrap().serials);
    assert_eq!(first, vec!["X0000000000018".to_string()]);
    engine
        .create_account(ACCOUNT, options("X0", CheckChar::None))
        .unwrap();
    let next = strings(&engine.generate_pool(ACCOUNT, 17, None).unwrap().serials);
    assert_eq!(next.len(), 17);
    assert!(!next.contains(&first[0]), "a stored value was issued again");
    assert_eq!(next.last().map(String::as_str), Some("X0000000000019"));
    assert_eq!(engine.account(ACCOUNT).unwrap().last_serial_counter, 19);
}
