//! Batches of serials, the shared machinery under every workflow that takes a list of
//! serials (GRN, type 1 PO, outward, return, generation):
//!
//! serial syntax → hash → sort by hash (= key order) → duplicate-in-request → prefilter →
//! confirm hits with batched reads → (the workflow applies its rule to what was found) →
//! one atomic commit whose serial entries stream out of [`SerialRuns`].
//!
//! Every step is over flat arrays indexed by unit number `u32`, in parallel where it pays.
//! A unit carries at most one outcome code: the first step that fails it decides.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use super::{Engine, EngineError, Result};
use crate::domain::SerialRecord;
use crate::outcome::{OutcomeCode, UnitError};
use crate::serial::{self, SerialList};
use crate::store::{codec, keys, EntrySink, Op, SortedRuns, StoreError};

/// Serials per stored list chunk (`keys::list_chunk`).
pub const LIST_CHUNK_SERIALS: usize = 65_536;
/// Most keys per batched confirming read.
const CONFIRM_BATCH_KEYS: usize = 2_048;
/// Threads issuing confirming reads at once (I/O depth, not CPU parallelism).
const CONFIRM_READERS: usize = 16;
/// Below this many units a step runs on the calling thread: small requests are many and
/// concurrent, and handing them to the pool only adds thread hand-offs.
pub const PARALLEL_UNITS_MIN: usize = 4096;
/// Entries per SST run below which a bulk commit is not split further.
const RUN_ENTRIES_MIN: usize = 250_000;

/// The serials of a request, item by item: unit `u` is serial `u - starts[i]` of item `i`.
pub struct Units<'a> {
    lists: Vec<&'a SerialList>,
    /// SKU name of each item, for error entries.
    skus: Vec<Option<&'a str>>,
    /// `starts[i]` is the first unit of item `i`; `starts[items]` is the unit count.
    starts: Vec<u32>,
    /// Whether positions read `items[i].serials[j]` (else `serials[j]`).
    itemized: bool,
}

impl<'a> Units<'a> {
    pub fn new(lists: Vec<&'a SerialList>, skus: Vec<Option<&'a str>>) -> Result<Self> {
        let mut starts = Vec::with_capacity(lists.len() + 1);
        let mut total: u64 = 0;
        for list in &lists {
            starts.push(u32::try_from(total).map_err(|_| too_many(total))?);
            total += list.len() as u64;
        }
        starts.push(u32::try_from(total).map_err(|_| too_many(total))?);
        Ok(Self {
            lists,
            skus,
            starts,
            itemized: true,
        })
    }

    /// One list of serials that is the whole request (`OUTWARD`, `RETURN`).
    pub fn single(list: &'a SerialList) -> Result<Self> {
        let mut units = Self::new(vec![list], vec![None])?;
        units.itemized = false;
        Ok(units)
    }

    pub fn len(&self) -> usize {
        *self.starts.last().unwrap_or(&0) as usize
    }

    pub fn items(&self) -> usize {
        self.lists.len()
    }

    #[inline]
    pub fn item_of(&self, unit: u32) -> usize {
        self.starts.partition_point(|&s| s <= unit) - 1
    }

    pub fn list(&self, item: usize) -> &'a SerialList {
        self.lists[item]
    }

    pub fn sku_name(&self, item: usize) -> Option<&'a str> {
        self.skus[item]
    }

    #[inline]
    pub fn serial(&self, unit: u32) -> &'a [u8] {
        let item = self.item_of(unit);
        self.lists[item].get((unit - self.starts[item]) as usize)
    }

    pub fn range(&self, item: usize) -> std::ops::Range<u32> {
        self.starts[item]..self.starts[item + 1]
    }

    /// Where a unit was given, for error details.
    pub fn position(&self, unit: u32) -> String {
        let item = self.item_of(unit);
        let index = unit - self.starts[item];
        if self.itemized {
            format!("items[{item}].serials[{index}]")
        } else {
            format!("serials[{index}]")
        }
    }
}

fn too_many(total: u64) -> EngineError {
    EngineError::Limit(format!("{total} serials in one request is past the limit"))
}

/// Per-unit outcomes of one validation pass.
pub struct Verdicts {
    pub codes: Vec<Option<OutcomeCode>>,
    details: HashMap<u32, String>,
    /// Failures of whole items or lines with no serial to hang them on.
    pub item_errors: Vec<UnitError>,
}

impl Verdicts {
    pub fn new(units: usize) -> Self {
        Self {
            codes: vec![None; units],
            details: HashMap::new(),
            item_errors: Vec::new(),
        }
    }

    pub fn fail(&mut self, unit: u32, code: OutcomeCode, detail: Option<String>) {
        let slot = &mut self.codes[unit as usize];
        if slot.is_none() {
            *slot = Some(code);
            if let Some(detail) = detail {
                self.details.insert(unit, detail);
            }
        }
    }

    pub fn failed(&self, unit: u32) -> bool {
        self.codes[unit as usize].is_some()
    }

    /// Fails every unit of `item`, or the item itself if it has no serials.
    pub fn fail_item(&mut self, units: &Units<'_>, item: usize, code: OutcomeCode, detail: String) {
        let range = units.range(item);
        if range.is_empty() {
            self.item_errors.push(UnitError {
                serial: None,
                sku: units.sku_name(item).map(str::to_string),
                code,
                detail: Some(detail),
            });
        } else {
            for unit in range {
                self.fail(unit, code, Some(detail.clone()));
            }
        }
    }

    pub fn is_clean(&self) -> bool {
        self.item_errors.is_empty() && self.codes.iter().all(Option::is_none)
    }

    pub fn into_errors(self, units: &Units<'_>) -> Vec<UnitError> {
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
                    sku: units.sku_name(units.item_of(unit)).map(str::to_string),
                    code,
                    detail: details.remove(&unit),
                })
            })
            .collect();
        errors.extend(item_errors);
        errors
    }
}

/// Syntax check and hash, in parallel. Returns `(hash, unit)` of every well-formed serial,
/// sorted by hash and then by serial bytes (= key order), with repeats removed and failed
/// as `DUPLICATE_IN_REQUEST`.
pub fn keyed_units(units: &Units<'_>, account: u32, verdicts: &mut Verdicts) -> Vec<(u64, u32)> {
    let mut keyed = hash_units(units, account, verdicts);
    if keyed.len() < PARALLEL_UNITS_MIN {
        keyed.sort_unstable();
    } else {
        keyed.par_sort_unstable();
    }
    mark_duplicates(&mut keyed, units, verdicts);
    keyed
}

fn hash_units(units: &Units<'_>, account: u32, verdicts: &mut Verdicts) -> Vec<(u64, u32)> {
    let mut keyed: Vec<(u64, u32)> = Vec::with_capacity(units.len());
    for item in 0..units.items() {
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

/// Stored records of some of a batch's units: `(index into keyed, record)`, ascending.
pub struct Found(pub Vec<(usize, SerialRecord)>);

impl Found {
    /// The stored record of `keyed[index]`, if any.
    pub fn get(&self, index: usize) -> Option<&SerialRecord> {
        self.0
            .binary_search_by_key(&index, |(i, _)| *i)
            .ok()
            .map(|at| &self.0[at].1)
    }
}

/// Reads the stored record of every unit the prefilter cannot rule out, in batches issued by
/// up to `CONFIRM_READERS` threads. Units the prefilter rules out have no record.
pub fn lookup(
    engine: &Engine,
    account: u32,
    keyed: &[(u64, u32)],
    units: &Units<'_>,
) -> Result<Found> {
    lookup_where(engine, account, keyed, units, |_| true)
}

/// [`lookup`] of the units `keyed[i]` for which `wanted(i)`; the others have no record in
/// the result.
pub fn lookup_where(
    engine: &Engine,
    account: u32,
    keyed: &[(u64, u32)],
    units: &Units<'_>,
    wanted: impl Fn(usize) -> bool,
) -> Result<Found> {
    let mut maybe = vec![false; keyed.len()];
    engine
        .prefilter
        .probe_sorted(keyed, |entry| entry.0, &mut maybe);
    let hits: Vec<usize> = (0..keyed.len())
        .filter(|&i| maybe[i] && wanted(i))
        .collect();
    drop(maybe);
    // Confirming reads are latency-bound (they often miss the page cache: ingested files
    // are written past it), so batches are read by up to CONFIRM_READERS threads at once
    // rather than on the CPU pool.
    type Batch = Result<Vec<(usize, SerialRecord)>>;
    let read_batch = |batch: &[usize]| -> Batch {
        let batch_keys: Vec<Vec<u8>> = batch
            .iter()
            .map(|&i| keys::serial(account, keyed[i].0, units.serial(keyed[i].1)))
            .collect();
        let values = engine.store.multi_get_sorted(&batch_keys)?;
        let mut found = Vec::new();
        for (&i, value) in batch.iter().zip(values) {
            if let Some(bytes) = value {
                found.push((i, codec::decode::<SerialRecord>(&bytes)?));
            }
        }
        Ok(found)
    };
    let batch_len = hits
        .len()
        .div_ceil(CONFIRM_READERS)
        .clamp(1, CONFIRM_BATCH_KEYS);
    let results: Vec<Batch> = if hits.len() <= batch_len {
        vec![read_batch(&hits)]
    } else {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let batches: Vec<&[usize]> = hits.chunks(batch_len).collect();
        let mut results: Vec<Option<Batch>> = (0..batches.len()).map(|_| None).collect();
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
    let mut found = Vec::new();
    for batch in results {
        found.extend(batch?);
    }
    Ok(Found(found))
}

/// Produces the entry of `keyed[index]` (unit `unit`): its value into the buffer, and
/// whether it replaces the stored record or updates it.
pub type ValueFn<'a> = dyn Fn(usize, u32, &mut Vec<u8>) -> Op + Sync + 'a;

/// A batch's serial entries as sorted runs: `keyed` cut into contiguous pieces, one SST
/// each when the commit is large. Values are produced as they are written, so ten million
/// entries are never materialised at once.
pub struct SerialRuns<'a> {
    account: u32,
    keyed: &'a [(u64, u32)],
    bounds: Vec<usize>,
    units: &'a Units<'a>,
    value: &'a ValueFn<'a>,
}

impl<'a> SerialRuns<'a> {
    pub fn new(
        account: u32,
        keyed: &'a [(u64, u32)],
        units: &'a Units<'a>,
        value: &'a ValueFn<'a>,
    ) -> Self {
        let threads = rayon::current_num_threads().max(1);
        let runs = keyed.len().div_ceil(RUN_ENTRIES_MIN).clamp(1, threads);
        let bounds = (0..=runs).map(|i| i * keyed.len() / runs).collect();
        Self {
            account,
            keyed,
            bounds,
            units,
            value,
        }
    }
}

impl SortedRuns for SerialRuns<'_> {
    fn run_count(&self) -> usize {
        self.bounds.len() - 1
    }

    fn run_len(&self, run: usize) -> usize {
        self.bounds[run + 1] - self.bounds[run]
    }

    fn emit(&self, run: usize, sink: &mut EntrySink<'_>) -> Result<(), StoreError> {
        let mut key = Vec::with_capacity(keys::SERIAL_KEY_HEADER_LEN + serial::SERIAL_LEN_MAX);
        let mut value = Vec::with_capacity(64);
        for index in self.bounds[run]..self.bounds[run + 1] {
            let (hash, unit) = self.keyed[index];
            keys::serial_into(&mut key, self.account, hash, self.units.serial(unit));
            value.clear();
            let op = (self.value)(index, unit, &mut value);
            sink(op, &key, &value)?;
        }
        Ok(())
    }
}

/// Serials as list chunks under `kind`/`owner`, `[len: u8][bytes]` repeated, starting at
/// chunk number `first_chunk`, `LIST_CHUNK_SERIALS` serials per chunk.
pub fn list_chunks<'s>(
    account: u32,
    kind: keys::ListKind,
    owner: u64,
    first_chunk: u32,
    serials: impl Iterator<Item = &'s [u8]>,
    chunk_step: u32,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut chunks = Vec::new();
    let mut value = Vec::new();
    let mut in_chunk = 0;
    let mut chunk = first_chunk;
    for serial in serials {
        value.push(serial.len() as u8);
        value.extend_from_slice(serial);
        in_chunk += 1;
        if in_chunk == LIST_CHUNK_SERIALS {
            chunks.push((
                keys::list_chunk(account, kind, owner, chunk),
                std::mem::take(&mut value),
            ));
            chunk += chunk_step;
            in_chunk = 0;
        }
    }
    if in_chunk > 0 {
        chunks.push((keys::list_chunk(account, kind, owner, chunk), value));
    }
    chunks
}

/// Every serial of list chunks in `[start, end)`, in order.
pub fn read_lists(engine: &Engine, start: &[u8], end: &[u8]) -> Result<SerialList> {
    let mut out = SerialList::new();
    let mut corrupt = false;
    engine.store.scan(start, end, &mut |_, value| {
        let mut at = 0;
        while at < value.len() {
            let len = value[at] as usize;
            let Some(serial) = value.get(at + 1..at + 1 + len) else {
                corrupt = true;
                return false;
            };
            out.push(serial);
            at += 1 + len;
        }
        true
    })?;
    if corrupt {
        return Err(EngineError::Storage(StoreError::Corrupt(
            "truncated serial list chunk".into(),
        )));
    }
    Ok(out)
}

/// The stored record of every serial of `list` (which may repeat values), in list order.
pub fn read_records(
    engine: &Engine,
    account: u32,
    list: &SerialList,
) -> Result<Vec<Option<SerialRecord>>> {
    let mut order: Vec<(u64, u32)> = (0..list.len() as u32)
        .map(|i| (serial::serial_hash(account, list.get(i as usize)), i))
        .collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| list.get(a.1 as usize).cmp(list.get(b.1 as usize)))
    });
    let batches: Vec<Result<Vec<(u32, SerialRecord)>>> = order
        .par_chunks(CONFIRM_BATCH_KEYS)
        .map(|batch| {
            let batch_keys: Vec<Vec<u8>> = batch
                .iter()
                .map(|&(hash, i)| keys::serial(account, hash, list.get(i as usize)))
                .collect();
            let values = engine.store.multi_get_sorted(&batch_keys)?;
            let mut found = Vec::new();
            for (&(_, i), value) in batch.iter().zip(values) {
                if let Some(bytes) = value {
                    found.push((i, codec::decode::<SerialRecord>(&bytes)?));
                }
            }
            Ok(found)
        })
        .collect();
    let mut out = vec![None; list.len()];
    for batch in batches {
        for (i, record) in batch? {
            out[i as usize] = Some(record);
        }
    }
    Ok(out)
}

/// Commits `puts` plus one record per serial of `serials` (distinct values; `value` writes
/// unit `u`'s record), fills the prefilter, releases the account lock and waits until the
/// commit is durable.
pub fn commit(
    engine: &Engine,
    guard: parking_lot::MutexGuard<'_, ()>,
    account: u32,
    serials: &SerialList,
    puts: Vec<(Vec<u8>, Vec<u8>)>,
    value: &(dyn Fn(u32, &mut Vec<u8>) + Sync),
) -> Result<()> {
    let units = Units::single(serials)?;
    let mut verdicts = Verdicts::new(units.len());
    let keyed = keyed_units(&units, account, &mut verdicts);
    if !verdicts.is_clean() {
        return Err(EngineError::Storage(StoreError::Corrupt(
            "a commit's serials were not distinct, well-formed values".into(),
        )));
    }
    let value = |_: usize, unit: u32, out: &mut Vec<u8>| {
        value(unit, out);
        Op::Put
    };
    let runs = SerialRuns::new(account, &keyed, &units, &value);
    let poison = engine.fail_on_unwind();
    let ticket = engine.write(crate::store::Commit {
        puts,
        runs: Some(&runs),
    })?;
    engine.prefilter.insert_sorted(&keyed, |entry| entry.0);
    drop(poison);
    drop(guard);
    engine.sync(ticket)
}
