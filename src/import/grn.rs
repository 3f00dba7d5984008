//! A GRN sheet: one row per unit (`sku`, `serial`, `condition`, `bin`, `qcReason`), or per
//! quantity (`sku`, `quantity`: plain SKUs, and type 4 where the engine makes the
//! serials). The whole file is one atomic GRN against one PO, named by options or by
//! `grnId` / `referenceCode` columns that must then agree on every row.
//!
//! Rows with the same SKU, condition, bin and QC reason become one item, whatever their
//! order, so a file of any size is a handful of items whose serials sit in one arena.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use csv::ByteRecord;

use super::{quantity_cell, text_cell, Columns, ImportError, Problems, RowProblem};
use super::{Sheet, Verdict, INVALID_CELL};
use crate::domain::Condition;
use crate::engine::{GrnItem, GrnPayload};
use crate::outcome::{OutcomeCode, UnitError};
use crate::serial::SerialList;

/// Every column a GRN sheet may have.
pub const COLUMNS: [&str; 9] = [
    "grnId",
    "referenceCode",
    "invoiceNumber",
    "sku",
    "serial",
    "quantity",
    "condition",
    "bin",
    "qcReason",
];

/// What the command line says about the GRN; a column, where present, must agree.
#[derive(Debug, Clone, Default)]
pub struct GrnOptions {
    pub grn_id: Option<String>,
    pub reference_code: Option<String>,
    pub invoice_number: Option<String>,
}

#[derive(Clone, Copy)]
struct GrnColumns {
    grn_id: Option<usize>,
    reference_code: Option<usize>,
    invoice_number: Option<usize>,
    sku: Option<usize>,
    serial: Option<usize>,
    quantity: Option<usize>,
    condition: Option<usize>,
    bin: Option<usize>,
    qc_reason: Option<usize>,
}

impl GrnColumns {
    fn locate(sheet: &Sheet) -> Result<Self, ImportError> {
        let columns = Columns::new(sheet);
        let found = Self {
            grn_id: columns.find("grnId"),
            reference_code: columns.find("referenceCode"),
            invoice_number: columns.find("invoiceNumber"),
            sku: columns.find("sku"),
            serial: columns.find("serial"),
            quantity: columns.find("quantity"),
            condition: columns.find("condition"),
            bin: columns.find("bin"),
            qc_reason: columns.find("qcReason"),
        };
        // Units are serials, or quantities of a SKU.
        match (found.serial, found.quantity, found.sku) {
            (None, None, _) => Err(columns.missing("serial", &COLUMNS)),
            (None, Some(_), None) => Err(columns.missing("sku", &COLUMNS)),
            _ => Ok(found),
        }
    }
}

/// One row's unit, borrowed from the record.
struct Unit<'r> {
    sku: &'r str,
    serial: &'r [u8],
    quantity: Option<u64>,
    condition: Option<Condition>,
    bin: &'r str,
    qc_reason: &'r str,
}

/// Reads rows and checks each one's cells; the same checks run on both passes.
struct RowReader {
    columns: GrnColumns,
    /// The GRN id and PO every row must carry where the columns exist: from the options,
    /// else from the first row that names them.
    grn_id: Option<String>,
    reference_code: Option<String>,
    invoice_number: Option<String>,
}

impl RowReader {
    fn read<'r>(&mut self, row: u64, record: &'r ByteRecord) -> Result<Unit<'r>, RowProblem> {
        let c = &self.columns;
        same_everywhere(&mut self.grn_id, record, c.grn_id, row, "grnId")?;
        same_everywhere(
            &mut self.reference_code,
            record,
            c.reference_code,
            row,
            "referenceCode",
        )?;
        same_everywhere(
            &mut self.invoice_number,
            record,
            c.invoice_number,
            row,
            "invoiceNumber",
        )?;
        // Text, so the engine's verdict on it maps back to this row.
        let serial = text_cell(record, c.serial, row, "serial")?.as_bytes();
        let quantity = quantity_cell(record, c.quantity, row)?;
        let sku = text_cell(record, c.sku, row, "sku")?;
        match (serial.is_empty(), quantity) {
            (true, None) => {
                return Err(RowProblem {
                    row,
                    column: if c.serial.is_some() {
                        "serial"
                    } else {
                        "quantity"
                    },
                    code: INVALID_CELL.into(),
                    detail: "the row has neither a serial nor a quantity".into(),
                })
            }
            (false, Some(q)) if q != 1 => {
                return Err(RowProblem {
                    row,
                    column: "quantity",
                    code: INVALID_CELL.into(),
                    detail: format!("a row with a serial is one unit, not {q}"),
                })
            }
            (true, Some(_)) if sku.is_empty() => {
                return Err(RowProblem {
                    row,
                    column: "sku",
                    code: INVALID_CELL.into(),
                    detail: "a quantity needs its SKU".into(),
                })
            }
            _ => {}
        }
        let condition_text = text_cell(record, c.condition, row, "condition")?;
        let condition = match condition_text {
            "" => None,
            c if c.eq_ignore_ascii_case("good") => Some(Condition::Good),
            c if c.eq_ignore_ascii_case("bad") => Some(Condition::Bad),
            other => {
                return Err(RowProblem {
                    row,
                    column: "condition",
                    code: INVALID_CELL.into(),
                    detail: format!("{other:?} is not good or bad"),
                })
            }
        };
        Ok(Unit {
            sku,
            serial,
            quantity: if serial.is_empty() { quantity } else { None },
            condition,
            bin: text_cell(record, c.bin, row, "bin")?,
            qc_reason: text_cell(record, c.qc_reason, row, "qcReason")?,
        })
    }
}

/// Checks that column `name` (if the sheet has it) holds the same value on every row.
fn same_everywhere(
    expected: &mut Option<String>,
    record: &ByteRecord,
    column: Option<usize>,
    row: u64,
    name: &'static str,
) -> Result<(), RowProblem> {
    if column.is_none() {
        return Ok(());
    }
    let value = text_cell(record, column, row, name)?;
    match expected {
        None => {
            *expected = Some(value.to_string());
            Ok(())
        }
        Some(e) if e == value => Ok(()),
        Some(e) => Err(RowProblem {
            row,
            column: name,
            code: if name == "referenceCode" {
                OutcomeCode::WrongPo.as_str().into()
            } else {
                INVALID_CELL.into()
            },
            detail: format!(
                "{value:?} where the GRN has {e:?}: a GRN file is one GRN against one PO"
            ),
        }),
    }
}

/// The GRN a sheet holds, and what was wrong with its rows.
pub struct GrnSheet {
    pub payload: GrnPayload,
    pub rows: u64,
    pub units: u64,
    pub problems: Problems,
    reader: RowReader,
}

/// Item grouping key: SKU, condition, bin, QC reason, and whether the item is a quantity.
type ItemKey = (String, Option<Condition>, String, String, bool);

/// Rows of a sheet (or of one part of it) gathered into items.
#[derive(Default)]
struct Part {
    items: Vec<GrnItem>,
    /// `items[i]`'s grouping key.
    keys: Vec<ItemKey>,
    rows: u64,
    units: u64,
    problems: Problems,
}

impl Part {
    /// Adds `other`'s units (rows that came after this part's) to this part's items.
    fn absorb(&mut self, other: Part) {
        let mut by_key: HashMap<ItemKey, usize> = self
            .keys
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, k)| (k, i))
            .collect();
        for (key, item) in other.keys.into_iter().zip(other.items) {
            match by_key.get(&key) {
                Some(&at) => {
                    let into = &mut self.items[at];
                    if let (Some(to), Some(from)) = (into.serials.as_mut(), item.serials.as_ref()) {
                        to.append(from);
                    }
                    if let Some(q) = item.quantity {
                        let total = into.quantity.get_or_insert(0);
                        *total = total.saturating_add(q);
                    }
                }
                None => {
                    by_key.insert(key.clone(), self.items.len());
                    self.keys.push(key);
                    self.items.push(item);
                }
            }
        }
        self.rows += other.rows;
        self.units += other.units;
    }
}

/// Reads every row of `sheet` into one GRN. `progress` is told the bytes (CSV) and rows
/// read so far, now and then.
///
/// A large CSV without quotes is read in parallel, one part per thread, the parts' items
/// merged in file order. If any part finds a problem, or the parts disagree on the GRN or
/// PO, the file is read again in one piece so that problems are reported exactly as a
/// sequential read finds them (mixed POs are judged against the first row).
pub fn read(
    sheet: &mut Sheet,
    options: &GrnOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<GrnSheet, ImportError> {
    let columns = GrnColumns::locate(sheet)?;
    let new_reader = || RowReader {
        columns,
        grn_id: options.grn_id.clone(),
        reference_code: options.reference_code.clone(),
        invoice_number: options.invoice_number.clone(),
    };
    // Parts report what they read since they last did; `progress` hears the totals.
    let (bytes, rows) = (AtomicU64::new(0), AtomicU64::new(0));
    let add = |b: u64, r: u64| {
        progress(
            bytes.fetch_add(b, Ordering::Relaxed) + b,
            rows.fetch_add(r, Ordering::Relaxed) + r,
        )
    };
    let parallel = match sheet.split(rayon::current_num_threads())? {
        Some(parts) => read_parallel(parts, &new_reader, &add)?,
        None => None,
    };
    let (part, reader) = match parallel {
        Some(done) => done,
        None => {
            bytes.store(0, Ordering::Relaxed);
            rows.store(0, Ordering::Relaxed);
            let mut reader = new_reader();
            (read_part(sheet, &mut reader, &add)?, reader)
        }
    };
    if part.rows == 0 {
        return Err(ImportError::NoRows {
            file: sheet.file_name(),
        });
    }
    let Part {
        items,
        rows,
        units,
        problems,
        ..
    } = part;
    let file = sheet.file_name();
    let missing = |what: &str, flag: &str, column: &str| ImportError::Options {
        file: file.clone(),
        message: format!("no {what}: give {flag} or a {column} column"),
    };
    let payload = GrnPayload {
        grn_id: reader
            .grn_id
            .clone()
            .ok_or_else(|| missing("GRN id", "--grn", "grnId"))?,
        reference_code: reader
            .reference_code
            .clone()
            .ok_or_else(|| missing("PO", "--po", "referenceCode"))?,
        invoice_number: reader.invoice_number.clone(),
        items,
    };
    Ok(GrnSheet {
        payload,
        rows,
        units,
        problems,
        reader,
    })
}

type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// The parts of a split sheet read side by side; `None` if the result must come from a
/// sequential read instead (see `read`).
fn read_parallel(
    parts: Vec<Sheet>,
    new_reader: &(dyn Fn() -> RowReader + Sync),
    progress: Progress<'_>,
) -> Result<Option<(Part, RowReader)>, ImportError> {
    let read: Vec<(Part, RowReader)> = parts
        .into_par_iter()
        .map(|mut sheet| {
            let mut reader = new_reader();
            let part = read_part(&mut sheet, &mut reader, progress)?;
            Ok((part, reader))
        })
        .collect::<Result<_, ImportError>>()?;
    let agree = |f: &dyn Fn(&RowReader) -> &Option<String>| {
        let mut seen = read.iter().filter_map(|(_, r)| f(r).as_ref());
        let first = seen.next();
        seen.all(|v| Some(v) == first)
    };
    if read.iter().any(|(p, _)| !p.problems.is_empty())
        || !agree(&|r| &r.grn_id)
        || !agree(&|r| &r.reference_code)
        || !agree(&|r| &r.invoice_number)
    {
        return Ok(None);
    }
    let mut read = read.into_iter();
    let Some((mut merged, mut reader)) = read.next() else {
        return Ok(None);
    };
    for (part, other) in read {
        merged.absorb(part);
        reader.grn_id = reader.grn_id.take().or(other.grn_id);
        reader.reference_code = reader.reference_code.take().or(other.reference_code);
        reader.invoice_number = reader.invoice_number.take().or(other.invoice_number);
    }
    Ok(Some((merged, reader)))
}

/// Reads the rows of `sheet` into items, checking each row. `progress` hears the bytes and
/// rows read since it last heard.
fn read_part(
    sheet: &mut Sheet,
    reader: &mut RowReader,
    progress: Progress<'_>,
) -> Result<Part, ImportError> {
    let mut part = Part::default();
    let mut by_key: HashMap<ItemKey, usize> = HashMap::new();
    // Rows of one item usually come together: the previous row's item is tried first.
    let mut last: Option<usize> = None;
    let mut record = ByteRecord::new();
    let mut reported_bytes = 0;
    let mut reported_rows = 0;
    while let Some(row) = sheet.next_row(&mut record)? {
        part.rows += 1;
        if part.rows % (1 << 16) == 0 {
            let bytes = sheet.bytes_read().unwrap_or(0);
            progress(bytes - reported_bytes, part.rows - reported_rows);
            (reported_bytes, reported_rows) = (bytes, part.rows);
        }
        let unit = match reader.read(row, &record) {
            Ok(unit) => unit,
            Err(problem) => {
                part.problems.add(problem);
                continue;
            }
        };
        if !part.problems.is_empty() {
            continue; // Nothing will be sent; only the checks go on.
        }
        let is_quantity = unit.quantity.is_some();
        let item = match last {
            Some(at) if same_item(&part.keys[at], &unit, is_quantity) => at,
            _ => {
                let key: ItemKey = (
                    unit.sku.to_string(),
                    unit.condition,
                    unit.bin.to_string(),
                    unit.qc_reason.to_string(),
                    is_quantity,
                );
                let at = match by_key.get(&key) {
                    Some(&at) => at,
                    None => {
                        by_key.insert(key.clone(), part.items.len());
                        part.items.push(new_item(&unit, is_quantity));
                        part.keys.push(key);
                        part.items.len() - 1
                    }
                };
                last = Some(at);
                at
            }
        };
        let item = &mut part.items[item];
        match unit.quantity {
            // Saturating: a sum past u64 is refused by the engine's unit limit rather
            // than wrapping to a small quantity.
            Some(q) => {
                let total = item.quantity.get_or_insert(0);
                *total = total.saturating_add(q);
                part.units = part.units.saturating_add(q);
            }
            None => {
                if let Some(serials) = item.serials.as_mut() {
                    serials.push(unit.serial);
                }
                part.units += 1;
            }
        }
    }
    let bytes = sheet.bytes_read().unwrap_or(0);
    progress(bytes - reported_bytes, part.rows - reported_rows);
    Ok(part)
}

fn same_item(key: &ItemKey, unit: &Unit<'_>, is_quantity: bool) -> bool {
    key.0 == unit.sku
        && key.1 == unit.condition
        && key.2 == unit.bin
        && key.3 == unit.qc_reason
        && key.4 == is_quantity
}

fn new_item(unit: &Unit<'_>, is_quantity: bool) -> GrnItem {
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    GrnItem {
        sku: text(unit.sku),
        serials: (!is_quantity).then(SerialList::new),
        quantity: None,
        condition: unit.condition,
        bin: text(unit.bin),
        qc_reason: text(unit.qc_reason),
    }
}

impl GrnSheet {
    /// The judge of the error file's pass: a row's own problem, else the engine's verdict
    /// on its serial (or, for errors about an item, on its SKU).
    pub fn judge<'a>(
        &'a mut self,
        errors: &'a [UnitError],
    ) -> impl FnMut(u64, &ByteRecord) -> Verdict + 'a {
        let index = ErrorIndex::new(errors);
        // The row checks run again as on the first pass, against the GRN it settled on.
        let reader = &mut self.reader;
        reader.grn_id = Some(self.payload.grn_id.clone());
        reader.reference_code = Some(self.payload.reference_code.clone());
        reader.invoice_number = self.payload.invoice_number.clone();
        move |row, record| match reader.read(row, record) {
            Err(problem) => Some((
                problem.code,
                format!("{}: {}", problem.column, problem.detail),
            )),
            Ok(unit) => index.find(unit.serial, unit.sku),
        }
    }
}

/// The engine's unit errors by serial and by SKU, to find the rows they belong to.
pub(crate) struct ErrorIndex<'a> {
    by_serial: HashMap<&'a [u8], Vec<&'a UnitError>>,
    by_sku: HashMap<&'a str, Vec<&'a UnitError>>,
}

impl<'a> ErrorIndex<'a> {
    pub(crate) fn new(errors: &'a [UnitError]) -> Self {
        let mut index = Self {
            by_serial: HashMap::new(),
            by_sku: HashMap::new(),
        };
        for error in errors {
            match (&error.serial, &error.sku) {
                (Some(serial), _) => index
                    .by_serial
                    .entry(serial.as_bytes())
                    .or_default()
                    .push(error),
                (None, Some(sku)) => index.by_sku.entry(sku.as_str()).or_default().push(error),
                (None, None) => {}
            }
        }
        index
    }

    /// The verdict on a row of `serial` (may be empty) and `sku`.
    pub(crate) fn find(&self, serial: &[u8], sku: &str) -> Verdict {
        let errors = match self.by_serial.get(serial) {
            Some(errors) if !serial.is_empty() => errors,
            _ => self.by_sku.get(sku)?,
        };
        let code = errors
            .iter()
            .map(|e| e.code.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let detail = errors
            .iter()
            .filter_map(|e| e.detail.as_deref())
            .collect::<Vec<_>>()
            .join("; ");
        Some((code, detail))
    }
}
