//! Random sequences of PO inserts, updates and cancels, generation, GRNs, outward, return
//! and reopen on a type 1 or type 3 account, over a small universe of serials so requests
//! collide often. After every step the stored data must pass `Engine::verify_account`
//! (the invariants of docs/design.md, recomputed the slow way), a request that was refused
//! or rejected must have written nothing, and a reopen must find exactly what was there.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use serialgate::domain::UsnType;
use serialgate::engine::{GrnItem, OrderPayload, PoItem, PoPayload};
use serialgate::outcome::{GrnReply, OrderReply, PoReply};
use serialgate::serial::SerialList;
use serialgate::{AccountOptions, Engine, EngineConfig, GrnMode};

use crate::util::*;

const SKUS: [&str; 3] = ["S1", "S2", "P1"];
/// Serial indices below this name listed or generated values; the rest are unknown ones.
const KNOWN: u8 = 16;

#[derive(Debug, Clone)]
enum Step {
    /// Lines of (sku, quantity, first serial, exact serial count).
    CreatePo {
        po: u8,
        lines: Vec<(u8, u8, u8, bool)>,
    },
    /// Lines of (lineItemNumber, sku, quantity, first serial if serials are given).
    UpdatePo {
        po: u8,
        lines: Vec<(u8, u8, u8, Option<u8>)>,
    },
    CancelPo {
        po: u8,
    },
    Generate {
        po: u8,
        sku: u8,
        count: u8,
    },
    /// Serials picked among those the PO's report shows open (by index), plus maybe one
    /// from the universe; items carry their SKU unless `scan` (type 3 may omit it).
    Grn {
        po: u8,
        picks: Vec<u8>,
        noise: Option<u8>,
        scan: bool,
    },
    /// Serials picked among the PO's inwarded (outward) ones, plus maybe one from the
    /// universe.
    Outward {
        order: u8,
        po: u8,
        picks: Vec<u8>,
        noise: Option<u8>,
    },
    Return {
        order: u8,
        po: u8,
        picks: Vec<u8>,
        noise: Option<u8>,
        bad: bool,
    },
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..2u8, vec((0..3u8, 1..4u8, 0..KNOWN, prop::bool::weighted(0.85)), 1..4))
            .prop_map(|(po, lines)| Step::CreatePo { po, lines }),
        2 => (0..2u8, vec((0..4u8, 0..3u8, 1..4u8, option::of(0..KNOWN)), 1..4))
            .prop_map(|(po, lines)| Step::UpdatePo { po, lines }),
        1 => (0..2u8).prop_map(|po| Step::CancelPo { po }),
        3 => (0..2u8, 0..2u8, 1..3u8).prop_map(|(po, sku, count)| Step::Generate { po, sku, count }),
        5 => (0..2u8, vec(any::<u8>(), 1..5), option::weighted(0.15, 0..KNOWN + 4), any::<bool>())
            .prop_map(|(po, picks, noise, scan)| Step::Grn { po, picks, noise, scan }),
        2 => (0..2u8, 0..2u8, vec(any::<u8>(), 1..4), option::weighted(0.2, 0..KNOWN + 2))
            .prop_map(|(order, po, picks, noise)| Step::Outward { order, po, picks, noise }),
        2 => (0..2u8, 0..2u8, vec(any::<u8>(), 1..4), option::weighted(0.2, 0..KNOWN + 2), any::<bool>())
            .prop_map(|(order, po, picks, noise, bad)| Step::Return { order, po, picks, noise, bad }),
        1 => Just(Step::Reopen),
    ]
}

/// `count` consecutive values of the universe from `first` on, wrapping.
fn run_of(first: u8, count: u8) -> SerialList {
    (0..count)
        .map(|k| format!("V{}", (first + k) % KNOWN))
        .collect::<Vec<_>>()
        .iter()
        .collect()
}

fn po_payload(po: u8, create_or_update: &str, items: Vec<PoItem>) -> PoPayload {
    PoPayload {
        vendor_id: "V".into(),
        reference_code: format!("PO-{po}"),
        create_or_update: create_or_update.into(),
        is_cancel: None,
        items,
    }
}

struct World {
    dir: tempfile::TempDir,
    config: EngineConfig,
    engine: Option<Engine>,
    usn: UsnType,
    /// Every serial generated so far (type 3), in order.
    generated: Vec<String>,
    grn_seq: u32,
}

impl World {
    fn engine(&self) -> &Engine {
        self.engine.as_ref().expect("engine open")
    }

    fn serial(&self, index: u8) -> String {
        match self.usn {
            UsnType::GeneratedForPo if index < KNOWN && !self.generated.is_empty() => {
                self.generated[index as usize % self.generated.len()].clone()
            }
            _ if index < KNOWN => format!("V{index}"),
            _ => format!("X{index}"),
        }
    }

    /// `(serial, sku)` of the PO's report rows in one of `states` (none if no such PO).
    fn rows(&self, reference: &str, states: &[&str]) -> Vec<(String, String)> {
        let Ok(csv) = self.engine().po_report(ACCOUNT, reference) else {
            return Vec::new();
        };
        csv::Reader::from_reader(csv.as_slice())
            .records()
            .map(|r| r.unwrap())
            .filter(|r| states.contains(&&r[3]))
            .map(|r| (r[0].to_string(), r[1].to_string()))
            .collect()
    }

    /// Runs one step; returns whether it was refused or rejected (must write nothing).
    fn run(&mut self, step: &Step) -> bool {
        let engine = self.engine();
        match step {
            Step::CreatePo { po, lines } => {
                let items = lines
                    .iter()
                    .enumerate()
                    .map(|(n, &(sku, quantity, first, exact))| PoItem {
                        line_item_number: (n + 1).to_string(),
                        sku: SKUS[sku as usize].into(),
                        quantity: quantity.into(),
                        serials: (self.usn == UsnType::SellerOnPo && sku < 2)
                            .then(|| run_of(first, if exact { quantity } else { quantity + 1 })),
                    })
                    .collect();
                !matches!(
                    engine.create_po(ACCOUNT, po_payload(*po, "I", items)),
                    Ok(PoReply::Created { .. })
                )
            }
            Step::UpdatePo { po, lines } => {
                let mut seen = std::collections::HashSet::new();
                let items = lines
                    .iter()
                    .filter(|(number, ..)| seen.insert(*number))
                    .map(|&(number, sku, quantity, first)| PoItem {
                        line_item_number: (number + 1).to_string(),
                        sku: SKUS[sku as usize].into(),
                        quantity: quantity.into(),
                        serials: first
                            .filter(|_| sku < 2)
                            .map(|first| run_of(first, quantity)),
                    })
                    .collect();
                !matches!(
                    engine.create_po(ACCOUNT, po_payload(*po, "U", items)),
                    Ok(PoReply::Updated { .. })
                )
            }
            Step::CancelPo { po } => {
                let payload = PoPayload {
                    vendor_id: String::new(),
                    reference_code: format!("PO-{po}"),
                    create_or_update: "I".into(),
                    is_cancel: Some(1),
                    items: Vec::new(),
                };
                !matches!(
                    engine.create_po(ACCOUNT, payload),
                    Ok(PoReply::Cancelled { .. })
                )
            }
            Step::Generate { po, sku, count } => {
                let reference = format!("PO-{po}");
                match engine.generate_for_po(
                    ACCOUNT,
                    &reference,
                    SKUS[*sku as usize],
                    (*count).into(),
                ) {
                    Ok(reply) => {
                        self.generated.extend(strings(&reply.serials));
                        false
                    }
                    Err(_) => true,
                }
            }
            Step::Grn {
                po,
                picks,
                noise,
                scan,
            } => {
                self.grn_seq += 1;
                let reference = format!("PO-{po}");
                let open = self.rows(&reference, &["expected", "generated"]);
                let mut chosen: Vec<(String, String)> = picks
                    .iter()
                    .filter_map(|&p| open.get(p as usize % open.len().max(1)).cloned())
                    .collect();
                chosen.sort();
                chosen.dedup();
                if let Some(i) = noise {
                    chosen.push((self.serial(*i), "S1".into()));
                }
                let mut by_sku: Vec<(String, Vec<String>)> = Vec::new();
                for (serial, sku) in chosen {
                    match by_sku.iter_mut().find(|(s, _)| *s == sku) {
                        Some((_, list)) => list.push(serial),
                        None => by_sku.push((sku, vec![serial])),
                    }
                }
                let items = by_sku
                    .into_iter()
                    .map(|(sku, list)| GrnItem {
                        // Only a type 3 serial names its SKU.
                        sku: (!(*scan && self.usn == UsnType::GeneratedForPo)).then_some(sku),
                        serials: Some(list.iter().collect()),
                        ..GrnItem::default()
                    })
                    .collect();
                let payload = grn(&format!("G{}", self.grn_seq), &reference, items);
                !matches!(
                    self.engine().receive(ACCOUNT, &payload, GrnMode::Commit),
                    Ok(GrnReply::Committed { .. })
                )
            }
            Step::Outward {
                order,
                po,
                picks,
                noise,
            }
            | Step::Return {
                order,
                po,
                picks,
                noise,
                ..
            } => {
                let wanted: &[&str] = match step {
                    Step::Outward { .. } => &["inwarded"],
                    _ => &["outward"],
                };
                let rows = self.rows(&format!("PO-{po}"), wanted);
                let mut serials: Vec<String> = picks
                    .iter()
                    .filter_map(|&p| {
                        rows.get(p as usize % rows.len().max(1))
                            .map(|r| r.0.clone())
                    })
                    .collect();
                serials.sort();
                serials.dedup();
                if let Some(i) = noise {
                    serials.push(self.serial(*i));
                }
                let mut payload = OrderPayload {
                    order: format!("SO-{order}"),
                    serials: serials.iter().collect(),
                    ..OrderPayload::default()
                };
                let engine = self.engine();
                let reply = match step {
                    Step::Return { bad, .. } => {
                        if *bad {
                            payload.condition = Some(serialgate::domain::Condition::Bad);
                            payload.qc_reason = Some("QC".into());
                        }
                        engine.return_units(ACCOUNT, &payload)
                    }
                    _ => engine.outward(ACCOUNT, &payload),
                };
                !matches!(
                    reply,
                    Ok(OrderReply::Outward { .. } | OrderReply::Returned { .. })
                )
            }
            Step::Reopen => {
                let before = digest(self.engine());
                self.engine = None;
                self.engine = Some(Engine::open(self.dir.path(), self.config.clone()).unwrap());
                assert_eq!(digest(self.engine()), before, "reopen changed the data");
                false
            }
        }
    }
}

/// `scan_lists`: type 1/3 GRNs always read the PO's lists (else always the records), so
/// both ways of recognising open serials are checked.
fn run_steps(usn: UsnType, path: WritePath, scan_lists: bool, steps: &[Step]) {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        po_list_scan_ratio: if scan_lists { u64::MAX } else { 0 },
        ..config(path)
    };
    let engine = Engine::open(dir.path(), config.clone()).unwrap();
    setup_account(&engine, AccountOptions::new(usn));
    let mut world = World {
        dir,
        config,
        engine: Some(engine),
        usn,
        generated: Vec::new(),
        grn_seq: 0,
    };
    for (n, step) in steps.iter().enumerate() {
        let before = digest(world.engine());
        let refused = world.run(step);
        if refused {
            assert_eq!(
                digest(world.engine()),
                before,
                "step {n} {step:?} was refused but wrote something"
            );
        }
        let problems = world.engine().verify_account(ACCOUNT).unwrap();
        assert!(
            problems.is_empty(),
            "after step {n} {step:?}: {problems:#?}"
        );
    }
}

proptest! {
    // 32 cases per type in the suite; PROPTEST_CASES=2000 for a longer search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(32),
        ..ProptestConfig::default()
    })]

    #[test]
    fn type1_sequences_keep_every_invariant(
        steps in vec(step(), 1..40), wal in any::<bool>(), scan in any::<bool>()
    ) {
        let path = if wal { WritePath::Wal } else { WritePath::Ingest };
        run_steps(UsnType::SellerOnPo, path, scan, &steps);
    }

    #[test]
    fn type3_sequences_keep_every_invariant(
        steps in vec(step(), 1..40), wal in any::<bool>(), scan in any::<bool>()
    ) {
        let path = if wal { WritePath::Wal } else { WritePath::Ingest };
        run_steps(UsnType::GeneratedForPo, path, scan, &steps);
    }
}
