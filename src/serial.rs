//! Serial values: syntax rules, hashing, and [`SerialList`], the arena that carries
//! millions of serials through the pipeline without one heap allocation each.
//!
//! What does not live here: what a serial *means* to an account (its record and state
//! live in `domain`, its key in `store::keys`).

use std::fmt;

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest serial accepted, in bytes (CONTRACT §1).
pub const SERIAL_LEN_MAX: usize = 64;

/// Why a serial value is not a valid serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntaxError {
    Empty,
    TooLong {
        len: usize,
    },
    /// A byte outside 0x21..=0x7E: space, control, DEL or non-ASCII.
    BadByte {
        position: usize,
        byte: u8,
    },
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyntaxError::Empty => write!(f, "serial is empty"),
            SyntaxError::TooLong { len } => {
                write!(f, "serial is {len} bytes, the limit is {SERIAL_LEN_MAX}")
            }
            SyntaxError::BadByte { position, byte } => write!(
                f,
                "byte 0x{byte:02X} at position {position} is not printable ASCII (0x21-0x7E)"
            ),
        }
    }
}

/// Checks a serial against the contract: 1–64 bytes, each 0x21..=0x7E. Serials are never
/// trimmed or rewritten, so this only accepts or refuses.
#[inline]
pub fn check_syntax(serial: &[u8]) -> Result<(), SyntaxError> {
    if serial.is_empty() {
        return Err(SyntaxError::Empty);
    }
    if serial.len() > SERIAL_LEN_MAX {
        return Err(SyntaxError::TooLong { len: serial.len() });
    }
    match serial.iter().position(|b| !(0x21..=0x7E).contains(b)) {
        None => Ok(()),
        Some(position) => Err(SyntaxError::BadByte {
            position,
            byte: serial[position],
        }),
    }
}

/// The 64-bit identity of a serial within an account: xxh3 seeded with the account id.
/// It routes the serial to its prefilter segment and leads its storage key, so sorting by
/// it is sorting by key.
#[inline]
pub fn serial_hash(account_id: u32, serial: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(serial, u64::from(account_id))
}

/// A list of serials stored back to back in one buffer.
///
/// A GRN may carry ten million serials; as `Vec<String>` that is ten million allocations
/// to make and free. Here it is two vectors. Values are raw bytes: a JSON string that is
/// not a valid serial is kept as given so it can be reported, never repaired.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SerialList {
    bytes: Vec<u8>,
    /// `ends[i]` is the end offset of serial `i` in `bytes`.
    ends: Vec<u32>,
}

impl SerialList {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list usable in a `static`.
    pub const fn new_const() -> Self {
        Self {
            bytes: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// The concatenated serial bytes and the end offset of each serial.
    pub fn raw_parts(&self) -> (&[u8], &[u32]) {
        (&self.bytes, &self.ends)
    }

    pub fn with_capacity(serials: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(serials),
        }
    }

    /// Appends one serial. Offsets are `u32`, so one list holds at most 4 GiB of serial bytes;
    /// the protocol's request limits keep every list far below that.
    pub fn push(&mut self, serial: &[u8]) {
        self.bytes.extend_from_slice(serial);
        let end = u32::try_from(self.bytes.len()).expect("serial list exceeds 4 GiB");
        self.ends.push(end);
    }

    /// Appends every serial of `other`: two copies, no per-serial work.
    pub fn append(&mut self, other: &SerialList) {
        let base = u32::try_from(self.bytes.len()).expect("serial list exceeds 4 GiB");
        self.bytes.extend_from_slice(&other.bytes);
        u32::try_from(self.bytes.len()).expect("serial list exceeds 4 GiB");
        self.ends.extend(other.ends.iter().map(|end| base + end));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Total bytes of all serials.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    #[inline]
    pub fn get(&self, index: usize) -> &[u8] {
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] as usize
        };
        &self.bytes[start..self.ends[index] as usize]
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }
}

impl fmt::Debug for SerialList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}

impl<S: AsRef<[u8]>> FromIterator<S> for SerialList {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut list = SerialList::new();
        for serial in iter {
            list.push(serial.as_ref());
        }
        list
    }
}

impl Serialize for SerialList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(String::from_utf8_lossy))
    }
}

/// Deserializes a JSON array of strings straight into the arena: borrowed strings are
/// copied once, nothing is allocated per serial.
impl<'de> Deserialize<'de> for SerialList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = SerialList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of serial strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SerialList, A::Error> {
                let hint = seq.size_hint().unwrap_or(0);
                let mut list = SerialList::with_capacity(hint, hint * 20);
                while seq.next_element_seed(AppendSerial(&mut list))?.is_some() {}
                Ok(list)
            }
        }
        deserializer.deserialize_seq(ListVisitor)
    }
}

struct AppendSerial<'a>(&'a mut SerialList);

impl<'de> DeserializeSeed<'de> for AppendSerial<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for AppendSerial<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a serial string")
    }
    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<(), E> {
        self.0.push(value.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_keeps_every_serial() {
        let mut a: SerialList = ["A1", "B22"].iter().collect();
        let b: SerialList = ["C333", "D"].iter().collect();
        a.append(&b);
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            vec![&b"A1"[..], b"B22", b"C333", b"D"]
        );
    }

    #[test]
    fn syntax_edges() {
        assert_eq!(check_syntax(b""), Err(SyntaxError::Empty));
        assert!(check_syntax(&[b'A'; 64]).is_ok());
        assert_eq!(
            check_syntax(&[b'A'; 65]),
            Err(SyntaxError::TooLong { len: 65 })
        );
        assert_eq!(
            check_syntax(b"AB CD"),
            Err(SyntaxError::BadByte {
                position: 2,
                byte: b' '
            })
        );
        assert!(check_syntax(b"A\tB").is_err());
        assert!(check_syntax(b"A\x7FB").is_err());
        assert!(check_syntax("AÉ".as_bytes()).is_err());
        assert!(check_syntax(b"!~").is_ok());
        // Case-sensitive and never trimmed: these are distinct valid serials.
        assert_ne!(serial_hash(1, b"uk07812"), serial_hash(1, b"UK07812"));
        assert_ne!(serial_hash(1, b"UK07812"), serial_hash(2, b"UK07812"));
    }

    #[test]
    fn list_from_json_keeps_values_verbatim() {
        let list: SerialList = serde_json::from_str(r#"["A1"," B2","C\u00e93",""]"#).unwrap();
        assert_eq!(list.len(), 4);
        assert_eq!(list.get(0), b"A1");
        assert_eq!(list.get(1), b" B2");
        assert_eq!(list.get(2), "Cé3".as_bytes());
        assert_eq!(list.get(3), b"");
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"["A1"," B2","Cé3",""]"#
        );
        assert!(serde_json::from_str::<SerialList>(r#"["A",5]"#).is_err());
    }
}
