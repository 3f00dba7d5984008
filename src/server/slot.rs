//! The engine a server serves, and its reopening once a storage fault is over.
//!
//! After a write whose outcome is unknown, or a failed sync, the engine refuses every write:
//! its prefilter may miss a serial that reached the store (`Engine::write`). It still
//! answers reads. Only a reopen makes writing safe again, because the open replays the WAL
//! and rebuilds the prefilter from what the store really holds.
//!
//! A server given a [`Reopen`] does that by itself. The request that leaves the engine
//! failed wakes the reopener (even if it panicked). The reopener waits until the data
//! directory takes a small synced write again and its file system has room for an open
//! (a full disk has room, a failing device answers). Then it takes the engine out of
//! service, lets the requests still using it finish, closes it and opens it again,
//! retrying with backoff if the open fails. The open rebuilds the prefilter from the store
//! (a failed engine leaves no snapshot): about 0.23 s per million serials. While the engine
//! is out of service every engine command answers `-STORAGE`, saying it is being reopened
//! and why the last attempt failed, if one did; before that, writes answer `-STORAGE` and
//! reads are served. Reopens that follow each other closely are spaced out, so a fault
//! that comes back at once cannot keep the server rebuilding.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::engine::{Engine, EngineConfig};
use crate::protocol::Reply;
use crate::store::probe_writable;

/// What the server needs to open its engine again.
#[derive(Debug, Clone)]
pub struct Reopen {
    pub dir: PathBuf,
    pub config: EngineConfig,
}

/// Pauses between two checks of the storage, or two failed opens: 0.1 s, doubling up to
/// 2 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(Duration::from_millis(100))
    }

    async fn pause(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(2));
    }
}
/// A reopen within `CALM` of the last one waits first: 1 s, then twice as long each time,
/// up to `SPACING_MAX`.
const CALM: Duration = Duration::from_secs(60);
const SPACING_FIRST: Duration = Duration::from_secs(1);
const SPACING_MAX: Duration = Duration::from_secs(30);
/// Free space an open needs besides what its memtables may flush: a new MANIFEST, OPTIONS
/// file and WAL.
const OPEN_MARGIN_BYTES: u64 = 64 << 20;

/// What `INFO` reports as `engine_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineState {
    Serving,
    /// Failed: reads are served, writes refused until a reopen.
    RefusingWrites,
    /// Out of service between close and open.
    Reopening,
}

impl EngineState {
    pub fn name(self) -> &'static str {
        match self {
            EngineState::Serving => "serving",
            EngineState::RefusingWrites => "refusing_writes",
            EngineState::Reopening => "reopening",
        }
    }
}

pub struct EngineSlot {
    /// `None` only while the reopener has the engine closed.
    current: RwLock<Option<Arc<Engine>>>,
    reopen: Option<Reopen>,
    reopens: AtomicU64,
    /// Why the last open failed, while the engine is out of service.
    open_error: Mutex<Option<String>>,
    wake: Notify,
}

impl EngineSlot {
    /// A slot without `reopen` keeps a failed engine until the process restarts.
    pub fn new(engine: Engine, reopen: Option<Reopen>) -> Self {
        Self {
            current: RwLock::new(Some(Arc::new(engine))),
            reopen,
            reopens: AtomicU64::new(0),
            open_error: Mutex::new(None),
            wake: Notify::new(),
        }
    }

    /// The engine, or the reply every engine command gets while it is being reopened.
    pub fn get(&self) -> Result<Arc<Engine>, Reply> {
        self.current.read().clone().ok_or_else(|| {
            let why = match self.open_error.lock().as_deref() {
                Some(e) => format!("; the last attempt failed: {e}"),
                None => String::new(),
            };
            Reply::error(
                "STORAGE",
                format!(
                    "the engine is being reopened after a storage fault: nothing is served \
                     until it has replayed its log and rebuilt its prefilter (INFO \
                     engine_state); retry later{why}"
                ),
            )
        })
    }

    /// Held while a command uses `engine`: when it ends, however it ends (a panic
    /// included), wakes the reopener if the command left the engine failed.
    pub fn watch<'a>(&'a self, engine: &'a Engine) -> WakeOnFailure<'a> {
        WakeOnFailure { slot: self, engine }
    }

    pub fn state(&self) -> EngineState {
        match self.current.read().as_ref() {
            None => EngineState::Reopening,
            Some(engine) if engine.is_failed() => EngineState::RefusingWrites,
            Some(_) => EngineState::Serving,
        }
    }

    /// How many times the engine was reopened after a fault.
    pub fn reopens(&self) -> u64 {
        self.reopens.load(Ordering::Relaxed)
    }

    /// Why the last attempt to open the engine failed, while it is out of service.
    pub fn open_error(&self) -> Option<String> {
        self.open_error.lock().clone()
    }

    /// Reopens the engine after each fault, for as long as the server runs. Returns at once
    /// for a slot without [`Reopen`].
    pub async fn reopen_after_faults(&self) {
        let Some(reopen) = &self.reopen else {
            return;
        };
        let mut last: Option<Instant> = None;
        let mut spacing = Duration::ZERO;
        loop {
            self.wake.notified().await;
            if self.state() != EngineState::RefusingWrites {
                continue;
            }
            tracing::warn!("storage fault: writes are refused until the engine is reopened");
            spacing = match last {
                Some(at) if at.elapsed() < CALM => (spacing * 2).clamp(SPACING_FIRST, SPACING_MAX),
                _ => Duration::ZERO,
            };
            tokio::time::sleep(spacing).await;
            self.reopen(reopen).await;
            last = Some(Instant::now());
        }
    }

    async fn reopen(&self, reopen: &Reopen) {
        let mut backoff = Backoff::new();
        loop {
            let (dir, config) = (reopen.dir.clone(), reopen.config.clone());
            match tokio::task::spawn_blocking(move || storage_ready(&dir, &config)).await {
                Ok(Ok(())) => break,
                Ok(Err(e)) => tracing::debug!(error = %e, "storage still failing"),
                Err(e) => tracing::warn!(error = %e, "storage check panicked"),
            }
            backoff.pause().await;
        }

        tracing::warn!("storage works again: reopening the engine");
        let Some(mut old) = self.current.write().take() else {
            return;
        };
        // Requests that took the engine before it left the slot finish on it (their writes
        // are refused); the database closes with the last of them.
        let engine = loop {
            match Arc::try_unwrap(old) {
                Ok(engine) => break engine,
                Err(still_used) => {
                    old = still_used;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        if let Err(e) = tokio::task::spawn_blocking(move || drop(engine)).await {
            tracing::error!(error = %e, "closing the failed engine panicked");
        }

        let mut backoff = Backoff::new();
        loop {
            let Reopen { dir, config } = reopen.clone();
            let error = match tokio::task::spawn_blocking(move || Engine::open(&dir, config)).await
            {
                Ok(Ok(engine)) => {
                    let serials = engine.stats().prefilter_fingerprints;
                    // Counted before the engine is back, so whoever sees it serving sees
                    // the reopen counted.
                    self.reopens.fetch_add(1, Ordering::Relaxed);
                    *self.open_error.lock() = None;
                    *self.current.write() = Some(Arc::new(engine));
                    tracing::warn!(serials, "engine reopened; writes are taken again");
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("the open panicked: {e}"),
            };
            tracing::error!(error = %error, retry_in = ?backoff.0, "reopen failed");
            *self.open_error.lock() = Some(error);
            backoff.pause().await;
        }
    }
}

/// See [`EngineSlot::watch`].
pub struct WakeOnFailure<'a> {
    slot: &'a EngineSlot,
    engine: &'a Engine,
}

impl Drop for WakeOnFailure<'_> {
    fn drop(&mut self) {
        if self.engine.is_failed() && self.slot.reopen.is_some() {
            self.slot.wake.notify_one();
        }
    }
}

/// Whether the data directory looks able to take an open: a small synced write goes
/// through, and its file system has room for the memtables the open may flush plus
/// [`OPEN_MARGIN_BYTES`]. (A disk with 4 KiB free would pass the write and fail the open.)
fn storage_ready(dir: &Path, config: &EngineConfig) -> std::io::Result<()> {
    probe_writable(dir)?;
    let needed = (config.rocks.write_buffer_bytes as u64)
        .saturating_mul(crate::store::rocks::WRITE_BUFFERS_MAX as u64)
        .saturating_add(OPEN_MARGIN_BYTES);
    let free = crate::store::available_bytes(dir)?;
    if free < needed {
        return Err(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!(
                "{free} bytes free in {}, an open needs {needed}",
                dir.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_is_ready_only_with_room_for_an_open() {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig::default();
        storage_ready(dir.path(), &config).expect("a temporary directory has room");
        assert!(
            !dir.path().join("PROBE.tmp").exists(),
            "the probe is removed"
        );
        // Memtables larger than any disk: the open could not flush them.
        let mut huge = config.clone();
        huge.rocks.write_buffer_bytes = usize::MAX / 8;
        let err = storage_ready(dir.path(), &huge).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
        assert!(err.to_string().contains("an open needs"), "{err}");
    }
}
