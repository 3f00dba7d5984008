//! A state-machine test against a reference model, on four accounts in one engine:
//!
//! - type 2 (`acme`): GRNs, outwards and returns over a universe of 24 serials, so
//!   requests collide;
//! - type 5 (`pool`): serials generated into the pool (some bound to a SKU at generation),
//!   and GRNs picking among them, with now and then a serial never generated;
//! - type 1 (`t1`): POs listing serials of a universe of 16 (created and cancelled), and
//!   GRNs against them;
//! - type 3 (`t3`, 50 % PO tolerance): POs, serials generated for their lines up to
//!   ordered + tolerance, and GRNs picking among every PO's generated serials.
//!
//! The model is a plain map from serial to (state, SKU, GRN, order, condition), plus each
//! type 1 and type 3 serial's PO, with the contract's rules written the obvious way. After
//! every step the engine's answer (committed, replayed, rejected, refused) must match the
//! model's; every serial of the universes and every serial ever generated must read back
//! exactly as the model holds it; and a generated serial must be new to the model (never
//! reissued). Reopens are
//! interleaved; every acknowledged write is synced, so the model keeps everything across
//! them. `tests/powerloss_model.rs` drives the same model over the real server, with
//! crashes that drop everything not synced.

use std::collections::HashMap;

use proptest::prelude::*;

use serialgate::domain::{Condition, SerialState, SkuKind, UsnType};
use serialgate::engine::{GrnPayload, OrderPayload, PoPayload};
use serialgate::outcome::{GrnReply, OrderReply, PoReply};
use serialgate::{AccountOptions, Engine};

use crate::util::*;

pub const UNIVERSE: u8 = 24;
/// The type 5 account and its PO.
pub const POOL: &str = "pool";
const POOL_SKUS: [&str; 2] = ["S1", "S2"];
/// A pool serial the engine never generates (its generator prefix is `P5`).
const NEVER_GENERATED: &str = "Q5000000000001";
/// The type 1 account and its universe of serials.
pub const TYPE1: &str = "t1";
pub const TYPE1_UNIVERSE: u8 = 16;
/// The type 3 account, its PO tolerance and a serial it never generates (its prefix is
/// `G3`).
pub const TYPE3: &str = "t3";
pub const TYPE3_TOLERANCE_PCT: u64 = 50;
const TYPE3_NEVER_GENERATED: &str = "Z3000000000001";

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
    /// A type 1 PO, the next of `PO-T<n>`: one S1 line listing these serials.
    Type1Po {
        serials: Vec<u8>,
    },
    /// Cancels the type 1 PO `pick` indexes (modulo how many there are).
    Type1Cancel {
        pick: u8,
    },
    /// A type 1 GRN on the PO `pick` indexes, carrying these serials.
    Type1Grn {
        id: u8,
        pick: u8,
        serials: Vec<u8>,
    },
    /// A type 3 PO, the next of `PO-G<n>`: one S1 line of this quantity.
    Type3Po {
        quantity: u8,
    },
    /// Serials generated for the type 3 PO `pick` indexes.
    Type3Generate {
        pick: u8,
        count: u8,
    },
    /// A type 3 GRN on the PO `pick` indexes, carrying the generated serials `picks` index
    /// (among every PO's), and one never generated if `stranger`.
    Type3Grn {
        id: u8,
        pick: u8,
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
        2 => proptest::collection::vec(0..TYPE1_UNIVERSE, 1..4)
            .prop_map(|serials| Step::Type1Po { serials }),
        1 => any::<u8>().prop_map(|pick| Step::Type1Cancel { pick }),
        3 => (0u8..6, any::<u8>(), proptest::collection::vec(0..TYPE1_UNIVERSE, 1..4))
            .prop_map(|(id, pick, serials)| Step::Type1Grn { id, pick, serials }),
        1 => (1u8..5).prop_map(|quantity| Step::Type3Po { quantity }),
        2 => (any::<u8>(), 1u8..4).prop_map(|(pick, count)| Step::Type3Generate { pick, count }),
        3 => (0u8..6, any::<u8>(), proptest::collection::vec(any::<u8>(), 1..4), proptest::bool::weighted(0.15))
            .prop_map(|(id, pick, picks, stranger)| Step::Type3Grn { id, pick, picks, stranger }),
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
    /// The type 1 account: its POs in order (serials listed, cancelled), its units, each
    /// unit's PO, and its GRNs.
    t1_pos: Vec<(Vec<String>, bool)>,
    t1_units: HashMap<String, Unit>,
    t1_po_of: HashMap<String, usize>,
    t1_grns: HashMap<String, (String, Vec<String>)>,
    /// The type 3 account: its POs in order (ordered, generated), every serial generated
    /// in order, its units, each unit's PO, and its GRNs.
    t3_pos: Vec<(u64, u64)>,
    t3_serials: Vec<String>,
    t3_units: HashMap<String, Unit>,
    t3_po_of: HashMap<String, usize>,
    t3_grns: HashMap<String, (String, Vec<String>)>,
}

/// What a request should come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Done,
    Replayed,
    Rejected,
    Refused,
}

pub fn name(serial: u8) -> String {
    format!("RM-{serial:02}")
}

/// The serials of `generated` that `picks` index (modulo its length), and `never` (a serial
/// never generated) too if `stranger` or if there was nothing to pick.
fn pick_serials(generated: &[String], picks: &[u8], stranger: bool, never: &str) -> Vec<String> {
    let mut serials: Vec<String> = if generated.is_empty() {
        Vec::new()
    } else {
        picks
            .iter()
            .map(|&p| generated[p as usize % generated.len()].clone())
            .collect()
    };
    if stranger || serials.is_empty() {
        serials.push(never.into());
    }
    serials
}

pub fn type1_name(serial: u8) -> String {
    format!("T1-{serial:02}")
}

/// A GRN by the contract's rules, on `units` and `grns` (of one account): the same id with
/// the same body (`tag`: its PO and SKU; and serials) replays, with another is refused; a
/// serial repeated or not `receivable` rejects it; else every serial is inwarded by it.
fn receive(
    units: &mut HashMap<String, Unit>,
    grns: &mut HashMap<String, (String, Vec<String>)>,
    (id, tag): (&str, &str),
    sku: &str,
    serials: &[String],
    receivable: impl Fn(&str, Option<&Unit>) -> bool,
) -> Answer {
    if let Some((sent_tag, sent)) = grns.get(id) {
        return if sent_tag == tag && sent == serials {
            Answer::Replayed
        } else {
            Answer::Refused // GRN_EXISTS
        };
    }
    let mut seen = std::collections::HashSet::new();
    let duplicate = serials.iter().any(|s| !seen.insert(s));
    if duplicate || !serials.iter().all(|s| receivable(s, units.get(s))) {
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
    grns.insert(id.into(), (tag.into(), serials.to_vec()));
    Answer::Done
}

impl Model {
    pub fn grn(&mut self, id: &str, serials: &[String]) -> Answer {
        // Type 2: a serial must be new to the account.
        receive(
            &mut self.units,
            &mut self.grns,
            (id, "PO-M/S1"),
            "S1",
            serials,
            |_, unit| unit.is_none(),
        )
    }

    /// Type 5: a serial must be generated, not yet received, and bound to no other SKU.
    pub fn pool_grn(&mut self, id: &str, sku: &str, serials: &[String]) -> Answer {
        receive(
            &mut self.pool_units,
            &mut self.pool_grns,
            (id, &format!("PO-P/{sku}")),
            sku,
            serials,
            |_, unit| {
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

    fn t1_po_name(index: usize) -> String {
        format!("PO-T{index}")
    }

    /// Type 1 PO: every serial listed once, none known to the account unless cancelled.
    pub fn type1_po(&mut self, serials: &[String]) -> Answer {
        let mut seen = std::collections::HashSet::new();
        let duplicate = serials.iter().any(|s| !seen.insert(s));
        let taken = serials.iter().any(|s| {
            self.t1_units
                .get(s)
                .is_some_and(|u| u.state != SerialState::Cancelled)
        });
        if duplicate || taken {
            return Answer::Rejected;
        }
        let index = self.t1_pos.len();
        self.t1_pos.push((serials.to_vec(), false));
        for s in serials {
            self.t1_units.insert(
                s.clone(),
                Unit {
                    state: SerialState::Expected,
                    sku: Some("S1".into()),
                    grn: String::new(),
                    order: None,
                    condition: Condition::Good,
                },
            );
            self.t1_po_of.insert(s.clone(), index);
        }
        Answer::Done
    }

    /// The type 1 PO a pick names, if there is one.
    pub fn type1_pick(&self, pick: u8) -> Option<usize> {
        (!self.t1_pos.is_empty()).then(|| pick as usize % self.t1_pos.len())
    }

    /// Cancelling a PO cancels its serials not received; again, it changes nothing.
    pub fn type1_cancel(&mut self, index: usize) -> Answer {
        self.t1_pos[index].1 = true;
        let mut changed = 0;
        for s in &self.t1_pos[index].0 {
            let unit = self.t1_units.get_mut(s).expect("listed");
            if unit.state == SerialState::Expected && self.t1_po_of.get(s) == Some(&index) {
                unit.state = SerialState::Cancelled;
                changed += 1;
            }
        }
        if changed == 0 {
            Answer::Replayed
        } else {
            Answer::Done
        }
    }

    /// Type 1 GRN: a replay or a clash of id first, then a cancelled PO is refused; every
    /// serial must be expected on this PO.
    pub fn type1_grn(&mut self, id: &str, index: usize, serials: &[String]) -> Answer {
        let tag = format!("{}/S1", Self::t1_po_name(index));
        if self.t1_grns.contains_key(id) {
            return receive(
                &mut self.t1_units,
                &mut self.t1_grns,
                (id, &tag),
                "S1",
                serials,
                |_, _| false,
            );
        }
        if self.t1_pos[index].1 {
            return Answer::Refused; // PO_CANCELLED
        }
        let po_of = &self.t1_po_of;
        receive(
            &mut self.t1_units,
            &mut self.t1_grns,
            (id, &tag),
            "S1",
            serials,
            |s, unit| {
                unit.is_some_and(|u| u.state == SerialState::Expected)
                    && po_of.get(s) == Some(&index)
            },
        )
    }

    fn t3_po_name(index: usize) -> String {
        format!("PO-G{index}")
    }

    /// The type 3 PO a pick names, if there is one.
    pub fn type3_pick(&self, pick: u8) -> Option<usize> {
        (!self.t3_pos.is_empty()).then(|| pick as usize % self.t3_pos.len())
    }

    /// Generation for a type 3 PO: up to ordered + max(ceil(pct × ordered / 100), 0).
    pub fn type3_generation(&self, pick: u8, count: u8) -> Answer {
        let Some(index) = self.type3_pick(pick) else {
            return Answer::Refused; // UNKNOWN_PO
        };
        let (ordered, generated) = self.t3_pos[index];
        let allowance = (TYPE3_TOLERANCE_PCT * ordered).div_ceil(100);
        if generated + u64::from(count) > ordered + allowance {
            Answer::Rejected // QUANTITY_EXCEEDED
        } else {
            Answer::Done
        }
    }

    /// Takes serials the engine generated for the type 3 PO `pick` names; each must be new.
    pub fn type3_generated(&mut self, pick: u8, serials: &[String]) {
        let index = self.type3_pick(pick).expect("a PO to generate for");
        self.t3_pos[index].1 += serials.len() as u64;
        for s in serials {
            assert!(!self.t3_units.contains_key(s), "serial {s} generated twice");
            self.t3_units.insert(
                s.clone(),
                Unit {
                    state: SerialState::Generated,
                    sku: Some("S1".into()),
                    grn: String::new(),
                    order: None,
                    condition: Condition::Good,
                },
            );
            self.t3_po_of.insert(s.clone(), index);
            self.t3_serials.push(s.clone());
        }
    }

    /// The serials a `Step::Type3Grn` carries, picked as the model stands.
    pub fn type3_serials(&self, picks: &[u8], stranger: bool) -> Vec<String> {
        pick_serials(&self.t3_serials, picks, stranger, TYPE3_NEVER_GENERATED)
    }

    /// Type 3 GRN: every serial generated for this PO and not yet received. (A line's
    /// receipts never pass ordered + tolerance: no more serials exist for it.)
    pub fn type3_grn(&mut self, id: &str, index: usize, serials: &[String]) -> Answer {
        let po_of = &self.t3_po_of;
        receive(
            &mut self.t3_units,
            &mut self.t3_grns,
            (id, &format!("{}/S1", Self::t3_po_name(index))),
            "S1",
            serials,
            |s, unit| {
                unit.is_some_and(|u| u.state == SerialState::Generated)
                    && po_of.get(s) == Some(&index)
            },
        )
    }

    /// Every serial generated for type 3 POs and the model's view of each, in order.
    pub fn type3_generated_view(&self) -> Vec<(String, Option<Unit>)> {
        self.t3_serials
            .iter()
            .map(|s| (s.clone(), self.t3_units.get(s).cloned()))
            .collect()
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

    /// The type 1 universe's serials and the model's view of each, in order.
    pub fn type1_universe(&self) -> Vec<(String, Option<Unit>)> {
        (0..TYPE1_UNIVERSE)
            .map(|s| (type1_name(s), self.t1_units.get(&type1_name(s)).cloned()))
            .collect()
    }

    /// The serials a `Step::PoolGrn` carries, picked in the pool as it is now.
    pub fn pool_serials(&self, picks: &[u8], stranger: bool) -> Vec<String> {
        pick_serials(&self.pool, picks, stranger, NEVER_GENERATED)
    }
}

pub fn grn_answer(reply: &Result<GrnReply, serialgate::EngineError>) -> Answer {
    match reply {
        Ok(GrnReply::Committed { replayed: true, .. }) => Answer::Replayed,
        Ok(GrnReply::Committed { .. }) => Answer::Done,
        Ok(GrnReply::Rejected { .. }) => Answer::Rejected,
        Ok(GrnReply::Valid { .. }) => unreachable!("no checks here"),
        Err(e) if matches!(e.code(), "GRN_EXISTS" | "PO_CANCELLED" | "UNKNOWN_PO") => {
            Answer::Refused
        }
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

pub fn po_answer(reply: &Result<PoReply, serialgate::EngineError>) -> Answer {
    match reply {
        Ok(PoReply::Created { .. }) => Answer::Done,
        Ok(PoReply::Cancelled { cancelled: 0, .. }) => Answer::Replayed,
        Ok(PoReply::Cancelled { .. }) => Answer::Done,
        Ok(PoReply::Rejected { .. }) => Answer::Rejected,
        Err(e) if e.code() == "UNKNOWN_PO" => Answer::Refused,
        other => panic!("unexpected PO answer: {other:?}"),
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
    /// `PO.CREATE <account> <payload>` (a cancellation too).
    Po(&'static str, PoPayload),
    /// `SERIALS.GENERATE t3 PO <ref> SKU S1 COUNT <n>`.
    GenerateForPo(String, u64),
}

/// A type 1 PO: one S1 line listing `serials` (none, to cancel it).
fn type1_po_payload(reference: String, serials: &[String], cancel: bool) -> PoPayload {
    let listed: Vec<&str> = serials.iter().map(String::as_str).collect();
    let lines: [Line; 1] = [("1", "S1", serials.len() as u64, Some(&listed))];
    let mut payload = po_payload(&reference, if cancel { &[] } else { &lines });
    payload.is_cancel = cancel.then_some(1);
    payload
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
        Step::Type1Po { serials } => Request::Po(
            TYPE1,
            type1_po_payload(
                Model::t1_po_name(model.t1_pos.len()),
                &type1_names(serials),
                false,
            ),
        ),
        Step::Type1Cancel { pick } => Request::Po(
            TYPE1,
            type1_po_payload(
                // With no PO yet, a cancel of one never created.
                Model::t1_po_name(model.type1_pick(*pick).unwrap_or(usize::MAX)),
                &[],
                true,
            ),
        ),
        Step::Type3Po { quantity } => Request::Po(
            TYPE3,
            po_payload(
                &Model::t3_po_name(model.t3_pos.len()),
                &[("1", "S1", u64::from(*quantity), None)],
            ),
        ),
        Step::Type3Generate { pick, count } => Request::GenerateForPo(
            Model::t3_po_name(model.type3_pick(*pick).unwrap_or(usize::MAX)),
            u64::from(*count),
        ),
        Step::Type3Grn {
            id,
            pick,
            picks,
            stranger,
        } => Request::Grn(
            TYPE3,
            grn(
                &format!("G3-{id}"),
                &Model::t3_po_name(model.type3_pick(*pick).unwrap_or(usize::MAX)),
                vec![item(
                    "S1",
                    crate::util::serials(&model.type3_serials(picks, *stranger)),
                )],
            ),
        ),
        Step::Type1Grn { id, pick, serials } => Request::Grn(
            TYPE1,
            grn(
                &format!("T-{id}"),
                &Model::t1_po_name(model.type1_pick(*pick).unwrap_or(usize::MAX)),
                vec![item("S1", crate::util::serials(&type1_names(serials)))],
            ),
        ),
        Step::Reopen => unreachable!("a reopen is the driver's"),
    }
}

fn type1_names(serials: &[u8]) -> Vec<String> {
    serials.iter().map(|&s| type1_name(s)).collect()
}

/// Applies `step` (not a reopen) to the model and returns the answer it should get. A
/// generation's serials are the engine's to choose: [`settle`] takes them.
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
        Step::Type1Po { serials } => model.type1_po(&type1_names(serials)),
        Step::Type1Cancel { pick } => match model.type1_pick(*pick) {
            Some(index) => model.type1_cancel(index),
            None => Answer::Refused, // UNKNOWN_PO
        },
        Step::Type1Grn { id, pick, serials } => match model.type1_pick(*pick) {
            Some(index) => model.type1_grn(&format!("T-{id}"), index, &type1_names(serials)),
            None => Answer::Refused, // UNKNOWN_PO
        },
        Step::Type3Po { quantity } => {
            model.t3_pos.push((u64::from(*quantity), 0));
            Answer::Done
        }
        Step::Type3Generate { pick, count } => model.type3_generation(*pick, *count),
        Step::Type3Grn {
            id,
            pick,
            picks,
            stranger,
        } => {
            let serials = model.type3_serials(picks, *stranger);
            match model.type3_pick(*pick) {
                Some(index) => model.type3_grn(&format!("G3-{id}"), index, &serials),
                None => Answer::Refused, // UNKNOWN_PO (no GRN can exist before a PO)
            }
        }
        Step::Generate { .. } => Answer::Done,
        Step::Reopen => unreachable!("the driver's"),
    }
}

/// Checks what a driver got for `step` against the model and moves the model on: the
/// answer must be the model's, and a generation that was done must have drawn `count` new
/// serials, which the model then holds.
pub fn settle(model: &mut Model, step: &Step, answer: Answer, drawn: &[String], at: &str) {
    let want = expected(model, step);
    assert_eq!(answer, want, "{at}: {step:?}");
    match step {
        Step::Generate { count, sku } if answer == Answer::Done => {
            assert_eq!(drawn.len(), usize::from(*count), "{at}: {step:?}");
            model.generated(drawn, sku.map(|s| POOL_SKUS[s as usize]));
        }
        Step::Type3Generate { pick, count } if answer == Answer::Done => {
            assert_eq!(drawn.len(), usize::from(*count), "{at}: {step:?}");
            model.type3_generated(*pick, drawn);
        }
        _ => assert!(drawn.is_empty(), "{at}: {step:?} drew {drawn:?}"),
    }
}

/// What a generation's error comes to.
pub fn generation_error_answer(code: &str) -> Answer {
    match code {
        "QUANTITY_EXCEEDED" => Answer::Rejected,
        "UNKNOWN_PO" => Answer::Refused,
        other => panic!("unexpected generation error {other}"),
    }
}

/// Sets up the accounts on a fresh engine: type 2 `acme` with PO-M, type 5 `pool` with
/// PO-P (every line large enough never to limit a GRN), type 1 `t1` with no PO.
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
    let payload = po_payload(
        "PO-P",
        &[("1", "S1", 1_000_000, None), ("2", "S2", 1_000_000, None)],
    );
    engine.create_po(POOL, payload).unwrap();
    let options = AccountOptions::new(UsnType::SellerOnPo);
    assert!(engine.create_account(TYPE1, options).unwrap());
    engine
        .set_skus(TYPE1, SkuKind::Serialized, &["S1".into()])
        .unwrap();
    let options = AccountOptions {
        prefix: Some("G3".into()),
        tolerance_pct: Some(TYPE3_TOLERANCE_PCT as u32),
        ..AccountOptions::new(UsnType::GeneratedForPo)
    };
    assert!(engine.create_account(TYPE3, options).unwrap());
    engine
        .set_skus(TYPE3, SkuKind::Serialized, &["S1".into()])
        .unwrap();
}

fn check(engine: &Engine, model: &Model, at: usize) {
    for (account, expected) in [
        (ACCOUNT, model.universe()),
        (POOL, model.pool()),
        (TYPE1, model.type1_universe()),
        (TYPE3, model.type3_generated_view()),
    ] {
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
        let mut drawn = Vec::new();
        let answer = match request(&model, step) {
            Request::Grn(account, payload) => {
                grn_answer(&engine.receive(account, &payload, serialgate::GrnMode::Commit))
            }
            Request::Outward(payload) => order_answer(&engine.outward(ACCOUNT, &payload)),
            Request::Return(payload) => order_answer(&engine.return_units(ACCOUNT, &payload)),
            Request::Po(account, payload) => po_answer(&engine.create_po(account, payload)),
            Request::Generate(count, sku) => {
                drawn = strings(&engine.generate_pool(POOL, count, sku).unwrap().serials);
                Answer::Done
            }
            Request::GenerateForPo(po, count) => {
                match engine.generate_for_po(TYPE3, &po, "S1", count) {
                    Ok(reply) => {
                        drawn = strings(&reply.serials);
                        Answer::Done
                    }
                    Err(e) => generation_error_answer(e.code()),
                }
            }
        };
        settle(&mut model, step, answer, &drawn, &format!("step {at}"));
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
        [Done, Done, Done, Replayed, Refused, Rejected, Done, Rejected, Rejected, Rejected, Done]
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_reference_model(steps in proptest::collection::vec(step(), 1..40)) {
        run(&steps);
    }
}

/// Type 1 rules, spelled out: a PO lists serials unknown or cancelled; a GRN takes only
/// serials expected on its PO, once; a cancelled PO frees what it had not received and
/// takes no GRN.
#[test]
fn type1_rules_match_by_hand() {
    let po = |serials: &[u8]| Step::Type1Po {
        serials: serials.to_vec(),
    };
    let grn = |id: u8, pick: u8, serials: &[u8]| Step::Type1Grn {
        id,
        pick,
        serials: serials.to_vec(),
    };
    let steps = [
        grn(0, 0, &[0]),    // no PO yet
        po(&[0, 1, 2]),     // PO-T0
        po(&[2, 3]),        // 2 is expected on PO-T0
        po(&[3, 3]),        // listed twice
        po(&[3, 4]),        // PO-T1
        grn(0, 0, &[0, 3]), // 3 is on PO-T1
        grn(0, 0, &[0, 1]),
        grn(0, 0, &[0, 1]), // replay
        grn(0, 1, &[3]),    // same id, other body
        grn(1, 0, &[0]),    // received already
        Step::Type1Cancel { pick: 0 },
        Step::Type1Cancel { pick: 0 },
        grn(2, 0, &[2]), // PO-T0 cancelled
        Step::Reopen,
        po(&[2, 0]), // 0 was received
        po(&[2, 5]), // PO-T2: 2 was cancelled, free again
        grn(2, 2, &[2]),
    ];
    use Answer::*;
    assert_eq!(
        run(&steps),
        [
            Refused, Done, Rejected, Rejected, Done, Rejected, Done, Replayed, Refused, Rejected,
            Done, Replayed, Refused, Rejected, Done, Done
        ]
    );
}

/// Type 3 rules, spelled out: generation up to ordered + tolerance per PO; a GRN takes
/// only serials generated for its PO, once.
#[test]
fn type3_rules_match_by_hand() {
    let generate = |pick: u8, count: u8| Step::Type3Generate { pick, count };
    let grn = |id: u8, pick: u8, picks: &[u8], stranger: bool| Step::Type3Grn {
        id,
        pick,
        picks: picks.to_vec(),
        stranger,
    };
    let steps = [
        generate(0, 1),                // no PO yet
        Step::Type3Po { quantity: 2 }, // PO-G0: 2 + 1 allowed
        generate(0, 2),                // serials 0, 1
        generate(0, 2),                // past 3
        generate(0, 1),                // serial 2: the tolerance
        Step::Type3Po { quantity: 1 }, // PO-G1: 1 + 1 allowed
        generate(1, 2),                // serials 3, 4
        grn(0, 0, &[0, 3], false),     // 3 is PO-G1's
        grn(0, 0, &[0, 1, 2], false),  // over-receipt within tolerance
        grn(0, 0, &[0, 1, 2], false),  // replay
        grn(1, 1, &[3], true),         // a serial never generated
        grn(1, 1, &[0], false),        // PO-G0's
        Step::Reopen,
        grn(1, 1, &[4, 3], false),
        grn(2, 1, &[4], false), // received already
    ];
    use Answer::*;
    assert_eq!(
        run(&steps),
        [
            Refused, Done, Done, Rejected, Done, Done, Done, Rejected, Done, Replayed, Rejected,
            Rejected, Done, Rejected
        ]
    );
}
