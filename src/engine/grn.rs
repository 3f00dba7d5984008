//! The GRN pipeline: validate every unit of a GRN in one pass, then commit it atomically.
//!
//! parse (done by the caller) → serial syntax → hash → sort by hash (= key order) →
//! duplicate-in-request → prefilter → confirm hits with one batched read → item rules →
//! quantities per PO line → one atomic commit → prefilter insert.
//!
//! Every step is over flat arrays indexed by unit number `u32`, in parallel where it pays.
//! A unit carries at most one outcome code: the first step that fails it decides.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use xxhash_rust::xxh3::Xxh3Default;

use super::payload::{GrnItem, GrnPayload};
use super::{check_name, now_ms, rules, Engine, EngineError, Result};
use crate::domain::{
    AccountRecord, Condition, Event, EventKind, GrnRecord, PoRecord, PoStatus, SerialRecord,
    SerialState, SkuKind, SkuRecord,
};
use crate::outcome::{GrnReply, OutcomeCode, UnitError};
use crate::serial::{self, SerialList};
use crate::store::{codec, keys, Commit, EntrySink, SortedRuns, StoreError};

/// Serials per stored list chunk (`keys::list_chunk`).
pub const LIST_CHUNK_SERIALS: usize = 65_536;
/// Most keys per batched confirming read.
const CONFIRM_BATCH_KEYS: usize = 2_048;
/// Threads issuing confirming reads at once (I/O depth, not CPU parallelism).
const CONFIRM_READERS: usize = 16;
/// Below this many units a step runs on the calling thread: small GRNs are many and
/// concurrent, and handing them to the pool only adds thread hand-offs.
const PARALLEL_UNITS_MIN: usize = 4096;
/// Entries per SST run below which a bulk commit is not split further.
const RUN_ENTRIES_MIN: usize = 250_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrnMode {
    /// Validate only; write nothing.
    Check,
    /// Validate and commit the units given.
    Commit,
    /// Receive everything outstanding on the PO in one GRN.
    Auto,
}

/// Where each serial unit of the request lives: unit `u` is serial `u - starts[i]` of item `i`.
struct Units<'a> {
    items: &'a [GrnItem],
    /// `starts[i]` is the first unit of item `i`; `starts[items.len()]` is the unit count.
    starts: Vec<u32>,
}

impl<'a> Units<'a> {
    fn new(items: &'a [GrnItem]) -> Result<Self> {
        let mut starts = Vec::with_capacity(items.len() + 1);
        let mut total: u64 = 0;
        for item in items {
            starts.push(u32::try_from(total).map_err(|_| too_many(total))?);
            total += item.serial_count() as u64;
        }
        starts.push(u32::try_from(total).map_err(|_| too_many(total))?);
        Ok(Self { items, starts })
    }

    fn len(&self) -> usize {
        *self.starts.last().unwrap_or(&0) as usize
    }

    #[inline]
    fn item_of(&self, unit: u32) -> usize {
        self.starts.partition_point(|&s| s <= unit) - 1
    }

    fn list(&self, item: usize) -> &'a SerialList {
        static EMPTY: SerialList = SerialList::new_const();
        self.items[item].serials.as_ref().unwrap_or(&EMPTY)
    }

    #[inline]
    fn serial(&self, unit: u32) -> &'a [u8] {
        let item = self.item_of(unit);
        self.list(item).get((unit - self.starts[item]) as usize)
    }

    fn range(&self, item: usize) -> std::ops::Range<u32> {
        self.starts[item]..self.starts[item + 1]
    }

    /// Where a unit was given, for error details: `items[i].serials[j]`.
    fn position(&self, unit: u32) -> String {
        let item = self.item_of(unit);
        format!("items[{item}].serials[{}]", unit - self.starts[item])
    }
}

fn too_many(total: u64) -> EngineError {
    EngineError::Limit(format!("{total} serials in one GRN is past the limit"))
}

/// Per-unit outcomes of one validation pass.
struct Verdicts {
    codes: Vec<Option<OutcomeCode>>,
    details: HashMap<u32, String>,
    /// Failures of quantity-only items (no serial to hang them on).
    item_errors: Vec<UnitError>,
}

impl Verdicts {
    fn fail(&mut self, unit: u32, code: OutcomeCode, detail: Option<String>) {
        let slot = &mut self.codes[unit as usize];
        if slot.is_none() {
            *slot = Some(code);
            if let Some(detail) = detail {
                self.details.insert(unit, detail);
            }
        }
    }

    fn fail_item(&mut self, units: &Units<'_>, item: usize, code: OutcomeCode, detail: String) {
        let range = units.range(item);
        if range.is_empty() {
            self.item_errors.push(UnitError {
                serial: None,
                sku: units.items[item].sku.clone(),
                code,
                detail: Some(detail),
            });
        } else {
            for unit in range {
                self.fail(unit, code, Some(detail.clone()));
            }
        }
    }

    fn is_clean(&self) -> bool {
        self.item_errors.is_empty() && self.codes.iter().all(Option::is_none)
    }

    fn into_errors(self, units: &Units<'_>) -> Vec<UnitError> {
        let Verdicts {
            codes,
            mut details,
            item_errors,
        } = self;
        let mut errors: Vec<UnitError> = codes
            .iter()
            .enumerate()
            .filter_map(|(unit, code)| {
                let code = (*code)?;
                let unit = unit as u32;
                Some(UnitError {
                    serial: Some(String::from_utf8_lossy(units.serial(unit)).into_owned()),
                    sku: units.items[units.item_of(unit)].sku.clone(),
                    code,
                    detail: details.remove(&unit),
                })
            })
            .collect();
        errors.extend(item_errors);
        errors
    }
}

/// xxh3-128 of everything that makes a GRN request what it is, so a retry can be recognised.
fn fingerprint(payload: &GrnPayload, mode: GrnMode) -> [u8; 16] {
    let mut h = Xxh3Default::new();
    let text = |h: &mut Xxh3Default, s: Option<&str>| {
        match s {
            Some(s) => {
                h.update(&[1]);
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            None => h.update(&[0]),
        };
    };
    // A check of a request is the same request as its commit.
    let mode = if mode == GrnMode::Check {
        GrnMode::Commit
    } else {
        mode
    };
    h.update(&[mode as u8]);
    text(&mut h, Some(&payload.reference_code));
    text(&mut h, payload.invoice_number.as_deref());
    h.update(&(payload.items.len() as u64).to_le_bytes());
    for item in &payload.items {
        text(&mut h, item.sku.as_deref());
        text(&mut h, item.bin.as_deref());
        text(&mut h, item.qc_reason.as_deref());
        h.update(&[item.condition.map_or(0, |c| c as u8 + 1)]);
        h.update(&item.quantity.map_or(u64::MAX, |q| q).to_le_bytes());
        let serials = item.serials.as_ref();
        h.update(&(serials.map_or(0, SerialList::len) as u64).to_le_bytes());
        if let Some(serials) = serials {
            let (bytes, ends) = serials.raw_parts();
            h.update(bytes);
            for chunk in ends.chunks(1024) {
                let mut buf = [0u8; 4096];
                for (i, end) in chunk.iter().enumerate() {
                    buf[i * 4..i * 4 + 4].copy_from_slice(&end.to_le_bytes());
                }
                h.update(&buf[..chunk.len() * 4]);
            }
        }
    }
    h.digest128().to_le_bytes()
}

/// How the units of one item are spread over PO lines: `(first unit, end unit, line)`.
type LineSpans = Vec<(u32, u32, usize)>;

pub(super) fn receive(
    engine: &Engine,
    account: &str,
    payload: &GrnPayload,
    mode: GrnMode,
) -> Result<GrnReply> {
    check_name("grnId", &payload.grn_id)?;
    check_name("referenceCode", &payload.reference_code)?;
    let mut declared_units: u64 = 0;
    for (i, item) in payload.items.iter().enumerate() {
        for (what, value) in [
            ("bin", &item.bin),
            ("qcReason", &item.qc_reason),
            ("sku", &item.sku),
        ] {
            if let Some(value) = value {
                check_name(&format!("items[{i}].{what}"), value)?;
            }
        }
        if let (Some(q), Some(serials)) = (item.quantity, &item.serials) {
            if q != serials.len() as u64 {
                return Err(EngineError::BadRequest(format!(
                    "items[{i}]: quantity {q} does not match its {} serials",
                    serials.len()
                )));
            }
        }
        if item.quantity == Some(0) {
            return Err(EngineError::BadRequest(format!(
                "items[{i}]: quantity must be at least 1"
            )));
        }
        declared_units =
            declared_units.saturating_add(item.quantity.unwrap_or(item.serial_count() as u64));
    }
    let units_max = engine.config.grn_units_max;
    if declared_units > units_max {
        return Err(EngineError::Limit(format!(
            "GRN carries {declared_units} units, the limit is {units_max}"
        )));
    }
    if payload.items.is_empty() && mode != GrnMode::Auto {
        return Err(EngineError::BadRequest(
            "a GRN needs at least one item".into(),
        ));
    }

    engine.check_healthy()?;
    let slot = engine.slot(account)?;
    let guard = slot.lock.lock();
    let mut account_record = engine.account_record(account)?;

    if mode == GrnMode::Auto && !rules::auto_grn_allowed(&account_record) {
        return Ok(GrnReply::Rejected {
            grn_id: payload.grn_id.clone(),
            errors: vec![UnitError {
                serial: None,
                sku: None,
                code: OutcomeCode::AutoGrnNotSupported,
                detail: Some(format!(
                    "USN type {} accounts do not take auto-GRN",
                    account_record.usn_type.number()
                )),
            }],
        });
    }
    if !rules::grn_implemented(account_record.usn_type) {
        return Err(EngineError::Unsupported(format!(
            "receiving for USN type {} is not supported yet",
            account_record.usn_type.number()
        )));
    }

    let fingerprint = fingerprint(payload, mode);
    let grn_key = keys::grn(slot.id, &payload.grn_id);
    if let Some(existing) = engine.get_decoded::<GrnRecord>(&grn_key)? {
        if existing.fingerprint != fingerprint {
            return Err(EngineError::GrnExists(payload.grn_id.clone()));
        }
        // The original may still be waiting for its sync (early lock release): a replay must
        // not acknowledge it before it is durable.
        let ticket = engine.store.written();
        drop(guard);
        engine.sync(ticket)?;
        return Ok(GrnReply::Committed {
            grn_id: existing.grn_id,
            units: existing.units,
            serials: Vec::new(),
            replayed: true,
        });
    }

    let mut po = engine.po_record(slot.id, &payload.reference_code)?;
    if po.status == PoStatus::Cancelled {
        return Err(EngineError::PoCancelled(po.reference_code));
    }

    let units = Units::new(&payload.items)?;
    let mut verdicts = Verdicts {
        codes: vec![None; units.len()],
        details: HashMap::new(),
        item_errors: Vec::new(),
    };

    // Syntax and hash, in parallel; `keyed` holds (hash, unit) of every well-formed serial.
    let started = Instant::now();
    let mut keyed = hash_units(&units, slot.id, &mut verdicts);
    let hashed = started.elapsed();

    // Sort by hash = key order; equal hashes are resolved by serial bytes.
    if keyed.len() < PARALLEL_UNITS_MIN {
        keyed.sort_unstable();
    } else {
        keyed.par_sort_unstable();
    }
    let sorted = started.elapsed();
    mark_duplicates(&mut keyed, &units, &mut verdicts);

    // Prefilter, then confirm its hits against storage.
    let mut maybe = vec![false; keyed.len()];
    engine
        .prefilter
        .probe_sorted(&keyed, |entry| entry.0, &mut maybe);
    let reused = confirm_hits(engine, slot.id, &keyed, &maybe, &units, &mut verdicts)?;
    let confirmed = started.elapsed();
    drop(maybe);

    // Item rules and quantities.
    let skus = resolve_skus(engine, slot.id, &payload.items)?;
    check_items(&units, &skus, &po, &mut verdicts);
    let kinds = match mode {
        GrnMode::Auto => Some(line_kinds(engine, slot.id, &po)?),
        _ => None,
    };
    let (spans, plain) = allocate(
        &account_record,
        &po,
        &units,
        &skus,
        kinds.as_deref(),
        &mut verdicts,
    );

    let total_units: u64 = units.len() as u64 + plain.iter().map(|(_, q)| q).sum::<u64>();
    if verdicts.is_clean() && total_units == 0 {
        return Err(EngineError::BadRequest(format!(
            "PO {:?} has nothing outstanding to receive",
            po.reference_code
        )));
    }
    let log_stages = |outcome: &str, validated: Duration, committed: Duration| {
        let ms = |d: Duration| d.as_millis() as u64;
        tracing::debug!(
            grn = %payload.grn_id,
            serials = keyed.len(),
            hash_ms = ms(hashed),
            sort_ms = ms(sorted - hashed),
            probe_confirm_ms = ms(confirmed - sorted),
            rules_ms = ms(validated - confirmed),
            commit_ms = ms(committed - validated),
            "GRN {outcome}"
        );
    };
    if !verdicts.is_clean() {
        let now = started.elapsed();
        log_stages("rejected", now, now);
        // A rejection may rest on GRNs still waiting for their sync; answer only once they
        // are durable, so it never contradicts what survives a crash.
        let ticket = engine.store.written();
        drop(guard);
        engine.sync(ticket)?;
        return Ok(GrnReply::Rejected {
            grn_id: payload.grn_id.clone(),
            errors: verdicts.into_errors(&units),
        });
    }
    if mode == GrnMode::Check {
        return Ok(GrnReply::Valid {
            grn_id: payload.grn_id.clone(),
            units: total_units,
        });
    }

    // Commit.
    let validated = started.elapsed();
    let now = now_ms();
    account_record.last_grn_seq += 1;
    let seq = account_record.last_grn_seq;
    let values = Values::build(&units, &skus, &po, &spans, seq, now, reused);
    for (line, quantity) in spans
        .iter()
        .map(|(start, end, line)| (*line, u64::from(end - start)))
        .chain(plain.iter().copied())
    {
        po.lines[line].received += quantity;
    }
    po.updated_at_ms = now;
    let grn = GrnRecord {
        seq,
        grn_id: payload.grn_id.clone(),
        po: po.id,
        fingerprint,
        units: total_units,
        serials: units.len() as u64,
        generated_first: 0,
        generated_count: 0,
        invoice_number: payload.invoice_number.clone(),
        committed_at_ms: now,
    };
    let mut puts = vec![
        (keys::account(account), codec::encode(&account_record)),
        (keys::po(slot.id, &po.reference_code), codec::encode(&po)),
        (grn_key, codec::encode(&grn)),
        (
            keys::grn_id(slot.id, seq),
            payload.grn_id.as_bytes().to_vec(),
        ),
    ];
    puts.extend(list_chunks(slot.id, seq, &units));
    let runs = GrnRuns::new(slot.id, &keyed, &units, &values);
    // The prefilter is filled while the commit is written: if the commit fails, the extra
    // fingerprints are harmless (the prefilter only has to be a superset of what is stored).
    let write = || {
        engine.write(Commit {
            puts,
            runs: Some(&runs),
        })
    };
    let fill = || engine.prefilter.insert_sorted(&keyed, |entry| entry.0);
    let ticket = if keyed.len() < PARALLEL_UNITS_MIN {
        let ticket = write()?;
        fill();
        ticket
    } else {
        let (written, ()) = rayon::join(write, fill);
        written?
    };
    // Early lock release: the next GRN of this account may validate against this one while
    // it is being synced. Durability follows write order, so a crash can lose this GRN only
    // together with everything written after it, and it is acknowledged only once synced.
    drop(guard);
    engine.sync(ticket)?;
    log_stages("committed", validated, started.elapsed());
    Ok(GrnReply::Committed {
        grn_id: payload.grn_id.clone(),
        units: total_units,
        serials: Vec::new(),
        replayed: false,
    })
}

fn hash_units(units: &Units<'_>, account: u32, verdicts: &mut Verdicts) -> Vec<(u64, u32)> {
    let mut keyed: Vec<(u64, u32)> = Vec::with_capacity(units.len());
    for item in 0..units.items.len() {
        let list = units.list(item);
        let base = units.starts[item];
        let keyed_unit = |j: usize| {
            let serial = list.get(j);
            serial::check_syntax(serial).ok()?;
            Some((serial::serial_hash(account, serial), base + j as u32))
        };
        if list.len() < PARALLEL_UNITS_MIN {
            keyed.extend((0..list.len()).filter_map(keyed_unit));
        } else {
            keyed.par_extend((0..list.len()).into_par_iter().filter_map(keyed_unit));
        }
    }
    if keyed.len() < units.len() {
        for unit in 0..units.len() as u32 {
            if let Err(e) = serial::check_syntax(units.serial(unit)) {
                verdicts.fail(unit, OutcomeCode::InvalidSerial, Some(e.to_string()));
            }
        }
    }
    keyed
}

/// `keyed` is sorted by (hash, unit). Within each run of equal hashes, orders by serial bytes
/// (key order) and drops every repeat of a serial, failing it as `DUPLICATE_IN_REQUEST`.
fn mark_duplicates(keyed: &mut Vec<(u64, u32)>, units: &Units<'_>, verdicts: &mut Verdicts) {
    let mut repeats: HashSet<u32> = HashSet::new();
    let mut i = 0;
    while i < keyed.len() {
        let mut j = i + 1;
        while j < keyed.len() && keyed[j].0 == keyed[i].0 {
            j += 1;
        }
        if j - i > 1 {
            let run = &mut keyed[i..j];
            run.sort_by(|a, b| units.serial(a.1).cmp(units.serial(b.1)).then(a.1.cmp(&b.1)));
            let mut first = run[0].1;
            for &(_, unit) in &run[1..] {
                if units.serial(unit) == units.serial(first) {
                    repeats.insert(unit);
                    verdicts.fail(
                        unit,
                        OutcomeCode::DuplicateInRequest,
                        Some(format!("first given at {}", units.position(first))),
                    );
                } else {
                    first = unit;
                }
            }
        }
        i = j;
    }
    if !repeats.is_empty() {
        keyed.retain(|(_, unit)| !repeats.contains(unit));
    }
}

/// Reads the stored records of prefilter hits in batches and applies the type 2 rule.
/// Returns the records of values that may be used again (cancelled), whose history the new
/// record keeps.
fn confirm_hits(
    engine: &Engine,
    account: u32,
    keyed: &[(u64, u32)],
    maybe: &[bool],
    units: &Units<'_>,
    verdicts: &mut Verdicts,
) -> Result<HashMap<u32, SerialRecord>> {
    let hits: Vec<(u64, u32)> = keyed
        .iter()
        .zip(maybe)
        .filter(|(_, m)| **m)
        .map(|(entry, _)| *entry)
        .collect();
    // Confirming reads are latency-bound (they often miss the page cache: ingested files
    // are written past it), so batches are read by up to CONFIRM_READERS threads at once
    // rather than on the CPU pool. Verdicts are applied in order afterwards.
    type Found = Result<Vec<(u32, Vec<u8>)>>;
    let read_batch = |batch: &[(u64, u32)]| -> Found {
        let batch_keys: Vec<Vec<u8>> = batch
            .iter()
            .map(|(hash, unit)| keys::serial(account, *hash, units.serial(*unit)))
            .collect();
        let values = engine.store.multi_get_sorted(&batch_keys)?;
        Ok(batch
            .iter()
            .zip(values)
            .filter_map(|((_, unit), value)| Some((*unit, value?)))
            .collect())
    };
    let batch_len = hits
        .len()
        .div_ceil(CONFIRM_READERS)
        .clamp(1, CONFIRM_BATCH_KEYS);
    let found: Vec<Found> = if hits.len() <= batch_len {
        vec![read_batch(&hits)]
    } else {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let batches: Vec<&[(u64, u32)]> = hits.chunks(batch_len).collect();
        let mut results: Vec<Option<Found>> = (0..batches.len()).map(|_| None).collect();
        let slots: Vec<parking_lot::Mutex<&mut Option<_>>> =
            results.iter_mut().map(parking_lot::Mutex::new).collect();
        std::thread::scope(|scope| {
            for _ in 0..CONFIRM_READERS.min(batches.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(batch) = batches.get(i) else { break };
                    **slots[i].lock() = Some(read_batch(batch));
                });
            }
        });
        drop(slots);
        results.into_iter().flatten().collect()
    };
    let mut reused = HashMap::new();
    for batch in found {
        for (unit, bytes) in batch? {
            let record: SerialRecord = codec::decode(&bytes)?;
            match rules::seller_serial_conflict(&record) {
                Some((code, detail)) => verdicts.fail(unit, code, Some(detail.to_string())),
                None => {
                    reused.insert(unit, record);
                }
            }
        }
    }
    Ok(reused)
}

fn resolve_skus(
    engine: &Engine,
    account: u32,
    items: &[GrnItem],
) -> Result<Vec<Option<SkuRecord>>> {
    let mut cache: HashMap<&str, Option<SkuRecord>> = HashMap::new();
    items
        .iter()
        .map(|item| {
            let Some(sku) = item.sku.as_deref() else {
                return Ok(None);
            };
            if let Some(found) = cache.get(sku) {
                return Ok(found.clone());
            }
            let found = engine.sku_record(account, sku)?;
            cache.insert(sku, found.clone());
            Ok(found)
        })
        .collect()
}

fn check_items(
    units: &Units<'_>,
    skus: &[Option<SkuRecord>],
    po: &PoRecord,
    verdicts: &mut Verdicts,
) {
    for (i, item) in units.items.iter().enumerate() {
        let name = item.sku.as_deref().unwrap_or("");
        let Some(sku) = &skus[i] else {
            let detail = if item.sku.is_none() {
                "item has no sku".to_string()
            } else {
                format!("SKU {name:?} is not registered")
            };
            verdicts.fail_item(units, i, OutcomeCode::UnknownSku, detail);
            continue;
        };
        match sku.kind {
            SkuKind::Plain if item.serial_count() > 0 => verdicts.fail_item(
                units,
                i,
                OutcomeCode::SerialsNotAllowed,
                format!("SKU {name:?} is plain: receive it by quantity"),
            ),
            SkuKind::Serialized if item.serial_count() == 0 => verdicts.fail_item(
                units,
                i,
                OutcomeCode::SerialsRequired,
                format!("SKU {name:?} is serialized: give one serial per unit"),
            ),
            _ => {}
        }
        if item.condition == Some(Condition::Bad) && item.qc_reason.is_none() {
            verdicts.fail_item(
                units,
                i,
                OutcomeCode::QcReasonRequired,
                "units in bad condition need a qcReason".into(),
            );
        }
        if !po.lines.iter().any(|line| line.sku == sku.id) {
            verdicts.fail_item(
                units,
                i,
                OutcomeCode::WrongSku,
                format!("SKU {name:?} is not on PO {:?}", po.reference_code),
            );
        }
    }
}

/// Spreads units over the PO lines of their SKU, in request order, each line up to its
/// capacity; units past every line's capacity fail with `QUANTITY_EXCEEDED`. In auto mode,
/// plain lines are received in full and serialized lines must be covered exactly.
/// Returns the serial spans per line and the plain quantities per line.
fn allocate(
    account: &AccountRecord,
    po: &PoRecord,
    units: &Units<'_>,
    skus: &[Option<SkuRecord>],
    line_kinds: Option<&[SkuKind]>,
    verdicts: &mut Verdicts,
) -> (LineSpans, Vec<(usize, u64)>) {
    let auto = line_kinds.is_some();
    let mut capacity: Vec<u64> = po
        .lines
        .iter()
        .map(|line| rules::line_capacity(account, line))
        .collect();
    let mut spans = Vec::new();
    let mut plain = Vec::new();
    for (i, item) in units.items.iter().enumerate() {
        let Some(sku) = &skus[i] else { continue };
        let lines: Vec<usize> = (0..po.lines.len())
            .filter(|&l| po.lines[l].sku == sku.id)
            .collect();
        if lines.is_empty() {
            continue;
        }
        let range = units.range(i);
        if range.is_empty() {
            let wanted = match (sku.kind, item.quantity) {
                (SkuKind::Plain, Some(q)) => q,
                (SkuKind::Plain, None) if auto => continue,
                (SkuKind::Plain, None) => {
                    verdicts.item_errors.push(UnitError {
                        serial: None,
                        sku: item.sku.clone(),
                        code: OutcomeCode::QuantityExceeded,
                        detail: Some("plain items need a quantity".into()),
                    });
                    continue;
                }
                (SkuKind::Serialized, _) => continue,
            };
            let mut left = wanted;
            for &line in &lines {
                let take = left.min(capacity[line]);
                if take > 0 {
                    capacity[line] -= take;
                    left -= take;
                    plain.push((line, take));
                }
            }
            if left > 0 {
                verdicts.item_errors.push(UnitError {
                    serial: None,
                    sku: item.sku.clone(),
                    code: OutcomeCode::QuantityExceeded,
                    detail: Some(exceeded_detail(po, item, left, wanted)),
                });
            }
            continue;
        }
        // Only units that passed every other check take room on a line: once those are
        // fixed or removed, the units reported here are exactly the ones with no room.
        let mut overflow = Vec::new();
        let mut line_at = 0;
        // Spans never cross items: each item has its own attributes (condition, bin, …).
        let item_spans_from = spans.len();
        for unit in range {
            if verdicts.codes[unit as usize].is_some() {
                continue;
            }
            while line_at < lines.len() && capacity[lines[line_at]] == 0 {
                line_at += 1;
            }
            let Some(&line) = lines.get(line_at) else {
                overflow.push(unit);
                continue;
            };
            capacity[line] -= 1;
            match spans[item_spans_from..].last_mut() {
                Some((_, end, span_line)) if *end == unit && *span_line == line => *end += 1,
                _ => spans.push((unit, unit + 1, line)),
            }
        }
        if !overflow.is_empty() {
            let detail = exceeded_detail(
                po,
                item,
                overflow.len() as u64,
                u64::from(units.range(i).len() as u32),
            );
            for unit in overflow {
                verdicts.fail(unit, OutcomeCode::QuantityExceeded, Some(detail.clone()));
            }
        }
    }
    if let Some(kinds) = line_kinds {
        for (line, po_line) in po.lines.iter().enumerate() {
            let left = capacity[line];
            if left == 0 {
                continue;
            }
            if kinds[line] == SkuKind::Plain {
                plain.push((line, left));
            } else {
                verdicts.item_errors.push(UnitError {
                    serial: None,
                    sku: None,
                    code: OutcomeCode::SerialsRequired,
                    detail: Some(format!(
                        "auto-GRN receives everything outstanding: line {} needs {left} more serials",
                        po_line.line_item_number
                    )),
                });
            }
        }
    }
    (spans, plain)
}

fn exceeded_detail(po: &PoRecord, item: &GrnItem, over: u64, given: u64) -> String {
    format!(
        "{over} of {given} units are past what PO {:?} still allows for SKU {:?}",
        po.reference_code,
        item.sku.as_deref().unwrap_or("")
    )
}

/// The kind of each PO line's SKU, as registered now.
fn line_kinds(engine: &Engine, account: u32, po: &PoRecord) -> Result<Vec<SkuKind>> {
    po.lines
        .iter()
        .map(|line| {
            let name = engine.sku_name(account, line.sku)?.unwrap_or_default();
            Ok(engine
                .sku_record(account, &name)?
                .map_or(SkuKind::Serialized, |s| s.kind))
        })
        .collect()
}

/// The encoded records of a GRN's units: one value per (item, line) span, plus one per
/// reused value (which keeps its earlier history).
struct Values {
    /// `(first unit, value index)`, ascending by first unit; a span covers up to the next.
    spans: Vec<(u32, usize)>,
    values: Vec<Vec<u8>>,
    reused: HashMap<u32, Vec<u8>>,
}

impl Values {
    fn build(
        units: &Units<'_>,
        skus: &[Option<SkuRecord>],
        po: &PoRecord,
        spans: &LineSpans,
        grn: u32,
        now: u64,
        reused: HashMap<u32, SerialRecord>,
    ) -> Self {
        let record_for = |item: usize, line: usize| SerialRecord {
            state: SerialState::Inwarded,
            sku: skus[item].as_ref().map_or(0, |s| s.id),
            po: po.id,
            line: line as u32,
            grn,
            condition: units.items[item].condition.unwrap_or(Condition::Good),
            bin: units.items[item].bin.clone(),
            qc_reason: units.items[item].qc_reason.clone(),
            order: None,
            history: vec![Event {
                at_ms: now,
                kind: EventKind::Inwarded { grn },
            }],
        };
        let mut sorted = spans.clone();
        sorted.sort_unstable();
        let mut out = Values {
            spans: Vec::with_capacity(sorted.len()),
            values: Vec::with_capacity(sorted.len()),
            reused: HashMap::with_capacity(reused.len()),
        };
        let mut records = Vec::with_capacity(sorted.len());
        for (start, _, line) in &sorted {
            let record = record_for(units.item_of(*start), *line);
            out.spans.push((*start, out.values.len()));
            out.values.push(codec::encode(&record));
            records.push((*start, record));
        }
        for (unit, mut old) in reused {
            let span = records.partition_point(|(s, _)| *s <= unit) - 1;
            let mut record = records[span].1.clone();
            old.history.append(&mut record.history);
            record.history = old.history;
            out.reused.insert(unit, codec::encode(&record));
        }
        out
    }

    #[inline]
    fn of(&self, unit: u32) -> &[u8] {
        if !self.reused.is_empty() {
            if let Some(value) = self.reused.get(&unit) {
                return value;
            }
        }
        let span = self.spans.partition_point(|(s, _)| *s <= unit) - 1;
        &self.values[self.spans[span].1]
    }
}

/// The serial entries of a GRN as sorted runs: `keyed` cut into contiguous pieces, one SST
/// each when the commit is large.
struct GrnRuns<'a> {
    account: u32,
    keyed: &'a [(u64, u32)],
    bounds: Vec<usize>,
    units: &'a Units<'a>,
    values: &'a Values,
}

impl<'a> GrnRuns<'a> {
    fn new(
        account: u32,
        keyed: &'a [(u64, u32)],
        units: &'a Units<'a>,
        values: &'a Values,
    ) -> Self {
        let threads = rayon::current_num_threads().max(1);
        let runs = keyed.len().div_ceil(RUN_ENTRIES_MIN).clamp(1, threads);
        let bounds = (0..=runs).map(|i| i * keyed.len() / runs).collect();
        Self {
            account,
            keyed,
            bounds,
            units,
            values,
        }
    }
}

impl SortedRuns for GrnRuns<'_> {
    fn run_count(&self) -> usize {
        self.bounds.len() - 1
    }

    fn run_len(&self, run: usize) -> usize {
        self.bounds[run + 1] - self.bounds[run]
    }

    fn emit(&self, run: usize, sink: &mut EntrySink<'_>) -> Result<(), StoreError> {
        let mut key = Vec::with_capacity(keys::SERIAL_KEY_HEADER_LEN + serial::SERIAL_LEN_MAX);
        for &(hash, unit) in &self.keyed[self.bounds[run]..self.bounds[run + 1]] {
            keys::serial_into(&mut key, self.account, hash, self.units.serial(unit));
            sink(&key, self.values.of(unit))?;
        }
        Ok(())
    }
}

/// The GRN's serials in request order, as list chunks: `[len: u8][bytes]` repeated.
fn list_chunks(account: u32, seq: u32, units: &Units<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut chunks = Vec::new();
    let total = units.len();
    let mut unit = 0usize;
    while unit < total {
        let end = (unit + LIST_CHUNK_SERIALS).min(total);
        let mut value = Vec::with_capacity((end - unit) * 21);
        for u in unit..end {
            let serial = units.serial(u as u32);
            value.push(serial.len() as u8);
            value.extend_from_slice(serial);
        }
        let chunk = (unit / LIST_CHUNK_SERIALS) as u32;
        chunks.push((
            keys::list_chunk(account, keys::ListKind::Grn, u64::from(seq), chunk),
            value,
        ));
        unit = end;
    }
    chunks
}
