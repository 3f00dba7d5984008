//! `serialgate bench scale`: W1-style GRNs of fresh serials while the index grows (1M →
//! 10M → 100M by default), with throughput and memory at each size, then the time a
//! server takes from start to serving on the full index: after a clean stop, and after a
//! `kill -9`.

use std::io::Write as _;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Args;
use serialgate::domain::{SkuKind, UsnType};
use serialgate::{workload, AccountOptions, Engine, EngineConfig, GrnMode};

use super::measure::Processes;
use super::plot;
use super::report::{replace_section, thousands, today};
use super::servers::ServeProcess;
use crate::cli::bench::{batches, grn_payload, po_payload, progress, SKU};

const START: &str = "<!-- scale-bench:start -->";
const END: &str = "<!-- scale-bench:end -->";
const ACCOUNT: &str = "scale";
/// Throughput "at" an index size is measured over this many serials received from there:
/// single GRNs swing by 2× with the compaction cycle, so each size gets the same 10M-serial
/// share of work.
const WINDOW: usize = 10_000_000;

#[derive(Args)]
pub struct ScaleArgs {
    /// Grow the index to this many serials.
    #[arg(long, default_value_t = 100_000_000)]
    to: usize,
    /// Serials per GRN.
    #[arg(long, default_value_t = 500_000)]
    grn_size: usize,
    /// Index sizes to report (each ≤ --to).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000_000usize, 10_000_000, 100_000_000])]
    at: Vec<usize>,
    /// Data directory (default: a temporary one, removed afterwards).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Markdown file whose scale section is replaced with the results.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    out: PathBuf,
    /// Directory the SVG plots are written to.
    #[arg(long, default_value = "docs/plots")]
    plots: PathBuf,
    #[arg(long, default_value_t = 13)]
    seed: u64,
}

/// One GRN of the run.
struct Step {
    index_before: usize,
    serials: usize,
    busy: Duration,
    rss: u64,
}

pub fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    ensure!(
        args.to > 0 && args.grn_size > 0,
        "--to and --grn-size must be positive"
    );
    let temp;
    let root = match &args.data {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("creating a temporary data directory")?;
            temp.path().to_path_buf()
        }
    };
    let dir = root.join("scale");
    let _ = std::fs::remove_dir_all(&dir);
    let engine = Engine::open(&dir, EngineConfig::default())?;
    engine.create_account(ACCOUNT, AccountOptions::new(UsnType::SellerAtGrn))?;
    engine.set_skus(ACCOUNT, SkuKind::Serialized, &[SKU.to_string()])?;
    println!(
        "bench scale: GRNs of {} fresh serials until the index holds {}",
        args.grn_size, args.to
    );
    let mut steps = Vec::new();
    let mut index = 0;
    let bar = progress(args.to, "scale");
    for (k, n) in batches(args.to, args.grn_size) {
        let reference = format!("S-{k}");
        engine.create_po(ACCOUNT, po_payload(&reference, n, None))?;
        let serials = workload::serials(args.seed, k, n);
        let payload = grn_payload(reference.clone(), reference, serials);
        let started = Instant::now();
        let reply = engine.receive(ACCOUNT, &payload, GrnMode::Commit)?;
        let busy = started.elapsed();
        ensure!(
            reply.is_committed(),
            "GRN {k}: {:?}",
            reply.errors().first()
        );
        steps.push(Step {
            index_before: index,
            serials: n,
            busy,
            rss: Processes::Me.pss_bytes(),
        });
        index += n;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    let stats = engine.stats();
    println!(
        "index: {index} serials, prefilter {:.0} MiB, {:.1} GiB of SST files",
        stats.prefilter_bytes as f64 / (1 << 20) as f64,
        stats.store.sst_files_bytes as f64 / (1 << 30) as f64
    );
    let disk_per_serial = stats.store.sst_files_bytes as f64 / index as f64;
    drop(engine);

    // Restart to serving: a server on the full index, until it answers PING.
    let (server, clean) = restart(&dir)?;
    let server_pss = Processes::Tree(server.pid()).pss_bytes();
    server.kill9();
    let (server, after_kill) = restart(&dir)?;
    drop(server);
    println!(
        "restart to serving: {:.2} s after a clean stop, {:.2} s after kill -9; server memory \
         on the full index {:.0} MiB",
        clean.as_secs_f64(),
        after_kill.as_secs_f64(),
        server_pss as f64 / (1 << 20) as f64
    );

    let mut rows = Vec::new();
    for &at in args.at.iter().filter(|&&at| at <= args.to) {
        let window: Vec<&Step> = if at + WINDOW <= args.to && at < args.to {
            steps
                .iter()
                .filter(|s| s.index_before >= at && s.index_before < at + WINDOW)
                .collect()
        } else {
            steps
                .iter()
                .filter(|s| s.index_before + s.serials + WINDOW > args.to)
                .collect()
        };
        let serials: usize = window.iter().map(|s| s.serials).sum();
        let busy: Duration = window.iter().map(|s| s.busy).sum();
        let rss = window.iter().map(|s| s.rss).max().unwrap_or(0);
        let rate = serials as f64 / busy.as_secs_f64().max(1e-9);
        println!(
            "at {at:>11} serials: {rate:>10.0} serials/s, process memory {:.0} MiB",
            rss as f64 / (1 << 20) as f64
        );
        rows.push((at, rate, rss));
    }
    write(
        &args,
        &steps,
        &rows,
        clean,
        after_kill,
        server_pss,
        disk_per_serial,
    )?;
    write_steps(&args.plots.join("scale-steps.csv"), &steps)
}

/// Every GRN of the run, so the windows above can be recomputed any other way.
fn write_steps(path: &std::path::Path, steps: &[Step]) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_path(path)?;
    out.write_record(["index_before", "serials", "busy_us", "pss_bytes"])?;
    for s in steps {
        out.write_record([
            s.index_before.to_string(),
            s.serials.to_string(),
            s.busy.as_micros().to_string(),
            s.rss.to_string(),
        ])?;
    }
    out.flush()?;
    Ok(())
}

/// A server started on `dir`; the time until it answered PING.
fn restart(dir: &std::path::Path) -> anyhow::Result<(ServeProcess, Duration)> {
    let started = Instant::now();
    let server = ServeProcess::start(dir)?;
    let mut stream = TcpStream::connect(&server.addr)?;
    stream.write_all(b"PING\r\n")?;
    let mut reply = [0u8; 7];
    std::io::Read::read_exact(&mut stream, &mut reply)?;
    ensure!(
        &reply == b"+PONG\r\n",
        "PING answered {:?}",
        reply.escape_ascii()
    );
    Ok((server, started.elapsed()))
}

fn write(
    args: &ScaleArgs,
    steps: &[Step],
    rows: &[(usize, f64, u64)],
    clean: Duration,
    after_kill: Duration,
    server_pss: u64,
    disk_per_serial: f64,
) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    std::fs::create_dir_all(&args.plots)?;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let first = rows.first().map_or(1.0, |r| r.1);
    let mut md = String::new();
    let _ = writeln!(md, "{START}");
    let _ = writeln!(
        md,
        "Written by `tools/bench-peers --scale` (`serialgate bench scale --to {} --grn-size {}`) \
         on {}, {} cores. The rate at a size is over the {} serials received from there (at \
         the last size: the {} received up to it); every GRN is in `plots/scale-steps.csv`.\n",
        args.to,
        args.grn_size,
        today(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        thousands(WINDOW as f64),
        thousands(WINDOW as f64),
    );
    let _ = writeln!(
        md,
        "| index size | serials/s | × at {} | process memory (PSS) |",
        thousands(rows.first().map_or(0, |r| r.0) as f64)
    );
    let _ = writeln!(md, "|---|---|---|---|");
    for (at, rate, rss) in rows {
        let _ = writeln!(
            md,
            "| {} | {} | **{:.2}×** | {:.0} MiB |",
            thousands(*at as f64),
            thousands(*rate),
            rate / first,
            mib(*rss)
        );
    }
    let _ = writeln!(
        md,
        "\nOn disk: {disk_per_serial:.1} bytes/serial of SST files. Restart to serving on the \
         full index (`serialgate serve` started until it answers `PING`): **{:.2} s** after a \
         clean stop, **{:.2} s** after `kill -9`; the server then holds {:.0} MiB.\n",
        clean.as_secs_f64(),
        after_kill.as_secs_f64(),
        mib(server_pss)
    );
    let _ = writeln!(
        md,
        "![throughput against index size](plots/scale-throughput.svg)\n\n![memory against index size](plots/scale-memory.svg)"
    );
    let _ = writeln!(md, "{END}");
    let rate_points: Vec<(f64, f64)> = steps
        .iter()
        .map(|s| {
            (
                (s.index_before + s.serials) as f64,
                s.serials as f64 / s.busy.as_secs_f64().max(1e-9),
            )
        })
        .collect();
    plot::line(
        &args.plots.join("scale-throughput.svg"),
        "Serials/s of each GRN against the index size",
        "serials in the index",
        "serials/s",
        &rate_points,
    )?;
    let memory_points: Vec<(f64, f64)> = steps
        .iter()
        .map(|s| ((s.index_before + s.serials) as f64, mib(s.rss)))
        .collect();
    plot::line(
        &args.plots.join("scale-memory.svg"),
        "Process memory (PSS, MiB) against the index size",
        "serials in the index",
        "MiB",
        &memory_points,
    )?;
    replace_section(
        &args.out,
        START,
        END,
        &md,
        "## Scale: 1M to 100M serials\n\n",
    )
}
