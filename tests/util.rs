//! Shared set-up: engines on real RocksDB in temporary directories, and payload builders.

use std::path::{Path, PathBuf};

use serialgate::domain::{SkuKind, UsnType};
use serialgate::engine::{GrnItem, GrnPayload, PoItem, PoPayload};
use serialgate::outcome::{GrnReply, OutcomeCode, PoReply};
use serialgate::serial::SerialList;
use serialgate::store::rocks::RocksConfig;
use serialgate::{AccountOptions, Engine, EngineConfig, GrnMode};
use tempfile::TempDir;

pub const ACCOUNT: &str = "acme";

/// Which write path commits take: every bulk commit ingested as SST files, or every one
/// through the WAL. Tests that touch commit semantics run under both.
#[derive(Debug, Clone, Copy)]
pub enum WritePath {
    Ingest,
    Wal,
}

pub const BOTH_PATHS: [WritePath; 2] = [WritePath::Ingest, WritePath::Wal];

pub fn config(path: WritePath) -> EngineConfig {
    EngineConfig {
        rocks: RocksConfig {
            ingest_min_entries: match path {
                WritePath::Ingest => 1,
                WritePath::Wal => usize::MAX,
            },
            block_cache_bytes: 8 << 20,
            write_buffer_bytes: 4 << 20,
            durable: true,
        },
        ..EngineConfig::default()
    }
}

pub fn open(dir: &Path, path: WritePath) -> Engine {
    Engine::open(dir, config(path)).expect("open engine")
}

/// A type 2 account with serialized SKUs `S1`, `S2` and plain SKU `P1`.
pub fn type2(path: WritePath) -> (TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), path);
    setup_type2(&engine);
    (dir, engine)
}

pub fn setup_type2(engine: &Engine) {
    setup_account(engine, AccountOptions::new(UsnType::SellerAtGrn));
}

/// Creates PO `reference` with lines `(sku, quantity)`, numbered 1, 2, …
pub fn po(engine: &Engine, reference: &str, lines: &[(&str, u64)]) {
    let payload = PoPayload {
        vendor_id: "V1".into(),
        reference_code: reference.into(),
        create_or_update: "I".into(),
        is_cancel: None,
        items: lines
            .iter()
            .enumerate()
            .map(|(i, (sku, quantity))| PoItem {
                line_item_number: (i + 1).to_string(),
                sku: sku.to_string(),
                quantity: *quantity,
                serials: None,
            })
            .collect(),
    };
    let reply = engine.create_po(ACCOUNT, payload).unwrap();
    assert!(matches!(reply, PoReply::Created { .. }), "{reply:?}");
}

pub fn serials<S: AsRef<[u8]>>(values: &[S]) -> SerialList {
    values.iter().map(|s| s.as_ref()).collect()
}

pub fn item(sku: &str, values: SerialList) -> GrnItem {
    GrnItem {
        sku: Some(sku.into()),
        serials: Some(values),
        ..GrnItem::default()
    }
}

pub fn plain(sku: &str, quantity: u64) -> GrnItem {
    GrnItem {
        sku: Some(sku.into()),
        quantity: Some(quantity),
        ..GrnItem::default()
    }
}

pub fn grn(id: &str, reference: &str, items: Vec<GrnItem>) -> GrnPayload {
    GrnPayload {
        grn_id: id.into(),
        reference_code: reference.into(),
        invoice_number: None,
        items,
    }
}

pub fn commit(engine: &Engine, payload: &GrnPayload) -> GrnReply {
    engine.receive(ACCOUNT, payload, GrnMode::Commit).unwrap()
}

/// `(serial, code)` of every error, sorted, for comparisons.
pub fn codes(reply: &GrnReply) -> Vec<(String, OutcomeCode)> {
    let mut out: Vec<(String, OutcomeCode)> = reply
        .errors()
        .iter()
        .map(|e| (e.serial.clone().unwrap_or_default(), e.code))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.as_str().cmp(b.1.as_str())));
    out
}

pub fn state_of(engine: &Engine, serial: &str) -> Option<String> {
    engine.serial(ACCOUNT, serial.as_bytes()).unwrap().map(|v| {
        serde_json::to_value(v.state)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    })
}

/// An account of `usn` type with serialized SKUs `S1`, `S2` and plain SKU `P1`.
pub fn account_of(path: WritePath, options: AccountOptions) -> (TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), path);
    setup_account(&engine, options);
    (dir, engine)
}

/// Creates the account with serialized SKUs `S1`, `S2` and plain SKU `P1`.
pub fn setup_account(engine: &Engine, options: AccountOptions) {
    assert!(engine.create_account(ACCOUNT, options).unwrap());
    engine
        .set_skus(ACCOUNT, SkuKind::Serialized, &["S1".into(), "S2".into()])
        .unwrap();
    engine
        .set_skus(ACCOUNT, SkuKind::Plain, &["P1".into()])
        .unwrap();
}

/// A PO line for `po_payload`: `(lineItemNumber, sku, quantity, serials)`.
pub type Line<'a> = (&'a str, &'a str, u64, Option<&'a [&'a str]>);

pub fn po_payload(reference: &str, lines: &[Line<'_>]) -> PoPayload {
    PoPayload {
        vendor_id: "V1".into(),
        reference_code: reference.into(),
        create_or_update: "I".into(),
        is_cancel: None,
        items: lines
            .iter()
            .map(|(number, sku, quantity, values)| PoItem {
                line_item_number: number.to_string(),
                sku: sku.to_string(),
                quantity: *quantity,
                serials: values.map(serials),
            })
            .collect(),
    }
}

/// `(serial, code)` of every error of a PO reply, sorted.
pub fn po_codes(reply: &PoReply) -> Vec<(String, OutcomeCode)> {
    let PoReply::Rejected { errors, .. } = reply else {
        return Vec::new();
    };
    let mut out: Vec<(String, OutcomeCode)> = errors
        .iter()
        .map(|e| (e.serial.clone().unwrap_or_default(), e.code))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.as_str().cmp(b.1.as_str())));
    out
}

pub fn history_of(engine: &Engine, serial: &str) -> Vec<&'static str> {
    engine
        .serial(ACCOUNT, serial.as_bytes())
        .unwrap()
        .map(|v| v.history.iter().map(|e| e.event).collect())
        .unwrap_or_default()
}

/// `(ordered, generated, received)` of each line of a PO.
pub fn line_counts(engine: &Engine, reference: &str) -> Vec<(u64, u64, u64)> {
    engine
        .po_view(ACCOUNT, reference)
        .unwrap()
        .lines
        .iter()
        .map(|l| (l.ordered, l.generated, l.received))
        .collect()
}

pub fn digest(engine: &Engine) -> u128 {
    engine.content_digest().unwrap()
}

/// A serial list as strings, for comparisons in tests.
pub fn strings(list: &SerialList) -> Vec<String> {
    list.iter()
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect()
}

/// Compiles the `LD_PRELOAD` shim `tools/NAME.c` (powerloss, diskfull) into `dir`.
pub fn build_shim(name: &str, dir: &Path) -> PathBuf {
    let shim = dir.join(format!("{name}.so"));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tools/{name}.c"));
    let built = std::process::Command::new("gcc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&shim)
        .arg(&source)
        .arg("-ldl")
        .output()
        .unwrap_or_else(|e| panic!("gcc builds the {name} shim: {e}"));
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    shim
}
