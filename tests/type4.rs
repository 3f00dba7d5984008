//! USN type 4 end to end: the GRN itself generates the serials (SKU + quantity in, serials
//! out), inside its atomic commit.

use std::collections::HashSet;

use serialgate::domain::UsnType;
use serialgate::outcome::{GrnReply, OutcomeCode};
use serialgate::{AccountOptions, GrnMode};

use crate::util::*;

fn type4(path: WritePath) -> (tempfile::TempDir, serialgate::Engine) {
    account_of(
        path,
        AccountOptions {
            prefix: Some("T4-".into()),
            ..AccountOptions::new(UsnType::GeneratedAtGrn)
        },
    )
}

#[test]
fn grn_generates_serials_and_replays_them() {
    for path in BOTH_PATHS {
        let (_dir, engine) = type4(path);
        po(&engine, "PO-1", &[("S1", 5), ("P1", 3)]);
        let payload = grn("GRN-1", "PO-1", vec![plain("S1", 4), plain("P1", 3)]);
        let reply = commit(&engine, &payload);
        let GrnReply::Committed { units, serials, .. } = &reply else {
            panic!("{reply:?}");
        };
        let list = serials.clone();
        let serials = &strings(serials);
        assert_eq!(*units, 7);
        assert_eq!(serials.len(), 4);
        assert_eq!(serials[0], "T4-000000000001");
        for serial in serials {
            assert_eq!(state_of(&engine, serial).as_deref(), Some("inwarded"));
        }
        assert_eq!(line_counts(&engine, "PO-1"), vec![(5, 0, 4), (3, 0, 3)]);
        // A retry answers the same serials, generating nothing.
        let replay = commit(&engine, &payload);
        assert_eq!(
            replay,
            GrnReply::Committed {
                grn_id: "GRN-1".into(),
                units: 7,
                serials: list,
                replayed: true
            }
        );
        assert_eq!(engine.account(ACCOUNT).unwrap().last_serial_counter, 4);
    }
}

#[test]
fn serials_are_not_taken_and_quantities_are_bounded() {
    let (_dir, engine) = type4(WritePath::Ingest);
    po(&engine, "PO-1", &[("S1", 5)]);
    let before = digest(&engine);
    let reply = commit(
        &engine,
        &grn(
            "GRN-1",
            "PO-1",
            vec![item("S1", serials(&["MINE1"])), plain("S1", 6)],
        ),
    );
    let mut got: Vec<OutcomeCode> = reply.errors().iter().map(|e| e.code).collect();
    got.sort_by_key(|c| c.as_str());
    got.dedup();
    assert_eq!(
        got,
        vec![
            OutcomeCode::QuantityExceeded,
            OutcomeCode::SerialsNotAllowed
        ],
        "{reply:?}"
    );
    assert_eq!(
        digest(&engine),
        before,
        "a rejected type 4 GRN wrote something"
    );
    assert_eq!(engine.account(ACCOUNT).unwrap().last_serial_counter, 0);
}

#[test]
fn auto_grn_receives_everything_outstanding_with_generated_serials() {
    let (_dir, engine) = type4(WritePath::Ingest);
    po(&engine, "PO-1", &[("S1", 3), ("S2", 2), ("P1", 4)]);
    assert!(commit(&engine, &grn("GRN-1", "PO-1", vec![plain("S1", 1)])).is_committed());
    let reply = engine
        .receive(ACCOUNT, &grn("GRN-A", "PO-1", vec![]), GrnMode::Auto)
        .unwrap();
    let GrnReply::Committed { units, serials, .. } = &reply else {
        panic!("{reply:?}");
    };
    let serials = strings(serials);
    assert_eq!(*units, 2 + 2 + 4);
    assert_eq!(serials.iter().collect::<HashSet<_>>().len(), 4);
    assert_eq!(
        line_counts(&engine, "PO-1"),
        vec![(3, 0, 3), (2, 0, 2), (4, 0, 4)]
    );
    let view = engine
        .serial(ACCOUNT, serials[3].as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(view.sku.as_deref(), Some("S2"));
    assert_eq!(view.grn.as_deref(), Some("GRN-A"));
}
