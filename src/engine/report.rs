//! `PO.REPORT`: the USN report of one PO as CSV, one row per serial the PO ever had —
//! expected or generated on its lines (types 1, 3) and received by its GRNs (all types) —
//! in its current state.

use std::collections::HashSet;

use super::batch;
use super::{format_ms, Engine, EngineError, NameCache, Result};
use crate::serial::SerialList;
use crate::store::keys;

/// Header of the USN report (CONTRACT §3).
pub const REPORT_HEADER: [&str; 9] = [
    "serial",
    "sku",
    "lineItemNumber",
    "state",
    "grn",
    "condition",
    "bin",
    "qcReason",
    "updatedAt",
];

impl Engine {
    /// The USN report of PO `reference_code` as CSV bytes (header included).
    pub fn po_report(&self, account: &str, reference_code: &str) -> Result<Vec<u8>> {
        let slot = self.slot(account)?;
        let po = self.po_record(slot.id, reference_code)?;
        // Every serial the PO ever listed or received, first appearance first.
        let mut serials = SerialList::new();
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut add = |list: &SerialList| {
            for serial in list.iter() {
                if seen.insert(serial.to_vec()) {
                    serials.push(serial);
                }
            }
        };
        for line in 0..po.lines.len() {
            add(&self.line_serials(slot.id, po.id, line)?);
        }
        for seq in self.po_grns(slot.id, po.id)? {
            let (start, end) = keys::list_range(slot.id, keys::ListKind::Grn, seq.into());
            add(&batch::read_lists(self, &start, &end)?);
        }

        let records = batch::read_records(self, slot.id, &serials)?;
        let mut names = NameCache::new(self, slot.id);
        let mut out = csv::Writer::from_writer(Vec::with_capacity(serials.len() * 64));
        let csv_error = |e: csv::Error| EngineError::BadRequest(format!("report encoding: {e}"));
        out.write_record(REPORT_HEADER).map_err(csv_error)?;
        for (i, record) in records.iter().enumerate() {
            // A value cancelled here may since live on another PO: that life is not this
            // PO's to report.
            let Some(record) = record.as_ref().filter(|r| r.po == po.id) else {
                continue;
            };
            let line = po
                .lines
                .get(record.line as usize)
                .map(|l| l.line_item_number.as_str())
                .unwrap_or("");
            let sku = names.sku(record.sku)?.unwrap_or_default();
            let grn = names.grn(record.grn)?.unwrap_or_default();
            let condition = match record.condition {
                crate::domain::Condition::Good => "good",
                crate::domain::Condition::Bad => "bad",
            };
            out.write_record([
                serials.get(i),
                sku.as_bytes(),
                line.as_bytes(),
                record.state.name().as_bytes(),
                grn.as_bytes(),
                condition.as_bytes(),
                record.bin.as_deref().unwrap_or("").as_bytes(),
                record.qc_reason.as_deref().unwrap_or("").as_bytes(),
                format_ms(record.updated_at_ms()).as_bytes(),
            ])
            .map_err(csv_error)?;
        }
        out.into_inner()
            .map_err(|e| EngineError::BadRequest(format!("report encoding: {e}")))
    }
}
