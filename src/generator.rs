//! How engine-generated serials (USN types 3, 4 and 5) are spelled.
//!
//! A generated serial is `prefix + 12 digits [+ check digit]`. The digits come from the
//! account's counter, which only ever advances (in the same atomic write as the serials it
//! produced), so a counter value is never issued twice. With `SerialOrder::Random` the
//! counter goes through a keyed permutation of `[0, 10^12)` first: still one serial per
//! counter value, but a label does not reveal its neighbours.
//!
//! The permutation is a 4-round balanced Feistel network over two base-10^6 halves, with
//! xxh3 as the round function. Feistel networks are bijections whatever the round function,
//! so uniqueness does not rest on the hash. What does not live here: which values the
//! account already knows (the engine skips those), and where serials are stored.

use crate::domain::{AccountRecord, CheckChar, SerialOrder};
use crate::serial::SerialList;

/// Digits of the counter part of a generated serial.
pub const COUNTER_DIGITS: usize = 12;
/// Highest counter value: the counter part has `COUNTER_DIGITS` digits.
pub const COUNTER_MAX: u64 = 999_999_999_999;
/// Longest prefix, so a generated serial stays within the 64-byte serial limit.
pub const PREFIX_LEN_MAX: usize = 32;

const HALF: u64 = 1_000_000;
const ROUNDS: u64 = 4;

/// The serial scheme of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generator {
    prefix: Vec<u8>,
    check: CheckChar,
    /// `Some` for `SerialOrder::Random`.
    key: Option<u64>,
}

impl Generator {
    pub fn new(prefix: &str, check: CheckChar, order: SerialOrder, key: u64) -> Self {
        Self {
            prefix: prefix.as_bytes().to_vec(),
            check,
            key: (order == SerialOrder::Random).then_some(key),
        }
    }

    pub fn for_account(account: &AccountRecord) -> Self {
        Self::new(
            &account.prefix,
            account.check_char,
            account.order,
            account.generator_key,
        )
    }

    /// Length in bytes of every serial this generator produces.
    pub fn serial_len(&self) -> usize {
        self.prefix.len() + COUNTER_DIGITS + usize::from(self.check != CheckChar::None)
    }

    /// Appends the serial of counter value `counter` (1..=COUNTER_MAX) to `out`.
    pub fn push(&self, counter: u64, out: &mut SerialList) {
        let mut buf = [0u8; PREFIX_LEN_MAX + COUNTER_DIGITS + 1];
        let len = self.write(counter, &mut buf);
        out.push(&buf[..len]);
    }

    /// The serial of counter value `counter` as a string.
    pub fn serial(&self, counter: u64) -> String {
        let mut buf = [0u8; PREFIX_LEN_MAX + COUNTER_DIGITS + 1];
        let len = self.write(counter, &mut buf);
        String::from_utf8_lossy(&buf[..len]).into_owned()
    }

    fn write(&self, counter: u64, buf: &mut [u8]) -> usize {
        let body = match self.key {
            Some(key) => permute(key, counter),
            None => counter,
        };
        let p = self.prefix.len();
        buf[..p].copy_from_slice(&self.prefix);
        let digits = &mut buf[p..p + COUNTER_DIGITS];
        let mut rest = body;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let check = match self.check {
            CheckChar::None => return p + COUNTER_DIGITS,
            CheckChar::Luhn => luhn(digits),
            CheckChar::Gs1 => gs1(digits),
        };
        buf[p + COUNTER_DIGITS] = check;
        p + COUNTER_DIGITS + 1
    }
}

/// A keyed bijection of `[0, 10^12)`.
fn permute(key: u64, value: u64) -> u64 {
    let (mut left, mut right) = (value / HALF, value % HALF);
    for round in 0..ROUNDS {
        let f = xxhash_rust::xxh3::xxh3_64_with_seed(&right.to_le_bytes(), key ^ round) % HALF;
        (left, right) = (right, (left + f) % HALF);
    }
    left * HALF + right
}

/// Luhn check digit of ASCII `digits`: from the rightmost, every other digit doubled.
pub fn luhn(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                doubled / 10 + doubled % 10
            } else {
                d
            }
        })
        .sum();
    b'0' + ((10 - sum % 10) % 10) as u8
}

/// GS1 mod-10 check digit of ASCII `digits`: weights 3, 1, 3, … from the rightmost.
pub fn gs1(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    b'0' + ((10 - sum % 10) % 10) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn sequential_serials_follow_the_counter() {
        let g = Generator::new("SG", CheckChar::None, SerialOrder::Sequential, 7);
        assert_eq!(g.serial(1), "SG000000000001");
        assert_eq!(g.serial(COUNTER_MAX), "SG999999999999");
        assert_eq!(g.serial_len(), 14);
    }

    #[test]
    fn check_digits_match_published_examples() {
        // Luhn: 7992739871 -> 3 (the standard worked example).
        assert_eq!(luhn(b"7992739871"), b'3');
        // GS1: GTIN-13 400638133393 -> 1.
        assert_eq!(gs1(b"400638133393"), b'1');
        let g = Generator::new("", CheckChar::Gs1, SerialOrder::Sequential, 0);
        assert_eq!(g.serial(400_638_133_393), "4006381333931");
    }

    #[test]
    fn random_order_is_a_permutation_and_keyed() {
        let a = Generator::new("X", CheckChar::Luhn, SerialOrder::Random, 1);
        let b = Generator::new("X", CheckChar::Luhn, SerialOrder::Random, 2);
        let mut seen = HashSet::new();
        for counter in 1..=100_000 {
            assert!(seen.insert(a.serial(counter)), "repeat at {counter}");
        }
        assert_ne!(a.serial(1), b.serial(1));
        // Neighbouring counters do not give neighbouring serials.
        let n = |s: String| s[1..13].parse::<i64>().unwrap();
        assert!((n(a.serial(2)) - n(a.serial(1))).abs() > 1);
    }

    proptest::proptest! {
        #[test]
        fn permutation_is_injective(key in proptest::prelude::any::<u64>(),
                                    a in 0..=COUNTER_MAX, b in 0..=COUNTER_MAX) {
            proptest::prop_assume!(a != b);
            proptest::prop_assert_ne!(permute(key, a), permute(key, b));
            proptest::prop_assert!(permute(key, a) <= COUNTER_MAX);
        }
    }
}
