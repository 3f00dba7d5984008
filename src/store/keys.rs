//! The keyer: every storage key is built here and nowhere else. Pinned by golden tests.
//!
//! One ordered key space. The first byte is a tag; integers are big-endian so keys sort
//! numerically; variable-length names come last so no separator is needed.
//!
//! | tag  | key                                   | value            |
//! |------|---------------------------------------|------------------|
//! | 0x01 | name                                  | `AccountRecord`  |
//! | 0x02 | account_id                            | account name     |
//! | 0x10 | account_id, sku name                  | `SkuRecord`      |
//! | 0x11 | account_id, sku_id                    | sku name         |
//! | 0x20 | account_id, reference code            | `PoRecord`       |
//! | 0x21 | account_id, po_id                     | reference code   |
//! | 0x30 | account_id, grn id                    | `GrnRecord`      |
//! | 0x31 | account_id, grn_seq                   | grn id           |
//! | 0x32 | account_id, po_id, grn_seq            | (empty)          |
//! | 0x40 | account_id, list kind, owner, chunk   | serial list chunk|
//! | 0x80 | hash, account_id, serial              | `SerialRecord`   |
//!
//! Serial keys lead with the serial's xxh3 hash, so they spread evenly over the key space,
//! a shard is simply a hash range, and sorting a GRN by hash sorts it by key. Every other
//! tag sorts below 0x80, so a GRN's metadata never overlaps the key range of its serials.

pub const TAG_ACCOUNT: u8 = 0x01;
pub const TAG_ACCOUNT_NAME: u8 = 0x02;
pub const TAG_SKU: u8 = 0x10;
pub const TAG_SKU_NAME: u8 = 0x11;
pub const TAG_PO: u8 = 0x20;
pub const TAG_PO_REF: u8 = 0x21;
pub const TAG_GRN: u8 = 0x30;
pub const TAG_GRN_ID: u8 = 0x31;
pub const TAG_PO_GRN: u8 = 0x32;
pub const TAG_LIST: u8 = 0x40;
pub const TAG_SERIAL: u8 = 0x80;

/// Bytes before the serial value in a serial key: tag, hash, account id.
pub const SERIAL_KEY_HEADER_LEN: usize = 1 + 8 + 4;

/// Who a serial list chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ListKind {
    /// Serials received by a GRN, in request order. Owner: grn_seq.
    Grn = 1,
    /// Serials expected (type 1) or generated (type 3) for a PO line, appended over time.
    /// Owner: po_id << 16 | line index; chunk: offset of its first serial in the line's list.
    PoLine = 2,
    /// Type 5 pooled serials of one `SERIALS.GENERATE`. Owner: the batch's first counter
    /// value (batches sort oldest first); chunk: chunk number.
    Pool = 3,
}

fn with_account(tag: u8, account: u32, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(5 + rest.len());
    key.push(tag);
    key.extend_from_slice(&account.to_be_bytes());
    key.extend_from_slice(rest);
    key
}

pub fn account(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(TAG_ACCOUNT);
    key.extend_from_slice(name.as_bytes());
    key
}

pub fn account_name(account: u32) -> Vec<u8> {
    with_account(TAG_ACCOUNT_NAME, account, &[])
}

pub fn sku(account: u32, name: &str) -> Vec<u8> {
    with_account(TAG_SKU, account, name.as_bytes())
}

pub fn sku_name(account: u32, sku: u32) -> Vec<u8> {
    with_account(TAG_SKU_NAME, account, &sku.to_be_bytes())
}

pub fn po(account: u32, reference_code: &str) -> Vec<u8> {
    with_account(TAG_PO, account, reference_code.as_bytes())
}

pub fn po_ref(account: u32, po: u32) -> Vec<u8> {
    with_account(TAG_PO_REF, account, &po.to_be_bytes())
}

pub fn grn(account: u32, grn_id: &str) -> Vec<u8> {
    with_account(TAG_GRN, account, grn_id.as_bytes())
}

pub fn grn_id(account: u32, seq: u32) -> Vec<u8> {
    with_account(TAG_GRN_ID, account, &seq.to_be_bytes())
}

/// Marks GRN `seq` as received against PO `po`, so a PO's GRNs are one prefix scan.
pub fn po_grn(account: u32, po: u32, seq: u32) -> Vec<u8> {
    let mut rest = [0u8; 8];
    rest[..4].copy_from_slice(&po.to_be_bytes());
    rest[4..].copy_from_slice(&seq.to_be_bytes());
    with_account(TAG_PO_GRN, account, &rest)
}

/// The range of `po_grn` keys of one PO: `[start, end)`.
pub fn po_grn_range(account: u32, po: u32) -> (Vec<u8>, Vec<u8>) {
    (
        with_account(TAG_PO_GRN, account, &po.to_be_bytes()),
        with_account(TAG_PO_GRN, account, &(u64::from(po) + 1).to_be_bytes()[4..]),
    )
}

/// The range of list chunks of one owner: `[start, end)`.
pub fn list_range(account: u32, kind: ListKind, owner: u64) -> (Vec<u8>, Vec<u8>) {
    let mut start = list_chunk(account, kind, owner, 0);
    start.truncate(start.len() - 4);
    let mut end = start.clone();
    // Owners never reach u64::MAX, so incrementing the last owner byte with carry is safe.
    for byte in end.iter_mut().rev() {
        let (next, carry) = byte.overflowing_add(1);
        *byte = next;
        if !carry {
            break;
        }
    }
    (start, end)
}

/// The range of every list chunk of one kind: `[start, end)`.
pub fn list_kind_range(account: u32, kind: ListKind) -> (Vec<u8>, Vec<u8>) {
    (
        with_account(TAG_LIST, account, &[kind as u8]),
        with_account(TAG_LIST, account, &[kind as u8 + 1]),
    )
}

pub fn list_chunk(account: u32, kind: ListKind, owner: u64, chunk: u32) -> Vec<u8> {
    let mut rest = [0u8; 13];
    rest[0] = kind as u8;
    rest[1..9].copy_from_slice(&owner.to_be_bytes());
    rest[9..13].copy_from_slice(&chunk.to_be_bytes());
    with_account(TAG_LIST, account, &rest)
}

/// Writes the key of a serial into `out` (cleared first), so hot loops reuse one buffer.
#[inline]
pub fn serial_into(out: &mut Vec<u8>, account: u32, hash: u64, serial: &[u8]) {
    out.clear();
    out.reserve(SERIAL_KEY_HEADER_LEN + serial.len());
    out.push(TAG_SERIAL);
    out.extend_from_slice(&hash.to_be_bytes());
    out.extend_from_slice(&account.to_be_bytes());
    out.extend_from_slice(serial);
}

pub fn serial(account: u32, hash: u64, serial: &[u8]) -> Vec<u8> {
    let mut key = Vec::new();
    serial_into(&mut key, account, hash, serial);
    key
}

/// The parts of a serial key, borrowed from it.
#[derive(Debug, PartialEq, Eq)]
pub struct SerialKey<'a> {
    pub hash: u64,
    pub account: u32,
    pub serial: &'a [u8],
}

pub fn parse_serial(key: &[u8]) -> Option<SerialKey<'_>> {
    if key.len() <= SERIAL_KEY_HEADER_LEN || key[0] != TAG_SERIAL {
        return None;
    }
    let hash = u64::from_be_bytes(key[1..9].try_into().ok()?);
    let account = u32::from_be_bytes(key[9..13].try_into().ok()?);
    Some(SerialKey {
        hash,
        account,
        serial: &key[SERIAL_KEY_HEADER_LEN..],
    })
}

/// First key of the serial key range whose hashes start at `hash`.
pub fn serial_range_start(hash: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(TAG_SERIAL);
    key.extend_from_slice(&hash.to_be_bytes());
    key
}

/// Exclusive end of the whole serial key range.
pub fn serial_range_end() -> Vec<u8> {
    vec![TAG_SERIAL + 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Golden keys: changing any of these changes the on-disk format.
    #[test]
    fn golden_keys() {
        assert_eq!(hex(&account("acme")), "0161636d65");
        assert_eq!(hex(&account_name(7)), "0200000007");
        assert_eq!(hex(&sku(7, "SODA01")), "1000000007534f44413031");
        assert_eq!(hex(&sku_name(7, 3)), "110000000700000003");
        assert_eq!(
            hex(&po(7, "TestPo22232")),
            "200000000754657374506f3232323332"
        );
        assert_eq!(hex(&po_ref(7, 1)), "210000000700000001");
        assert_eq!(hex(&grn(7, "GRN-1")), "300000000747524e2d31");
        assert_eq!(hex(&grn_id(7, 2)), "310000000700000002");
        assert_eq!(hex(&po_grn(7, 1, 2)), "32000000070000000100000002");
        assert_eq!(
            hex(&list_chunk(7, ListKind::Grn, 2, 1)),
            "400000000701000000000000000200000001"
        );
        assert_eq!(
            hex(&serial(7, 0x0123_4567_89ab_cdef, b"UK07812")),
            "800123456789abcdef00000007554b3037383132"
        );
    }

    /// The serial hash is part of the key, so it is pinned too.
    #[test]
    fn golden_serial_hash() {
        assert_eq!(
            format!("{:016x}", crate::serial::serial_hash(7, b"UK07812")),
            GOLDEN_HASH_UK07812_ACCOUNT_7
        );
    }
    const GOLDEN_HASH_UK07812_ACCOUNT_7: &str = "f874c0909845f970";

    #[test]
    fn ranges_cover_exactly_their_owner() {
        let (start, end) = po_grn_range(7, 1);
        assert!(start <= po_grn(7, 1, 0) && po_grn(7, 1, u32::MAX) < end);
        assert!(po_grn(7, 2, 0) >= end && po_grn(7, 0, u32::MAX) < start);
        let (start, end) = list_range(7, ListKind::PoLine, 5 << 16);
        assert!(start <= list_chunk(7, ListKind::PoLine, 5 << 16, 0));
        assert!(list_chunk(7, ListKind::PoLine, 5 << 16, u32::MAX) < end);
        assert!(list_chunk(7, ListKind::PoLine, (5 << 16) + 1, 0) >= end);
        let (start, end) = list_kind_range(7, ListKind::Pool);
        assert!(start <= list_chunk(7, ListKind::Pool, 0, 0));
        assert!(list_chunk(7, ListKind::Pool, u64::MAX, u32::MAX) < end);
    }

    #[test]
    fn metadata_sorts_below_serials() {
        let serial_low = serial(0, 0, b"!");
        for key in [
            account("~~~~"),
            account_name(u32::MAX),
            sku(u32::MAX, "~"),
            po(u32::MAX, "~"),
            grn_id(u32::MAX, u32::MAX),
            list_chunk(u32::MAX, ListKind::Pool, u64::MAX, u32::MAX),
        ] {
            assert!(key < serial_low);
        }
    }

    proptest! {
        #[test]
        fn serial_key_round_trips(account in any::<u32>(), hash in any::<u64>(),
                                  serial in proptest::collection::vec(0x21u8..=0x7e, 1..=64)) {
            let key = super::serial(account, hash, &serial);
            let parsed = parse_serial(&key).unwrap();
            prop_assert_eq!(parsed, SerialKey { hash, account, serial: &serial });
        }

        #[test]
        fn serial_keys_sort_by_hash_first(a in any::<u64>(), b in any::<u64>(),
                                          sa in "[!-~]{1,64}", sb in "[!-~]{1,64}") {
            let ka = super::serial(1, a, sa.as_bytes());
            let kb = super::serial(1, b, sb.as_bytes());
            if a != b {
                prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            } else {
                prop_assert_eq!(ka.cmp(&kb), sa.as_bytes().cmp(sb.as_bytes()));
            }
        }

        #[test]
        fn account_scoped_keys_never_collide(a in any::<u32>(), b in any::<u32>(),
                                             na in "[A-Za-z0-9]{0,8}", nb in "[A-Za-z0-9]{0,8}") {
            prop_assume!((a, &na) != (b, &nb));
            prop_assert_ne!(sku(a, &na), sku(b, &nb));
        }
    }
}
