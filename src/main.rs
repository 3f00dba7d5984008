//! The `serialgate` command line. `anyhow` lives here at the edge; the library has typed
//! errors.

mod cli;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "serialgate",
    version,
    about = "High-throughput serial-number validation for goods receipt"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the engine over the RESP line protocol (redis-cli and Redis clients work).
    Serve(cli::serve::ServeArgs),
    /// Measure the engine on its real path (embedded RocksDB, durable commits).
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
    /// Verify accounts of a stopped server's data directory against the engine's invariants.
    Check(cli::check::CheckArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Args::parse().command {
        Command::Serve(args) => cli::serve::run(args),
        Command::Bench(command) => cli::bench::run(command),
        Command::Check(args) => cli::check::run(args),
    }
}
