//! A GRN sheet: one row per unit (`sku`, `serial`, `condition`, `bin`, `qcReason`), or per
//! quantity (`sku`, `quantity`: plain SKUs, and type 4 where the engine makes the
//! serials). The whole file is one atomic GRN against one PO, named by options or by
//! `grnId` / `referenceCode` columns that must then agree on every row.
//!
//! Rows with the same SKU, condition, bin and QC reason become one item, whatever their
//! order, so a file of any size is a handful of items whose serials sit in one arena.

use std::collections::HashMap;

use csv::ByteRecord;

use super::{cell, quantity_cell, text_cell, Columns, ImportError, Problems, RowProblem};
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
        let serial = cell(record, c.serial);
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

/// Reads every row of `sheet` into one GRN. `progress` is called now and then with the
/// sheet (for its position) and the rows read so far.
pub fn read(
    sheet: &mut Sheet,
    options: &GrnOptions,
    progress: &mut dyn FnMut(&Sheet, u64),
) -> Result<GrnSheet, ImportError> {
    let mut reader = RowReader {
        columns: GrnColumns::locate(sheet)?,
        grn_id: options.grn_id.clone(),
        reference_code: options.reference_code.clone(),
        invoice_number: options.invoice_number.clone(),
    };
    let mut items: Vec<GrnItem> = Vec::new();
    let mut by_key: HashMap<ItemKey, usize> = HashMap::new();
    // Rows of one item usually come together: the previous row's item is tried first.
    let mut last: Option<(ItemKey, usize)> = None;
    let mut problems = Problems::default();
    let (mut rows, mut units) = (0u64, 0u64);
    let mut record = ByteRecord::new();
    while let Some(row) = sheet.next_row(&mut record)? {
        rows += 1;
        if rows % (1 << 16) == 0 {
            progress(sheet, rows);
        }
        let unit = match reader.read(row, &record) {
            Ok(unit) => unit,
            Err(problem) => {
                problems.add(problem);
                continue;
            }
        };
        if !problems.is_empty() {
            continue; // Nothing will be sent; only the checks go on.
        }
        let is_quantity = unit.quantity.is_some();
        let item = match &last {
            Some((key, at))
                if key.0 == unit.sku
                    && key.1 == unit.condition
                    && key.2 == unit.bin
                    && key.3 == unit.qc_reason
                    && key.4 == is_quantity =>
            {
                *at
            }
            _ => {
                let key: ItemKey = (
                    unit.sku.to_string(),
                    unit.condition,
                    unit.bin.to_string(),
                    unit.qc_reason.to_string(),
                    is_quantity,
                );
                let at = *by_key.entry(key.clone()).or_insert_with(|| {
                    items.push(new_item(&unit, is_quantity));
                    items.len() - 1
                });
                last = Some((key, at));
                at
            }
        };
        let item = &mut items[item];
        match unit.quantity {
            Some(q) => {
                *item.quantity.get_or_insert(0) += q;
                units += q;
            }
            None => {
                if let Some(serials) = item.serials.as_mut() {
                    serials.push(unit.serial);
                }
                units += 1;
            }
        }
    }
    progress(sheet, rows);
    if rows == 0 {
        return Err(ImportError::NoRows {
            file: sheet.file_name(),
        });
    }
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
