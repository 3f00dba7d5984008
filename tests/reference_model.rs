//! A state-machine test against a reference model, on two accounts in one engine:
//!
//! - type 2 (`acme`): GRNs, outwards and returns over a universe of 24 serials, so
//!   requests collide;
//! - type 5 (`pool`): serials generated into the pool (some bound to a SKU at generation),
//!   and GRNs picking among them, with now and then a serial never generated.
//!
//! The model is a plain map from serial to (state, SKU, GRN, order, condition) with the
//! contract's rules written the obvious way. After every step the engine's answer
//! (committed, replayed, rejected, refused) must match the model's; every serial of the
//! universe and every serial ever generated must read back exactly as the model holds it;
//! and a generated serial must be new to the model (never reissued). Reopens are
//! interleaved; every acknowledged write is synced, so the model keeps everything across
//! them. `tests/powerloss_model.rs` drives the same model over the real server, with
//! crashes that drop everything not synced.

use std::collections::HashMap;

use proptest::prelude::*;

use serialgate::domain::{Condition, SerialState, SkuKind, UsnType};
use serialgate::engine::{GrnPayload, OrderPayload, PoItem, PoPayload};
use serialgate::outcome::{GrnReply, OrderReply};
use serialgate::{AccountOptions, Engine};

use crate::util::*;

pub const UNIVERSE: u8 = 24;
/// The type 5 account and its PO.
pub const POOL: &str = "pool";
const POOL_SKUS: [&str; 2] = ["S1", "S2"];
/// A pool serial the engine never generates (its generator prefix is `P5`).
const NEVER_GENERATED: &str = "Q5000000000001";

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
    /// `count` serials into the pool, bound to `POOL_SKUS[sku]` if given.
    Generate {
        count: u8,
        sku: Option<u8>,
    },
    /// A type 5 GRN of `POOL_SKUS[sku]` carrying the pool serials `picks` index (modulo
    /// the pool's size), and a serial never generated if `stranger`.
    PoolGrn {
        id: u8,
        sku: u8,
        picks: Vec<u8>,
        stranger: bool,
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
        2 => (1u8..4, proptest::option::of(0u8..2))
            .prop_map(|(count, sku)| Step::Generate { count, sku }),
        3 => (0u8..6, 0u8..2, proptest::collection::vec(any::<u8>(), 1..4), proptest::bool::weighted(0.15))
            .prop_map(|(id, sku, picks, stranger)| Step::PoolGrn { id, sku, picks, stranger }),
        1 => Just(Step::Reopen),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub state: SerialState,
    pub sku: Option<String>,
    pub grn: String,
    pub order: Option<String>,
    pub condition: Condition,
}

#[derive(Default, Clone)]
pub struct Model {
    units: HashMap<String, Unit>,
    /// Committed GRNs and the SKU and serials they carried, for replays.
    grns: HashMap<String, (String, Vec<String>)>,
    /// The type 5 account: every serial generated, in order, and its units and GRNs.
    pool: Vec<String>,
    pool_units: HashMap<String, Unit>,
    pool_grns: HashMap<String, (String, Vec<String>)>,
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

/// A GRN by the contract's rules, on `units` and `grns` (of one account): the same id with
/// the same SKU and serials replays, with others is refused; a serial repeated or not `receivable`
/// rejects it; else every serial is inwarded by it.
fn receive(
    units: &mut HashMap<String, Unit>,
    grns: &mut HashMap<String, (String, Vec<String>)>,
    id: &str,
    sku: &str,
    serials: &[String],
    receivable: impl Fn(Option<&Unit>) -> bool,
) -> Answer {
    if let Some((sent_sku, sent)) = grns.get(id) {
        return if sent_sku == sku && sent == serials {
            Answer::Replayed
        } else {
            Answer::Refused // GRN_EXISTS
        };
    }
    let mut seen = std::collections::HashSet::new();
    let duplicate = serials.iter().any(|s| !seen.insert(s));
    if duplicate || !serials.iter().all(|s| receivable(units.get(s))) {
        return Answer::Rejected;
    }
    for s in serials {
        units.insert(
            s.clone(),
            Unit {
                state: SerialState::Inwarded,
                sku: Some(sku.into()),
                grn: id.into(),
                order: None,
                condition: Condition::Good,
            },
        );
    }
    grns.insert(id.into(), (sku.into(), serials.to_vec()));
    Answer::Done
}

impl Model {
    pub fn grn(&mut self, id: &str, serials: &[String]) -> Answer {
        // Type 2: a serial must be new to the account.
        receive(&mut self.units, &mut self.grns, id, "S1", serials, |unit| {
            unit.is_none()
        })
    }

    /// Type 5: a serial must be generated, not yet received, and bound to no other SKU.
    pub fn pool_grn(&mut self, id: &str, sku: &str, serials: &[String]) -> Answer {
        receive(
            &mut self.pool_units,
            &mut self.pool_grns,
            id,
            sku,
            serials,
            |unit| {
                unit.is_some_and(|u| {
                    u.state == SerialState::Generated && u.sku.as_deref().is_none_or(|b| b == sku)
                })
            },
        )
    }

    /// Takes serials the engine generated into the pool; each must be new.
    pub fn generated(&mut self, serials: &[String], sku: Option<&str>) {
        for s in serials {
            assert!(
                !self.pool_units.contains_key(s),
                "serial {s} generated twice"
            );
            self.pool_units.insert(
                s.clone(),
                Unit {
                    state: SerialState::Generated,
                    sku: sku.map(String::from),
                    grn: String::new(),
                    order: None,
                    condition: Condition::Good,
                },
            );
            self.pool.push(s.clone());
        }
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

    /// The type 2 universe's serials and the model's view of each, in order.
    pub fn universe(&self) -> Vec<(String, Option<Unit>)> {
        (0..UNIVERSE)
            .map(|s| (name(s), self.units.get(&name(s)).cloned()))
            .collect()
    }

    /// Every serial generated into the pool and the model's view of each, in order.
    pub fn pool(&self) -> Vec<(String, Option<Unit>)> {
        self.pool
            .iter()
            .map(|s| (s.clone(), self.pool_units.get(s).cloned()))
            .collect()
    }

    /// The serials a `Step::PoolGrn` carries, picked in the pool as it is now.
    pub fn pool_serials(&self, picks: &[u8], stranger: bool) -> Vec<String> {
        let mut serials: Vec<String> = if self.pool.is_empty() {
            Vec::new()
        } else {
            picks
                .iter()
                .map(|&p| self.pool[p as usize % self.pool.len()].clone())
                .collect()
        };
        if stranger || serials.is_empty() {
            serials.push(NEVER_GENERATED.into());
        }
        serials
    }
}

pub fn grn_answer(reply: &Result<GrnReply, serialgate::EngineError>) -> Answer {
    match reply {
        Ok(GrnReply::Committed { replayed: true, .. }) => Answer::Replayed,
        Ok(GrnReply::Committed { .. }) => Answer::Done,
        Ok(GrnReply::Rejected { .. }) => Answer::Rejected,
        Ok(GrnReply::Valid { .. }) => unreachable!("no checks here"),
        Err(e) if e.code() == "GRN_EXISTS" => Answer::Refused,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

pub fn order_answer(reply: &Result<OrderReply, serialgate::EngineError>) -> Answer {
    match reply {
        Ok(OrderReply::Outward { replayed: true, .. })
        | Ok(OrderReply::Returned { replayed: true, .. }) => Answer::Replayed,
        Ok(OrderReply::Outward { .. }) | Ok(OrderReply::Returned { .. }) => Answer::Done,
        Ok(OrderReply::Rejected { .. }) => Answer::Rejected,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// A request a step makes, the same for every driver.
pub enum Request {
    /// `GRN.COMMIT <account> <payload>`.
    Grn(&'static str, GrnPayload),
    Outward(OrderPayload),
    Return(OrderPayload),
    /// `SERIALS.GENERATE pool COUNT <n> [SKU <sku>]`.
    Generate(u64, Option<&'static str>),
}

/// What `step` sends, given the model as it is before it.
pub fn request(model: &Model, step: &Step) -> Request {
    let names = |serials: &[u8]| -> Vec<String> { serials.iter().map(|&s| name(s)).collect() };
    let order_payload = |order: u8, serials: &[u8], bad: Option<bool>| OrderPayload {
        order: format!("SO-{order}"),
        serials: crate::util::serials(&names(serials)),
        condition: bad.map(|bad| if bad { Condition::Bad } else { Condition::Good }),
        qc_reason: (bad == Some(true)).then(|| "DAMAGED".to_string()),
        bin: None,
    };
    match step {
        Step::Grn { id, serials } => Request::Grn(
            ACCOUNT,
            grn(
                &format!("G-{id}"),
                "PO-M",
                vec![item("S1", crate::util::serials(&names(serials)))],
            ),
        ),
        Step::Outward { order, serials } => Request::Outward(order_payload(*order, serials, None)),
        Step::Return {
            order,
            serials,
            bad,
        } => Request::Return(order_payload(*order, serials, Some(*bad))),
        Step::Generate { count, sku } => {
            Request::Generate(u64::from(*count), sku.map(|s| POOL_SKUS[s as usize]))
        }
        Step::PoolGrn {
            id,
            sku,
            picks,
            stranger,
        } => Request::Grn(
            POOL,
            grn(
                &format!("P-{id}"),
                "PO-P",
                vec![item(
                    POOL_SKUS[*sku as usize],
                    crate::util::serials(&model.pool_serials(picks, *stranger)),
                )],
            ),
        ),
        Step::Reopen => unreachable!("a reopen is the driver's"),
    }
}

/// Applies `step` (not a reopen, nor a generation: see [`Model::generated`]) to the model
/// and returns the answer it should get.
pub fn expected(model: &mut Model, step: &Step) -> Answer {
    let names = |serials: &[u8]| -> Vec<String> { serials.iter().map(|&s| name(s)).collect() };
    match step {
        Step::Grn { id, serials } => model.grn(&format!("G-{id}"), &names(serials)),
        Step::Outward { order, serials } => model.outward(&format!("SO-{order}"), &names(serials)),
        Step::Return {
            order,
            serials,
            bad,
        } => model.return_units(&format!("SO-{order}"), &names(serials), *bad),
        Step::PoolGrn {
            id,
            sku,
            picks,
            stranger,
        } => {
            let serials = model.pool_serials(picks, *stranger);
            model.pool_grn(&format!("P-{id}"), POOL_SKUS[*sku as usize], &serials)
        }
        Step::Generate { .. } | Step::Reopen => unreachable!("the driver's"),
    }
}

/// Sets up both accounts on a fresh engine: type 2 `acme` with PO-M, type 5 `pool` with
/// PO-P (every line large enough never to limit a GRN).
fn setup(engine: &Engine) {
    setup_type2(engine);
    po(engine, "PO-M", &[("S1", 1_000_000)]);
    let options = AccountOptions {
        prefix: Some("P5".into()),
        ..AccountOptions::new(UsnType::Pool)
    };
    assert!(engine.create_account(POOL, options).unwrap());
    let skus: Vec<String> = POOL_SKUS.iter().map(|s| s.to_string()).collect();
    engine.set_skus(POOL, SkuKind::Serialized, &skus).unwrap();
    let payload = PoPayload {
        vendor_id: "V1".into(),
        reference_code: "PO-P".into(),
        create_or_update: "I".into(),
        is_cancel: None,
        items: POOL_SKUS
            .iter()
            .enumerate()
            .map(|(i, sku)| PoItem {
                line_item_number: (i + 1).to_string(),
                sku: sku.to_string(),
                quantity: 1_000_000,
                serials: None,
            })
            .collect(),
    };
    engine.create_po(POOL, payload).unwrap();
}

fn check(engine: &Engine, model: &Model, at: usize) {
    for (account, expected) in [(ACCOUNT, model.universe()), (POOL, model.pool())] {
        let keys: Vec<&[u8]> = expected.iter().map(|(s, _)| s.as_bytes()).collect();
        let views = engine.serials(account, &keys).unwrap();
        for ((serial, expected), view) in expected.iter().zip(views) {
            let actual = view.map(|v| Unit {
                state: v.state,
                sku: v.sku,
                grn: v.grn.unwrap_or_default(),
                order: v.order,
                condition: v.condition,
            });
            assert_eq!(&actual, expected, "step {at}: {account} serial {serial}");
        }
    }
}

/// Runs `steps` on a fresh engine against the model; returns the answers (reopens and
/// generations answer nothing).
fn run(steps: &[Step]) -> Vec<Answer> {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = open(dir.path(), WritePath::Wal);
    setup(&engine);
    let mut model = Model::default();
    let mut answers = Vec::new();
    for (at, step) in steps.iter().enumerate() {
        if let Step::Reopen = step {
            drop(engine);
            engine = open(dir.path(), WritePath::Wal);
            check(&engine, &model, at);
            continue;
        }
        let answer = match request(&model, step) {
            Request::Grn(account, payload) => {
                grn_answer(&engine.receive(account, &payload, serialgate::GrnMode::Commit))
            }
            Request::Outward(payload) => order_answer(&engine.outward(ACCOUNT, &payload)),
            Request::Return(payload) => order_answer(&engine.return_units(ACCOUNT, &payload)),
            Request::Generate(count, sku) => {
                let reply = engine.generate_pool(POOL, count, sku).unwrap();
                let serials = strings(&reply.serials);
                assert_eq!(serials.len() as u64, count, "step {at}: {step:?}");
                model.generated(&serials, sku);
                check(&engine, &model, at);
                continue;
            }
        };
        assert_eq!(answer, expected(&mut model, step), "step {at}: {step:?}");
        check(&engine, &model, at);
        answers.push(answer);
    }
    answers
}

/// The pool's rules, spelled out: a generated serial is received once, by its bound SKU
/// only; a serial never generated is refused; a GRN id replays or is refused.
#[test]
fn pool_rules_match_by_hand() {
    let pool_grn = |id: u8, sku: u8, picks: &[u8], stranger: bool| Step::PoolGrn {
        id,
        sku,
        picks: picks.to_vec(),
        stranger,
    };
    let steps = [
        Step::Generate {
            count: 2,
            sku: None,
        },
        Step::Generate {
            count: 1,
            sku: Some(1),
        },
        pool_grn(0, 0, &[0], false),
        pool_grn(0, 0, &[0], false),
        pool_grn(0, 1, &[0], false),
        pool_grn(1, 0, &[2], false),
        pool_grn(1, 1, &[2], false),
        pool_grn(2, 0, &[1], true),
        pool_grn(2, 0, &[0], false),
        Step::Reopen,
        pool_grn(3, 0, &[1, 1], false),
        pool_grn(3, 1, &[1], false),
    ];
    use Answer::*;
    assert_eq!(
        run(&steps),
        [Done, Replayed, Refused, Rejected, Done, Rejected, Rejected, Rejected, Done]
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_reference_model(steps in proptest::collection::vec(step(), 1..40)) {
        run(&steps);
    }
}
