//! A state-machine test against a reference model: random GRNs, outwards, returns and
//! reopens on a type 2 account, over a universe of 24 serials so requests collide. The
//! model is a plain map from serial to (state, GRN, order, condition) with the contract's
//! rules written the obvious way; after every step the engine's answer (committed,
//! replayed, rejected, refused) must match the model's, and every serial of the universe
//! must read back exactly as the model holds it. A reopen stands for a crash: every
//! acknowledged write is synced, so the model keeps everything across it.

use std::collections::HashMap;

use proptest::prelude::*;

use serialgate::domain::{Condition, SerialState};
use serialgate::engine::OrderPayload;
use serialgate::outcome::{GrnReply, OrderReply};
use serialgate::Engine;

use crate::util::*;

const UNIVERSE: u8 = 24;

#[derive(Debug, Clone)]
enum Step {
    Grn {
        id: u8,
        serials: Vec<u8>,
    },
    Outward {
        order: u8,
        serials: Vec<u8>,
    },
    Return {
        order: u8,
        serials: Vec<u8>,
        bad: bool,
    },
    Reopen,
}

fn distinct(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::btree_set(0..UNIVERSE, 1..=max).prop_map(|s| s.into_iter().collect())
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..10, proptest::collection::vec(0..UNIVERSE, 1..6))
            .prop_map(|(id, serials)| Step::Grn { id, serials }),
        2 => (0u8..3, distinct(4)).prop_map(|(order, serials)| Step::Outward { order, serials }),
        2 => (0u8..3, distinct(4), any::<bool>())
            .prop_map(|(order, serials, bad)| Step::Return { order, serials, bad }),
        1 => Just(Step::Reopen),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Unit {
    state: SerialState,
    grn: String,
    order: Option<String>,
    condition: Condition,
}

#[derive(Default)]
struct Model {
    units: HashMap<String, Unit>,
    /// Committed GRNs and the serials they carried, for replays.
    grns: HashMap<String, Vec<String>>,
}

/// What a request should come to.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Done,
    Replayed,
    Rejected,
    Refused,
}

fn name(serial: u8) -> String {
    format!("RM-{serial:02}")
}

impl Model {
    fn grn(&mut self, id: &str, serials: &[String]) -> Answer {
        if let Some(sent) = self.grns.get(id) {
            return if sent == serials {
                Answer::Replayed
            } else {
                Answer::Refused // GRN_EXISTS
            };
        }
        let mut seen = std::collections::HashSet::new();
        let duplicate = serials.iter().any(|s| !seen.insert(s));
        let known = serials.iter().any(|s| self.units.contains_key(s));
        if duplicate || known {
            return Answer::Rejected;
        }
        for s in serials {
            self.units.insert(
                s.clone(),
                Unit {
                    state: SerialState::Inwarded,
                    grn: id.into(),
                    order: None,
                    condition: Condition::Good,
                },
            );
        }
        self.grns.insert(id.into(), serials.to_vec());
        Answer::Done
    }

    fn outward(&mut self, order: &str, serials: &[String]) -> Answer {
        let mut changed = 0;
        for s in serials {
            match self.units.get(s) {
                Some(u) if u.state == SerialState::Inwarded && u.condition == Condition::Good => {
                    changed += 1
                }
                Some(u) if u.state == SerialState::Outward && u.order.as_deref() == Some(order) => {
                }
                _ => return Answer::Rejected,
            }
        }
        if changed == 0 {
            return Answer::Replayed;
        }
        for s in serials {
            let u = self.units.get_mut(s).expect("checked");
            u.state = SerialState::Outward;
            u.order = Some(order.into());
        }
        Answer::Done
    }

    fn return_units(&mut self, order: &str, serials: &[String], bad: bool) -> Answer {
        let mut changed = 0;
        for s in serials {
            match self.units.get(s) {
                Some(u) if u.state == SerialState::Outward && u.order.as_deref() == Some(order) => {
                    changed += 1
                }
                // Already back from this order: left as it is.
                Some(u)
                    if u.state == SerialState::Inwarded && u.order.as_deref() == Some(order) => {}
                _ => return Answer::Rejected,
            }
        }
        if changed == 0 {
            return Answer::Replayed;
        }
        for s in serials {
            let u = self.units.get_mut(s).expect("checked");
            if u.state == SerialState::Outward {
                u.state = SerialState::Inwarded;
                u.condition = if bad { Condition::Bad } else { Condition::Good };
            }
        }
        Answer::Done
    }
}

fn grn_answer(reply: &Result<GrnReply, serialgate::EngineError>) -> Answer {
    match reply {
        Ok(GrnReply::Committed { replayed: true, .. }) => Answer::Replayed,
        Ok(GrnReply::Committed { .. }) => Answer::Done,
        Ok(GrnReply::Rejected { .. }) => Answer::Rejected,
        Ok(GrnReply::Valid { .. }) => unreachable!("no checks here"),
        Err(_) => Answer::Refused,
    }
}

fn order_answer(reply: &Result<OrderReply, serialgate::EngineError>) -> Answer {
    match reply {
        Ok(OrderReply::Outward { replayed: true, .. })
        | Ok(OrderReply::Returned { replayed: true, .. }) => Answer::Replayed,
        Ok(OrderReply::Outward { .. }) | Ok(OrderReply::Returned { .. }) => Answer::Done,
        Ok(OrderReply::Rejected { .. }) => Answer::Rejected,
        Err(_) => Answer::Refused,
    }
}

fn check_universe(engine: &Engine, model: &Model, at: usize) {
    let names: Vec<String> = (0..UNIVERSE).map(name).collect();
    let keys: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    let views = engine.serials(ACCOUNT, &keys).unwrap();
    for (n, view) in names.iter().zip(views) {
        let actual = view.map(|v| Unit {
            state: v.state,
            grn: v.grn.unwrap_or_default(),
            order: v.order,
            condition: v.condition,
        });
        assert_eq!(actual.as_ref(), model.units.get(n), "step {at}: serial {n}");
    }
}

fn run(steps: &[Step]) {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = open(dir.path(), WritePath::Wal);
    setup_type2(&engine);
    po(&engine, "PO-M", &[("S1", 1_000_000)]);
    let mut model = Model::default();
    for (at, step) in steps.iter().enumerate() {
        match step {
            Step::Grn { id, serials } => {
                let values: Vec<String> = serials.iter().map(|&s| name(s)).collect();
                let id = format!("G-{id}");
                let reply = engine.receive(
                    ACCOUNT,
                    &grn(&id, "PO-M", vec![item("S1", crate::util::serials(&values))]),
                    serialgate::GrnMode::Commit,
                );
                assert_eq!(
                    grn_answer(&reply),
                    model.grn(&id, &values),
                    "step {at}: {step:?} -> {reply:?}"
                );
            }
            Step::Outward { order, serials } => {
                let values: Vec<String> = serials.iter().map(|&s| name(s)).collect();
                let order = format!("SO-{order}");
                let reply = engine.outward(
                    ACCOUNT,
                    &OrderPayload {
                        order: order.clone(),
                        serials: crate::util::serials(&values),
                        ..OrderPayload::default()
                    },
                );
                assert_eq!(
                    order_answer(&reply),
                    model.outward(&order, &values),
                    "step {at}: {step:?} -> {reply:?}"
                );
            }
            Step::Return {
                order,
                serials,
                bad,
            } => {
                let values: Vec<String> = serials.iter().map(|&s| name(s)).collect();
                let order = format!("SO-{order}");
                let reply = engine.return_units(
                    ACCOUNT,
                    &OrderPayload {
                        order: order.clone(),
                        serials: crate::util::serials(&values),
                        condition: Some(if *bad {
                            Condition::Bad
                        } else {
                            Condition::Good
                        }),
                        qc_reason: bad.then(|| "DAMAGED".to_string()),
                        bin: None,
                    },
                );
                assert_eq!(
                    order_answer(&reply),
                    model.return_units(&order, &values, *bad),
                    "step {at}: {step:?} -> {reply:?}"
                );
            }
            Step::Reopen => {
                drop(engine);
                engine = open(dir.path(), WritePath::Wal);
            }
        }
        check_universe(&engine, &model, at);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_reference_model(steps in proptest::collection::vec(step(), 1..40)) {
        run(&steps);
    }
}
