//! The USN workflow rules in one place: what each USN type allows and what an existing serial
//! record means for a new request. The server and the CLI reach these only through the
//! engine; the pipelines (`grn`, `po`, `lifecycle`, `generate`) ask these functions and never
//! decide a rule themselves.

use crate::domain::{
    AccountRecord, Condition, EventKind, PoLine, SerialRecord, SerialState, UsnType,
};
use crate::outcome::OutcomeCode;

/// Whether `GRN.AUTO` may be used by this account (CONTRACT §1 table, "auto-GRN" column).
pub fn auto_grn_allowed(account: &AccountRecord) -> bool {
    match account.usn_type {
        UsnType::SellerAtGrn | UsnType::GeneratedAtGrn => true,
        UsnType::Pool => account.auto_grn,
        UsnType::SellerOnPo | UsnType::GeneratedForPo => false,
    }
}

/// Whether a GRN item may leave out its SKU: a type 3 scanned serial identifies it.
pub fn sku_from_serial(usn_type: UsnType) -> bool {
    usn_type == UsnType::GeneratedForPo
}

/// What a GRN makes of one serial unit, given the stored record of its value (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrnUnit {
    /// A value new to the account (types 2 and 4); placed on a line of the item's SKU.
    New,
    /// A value whose earlier life ended in `cancelled`; used again, history kept.
    Reused,
    /// Expected (type 1) or generated (type 3) for this PO: it goes on line `line`, and it
    /// names its SKU.
    OnLine {
        line: u32,
        sku: u32,
    },
    /// An unused pooled serial (type 5), bound to SKU `sku` (0: unbound).
    Pooled {
        sku: u32,
    },
    Fail(OutcomeCode, &'static str),
}

/// The GRN rule of the account's USN type (CONTRACT §1 table, "GRN rule" column) for one
/// unit received on PO `po` under item SKU `item_sku`.
pub fn grn_unit(
    usn_type: UsnType,
    po: u32,
    item_sku: Option<u32>,
    existing: Option<&SerialRecord>,
) -> GrnUnit {
    use GrnUnit::Fail;
    use OutcomeCode::*;
    if existing.is_some_and(|r| matches!(r.state, SerialState::Inwarded | SerialState::Outward)) {
        return Fail(
            AlreadyInwarded,
            "serial was already received by this account",
        );
    }
    let live = existing.filter(|r| r.state.blocks_reuse());
    match usn_type {
        UsnType::SellerAtGrn | UsnType::GeneratedAtGrn => match (existing, live) {
            (None, _) => GrnUnit::New,
            (Some(_), None) => GrnUnit::Reused,
            (Some(_), Some(_)) => Fail(AlreadyExists, "serial is already known to this account"),
        },
        UsnType::SellerOnPo | UsnType::GeneratedForPo => {
            let (wanted, missing, why) = if usn_type == UsnType::SellerOnPo {
                (
                    SerialState::Expected,
                    NotExpected,
                    "serial is not expected on any open PO of this account",
                )
            } else {
                (
                    SerialState::Generated,
                    NotGenerated,
                    "serial was not generated for any open PO of this account",
                )
            };
            let Some(record) = live.filter(|r| r.state == wanted && r.po != 0) else {
                return Fail(missing, why);
            };
            if record.po != po {
                return Fail(WrongPo, "serial belongs to another PO");
            }
            if item_sku.is_some_and(|sku| sku != record.sku) {
                return Fail(WrongSku, "serial belongs to another SKU on this PO");
            }
            GrnUnit::OnLine {
                line: record.line,
                sku: record.sku,
            }
        }
        UsnType::Pool => {
            let Some(record) = live.filter(|r| r.state == SerialState::Generated && r.po == 0)
            else {
                return Fail(NotGenerated, "serial is not an unused pooled serial");
            };
            if record.sku != 0 && item_sku.is_some_and(|sku| sku != record.sku) {
                return Fail(WrongSku, "pooled serial is bound to another SKU");
            }
            GrnUnit::Pooled { sku: record.sku }
        }
    }
}

/// Type 1 rule at PO creation: a serial listed on a PO must be new to the account. `None`
/// means the value may be used (it is new, or its earlier life ended in `cancelled`).
pub fn po_serial_conflict(existing: &SerialRecord) -> Option<(OutcomeCode, &'static str)> {
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

/// OUTWARD rule: only inwarded units in good condition leave for an order. `Ok(true)` means
/// the unit is already outward on this very order (a retried request): nothing to do.
pub fn outward_unit(
    existing: Option<&SerialRecord>,
    order: &str,
) -> Result<bool, (OutcomeCode, String)> {
    let Some(record) = existing.filter(|r| r.state.blocks_reuse()) else {
        return Err((
            OutcomeCode::NotInwarded,
            "serial is not known to this account".into(),
        ));
    };
    match record.state {
        SerialState::Inwarded if record.condition == Condition::Bad => Err((
            OutcomeCode::BadInventory,
            format!(
                "unit is in bad condition ({})",
                record.qc_reason.as_deref().unwrap_or("no reason given")
            ),
        )),
        SerialState::Inwarded => Ok(false),
        SerialState::Outward if record.order.as_deref() == Some(order) => Ok(true),
        SerialState::Outward => Err((
            OutcomeCode::NotInwarded,
            format!(
                "unit already left on order {:?}",
                record.order.as_deref().unwrap_or("")
            ),
        )),
        state => Err((
            OutcomeCode::NotInwarded,
            format!("serial is {}, not inwarded", state.name()),
        )),
    }
}

/// RETURN rule: only units outwarded on this order come back. `Ok(true)` means the unit
/// was already returned from this order (a retried request): nothing to do.
pub fn return_unit(
    existing: Option<&SerialRecord>,
    order: &str,
) -> Result<bool, (OutcomeCode, String)> {
    let Some(record) = existing.filter(|r| r.state.blocks_reuse()) else {
        return Err((
            OutcomeCode::NotOnOrder,
            "serial is not known to this account".into(),
        ));
    };
    let returned_from_this = matches!(
        record.history.last().map(|e| &e.kind),
        Some(EventKind::Returned { order: o, .. }) if o == order
    );
    match record.state {
        SerialState::Outward if record.order.as_deref() == Some(order) => Ok(false),
        SerialState::Inwarded if returned_from_this => Ok(true),
        SerialState::Outward => Err((
            OutcomeCode::NotOnOrder,
            format!(
                "unit left on order {:?}, not {order:?}",
                record.order.as_deref().unwrap_or("")
            ),
        )),
        state => Err((
            OutcomeCode::NotOnOrder,
            format!("serial is {}, not outward on {order:?}", state.name()),
        )),
    }
}

/// How many more serials a type 3 PO line may have generated: its ordered quantity plus the
/// PO tolerance allowance, so over-receipt within tolerance has labels to scan.
pub fn line_generation_capacity(account: &AccountRecord, line: &PoLine) -> u64 {
    if line.is_removed() {
        return 0;
    }
    (line.ordered + allowance(account, line)).saturating_sub(line.generated)
}

/// How many more units a PO line may take.
///
/// Over-receipt is never allowed, except for type 3 with PO tolerance:
/// allowance = max(ceil(pct × ordered / 100), qty).
pub fn line_capacity(account: &AccountRecord, line: &PoLine) -> u64 {
    if line.is_removed() {
        return 0;
    }
    (line.ordered + allowance(account, line)).saturating_sub(line.received)
}

fn allowance(account: &AccountRecord, line: &PoLine) -> u64 {
    if account.usn_type == UsnType::GeneratedForPo {
        let pct = (u64::from(account.tolerance_pct) * line.ordered).div_ceil(100);
        pct.max(account.tolerance_qty)
    } else {
        0
    }
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
            check_char: crate::domain::CheckChar::None,
            order: crate::domain::SerialOrder::Sequential,
            generator_key: 0,
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
            listed: 0,
            open_from: 0,
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
    fn tolerance_edges_for_generation_and_removed_lines() {
        let acct = account(UsnType::GeneratedForPo, 10, 0);
        let mut l = line(10, 0);
        assert_eq!(line_generation_capacity(&acct, &l), 11);
        l.generated = 11;
        assert_eq!(line_generation_capacity(&acct, &l), 0);
        l.ordered = 0;
        assert_eq!(line_capacity(&acct, &l), 0);
    }

    #[test]
    fn grn_unit_rules_per_type() {
        let record = |state, po, sku| SerialRecord {
            state,
            sku,
            po,
            line: 2,
            grn: 0,
            condition: Condition::Good,
            bin: None,
            qc_reason: None,
            order: None,
            history: vec![],
        };
        use SerialState::*;
        let t1 = UsnType::SellerOnPo;
        assert_eq!(
            grn_unit(t1, 1, Some(5), Some(&record(Expected, 1, 5))),
            GrnUnit::OnLine { line: 2, sku: 5 }
        );
        assert!(matches!(
            grn_unit(t1, 1, Some(5), Some(&record(Expected, 2, 5))),
            GrnUnit::Fail(OutcomeCode::WrongPo, _)
        ));
        assert!(matches!(
            grn_unit(t1, 1, Some(6), Some(&record(Expected, 1, 5))),
            GrnUnit::Fail(OutcomeCode::WrongSku, _)
        ));
        assert!(matches!(
            grn_unit(t1, 1, Some(5), Some(&record(Cancelled, 1, 5))),
            GrnUnit::Fail(OutcomeCode::NotExpected, _)
        ));
        assert!(matches!(
            grn_unit(UsnType::GeneratedForPo, 1, None, None),
            GrnUnit::Fail(OutcomeCode::NotGenerated, _)
        ));
        assert!(matches!(
            grn_unit(UsnType::Pool, 1, Some(5), Some(&record(Inwarded, 1, 5))),
            GrnUnit::Fail(OutcomeCode::AlreadyInwarded, _)
        ));
        assert_eq!(
            grn_unit(UsnType::Pool, 1, Some(5), Some(&record(Generated, 0, 0))),
            GrnUnit::Pooled { sku: 0 }
        );
        assert!(matches!(
            grn_unit(UsnType::Pool, 1, Some(5), Some(&record(Generated, 0, 4))),
            GrnUnit::Fail(OutcomeCode::WrongSku, _)
        ));
        assert_eq!(
            grn_unit(
                UsnType::SellerAtGrn,
                1,
                Some(5),
                Some(&record(Cancelled, 1, 5))
            ),
            GrnUnit::Reused
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
