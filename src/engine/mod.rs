//! The engine: accounts, SKUs, POs, GRNs and serial lookups over a [`Store`], with the
//! prefilter in front of it. This is the library API the server and the CLI both call.
//!
//! Concurrency: each account has one lock, held across validate-and-commit, so two requests
//! of the same account can never both claim a serial (serials are unique per account, so
//! accounts never contend with each other). Inside a request the work is parallel (rayon).
//! What does not live here: the USN rules themselves (`rules`), key bytes (`store::keys`),
//! anything of the line protocol.

mod batch;
mod generate;
mod grn;
mod lifecycle;
pub mod payload;
mod po;
mod report;
pub mod rules;
mod snapshot;
mod verify;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::{
    AccountRecord, CheckChar, Condition, EventKind, PoRecord, PoStatus, SerialOrder, SerialRecord,
    SerialState, SkuKind, SkuRecord, UsnType,
};
use crate::generator;
use crate::outcome::OutcomeCode;
use crate::prefilter::{self, Prefilter};
use crate::serial;
use crate::store::rocks::{RocksConfig, RocksStore};
use crate::store::{codec, keys, Commit, Store, StoreError, StoreStats, WriteTicket};

pub use generate::{GenerateReply, GENERATE_COUNT_MAX};
pub use grn::GrnMode;
pub use payload::{GrnItem, GrnPayload, OrderPayload, PoItem, PoPayload};
pub use report::REPORT_HEADER;

/// Longest account id (CONTRACT §1).
pub const ACCOUNT_ID_LEN_MAX: usize = 64;
/// Longest SKU, PO reference code, GRN id, bin, QC reason, order id or prefix, in bytes.
pub const NAME_LEN_MAX: usize = 128;
/// Most SKUs one `SKU.SET` may register.
pub const SKUS_PER_REQUEST_MAX: usize = 100_000;
/// Entries kept in the id-to-name cache before it is emptied and refilled.
const ID_NAME_CACHE_ENTRIES_MAX: usize = 1 << 20;
/// Most lines on one PO.
pub const PO_LINES_MAX: usize = 10_000;
/// POs in one `PO.IMPORT`.
pub const PO_IMPORT_POS_MAX: usize = 100_000;

/// Request-level failures. Each has a protocol code (`code()`), the first word of the RESP
/// error; per-unit validation failures are not errors but a rejected reply.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("{0}")]
    BadRequest(String),
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    #[error("unknown PO {0:?}")]
    UnknownPo(String),
    #[error("PO {0:?} already exists")]
    PoExists(String),
    #[error("PO {0:?} is cancelled")]
    PoCancelled(String),
    #[error("GRN {0:?} was already committed with a different body")]
    GrnExists(String),
    #[error("{0}")]
    LineReceived(String),
    /// A request-level failure named by a validation outcome code (e.g. `UNKNOWN_SKU` for
    /// `SERIALS.GENERATE` of an unregistered SKU).
    #[error("{1}")]
    Outcome(OutcomeCode, String),
    #[error("{0}")]
    Limit(String),
    #[error(transparent)]
    Storage(#[from] StoreError),
}

impl EngineError {
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::BadRequest(_) => "ERR",
            EngineError::UnknownAccount(_) => "UNKNOWN_ACCOUNT",
            EngineError::UnknownPo(_) => "UNKNOWN_PO",
            EngineError::PoExists(_) => "PO_EXISTS",
            EngineError::PoCancelled(_) => "PO_CANCELLED",
            EngineError::GrnExists(_) => "GRN_EXISTS",
            EngineError::LineReceived(_) => "LINE_RECEIVED",
            EngineError::Outcome(code, _) => code.as_str(),
            EngineError::Limit(_) => "LIMIT",
            EngineError::Storage(_) => "STORAGE",
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub rocks: RocksConfig,
    /// Most serials (and quantity units) one GRN may carry.
    pub grn_units_max: u64,
    /// A type 1/3 GRN recognises open serials by reading its PO's lists (cheap per serial,
    /// but the whole PO) when it carries at least 1/`po_list_scan_ratio` of what those
    /// lists hold; a smaller GRN reads each serial's record instead. 0: always records.
    pub po_list_scan_ratio: u64,
    /// A clean close writes a prefilter snapshot (so the next open skips the rebuild) when
    /// the prefilter holds at least this many serials; below it the rebuild is quick.
    pub prefilter_snapshot_min: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            rocks: RocksConfig::default(),
            grn_units_max: 50_000_000,
            // A list entry costs ~0.15 µs to read, hash and sort; a record read ~2 µs.
            po_list_scan_ratio: 16,
            // A rebuild costs ~0.2 s per million serials.
            prefilter_snapshot_min: 1_000_000,
        }
    }
}

/// Options of `ACCOUNT.CREATE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountOptions {
    pub usn_type: UsnType,
    pub tolerance_pct: Option<u32>,
    pub tolerance_qty: Option<u64>,
    pub auto_grn: Option<bool>,
    pub prefix: Option<String>,
    pub check_char: Option<CheckChar>,
    pub order: Option<SerialOrder>,
}

impl AccountOptions {
    pub fn new(usn_type: UsnType) -> Self {
        Self {
            usn_type,
            tolerance_pct: None,
            tolerance_qty: None,
            auto_grn: None,
            prefix: None,
            check_char: None,
            order: None,
        }
    }
}

/// The lock and id of one account, cached after first use.
struct AccountSlot {
    id: u32,
    lock: Mutex<()>,
}

/// Figures for INFO and the benchmarks.
#[derive(Debug, Clone, Serialize)]
pub struct EngineStats {
    pub prefilter_fingerprints: usize,
    pub prefilter_bytes: usize,
    pub prefilter_load_ms: u64,
    /// Whether the prefilter came from the snapshot of a clean close (else it was rebuilt).
    pub prefilter_restored: bool,
    #[serde(skip)]
    pub store: StoreStats,
}

pub struct Engine {
    store: Box<dyn Store>,
    prefilter: Prefilter,
    prefilter_load_ms: u64,
    prefilter_restored: bool,
    /// Where a clean close leaves the prefilter snapshot (none for a store given directly).
    snapshot_path: Option<PathBuf>,
    accounts: RwLock<HashMap<String, Arc<AccountSlot>>>,
    /// Cache of immutable id-to-name mappings, keyed by their storage key.
    id_names: RwLock<HashMap<Vec<u8>, String>>,
    /// Set when a sync failed: what was written since may not be durable, so nothing more
    /// is acknowledged until the engine is reopened.
    failed: std::sync::atomic::AtomicBool,
    /// Serialises account creation (ids are dense).
    account_create: Mutex<u32>,
    config: EngineConfig,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn check_name(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > NAME_LEN_MAX {
        return Err(EngineError::BadRequest(format!(
            "{what} must be 1-{NAME_LEN_MAX} bytes, got {}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(EngineError::BadRequest(format!(
            "{what} {value:?} contains control characters"
        )));
    }
    Ok(())
}

pub fn check_account_id(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= ACCOUNT_ID_LEN_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(EngineError::BadRequest(format!(
            "account id {name:?} must be 1-{ACCOUNT_ID_LEN_MAX} characters of [A-Za-z0-9_.-]"
        )))
    }
}

impl Engine {
    /// Opens (or creates) the engine on an embedded RocksDB at `path` and loads the prefilter.
    pub fn open(path: &Path, config: EngineConfig) -> Result<Self> {
        let store = RocksStore::open(path, config.rocks.clone())?;
        let snapshot_path = path.join(snapshot::FILE);
        let started = std::time::Instant::now();
        let restored = snapshot::take(&snapshot_path, &store)?;
        let mut engine = Self::build(Box::new(store), config, restored, started)?;
        engine.snapshot_path = Some(snapshot_path);
        Ok(engine)
    }

    /// An engine on a store given directly; its prefilter is always rebuilt.
    pub fn with_store(store: Box<dyn Store>, config: EngineConfig) -> Result<Self> {
        Self::build(store, config, None, std::time::Instant::now())
    }

    fn build(
        store: Box<dyn Store>,
        config: EngineConfig,
        restored: Option<Prefilter>,
        started: std::time::Instant,
    ) -> Result<Self> {
        let prefilter_restored = restored.is_some();
        let prefilter = match restored {
            Some(prefilter) => prefilter,
            None => load_prefilter(store.as_ref())?,
        };
        let prefilter_load_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            serials = prefilter.len(),
            ms = prefilter_load_ms,
            from_snapshot = prefilter_restored,
            "prefilter loaded"
        );
        let mut last_account_id = 0;
        let (start, end) = (
            vec![keys::TAG_ACCOUNT_NAME],
            vec![keys::TAG_ACCOUNT_NAME + 1],
        );
        store.scan(&start, &end, &mut |key, _| {
            if let Some(id) = key.get(1..5).and_then(|b| b.try_into().ok()) {
                last_account_id = last_account_id.max(u32::from_be_bytes(id));
            }
            true
        })?;
        Ok(Self {
            store,
            prefilter,
            prefilter_load_ms,
            prefilter_restored,
            snapshot_path: None,
            accounts: RwLock::new(HashMap::new()),
            id_names: RwLock::new(HashMap::new()),
            failed: std::sync::atomic::AtomicBool::new(false),
            account_create: Mutex::new(last_account_id),
            config,
        })
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            prefilter_fingerprints: self.prefilter.len(),
            prefilter_bytes: self.prefilter.bytes(),
            prefilter_load_ms: self.prefilter_load_ms,
            prefilter_restored: self.prefilter_restored,
            store: self.store.stats(),
        }
    }

    /// An xxh3-128 digest of every stored key and value, in key order: two engines with the
    /// same digest hold the same data. Reads everything; for checks and tests, not hot paths.
    pub fn content_digest(&self) -> Result<u128> {
        let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
        self.store.scan(&[], &[0xFF; 16], &mut |key, value| {
            hasher.update(&(key.len() as u64).to_le_bytes());
            hasher.update(key);
            hasher.update(&(value.len() as u64).to_le_bytes());
            hasher.update(value);
            true
        })?;
        Ok(hasher.digest128())
    }

    /// Whether an earlier write or sync failed: writes are refused until a reopen.
    pub fn is_failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Fails if an earlier write or sync failed (see `failed`).
    fn check_healthy(&self) -> Result<()> {
        if self.is_failed() {
            return Err(EngineError::Storage(StoreError::Io(
                "this request was not applied: writes are refused after a storage fault left an earlier \
                 write's outcome unknown, until the engine is reopened (a server does that by itself once \
                 the disk works again; INFO engine_state shows where it is); retry later"
                    .into(),
            )));
        }
        Ok(())
    }

    /// Writes `commit` without waiting for durability; pair with [`Engine::sync`].
    ///
    /// A write that panics, or fails after it may have been applied
    /// (`StoreError::Indeterminate`), may have reached the store without the prefilter
    /// hearing of its serials, and the prefilter must never miss a stored serial (a
    /// duplicate would pass unread). So the engine then refuses every further write, as
    /// after a failed sync, until a reopen rebuilds the prefilter from the store. Any other
    /// error applied nothing, and the request can simply be retried.
    fn write(&self, commit: Commit<'_>) -> Result<WriteTicket> {
        self.check_healthy()?;
        let _poison = self.fail_on_unwind();
        let written = self.store.write(commit);
        match written {
            Err(e @ StoreError::Indeterminate(_)) => {
                self.failed
                    .store(true, std::sync::atomic::Ordering::Release);
                tracing::error!(error = %e, "a write may have been applied; refusing further writes");
                Err(EngineError::Storage(e))
            }
            other => Ok(other?),
        }
    }

    /// A guard that marks the engine failed if a panic unwinds through it: held from a
    /// write until the prefilter has its fingerprints, since a write that reached the store
    /// without them would let a duplicate through (and into a snapshot).
    pub(crate) fn fail_on_unwind(&self) -> FailOnUnwind<'_> {
        FailOnUnwind(&self.failed)
    }

    /// Waits until `ticket` is durable; concurrent requests share the sync. A failed sync
    /// leaves what it covered possibly on disk, possibly not: its error says the outcome
    /// is unknown, whatever the store called it.
    fn sync(&self, ticket: WriteTicket) -> Result<()> {
        self.check_healthy()?;
        self.store.sync(ticket).map_err(|e| {
            self.failed
                .store(true, std::sync::atomic::Ordering::Release);
            tracing::error!(error = %e, "sync failed; refusing further writes");
            EngineError::Storage(match e {
                StoreError::Io(m) | StoreError::Corrupt(m) => StoreError::Indeterminate(m),
                unknown @ StoreError::Indeterminate(_) => unknown,
            })
        })
    }

    /// Writes `commit` and waits until it is durable.
    fn commit(&self, commit: Commit<'_>) -> Result<()> {
        let ticket = self.write(commit)?;
        self.sync(ticket)
    }

    fn get_decoded<T: bincode::Decode<()>>(&self, key: &[u8]) -> Result<Option<T>> {
        match self.store.get(key)? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn slot(&self, account: &str) -> Result<Arc<AccountSlot>> {
        if let Some(slot) = self.accounts.read().get(account) {
            return Ok(slot.clone());
        }
        check_account_id(account)?;
        let record: AccountRecord = self
            .get_decoded(&keys::account(account))?
            .ok_or_else(|| EngineError::UnknownAccount(account.to_string()))?;
        let slot = Arc::new(AccountSlot {
            id: record.id,
            lock: Mutex::new(()),
        });
        Ok(self
            .accounts
            .write()
            .entry(account.to_string())
            .or_insert(slot)
            .clone())
    }

    fn account_record(&self, account: &str) -> Result<AccountRecord> {
        self.get_decoded(&keys::account(account))?
            .ok_or_else(|| EngineError::UnknownAccount(account.to_string()))
    }

    /// `ACCOUNT.CREATE`: creates the account, or updates its options. The USN type may change
    /// only while the account has no POs. Returns true when the account was created.
    pub fn create_account(&self, name: &str, options: AccountOptions) -> Result<bool> {
        check_account_id(name)?;
        if let Some(prefix) = &options.prefix {
            if prefix.len() > generator::PREFIX_LEN_MAX
                || serial::check_syntax(prefix.as_bytes()).is_err()
            {
                return Err(EngineError::BadRequest(format!(
                    "prefix {prefix:?} must be 1-{} printable ASCII characters without spaces",
                    generator::PREFIX_LEN_MAX
                )));
            }
        }
        if options.tolerance_pct.is_some_and(|p| p > 1000) {
            return Err(EngineError::BadRequest(
                "TOLERANCE_PCT must be 0-1000".into(),
            ));
        }
        let mut last_id = self.account_create.lock();
        if self.store.get(&keys::account(name))?.is_some() {
            let slot = self.slot(name)?;
            let _guard = slot.lock.lock();
            // Read under the account lock: a PO may be being created meanwhile.
            let mut record = self.account_record(name)?;
            if record.usn_type != options.usn_type && record.po_count > 0 {
                return Err(EngineError::BadRequest(format!(
                    "account {name:?} has {} POs; its USN type can no longer change",
                    record.po_count
                )));
            }
            apply_options(&mut record, &options);
            self.commit(Commit::puts(vec![(
                keys::account(name),
                codec::encode(&record),
            )]))?;
            return Ok(false);
        }
        let id = last_id
            .checked_add(1)
            .ok_or_else(|| EngineError::Limit("account ids exhausted".into()))?;
        let mut record = AccountRecord {
            id,
            name: name.to_string(),
            usn_type: options.usn_type,
            tolerance_pct: 0,
            tolerance_qty: 0,
            auto_grn: false,
            prefix: String::new(),
            check_char: CheckChar::None,
            order: SerialOrder::Sequential,
            generator_key: rand::random(),
            po_count: 0,
            last_sku_id: 0,
            last_po_id: 0,
            last_grn_seq: 0,
            last_serial_counter: 0,
            created_at_ms: now_ms(),
        };
        apply_options(&mut record, &options);
        self.commit(Commit::puts(vec![
            (keys::account(name), codec::encode(&record)),
            (keys::account_name(id), name.as_bytes().to_vec()),
        ]))?;
        *last_id = id;
        Ok(true)
    }

    /// The account's stored record (USN type and options).
    pub fn account(&self, name: &str) -> Result<AccountRecord> {
        check_account_id(name)?;
        self.account_record(name)
    }

    /// `SKU.SET`: registers (or re-kinds) SKUs in bulk, atomically. Returns how many SKUs were
    /// new.
    pub fn set_skus(&self, account: &str, kind: SkuKind, skus: &[String]) -> Result<usize> {
        if skus.len() > SKUS_PER_REQUEST_MAX {
            return Err(EngineError::Limit(format!(
                "{} SKUs in one request, the limit is {SKUS_PER_REQUEST_MAX}",
                skus.len()
            )));
        }
        for sku in skus {
            check_name("SKU", sku)?;
        }
        let slot = self.slot(account)?;
        let _guard = slot.lock.lock();
        let mut record = self.account_record(account)?;
        let mut puts = Vec::new();
        let mut seen = HashSet::new();
        let mut created = 0;
        for sku in skus {
            if !seen.insert(sku.as_str()) {
                continue;
            }
            let key = keys::sku(slot.id, sku);
            let id = match self.get_decoded::<SkuRecord>(&key)? {
                Some(existing) => existing.id,
                None => {
                    record.last_sku_id += 1;
                    created += 1;
                    puts.push((
                        keys::sku_name(slot.id, record.last_sku_id),
                        sku.as_bytes().to_vec(),
                    ));
                    record.last_sku_id
                }
            };
            puts.push((key, codec::encode(&SkuRecord { id, kind })));
        }
        puts.push((keys::account(account), codec::encode(&record)));
        self.commit(Commit::puts(puts))?;
        Ok(created)
    }

    fn sku_record(&self, account_id: u32, sku: &str) -> Result<Option<SkuRecord>> {
        self.get_decoded(&keys::sku(account_id, sku))
    }

    fn sku_name(&self, account_id: u32, sku: u32) -> Result<Option<String>> {
        self.id_name(keys::sku_name(account_id, sku))
    }

    /// Reads an id-to-name mapping (SKU name, PO reference, GRN id). These never change
    /// once written, so they are cached: a serial lookup then costs one or two reads.
    fn id_name(&self, key: Vec<u8>) -> Result<Option<String>> {
        if let Some(name) = self.id_names.read().get(&key) {
            return Ok(Some(name.clone()));
        }
        let Some(bytes) = self.store.get(&key)? else {
            return Ok(None);
        };
        let name = String::from_utf8_lossy(&bytes).into_owned();
        let mut cache = self.id_names.write();
        if cache.len() >= ID_NAME_CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(key, name.clone());
        Ok(Some(name))
    }

    fn po_record(&self, account_id: u32, reference_code: &str) -> Result<PoRecord> {
        self.get_decoded(&keys::po(account_id, reference_code))?
            .ok_or_else(|| EngineError::UnknownPo(reference_code.to_string()))
    }

    /// `PO.GET`: status and per-line ordered / generated / received.
    pub fn po_view(&self, account: &str, reference_code: &str) -> Result<PoView> {
        let slot = self.slot(account)?;
        let po = self.po_record(slot.id, reference_code)?;
        let mut lines = Vec::with_capacity(po.lines.len());
        for line in po.lines.iter().filter(|l| !l.is_removed()) {
            lines.push(PoLineView {
                line_item_number: line.line_item_number.clone(),
                sku: self.sku_name(slot.id, line.sku)?.unwrap_or_default(),
                ordered: line.ordered,
                generated: line.generated,
                received: line.received,
            });
        }
        Ok(PoView {
            reference_code: po.reference_code,
            vendor_id: po.vendor_id,
            status: po.status,
            lines,
        })
    }

    /// `SERIAL.GET`: the serial's record with its history, or `None` if the account does not
    /// know it. Unknown serials are answered by the prefilter without a disk read.
    pub fn serial(&self, account: &str, serial: &[u8]) -> Result<Option<SerialView>> {
        Ok(self.serials(account, &[serial])?.pop().flatten())
    }

    /// `SERIAL.MGET`: one entry per serial, in order.
    pub fn serials(&self, account: &str, serials: &[&[u8]]) -> Result<Vec<Option<SerialView>>> {
        let slot = self.slot(account)?;
        let mut wanted: Vec<(Vec<u8>, usize)> = serials
            .iter()
            .enumerate()
            .filter(|(_, s)| serial::check_syntax(s).is_ok())
            .map(|(i, s)| (i, serial::serial_hash(slot.id, s)))
            .filter(|(_, hash)| self.prefilter.contains(*hash))
            .map(|(i, hash)| (keys::serial(slot.id, hash, serials[i]), i))
            .collect();
        wanted.sort_unstable();
        let values = match wanted.as_slice() {
            // One key: a plain read skips MultiGet's batch set-up.
            [(key, _)] => vec![self.store.get(key)?],
            _ => {
                let keys: Vec<Vec<u8>> = wanted.iter().map(|(k, _)| k.clone()).collect();
                self.store.multi_get_sorted(&keys)?
            }
        };
        let mut views = vec![None; serials.len()];
        let mut names = NameCache::new(self, slot.id);
        for ((_, i), value) in wanted.iter().zip(values) {
            if let Some(bytes) = value {
                let record: SerialRecord = codec::decode(&bytes)?;
                views[*i] = Some(names.view(serials[*i], &record)?);
            }
        }
        Ok(views)
    }

    /// `GRN.CHECK`, `GRN.COMMIT` and `GRN.AUTO`.
    pub fn receive(
        &self,
        account: &str,
        payload: &GrnPayload,
        mode: GrnMode,
    ) -> Result<crate::outcome::GrnReply> {
        grn::receive(self, account, payload, mode)
    }
}

fn apply_options(record: &mut AccountRecord, options: &AccountOptions) {
    record.usn_type = options.usn_type;
    if let Some(pct) = options.tolerance_pct {
        record.tolerance_pct = pct;
    }
    if let Some(qty) = options.tolerance_qty {
        record.tolerance_qty = qty;
    }
    if let Some(auto_grn) = options.auto_grn {
        record.auto_grn = auto_grn;
    }
    if let Some(prefix) = &options.prefix {
        record.prefix = prefix.clone();
    }
    if let Some(check_char) = options.check_char {
        record.check_char = check_char;
    }
    if let Some(order) = options.order {
        record.order = order;
    }
}

pub(crate) struct FailOnUnwind<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for FailOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, std::sync::atomic::Ordering::Release);
            tracing::error!("a write panicked; refusing further writes");
        }
    }
}

impl Drop for Engine {
    /// A clean close leaves the prefilter snapshot for the next open (see `snapshot`).
    fn drop(&mut self) {
        let Some(path) = &self.snapshot_path else {
            return;
        };
        if self.failed.load(std::sync::atomic::Ordering::SeqCst)
            || std::thread::panicking()
            || self.prefilter.len() < self.config.prefilter_snapshot_min
        {
            return;
        }
        let started = std::time::Instant::now();
        match snapshot::save(path, &self.prefilter, self.store.as_ref()) {
            Ok(()) => tracing::info!(
                serials = self.prefilter.len(),
                ms = started.elapsed().as_millis() as u64,
                "prefilter snapshot written"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "prefilter snapshot not written; the next open rebuilds")
            }
        }
    }
}

/// Rebuilds the prefilter from the serial keys: the hash is read back from each key, the 256
/// segments' key ranges are scanned in parallel.
fn load_prefilter(store: &dyn Store) -> Result<Prefilter> {
    fail::fail_point!("engine::prefilter_load", |_| Err(EngineError::Storage(
        StoreError::Io("prefilter load failed (injected by a failpoint)".into())
    )));
    let estimate = store.stats().estimated_keys as usize;
    let prefilter = Prefilter::with_capacity(estimate);
    let results: Vec<Result<(), StoreError>> = (0..prefilter::SEGMENTS)
        .into_par_iter()
        .map(|segment| {
            let start = keys::serial_range_start((segment as u64) << 56);
            let end = match segment + 1 {
                next if next < prefilter::SEGMENTS => keys::serial_range_start((next as u64) << 56),
                _ => keys::serial_range_end(),
            };
            let mut hashes = Vec::new();
            store.scan(&start, &end, &mut |key, _| {
                if let Some(parsed) = keys::parse_serial(key) {
                    hashes.push(parsed.hash);
                }
                true
            })?;
            prefilter.insert_sorted(&hashes, |h| *h);
            Ok(())
        })
        .collect();
    for result in results {
        result?;
    }
    Ok(prefilter)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoLineView {
    pub line_item_number: String,
    pub sku: String,
    pub ordered: u64,
    pub generated: u64,
    pub received: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoView {
    pub reference_code: String,
    pub vendor_id: String,
    pub status: PoStatus,
    pub lines: Vec<PoLineView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub event: &'static str,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}

/// A serial's record with ids resolved to names, as `SERIAL.GET` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SerialView {
    pub serial: String,
    pub sku: Option<String>,
    pub reference_code: Option<String>,
    pub line_item_number: Option<String>,
    pub grn: Option<String>,
    pub state: SerialState,
    pub condition: Condition,
    pub bin: Option<String>,
    pub qc_reason: Option<String>,
    pub order: Option<String>,
    pub updated_at: String,
    pub history: Vec<EventView>,
}

pub(crate) fn format_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

/// Resolves ids to names for a batch of serial views, reading each name once.
struct NameCache<'a> {
    engine: &'a Engine,
    account: u32,
    skus: HashMap<u32, Option<String>>,
    pos: HashMap<u32, Option<PoRecord>>,
    grns: HashMap<u32, Option<String>>,
}

impl<'a> NameCache<'a> {
    fn new(engine: &'a Engine, account: u32) -> Self {
        Self {
            engine,
            account,
            skus: HashMap::new(),
            pos: HashMap::new(),
            grns: HashMap::new(),
        }
    }

    fn sku(&mut self, id: u32) -> Result<Option<String>> {
        if id == 0 {
            return Ok(None);
        }
        if !self.skus.contains_key(&id) {
            let name = self.engine.sku_name(self.account, id)?;
            self.skus.insert(id, name);
        }
        Ok(self.skus[&id].clone())
    }

    fn po(&mut self, id: u32) -> Result<Option<&PoRecord>> {
        if id == 0 {
            return Ok(None);
        }
        if !self.pos.contains_key(&id) {
            let po = match self.engine.id_name(keys::po_ref(self.account, id))? {
                Some(reference) => self
                    .engine
                    .get_decoded(&keys::po(self.account, &reference))?,
                None => None,
            };
            self.pos.insert(id, po);
        }
        Ok(self.pos[&id].as_ref())
    }

    fn grn(&mut self, seq: u32) -> Result<Option<String>> {
        if seq == 0 {
            return Ok(None);
        }
        if !self.grns.contains_key(&seq) {
            let id = self.engine.id_name(keys::grn_id(self.account, seq))?;
            self.grns.insert(seq, id);
        }
        Ok(self.grns[&seq].clone())
    }

    fn view(&mut self, serial: &[u8], record: &SerialRecord) -> Result<SerialView> {
        let (reference_code, line_item_number) = match self.po(record.po)? {
            Some(po) => (
                Some(po.reference_code.clone()),
                po.lines
                    .get(record.line as usize)
                    .map(|l| l.line_item_number.clone()),
            ),
            None => (None, None),
        };
        let mut history = Vec::with_capacity(record.history.len());
        for event in &record.history {
            let mut view = EventView {
                event: "",
                at: format_ms(event.at_ms),
                grn: None,
                reference_code: None,
                order: None,
                condition: None,
            };
            match &event.kind {
                EventKind::Expected { po }
                | EventKind::Generated { po }
                | EventKind::Cancelled { po } => {
                    view.event = match event.kind {
                        EventKind::Expected { .. } => "expected",
                        EventKind::Generated { .. } => "generated",
                        _ => "cancelled",
                    };
                    view.reference_code = self.po(*po)?.map(|p| p.reference_code.clone());
                }
                EventKind::Inwarded { grn } => {
                    view.event = "inwarded";
                    view.grn = self.grn(*grn)?;
                }
                EventKind::Outward { order } => {
                    view.event = "outward";
                    view.order = Some(order.clone());
                }
                EventKind::Returned { order, condition } => {
                    view.event = "returned";
                    view.order = Some(order.clone());
                    view.condition = Some(*condition);
                }
            }
            history.push(view);
        }
        Ok(SerialView {
            serial: String::from_utf8_lossy(serial).into_owned(),
            sku: self.sku(record.sku)?,
            reference_code,
            line_item_number,
            grn: self.grn(record.grn)?,
            state: record.state,
            condition: record.condition,
            bin: record.bin.clone(),
            qc_reason: record.qc_reason.clone(),
            order: record.order.clone(),
            updated_at: format_ms(record.updated_at_ms()),
            history,
        })
    }
}
