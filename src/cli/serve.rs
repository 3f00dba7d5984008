//! `serialgate serve`: the engine on its embedded RocksDB behind the RESP line protocol.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serialgate::protocol::Limits;
use serialgate::server::{self, Reopen, ServerConfig};
use serialgate::{Engine, EngineConfig};

#[derive(Args)]
pub struct ServeArgs {
    /// Data directory (created if missing).
    #[arg(long, default_value = "./serialgate-data")]
    data: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: String,
    /// Password every client must AUTH with; also read from SERIALGATE_PASSWORD. Without
    /// one, only loopback clients are served.
    #[arg(long, env = "SERIALGATE_PASSWORD", hide_env_values = true)]
    requirepass: Option<String>,
    /// Also serve Prometheus metrics (text exposition, any HTTP path) on this address.
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Connections served at once.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Seconds of inactivity after which a connection is closed (0: never).
    #[arg(long, default_value_t = 300)]
    idle_timeout_secs: u64,
    /// Seconds within which a request must arrive whole once its first byte has (0: no
    /// deadline). Bounds how long a trickling client holds a connection.
    #[arg(long, default_value_t = 300)]
    request_timeout_secs: u64,
    /// Longest inline command line, in bytes.
    #[arg(long, default_value_t = Limits::default().inline_bytes_max)]
    max_inline_bytes: usize,
    /// Longest bulk argument (e.g. one GRN's JSON), in bytes.
    #[arg(long, default_value_t = Limits::default().bulk_bytes_max)]
    max_bulk_bytes: usize,
    /// Most arguments in one request.
    #[arg(long, default_value_t = Limits::default().args_max)]
    max_args: usize,
    /// Most bytes one request may occupy; this bounds the memory a connection holds.
    #[arg(long, default_value_t = Limits::default().request_bytes_max)]
    max_request_bytes: usize,
    /// Most units (serials plus quantities) in one GRN.
    #[arg(long, default_value_t = EngineConfig::default().grn_units_max)]
    max_grn_units: u64,
    /// A clean stop leaves a snapshot of the prefilter for a fast restart when it holds at
    /// least this many serials (below that, rebuilding it at start is quick).
    #[arg(long, default_value_t = EngineConfig::default().prefilter_snapshot_min)]
    prefilter_snapshot_min: usize,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let engine_config = EngineConfig {
        grn_units_max: args.max_grn_units,
        prefilter_snapshot_min: args.prefilter_snapshot_min,
        ..EngineConfig::default()
    };
    let reopen = Reopen {
        dir: args.data.clone(),
        config: engine_config.clone(),
    };
    let engine = Engine::open(&args.data, engine_config).map_err(|e| {
        let hint = if e.to_string().contains("lock file") {
            " (another serialgate process is using it)"
        } else {
            ""
        };
        anyhow::anyhow!("opening data directory {}{hint}: {e}", args.data.display())
    })?;
    let config = ServerConfig {
        requirepass: args.requirepass.filter(|p| !p.is_empty()),
        limits: Limits {
            inline_bytes_max: args.max_inline_bytes,
            bulk_bytes_max: args.max_bulk_bytes,
            args_max: args.max_args,
            request_bytes_max: args.max_request_bytes,
        },
        connections_max: args.max_connections.max(1),
        idle_timeout: (args.idle_timeout_secs > 0)
            .then(|| Duration::from_secs(args.idle_timeout_secs)),
        request_timeout: (args.request_timeout_secs > 0)
            .then(|| Duration::from_secs(args.request_timeout_secs)),
        reopen: Some(reopen),
        ..ServerConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let metrics = match &args.metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("metrics listener on {addr}"))?,
            ),
            None => None,
        };
        let addr = listener.local_addr()?;
        // Tests and scripts read this first line to learn the port (with --listen …:0).
        println!("serialgate listening on {addr}");
        if let Some(m) = &metrics {
            println!("serialgate metrics on {}", m.local_addr()?);
        }
        tracing::info!(%addr, data = %args.data.display(), "serving");
        server::serve(listener, metrics, engine, config, shutdown_signal()).await?;
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return interrupt.await.unwrap_or(()),
            };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
