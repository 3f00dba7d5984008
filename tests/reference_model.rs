//! A state-machine test against a reference model: random GRNs, outwards, returns and
//! reopens on a type 2 account, over a universe of 24 serials so requests collide. The
//! model is a plain map from serial to (state, GRN, order, condition) with the contract's
//! rules written the obvious way; after every step the engine's answer (committed,
//! replayed, rejected, refused) must match the model's, and every serial of the universe
//! must read back exactly as the model holds it. A reopen stands for a crash: every
//! acknowledged write is synced, so the model keeps everything across it.
//! `tests/powerloss_model.rs` drives the same model over the real server, with crashes
//! that drop everything not synced.

use std::collections::HashMap;

use proptest::prelude::*;

use serialgate::domain::{Condition, SerialState};
use serialgate::engine::{GrnPayload, OrderPayload};
use serialgate::outcome::{GrnReply, OrderReply};
use serialgate::Engine;

use crate::util::*;

pub const UNIVERSE: u8 = 24;

#[derive(Debug, Clone)]
pub enum Step {
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

pub fn step() -> impl Strategy<Value = Step> {
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
pub struct Unit {
    pub state: SerialState,
    pub grn: String,
    pub order: Option<String>,
    pub condition: Condition,
}

#[derive(Default, Clone)]
pub struct Model {
    units: HashMap<String, Unit>,
    /// Committed GRNs and the serials they carried, for replays.
    grns: HashMap<String, Vec<String>>,
}

/// What a request should come to.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Done,
    Replayed,
    Rejected,
    Refused,
}

pub fn name(serial: u8) -> String {
    format!("RM-{serial:02}")
}

impl Model {
    pub fn grn(&mut self, id: &str, serials: &[String]) -> Answer {
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

    pub fn outward(&mut self, order: &str, serials: &[String]) -> Answer {
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

    pub fn return_units(&mut self, order: &str, serials: &[String], bad: bool) -> Answer {
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

pub fn grn_answer(reply: &Result<GrnReply, serialgate::EngineError>) -> Answer {
    match reply {
        Ok(GrnReply::Committed { replayed: true, .. }) => Answer::Replayed,
        Ok(GrnReply::Committed { .. }) => Answer::Done,
        Ok(GrnReply::Rejected { .. }) => Answer::Rejected,
        Ok(GrnReply::Valid { .. }) => unreachable!("no checks here"),
        Err(_) => Answer::Refused,
    }
}

pub fn order_answer(reply: &Result<OrderReply, serialgate::EngineError>) -> Answer {
    match reply {
        Ok(OrderReply::Outward { replayed: true, .. })
        | Ok(OrderReply::Returned { replayed: true, .. }) => Answer::Replayed,
        Ok(OrderReply::Outward { .. }) | Ok(OrderReply::Returned { .. }) => Answer::Done,
        Ok(OrderReply::Rejected { .. }) => Answer::Rejected,
        Err(_) => Answer::Refused,
    }
}

impl Model {
    /// The model's view of every serial of the universe, in order.
    pub fn universe(&self) -> Vec<Option<Unit>> {
        (0..UNIVERSE)
            .map(|s| self.units.get(&name(s)).cloned())
            .collect()
    }
}

/// The GRN a `Step::Grn` sends, and the serial names it carries.
pub fn grn_payload(id: u8, serials: &[u8]) -> (GrnPayload, Vec<String>) {
    let values: Vec<String> = serials.iter().map(|&s| name(s)).collect();
    let payload = grn(
        &format!("G-{id}"),
        "PO-M",
        vec![item("S1", crate::util::serials(&values))],
    );
    (payload, values)
}

/// The order a `Step::Outward` or `Step::Return` sends (`bad`: returned damaged).
pub fn order_payload(order: u8, serials: &[u8], bad: Option<bool>) -> OrderPayload {
    let values: Vec<String> = serials.iter().map(|&s| name(s)).collect();
    OrderPayload {
        order: format!("SO-{order}"),
        serials: crate::util::serials(&values),
        condition: bad.map(|bad| if bad { Condition::Bad } else { Condition::Good }),
        qc_reason: (bad == Some(true)).then(|| "DAMAGED".to_string()),
        bin: None,
    }
}

/// Applies `step` (not a reopen) to the model and returns the answer it should get.
pub fn expected(model: &mut Model, step: &Step) -> Answer {
    match step {
        Step::Grn { id, serials } => {
            let (_, values) = grn_payload(*id, serials);
            model.grn(&format!("G-{id}"), &values)
        }
        Step::Outward { order, serials } => {
            let values: Vec<String> = serials.iter().map(|&s| name(s)).collect();
            model.outward(&format!("SO-{order}"), &values)
        }
        Step::Return {
            order,
            serials,
            bad,
        } => {
            let values: Vec<String> = serials.iter().map(|&s| name(s)).collect();
            model.return_units(&format!("SO-{order}"), &values, *bad)
        }
        Step::Reopen => unreachable!("a reopen is the driver's"),
    }
}

fn check_universe(engine: &Engine, model: &Model, at: usize) {
    let names: Vec<String> = (0..UNIVERSE).map(name).collect();
    let keys: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    let views = engine.serials(ACCOUNT, &keys).unwrap();
    for ((n, view), expected) in names.iter().zip(views).zip(model.universe()) {
        let actual = view.map(|v| Unit {
            state: v.state,
            grn: v.grn.unwrap_or_default(),
            order: v.order,
            condition: v.condition,
        });
        assert_eq!(actual, expected, "step {at}: serial {n}");
    }
}

fn run(steps: &[Step]) {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = open(dir.path(), WritePath::Wal);
    setup_type2(&engine);
    po(&engine, "PO-M", &[("S1", 1_000_000)]);
    let mut model = Model::default();
    for (at, step) in steps.iter().enumerate() {
        let answer = match step {
            Step::Grn { id, serials } => grn_answer(&engine.receive(
                ACCOUNT,
                &grn_payload(*id, serials).0,
                serialgate::GrnMode::Commit,
            )),
            Step::Outward { order, serials } => {
                order_answer(&engine.outward(ACCOUNT, &order_payload(*order, serials, None)))
            }
            Step::Return {
                order,
                serials,
                bad,
            } => order_answer(
                &engine.return_units(ACCOUNT, &order_payload(*order, serials, Some(*bad))),
            ),
            Step::Reopen => {
                drop(engine);
                engine = open(dir.path(), WritePath::Wal);
                check_universe(&engine, &model, at);
                continue;
            }
        };
        assert_eq!(answer, expected(&mut model, step), "step {at}: {step:?}");
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
