//! The engine a server serves, and its reopening once a storage fault is over.
//!
//! After a write whose outcome is unknown, or a failed sync, the engine refuses every write:
//! its prefilter may miss a serial that reached the store (`Engine::write`). It still
//! answers reads. Only a reopen makes writing safe again, because the open replays the WAL
//! and rebuilds the prefilter from what the store really holds.
//!
//! A server given a [`Reopen`] does that by itself. The request that leaves the engine
//! failed wakes the reopener. The reopener waits until the data directory takes a small
//! synced write again (a full disk has room, a failing device answers). Then it takes the
//! engine out of service, lets the requests still using it finish, closes it and opens it
//! again, retrying with backoff if the open fails. While the engine is out of service,
//! every engine command answers `-STORAGE`, saying it is being reopened; before that,
//! writes answer `-STORAGE` and reads are served.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
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

/// First and longest pause between two checks of the storage, or two failed opens.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

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
    wake: Notify,
}

impl EngineSlot {
    /// A slot without `reopen` keeps a failed engine until the process restarts.
    pub fn new(engine: Engine, reopen: Option<Reopen>) -> Self {
        Self {
            current: RwLock::new(Some(Arc::new(engine))),
            reopen,
            reopens: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    /// The engine, or the reply every engine command gets while it is being reopened.
    pub fn get(&self) -> Result<Arc<Engine>, Reply> {
        self.current.read().clone().ok_or_else(|| {
            Reply::error(
                "STORAGE",
                "the engine is being reopened after a storage fault: nothing is served until \
                 it has replayed its log and rebuilt its prefilter; retry shortly",
            )
        })
    }

    /// Called after every engine command: wakes the reopener if the command left the
    /// engine failed.
    pub fn after_command(&self, engine: &Engine) {
        if engine.is_failed() && self.reopen.is_some() {
            self.wake.notify_one();
        }
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

    /// Reopens the engine after each fault, for as long as the server runs. Returns at once
    /// for a slot without [`Reopen`].
    pub async fn reopen_after_faults(&self) {
        let Some(reopen) = &self.reopen else {
            return;
        };
        loop {
            self.wake.notified().await;
            if self.state() == EngineState::RefusingWrites {
                self.reopen(reopen).await;
            }
        }
    }

    async fn reopen(&self, reopen: &Reopen) {
        tracing::warn!("storage fault: writes are refused until the engine is reopened");
        let mut pause = RETRY_FIRST;
        loop {
            let dir = reopen.dir.clone();
            match tokio::task::spawn_blocking(move || probe_writable(&dir)).await {
                Ok(Ok(())) => break,
                Ok(Err(e)) => tracing::debug!(error = %e, "storage still failing"),
                Err(e) => tracing::warn!(error = %e, "storage check panicked"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
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

        let mut pause = RETRY_FIRST;
        loop {
            let Reopen { dir, config } = reopen.clone();
            match tokio::task::spawn_blocking(move || Engine::open(&dir, config)).await {
                Ok(Ok(engine)) => {
                    let serials = engine.stats().prefilter_fingerprints;
                    *self.current.write() = Some(Arc::new(engine));
                    self.reopens.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(serials, "engine reopened; writes are taken again");
                    return;
                }
                Ok(Err(e)) => tracing::error!(error = %e, retry_in = ?pause, "reopen failed"),
                Err(e) => tracing::error!(error = %e, retry_in = ?pause, "reopen panicked"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }
}
