//! A consistency check of one account's stored data against the invariants of
//! docs/design.md: what the fast paths rely on is recomputed the slow way and compared.
//! It reads everything the account has; it is for tests and for operators, not hot paths.

use std::collections::{HashMap, HashSet};

use super::{Engine, Result};
use crate::domain::{PoRecord, SerialRecord, SerialState, SkuKind};
use crate::serial;
use crate::store::{codec, keys};

/// Most problems reported by one check.
const PROBLEMS_MAX: usize = 50;

impl Engine {
    /// Checks account `account` and returns every inconsistency found (empty: consistent):
    /// - the serials open on each PO line, as the GRN fast path sees them (lists, `open_from`,
    ///   the PO's GRNs), are exactly the records expected/generated on that line;
    /// - each serialized PO line's `received` equals its inwarded and outward records;
    /// - the prefilter holds every stored serial of the account.
    pub fn verify_account(&self, account: &str) -> Result<Vec<String>> {
        let slot = self.slot(account)?;
        let mut problems = Vec::new();
        let mut report = |problem: String| {
            if problems.len() < PROBLEMS_MAX {
                problems.push(problem);
            }
        };

        // Every serial record of the account, by value.
        let mut records: HashMap<Vec<u8>, SerialRecord> = HashMap::new();
        let (start, end) = (keys::serial_range_start(0), keys::serial_range_end());
        let mut undecodable = Vec::new();
        self.store.scan(&start, &end, &mut |key, value| {
            if let Some(parsed) = keys::parse_serial(key).filter(|k| k.account == slot.id) {
                match codec::decode::<SerialRecord>(value) {
                    Ok(record) => {
                        records.insert(parsed.serial.to_vec(), record);
                    }
                    Err(e) => undecodable.push(format!("{:?}: {e}", parsed.serial)),
                }
            }
            true
        })?;
        for problem in undecodable {
            report(format!("undecodable record {problem}"));
        }
        for serial in records.keys() {
            if !self
                .prefilter
                .contains(serial::serial_hash(slot.id, serial))
            {
                report(format!(
                    "serial {:?} is stored but not in the prefilter",
                    String::from_utf8_lossy(serial)
                ));
            }
        }

        let mut pos: Vec<PoRecord> = Vec::new();
        let mut undecodable_pos = Vec::new();
        let po_start = keys::po(slot.id, "");
        let po_end = keys::po(slot.id + 1, "");
        self.store.scan(&po_start, &po_end, &mut |key, value| {
            match codec::decode::<PoRecord>(value) {
                Ok(po) => pos.push(po),
                Err(e) => undecodable_pos.push(format!("{key:?}: {e}")),
            }
            true
        })?;
        for problem in undecodable_pos {
            report(format!("undecodable PO {problem}"));
        }

        for po in &pos {
            let open = self.open_serials(slot.id, po)?;
            let fast: HashSet<(Vec<u8>, u32)> = open
                .by_hash
                .iter()
                .map(|&(_, i)| {
                    (
                        open.serials.get(i as usize).to_vec(),
                        open.lines[i as usize],
                    )
                })
                .collect();
            let slow: HashSet<(Vec<u8>, u32)> = records
                .iter()
                .filter(|(_, r)| {
                    r.po == po.id
                        && matches!(r.state, SerialState::Expected | SerialState::Generated)
                })
                .map(|(serial, r)| (serial.clone(), r.line))
                .collect();
            for (serial, line) in fast.difference(&slow) {
                report(format!(
                    "PO {:?} line {line}: {:?} looks open from the PO's lists but its record is not",
                    po.reference_code,
                    String::from_utf8_lossy(serial)
                ));
            }
            for (serial, line) in slow.difference(&fast) {
                report(format!(
                    "PO {:?} line {line}: {:?} is open by its record but not in the PO's lists",
                    po.reference_code,
                    String::from_utf8_lossy(serial)
                ));
            }
            for (at, line) in po.lines.iter().enumerate() {
                let name = self.sku_name(slot.id, line.sku)?.unwrap_or_default();
                let serialized = self
                    .sku_record(slot.id, &name)?
                    .is_none_or(|s| s.kind == SkuKind::Serialized);
                if !serialized {
                    continue;
                }
                let inwarded = records
                    .values()
                    .filter(|r| {
                        r.po == po.id
                            && r.line as usize == at
                            && matches!(r.state, SerialState::Inwarded | SerialState::Outward)
                    })
                    .count() as u64;
                if inwarded != line.received {
                    report(format!(
                        "PO {:?} line {:?}: received {} but {inwarded} records are inwarded",
                        po.reference_code, line.line_item_number, line.received
                    ));
                }
            }
        }
        Ok(problems)
    }
}
