//! After inward: `OUTWARD` consumes inwarded good units for an order, `RETURN` brings units
//! outwarded on that order back to inwarded. Both are atomic over all their serials, report
//! every failing serial, and are safe to retry: a unit already outward on (or returned from)
//! the same order is left as it is.

use super::batch::{self, Units, Verdicts};
use super::payload::OrderPayload;
use super::{check_name, now_ms, rules, Engine, EngineError, Result};
use crate::domain::{Condition, Event, EventKind, SerialRecord, SerialState};
use crate::outcome::{OrderReply, OutcomeCode};
use crate::serial::SerialList;
use crate::store::codec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Movement {
    Outward,
    Return,
}

impl Engine {
    /// `OUTWARD`: every serial must be inwarded in good condition (or already outward on
    /// this order).
    pub fn outward(&self, account: &str, payload: &OrderPayload) -> Result<OrderReply> {
        self.move_units(account, payload, Movement::Outward)
    }

    /// `RETURN`: every serial must be outward on this order (or already returned from it).
    pub fn return_units(&self, account: &str, payload: &OrderPayload) -> Result<OrderReply> {
        self.move_units(account, payload, Movement::Return)
    }

    fn move_units(
        &self,
        account: &str,
        payload: &OrderPayload,
        movement: Movement,
    ) -> Result<OrderReply> {
        check_name("order", &payload.order)?;
        for (what, value) in [("qcReason", &payload.qc_reason), ("bin", &payload.bin)] {
            if let Some(value) = value {
                check_name(what, value)?;
            }
        }
        if payload.serials.is_empty() {
            return Err(EngineError::BadRequest("serials must not be empty".into()));
        }
        if payload.serials.len() as u64 > self.config.grn_units_max {
            return Err(EngineError::Limit(format!(
                "{} serials in one request, the limit is {}",
                payload.serials.len(),
                self.config.grn_units_max
            )));
        }
        if movement == Movement::Outward
            && (payload.condition.is_some() || payload.qc_reason.is_some())
        {
            return Err(EngineError::BadRequest(
                "OUTWARD takes no condition or qcReason".into(),
            ));
        }
        self.check_healthy()?;
        let slot = self.slot(account)?;
        let guard = slot.lock.lock();
        let units = Units::single(&payload.serials)?;
        let mut verdicts = Verdicts::new(units.len());
        let condition = payload.condition.unwrap_or(Condition::Good);
        if condition == Condition::Bad && payload.qc_reason.is_none() {
            verdicts.fail_item(
                &units,
                0,
                OutcomeCode::QcReasonRequired,
                "units returned in bad condition need a qcReason".into(),
            );
        }
        let keyed = batch::keyed_units(&units, slot.id, &mut verdicts);
        let found = batch::lookup(self, slot.id, &keyed, &units)?;
        let now = now_ms();
        let mut changed = SerialList::new();
        let mut records: Vec<SerialRecord> = Vec::new();
        let mut next_found = found.0.into_iter().peekable();
        for (index, &(_, unit)) in keyed.iter().enumerate() {
            let existing = match next_found.peek() {
                Some((i, _)) if *i == index => next_found.next().map(|(_, r)| r),
                _ => None,
            };
            let rule = match movement {
                Movement::Outward => rules::outward_unit(existing.as_ref(), &payload.order),
                Movement::Return => rules::return_unit(existing.as_ref(), &payload.order),
            };
            let done_already = match rule {
                Ok(done) => done,
                Err((code, detail)) => {
                    verdicts.fail(unit, code, Some(detail));
                    continue;
                }
            };
            let Some(mut record) = existing.filter(|_| !done_already) else {
                continue;
            };
            let kind = match movement {
                Movement::Outward => {
                    record.state = SerialState::Outward;
                    EventKind::Outward {
                        order: payload.order.clone(),
                    }
                }
                Movement::Return => {
                    record.state = SerialState::Inwarded;
                    record.condition = condition;
                    record.qc_reason = payload.qc_reason.clone();
                    if payload.bin.is_some() {
                        record.bin = payload.bin.clone();
                    }
                    EventKind::Returned {
                        order: payload.order.clone(),
                        condition,
                    }
                }
            };
            record.order = Some(payload.order.clone());
            record.history.push(Event { at_ms: now, kind });
            changed.push(units.serial(unit));
            records.push(record);
        }
        if !verdicts.is_clean() {
            let ticket = self.store.written();
            drop(guard);
            self.sync(ticket)?;
            return Ok(OrderReply::Rejected {
                order: payload.order.clone(),
                errors: verdicts.into_errors(&units),
            });
        }
        let units_done = payload.serials.len() as u64;
        let replayed = changed.is_empty();
        if replayed {
            // Everything was done by an earlier request; answer once that one is durable.
            let ticket = self.store.written();
            drop(guard);
            self.sync(ticket)?;
        } else {
            batch::commit(self, guard, slot.id, &changed, Vec::new(), &|unit, out| {
                codec::encode_into(&records[unit as usize], out)
            })?;
        }
        Ok(match movement {
            Movement::Outward => OrderReply::Outward {
                order: payload.order.clone(),
                units: units_done,
                replayed,
            },
            Movement::Return => OrderReply::Returned {
                order: payload.order.clone(),
                units: units_done,
                replayed,
            },
        })
    }
}
