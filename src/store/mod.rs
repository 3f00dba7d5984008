//! Storage: an ordered, durable key-value space behind the narrow [`Store`] trait.
//!
//! The engine speaks only in keys (built by [`keys`]), values (encoded by [`codec`]) and
//! atomic [`Commit`]s. No RocksDB type crosses this boundary; [`rocks`] is the one backend
//! today. Nothing here knows USN rules or the line protocol.

pub mod codec;
pub mod keys;
pub mod rocks;

use thiserror::Error;

/// Failures of the storage layer. Every one means the operation did not take effect.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage I/O error: {0}")]
    Io(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A write failed after it may have been applied. Every other error from
    /// [`Store::write`] means nothing of the commit was applied.
    #[error("storage write outcome unknown: {0}")]
    Indeterminate(String),
}

/// What an entry of a bulk write does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The value replaces whatever the key held.
    Put,
    /// The value is an update applied to the key's current value when it is read
    /// ([`codec::merge_serial_record`]): a write that needs no read first.
    Merge,
}

/// A sink for entries; returning an error stops the producer.
pub type EntrySink<'a> = dyn FnMut(Op, &[u8], &[u8]) -> Result<(), StoreError> + 'a;

/// Sorted, non-overlapping runs of entries produced on demand, so a ten-million-serial
/// commit is never materialised as ten million `Vec`s. Runs are in ascending key order, each
/// run's keys ascend, and every key of run `i` is below every key of run `i + 1`.
pub trait SortedRuns: Sync {
    fn run_count(&self) -> usize;
    /// Number of entries in run `run`.
    fn run_len(&self, run: usize) -> usize;
    /// Feeds run `run`'s entries to `sink` in ascending key order.
    fn emit(&self, run: usize, sink: &mut EntrySink<'_>) -> Result<(), StoreError>;
}

/// One atomic write: all of it becomes durable, or none of it does.
pub struct Commit<'a> {
    /// Small writes in any order; a later put of the same key wins.
    pub puts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Bulk entries, all above every key in `puts`.
    pub runs: Option<&'a dyn SortedRuns>,
}

impl Commit<'_> {
    pub fn puts(puts: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        Commit { puts, runs: None }
    }

    pub fn bulk_len(&self) -> usize {
        self.runs
            .map_or(0, |r| (0..r.run_count()).map(|i| r.run_len(i)).sum())
    }
}

/// Identifies a write for [`Store::sync`]. `WriteTicket::DURABLE` needs no sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WriteTicket(pub u64);

impl WriteTicket {
    pub const DURABLE: WriteTicket = WriteTicket(0);
}

/// Counters a backend reports for INFO and the benchmarks.
#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    pub live_data_bytes: u64,
    pub sst_files_bytes: u64,
    pub estimated_keys: u64,
    pub level0_files: u64,
}

/// The storage contract the engine relies on.
pub trait Store: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Point lookups of keys given in ascending order; one result per key, same order.
    fn multi_get_sorted(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError>;

    /// Visits every entry with `start <= key < end` in key order until `visit` returns false.
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;

    /// Writes `commit` atomically. It is visible to reads at once, but durable only once
    /// [`Store::sync`] of the returned ticket returns. Writes become durable in the order they
    /// were made: a crash keeps a prefix of them. An error means nothing of `commit` was
    /// applied, except [`StoreError::Indeterminate`], which says it may have been.
    fn write(&self, commit: Commit<'_>) -> Result<WriteTicket, StoreError>;

    /// Returns once every write up to `ticket` would survive a power cut. Concurrent callers
    /// share one sync: this is the group commit.
    fn sync(&self, ticket: WriteTicket) -> Result<(), StoreError>;

    /// A ticket covering every write made so far.
    fn written(&self) -> WriteTicket;

    /// Writes `commit` and waits until it is durable.
    fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        let ticket = self.write(commit)?;
        self.sync(ticket)
    }

    fn stats(&self) -> StoreStats;
}

/// Whether the directory `dir` takes a small synced write: a file is written, synced and
/// removed. Tells when a full disk has room again or a failing device answers, without
/// touching the store's own files.
pub fn probe_writable(dir: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join("PROBE.tmp");
    let written = std::fs::File::create(&path).and_then(|mut file| {
        file.write_all(&[0u8; 4096])?;
        file.sync_all()
    });
    let removed = std::fs::remove_file(&path);
    written?;
    removed?;
    std::fs::File::open(dir)?.sync_all()
}

/// Bytes free for an unprivileged writer on the file system holding `path`.
pub fn available_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}
