//! A PO sheet: rows of `referenceCode`, `vendorId`, `lineItemNumber`, `sku`, `quantity`,
//! and for type 1 one `serial` per row. Rows are grouped into POs by referenceCode and
//! into lines by lineItemNumber, in order of first appearance; a line's rows must agree on
//! its SKU and quantity, a PO's on its vendor. The file goes to the engine as one
//! `PO.IMPORT`: every PO is created, or none is.

use std::collections::HashMap;

use csv::ByteRecord;

use super::grn::ErrorIndex;
use super::{quantity_cell, text_cell, Columns, ImportError, Problems, RowProblem};
use super::{Sheet, Verdict, INVALID_CELL};
use crate::engine::{PoItem, PoPayload};
use crate::outcome::{PoReply, UnitError};
use crate::serial::SerialList;

/// Every column a PO sheet may have.
pub const COLUMNS: [&str; 6] = [
    "referenceCode",
    "vendorId",
    "lineItemNumber",
    "sku",
    "quantity",
    "serial",
];

struct PoColumns {
    reference_code: usize,
    vendor_id: Option<usize>,
    line_item_number: usize,
    sku: usize,
    quantity: usize,
    serial: Option<usize>,
}

impl PoColumns {
    fn locate(sheet: &Sheet) -> Result<Self, ImportError> {
        let columns = Columns::new(sheet);
        Ok(Self {
            reference_code: columns.require("referenceCode", &COLUMNS)?,
            vendor_id: columns.find("vendorId"),
            line_item_number: columns.require("lineItemNumber", &COLUMNS)?,
            sku: columns.require("sku", &COLUMNS)?,
            quantity: columns.require("quantity", &COLUMNS)?,
            serial: columns.find("serial"),
        })
    }
}

/// One row, borrowed from its record.
struct Row<'r> {
    reference_code: &'r str,
    vendor_id: &'r str,
    line_item_number: &'r str,
    sku: &'r str,
    quantity: u64,
    serial: &'r [u8],
}

fn required<'r>(
    record: &'r ByteRecord,
    column: usize,
    row: u64,
    name: &'static str,
) -> Result<&'r str, RowProblem> {
    let value = text_cell(record, Some(column), row, name)?;
    if value.is_empty() {
        return Err(RowProblem {
            row,
            column: name,
            code: INVALID_CELL.into(),
            detail: "is empty".into(),
        });
    }
    Ok(value)
}

impl PoColumns {
    fn read<'r>(&self, row: u64, record: &'r ByteRecord) -> Result<Row<'r>, RowProblem> {
        Ok(Row {
            reference_code: required(record, self.reference_code, row, "referenceCode")?,
            vendor_id: text_cell(record, self.vendor_id, row, "vendorId")?,
            line_item_number: required(record, self.line_item_number, row, "lineItemNumber")?,
            sku: required(record, self.sku, row, "sku")?,
            quantity: quantity_cell(record, Some(self.quantity), row)?.ok_or_else(|| {
                RowProblem {
                    row,
                    column: "quantity",
                    code: INVALID_CELL.into(),
                    detail: "is empty".into(),
                }
            })?,
            // Text, so the engine's verdict on it maps back to this row.
            serial: text_cell(record, self.serial, row, "serial")?.as_bytes(),
        })
    }
}

/// Where a PO and its lines were first seen, to check later rows against.
#[derive(Default)]
struct PoIndex {
    at: usize,
    lines: HashMap<String, usize>,
}

/// The POs a sheet holds, and what was wrong with its rows.
pub struct PoSheet {
    pub payloads: Vec<PoPayload>,
    pub rows: u64,
    pub serials: u64,
    pub problems: Problems,
    columns: PoColumns,
    index: HashMap<String, PoIndex>,
}

/// Reads every row of `sheet` into POs. `progress` is told the bytes (CSV) and rows read
/// so far, now and then.
pub fn read(
    sheet: &mut Sheet,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<PoSheet, ImportError> {
    let mut out = PoSheet {
        payloads: Vec::new(),
        rows: 0,
        serials: 0,
        problems: Problems::default(),
        columns: PoColumns::locate(sheet)?,
        index: HashMap::new(),
    };
    let mut record = ByteRecord::new();
    while let Some(row) = sheet.next_row(&mut record)? {
        out.rows += 1;
        if out.rows % (1 << 16) == 0 {
            progress(sheet.bytes_read().unwrap_or(0), out.rows);
        }
        if let Err(problem) = out.add(row, &record) {
            out.problems.add(problem);
        }
    }
    progress(sheet.bytes_read().unwrap_or(0), out.rows);
    if out.rows == 0 {
        return Err(ImportError::NoRows {
            file: sheet.file_name(),
        });
    }
    Ok(out)
}

impl PoSheet {
    fn add(&mut self, row: u64, record: &ByteRecord) -> Result<(), RowProblem> {
        let r = self.columns.read(row, record)?;
        let po = self.index.entry(r.reference_code.to_string()).or_default();
        if po.lines.is_empty() {
            po.at = self.payloads.len();
            self.payloads.push(PoPayload {
                vendor_id: r.vendor_id.to_string(),
                reference_code: r.reference_code.to_string(),
                create_or_update: "I".into(),
                is_cancel: None,
                items: Vec::new(),
            });
        }
        let payload = &mut self.payloads[po.at];
        // The PO's vendor is the first one its rows give.
        if payload.vendor_id.is_empty() {
            payload.vendor_id = r.vendor_id.to_string();
        }
        let line = match po.lines.get(r.line_item_number) {
            Some(&line) => line,
            None => {
                payload.items.push(PoItem {
                    line_item_number: r.line_item_number.to_string(),
                    sku: r.sku.to_string(),
                    quantity: r.quantity,
                    serials: None,
                });
                po.lines
                    .insert(r.line_item_number.to_string(), payload.items.len() - 1);
                payload.items.len() - 1
            }
        };
        check_agrees(payload, line, &r, row)?;
        if !r.serial.is_empty() {
            payload.items[line]
                .serials
                .get_or_insert_with(SerialList::new)
                .push(r.serial);
            self.serials += 1;
        }
        Ok(())
    }

    /// The judge of the error file's pass: a row's own problem, a request-level refusal of
    /// its PO (`refused`: a referenceCode and the reason), else the engine's verdict on
    /// its serial or its line's SKU.
    pub fn judge<'a>(
        &'a self,
        rejected: &'a [PoReply],
        refused: Option<(String, String, String)>,
    ) -> impl FnMut(u64, &ByteRecord) -> Verdict + 'a {
        let by_po: HashMap<&str, ErrorIndex<'a>> = rejected
            .iter()
            .filter_map(|reply| match reply {
                PoReply::Rejected {
                    reference_code,
                    errors,
                } => Some((reference_code.as_str(), ErrorIndex::new(errors))),
                _ => None,
            })
            .collect();
        move |row, record| {
            let r = match self.columns.read(row, record) {
                Ok(r) => r,
                Err(p) => return Some((p.code, format!("{}: {}", p.column, p.detail))),
            };
            let po = self.index.get(r.reference_code)?;
            let payload = &self.payloads[po.at];
            let line = *po.lines.get(r.line_item_number)?;
            if let Err(p) = check_agrees(payload, line, &r, row) {
                return Some((p.code, format!("{}: {}", p.column, p.detail)));
            }
            if let Some((reference, code, message)) = &refused {
                if reference == r.reference_code {
                    return Some((code.clone(), message.clone()));
                }
            }
            by_po
                .get(r.reference_code)?
                .find(r.serial, &payload.items[line].sku)
        }
    }
}

/// A row must agree with its PO's vendor and its line's SKU and quantity as first given.
fn check_agrees(payload: &PoPayload, line: usize, r: &Row<'_>, row: u64) -> Result<(), RowProblem> {
    let item = &payload.items[line];
    let disagree = |column: &'static str, first: &str, here: &str| RowProblem {
        row,
        column,
        code: INVALID_CELL.into(),
        detail: format!(
            "PO {:?} line {:?} has {column} {first:?} on an earlier row, {here:?} here",
            payload.reference_code, item.line_item_number
        ),
    };
    if !r.vendor_id.is_empty() && !payload.vendor_id.is_empty() && r.vendor_id != payload.vendor_id
    {
        return Err(disagree("vendorId", &payload.vendor_id, r.vendor_id));
    }
    if item.sku != r.sku {
        return Err(disagree("sku", &item.sku, r.sku));
    }
    if item.quantity != r.quantity {
        return Err(disagree(
            "quantity",
            &item.quantity.to_string(),
            &r.quantity.to_string(),
        ));
    }
    Ok(())
}

/// Unit errors of a rejected import, for the console.
pub fn errors_of(rejected: &[PoReply]) -> impl Iterator<Item = (&str, &UnitError)> {
    rejected.iter().flat_map(|reply| match reply {
        PoReply::Rejected {
            reference_code,
            errors,
        } => errors
            .iter()
            .map(|e| (reference_code.as_str(), e))
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    })
}
