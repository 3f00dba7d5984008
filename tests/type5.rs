//! USN type 5 end to end: serials generated beforehand into a standalone pool (optionally
//! bound to a SKU); a GRN serial must be an unused pooled serial, and the GRN's SKU binds it.

use serialgate::domain::UsnType;
use serialgate::outcome::{GrnReply, OutcomeCode};
use serialgate::{AccountOptions, EngineError, GrnMode};

use crate::util::*;

fn type5(path: WritePath, auto_grn: bool) -> (tempfile::TempDir, serialgate::Engine) {
    account_of(
        path,
        AccountOptions {
            prefix: Some("P5".into()),
            auto_grn: Some(auto_grn),
            ..AccountOptions::new(UsnType::Pool)
        },
    )
}

#[test]
fn pooled_serials_are_bound_at_grn() {
    for path in BOTH_PATHS {
        let (_dir, engine) = type5(path, false);
        let unbound = strings(&engine.generate_pool(ACCOUNT, 4, None).unwrap().serials);
        let for_s2 = strings(
            &engine
                .generate_pool(ACCOUNT, 2, Some("S2"))
                .unwrap()
                .serials,
        );
        assert_eq!(state_of(&engine, &unbound[0]).as_deref(), Some("generated"));
        assert!(matches!(
            engine.generate_pool(ACCOUNT, 1, Some("P1")),
            Err(EngineError::Outcome(OutcomeCode::SkuNotSerialized, _))
        ));
        assert!(matches!(
            engine.generate_for_po(ACCOUNT, "PO-1", "S1", 1),
            Err(EngineError::BadRequest(_))
        ));
        po(&engine, "PO-1", &[("S1", 3), ("S2", 2)]);

        let before = digest(&engine);
        let payload = grn(
            "GRN-1",
            "PO-1",
            vec![item(
                "S1",
                serials(&[unbound[0].as_str(), for_s2[0].as_str(), "P5999999999999"]),
            )],
        );
        use OutcomeCode::*;
        let mut want = vec![
            (for_s2[0].clone(), WrongSku),
            ("P5999999999999".to_string(), NotGenerated),
        ];
        want.sort();
        assert_eq!(codes(&commit(&engine, &payload)), want);
        assert_eq!(digest(&engine), before);

        let good = grn(
            "GRN-1",
            "PO-1",
            vec![
                item("S1", serials(&[unbound[0].as_str(), unbound[1].as_str()])),
                item("S2", serials(&[for_s2[0].as_str()])),
            ],
        );
        assert!(commit(&engine, &good).is_committed());
        let view = engine
            .serial(ACCOUNT, unbound[0].as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(view.sku.as_deref(), Some("S1"));
        assert_eq!(view.reference_code.as_deref(), Some("PO-1"));
        assert_eq!(
            view.history.iter().map(|e| e.event).collect::<Vec<_>>(),
            vec!["generated", "inwarded"]
        );
        // Used once: a pooled serial is not reusable.
        assert_eq!(
            codes(&commit(
                &engine,
                &grn(
                    "GRN-2",
                    "PO-1",
                    vec![item("S1", serials(&[unbound[0].as_str()]))]
                )
            )),
            vec![(unbound[0].clone(), AlreadyInwarded)]
        );
        // Auto-GRN is off by default for type 5.
        let auto = engine
            .receive(ACCOUNT, &grn("GRN-A", "PO-1", vec![]), GrnMode::Auto)
            .unwrap();
        assert_eq!(auto.errors()[0].code, AutoGrnNotSupported);
    }
}

#[test]
fn auto_grn_draws_unused_pooled_serials_when_enabled() {
    let (_dir, engine) = type5(WritePath::Ingest, true);
    po(&engine, "PO-1", &[("S1", 3), ("S2", 1), ("P1", 2)]);
    let for_s2 = strings(
        &engine
            .generate_pool(ACCOUNT, 1, Some("S2"))
            .unwrap()
            .serials,
    );
    let unbound = strings(&engine.generate_pool(ACCOUNT, 2, None).unwrap().serials);
    // Pool short by one serial for S1: refused, nothing written.
    let before = digest(&engine);
    let short = engine
        .receive(ACCOUNT, &grn("GRN-A", "PO-1", vec![]), GrnMode::Auto)
        .unwrap();
    assert_eq!(
        short.errors().iter().map(|e| e.code).collect::<Vec<_>>(),
        vec![OutcomeCode::SerialsRequired],
        "{short:?}"
    );
    assert_eq!(digest(&engine), before);

    let more = strings(
        &engine
            .generate_pool(ACCOUNT, 1, Some("S1"))
            .unwrap()
            .serials,
    );
    let reply = engine
        .receive(ACCOUNT, &grn("GRN-A", "PO-1", vec![]), GrnMode::Auto)
        .unwrap();
    assert!(
        matches!(reply, GrnReply::Committed { units: 6, .. }),
        "{reply:?}"
    );
    for serial in for_s2.iter().chain(&unbound).chain(&more) {
        assert_eq!(
            state_of(&engine, serial).as_deref(),
            Some("inwarded"),
            "{serial}"
        );
    }
    let view = engine
        .serial(ACCOUNT, for_s2[0].as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(view.sku.as_deref(), Some("S2"));
    assert_eq!(
        line_counts(&engine, "PO-1"),
        vec![(3, 0, 3), (1, 0, 1), (2, 0, 2)]
    );
}
