//! `serialgate bench peers`: serialgate side by side with what a user would pick instead —
//! RocksDB alone, PostgreSQL 15, Redis 7 — on the same serials, on this machine, in one run.
//!
//! Each system is started on loopback with durable settings right before its turn and
//! stopped after it, so no system's background work (checkpoints, compactions, rewrites)
//! runs during another's. Every system is given the very same `SerialList`s, generated once
//! before the first system starts. The workloads:
//!
//! - W1: fresh serials in GRNs onto an index preloaded (untimed) with as many;
//! - W2: the same with duplicates, half repeated within a GRN and half already stored;
//!   every duplicate must be reported, or the run fails;
//! - W3: GRNs validated against the serials expected on their PO (USN type 1);
//! - W4: lookups of existing and of absent serials;
//! - W5: many concurrent clients committing small GRNs.
//!
//! Results go into docs/BENCHMARKS.md between markers, with SVG plots beside it.

mod measure;
mod ours;
mod plot;
mod postgres;
mod redis_server;
mod report;
mod rocks;
mod scale;
mod servers;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::{Args, ValueEnum};
use serialgate::serial::SerialList;
use serialgate::workload;

use super::bench::{batches, progress};
pub use measure::Processes;
pub use scale::scale;
pub use scale::ScaleArgs;

#[derive(Args)]
pub struct PeersArgs {
    /// Fresh serials received in W1 and in W2 (timed).
    #[arg(long, default_value_t = 10_000_000)]
    serials: usize,
    /// Serials every system holds before W1 (untimed).
    #[arg(long, default_value_t = 10_000_000)]
    preload: usize,
    /// Serials per GRN in W1–W3.
    #[arg(long, default_value_t = 100_000)]
    grn_size: usize,
    /// Percentage of W2's serials that are duplicates (half within a GRN, half stored).
    #[arg(long, default_value_t = 1.0)]
    dup_pct: f64,
    /// Serials expected on POs and received against them in W3.
    #[arg(long, default_value_t = 1_000_000)]
    expected: usize,
    /// W4 looks up this many existing serials and as many absent ones.
    #[arg(long, default_value_t = 1_000_000)]
    lookups: usize,
    /// W5: concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// W5: GRNs each client commits.
    #[arg(long, default_value_t = 100)]
    client_grns: usize,
    /// W5: serials per GRN.
    #[arg(long, default_value_t = 100)]
    client_grn_serials: usize,
    /// Systems to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<SystemKind>,
    /// Directory for the systems' data (default: a temporary one, removed afterwards).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Markdown file whose peers section is replaced with the results.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    out: PathBuf,
    /// Directory the SVG plots are written to.
    #[arg(long, default_value = "docs/plots")]
    plots: PathBuf,
    #[arg(long, default_value_t = 11)]
    seed: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum SystemKind {
    /// serialgate embedded in this process.
    InProcess,
    /// serialgate over the line protocol on loopback.
    Wire,
    /// RocksDB alone: synced WriteBatch puts, no validation.
    Rocksdb,
    /// Redis 7, appendonly with appendfsync everysec.
    RedisEverysec,
    /// Redis 7, appendonly with appendfsync always.
    RedisAlways,
    /// PostgreSQL 15, unique index, one transaction per GRN.
    Postgres,
}

impl SystemKind {
    /// PostgreSQL first: the slowest to set up, so a problem with it shows at once.
    const ALL: [SystemKind; 6] = [
        SystemKind::Postgres,
        SystemKind::InProcess,
        SystemKind::Wire,
        SystemKind::Rocksdb,
        SystemKind::RedisEverysec,
        SystemKind::RedisAlways,
    ];
}

/// What one GRN did.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrnOutcome {
    /// Serials that are in the index after the GRN.
    pub committed: usize,
    /// Serials reported as duplicates (W1, W2) or as not expected (W3).
    pub reported: usize,
}

/// A system under measurement. Untimed methods prepare; `grn`, `grn_expected` and `lookup`
/// are what the clock runs over.
pub trait System {
    fn name(&self) -> &'static str;
    fn processes(&self) -> Processes;
    /// Untimed: the serials the index holds before W1.
    fn preload(&mut self, serials: &SerialList) -> anyhow::Result<()>;
    /// Untimed set-up before a GRN of `serials` units (serialgate: the PO it receives).
    fn before_grn(&mut self, _grn: &str, _serials: usize) -> anyhow::Result<()> {
        Ok(())
    }
    /// One GRN of `serials`; every duplicate reported. `None`: the system has no checks.
    fn grn(&mut self, grn: &str, serials: &SerialList) -> anyhow::Result<GrnOutcome>;
    /// Whether duplicates are detected at all (RocksDB alone does not look).
    fn checks(&self) -> bool {
        true
    }
    /// W3, untimed: `serials` are expected on PO `po`. `false`: W3 does not apply.
    fn expect(&mut self, po: &str, serials: &SerialList) -> anyhow::Result<bool>;
    /// W3, timed: a GRN of serials against PO `po`; unexpected ones reported.
    fn grn_expected(&mut self, po: &str, serials: &SerialList) -> anyhow::Result<GrnOutcome>;
    /// W4: how many of `serials` the index holds.
    fn lookup(&mut self, serials: &[&[u8]]) -> anyhow::Result<usize>;
    /// W5, untimed: room for `serials` units received by concurrent clients. `false`: W5
    /// does not apply.
    fn prepare_clients(&mut self, serials: usize) -> anyhow::Result<bool>;
    /// W5: one more independent client.
    fn client(&self) -> anyhow::Result<Box<dyn Client>>;
    /// Bytes the index's data takes on disk now.
    fn disk_bytes(&mut self) -> anyhow::Result<u64>;
}

/// One of W5's concurrent clients.
pub trait Client: Send {
    fn grn(&mut self, grn: &str, serials: &SerialList) -> anyhow::Result<GrnOutcome>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    W1,
    W2,
    W3,
    W4,
    W5,
}

impl Workload {
    pub const ALL: [Workload; 5] = [
        Workload::W1,
        Workload::W2,
        Workload::W3,
        Workload::W4,
        Workload::W5,
    ];
}

/// One system's figures on one workload.
#[derive(Clone, Debug)]
pub struct Figures {
    pub system: &'static str,
    pub workload: Workload,
    /// Serials (or lookups) per second of time spent in the timed calls.
    pub rate: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub cpu_seconds: f64,
    pub peak_rss: u64,
    /// After W2: bytes on disk per stored serial.
    pub disk_per_serial: Option<f64>,
    pub reported: usize,
    pub expected_reports: usize,
}

/// The serials every system is given.
struct Data {
    preload: Vec<SerialList>,
    fresh: Vec<SerialList>,
    /// W2's GRNs and how many duplicates each holds.
    duplicated: Vec<(SerialList, usize)>,
    expected: Vec<SerialList>,
    hits: SerialList,
    misses: SerialList,
}

impl Data {
    fn generate(args: &PeersArgs) -> Data {
        let seed = args.seed;
        let many = |seed: u64, total: usize| -> Vec<SerialList> {
            batches(total, args.grn_size)
                .map(|(k, n)| workload::serials(seed, k, n))
                .collect()
        };
        let preload = many(seed, args.preload);
        let fresh = many(seed ^ 0x01, args.serials);
        let duplicated = many(seed ^ 0x02, args.serials)
            .into_iter()
            .enumerate()
            .map(|(k, list)| inject_duplicates(list, &preload, args.dup_pct, k))
            .collect();
        let expected = many(seed ^ 0x03, args.expected);
        let all_preloaded = args.preload.max(1);
        let stride = (all_preloaded / args.lookups.max(1)).max(1);
        let hits: SerialList = (0..args.lookups.min(args.preload))
            .map(|i| nth(&preload, (i * stride) % all_preloaded))
            .collect();
        let misses = workload::serials(seed ^ 0x04, 0, args.lookups);
        Data {
            preload,
            fresh,
            duplicated,
            expected,
            hits,
            misses,
        }
    }
}

fn nth(lists: &[SerialList], mut index: usize) -> &[u8] {
    for list in lists {
        if index < list.len() {
            return list.get(index);
        }
        index -= list.len();
    }
    unreachable!("index past the preloaded serials")
}

/// Replaces `pct`% of `serials` with duplicates, evenly spread: every other one repeats
/// the serial just before it (a duplicate within the GRN), the rest are preloaded serials
/// (already stored). Returns the GRN and the number of duplicates in it.
fn inject_duplicates(
    serials: SerialList,
    preload: &[SerialList],
    pct: f64,
    batch: usize,
) -> (SerialList, usize) {
    let stored: usize = preload.iter().map(SerialList::len).sum();
    let count = ((serials.len() as f64) * pct / 100.0).round() as usize;
    if count == 0 || serials.len() < 2 {
        return (serials, 0);
    }
    let step = (serials.len() / count).max(2);
    let mut out = SerialList::with_capacity(serials.len(), serials.byte_len());
    let mut injected = 0;
    for (i, serial) in serials.iter().enumerate() {
        let slot = i % step == step / 2 && i > 0 && injected < count;
        if !slot {
            out.push(serial);
            continue;
        }
        if injected % 2 == 0 || stored == 0 {
            out.push(serials.get(i - 1));
        } else {
            out.push(nth(preload, (batch * 7919 + injected * 104_729) % stored));
        }
        injected += 1;
    }
    (out, injected)
}

pub fn peers(args: PeersArgs) -> anyhow::Result<()> {
    ensure!(
        args.grn_size > 0 && args.serials > 0 && args.preload > 0,
        "--serials, --preload and --grn-size must be positive"
    );
    ensure!(
        (0.0..=20.0).contains(&args.dup_pct),
        "--dup-pct must be 0-20"
    );
    let temp;
    let work = match &args.work {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("serialgate-peers")
                .tempdir()
                .context("creating a work directory")?;
            temp.path().to_path_buf()
        }
    };
    let kinds: Vec<SystemKind> = if args.only.is_empty() {
        SystemKind::ALL.to_vec()
    } else {
        args.only.clone()
    };
    println!(
        "bench peers: {} fresh serials (W1, W2) onto {} preloaded, GRNs of {}, {}% duplicates, \
         {} expected (W3), {} + {} lookups (W4), {} clients x {} GRNs x {} (W5); {} cores",
        args.serials,
        args.preload,
        args.grn_size,
        args.dup_pct,
        args.expected,
        args.lookups,
        args.lookups,
        args.clients,
        args.client_grns,
        args.client_grn_serials,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let started = Instant::now();
    let data = Data::generate(&args);
    println!(
        "serials generated in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut results = Vec::new();
    for kind in kinds {
        let dir = work.join(format!("{kind:?}").to_lowercase());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut system: Box<dyn System> = match kind {
            SystemKind::InProcess => Box::new(ours::Serialgate::in_process(&dir)?),
            SystemKind::Wire => Box::new(ours::Serialgate::over_wire(&dir)?),
            SystemKind::Rocksdb => Box::new(rocks::Rocks::open(&dir)?),
            SystemKind::RedisEverysec => {
                Box::new(redis_server::RedisPeer::start(&dir, "everysec")?)
            }
            SystemKind::RedisAlways => Box::new(redis_server::RedisPeer::start(&dir, "always")?),
            SystemKind::Postgres => Box::new(postgres::Postgres::start(&dir)?),
        };
        println!("== {}", system.name());
        let figures = run_system(system.as_mut(), &data, &args)?;
        for f in &figures {
            println!("{}", report::line(f));
        }
        results.extend(figures);
        drop(system);
        let _ = std::fs::remove_dir_all(&dir);
        // After every system, so a failure later in the run keeps what was measured.
        report::write(&args, &results)?;
    }
    println!(
        "== results written to {} and {}",
        args.out.display(),
        args.plots.display()
    );
    Ok(())
}

/// Measures what `work` costs the system: CPU seconds and peak memory of its processes.
fn measured(
    system: &mut dyn System,
    workload: Workload,
    work: impl FnOnce(&mut dyn System) -> anyhow::Result<Timings>,
) -> anyhow::Result<Figures> {
    let processes = system.processes();
    let cpu_before = processes.cpu_seconds();
    let memory = measure::PeakMemory::start(processes);
    let timings = work(system)?;
    let peak_rss = memory.finish();
    Ok(Figures {
        system: system.name(),
        workload,
        rate: timings.count as f64 / timings.busy.as_secs_f64().max(1e-9),
        p50: timings.percentile(0.50),
        p99: timings.percentile(0.99),
        cpu_seconds: processes.cpu_seconds() - cpu_before,
        peak_rss,
        disk_per_serial: None,
        reported: timings.reported,
        expected_reports: timings.expected_reports,
    })
}

/// The clock over one workload: time in timed calls, and each call's latency.
#[derive(Default)]
struct Timings {
    count: usize,
    busy: Duration,
    latencies: Vec<Duration>,
    reported: usize,
    expected_reports: usize,
}

impl Timings {
    fn record(&mut self, count: usize, took: Duration) {
        self.count += count;
        self.busy += took;
        self.latencies.push(took);
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
    }
}

fn run_system(
    system: &mut dyn System,
    data: &Data,
    args: &PeersArgs,
) -> anyhow::Result<Vec<Figures>> {
    let mut figures = Vec::new();
    let bar = progress(args.preload, "preload");
    for batch in &data.preload {
        system.preload(batch)?;
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    let stored_before = args.preload;

    // W1 and W2: GRNs of fresh serials, then of serials with duplicates.
    for (workload, grns) in [
        (
            Workload::W1,
            data.fresh.iter().map(|s| (s, 0)).collect::<Vec<_>>(),
        ),
        (
            Workload::W2,
            data.duplicated.iter().map(|(s, d)| (s, *d)).collect(),
        ),
    ] {
        let total: usize = grns.iter().map(|(s, _)| s.len()).sum();
        let bar = progress(total, &format!("{workload:?}"));
        let figure = measured(system, workload, |system| {
            let mut t = Timings::default();
            for (k, (serials, duplicates)) in grns.iter().enumerate() {
                let grn = format!("{workload:?}-{k}");
                system.before_grn(&grn, serials.len())?;
                let started = Instant::now();
                let outcome = system.grn(&grn, serials)?;
                t.record(serials.len(), started.elapsed());
                t.reported += outcome.reported;
                t.expected_reports += duplicates;
                if system.checks() {
                    ensure!(
                        outcome.reported == *duplicates,
                        "{}: GRN {grn} holds {duplicates} duplicates, {} reported",
                        system.name(),
                        outcome.reported
                    );
                    ensure!(
                        outcome.committed == serials.len() - duplicates,
                        "{}: GRN {grn} committed {} of {} fresh serials",
                        system.name(),
                        outcome.committed,
                        serials.len() - duplicates
                    );
                }
                bar.inc(serials.len() as u64);
            }
            Ok(t)
        })?;
        bar.finish_and_clear();
        figures.push(figure);
    }
    let stored =
        stored_before + 2 * args.serials - data.duplicated.iter().map(|(_, d)| d).sum::<usize>();
    let per_serial = system.disk_bytes()? as f64 / stored as f64;
    for f in figures.iter_mut() {
        f.disk_per_serial = Some(per_serial);
    }

    // W3: GRNs against the serials their PO expects.
    let mut applies = true;
    for (k, serials) in data.expected.iter().enumerate() {
        applies &= system.expect(&format!("E-{k}"), serials)?;
    }
    if applies {
        let figure = measured(system, Workload::W3, |system| {
            let mut t = Timings::default();
            for (k, serials) in data.expected.iter().enumerate() {
                let started = Instant::now();
                let outcome = system.grn_expected(&format!("E-{k}"), serials)?;
                t.record(serials.len(), started.elapsed());
                ensure!(
                    outcome.reported == 0 && outcome.committed == serials.len(),
                    "{}: W3 GRN {k} committed {} of {} expected serials, {} reported",
                    system.name(),
                    outcome.committed,
                    serials.len(),
                    outcome.reported
                );
            }
            Ok(t)
        })?;
        figures.push(figure);
    }

    // W4: lookups of stored and of absent serials, 1,000 per request.
    const LOOKUP_CHUNK: usize = 1000;
    let figure = measured(system, Workload::W4, |system| {
        let mut t = Timings::default();
        for (list, present) in [(&data.hits, true), (&data.misses, false)] {
            let all: Vec<&[u8]> = list.iter().collect();
            for chunk in all.chunks(LOOKUP_CHUNK) {
                let started = Instant::now();
                let found = system.lookup(chunk)?;
                t.record(chunk.len(), started.elapsed());
                let want = if present { chunk.len() } else { 0 };
                ensure!(
                    found == want,
                    "{}: {found} of {} looked-up serials found, {want} should be",
                    system.name(),
                    chunk.len()
                );
            }
        }
        Ok(t)
    })?;
    figures.push(figure);

    // W5: concurrent clients, small GRNs.
    let total = args.clients * args.client_grns * args.client_grn_serials;
    if system.prepare_clients(total)? {
        let clients: Vec<Box<dyn Client>> = (0..args.clients)
            .map(|_| system.client())
            .collect::<anyhow::Result<_>>()?;
        let seed = args.seed ^ 0x05;
        let (per_client, grn_serials) = (args.client_grns, args.client_grn_serials);
        // The clients outlive the measurement: a PostgreSQL backend that exits before the
        // last CPU reading would take its CPU seconds with it.
        let mut finished: Vec<Box<dyn Client>> = Vec::new();
        let figure = measured(system, Workload::W5, |_| {
            let started = Instant::now();
            type Done = anyhow::Result<(Vec<Duration>, Box<dyn Client>)>;
            let results: Vec<Done> = std::thread::scope(|scope| {
                let handles: Vec<_> = clients
                    .into_iter()
                    .enumerate()
                    .map(|(c, mut client)| {
                        scope.spawn(move || -> Done {
                            let mut latencies = Vec::with_capacity(per_client);
                            for g in 0..per_client {
                                let batch = (c * per_client + g) as u64;
                                let serials = workload::serials(seed, batch, grn_serials);
                                let t = Instant::now();
                                let outcome = client.grn(&format!("C{c}-{g}"), &serials)?;
                                latencies.push(t.elapsed());
                                ensure!(
                                    outcome.committed == grn_serials && outcome.reported == 0,
                                    "client {c} GRN {g}: {outcome:?}"
                                );
                            }
                            Ok((latencies, client))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("a client panicked")))
                    })
                    .collect()
            });
            let wall = started.elapsed();
            let mut t = Timings::default();
            for done in results {
                let (latencies, client) = done?;
                t.latencies.extend(latencies);
                finished.push(client);
            }
            t.count = total;
            t.busy = wall;
            Ok(t)
        })?;
        drop(finished);
        figures.push(figure);
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_injected_half_within_half_stored() {
        let preload = vec![workload::serials(1, 0, 1000)];
        let fresh = workload::serials(2, 0, 1000);
        let (grn, count) = inject_duplicates(fresh, &preload, 2.0, 0);
        assert_eq!(count, 20);
        assert_eq!(grn.len(), 1000);
        let stored: std::collections::HashSet<&[u8]> = preload[0].iter().collect();
        let mut seen = std::collections::HashSet::new();
        let (mut within, mut against) = (0, 0);
        for s in grn.iter() {
            if stored.contains(s) {
                against += 1;
            } else if !seen.insert(s) {
                within += 1;
            }
        }
        assert_eq!((within, against), (10, 10));
    }
}
