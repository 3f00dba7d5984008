//! `serialgate bench …`: measurements on the real path (embedded RocksDB, synced commits).
//! Figures go to docs/BENCHMARKS.md; nothing here asserts a speed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serialgate::domain::{SkuKind, UsnType};
use serialgate::engine::{GrnItem, GrnPayload, PoItem, PoPayload};
use serialgate::outcome::{GrnReply, OutcomeCode, PoReply};
use serialgate::serial::{serial_hash, SerialList};
use serialgate::store::keys;
use serialgate::store::rocks::PlainRocks;
use serialgate::{workload, AccountOptions, Engine, EngineConfig, GrnMode};

pub use super::bench_usn::UsnTypesArgs;
pub use super::bench_wire::{GrnClientsArgs, WireGrnArgs};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Type 2 auto-GRNs of fresh serials onto a preloaded index; prints serials/s for
    /// validate + durable commit.
    AutoGrn(AutoGrnArgs),
    /// The same auto-GRNs sent to a running server over the line protocol.
    WireGrn(WireGrnArgs),
    /// Many concurrent clients each committing small GRNs to a running server; prints
    /// serials/s and latency percentiles.
    GrnClients(GrnClientsArgs),
    /// GRNs of all five USN types side by side, rates relative to type 2.
    UsnTypes(UsnTypesArgs),
    /// `serialgate import grn` of a CSV end to end against the same GRN in-process.
    Import(super::bench_import::ImportArgs),
    /// serialgate side by side with RocksDB alone, PostgreSQL 15 and Redis 7 on the same
    /// serials (workloads W1–W5); writes docs/BENCHMARKS.md's table and SVG plots.
    Peers(super::bench_peers::PeersArgs),
    /// GRNs while the index grows to 100M serials: throughput, memory, restart time.
    Scale(super::bench_peers::ScaleArgs),
}

#[derive(Args)]
pub struct AutoGrnArgs {
    /// Fresh serials to receive (timed).
    #[arg(long, default_value_t = 1_000_000)]
    serials: usize,
    /// Serials received before the timed part.
    #[arg(long, default_value_t = 1_000_000)]
    preload: usize,
    /// Percentage of the fresh serials replaced by already received ones. Each GRN holding
    /// duplicates is rejected with every duplicate reported, then resubmitted without them,
    /// as an ingestion job would; both attempts are timed.
    #[arg(long, default_value_t = 0.0)]
    dup_pct: f64,
    /// Receive every batch twice, side by side: fresh, then with --dup-pct duplicates; print
    /// both rates and their ratio.
    #[arg(long, requires = "dup_pct")]
    paired: bool,
    /// Serials per GRN (each GRN receives one PO in full).
    #[arg(long, default_value_t = 1_000_000)]
    grn_size: usize,
    /// Data directory (default: a temporary one, removed afterwards).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Commits with at least this many entries are ingested as SST files, smaller ones go
    /// through the WAL (default: the engine's).
    #[arg(long)]
    ingest_min_entries: Option<usize>,
    /// Also write the same keys with plain RocksDB synced WriteBatch puts and print the ratio.
    #[arg(long)]
    baseline: bool,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::AutoGrn(args) => auto_grn(args),
        BenchCommand::WireGrn(args) => super::bench_wire::wire_grn(args),
        BenchCommand::GrnClients(args) => super::bench_wire::grn_clients(args),
        BenchCommand::UsnTypes(args) => super::bench_usn::usn_types(args),
        BenchCommand::Import(args) => super::bench_import::import(args),
        BenchCommand::Peers(args) => super::bench_peers::peers(args),
        BenchCommand::Scale(args) => super::bench_peers::scale(args),
    }
}

pub(super) const SKU: &str = "BENCH-SKU";
const FRESH_SEED_OFFSET: u64 = 0x5EED_0000_0001;

pub(super) fn progress(total: usize, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {human_pos}/{human_len} serials ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    bar
}

pub(super) fn batches(total: usize, size: usize) -> impl Iterator<Item = (u64, usize)> {
    let size = size.max(1);
    (0..total.div_ceil(size)).map(move |k| (k as u64, size.min(total - k * size)))
}

/// A one-line PO of `quantity` units of the bench SKU (type 1: with its serials).
pub(super) fn po_payload(
    reference: &str,
    quantity: usize,
    serials: Option<SerialList>,
) -> PoPayload {
    PoPayload {
        vendor_id: "BENCH-VENDOR".into(),
        reference_code: reference.into(),
        create_or_update: "I".into(),
        is_cancel: None,
        items: vec![PoItem {
            line_item_number: "1".into(),
            sku: SKU.into(),
            quantity: quantity as u64,
            serials,
        }],
    }
}

/// A one-item GRN of the bench SKU.
pub(super) fn grn_payload(grn_id: String, reference: String, serials: SerialList) -> GrnPayload {
    GrnPayload {
        grn_id,
        reference_code: reference,
        invoice_number: None,
        items: vec![GrnItem {
            sku: Some(SKU.into()),
            serials: Some(serials),
            ..GrnItem::default()
        }],
    }
}

fn create_po(
    engine: &Engine,
    account: &str,
    reference: &str,
    quantity: usize,
) -> anyhow::Result<()> {
    match engine.create_po(account, po_payload(reference, quantity, None))? {
        PoReply::Created { .. } => Ok(()),
        other => bail!("PO {reference} was not created: {other:?}"),
    }
}

pub(super) fn rate(serials: usize, elapsed: Duration) -> f64 {
    serials as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn auto_grn(args: AutoGrnArgs) -> anyhow::Result<()> {
    ensure!(
        (0.0..=50.0).contains(&args.dup_pct),
        "--dup-pct must be 0-50"
    );
    let temp;
    let root = match &args.data {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("creating a temporary data directory")?;
            temp.path().to_path_buf()
        }
    };
    let engine_dir = root.join("engine");
    let mut config = EngineConfig::default();
    if let Some(entries) = args.ingest_min_entries {
        config.rocks.ingest_min_entries = entries;
    }
    let engine = Engine::open(&engine_dir, config.clone())
        .with_context(|| format!("opening {}", engine_dir.display()))?;
    // A fresh account per run, so a data directory can hold several runs.
    let account = format!(
        "bench-{}",
        std::process::id() as u64 * 1_000_003 + args.seed
    );
    engine.create_account(&account, AccountOptions::new(UsnType::SellerAtGrn))?;
    engine.set_skus(&account, SkuKind::Serialized, &[SKU.to_string()])?;

    println!(
        "bench auto-grn: {} fresh serials onto {} preloaded, GRNs of {}, dup {}%, {} threads",
        args.serials,
        args.preload,
        args.grn_size,
        args.dup_pct,
        rayon::current_num_threads()
    );

    // Preload (untimed): the index the fresh serials are validated against.
    let keep_preload = args.dup_pct > 0.0;
    let mut preloaded: Vec<SerialList> = Vec::new();
    let bar = progress(args.preload, "preload");
    let preload_started = Instant::now();
    for (k, n) in batches(args.preload, args.grn_size) {
        let reference = format!("PRE-{k}");
        create_po(&engine, &account, &reference, n)?;
        let serials = workload::serials(args.seed, k, n);
        let payload = grn_payload(format!("GRN-PRE-{k}"), reference, serials);
        let reply = engine.receive(&account, &payload, GrnMode::Auto)?;
        ensure!(
            reply.is_committed(),
            "preload GRN {k} failed: {:?}",
            reply.errors().first()
        );
        if keep_preload {
            preloaded.extend(payload.items.into_iter().filter_map(|i| i.serials));
        }
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    println!(
        "preload: {} serials in {:.1} s ({:.0} serials/s)",
        args.preload,
        preload_started.elapsed().as_secs_f64(),
        rate(args.preload, preload_started.elapsed())
    );

    // The timed run. With --paired, every batch is received twice, side by side: once as
    // fresh serials and once with the duplicates injected, so both see the same index
    // size, compaction backlog and machine noise.
    let mut fresh = Tally::default();
    let mut dup = Tally::default();
    let bar = progress(args.serials * if args.paired { 2 } else { 1 }, "auto-grn");
    for (k, n) in batches(args.serials, args.grn_size) {
        if args.paired {
            let timed = timed_grn(
                &engine,
                &account,
                &format!("F-{k}"),
                args.seed ^ FRESH_SEED_OFFSET,
                k,
                n,
                &[],
                0.0,
            )?;
            fresh.add(&timed);
            bar.inc(n as u64);
        }
        let tally = if args.paired { &mut dup } else { &mut fresh };
        let seed = if args.paired {
            args.seed ^ FRESH_SEED_OFFSET ^ 0xD0D0
        } else {
            args.seed ^ FRESH_SEED_OFFSET
        };
        let timed = timed_grn(
            &engine,
            &account,
            &format!("R-{k}"),
            seed,
            k,
            n,
            &preloaded,
            args.dup_pct,
        )?;
        tally.add(&timed);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    let busy = if args.paired { dup.busy } else { fresh.busy };
    let committed_serials = fresh.committed + dup.committed;
    let (injected_total, reported_total) =
        (fresh.injected + dup.injected, fresh.reported + dup.reported);
    if args.paired {
        let fresh_rate = rate(args.serials, fresh.busy);
        let dup_rate = rate(args.serials, dup.busy);
        println!(
            "paired: fresh {:.0} serials/s, with {}% duplicates {:.0} serials/s (rejected pass + resubmission), ratio {:.2}x",
            fresh_rate,
            args.dup_pct,
            dup_rate,
            dup_rate / fresh_rate
        );
    }
    let serials_per_s = rate(args.serials, busy);
    println!(
        "validate+commit: {} serials in {:.2} s = {:.0} serials/s ({} committed)",
        args.serials,
        busy.as_secs_f64(),
        serials_per_s,
        committed_serials
    );
    if args.dup_pct > 0.0 {
        println!(
            "duplicates: {injected_total} injected, {reported_total} reported{}",
            if injected_total == reported_total {
                " (all)"
            } else {
                " (MISMATCH)"
            }
        );
        ensure!(
            injected_total == reported_total,
            "not every duplicate was reported"
        );
    }

    let stats = engine.stats();
    let stored = (args.preload + committed_serials).max(1);
    println!(
        "prefilter: {stored} serials as {} distinct fingerprints, {:.1} MiB, {:.2} bytes/serial",
        stats.prefilter_fingerprints,
        stats.prefilter_bytes as f64 / (1 << 20) as f64,
        stats.prefilter_bytes as f64 / stored as f64
    );
    println!(
        "disk: {:.1} MiB of SST files, {:.1} bytes/serial (L0 files: {})",
        stats.store.sst_files_bytes as f64 / (1 << 20) as f64,
        stats.store.sst_files_bytes as f64 / stored as f64,
        stats.store.level0_files
    );
    drop(engine);
    // The close left a prefilter snapshot; without it the reopen measures the rebuild from
    // the stored keys, the cost of a restart after a crash.
    let _ = std::fs::remove_file(engine_dir.join("PREFILTER.snapshot"));

    let reopen_started = Instant::now();
    let engine = Engine::open(&engine_dir, config)?;
    let reopen = reopen_started.elapsed();
    let loaded = engine.stats();
    println!(
        "reopen: prefilter of {stored} serials loaded in {:.2} s ({:.3} s per million)",
        loaded.prefilter_load_ms as f64 / 1000.0,
        loaded.prefilter_load_ms as f64 / 1000.0 / (stored as f64 / 1e6)
    );
    println!("reopen total: {:.2} s", reopen.as_secs_f64());
    drop(engine);

    if args.baseline {
        let baseline = baseline(&root, &args)?;
        let baseline_rate = rate(args.serials, baseline);
        println!(
            "baseline (plain RocksDB, synced WriteBatch of {} puts, no validation): {:.2} s = {:.0} keys/s",
            args.grn_size,
            baseline.as_secs_f64(),
            baseline_rate
        );
        println!(
            "ratio engine/baseline: {:.2}x",
            serials_per_s / baseline_rate
        );
    }
    Ok(())
}

/// What one timed GRN (and its resubmission, if rejected) did.
#[derive(Default)]
struct Tally {
    busy: Duration,
    injected: usize,
    reported: usize,
    committed: usize,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.busy += other.busy;
        self.injected += other.injected;
        self.reported += other.reported;
        self.committed += other.committed;
    }
}

/// Receives batch `k` of `n` serials as an auto-GRN of its own PO, timing only
/// `Engine::receive`. A GRN rejected for injected duplicates is resubmitted without them,
/// as an ingestion job would, and both attempts count.
#[allow(clippy::too_many_arguments)]
fn timed_grn(
    engine: &Engine,
    account: &str,
    label: &str,
    seed: u64,
    k: u64,
    n: usize,
    preloaded: &[SerialList],
    dup_pct: f64,
) -> anyhow::Result<Tally> {
    let reference = format!("RUN-{label}");
    create_po(engine, account, &reference, n)?;
    let mut serials = workload::serials(seed, k, n);
    let injected = inject_duplicates(&mut serials, preloaded, dup_pct, k);
    let payload = grn_payload(format!("GRN-{reference}"), reference.clone(), serials);
    let mut tally = Tally {
        injected: injected.len(),
        ..Tally::default()
    };
    let started = Instant::now();
    let reply = engine.receive(account, &payload, GrnMode::Auto)?;
    tally.busy += started.elapsed();
    match reply {
        GrnReply::Committed { .. } => {
            ensure!(
                injected.is_empty(),
                "GRN {label} committed despite duplicates"
            );
            tally.committed = n;
        }
        GrnReply::Rejected { errors, .. } => {
            // Duplicates are ALREADY_INWARDED; because they take no room on the line,
            // auto-GRN also reports the line as not covered (one SERIALS_REQUIRED).
            let (duplicates, others): (Vec<_>, Vec<_>) = errors
                .iter()
                .partition(|e| e.code == OutcomeCode::AlreadyInwarded);
            ensure!(
                others
                    .iter()
                    .all(|e| e.code == OutcomeCode::SerialsRequired && e.serial.is_none()),
                "unexpected rejection: {:?}",
                others.first()
            );
            ensure!(
                duplicates.len() == injected.len(),
                "GRN {label}: {} duplicates injected, {} reported",
                injected.len(),
                duplicates.len()
            );
            tally.reported = duplicates.len();
            let rejected: std::collections::HashSet<&str> = duplicates
                .iter()
                .filter_map(|e| e.serial.as_deref())
                .collect();
            let clean: SerialList = payload.items[0]
                .serials
                .as_ref()
                .map(|s| {
                    s.iter()
                        .filter(|v| !rejected.contains(std::str::from_utf8(v).unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            let kept = clean.len();
            let retry = grn_payload(format!("GRN-{reference}"), reference, clean);
            let started = Instant::now();
            let reply = engine.receive(account, &retry, GrnMode::Commit)?;
            tally.busy += started.elapsed();
            ensure!(
                reply.is_committed(),
                "resubmitted GRN {label} failed: {:?}",
                reply.errors().first()
            );
            tally.committed = kept;
        }
        GrnReply::Valid { .. } => bail!("commit answered as a check"),
    }
    Ok(tally)
}

/// Replaces `dup_pct`% of `serials` with distinct already-received serials; returns the
/// positions replaced.
fn inject_duplicates(
    serials: &mut SerialList,
    preloaded: &[SerialList],
    dup_pct: f64,
    batch: u64,
) -> Vec<usize> {
    let wanted = ((serials.len() as f64) * dup_pct / 100.0).round() as usize;
    let available: usize = preloaded.iter().map(SerialList::len).sum();
    let count = wanted.min(available);
    if count == 0 {
        return Vec::new();
    }
    let step = serials.len() / count;
    let positions: Vec<usize> = (0..count).map(|i| i * step + step / 2).collect();
    let mut sources = Vec::with_capacity(count);
    // Spread sources over the preloaded serials, shifted per batch so batches differ.
    let stride = available / count;
    for i in 0..count {
        let mut index = (i * stride + batch as usize * 7919) % available;
        let mut list = 0;
        while index >= preloaded[list].len() {
            index -= preloaded[list].len();
            list += 1;
        }
        sources.push(preloaded[list].get(index));
    }
    let mut replaced = SerialList::with_capacity(serials.len(), serials.byte_len());
    let mut next = 0;
    for (i, serial) in serials.iter().enumerate() {
        if next < positions.len() && positions[next] == i {
            replaced.push(sources[next]);
            next += 1;
        } else {
            replaced.push(serial);
        }
    }
    *serials = replaced;
    positions
}

/// Writes the timed run's keys to plain RocksDB as synced WriteBatches; returns the time taken.
fn baseline(root: &std::path::Path, args: &AutoGrnArgs) -> anyhow::Result<Duration> {
    let dir = root.join("baseline");
    let _ = std::fs::remove_dir_all(&dir);
    let plain = PlainRocks::open(&dir)?;
    let value = inwarded_record();
    let bar = progress(args.serials, "baseline");
    let mut busy = Duration::ZERO;
    for (k, n) in batches(args.serials, args.grn_size) {
        let serials = workload::serials(args.seed ^ FRESH_SEED_OFFSET, k, n);
        let started = Instant::now();
        let mut key = Vec::with_capacity(80);
        plain.write_synced(&mut |sink| {
            for serial in serials.iter() {
                keys::serial_into(&mut key, 1, serial_hash(1, serial), serial);
                sink(serialgate::store::Op::Put, &key, &value)?;
            }
            Ok(())
        })?;
        busy += started.elapsed();
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    drop(plain);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(busy)
}

/// A typical inwarded serial's record (~22 bytes), encoded as the engine stores it: the
/// value plain-RocksDB baselines write under each key.
pub(super) fn inwarded_record() -> Vec<u8> {
    use serialgate::domain::{Condition, Event, EventKind, SerialRecord, SerialState};
    serialgate::store::codec::encode(&SerialRecord {
        state: SerialState::Inwarded,
        sku: 1,
        po: 1,
        line: 0,
        grn: 1,
        condition: Condition::Good,
        bin: None,
        qc_reason: None,
        order: None,
        history: vec![Event {
            at_ms: 1_700_000_000_000,
            kind: EventKind::Inwarded { grn: 1 },
        }],
    })
}
