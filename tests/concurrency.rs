//! Concurrent GRNs racing on the same serials: exactly one wins each serial.

use std::collections::HashMap;
use std::sync::Barrier;

use serialgate::outcome::{GrnReply, OutcomeCode};
use serialgate::GrnMode;

use crate::util::*;

/// A GRN that won (its id and serials), or what went wrong.
type Outcome = Result<(String, Vec<String>), String>;

#[test]
fn racing_grns_never_both_commit_a_serial() {
    for path in BOTH_PATHS {
        let (_dir, engine) = type2(path);
        const THREADS: usize = 8;
        const ROUNDS: usize = 6;
        po(&engine, "PO-1", &[("S1", 1_000_000)]);
        let barrier = Barrier::new(THREADS);
        // Every thread tries, each round, a GRN overlapping every other thread's GRN.
        let winners: Vec<Vec<Outcome>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let engine = &engine;
                    let barrier = &barrier;
                    scope.spawn(move || {
                        let mut won = Vec::new();
                        for round in 0..ROUNDS {
                            // 200 serials shared by all threads in this round, 50 own ones.
                            let mut values: Vec<String> =
                                (0..200).map(|i| format!("R{round}-S{i:04}")).collect();
                            values.extend((0..50).map(|i| format!("R{round}-T{t}-{i:03}")));
                            let id = format!("GRN-{round}-{t}");
                            let payload = grn(&id, "PO-1", vec![item("S1", serials(&values))]);
                            barrier.wait();
                            // Failures are collected, not raised here: a thread that
                            // panicked would leave the others waiting at the barrier.
                            match engine.receive(ACCOUNT, &payload, GrnMode::Commit) {
                                Ok(GrnReply::Committed { .. }) => won.push(Ok((id, values))),
                                Ok(GrnReply::Rejected { errors, .. })
                                    if errors
                                        .iter()
                                        .all(|e| e.code == OutcomeCode::AlreadyInwarded) => {}
                                other => won.push(Err(format!("{id}: {other:?}"))),
                            }
                        }
                        won
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });

        let mut owner: HashMap<String, String> = HashMap::new();
        let mut committed = 0;
        for outcome in winners.into_iter().flatten() {
            let (id, values) = outcome.unwrap();
            committed += 1;
            for value in values {
                assert!(
                    owner.insert(value.clone(), id.clone()).is_none(),
                    "{value} committed twice"
                );
            }
        }
        // Exactly one GRN per round wins (they all share 200 serials).
        assert_eq!(committed, ROUNDS, "{path:?}");
        for (value, id) in &owner {
            let view = engine.serial(ACCOUNT, value.as_bytes()).unwrap().unwrap();
            assert_eq!(view.grn.as_deref(), Some(id.as_str()));
        }
        let received = engine.po_view(ACCOUNT, "PO-1").unwrap().lines[0].received;
        assert_eq!(received as usize, owner.len());
    }
}
