//! `PO.CREATE`: insert ("I"), update ("U") and cancel (`isCancel` 1) of Easyecom POs.
//!
//! Type 1 POs carry their serials: every serialized line exactly `quantity` of them, unique
//! and new to the account, all validated in one pass (the batch pipeline) with every failing
//! serial reported, and stored as `expected` in the same atomic write as the PO.
//!
//! Update replaces the PO's lines by the payload's: a line is matched by lineItemNumber; it
//! may change (SKU, quantity, type 1 serials) or go away only while nothing was received
//! against it. Lines keep their index (serial records point at it); a removed line stays
//! with nothing ordered. A changed or removed line's unreceived serials become `cancelled`,
//! except type 1 serials the new line lists again and type 3 serials still within the new
//! quantity.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use super::batch::{self, Units, Verdicts};
use super::payload::{PoItem, PoPayload};
use super::{
    check_name, now_ms, rules, Engine, EngineError, Result, PO_IMPORT_POS_MAX, PO_LINES_MAX,
};
use crate::domain::{
    AccountRecord, Event, EventKind, PoLine, PoRecord, PoStatus, SerialRecord, SerialState,
    SkuKind, SkuRecord, UsnType,
};
use crate::outcome::{OutcomeCode, PoImportReply, PoReply, UnitError};
use crate::serial::{self, SerialList};
use crate::store::{codec, keys};

/// A line's list owner in `keys::ListKind::PoLine`.
pub(super) fn line_owner(po: u32, line: usize) -> u64 {
    (u64::from(po) << 16) | line as u64
}

/// The serials open on a PO's lines (types 1 and 3): listed on a live line from its
/// `open_from` on, and not received by any of the PO's GRNs (design.md, invariant 6).
pub(super) struct OpenSerials {
    pub serials: SerialList,
    /// The line index of each serial.
    pub lines: Vec<u32>,
    /// `(hash, index into serials)`, ascending.
    pub by_hash: Vec<(u64, u32)>,
}

/// `(hash, index)` of every serial of `list`, sorted.
fn hashed(account: u32, list: &SerialList) -> Vec<(u64, u32)> {
    let mut out: Vec<(u64, u32)> = (0..list.len() as u32)
        .into_par_iter()
        .map(|i| (serial::serial_hash(account, list.get(i as usize)), i))
        .collect();
    out.par_sort_unstable();
    out
}

/// What a PO write does to serial records.
#[derive(Default)]
struct SerialWrites {
    serials: SerialList,
    records: Vec<SerialRecord>,
    expected: u64,
    cancelled: u64,
}

impl SerialWrites {
    fn push(&mut self, serial: &[u8], record: SerialRecord) {
        self.serials.push(serial);
        self.records.push(record);
    }

    fn append(&mut self, other: SerialWrites) {
        self.serials.append(&other.serials);
        self.records.extend(other.records);
        self.expected += other.expected;
        self.cancelled += other.cancelled;
    }
}

/// A validated new PO: its serial records, its other keys, and the reply.
struct PreparedInsert {
    writes: SerialWrites,
    puts: Vec<(Vec<u8>, Vec<u8>)>,
    reply: PoReply,
}

/// Serials listed by more than one PO of an import, as errors on every PO after the first
/// that lists each (by PO index). Duplicates within one PO are the PO check's to report.
fn cross_po_duplicates(account: u32, payloads: &[PoPayload]) -> HashMap<usize, Vec<UnitError>> {
    let lists: Vec<(usize, &PoItem, &SerialList)> = payloads
        .iter()
        .enumerate()
        .flat_map(|(po, p)| p.items.iter().map(move |item| (po, item)))
        .filter_map(|(po, item)| item.serials.as_ref().map(|s| (po, item, s)))
        .collect();
    // (hash, list, index in list), sorted: equal serials sit next to each other.
    let mut hashes: Vec<(u64, u32, u32)> = lists
        .par_iter()
        .enumerate()
        .flat_map_iter(|(l, (_, _, serials))| {
            serials
                .iter()
                .enumerate()
                .map(move |(i, s)| (serial::serial_hash(account, s), l as u32, i as u32))
        })
        .collect();
    hashes.par_sort_unstable();
    let serial_at = |&(_, l, i): &(u64, u32, u32)| lists[l as usize].2.get(i as usize);
    let mut errors: HashMap<usize, Vec<UnitError>> = HashMap::new();
    for run in hashes.chunk_by(|a, b| a.0 == b.0).filter(|r| r.len() > 1) {
        // Entries run in PO order: the first PO to list a value keeps it.
        let mut first: HashMap<&[u8], usize> = HashMap::new();
        for entry in run {
            let (po, item, _) = lists[entry.1 as usize];
            let serial = serial_at(entry);
            match first.get(serial) {
                None => {
                    first.insert(serial, po);
                }
                Some(&owner) if owner != po => {
                    errors.entry(po).or_default().push(UnitError {
                        serial: Some(String::from_utf8_lossy(serial).into_owned()),
                        sku: Some(item.sku.clone()),
                        code: OutcomeCode::DuplicateInRequest,
                        detail: Some(format!(
                            "also listed by PO {:?} of this import",
                            payloads[owner].reference_code
                        )),
                    });
                }
                Some(_) => {} // within one PO: the PO check reports it
            }
        }
    }
    errors
}

/// The request's line items, checked for shape (names, quantities, unique line numbers).
fn check_items(payload: &PoPayload) -> Result<()> {
    check_name("referenceCode", &payload.reference_code)?;
    if payload.items.is_empty() || payload.items.len() > PO_LINES_MAX {
        return Err(EngineError::BadRequest(format!(
            "a PO needs 1-{PO_LINES_MAX} items, got {}",
            payload.items.len()
        )));
    }
    let mut line_numbers = HashSet::new();
    for item in &payload.items {
        check_name("lineItemNumber", &item.line_item_number)?;
        check_name("sku", &item.sku)?;
        if !line_numbers.insert(item.line_item_number.as_str()) {
            return Err(EngineError::BadRequest(format!(
                "lineItemNumber {:?} appears twice",
                item.line_item_number
            )));
        }
        if item.quantity == 0 {
            return Err(EngineError::BadRequest(format!(
                "line {:?}: quantity must be at least 1",
                item.line_item_number
            )));
        }
    }
    Ok(())
}

impl Engine {
    /// `PO.CREATE`: insert, update or cancel, as the payload says.
    pub fn create_po(&self, account: &str, payload: PoPayload) -> Result<PoReply> {
        check_name("referenceCode", &payload.reference_code)?;
        if payload.is_cancel.unwrap_or(0) != 0 {
            return self.cancel_po(account, &payload.reference_code);
        }
        match payload.create_or_update.to_ascii_uppercase().as_str() {
            "I" => self.insert_po(account, payload),
            "U" => self.update_po(account, payload),
            other => Err(EngineError::BadRequest(format!(
                "createOrUpdate must be \"I\" or \"U\", got {other:?}"
            ))),
        }
    }

    fn insert_po(&self, account: &str, payload: PoPayload) -> Result<PoReply> {
        check_items(&payload)?;
        self.check_healthy()?;
        let slot = self.slot(account)?;
        let guard = slot.lock.lock();
        let mut record = self.account_record(account)?;
        let now = now_ms();
        let insert = match self.prepare_insert(slot.id, &mut record, &payload, now)? {
            Ok(insert) => insert,
            Err(errors) => {
                return Ok(PoReply::Rejected {
                    reference_code: payload.reference_code,
                    errors,
                })
            }
        };
        let mut puts = insert.puts;
        puts.push((keys::account(account), codec::encode(&record)));
        self.commit_serial_writes(guard, slot.id, insert.writes, puts)?;
        Ok(insert.reply)
    }

    /// `PO.IMPORT`: inserts many POs as one atomic write — all of them or none. Every PO is
    /// validated as `PO.CREATE` "I" would; a serial listed by two of them is
    /// `DUPLICATE_IN_REQUEST` on the later one. With `check_only`, nothing is written.
    pub fn import_pos(
        &self,
        account: &str,
        payloads: &[PoPayload],
        check_only: bool,
    ) -> Result<PoImportReply> {
        if payloads.is_empty() {
            return Err(EngineError::BadRequest(
                "an import needs at least one PO".into(),
            ));
        }
        if payloads.len() > PO_IMPORT_POS_MAX {
            return Err(EngineError::Limit(format!(
                "{} POs in one import, at most {PO_IMPORT_POS_MAX}",
                payloads.len()
            )));
        }
        let mut references = HashSet::new();
        for payload in payloads {
            check_items(payload)?;
            if payload.is_cancel.unwrap_or(0) != 0
                || !payload.create_or_update.eq_ignore_ascii_case("I")
            {
                return Err(EngineError::BadRequest(format!(
                    "PO {:?}: an import only inserts POs (createOrUpdate \"I\", isCancel 0)",
                    payload.reference_code
                )));
            }
            if !references.insert(payload.reference_code.as_str()) {
                return Err(EngineError::BadRequest(format!(
                    "PO {:?} appears twice in the import",
                    payload.reference_code
                )));
            }
        }
        self.check_healthy()?;
        let slot = self.slot(account)?;
        let guard = slot.lock.lock();
        let mut record = self.account_record(account)?;
        let mut cross = cross_po_duplicates(slot.id, payloads);
        let now = now_ms();
        let (mut writes, mut puts) = (SerialWrites::default(), Vec::new());
        let (mut lines, mut expected) = (0, 0);
        let mut rejected = Vec::new();
        for (index, payload) in payloads.iter().enumerate() {
            let duplicates = cross.remove(&index).unwrap_or_default();
            match self.prepare_insert(slot.id, &mut record, payload, now)? {
                Ok(insert) if duplicates.is_empty() => {
                    if let PoReply::Created {
                        lines: l,
                        expected: e,
                        ..
                    } = insert.reply
                    {
                        lines += l;
                        expected += e;
                    }
                    if rejected.is_empty() {
                        writes.append(insert.writes);
                        puts.extend(insert.puts);
                    }
                }
                Ok(_) => rejected.push(PoReply::Rejected {
                    reference_code: payload.reference_code.clone(),
                    errors: duplicates,
                }),
                Err(mut errors) => {
                    errors.extend(duplicates);
                    rejected.push(PoReply::Rejected {
                        reference_code: payload.reference_code.clone(),
                        errors,
                    });
                }
            }
        }
        if !rejected.is_empty() {
            return Ok(PoImportReply::Rejected { pos: rejected });
        }
        let pos = payloads.len();
        if check_only {
            return Ok(PoImportReply::Valid {
                pos,
                lines,
                expected,
            });
        }
        puts.push((keys::account(account), codec::encode(&record)));
        self.commit_serial_writes(guard, slot.id, writes, puts)?;
        Ok(PoImportReply::Created {
            pos,
            lines,
            expected,
        })
    }

    /// Validates a new PO and prepares its writes, taking the next PO id from `record`
    /// (which the caller writes back). `Err` holds the rejected units.
    fn prepare_insert(
        &self,
        account_id: u32,
        record: &mut AccountRecord,
        payload: &PoPayload,
        now: u64,
    ) -> Result<std::result::Result<PreparedInsert, Vec<UnitError>>> {
        let po_key = keys::po(account_id, &payload.reference_code);
        if self.store.get(&po_key)?.is_some() {
            return Err(EngineError::PoExists(payload.reference_code.clone()));
        }
        let po_id = record.last_po_id + 1;
        let skus = self.po_skus(account_id, &payload.items)?;
        let items: Vec<(usize, &PoItem)> = payload.items.iter().enumerate().collect();
        let (mut writes, errors) =
            self.check_po_serials(record, account_id, po_id, &items, &skus, &HashSet::new())?;
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        let lines: Vec<PoLine> = payload
            .items
            .iter()
            .zip(&skus)
            .map(|(item, sku)| {
                let listed = item.serials.as_ref().map_or(0, |s| s.len() as u64);
                PoLine {
                    line_item_number: item.line_item_number.clone(),
                    sku: sku.as_ref().map_or(0, |s| s.id),
                    ordered: item.quantity,
                    generated: listed,
                    received: 0,
                    listed,
                    open_from: 0,
                }
            })
            .collect();
        record.last_po_id = po_id;
        record.po_count += 1;
        let po = PoRecord {
            id: po_id,
            reference_code: payload.reference_code.clone(),
            vendor_id: payload.vendor_id.clone(),
            status: PoStatus::Open,
            lines,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let mut puts = vec![
            (po_key, codec::encode(&po)),
            (
                keys::po_ref(account_id, po.id),
                payload.reference_code.as_bytes().to_vec(),
            ),
        ];
        for (line, item) in payload.items.iter().enumerate() {
            if let Some(serials) = item.serials.as_ref().filter(|s| !s.is_empty()) {
                puts.extend(list_chunks(account_id, po.id, line, 0, serials));
            }
        }
        stamp(&mut writes, now, po.id);
        let reply = PoReply::Created {
            reference_code: payload.reference_code.clone(),
            lines: po.lines.len(),
            expected: writes.expected,
        };
        Ok(Ok(PreparedInsert {
            writes,
            puts,
            reply,
        }))
    }

    fn update_po(&self, account: &str, payload: PoPayload) -> Result<PoReply> {
        check_items(&payload)?;
        self.check_healthy()?;
        let slot = self.slot(account)?;
        let guard = slot.lock.lock();
        let record = self.account_record(account)?;
        let mut po = self.po_record(slot.id, &payload.reference_code)?;
        if po.status == PoStatus::Cancelled {
            return Err(EngineError::PoCancelled(po.reference_code));
        }
        let skus = self.po_skus(slot.id, &payload.items)?;
        let by_number: HashMap<&str, usize> = po
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_removed())
            .map(|(i, l)| (l.line_item_number.as_str(), i))
            .collect();

        // Decide, line by line, what stays, what changes and what goes.
        let mut target: Vec<Option<usize>> = Vec::with_capacity(payload.items.len());
        let mut replaced: Vec<usize> = Vec::new();
        let mut kept_generated: HashMap<usize, u64> = HashMap::new();
        let mut next_index = po.lines.len();
        for (item, sku) in payload.items.iter().zip(&skus) {
            let sku_id = sku.as_ref().map_or(0, |s| s.id);
            let Some(&at) = by_number.get(item.line_item_number.as_str()) else {
                target.push(Some(next_index));
                next_index += 1;
                continue;
            };
            let line = &po.lines[at];
            let same_sku = line.sku == sku_id;
            let unchanged = same_sku
                && line.ordered == item.quantity
                && (record.usn_type != UsnType::SellerOnPo || item.serials.is_none());
            if unchanged {
                target.push(None);
                continue;
            }
            if line.received > 0 {
                return Err(line_received(line));
            }
            if record.usn_type == UsnType::GeneratedForPo && same_sku {
                // Type 3: generated labels stay while the new quantity still covers them.
                let mut changed = line.clone();
                changed.ordered = item.quantity;
                changed.generated = 0;
                let room = rules::line_generation_capacity(&record, &changed);
                if line.generated > room {
                    return Err(EngineError::BadRequest(format!(
                        "line {:?} has {} generated serials; quantity {} (with tolerance) \
                         leaves room for {room}",
                        line.line_item_number, line.generated, item.quantity
                    )));
                }
                kept_generated.insert(at, line.generated);
            } else {
                replaced.push(at);
            }
            target.push(Some(at));
        }
        let named: HashSet<&str> = payload
            .items
            .iter()
            .map(|i| i.line_item_number.as_str())
            .collect();
        let mut removed = Vec::new();
        for (&number, &at) in &by_number {
            if !named.contains(number) {
                if po.lines[at].received > 0 {
                    return Err(line_received(&po.lines[at]));
                }
                removed.push(at);
                replaced.push(at);
            }
        }
        if next_index > PO_LINES_MAX {
            return Err(EngineError::BadRequest(format!(
                "a PO may have at most {PO_LINES_MAX} lines, removed ones included"
            )));
        }

        // Serials of replaced lines that are still open.
        let mut open: HashMap<Vec<u8>, SerialRecord> = HashMap::new();
        for &at in &replaced {
            let serials = self.line_serials(slot.id, po.id, at)?;
            for (i, existing) in batch::read_records(self, slot.id, &serials)?
                .into_iter()
                .enumerate()
            {
                if let Some(existing) = existing.filter(|r| is_open_on(r, po.id, at)) {
                    open.insert(serials.get(i).to_vec(), existing);
                }
            }
        }

        // Type 1: validate the new lines' serials; values open on replaced lines may move.
        let changed_items: Vec<(usize, &PoItem)> = payload
            .items
            .iter()
            .zip(&target)
            .filter_map(|(item, t)| t.map(|at| (at, item)))
            .collect();
        let reusable: HashSet<&[u8]> = open.keys().map(Vec::as_slice).collect();
        let changed_skus: Vec<Option<SkuRecord>> = payload
            .items
            .iter()
            .zip(&target)
            .zip(&skus)
            .filter_map(|((_, t), sku)| t.map(|_| sku.clone()))
            .collect();
        // Every line with an unknown SKU is among the changed ones (its SKU id differs).
        let (mut writes, errors) = self.check_po_serials(
            &record,
            slot.id,
            po.id,
            &changed_items,
            &changed_skus,
            &reusable,
        )?;
        if !errors.is_empty() {
            return Ok(PoReply::Rejected {
                reference_code: payload.reference_code,
                errors,
            });
        }

        // Apply.
        let now = now_ms();
        let relisted: HashSet<Vec<u8>> = writes.serials.iter().map(<[u8]>::to_vec).collect();
        let mut puts = Vec::new();
        for (item, (t, sku)) in payload.items.iter().zip(target.iter().zip(&skus)) {
            let Some(at) = *t else { continue };
            let serials = item.serials.as_ref().filter(|s| !s.is_empty());
            let count = serials.map_or(0, |s| s.len() as u64);
            if at == po.lines.len() {
                po.lines.push(PoLine {
                    line_item_number: item.line_item_number.clone(),
                    sku: 0,
                    ordered: 0,
                    generated: 0,
                    received: 0,
                    listed: 0,
                    open_from: 0,
                });
            }
            let line = &mut po.lines[at];
            if replaced.contains(&at) {
                // What the line listed so far is cancelled or listed again below.
                line.open_from = line.listed;
            }
            if let Some(serials) = serials {
                puts.extend(list_chunks(slot.id, po.id, at, line.listed, serials));
            }
            line.sku = sku.as_ref().map_or(0, |s| s.id);
            line.ordered = item.quantity;
            line.generated = kept_generated.get(&at).copied().unwrap_or(count);
            line.listed += count;
        }
        for at in removed {
            let line = &mut po.lines[at];
            line.ordered = 0;
            line.generated = 0;
            line.open_from = line.listed;
        }
        for (serial, mut existing) in open {
            if relisted.contains(&serial) {
                continue;
            }
            existing.state = SerialState::Cancelled;
            existing.history.push(Event {
                at_ms: now,
                kind: EventKind::Cancelled { po: po.id },
            });
            writes.push(&serial, existing);
            writes.cancelled += 1;
        }
        stamp(&mut writes, now, po.id);
        po.updated_at_ms = now;
        puts.push((keys::po(slot.id, &po.reference_code), codec::encode(&po)));
        let (expected, cancelled) = (writes.expected, writes.cancelled);
        self.commit_serial_writes(guard, slot.id, writes, puts)?;
        Ok(PoReply::Updated {
            reference_code: payload.reference_code,
            lines: po.lines.iter().filter(|l| !l.is_removed()).count(),
            expected,
            cancelled,
        })
    }

    fn cancel_po(&self, account: &str, reference_code: &str) -> Result<PoReply> {
        self.check_healthy()?;
        let slot = self.slot(account)?;
        let guard = slot.lock.lock();
        let mut po = self.po_record(slot.id, reference_code)?;
        if po.status == PoStatus::Cancelled {
            // Cancelling twice is a safe retry; wait until the first is durable.
            let ticket = self.store.written();
            drop(guard);
            self.sync(ticket)?;
            return Ok(PoReply::Cancelled {
                reference_code: po.reference_code,
                cancelled: 0,
            });
        }
        let now = now_ms();
        let mut writes = SerialWrites::default();
        for at in 0..po.lines.len() {
            let serials = self.line_serials(slot.id, po.id, at)?;
            for (i, existing) in batch::read_records(self, slot.id, &serials)?
                .into_iter()
                .enumerate()
            {
                let Some(mut existing) = existing.filter(|r| is_open_on(r, po.id, at)) else {
                    continue;
                };
                existing.state = SerialState::Cancelled;
                existing.history.push(Event {
                    at_ms: now,
                    kind: EventKind::Cancelled { po: po.id },
                });
                writes.push(serials.get(i), existing);
                writes.cancelled += 1;
            }
        }
        po.status = PoStatus::Cancelled;
        for line in &mut po.lines {
            // Nothing listed so far is open any more.
            line.open_from = line.listed;
        }
        po.updated_at_ms = now;
        let cancelled = writes.cancelled;
        let puts = vec![(keys::po(slot.id, &po.reference_code), codec::encode(&po))];
        self.commit_serial_writes(guard, slot.id, writes, puts)?;
        Ok(PoReply::Cancelled {
            reference_code: po.reference_code,
            cancelled,
        })
    }

    fn po_skus(&self, account: u32, items: &[PoItem]) -> Result<Vec<Option<SkuRecord>>> {
        items
            .iter()
            .map(|item| self.sku_record(account, &item.sku))
            .collect()
    }

    /// The serials open on `po`'s lines, recognised from the PO's own lists: no record is
    /// read. This is what lets a type 1/3 GRN skip a read per serial.
    pub(super) fn open_serials(&self, account: u32, po: &PoRecord) -> Result<OpenSerials> {
        let mut listed = SerialList::new();
        let mut lines: Vec<u32> = Vec::new();
        for (at, line) in po.lines.iter().enumerate() {
            if line.is_removed() || line.open_from >= line.listed {
                continue;
            }
            let owner = line_owner(po.id, at);
            let (_, end) = keys::list_range(account, keys::ListKind::PoLine, owner);
            let start = keys::list_chunk(
                account,
                keys::ListKind::PoLine,
                owner,
                line.open_from as u32,
            );
            for serial in batch::read_lists(self, &start, &end)?.iter() {
                listed.push(serial);
                lines.push(at as u32);
            }
        }
        // What the PO's GRNs received is closed.
        let mut received = SerialList::new();
        for seq in self.po_grns(account, po.id)? {
            let (start, end) = keys::list_range(account, keys::ListKind::Grn, seq.into());
            for serial in batch::read_lists(self, &start, &end)?.iter() {
                received.push(serial);
            }
        }
        let closed = hashed(account, &received);
        let is_closed = |hash: u64, serial: &[u8]| {
            let from = closed.partition_point(|&(h, _)| h < hash);
            closed[from..]
                .iter()
                .take_while(|(h, _)| *h == hash)
                .any(|&(_, i)| received.get(i as usize) == serial)
        };
        let mut by_hash = hashed(account, &listed);
        by_hash.retain(|&(hash, i)| !is_closed(hash, listed.get(i as usize)));
        Ok(OpenSerials {
            serials: listed,
            lines,
            by_hash,
        })
    }

    /// Sequence numbers of the GRNs received against PO `po`, ascending.
    pub(super) fn po_grns(&self, account: u32, po: u32) -> Result<Vec<u32>> {
        let (start, end) = keys::po_grn_range(account, po);
        let mut grns = Vec::new();
        self.store.scan(&start, &end, &mut |key, _| {
            if let Some(seq) = key.get(key.len() - 4..).and_then(|b| b.try_into().ok()) {
                grns.push(u32::from_be_bytes(seq));
            }
            true
        })?;
        Ok(grns)
    }

    /// Every serial ever listed on line `line` of PO `po` (in list order, maybe repeating).
    pub(super) fn line_serials(&self, account: u32, po: u32, line: usize) -> Result<SerialList> {
        let (start, end) = keys::list_range(account, keys::ListKind::PoLine, line_owner(po, line));
        batch::read_lists(self, &start, &end)
    }

    /// Checks the lines `items` (`(line index, item)`: SKU registered) and their serials
    /// under the account's USN type, and returns the `expected` records to write (unstamped) or every failure.
    /// Values in `reusable` (open on lines this update replaces) may be listed again.
    fn check_po_serials(
        &self,
        account: &AccountRecord,
        account_id: u32,
        po: u32,
        items: &[(usize, &PoItem)],
        skus: &[Option<SkuRecord>],
        reusable: &HashSet<&[u8]>,
    ) -> Result<(SerialWrites, Vec<UnitError>)> {
        static EMPTY: SerialList = SerialList::new_const();
        let units = Units::new(
            items
                .iter()
                .map(|(_, item)| item.serials.as_ref().unwrap_or(&EMPTY))
                .collect(),
            items
                .iter()
                .map(|(_, item)| Some(item.sku.as_str()))
                .collect(),
        )?;
        let mut verdicts = Verdicts::new(units.len());
        let type1 = account.usn_type == UsnType::SellerOnPo;
        for (i, ((_, item), sku)) in items.iter().zip(skus).enumerate() {
            let given = units.range(i).len() as u64;
            let line = &item.line_item_number;
            if sku.is_none() {
                verdicts.item_errors.push(unknown_sku(item));
            }
            if !type1 {
                if given > 0 {
                    verdicts.fail_item(
                        &units,
                        i,
                        OutcomeCode::SerialsNotAllowed,
                        format!(
                            "USN type {} takes no serials on the PO (line {line})",
                            account.usn_type.number()
                        ),
                    );
                }
                continue;
            }
            match sku.as_ref().map(|s| s.kind) {
                None => {}
                Some(SkuKind::Plain) if given > 0 => verdicts.fail_item(
                    &units,
                    i,
                    OutcomeCode::SkuNotSerialized,
                    format!("SKU {:?} is plain: line {line} takes no serials", item.sku),
                ),
                Some(SkuKind::Plain) => {}
                Some(SkuKind::Serialized) if given < item.quantity => {
                    verdicts.item_errors.push(UnitError {
                        serial: None,
                        sku: Some(item.sku.clone()),
                        code: OutcomeCode::SerialsRequired,
                        detail: Some(format!(
                            "line {line}: quantity {} needs exactly {} serials, {given} given",
                            item.quantity, item.quantity
                        )),
                    });
                }
                Some(SkuKind::Serialized) => {
                    for unit in units.range(i).skip(item.quantity as usize) {
                        verdicts.fail(
                            unit,
                            OutcomeCode::QuantityExceeded,
                            Some(format!(
                                "line {line}: quantity {} takes {} serials",
                                item.quantity, item.quantity
                            )),
                        );
                    }
                }
            }
        }
        let keyed = batch::keyed_units(&units, account_id, &mut verdicts);
        let found = batch::lookup(self, account_id, &keyed, &units)?;
        let mut writes = SerialWrites::default();
        let mut next_found = found.0.into_iter().peekable();
        for (index, &(_, unit)) in keyed.iter().enumerate() {
            let existing = match next_found.peek() {
                Some((i, _)) if *i == index => next_found.next().map(|(_, r)| r),
                _ => None,
            };
            let serial = units.serial(unit);
            let history = match existing {
                Some(existing) if reusable.contains(serial) => existing.history,
                Some(existing) => match rules::po_serial_conflict(&existing) {
                    Some((code, detail)) => {
                        verdicts.fail(unit, code, Some(detail.into()));
                        continue;
                    }
                    None => existing.history,
                },
                None => Vec::new(),
            };
            if verdicts.failed(unit) {
                continue;
            }
            let item = units.item_of(unit);
            writes.push(
                serial,
                SerialRecord::unreceived(
                    SerialState::Expected,
                    skus[item].as_ref().map_or(0, |s| s.id),
                    po,
                    items[item].0 as u32,
                    history,
                ),
            );
            writes.expected += 1;
        }
        if !verdicts.is_clean() {
            return Ok((SerialWrites::default(), verdicts.into_errors(&units)));
        }
        Ok((writes, Vec::new()))
    }

    fn commit_serial_writes(
        &self,
        guard: parking_lot::MutexGuard<'_, ()>,
        account: u32,
        writes: SerialWrites,
        puts: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<()> {
        let SerialWrites {
            serials, records, ..
        } = writes;
        batch::commit(self, guard, account, &serials, puts, &|unit, out| {
            codec::encode_into(&records[unit as usize], out)
        })
    }
}

/// Appends the `expected` event to records that are not yet stamped (cancelled ones are).
fn stamp(writes: &mut SerialWrites, now: u64, po: u32) {
    for record in &mut writes.records {
        if record.state == SerialState::Expected {
            record.history.push(Event {
                at_ms: now,
                kind: EventKind::Expected { po },
            });
        }
    }
}

/// Whether `record` is an unreceived serial of line `line` of PO `po`.
fn is_open_on(record: &SerialRecord, po: u32, line: usize) -> bool {
    matches!(record.state, SerialState::Expected | SerialState::Generated)
        && record.po == po
        && record.line as usize == line
}

fn list_chunks(
    account: u32,
    po: u32,
    line: usize,
    offset: u64,
    serials: &SerialList,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    batch::list_chunks(
        account,
        keys::ListKind::PoLine,
        line_owner(po, line),
        offset as u32,
        serials.iter(),
        batch::LIST_CHUNK_SERIALS as u32,
    )
}

fn unknown_sku(item: &PoItem) -> UnitError {
    UnitError {
        serial: None,
        sku: Some(item.sku.clone()),
        code: OutcomeCode::UnknownSku,
        detail: Some(format!("line {}", item.line_item_number)),
    }
}

fn line_received(line: &PoLine) -> EngineError {
    EngineError::LineReceived(format!(
        "line {:?} has {} received units and can no longer change",
        line.line_item_number, line.received
    ))
}
