//! Value encoding: bincode 2 with its standard configuration (little-endian, varint
//! integers, enum tags as varint). docs/design.md walks through the bytes; the golden
//! tests below pin them.

use bincode::{Decode, Encode};

use super::StoreError;
use crate::domain::{RecordOp, SerialRecord};

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    // Encoding into a Vec cannot fail for these plain data types.
    bincode::encode_to_vec(value, config()).expect("bincode encoding into a Vec")
}

/// Appends the encoding of `value` to `out`, so hot loops reuse one buffer.
pub fn encode_into<T: Encode>(value: &T, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail for these plain data types.
    bincode::encode_into_std_write(value, out, config()).expect("bincode encoding into a Vec");
}

pub fn decode<T: Decode<()>>(bytes: &[u8]) -> Result<T, StoreError> {
    let (value, read) = bincode::decode_from_slice(bytes, config())
        .map_err(|e| StoreError::Corrupt(format!("undecodable value: {e}")))?;
    if read != bytes.len() {
        return Err(StoreError::Corrupt(format!(
            "value has {} trailing bytes",
            bytes.len() - read
        )));
    }
    Ok(value)
}

/// The merge operator of serial records: `existing` (a `SerialRecord`, if any) with each
/// operand (a `RecordOp`) applied in order. `None` (undecodable input) makes RocksDB report
/// corruption rather than invent a value.
pub fn merge_serial_record<'a>(
    existing: Option<&[u8]>,
    operands: impl Iterator<Item = &'a [u8]>,
) -> Option<Vec<u8>> {
    let mut record: Option<SerialRecord> = match existing {
        Some(bytes) => Some(decode(bytes).ok()?),
        None => None,
    };
    for operand in operands {
        let op: RecordOp = decode(operand).ok()?;
        record = Some(SerialRecord::apply(record, op));
    }
    record.map(|r| encode(&r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn golden_inwarded_serial_record() {
        let record = SerialRecord {
            state: SerialState::Inwarded,
            sku: 3,
            po: 1,
            line: 0,
            grn: 2,
            condition: Condition::Good,
            bin: Some("A-01".into()),
            qc_reason: None,
            order: None,
            history: vec![Event {
                at_ms: 1_700_000_000_000,
                kind: EventKind::Inwarded { grn: 2 },
            }],
        };
        let bytes = encode(&record);
        // state=2 sku=3 po=1 line=0 grn=2 cond=0 bin=Some("A-01") qc=None order=None
        // history len=1, at_ms = 0xFD + u64 LE, kind tag 2 (Inwarded), grn=2
        assert_eq!(
            hex(&bytes),
            "0203010002000104412d3031000001fd0068e5cf8b01000002 02".replace(' ', "")
        );
        assert_eq!(decode::<SerialRecord>(&bytes).unwrap(), record);
    }

    #[test]
    fn golden_sku_and_grn_records() {
        let sku = SkuRecord {
            id: 300,
            kind: SkuKind::Plain,
        };
        assert_eq!(hex(&encode(&sku)), "fb2c0101");
        let grn = GrnRecord {
            seq: 1,
            grn_id: "G".into(),
            po: 1,
            fingerprint: [0xAB; 16],
            units: 5,
            serials: 4,
            generated_first: 0,
            generated_count: 0,
            invoice_number: None,
            committed_at_ms: 9,
        };
        assert_eq!(
            hex(&encode(&grn)),
            format!("01014701{}0504000000 09", "ab".repeat(16)).replace(' ', "")
        );
    }

    #[test]
    fn merge_applies_operands_in_order_to_the_base_record() {
        let base = SerialRecord {
            state: SerialState::Expected,
            sku: 3,
            po: 1,
            line: 0,
            grn: 0,
            condition: Condition::Good,
            bin: None,
            qc_reason: None,
            order: None,
            history: vec![Event {
                at_ms: 5,
                kind: EventKind::Expected { po: 1 },
            }],
        };
        let op = RecordOp::Inward {
            sku: 3,
            po: 1,
            line: 0,
            grn: 9,
            condition: Condition::Bad,
            bin: Some("B".into()),
            qc_reason: Some("DENT".into()),
            at_ms: 7,
        };
        let merged =
            merge_serial_record(Some(&encode(&base)), [encode(&op).as_slice()].into_iter())
                .unwrap();
        let merged: SerialRecord = decode(&merged).unwrap();
        assert_eq!(merged.state, SerialState::Inwarded);
        assert_eq!((merged.grn, merged.condition), (9, Condition::Bad));
        assert_eq!(
            merged.history.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
            vec![5, 7]
        );
        assert!(merge_serial_record(Some(&[0xFF]), std::iter::empty()).is_none());
        assert!(merge_serial_record(None, [[0xFFu8].as_slice()].into_iter()).is_none());
    }

    #[test]
    fn decode_rejects_garbage_and_trailing_bytes() {
        assert!(matches!(
            decode::<SerialRecord>(&[0x09]),
            Err(StoreError::Corrupt(_))
        ));
        let mut bytes = encode(&SkuRecord {
            id: 1,
            kind: SkuKind::Serialized,
        });
        bytes.push(0);
        assert!(matches!(
            decode::<SkuRecord>(&bytes),
            Err(StoreError::Corrupt(_))
        ));
    }
}
