//! `serialgate bench import`: a GRN sheet imported end to end (`serialgate import grn` in
//! its own process: start, open the store, read the CSV, validate, commit) against the
//! same serials received in-process as one GRN (the path `bench auto-grn` times), side by
//! side on two fresh stores, with the importer's peak memory.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Args;
use serialgate::domain::{SkuKind, UsnType};
use serialgate::engine::{GrnItem, GrnPayload};
use serialgate::outcome::GrnReply;
use serialgate::serial::SerialList;
use serialgate::{workload, AccountOptions, Engine, EngineConfig, GrnMode};

use super::bench::{po_payload, rate, SKU};

#[derive(Args)]
pub struct ImportArgs {
    /// Rows (one serial each) in the sheet.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    #[arg(long, default_value_t = 11)]
    seed: u64,
}

const ACCOUNT: &str = "bench-import";
const PO: &str = "PO-IMPORT";

pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    ensure!(args.rows > 0, "--rows must be at least 1");
    let root = tempfile::tempdir().context("creating a temporary directory")?;
    let serials = workload::serials(args.seed, 0, args.rows);
    let csv = root.path().join("grn.csv");
    write_sheet(&csv, &serials)?;
    let csv_bytes = std::fs::metadata(&csv)?.len();
    println!(
        "bench import: {} rows ({:.0} MB of CSV), {} threads",
        args.rows,
        csv_bytes as f64 / 1e6,
        rayon::current_num_threads()
    );

    // In-process: the payload built in memory, one GRN through the engine.
    let in_process = {
        let dir = root.path().join("in-process");
        let engine = prepared_store(&dir, args.rows)?;
        let payload = GrnPayload {
            grn_id: "GRN-IMPORT".into(),
            reference_code: PO.into(),
            invoice_number: None,
            items: vec![GrnItem {
                sku: Some(SKU.into()),
                serials: Some(serials),
                bin: Some("A-01".into()),
                ..GrnItem::default()
            }],
        };
        let started = Instant::now();
        let reply = engine.receive(ACCOUNT, &payload, GrnMode::Commit)?;
        let elapsed = started.elapsed();
        ensure!(
            matches!(reply, GrnReply::Committed { .. }),
            "the in-process GRN was not committed: {:?}",
            reply.errors().first()
        );
        elapsed
    };
    println!(
        "  in-process GRN           {:>8.2} s  {:>12.0} serials/s",
        in_process.as_secs_f64(),
        rate(args.rows, in_process)
    );

    // The importer, as a user runs it.
    let dir = root.path().join("import");
    drop(prepared_store(&dir, args.rows)?);
    let (elapsed, peak_kb, summary) = run_import(&dir, &csv)?;
    println!(
        "  serialgate import grn    {:>8.2} s  {:>12.0} rows/s  (process start to exit)",
        elapsed.as_secs_f64(),
        rate(args.rows, elapsed)
    );
    println!("    its summary: {}", summary.trim());
    println!(
        "  import / in-process rate {:>8.2}x",
        in_process.as_secs_f64() / elapsed.as_secs_f64()
    );
    println!(
        "  importer peak RSS        {:>8.0} MB  ({:.0} B per row; the CSV is {:.0} B per row)",
        peak_kb as f64 / 1024.0,
        peak_kb as f64 * 1024.0 / args.rows as f64,
        csv_bytes as f64 / args.rows as f64
    );
    Ok(())
}

fn write_sheet(path: &Path, serials: &SerialList) -> anyhow::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    out.write_all(b"sku,serial,condition,bin\n")?;
    for serial in serials.iter() {
        out.write_all(SKU.as_bytes())?;
        out.write_all(b",")?;
        out.write_all(serial)?;
        out.write_all(b",good,A-01\n")?;
    }
    out.flush()?;
    Ok(())
}

fn prepared_store(dir: &Path, rows: usize) -> anyhow::Result<Engine> {
    let engine = Engine::open(dir, EngineConfig::default())?;
    engine.create_account(ACCOUNT, AccountOptions::new(UsnType::SellerAtGrn))?;
    engine.set_skus(ACCOUNT, SkuKind::Serialized, &[SKU.to_string()])?;
    engine.create_po(ACCOUNT, po_payload(PO, rows, None))?;
    Ok(engine)
}

/// Runs `serialgate import grn` on `csv` and returns its wall time, peak RSS (kB, read
/// from /proc while it runs) and the summary it printed.
fn run_import(dir: &Path, csv: &Path) -> anyhow::Result<(Duration, u64, String)> {
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["import", "grn", ACCOUNT, "--grn", "GRN-IMPORT", "--po", PO])
        .arg("--data")
        .arg(dir)
        .arg(csv)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting serialgate import")?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            peak_kb = peak_kb.max(vm_hwm_kb(&text));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    if !status.success() {
        bail!("serialgate import failed: {status}");
    }
    let mut summary = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut summary)?;
    }
    Ok((elapsed, peak_kb, summary))
}

fn vm_hwm_kb(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
