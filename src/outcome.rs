//! What the engine answers: per-unit outcome codes (CONTRACT §2) and the JSON replies of
//! GRN and PO requests. Request-level failures are `engine::EngineError`, not here.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::serial::SerialList;

/// Why one unit of a request failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutcomeCode {
    DuplicateInRequest,
    AlreadyExists,
    AlreadyInwarded,
    NotExpected,
    NotGenerated,
    WrongPo,
    WrongSku,
    QuantityExceeded,
    InvalidSerial,
    SkuNotSerialized,
    SerialsRequired,
    SerialsNotAllowed,
    UnknownSku,
    NotInwarded,
    BadInventory,
    NotOnOrder,
    QcReasonRequired,
    AutoGrnNotSupported,
}

impl OutcomeCode {
    pub const ALL: [OutcomeCode; 18] = [
        OutcomeCode::DuplicateInRequest,
        OutcomeCode::AlreadyExists,
        OutcomeCode::AlreadyInwarded,
        OutcomeCode::NotExpected,
        OutcomeCode::NotGenerated,
        OutcomeCode::WrongPo,
        OutcomeCode::WrongSku,
        OutcomeCode::QuantityExceeded,
        OutcomeCode::InvalidSerial,
        OutcomeCode::SkuNotSerialized,
        OutcomeCode::SerialsRequired,
        OutcomeCode::SerialsNotAllowed,
        OutcomeCode::UnknownSku,
        OutcomeCode::NotInwarded,
        OutcomeCode::BadInventory,
        OutcomeCode::NotOnOrder,
        OutcomeCode::QcReasonRequired,
        OutcomeCode::AutoGrnNotSupported,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeCode::DuplicateInRequest => "DUPLICATE_IN_REQUEST",
            OutcomeCode::AlreadyExists => "ALREADY_EXISTS",
            OutcomeCode::AlreadyInwarded => "ALREADY_INWARDED",
            OutcomeCode::NotExpected => "NOT_EXPECTED",
            OutcomeCode::NotGenerated => "NOT_GENERATED",
            OutcomeCode::WrongPo => "WRONG_PO",
            OutcomeCode::WrongSku => "WRONG_SKU",
            OutcomeCode::QuantityExceeded => "QUANTITY_EXCEEDED",
            OutcomeCode::InvalidSerial => "INVALID_SERIAL",
            OutcomeCode::SkuNotSerialized => "SKU_NOT_SERIALIZED",
            OutcomeCode::SerialsRequired => "SERIALS_REQUIRED",
            OutcomeCode::SerialsNotAllowed => "SERIALS_NOT_ALLOWED",
            OutcomeCode::UnknownSku => "UNKNOWN_SKU",
            OutcomeCode::NotInwarded => "NOT_INWARDED",
            OutcomeCode::BadInventory => "BAD_INVENTORY",
            OutcomeCode::NotOnOrder => "NOT_ON_ORDER",
            OutcomeCode::QcReasonRequired => "QC_REASON_REQUIRED",
            OutcomeCode::AutoGrnNotSupported => "AUTO_GRN_NOT_SUPPORTED",
        }
    }
}

impl fmt::Display for OutcomeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failing unit (or item, for quantity-only items) of a rejected request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    pub code: OutcomeCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The answer to `GRN.CHECK`, `GRN.COMMIT` and `GRN.AUTO`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum GrnReply {
    Committed {
        #[serde(rename = "grnId")]
        grn_id: String,
        units: u64,
        /// Serials the engine generated for the GRN (type 4), in item order.
        serials: SerialList,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        replayed: bool,
    },
    /// `GRN.CHECK` found nothing wrong; nothing was written.
    Valid {
        #[serde(rename = "grnId")]
        grn_id: String,
        units: u64,
    },
    Rejected {
        #[serde(rename = "grnId")]
        grn_id: String,
        errors: Vec<UnitError>,
    },
}

impl GrnReply {
    pub fn is_committed(&self) -> bool {
        matches!(self, GrnReply::Committed { .. })
    }

    pub fn errors(&self) -> &[UnitError] {
        match self {
            GrnReply::Rejected { errors, .. } => errors,
            _ => &[],
        }
    }
}

/// The answer to `PO.CREATE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum PoReply {
    Created {
        #[serde(rename = "referenceCode")]
        reference_code: String,
        lines: usize,
        /// Serials now expected on the PO (type 1).
        expected: u64,
    },
    Updated {
        #[serde(rename = "referenceCode")]
        reference_code: String,
        lines: usize,
        expected: u64,
        /// Serials whose line changed or went away, now `cancelled`.
        cancelled: u64,
    },
    /// The PO is cancelled (also the answer to cancelling it again).
    Cancelled {
        #[serde(rename = "referenceCode")]
        reference_code: String,
        /// Unreceived expected/generated serials now `cancelled`.
        cancelled: u64,
    },
    Rejected {
        #[serde(rename = "referenceCode")]
        reference_code: String,
        errors: Vec<UnitError>,
    },
}

/// The answer to `PO.IMPORT`: every PO created, or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum PoImportReply {
    Created {
        pos: usize,
        lines: usize,
        expected: u64,
    },
    /// A check found nothing wrong; nothing was written.
    Valid {
        pos: usize,
        lines: usize,
        expected: u64,
    },
    /// Nothing was written; each rejected PO with its failing units.
    Rejected { pos: Vec<PoReply> },
}

/// The answer to `OUTWARD` and `RETURN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum OrderReply {
    Outward {
        order: String,
        units: u64,
        /// Every unit was already outward on this order: nothing changed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        replayed: bool,
    },
    Returned {
        order: String,
        units: u64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        replayed: bool,
    },
    Rejected {
        order: String,
        errors: Vec<UnitError>,
    },
}

impl OrderReply {
    pub fn errors(&self) -> &[UnitError] {
        match self {
            OrderReply::Rejected { errors, .. } => errors,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_the_contract_spells_them() {
        for code in OutcomeCode::ALL {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
        }
    }

    #[test]
    fn replies_have_the_contract_shape() {
        let reply = GrnReply::Rejected {
            grn_id: "GRN-1".into(),
            errors: vec![UnitError {
                serial: Some("UK1".into()),
                sku: Some("SODA01".into()),
                code: OutcomeCode::AlreadyInwarded,
                detail: None,
            }],
        };
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"status":"rejected","grnId":"GRN-1","errors":[{"serial":"UK1","sku":"SODA01","code":"ALREADY_INWARDED"}]}"#
        );
        let committed = GrnReply::Committed {
            grn_id: "G".into(),
            units: 3,
            serials: SerialList::new(),
            replayed: true,
        };
        assert_eq!(
            serde_json::to_string(&committed).unwrap(),
            r#"{"status":"committed","grnId":"G","units":3,"serials":[],"replayed":true}"#
        );
    }
}
