//! Per-PO reconciliation: for each line, what was ordered, what serials were listed for it
//! (type 1 expected, type 3 generated), what was received, how far receipt went past the
//! order (type 3 tolerance) or falls short of it, and the states of its serials.
//!
//! Built from the two answers every client can get, `PO.GET` and `PO.REPORT`, so it reads
//! the same from a data directory and from a server.

use std::collections::HashMap;

use serde::Serialize;

use crate::engine::{PoView, REPORT_HEADER};

/// Columns of the reconciliation, in order.
pub const HEADER: [&str; 10] = [
    "lineItemNumber",
    "sku",
    "ordered",
    "listed",
    "received",
    "overTolerance",
    "missing",
    "open",
    "outward",
    "cancelled",
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineReconciliation {
    pub line_item_number: String,
    pub sku: String,
    pub ordered: u64,
    /// Serials expected (type 1) or generated (type 3) for the line.
    pub listed: u64,
    pub received: u64,
    /// Received beyond the ordered quantity (type 3, within its tolerance).
    pub over_tolerance: u64,
    /// Ordered but not (yet) received.
    pub missing: u64,
    /// Listed serials not received: still `expected` or `generated`.
    pub open: u64,
    /// Received serials since consumed by an order.
    pub outward: u64,
    /// Listed serials whose line changed or whose PO was cancelled.
    pub cancelled: u64,
}

impl LineReconciliation {
    /// The line's values as text, in `HEADER` order.
    pub fn cells(&self) -> [String; 10] {
        [
            self.line_item_number.clone(),
            self.sku.clone(),
            self.ordered.to_string(),
            self.listed.to_string(),
            self.received.to_string(),
            self.over_tolerance.to_string(),
            self.missing.to_string(),
            self.open.to_string(),
            self.outward.to_string(),
            self.cancelled.to_string(),
        ]
    }
}

/// One row per live line of `po`, then a `TOTAL` row. `report` is the PO's USN report
/// (CSV with `engine::REPORT_HEADER`).
pub fn reconcile(po: &PoView, report: &[u8]) -> Result<Vec<LineReconciliation>, csv::Error> {
    let mut lines: Vec<LineReconciliation> = po
        .lines
        .iter()
        .map(|l| LineReconciliation {
            line_item_number: l.line_item_number.clone(),
            sku: l.sku.clone(),
            ordered: l.ordered,
            listed: l.generated,
            received: l.received,
            over_tolerance: l.received.saturating_sub(l.ordered),
            missing: l.ordered.saturating_sub(l.received),
            ..LineReconciliation::default()
        })
        .collect();
    let by_number: HashMap<String, usize> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (l.line_item_number.clone(), i))
        .collect();
    let line_column = column(&REPORT_HEADER, "lineItemNumber");
    let state_column = column(&REPORT_HEADER, "state");
    let mut reader = csv::Reader::from_reader(report);
    for record in reader.byte_records() {
        let record = record?;
        let number = String::from_utf8_lossy(record.get(line_column).unwrap_or(b""));
        let Some(&at) = by_number.get(number.as_ref()) else {
            continue;
        };
        let line = &mut lines[at];
        match record.get(state_column).unwrap_or(b"") {
            b"expected" | b"generated" => line.open += 1,
            b"outward" => line.outward += 1,
            b"cancelled" => line.cancelled += 1,
            _ => {}
        }
    }
    let mut total = LineReconciliation {
        line_item_number: "TOTAL".into(),
        ..LineReconciliation::default()
    };
    for l in &lines {
        total.ordered += l.ordered;
        total.listed += l.listed;
        total.received += l.received;
        total.over_tolerance += l.over_tolerance;
        total.missing += l.missing;
        total.open += l.open;
        total.outward += l.outward;
        total.cancelled += l.cancelled;
    }
    lines.push(total);
    Ok(lines)
}

fn column(header: &[&str], name: &str) -> usize {
    header.iter().position(|h| *h == name).unwrap_or(usize::MAX)
}
