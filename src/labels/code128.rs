//! The Code 128 symbol of a serial: which character set encodes which part, the modules
//! (via `barcoders`), and the same plan spelled as ZPL `^BC` field data, so a PDF label and
//! a printer-rendered ZPL label carry the same symbol.
//!
//! Set B encodes all of printable ASCII; set C encodes two digits per symbol character.
//! A run of digits switches to set C when that makes the symbol shorter: 2+ digits that are
//! the whole serial, 4+ at the start or the end, 6+ in the middle (a switch costs one symbol
//! character each way). An odd run keeps one digit in set B: the last one when the run
//! starts the serial, the first one otherwise. "SG000000012345" is start B, `S`, `G`,
//! code C, six digit pairs: 10 symbol characters instead of 15.

use barcoders::sym::code128::Code128;

use super::LabelError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    B,
    C,
}

/// A stretch of the serial encoded in one character set.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment<'a> {
    set: Set,
    text: &'a str,
}

/// A serial's Code 128 encoding, ready to draw or to spell as ZPL.
#[derive(Debug, Clone)]
pub(crate) struct Symbol {
    /// One byte per module, 1 = bar, 0 = space; start character to stop pattern, no
    /// quiet zones.
    pub modules: Vec<u8>,
    /// `^BC` field data in ZPL's no-mode (`N`) syntax: explicit start and switch codes.
    pub zpl_data: String,
}

/// Encodes a serial already checked to be printable ASCII.
pub(crate) fn encode(serial: &str) -> Result<Symbol, LabelError> {
    let segments = plan(serial);
    let mut barcoders_input = String::with_capacity(serial.len() + 2 * segments.len() + 2);
    for segment in &segments {
        // barcoders selects (or switches to) a set with these marker characters.
        barcoders_input.push(match segment.set {
            Set::B => 'Ɓ',
            Set::C => 'Ć',
        });
        barcoders_input.push_str(segment.text);
    }
    let code = Code128::new(&barcoders_input).map_err(|err| LabelError::Encoder {
        serial: serial.to_string(),
        reason: err.to_string(),
    })?;
    Ok(Symbol {
        modules: code.encode(),
        zpl_data: zpl_data(&segments),
    })
}

/// Splits a serial into set B and set C segments (see the module docs for the rules).
fn plan(serial: &str) -> Vec<Segment<'_>> {
    let bytes = serial.as_bytes();
    let len = bytes.len();
    // Byte ranges that go to set C; everything between them is set B.
    let mut c_ranges: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < len {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < len && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let run = i - start;
        let (at_start, at_end) = (start == 0, i == len);
        let threshold = match (at_start, at_end) {
            (true, true) => 2,
            (true, false) | (false, true) => 4,
            (false, false) => 6,
        };
        let even = run - run % 2;
        if even >= threshold {
            if at_start {
                c_ranges.push((start, start + even));
            } else {
                c_ranges.push((i - even, i));
            }
        }
    }
    let mut segments = Vec::with_capacity(2 * c_ranges.len() + 1);
    let mut cursor = 0;
    for (start, end) in c_ranges {
        if start > cursor {
            segments.push(Segment {
                set: Set::B,
                text: &serial[cursor..start],
            });
        }
        segments.push(Segment {
            set: Set::C,
            text: &serial[start..end],
        });
        cursor = end;
    }
    if cursor < len {
        segments.push(Segment {
            set: Set::B,
            text: &serial[cursor..],
        });
    }
    segments
}

/// ZPL `^BC` data in mode N: `>:`/`>;` start set B/C, `>5`/`>6` switch to C/B. In set B,
/// `>` `^` `~` are written as their invocation codes `>0` `><` `>=` (ZPL's documented way,
/// since `>` introduces an invocation and `^` `~` are command prefixes); every other
/// printable byte is itself.
fn zpl_data(segments: &[Segment<'_>]) -> String {
    let mut out = String::new();
    for (index, segment) in segments.iter().enumerate() {
        out.push_str(match (index == 0, segment.set) {
            (true, Set::B) => ">:",
            (true, Set::C) => ">;",
            (false, Set::B) => ">6",
            (false, Set::C) => ">5",
        });
        match segment.set {
            Set::C => out.push_str(segment.text),
            Set::B => {
                for ch in segment.text.chars() {
                    match ch {
                        '>' => out.push_str(">0"),
                        '^' => out.push_str("><"),
                        '~' => out.push_str(">="),
                        other => out.push(other),
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(serial: &str) -> Vec<(Set, &str)> {
        plan(serial).into_iter().map(|s| (s.set, s.text)).collect()
    }

    #[test]
    fn digit_runs_switch_to_set_c_only_when_shorter() {
        assert_eq!(
            sets("SG000000012345"),
            [(Set::B, "SG"), (Set::C, "000000012345")]
        );
        assert_eq!(sets("12"), [(Set::C, "12")]);
        assert_eq!(sets("12345"), [(Set::C, "1234"), (Set::B, "5")]);
        assert_eq!(sets("1234AB"), [(Set::C, "1234"), (Set::B, "AB")]);
        assert_eq!(sets("123AB"), [(Set::B, "123AB")]);
        assert_eq!(
            sets("AB1234567CD"),
            [(Set::B, "AB1"), (Set::C, "234567"), (Set::B, "CD")]
        );
        assert_eq!(sets("AB12345CD"), [(Set::B, "AB12345CD")]);
        assert_eq!(sets("AB123"), [(Set::B, "AB123")]);
        assert_eq!(sets("AB12345"), [(Set::B, "AB1"), (Set::C, "2345")]);
        assert_eq!(sets("7"), [(Set::B, "7")]);
    }

    #[test]
    fn zpl_data_uses_invocation_codes() {
        let symbol = encode("A>^~_1").expect("encode");
        assert_eq!(symbol.zpl_data, ">:A>0><>=_1");
        let symbol = encode("SG000000012345").expect("encode");
        assert_eq!(symbol.zpl_data, ">:SG>5000000012345");
        // Start B + 2 + code C + 6 pairs + check = 11 characters of 11 modules, + stop 13.
        assert_eq!(symbol.modules.len(), 11 * 11 + 13);
    }
}
