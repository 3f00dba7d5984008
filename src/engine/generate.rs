//! Engine-generated serials: fresh values from the account's generator (types 3, 4, 5),
//! `SERIALS.GENERATE` for a type 3 PO line and for the type 5 pool, and drawing unused
//! pooled serials for a type 5 auto-GRN.
//!
//! The counter advances in the same atomic write as the serials it produced, so after a
//! crash a counter value is either used and stored, or neither: never issued twice. A value
//! the account already knows (another prefix or check setting could spell it) is skipped.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::batch;
use super::{check_name, now_ms, rules, Engine, EngineError, Result};
use crate::domain::{
    AccountRecord, Event, EventKind, PoStatus, SerialRecord, SerialState, SkuKind, SkuRecord,
    UsnType,
};
use crate::generator::{Generator, COUNTER_MAX};
use crate::outcome::OutcomeCode;
use crate::serial::{self, SerialList};
use crate::store::{codec, keys};

/// Counter values spelled per parallel task.
const GENERATE_PIECE: u64 = 65_536;

/// Most serials one `SERIALS.GENERATE` may make.
pub const GENERATE_COUNT_MAX: u64 = 1_000_000;

/// The answer to `SERIALS.GENERATE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateReply {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    pub count: usize,
    pub serials: SerialList,
}

/// Draws `count` serials the account has never stored from its generator, advancing
/// `record.last_serial_counter`; the caller writes `record` in the same commit as them.
pub(super) fn draw(
    engine: &Engine,
    account: u32,
    record: &mut AccountRecord,
    count: u64,
) -> Result<SerialList> {
    let generator = Generator::for_account(record);
    let len = generator.serial_len();
    let mut out = SerialList::with_capacity(count as usize, count as usize * len);
    let mut need = count;
    while need > 0 {
        let first = record.last_serial_counter + 1;
        let last = first
            .checked_add(need - 1)
            .filter(|&last| last <= COUNTER_MAX)
            .ok_or_else(|| {
                EngineError::Limit(format!(
                    "the account's serial counter is at {}: {need} more would pass {COUNTER_MAX}",
                    record.last_serial_counter
                ))
            })?;
        // Spelled in parallel pieces, then joined (two copies per piece).
        let pieces: Vec<SerialList> = (first..=last)
            .step_by(GENERATE_PIECE as usize)
            .collect::<Vec<u64>>()
            .into_par_iter()
            .map(|from| {
                let to = (from + GENERATE_PIECE - 1).min(last);
                let n = (to - from + 1) as usize;
                let mut piece = SerialList::with_capacity(n, n * len);
                for counter in from..=to {
                    generator.push(counter, &mut piece);
                }
                piece
            })
            .collect();
        let mut candidates = SerialList::with_capacity(need as usize, need as usize * len);
        for piece in &pieces {
            candidates.append(piece);
        }
        drop(pieces);
        record.last_serial_counter = last;
        // Values the prefilter cannot rule out are read; any stored one is skipped. Probed in
        // hash order, a segment at a time: far cheaper than one random probe per value.
        let mut keyed: Vec<(u64, u32)> = (0..candidates.len() as u32)
            .into_par_iter()
            .map(|i| (serial::serial_hash(account, candidates.get(i as usize)), i))
            .collect();
        keyed.par_sort_unstable();
        let mut hit = vec![false; keyed.len()];
        engine
            .prefilter
            .probe_sorted(&keyed, |entry| entry.0, &mut hit);
        let maybe: Vec<usize> = keyed
            .iter()
            .zip(&hit)
            .filter(|(_, hit)| **hit)
            .map(|((_, i), _)| *i as usize)
            .collect();
        drop((keyed, hit));
        let mut taken = vec![false; candidates.len()];
        if !maybe.is_empty() {
            let suspects: SerialList = maybe.iter().map(|&i| candidates.get(i)).collect();
            for (&i, record) in maybe
                .iter()
                .zip(batch::read_records(engine, account, &suspects)?)
            {
                taken[i] = record.is_some();
            }
        }
        need = 0;
        for (i, taken) in taken.into_iter().enumerate() {
            if taken {
                need += 1;
            } else {
                out.push(candidates.get(i));
            }
        }
    }
    Ok(out)
}

/// Unused pooled serials for a type 5 auto-GRN: for each `(sku, count)`, serials in state
/// `generated` bound to that SKU or to none, oldest batch first. Fewer than asked are
/// returned when the pool runs short (the GRN then reports the shortfall).
pub(super) fn draw_pool(
    engine: &Engine,
    account: u32,
    wanted: &[(u32, u64)],
) -> Result<Vec<SerialList>> {
    let mut out: Vec<SerialList> = wanted.iter().map(|_| SerialList::new()).collect();
    let mut left: Vec<u64> = wanted.iter().map(|(_, n)| *n).collect();
    if left.iter().all(|&n| n == 0) {
        return Ok(out);
    }
    let (start, end) = keys::list_kind_range(account, keys::ListKind::Pool);
    // Pool batches are read one chunk key at a time so a large pool is never held at once.
    let mut chunk_keys = Vec::new();
    engine.store.scan(&start, &end, &mut |key, _| {
        chunk_keys.push(key.to_vec());
        true
    })?;
    for chunk_key in chunk_keys {
        let mut end = chunk_key.clone();
        end.push(0);
        let serials = batch::read_lists(engine, &chunk_key, &end)?;
        let records = batch::read_records(engine, account, &serials)?;
        for (i, record) in records.iter().enumerate() {
            let Some(record) = record else { continue };
            if record.state != SerialState::Generated || record.po != 0 {
                continue;
            }
            let slot = wanted
                .iter()
                .zip(&left)
                .position(|((sku, _), &n)| n > 0 && (record.sku == 0 || record.sku == *sku));
            if let Some(slot) = slot {
                out[slot].push(serials.get(i));
                left[slot] -= 1;
            }
        }
        if left.iter().all(|&n| n == 0) {
            break;
        }
    }
    Ok(out)
}

fn check_count(count: u64) -> Result<()> {
    if count == 0 {
        return Err(EngineError::BadRequest("COUNT must be at least 1".into()));
    }
    if count > GENERATE_COUNT_MAX {
        return Err(EngineError::Limit(format!(
            "COUNT {count} is past the limit of {GENERATE_COUNT_MAX} serials per request"
        )));
    }
    Ok(())
}

impl Engine {
    /// The registered, serialized SKU `name`: generated serials belong to one.
    fn serialized_sku(&self, account: u32, name: &str) -> Result<SkuRecord> {
        let sku = self.sku_record(account, name)?.ok_or_else(|| {
            EngineError::Outcome(
                OutcomeCode::UnknownSku,
                format!("SKU {name:?} is not registered"),
            )
        })?;
        if sku.kind != SkuKind::Serialized {
            return Err(EngineError::Outcome(
                OutcomeCode::SkuNotSerialized,
                format!("SKU {name:?} is plain: it has no serials"),
            ));
        }
        Ok(sku)
    }

    /// `SERIALS.GENERATE <acct> PO <ref> SKU <sku> COUNT <n>` (type 3): serials bound to the
    /// PO's line(s) of that SKU, up to ordered + tolerance allowance per line.
    pub fn generate_for_po(
        &self,
        account: &str,
        reference_code: &str,
        sku: &str,
        count: u64,
    ) -> Result<GenerateReply> {
        check_count(count)?;
        check_name("SKU", sku)?;
        self.check_healthy()?;
        let slot = self.slot(account)?;
        let guard = slot.lock.lock();
        let mut record = self.account_record(account)?;
        if record.usn_type != UsnType::GeneratedForPo {
            return Err(EngineError::BadRequest(format!(
                "SERIALS.GENERATE ... PO is for USN type 3 accounts; {account:?} is type {}",
                record.usn_type.number()
            )));
        }
        let mut po = self.po_record(slot.id, reference_code)?;
        if po.status == PoStatus::Cancelled {
            return Err(EngineError::PoCancelled(po.reference_code));
        }
        let sku_record = self.serialized_sku(slot.id, sku)?;
        // Spread over the PO's lines of this SKU, in line order, each up to its room.
        let mut takes: Vec<(usize, u64)> = Vec::new();
        let mut left = count;
        for (i, line) in po.lines.iter().enumerate() {
            if line.sku != sku_record.id || left == 0 {
                continue;
            }
            let take = left.min(rules::line_generation_capacity(&record, line));
            if take > 0 {
                takes.push((i, take));
                left -= take;
            }
        }
        if !po
            .lines
            .iter()
            .any(|l| l.sku == sku_record.id && !l.is_removed())
        {
            return Err(EngineError::Outcome(
                OutcomeCode::WrongSku,
                format!("SKU {sku:?} is not on PO {reference_code:?}"),
            ));
        }
        if left > 0 {
            return Err(EngineError::Outcome(
                OutcomeCode::QuantityExceeded,
                format!(
                    "PO {reference_code:?} has room for {} more serials of SKU {sku:?} \
                     (ordered + tolerance), {count} asked",
                    count - left
                ),
            ));
        }
        let serials = draw(self, slot.id, &mut record, count)?;
        let now = now_ms();
        let mut puts = Vec::new();
        let mut unit_lines = Vec::with_capacity(takes.len());
        let mut from = 0usize;
        for &(line, take) in &takes {
            let po_line = &mut po.lines[line];
            let owner = (u64::from(po.id) << 16) | line as u64;
            puts.extend(batch::list_chunks(
                slot.id,
                keys::ListKind::PoLine,
                owner,
                po_line.listed as u32,
                (from..from + take as usize).map(|i| serials.get(i)),
                batch::LIST_CHUNK_SERIALS as u32,
            ));
            po_line.generated += take;
            po_line.listed += take;
            from += take as usize;
            unit_lines.push((from as u32, line));
        }
        po.updated_at_ms = now;
        let values: Vec<Vec<u8>> = takes
            .iter()
            .map(|&(line, _)| {
                codec::encode(&SerialRecord::unreceived(
                    SerialState::Generated,
                    sku_record.id,
                    po.id,
                    line as u32,
                    vec![Event {
                        at_ms: now,
                        kind: EventKind::Generated { po: po.id },
                    }],
                ))
            })
            .collect();
        puts.push((keys::po(slot.id, &po.reference_code), codec::encode(&po)));
        puts.push((keys::account(account), codec::encode(&record)));
        batch::commit(self, guard, slot.id, &serials, puts, &|unit, out| {
            let at = unit_lines.partition_point(|(end, _)| *end <= unit);
            out.extend_from_slice(&values[at]);
        })?;
        Ok(GenerateReply {
            reference_code: Some(po.reference_code),
            sku: Some(sku.to_string()),
            count: serials.len(),
            serials,
        })
    }

    /// `SERIALS.GENERATE <acct> COUNT <n> [SKU <sku>]` (type 5): pooled serials, bound to
    /// `sku` if given, else bound at GRN.
    pub fn generate_pool(
        &self,
        account: &str,
        count: u64,
        sku: Option<&str>,
    ) -> Result<GenerateReply> {
        check_count(count)?;
        self.check_healthy()?;
        let slot = self.slot(account)?;
        let guard = slot.lock.lock();
        let mut record = self.account_record(account)?;
        if record.usn_type != UsnType::Pool {
            return Err(EngineError::BadRequest(format!(
                "pooled SERIALS.GENERATE is for USN type 5 accounts; {account:?} is type {} \
                 (type 3 generates with PO <ref> SKU <sku>)",
                record.usn_type.number()
            )));
        }
        let sku_id = match sku {
            None => 0,
            Some(name) => {
                check_name("SKU", name)?;
                self.serialized_sku(slot.id, name)?.id
            }
        };
        let batch_owner = record.last_serial_counter + 1;
        let serials = draw(self, slot.id, &mut record, count)?;
        let now = now_ms();
        let value = codec::encode(&SerialRecord::unreceived(
            SerialState::Generated,
            sku_id,
            0,
            0,
            vec![Event {
                at_ms: now,
                kind: EventKind::Generated { po: 0 },
            }],
        ));
        let mut puts = batch::list_chunks(
            slot.id,
            keys::ListKind::Pool,
            batch_owner,
            0,
            serials.iter(),
            1,
        );
        puts.push((keys::account(account), codec::encode(&record)));
        batch::commit(self, guard, slot.id, &serials, puts, &|_, out| {
            out.extend_from_slice(&value)
        })?;
        Ok(GenerateReply {
            reference_code: None,
            sku: sku.map(str::to_string),
            count: serials.len(),
            serials,
        })
    }
}
