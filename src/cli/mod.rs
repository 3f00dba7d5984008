//! Subcommands of the `serialgate` binary. Each calls the library's engine; none holds
//! workflow rules of its own.

pub mod bench;
mod bench_import;
mod bench_peers;
mod bench_usn;
mod bench_wire;
pub mod check;
pub mod crash_loop;
pub mod demo;
pub mod import;
pub mod labels;
pub mod report;
pub mod serve;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serialgate::client::Target;

/// Where a tool's commands go: an engine embedded on a data directory (no server may hold
/// it), or a running server.
#[derive(Args, Clone)]
pub struct TargetArgs {
    /// Data directory to open directly (when no server runs on it).
    #[arg(long, default_value = "./serialgate-data", conflicts_with = "server")]
    data: PathBuf,
    /// A running server, `host:port`; commands go through the line protocol.
    #[arg(long)]
    server: Option<String>,
    /// The server's password; also read from SERIALGATE_PASSWORD.
    #[arg(long, env = "SERIALGATE_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

impl TargetArgs {
    pub fn open(&self) -> anyhow::Result<Target> {
        match &self.server {
            Some(addr) => Target::connect(addr, self.password.as_deref().filter(|p| !p.is_empty()))
                .with_context(|| format!("connecting to {addr}")),
            None => Target::open_local(&self.data)
                .with_context(|| format!("opening {}", self.data.display())),
        }
    }
}
