//! The GRN pipeline: validate every unit of a GRN in one pass under the account's USN rule,
//! then commit it atomically.
//!
//! items (type 4: serials generated; auto: outstanding lines added) → batch (syntax, hash,
//! sort, duplicates, prefilter, confirming reads; `batch`) → the USN rule per unit
//! (`rules::grn_unit`) → item rules → quantities per PO line → one atomic commit →
//! prefilter insert.

use std::time::{Duration, Instant};

use xxhash_rust::xxh3::Xxh3Default;

use super::batch::{self, Found, SerialRuns, Units, Verdicts, PARALLEL_UNITS_MIN};
use super::payload::{GrnItem, GrnPayload};
use super::rules::{self, GrnUnit};
use super::{check_name, generate, now_ms, Engine, EngineError, Result};
use crate::domain::{
    AccountRecord, Condition, Event, EventKind, GrnRecord, PoRecord, PoStatus, RecordOp,
    SerialRecord, SerialState, SkuKind, SkuRecord, UsnType,
};
use crate::outcome::{GrnReply, OutcomeCode, UnitError};
use crate::serial::SerialList;
use crate::store::{codec, keys, Commit, Op};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrnMode {
    /// Validate only; write nothing.
    Check,
    /// Validate and commit the units given.
    Commit,
    /// Receive everything outstanding on the PO in one GRN.
    Auto,
}

/// No line: the unit is placed on a line of its item's SKU.
const BY_SKU: u32 = u32::MAX;

/// One item of the GRN as the pipeline sees it: the payload's item, or one added by auto
/// mode, with its serials (given, generated or drawn from the pool).
struct Item<'a> {
    given: &'a GrnItem,
    serials: &'a SerialList,
    sku: Option<SkuRecord>,
    /// Serials made by the engine for this item (type 4), so none were required of the client.
    generated: bool,
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

/// How units are spread over PO lines: `(first unit, end unit, line)`, ascending.
type LineSpans = Vec<(u32, u32, usize)>;

fn check_request(engine: &Engine, payload: &GrnPayload, mode: GrnMode) -> Result<()> {
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
    Ok(())
}

pub(super) fn receive(
    engine: &Engine,
    account: &str,
    payload: &GrnPayload,
    mode: GrnMode,
) -> Result<GrnReply> {
    check_request(engine, payload, mode)?;
    engine.check_healthy()?;
    let slot = engine.slot(account)?;
    let guard = slot.lock.lock();
    let mut account_record = engine.account_record(account)?;
    let usn = account_record.usn_type;

    if mode == GrnMode::Auto && !rules::auto_grn_allowed(&account_record) {
        return Ok(GrnReply::Rejected {
            grn_id: payload.grn_id.clone(),
            errors: vec![UnitError {
                serial: None,
                sku: None,
                code: OutcomeCode::AutoGrnNotSupported,
                detail: Some(match usn {
                    UsnType::Pool => {
                        "auto-GRN is off for this USN type 5 account (AUTOGRN on)".to_string()
                    }
                    _ => format!("USN type {} accounts do not take auto-GRN", usn.number()),
                }),
            }],
        });
    }

    let fingerprint = fingerprint(payload, mode);
    let grn_key = keys::grn(slot.id, &payload.grn_id);
    if let Some(existing) = engine.get_decoded::<GrnRecord>(&grn_key)? {
        if existing.fingerprint != fingerprint {
            return Err(EngineError::GrnExists(payload.grn_id.clone()));
        }
        let serials = if existing.generated_count > 0 {
            let (start, end) = keys::list_range(slot.id, keys::ListKind::Grn, existing.seq.into());
            batch::read_lists(engine, &start, &end)?
        } else {
            SerialList::new()
        };
        // The original may still be waiting for its sync (early lock release): a replay must
        // not acknowledge it before it is durable.
        let ticket = engine.store.written();
        drop(guard);
        engine.sync(ticket)?;
        return Ok(GrnReply::Committed {
            grn_id: existing.grn_id,
            units: existing.units,
            serials,
            replayed: true,
        });
    }

    let mut po = engine.po_record(slot.id, &payload.reference_code)?;
    if po.status == PoStatus::Cancelled {
        return Err(EngineError::PoCancelled(po.reference_code));
    }
    let started = Instant::now();

    // Items: the payload's, then (auto mode) one per serialized line it does not name.
    let skus = resolve_skus(engine, slot.id, &payload.items)?;
    let kinds = line_kinds(engine, slot.id, &po)?;
    let mut extra: Vec<GrnItem> = Vec::new();
    if mode == GrnMode::Auto && matches!(usn, UsnType::GeneratedAtGrn | UsnType::Pool) {
        extra = outstanding_items(engine, slot.id, &account_record, &po, &kinds, &skus)?;
    }
    let extra_skus = resolve_skus(engine, slot.id, &extra)?;
    // Serials the engine makes: type 4 items of a serialized SKU given by quantity.
    let generated_counter = account_record.last_serial_counter + 1;
    let mut generated: Vec<Option<SerialList>> = Vec::new();
    for (item, sku) in payload
        .items
        .iter()
        .zip(&skus)
        .chain(extra.iter().zip(&extra_skus))
    {
        let make = usn == UsnType::GeneratedAtGrn
            && item.serials.is_none()
            && sku.as_ref().is_some_and(|s| s.kind == SkuKind::Serialized);
        generated.push(match (make, item.quantity) {
            (true, Some(quantity)) => Some(generate::draw(
                engine,
                slot.id,
                &mut account_record,
                quantity,
            )?),
            _ => None,
        });
    }
    static EMPTY: SerialList = SerialList::new_const();
    let items: Vec<Item<'_>> = payload
        .items
        .iter()
        .chain(&extra)
        .zip(skus.into_iter().chain(extra_skus))
        .zip(&generated)
        .map(|((given, sku), made)| Item {
            given,
            serials: made.as_ref().or(given.serials.as_ref()).unwrap_or(&EMPTY),
            sku,
            generated: made.is_some(),
        })
        .collect();
    let generated_count: u64 = generated.iter().flatten().map(|l| l.len() as u64).sum();

    let units = Units::new(
        items.iter().map(|i| i.serials).collect(),
        items.iter().map(|i| i.given.sku.as_deref()).collect(),
    )?;
    let mut verdicts = Verdicts::new(units.len());
    let keyed = batch::keyed_units(&units, slot.id, &mut verdicts);
    let hashed = started.elapsed();
    // Types 1 and 3: serials still open on this PO's lines are recognised from the PO's own
    // lists without a read, when the GRN is large enough next to the PO for that to pay;
    // only the rest (usually errors) are looked up.
    let po_list_len: u64 = po
        .lines
        .iter()
        .map(|l| (l.listed - l.open_from.min(l.listed)) + l.received)
        .sum();
    let scan_lists = matches!(usn, UsnType::SellerOnPo | UsnType::GeneratedForPo)
        && (keyed.len() as u64).saturating_mul(engine.config.po_list_scan_ratio) >= po_list_len;
    let open = if scan_lists {
        open_lines(engine, slot.id, &po, &keyed, &units)?
    } else {
        Vec::new()
    };
    let is_open = |index: usize| open.get(index).is_some_and(|&line| line != BY_SKU);
    let found = batch::lookup_where(engine, slot.id, &keyed, &units, |i| !is_open(i))?;
    let confirmed = started.elapsed();

    // The USN rule per unit; types 1 and 3 bind a unit to the line its serial belongs to.
    let bound = apply_unit_rule(
        usn,
        &po,
        &items,
        &units,
        &keyed,
        &open,
        &found,
        &mut verdicts,
    );
    check_items(usn, &items, &units, &po, &mut verdicts);
    let (spans, plain) = allocate(
        &account_record,
        &po,
        &items,
        &units,
        &bound,
        (mode == GrnMode::Auto).then_some(kinds.as_slice()),
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
            hash_sort_ms = ms(hashed),
            probe_confirm_ms = ms(confirmed - hashed),
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
    let values = Values::build(&items, &units, &po, &spans, seq, now);
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
        generated_first: if generated_count > 0 {
            generated_counter
        } else {
            0
        },
        generated_count,
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
        (keys::po_grn(slot.id, po.id, seq), Vec::new()),
    ];
    puts.extend(batch::list_chunks(
        slot.id,
        keys::ListKind::Grn,
        seq.into(),
        0,
        (0..units.len() as u32).map(|u| units.serial(u)),
        1,
    ));
    let value = |index: usize, unit: u32, out: &mut Vec<u8>| {
        values.write(&found, is_open(index), index, unit, out)
    };
    let runs = SerialRuns::new(slot.id, &keyed, &units, &value);
    // The prefilter is filled while the commit is written: if the commit fails, the extra
    // fingerprints are harmless (the prefilter only has to be a superset of what is stored).
    let write = || {
        engine.write(Commit {
            puts,
            runs: Some(&runs),
        })
    };
    let fill = || engine.prefilter.insert_sorted(&keyed, |entry| entry.0);
    let poison = engine.fail_on_unwind();
    let ticket = if keyed.len() < PARALLEL_UNITS_MIN {
        let ticket = write()?;
        fill();
        ticket
    } else {
        let (written, ()) = rayon::join(write, fill);
        written?
    };
    drop(poison);
    // Early lock release: the next GRN of this account may validate against this one while
    // it is being synced. Durability follows write order, so a crash can lose this GRN only
    // together with everything written after it, and it is acknowledged only once synced.
    drop(guard);
    engine.sync(ticket)?;
    log_stages("committed", validated, started.elapsed());
    let mut serials = SerialList::with_capacity(generated_count as usize, 0);
    for list in generated.iter().flatten() {
        serials.append(list);
    }
    Ok(GrnReply::Committed {
        grn_id: payload.grn_id.clone(),
        units: total_units,
        serials,
        replayed: false,
    })
}

/// Auto mode, types 4 and 5: one item per serialized line whose SKU the payload does not
/// name, for everything outstanding on it. Type 4 generates its serials later; type 5 draws
/// unused pooled serials of the SKU (or unbound ones), oldest first.
fn outstanding_items(
    engine: &Engine,
    account: u32,
    record: &AccountRecord,
    po: &PoRecord,
    kinds: &[SkuKind],
    named: &[Option<SkuRecord>],
) -> Result<Vec<GrnItem>> {
    let mut wanted: Vec<(u32, u64)> = Vec::new();
    for (line, kind) in po.lines.iter().zip(kinds) {
        let outstanding = rules::line_capacity(record, line).min(line.outstanding());
        if *kind != SkuKind::Serialized
            || outstanding == 0
            || named.iter().flatten().any(|s| s.id == line.sku)
        {
            continue;
        }
        match wanted.iter_mut().find(|(sku, _)| *sku == line.sku) {
            Some((_, n)) => *n += outstanding,
            None => wanted.push((line.sku, outstanding)),
        }
    }
    let pooled = match record.usn_type {
        UsnType::Pool => Some(generate::draw_pool(engine, account, &wanted)?),
        _ => None,
    };
    let mut items = Vec::with_capacity(wanted.len());
    for (i, (sku, quantity)) in wanted.into_iter().enumerate() {
        let name = engine.sku_name(account, sku)?.unwrap_or_default();
        let serials = pooled.as_ref().map(|p| p[i].clone());
        items.push(GrnItem {
            sku: Some(name),
            quantity: if serials.is_some() {
                None
            } else {
                Some(quantity)
            },
            serials,
            ..GrnItem::default()
        });
    }
    Ok(items)
}

/// For types 1 and 3: the line of this PO on which each unit of `keyed` is open (listed
/// and neither received nor cancelled), or `BY_SKU`; indexed like `keyed`. Both sides are
/// sorted by hash: one merge pass.
fn open_lines(
    engine: &Engine,
    account: u32,
    po: &PoRecord,
    keyed: &[(u64, u32)],
    units: &Units<'_>,
) -> Result<Vec<u32>> {
    let open = engine.open_serials(account, po)?;
    let mut result = vec![BY_SKU; keyed.len()];
    let mut at = 0;
    for (index, &(hash, unit)) in keyed.iter().enumerate() {
        while at < open.by_hash.len() && open.by_hash[at].0 < hash {
            at += 1;
        }
        let serial = units.serial(unit);
        for &(_, i) in open.by_hash[at..].iter().take_while(|(h, _)| *h == hash) {
            if open.serials.get(i as usize) == serial {
                result[index] = open.lines[i as usize];
                break;
            }
        }
    }
    Ok(result)
}

/// Applies the account's USN rule to every unit: open on a line of this PO (`open`), found
/// in storage, or neither. Returns, for types 1 and 3, the line each unit's serial belongs
/// to (`BY_SKU` otherwise).
#[allow(clippy::too_many_arguments)]
fn apply_unit_rule(
    usn: UsnType,
    po: &PoRecord,
    items: &[Item<'_>],
    units: &Units<'_>,
    keyed: &[(u64, u32)],
    open: &[u32],
    found: &Found,
    verdicts: &mut Verdicts,
) -> Vec<u32> {
    let binds = matches!(usn, UsnType::SellerOnPo | UsnType::GeneratedForPo);
    let mut bound = if binds {
        vec![BY_SKU; units.len()]
    } else {
        Vec::new()
    };
    let mut next_found = found.0.iter().peekable();
    for (index, &(_, unit)) in keyed.iter().enumerate() {
        if let Some(&line) = open.get(index).filter(|&&line| line != BY_SKU) {
            let item_sku = items[units.item_of(unit)].sku.as_ref().map(|s| s.id);
            if item_sku.is_some_and(|sku| sku != po.lines[line as usize].sku) {
                verdicts.fail(
                    unit,
                    OutcomeCode::WrongSku,
                    Some("serial belongs to another SKU on this PO".into()),
                );
            } else {
                bound[unit as usize] = line;
            }
            continue;
        }
        let existing = match next_found.peek() {
            Some((i, record)) if *i == index => {
                next_found.next();
                Some(record)
            }
            _ => None,
        };
        // Fresh values of types 2 and 4 need no rule beyond "not found".
        if existing.is_none() && !binds && usn != UsnType::Pool {
            continue;
        }
        let item_sku = items[units.item_of(unit)].sku.as_ref().map(|s| s.id);
        match rules::grn_unit(usn, po.id, item_sku, existing) {
            GrnUnit::Fail(code, detail) => verdicts.fail(unit, code, Some(detail.into())),
            GrnUnit::OnLine { line, .. } => bound[unit as usize] = line,
            GrnUnit::New | GrnUnit::Reused | GrnUnit::Pooled { .. } => {}
        }
    }
    bound
}

fn resolve_skus(
    engine: &Engine,
    account: u32,
    items: &[GrnItem],
) -> Result<Vec<Option<SkuRecord>>> {
    let mut cache: std::collections::HashMap<&str, Option<SkuRecord>> =
        std::collections::HashMap::new();
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
    usn: UsnType,
    items: &[Item<'_>],
    units: &Units<'_>,
    po: &PoRecord,
    verdicts: &mut Verdicts,
) {
    for (i, item) in items.iter().enumerate() {
        let given = item.given;
        let name = given.sku.as_deref().unwrap_or("");
        if given.condition == Some(Condition::Bad) && given.qc_reason.is_none() {
            verdicts.fail_item(
                units,
                i,
                OutcomeCode::QcReasonRequired,
                "units in bad condition need a qcReason".into(),
            );
        }
        if usn == UsnType::GeneratedAtGrn && given.serials.is_some() {
            verdicts.fail_item(
                units,
                i,
                OutcomeCode::SerialsNotAllowed,
                "USN type 4 serials are generated by the GRN: give a quantity".into(),
            );
        }
        let Some(sku) = &item.sku else {
            if given.sku.is_none() && rules::sku_from_serial(usn) && !item.serials.is_empty() {
                continue;
            }
            let detail = if given.sku.is_none() {
                "item has no sku".to_string()
            } else {
                format!("SKU {name:?} is not registered")
            };
            verdicts.fail_item(units, i, OutcomeCode::UnknownSku, detail);
            continue;
        };
        match sku.kind {
            SkuKind::Plain if !item.serials.is_empty() => verdicts.fail_item(
                units,
                i,
                OutcomeCode::SkuNotSerialized,
                format!("SKU {name:?} is plain: receive it by quantity"),
            ),
            SkuKind::Serialized if item.serials.is_empty() && !item.generated => {
                let detail = if usn == UsnType::GeneratedAtGrn {
                    format!("SKU {name:?} is serialized: give a quantity to generate")
                } else {
                    format!("SKU {name:?} is serialized: give one serial per unit")
                };
                verdicts.fail_item(units, i, OutcomeCode::SerialsRequired, detail)
            }
            _ => {}
        }
        if !po
            .lines
            .iter()
            .any(|line| line.sku == sku.id && !line.is_removed())
        {
            verdicts.fail_item(
                units,
                i,
                OutcomeCode::WrongSku,
                format!("SKU {name:?} is not on PO {:?}", po.reference_code),
            );
        }
    }
}

/// Spreads units over PO lines, in request order, each line up to its capacity: a unit
/// bound to a line (types 1, 3) goes there, others go to the lines of their item's SKU.
/// Units past every capacity fail with `QUANTITY_EXCEEDED`. In auto mode, plain lines are
/// received in full and serialized lines must be covered exactly.
/// Returns the serial spans per line and the plain quantities per line.
fn allocate(
    account: &AccountRecord,
    po: &PoRecord,
    items: &[Item<'_>],
    units: &Units<'_>,
    bound: &[u32],
    line_kinds: Option<&[SkuKind]>,
    verdicts: &mut Verdicts,
) -> (LineSpans, Vec<(usize, u64)>) {
    let mut capacity: Vec<u64> = po
        .lines
        .iter()
        .map(|line| rules::line_capacity(account, line))
        .collect();
    let mut spans: LineSpans = Vec::new();
    let mut plain = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let sku_lines: Vec<usize> = match &item.sku {
            Some(sku) => (0..po.lines.len())
                .filter(|&l| po.lines[l].sku == sku.id)
                .collect(),
            None => Vec::new(),
        };
        let range = units.range(i);
        if range.is_empty() {
            let Some(sku) = &item.sku else { continue };
            let wanted = match (sku.kind, item.given.quantity) {
                (SkuKind::Plain, Some(q)) => q,
                (SkuKind::Plain, None) if line_kinds.is_some() => continue,
                (SkuKind::Plain, None) => {
                    verdicts.item_errors.push(UnitError {
                        serial: None,
                        sku: item.given.sku.clone(),
                        code: OutcomeCode::QuantityExceeded,
                        detail: Some("plain items need a quantity".into()),
                    });
                    continue;
                }
                (SkuKind::Serialized, _) => continue,
            };
            let mut left = wanted;
            for &line in &sku_lines {
                let take = left.min(capacity[line]);
                if take > 0 {
                    capacity[line] -= take;
                    left -= take;
                    plain.push((line, take));
                }
            }
            if left > 0 && !sku_lines.is_empty() {
                verdicts.item_errors.push(UnitError {
                    serial: None,
                    sku: item.given.sku.clone(),
                    code: OutcomeCode::QuantityExceeded,
                    detail: Some(exceeded_detail(po, item.given, left, wanted)),
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
        for unit in range.clone() {
            if verdicts.failed(unit) {
                continue;
            }
            let line = match bound.get(unit as usize) {
                Some(&line) if line != BY_SKU => {
                    let line = line as usize;
                    if capacity.get(line).copied().unwrap_or(0) == 0 {
                        overflow.push(unit);
                        continue;
                    }
                    line
                }
                _ => {
                    while line_at < sku_lines.len() && capacity[sku_lines[line_at]] == 0 {
                        line_at += 1;
                    }
                    let Some(&line) = sku_lines.get(line_at) else {
                        overflow.push(unit);
                        continue;
                    };
                    line
                }
            };
            capacity[line] -= 1;
            match spans[item_spans_from..].last_mut() {
                Some((_, end, span_line)) if *end == unit && *span_line == line => *end += 1,
                _ => spans.push((unit, unit + 1, line)),
            }
        }
        if !overflow.is_empty() {
            let detail = exceeded_detail(po, item.given, overflow.len() as u64, range.len() as u64);
            for unit in overflow {
                verdicts.fail(unit, OutcomeCode::QuantityExceeded, Some(detail.clone()));
            }
        }
    }
    if let Some(kinds) = line_kinds {
        for (line, po_line) in po.lines.iter().enumerate() {
            // Auto-GRN receives what is outstanding, never the tolerance on top.
            let left = capacity[line].min(po_line.outstanding());
            if left == 0 {
                continue;
            }
            if kinds[line] == SkuKind::Plain {
                plain.push((line, left));
                capacity[line] -= left;
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

/// The records a GRN writes: one shared encoded value per (item, line) span for values new
/// to the account; a value with a stored record keeps its history and gets an event.
struct Values {
    /// `(first unit, record)`, ascending by first unit; a span covers up to the next.
    spans: Vec<(u32, SerialRecord)>,
    /// Each span's record, encoded.
    encoded: Vec<Vec<u8>>,
    /// Each span's `RecordOp::Inward`, encoded: the merge operand for units open on a line.
    inward_ops: Vec<Vec<u8>>,
}

impl Values {
    fn build(
        items: &[Item<'_>],
        units: &Units<'_>,
        po: &PoRecord,
        spans: &LineSpans,
        grn: u32,
        now: u64,
    ) -> Self {
        let mut sorted = spans.clone();
        sorted.sort_unstable();
        let spans: Vec<(u32, SerialRecord)> = sorted
            .iter()
            .map(|&(start, _, line)| {
                let given = items[units.item_of(start)].given;
                (
                    start,
                    SerialRecord {
                        state: SerialState::Inwarded,
                        sku: po.lines[line].sku,
                        po: po.id,
                        line: line as u32,
                        grn,
                        condition: given.condition.unwrap_or(Condition::Good),
                        bin: given.bin.clone(),
                        qc_reason: given.qc_reason.clone(),
                        order: None,
                        history: vec![Event {
                            at_ms: now,
                            kind: EventKind::Inwarded { grn },
                        }],
                    },
                )
            })
            .collect();
        let encoded = spans.iter().map(|(_, r)| codec::encode(r)).collect();
        let inward_ops = spans
            .iter()
            .map(|(_, r)| {
                codec::encode(&RecordOp::Inward {
                    sku: r.sku,
                    po: r.po,
                    line: r.line,
                    grn: r.grn,
                    condition: r.condition,
                    bin: r.bin.clone(),
                    qc_reason: r.qc_reason.clone(),
                    at_ms: now,
                })
            })
            .collect();
        Self {
            spans,
            encoded,
            inward_ops,
        }
    }

    /// Writes the entry of unit `unit` (`keyed[index]`) into `out`: a merge operand for a
    /// unit open on a line (its record is not read), else the whole new record.
    fn write(&self, found: &Found, open: bool, index: usize, unit: u32, out: &mut Vec<u8>) -> Op {
        let span = self.spans.partition_point(|(s, _)| *s <= unit) - 1;
        if open {
            out.extend_from_slice(&self.inward_ops[span]);
            return Op::Merge;
        }
        match found.get(index) {
            None => out.extend_from_slice(&self.encoded[span]),
            Some(old) => {
                let new = &self.spans[span].1;
                let mut record = new.clone();
                record.history = old.history.clone();
                record.history.extend(new.history.iter().cloned());
                codec::encode_into(&record, out);
            }
        }
        Op::Put
    }
}
