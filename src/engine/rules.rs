//! The USN workflow rules in one place: what each USN type allows and what an existing serial
//! record means for a new request. The server and the CLI reach these only through the
//! engine; the pipeline in `grn.rs` asks these functions and never decides a rule itself.

use crate::domain::{AccountRecord, PoLine, SerialRecord, SerialState, UsnType};
use crate::outcome::OutcomeCode;

/// Whether `GRN.AUTO` may be used by this account (CONTRACT §1 table, "auto-GRN" column).
pub fn auto_grn_allowed(account: &AccountRecord) -> bool {
    match account.usn_type {
        UsnType::SellerAtGrn | UsnType::GeneratedAtGrn => true,
        UsnType::Pool => account.auto_grn,
        UsnType::SellerOnPo | UsnType::GeneratedForPo => false,
    }
}

/// The USN types whose GRN path this engine implements end to end.
pub fn grn_implemented(usn_type: UsnType) -> bool {
    usn_type == UsnType::SellerAtGrn
}

/// Type 2 rule: a serial received at GRN must be new to the account. `existing` is the
/// stored record of the same value, if any. `None` means the value may be used.
pub fn seller_serial_conflict(existing: &SerialRecord) -> Option<(OutcomeCode, &'static str)> {
    match existing.state {
        SerialState::Inwarded | SerialState::Outward => Some((
            OutcomeCode::AlreadyInwarded,
            "serial was already received by this account",
        )),
        SerialState::Expected | SerialState::Generated => Some((
            OutcomeCode::AlreadyExists,
            "serial is already known to this account",
        )),
        SerialState::Cancelled => None,
    }
}

/// How many more units a PO line may take.
///
/// Over-receipt is never allowed, except for type 3 with PO tolerance:
/// allowance = max(ceil(pct × ordered / 100), qty).
pub fn line_capacity(account: &AccountRecord, line: &PoLine) -> u64 {
    let allowance = if account.usn_type == UsnType::GeneratedForPo {
        let pct = (u64::from(account.tolerance_pct) * line.ordered).div_ceil(100);
        pct.max(account.tolerance_qty)
    } else {
        0
    };
    (line.ordered + allowance).saturating_sub(line.received)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(usn: UsnType, pct: u32, qty: u64) -> AccountRecord {
        AccountRecord {
            id: 1,
            name: "a".into(),
            usn_type: usn,
            tolerance_pct: pct,
            tolerance_qty: qty,
            auto_grn: false,
            prefix: String::new(),
            po_count: 0,
            last_sku_id: 0,
            last_po_id: 0,
            last_grn_seq: 0,
            last_serial_counter: 0,
            created_at_ms: 0,
        }
    }

    fn line(ordered: u64, received: u64) -> PoLine {
        PoLine {
            line_item_number: "1".into(),
            sku: 1,
            ordered,
            generated: 0,
            received,
        }
    }

    #[test]
    fn tolerance_only_for_type_3() {
        assert_eq!(
            line_capacity(&account(UsnType::SellerAtGrn, 10, 5), &line(10, 2)),
            8
        );
        // ceil(10% of 15) = 2, max(2, 1) = 2.
        assert_eq!(
            line_capacity(&account(UsnType::GeneratedForPo, 10, 1), &line(15, 0)),
            17
        );
        assert_eq!(
            line_capacity(&account(UsnType::GeneratedForPo, 10, 4), &line(15, 0)),
            19
        );
        assert_eq!(
            line_capacity(&account(UsnType::GeneratedForPo, 0, 0), &line(15, 20)),
            0
        );
    }

    #[test]
    fn auto_grn_per_type() {
        assert!(auto_grn_allowed(&account(UsnType::SellerAtGrn, 0, 0)));
        assert!(!auto_grn_allowed(&account(UsnType::SellerOnPo, 0, 0)));
        assert!(!auto_grn_allowed(&account(UsnType::Pool, 0, 0)));
        let mut pool = account(UsnType::Pool, 0, 0);
        pool.auto_grn = true;
        assert!(auto_grn_allowed(&pool));
    }
}
