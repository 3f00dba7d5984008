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
    /// Import POs or a GRN from a sheet (CSV, Excel, ODS), all or nothing.
    #[command(subcommand)]
    Import(cli::import::ImportCommand),
    /// Barcode labels (ZPL or a PDF sheet) for a PO's, a GRN's, a sheet's or new serials.
    Labels(cli::labels::LabelsArgs),
    /// Kill -9 the server at random moments under GRN load, restart, check an oracle.
    CrashLoop(cli::crash_loop::CrashLoopArgs),
    /// A tour: each USN type over the protocol on a temporary store, then a bulk GRN.
    Demo(cli::demo::DemoArgs),
    /// Reports: a PO's USN report (CSV, XLSX), a serial's record, a PO's reconciliation.
    #[command(subcommand)]
    Report(cli::report::ReportCommand),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr on a full disk) is dropped. Reporting
        // that failure goes to stderr too, with `eprintln!`, which panics when it fails:
        // that panicked the request that logged, turning a full disk into failed reads.
        .log_internal_errors(false)
        .init();
    let result = match Args::parse().command {
        Command::Serve(args) => cli::serve::run(args),
        Command::Bench(command) => cli::bench::run(command),
        Command::Check(args) => cli::check::run(args),
        Command::Import(command) => cli::import::run(command),
        Command::Demo(args) => cli::demo::run(args),
        Command::CrashLoop(args) => cli::crash_loop::run(args),
        Command::Labels(args) => cli::labels::run(args),
        Command::Report(command) => cli::report::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain on one line, without a backtrace: these are users' errors.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
