//! Prometheus text exposition of the server's counters on an optional second listener.
//! A minimal HTTP/1.1 responder: every request gets the metrics, then the connection closes
//! (a crate would add a whole HTTP stack for one fixed response).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::Shared;

/// Bytes of request read (and ignored) before answering.
const REQUEST_BYTES_MAX: usize = 8 << 10;

pub(super) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; REQUEST_BYTES_MAX];
            let mut read = 0;
            // Read until the end of the request head, a full buffer, or 5 s.
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while read < buf.len() {
                    match socket.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read += n,
                    }
                    if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            })
            .await;
            let body = render(&shared);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
        });
    }
}

pub(super) fn render(shared: &Shared) -> String {
    let c = &shared.counters;
    // While the engine is being reopened its figures are left out, not shown as zero.
    let stats = shared.engine.get().ok().map(|engine| engine.stats());
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = write!(
            out,
            "# HELP serialgate_{name} {help}\n# TYPE serialgate_{name} {kind}\nserialgate_{name} {value}\n"
        );
    };
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    metric(
        "connections_current",
        "gauge",
        "Client connections open now.",
        shared.connections_current() as u64,
    );
    metric(
        "connections_total",
        "counter",
        "Client connections accepted.",
        load(&c.connections_total),
    );
    metric(
        "connections_rejected_total",
        "counter",
        "Connections refused (limit or not loopback).",
        load(&c.connections_rejected),
    );
    metric(
        "commands_total",
        "counter",
        "Commands processed.",
        load(&c.commands_total),
    );
    metric(
        "error_replies_total",
        "counter",
        "Error replies sent.",
        load(&c.errors_total),
    );
    metric(
        "grns_committed_total",
        "counter",
        "GRNs committed (replays not counted).",
        load(&c.grns_committed),
    );
    metric(
        "grns_rejected_total",
        "counter",
        "GRNs rejected by validation.",
        load(&c.grns_rejected),
    );
    metric(
        "units_committed_total",
        "counter",
        "Units received by committed GRNs.",
        load(&c.units_committed),
    );
    metric(
        "engine_writable",
        "gauge",
        "1 while the engine takes writes; 0 after a storage fault until it is reopened.",
        u64::from(shared.engine.state() == super::EngineState::Serving),
    );
    metric(
        "engine_reopens_total",
        "counter",
        "Reopens of the engine after a storage fault.",
        shared.engine.reopens(),
    );
    if let Some(stats) = stats {
        metric(
            "prefilter_fingerprints",
            "gauge",
            "Distinct serial fingerprints in the prefilter.",
            stats.prefilter_fingerprints as u64,
        );
        metric(
            "prefilter_bytes",
            "gauge",
            "Memory held by the prefilter.",
            stats.prefilter_bytes as u64,
        );
        metric(
            "sst_files_bytes",
            "gauge",
            "Bytes of SST files on disk.",
            stats.store.sst_files_bytes,
        );
        metric(
            "level0_files",
            "gauge",
            "SST files in level 0.",
            stats.store.level0_files,
        );
    }
    out
}
