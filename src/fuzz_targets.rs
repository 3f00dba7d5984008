//! Entry points of the fuzz targets (`fuzz/`, cargo-fuzz) and of the test that replays their
//! corpus on stable Rust (`tests/fuzz_corpus.rs`). Each takes arbitrary bytes, must not
//! panic, and checks a property of its own:
//!
//! - [`resp`]: the request scanner takes the same requests from a buffer whether it arrives
//!   whole or in pieces (its partial-request state is sound), never consumes past the end,
//!   and never yields an empty multibulk;
//! - [`inline`]: inline splitting never panics, and a line of plain words splits into
//!   exactly those words;
//! - [`json`]: every payload type decodes or fails cleanly, and what decodes re-encodes to
//!   JSON that decodes to the same encoding;
//! - [`request`]: the bytes as one connection to the whole command layer on a temporary
//!   store with an account of each USN type; every 256 inputs the accounts' invariants are
//!   verified (`Engine::verify_account`), and every 16,384 the store is verified and
//!   replaced by a fresh one, so it stays small and the fuzzer fast.

use std::sync::OnceLock;

use parking_lot::Mutex;

use crate::engine::{GrnPayload, OrderPayload, PoPayload};
use crate::protocol::{split_inline, Args, Limits, Scanner};
use crate::server::{Harness, ServerConfig};
use crate::store::rocks::RocksConfig;
use crate::{Engine, EngineConfig};

/// Small limits, so inputs reach them.
fn limits() -> Limits {
    Limits {
        inline_bytes_max: 256,
        bulk_bytes_max: 4096,
        args_max: 64,
        request_bytes_max: 16 << 10,
    }
}

/// Every request `scanner` takes from `buf` fed in pieces of the given sizes, up to the
/// first error; and whether it ended in an error.
fn scan_in_pieces(data: &[u8], piece: usize) -> (Vec<Args>, bool) {
    let limits = limits();
    let mut scanner = Scanner::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut requests = Vec::new();
    let mut fed = 0;
    loop {
        match scanner.next(&buf, &limits) {
            Ok(Some((args, used))) => {
                assert!(
                    used > 0 && used <= buf.len(),
                    "consumed {used} of {}",
                    buf.len()
                );
                buf.drain(..used);
                if !args.is_empty() {
                    requests.push(args);
                }
            }
            Ok(None) if fed < data.len() => {
                let end = (fed + piece).min(data.len());
                buf.extend_from_slice(&data[fed..end]);
                fed = end;
            }
            Ok(None) => return (requests, false),
            Err(_) => return (requests, true),
        }
    }
}

pub fn resp(data: &[u8]) {
    let (whole, whole_failed) = scan_in_pieces(data, data.len().max(1));
    // An inline line is rescanned from its start on every piece: byte by byte only for
    // short inputs, so long ones stay cheap enough to fuzz.
    let pieces: &[usize] = if data.len() <= 128 {
        &[1, 2, 7]
    } else {
        &[5, 13]
    };
    for &piece in pieces {
        let (pieces, failed) = scan_in_pieces(data, piece);
        assert_eq!(pieces, whole, "fed in pieces of {piece}");
        assert_eq!(failed, whole_failed, "fed in pieces of {piece}");
    }
}

pub fn inline(data: &[u8]) {
    let line = data.split(|&b| b == b'\n').next().unwrap_or(b"");
    let _ = split_inline(line);
    let plain = line.iter().all(|b| b.is_ascii_alphanumeric() || *b == b' ');
    if plain {
        let words: Vec<&[u8]> = line
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
            .collect();
        let args = split_inline(line).expect("plain words split");
        assert_eq!(args, words, "plain words");
    }
}

pub fn json(data: &[u8]) {
    fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(data: &[u8]) {
        if let Ok(value) = serde_json::from_slice::<T>(data) {
            let once = serde_json::to_vec(&value).expect("encodes");
            let again: T = serde_json::from_slice(&once).expect("its own encoding decodes");
            assert_eq!(serde_json::to_vec(&again).expect("encodes"), once);
        }
    }
    round_trip::<GrnPayload>(data);
    round_trip::<PoPayload>(data);
    round_trip::<Vec<PoPayload>>(data);
    round_trip::<OrderPayload>(data);
}

struct Store {
    harness: Harness,
    inputs: u64,
    _dir: tempfile::TempDir,
}

const ACCOUNTS: [&str; 5] = ["t1", "t2", "t3", "t4", "t5"];

impl Store {
    /// A fresh store in a temporary directory, with an account of each USN type.
    fn new() -> Store {
        let dir = tempfile::Builder::new()
            .prefix("serialgate-fuzz")
            .tempdir()
            .expect("temporary store");
        let config = EngineConfig {
            rocks: RocksConfig {
                block_cache_bytes: 8 << 20,
                write_buffer_bytes: 4 << 20,
                durable: false,
                ..RocksConfig::default()
            },
            grn_units_max: 10_000,
            ..EngineConfig::default()
        };
        let engine = Engine::open(dir.path(), config).expect("open the fuzz store");
        let server = ServerConfig {
            limits: limits(),
            ..ServerConfig::default()
        };
        let harness = Harness::new(engine, server).expect("harness");
        let mut setup = Vec::new();
        for (n, account) in ACCOUNTS.iter().enumerate() {
            setup.extend_from_slice(
                format!(
                    "ACCOUNT.CREATE {account} USN {} TOLERANCE_PCT 10 AUTOGRN on PREFIX F{}\r\n\
                     SKU.SET {account} SERIALIZED S1 S2\r\nSKU.SET {account} PLAIN P1\r\n",
                    n + 1,
                    n + 1
                )
                .as_bytes(),
            );
        }
        let replies = String::from_utf8_lossy(&harness.connection(&setup)).into_owned();
        assert_eq!(
            replies.matches("\"status\":\"created\"").count(),
            ACCOUNTS.len(),
            "fuzz store set-up: {replies}"
        );
        Store {
            harness,
            inputs: 0,
            _dir: dir,
        }
    }
}

/// Inputs between two verifications of the fuzz store.
const VERIFY_EVERY: u64 = 256;
/// Inputs a fuzz store answers before it is verified and replaced by a fresh one: it would
/// otherwise grow without end, and every verification (a scan of each account) with it.
const STORE_INPUTS: u64 = 16_384;

fn store() -> &'static Mutex<Store> {
    static STORE: OnceLock<Mutex<Store>> = OnceLock::new();
    STORE.get_or_init(|| Mutex::new(Store::new()))
}

pub fn request(data: &[u8]) {
    let mut store = store().lock();
    store.harness.connection(data);
    store.inputs += 1;
    if store.inputs % VERIFY_EVERY == 0 {
        verify(&store.harness);
    }
    if store.inputs == STORE_INPUTS {
        *store = Store::new();
    }
}

/// Checks every fuzzed account's invariants; panics on any problem.
pub fn verify_request_store() {
    verify(&store().lock().harness);
}

fn verify(harness: &Harness) {
    for account in ACCOUNTS {
        let problems = harness
            .engine()
            .verify_account(account)
            .expect("verify_account");
        assert!(problems.is_empty(), "{account}: {problems:?}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeded_flows_reach_the_engine() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/request");
        let store = super::store().lock();
        let data = std::fs::read(dir.join("type2")).unwrap();
        let replies = String::from_utf8_lossy(&store.harness.connection(&data)).into_owned();
        assert!(replies.contains("DUPLICATE_IN_REQUEST"), "{replies}");
        assert!(replies.contains("\"replayed\":true"), "{replies}");
        assert!(replies.contains("\"status\":\"returned\""), "{replies}");
    }
}
