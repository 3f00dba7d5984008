//! The prefilter snapshot: written when an engine closes cleanly, taken back at the next
//! open instead of rebuilding the prefilter from every serial key (0.2 s per million
//! serials, so 20 s at 100 million; a snapshot of them reads in about a second).
//!
//! The one invariant is the prefilter's: it never misses a stored serial. A snapshot keeps
//! it only if nothing was written after it, so:
//!
//! - it is written on close, when no request can write any more, and only by an engine that
//!   is not failed (after a failed or interrupted write the prefilter may miss serials);
//! - it is tied to the store's last sequence number, checked at open;
//! - at open it is read and then **deleted, with its directory synced, before the engine
//!   exists**, so no write can ever happen while a snapshot is on disk. A crash at any
//!   moment after that leaves no snapshot, and the next open rebuilds from the keys.
//!
//! A snapshot that is damaged, torn or for another sequence number is ignored (and deleted).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::prefilter::Prefilter;
use crate::store::{Store, StoreError};

/// File name inside the data directory.
pub const FILE: &str = "PREFILTER.snapshot";

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Takes the snapshot at `path` if there is one: reads it, deletes it durably, and returns
/// the prefilter if it is intact and matches the store.
pub fn take(path: &Path, store: &dyn Store) -> Result<Option<Prefilter>, StoreError> {
    // What a crash in the middle of `save` left.
    let _ = std::fs::remove_file(path.with_extension("tmp"));
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, "prefilter snapshot unreadable; rebuilding");
            Vec::new()
        }
    };
    // Deleted before anything else: failing that, the engine must not open, or a stale
    // snapshot could outlive the writes made after it.
    std::fs::remove_file(path)
        .and_then(|()| sync_dir(path))
        .map_err(|e| StoreError::Io(format!("removing {}: {e}", path.display())))?;
    let sequence = store.written().0;
    match Prefilter::from_snapshot(&bytes) {
        Some((prefilter, tag)) if tag == sequence => Ok(Some(prefilter)),
        Some((_, tag)) => {
            tracing::warn!(
                snapshot = tag,
                store = sequence,
                "prefilter snapshot is for another state of the store; rebuilding"
            );
            Ok(None)
        }
        None => {
            tracing::warn!("prefilter snapshot damaged; rebuilding");
            Ok(None)
        }
    }
}

/// Writes `prefilter` as the snapshot at `path`: to a temporary file, synced, renamed over,
/// and the directory synced.
pub fn save(path: &Path, prefilter: &Prefilter, store: &dyn Store) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let file = File::create(&temporary)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    prefilter.write_snapshot(&mut out, store.written().0)?;
    out.flush()?;
    out.get_ref().sync_all()?;
    drop(out);
    std::fs::rename(&temporary, path)?;
    sync_dir(path)
}
