//! Request payloads as host systems send them (Easyecom's Create-PO fields, the GRN body of
//! CONTRACT §3). Lenient where Easyecom is: numbers may arrive as strings, unknown fields are
//! ignored. Serial arrays decode straight into a [`SerialList`].

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::domain::Condition;
use crate::serial::SerialList;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoPayload {
    #[serde(default, deserialize_with = "text")]
    pub vendor_id: String,
    #[serde(deserialize_with = "text")]
    pub reference_code: String,
    #[serde(default = "insert", deserialize_with = "text")]
    pub create_or_update: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "opt_number"
    )]
    pub is_cancel: Option<u64>,
    #[serde(default)]
    pub items: Vec<PoItem>,
}

fn insert() -> String {
    "I".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoItem {
    #[serde(deserialize_with = "text")]
    pub line_item_number: String,
    #[serde(deserialize_with = "text")]
    pub sku: String,
    #[serde(deserialize_with = "number")]
    pub quantity: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub serials: Option<SerialList>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrnPayload {
    #[serde(deserialize_with = "text")]
    pub grn_id: String,
    #[serde(deserialize_with = "text")]
    pub reference_code: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "opt_text"
    )]
    pub invoice_number: Option<String>,
    #[serde(default)]
    pub items: Vec<GrnItem>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrnItem {
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "opt_text"
    )]
    pub sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub serials: Option<SerialList>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "opt_number"
    )]
    pub quantity: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub condition: Option<Condition>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "opt_text"
    )]
    pub bin: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "opt_text"
    )]
    pub qc_reason: Option<String>,
}

/// The body of `OUTWARD` and `RETURN`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderPayload {
    #[serde(deserialize_with = "text")]
    pub order: String,
    pub serials: SerialList,
    /// `RETURN` only: the condition units come back in (default good).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub condition: Option<Condition>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "opt_text"
    )]
    pub qc_reason: Option<String>,
    /// `RETURN` only: where returned units are put away.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "opt_text"
    )]
    pub bin: Option<String>,
}

impl GrnItem {
    pub fn serial_count(&self) -> usize {
        self.serials.as_ref().map_or(0, SerialList::len)
    }
}

/// A non-negative integer given as a JSON number or a string of digits.
struct NumberVisitor;

impl<'de> Visitor<'de> for NumberVisitor {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer or a string of digits")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        if v >= 0.0 && v.fract() == 0.0 && v < 2f64.powi(53) {
            Ok(v as u64)
        } else {
            Err(E::custom(format!("{v} is not a whole number")))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        v.parse::<u64>()
            .map_err(|_| E::custom(format!("{v:?} is not a non-negative integer")))
    }
}

fn number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(NumberVisitor)
}

fn opt_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct OptNumber;
    impl<'de> Visitor<'de> for OptNumber {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative integer, a string of digits or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            number(d).map(Some)
        }
    }
    d.deserialize_option(OptNumber)
}

/// Text that Easyecom may send as a string or a number (`"lineItemNumber": 12`).
struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a number")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(TextVisitor)
}

fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct OptText;
    impl<'de> Visitor<'de> for OptText {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, a number or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            text(d).map(Some)
        }
    }
    d.deserialize_option(OptText)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_po_payload_parses() {
        let po: PoPayload = serde_json::from_str(
            r#"{"vendorId":"VENDORE123","referenceCode":"TestPo22232","createOrUpdate":"I","isCancel":0,
             "items":[{"lineItemNumber":"12","sku":"SODA01","quantity":"3","unitPrice":5,
                       "serials":["UK07812","UK08912","UK09012"]}],"somethingNew":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(po.reference_code, "TestPo22232");
        assert_eq!(po.is_cancel, Some(0));
        assert_eq!(po.items[0].quantity, 3);
        assert_eq!(po.items[0].line_item_number, "12");
        assert_eq!(po.items[0].serials.as_ref().unwrap().len(), 3);
    }

    #[test]
    fn numbers_as_numbers_or_strings() {
        let item: PoItem =
            serde_json::from_str(r#"{"lineItemNumber":12,"sku":"A","quantity":4}"#).unwrap();
        assert_eq!((item.line_item_number.as_str(), item.quantity), ("12", 4));
        assert!(serde_json::from_str::<PoItem>(
            r#"{"lineItemNumber":1,"sku":"A","quantity":"-1"}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<PoItem>(r#"{"lineItemNumber":1,"sku":"A","quantity":2.5}"#)
                .is_err()
        );
    }

    #[test]
    fn contract_grn_payload_parses() {
        let grn: GrnPayload = serde_json::from_str(
            r#"{"grnId":"GRN-1","referenceCode":"TestPo22232","invoiceNumber":"INV-7",
             "items":[{"sku":"SODA01","serials":["UK07812","UK08912"],"condition":"good","bin":"A-01"},
                      {"sku":"SODA01","serials":["UK09012"],"condition":"bad","qcReason":"DAMAGED"},
                      {"sku":"PLAIN1","quantity":5},
                      {"sku":"T4SKU","quantity":"100"}]}"#,
        )
        .unwrap();
        assert_eq!(grn.items.len(), 4);
        assert_eq!(grn.items[1].condition, Some(Condition::Bad));
        assert_eq!(grn.items[3].quantity, Some(100));
        assert_eq!(grn.invoice_number.as_deref(), Some("INV-7"));
        assert!(serde_json::from_str::<GrnPayload>(
            r#"{"grnId":"G","referenceCode":"P","items":[{"sku":"A","condition":"meh"}]}"#
        )
        .is_err());
    }
}
