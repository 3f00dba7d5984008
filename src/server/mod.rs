//! The TCP server: accepts connections within limits, authenticates, and hands each
//! request to `commands`, which calls the engine. Protocol bytes live in `protocol`; the
//! server never builds a storage key or decides a USN rule.

mod commands;
mod connection;
mod harness;
mod metrics;
mod slot;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use harness::Harness;
pub use slot::{EngineSlot, EngineState, Reopen};

use crate::engine::Engine;
use crate::protocol::Limits;

/// Everything configurable about the server, with documented defaults (docs/protocol.md).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Without a password only loopback clients are served.
    pub requirepass: Option<String>,
    pub limits: Limits,
    /// Connections served at once; one more is answered with an error and closed.
    pub connections_max: usize,
    /// A connection idle this long is closed. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A request must arrive whole within this long of its first byte; a client trickling
    /// one (slowloris) is answered `-ERR` and closed. `None`: no deadline.
    pub request_timeout: Option<Duration>,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// How to open the engine again once a storage fault is over (see `slot`). `None`: a
    /// failed engine refuses writes until the process restarts.
    pub reopen: Option<Reopen>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            requirepass: None,
            limits: Limits::default(),
            connections_max: 10_000,
            idle_timeout: Some(Duration::from_secs(300)),
            request_timeout: Some(Duration::from_secs(300)),
            shutdown_grace: Duration::from_secs(60),
            reopen: None,
        }
    }
}

/// Counters shown by `INFO`.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections_total: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub commands_total: AtomicU64,
    pub errors_total: AtomicU64,
    pub grns_committed: AtomicU64,
    pub grns_rejected: AtomicU64,
    pub units_committed: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// State shared by every connection.
pub struct Shared {
    pub engine: EngineSlot,
    pub config: ServerConfig,
    pub counters: Counters,
    started: Instant,
    connections: Arc<Semaphore>,
    local_addr: SocketAddr,
}

impl Shared {
    fn new(engine: Engine, config: ServerConfig, local_addr: SocketAddr) -> Self {
        Shared {
            engine: EngineSlot::new(engine, config.reopen.clone()),
            connections: Arc::new(Semaphore::new(config.connections_max)),
            config,
            counters: Counters::default(),
            started: Instant::now(),
            local_addr,
        }
    }

    fn connections_current(&self) -> usize {
        self.config.connections_max - self.connections.available_permits()
    }
}

/// Serves `listener` (and Prometheus metrics on `metrics_listener`) until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish (up to `shutdown_grace`) and returns.
pub async fn serve(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    engine: Engine,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared::new(engine, config, listener.local_addr()?));
    if let Some(metrics_listener) = metrics_listener {
        tokio::spawn(metrics::serve(metrics_listener, shared.clone()));
    }
    let reopener = {
        let shared = shared.clone();
        tokio::spawn(async move { shared.engine.reopen_after_faults().await })
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                Counters::add(&shared.counters.connections_total, 1);
                let shared = shared.clone();
                let stop = stop_rx.clone();
                tasks.spawn(connection::handle(shared, socket, peer, stop));
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tracing::info!(
        connections = tasks.len(),
        "shutting down: waiting for in-flight requests"
    );
    let _ = stop_tx.send(true);
    let grace = shared.config.shutdown_grace;
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("shutdown grace period over; closing remaining connections");
        tasks.abort_all();
    }
    reopener.abort();
    let _ = reopener.await;
    Ok(())
}

/// Compares secrets in time independent of where they differ.
/// (Ten lines do not justify a dependency.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn secret_comparison() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret!"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
