//! The results as Markdown (a section of docs/BENCHMARKS.md between markers) and plots.

use std::fmt::Write as _;
use std::path::Path;

use super::plot;
use super::{Figures, PeersArgs, Workload};

const START: &str = "<!-- peers-bench:start -->";
const END: &str = "<!-- peers-bench:end -->";
const POSTGRES: &str = "PostgreSQL 15";
const REDIS_EVERYSEC: &str = "Redis 7 (appendfsync everysec)";
/// The targets: serialgate against PostgreSQL and against Redis (everysec) on W1 and W2.
const TARGET_VS_POSTGRES: f64 = 10.0;
const TARGET_VS_REDIS: f64 = 3.0;

/// One result as a line of text for the terminal.
pub fn line(f: &Figures) -> String {
    format!(
        "  {:?}: {:>12.0} /s  p50 {:>9.2} ms  p99 {:>9.2} ms  cpu {:>7.1} s  peak rss {:>7.0} MiB{}{}",
        f.workload,
        f.rate,
        ms(f.p50),
        ms(f.p99),
        f.cpu_seconds,
        mib(f.peak_rss),
        f.disk_per_serial
            .map(|d| format!("  disk {d:.1} B/serial"))
            .unwrap_or_default(),
        if f.expected_reports > 0 || f.reported > 0 {
            format!("  reported {}/{}", f.reported, f.expected_reports)
        } else {
            String::new()
        }
    )
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn rate_of(results: &[Figures], system: &str, workload: Workload) -> Option<f64> {
    results
        .iter()
        .find(|f| f.system == system && f.workload == workload)
        .map(|f| f.rate)
}

fn is_serialgate(system: &str) -> bool {
    system.starts_with("serialgate")
}

fn what(workload: Workload, args: &PeersArgs) -> String {
    match workload {
        Workload::W1 => format!(
            "W1: {} fresh serials in GRNs of {} onto {} preloaded",
            args.serials, args.grn_size, args.preload
        ),
        Workload::W2 => format!(
            "W2: {} more in GRNs of {}, {}% duplicates (half within a GRN, half already stored)",
            args.serials, args.grn_size, args.dup_pct
        ),
        Workload::W3 => format!(
            "W3: {} serials received against the POs expecting them (USN type 1), GRNs of {}",
            args.expected, args.grn_size
        ),
        Workload::W4 => format!(
            "W4: {} lookups of stored serials and {} of absent ones, 1,000 per request",
            args.lookups, args.lookups
        ),
        Workload::W5 => format!(
            "W5: {} concurrent clients x {} GRNs of {} serials",
            args.clients, args.client_grns, args.client_grn_serials
        ),
    }
}

/// Writes the section into `args.out` and the plots into `args.plots`.
pub fn write(args: &PeersArgs, results: &[Figures]) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.plots)?;
    let mut md = String::new();
    let _ = writeln!(md, "{START}");
    let _ = writeln!(
        md,
        "Written by `tools/bench-peers` (`serialgate bench peers --serials {} --preload {} \
         --grn-size {} --dup-pct {}`) on {}, {} cores. Every system ran alone, one after \
         another, on the same generated serials.\n",
        args.serials,
        args.preload,
        args.grn_size,
        args.dup_pct,
        today(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for workload in Workload::ALL {
        let rows: Vec<&Figures> = results.iter().filter(|f| f.workload == workload).collect();
        if rows.is_empty() {
            continue;
        }
        let unit = if workload == Workload::W4 {
            "lookups/s"
        } else {
            "serials/s"
        };
        let latency = match workload {
            Workload::W4 => "per request of 1,000",
            _ => "per GRN",
        };
        let _ = writeln!(md, "**{}**\n", what(workload, args));
        let extra = matches!(workload, Workload::W1 | Workload::W2);
        let _ = writeln!(
            md,
            "| system | {unit} | × PostgreSQL | × Redis everysec | p50 ({latency}) | p99 | CPU s | peak RSS |{}",
            if extra { " disk bytes/serial | duplicates reported |" } else { "" }
        );
        let _ = writeln!(
            md,
            "|---|---|---|---|---|---|---|---|{}",
            if extra { "---|---|" } else { "" }
        );
        let pg = rate_of(results, POSTGRES, workload);
        let redis = rate_of(results, REDIS_EVERYSEC, workload);
        for f in rows {
            let times = |base: Option<f64>| {
                base.filter(|b| *b > 0.0)
                    .map_or("—".to_string(), |b| format!("{:.2}×", f.rate / b))
            };
            let bold = if is_serialgate(f.system) { "**" } else { "" };
            let _ = write!(
                md,
                "| {} | {bold}{}{bold} | {} | {} | {:.2} ms | {:.2} ms | {:.1} | {:.0} MiB |",
                f.system,
                thousands(f.rate),
                times(pg),
                times(redis),
                ms(f.p50),
                ms(f.p99),
                f.cpu_seconds,
                mib(f.peak_rss)
            );
            if extra {
                let reported = if f.system.starts_with("RocksDB") {
                    "none (no checks)".to_string()
                } else {
                    format!("{} / {}", f.reported, f.expected_reports)
                };
                let _ = write!(
                    md,
                    " {} | {reported} |",
                    f.disk_per_serial.map_or("—".into(), |d| format!("{d:.1}"))
                );
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md, "**Targets** (serialgate ≥ {TARGET_VS_POSTGRES}× PostgreSQL and ≥ {TARGET_VS_REDIS}× Redis everysec on W1 and W2, this run):\n");
    for workload in [Workload::W1, Workload::W2] {
        for system in results
            .iter()
            .filter(|f| f.workload == workload && is_serialgate(f.system))
        {
            for (peer, target) in [
                (POSTGRES, TARGET_VS_POSTGRES),
                (REDIS_EVERYSEC, TARGET_VS_REDIS),
            ] {
                if let Some(base) = rate_of(results, peer, workload) {
                    let ratio = system.rate / base;
                    let _ = writeln!(
                        md,
                        "- {workload:?}, {} vs {peer}: **{ratio:.2}×** — {}",
                        system.system,
                        if ratio >= target {
                            format!("target {target}× met")
                        } else {
                            format!("target {target}× **missed**")
                        }
                    );
                }
            }
        }
    }
    let _ = writeln!(md);
    let mut bars = Vec::new();
    for workload in [Workload::W1, Workload::W2, Workload::W3, Workload::W5] {
        for f in results.iter().filter(|f| f.workload == workload) {
            bars.push((
                format!("{workload:?}  {}", f.system),
                f.rate,
                is_serialgate(f.system),
            ));
        }
    }
    let throughput = args.plots.join("peers-throughput.svg");
    plot::bars(
        &throughput,
        "Serials received per second",
        "serials/s",
        &bars,
    )?;
    let lookups: Vec<(String, f64, bool)> = results
        .iter()
        .filter(|f| f.workload == Workload::W4)
        .map(|f| (f.system.to_string(), f.rate, is_serialgate(f.system)))
        .collect();
    let lookups_path = args.plots.join("peers-lookups.svg");
    plot::bars(
        &lookups_path,
        "W4: lookups per second",
        "lookups/s",
        &lookups,
    )?;
    let _ = writeln!(
        md,
        "![serials per second, W1–W3 and W5](plots/peers-throughput.svg)\n\n![lookups per second, W4](plots/peers-lookups.svg)"
    );
    let _ = writeln!(md, "{END}");
    replace_section(
        &args.out,
        START,
        END,
        &md,
        "## Against the alternatives\n\n",
    )
}

/// Replaces the text between `start` and `end` in `path` (markers included) with
/// `section`, or appends `heading` and the section when the markers are not there yet.
pub fn replace_section(
    path: &Path,
    start: &str,
    end: &str,
    section: &str,
    heading: &str,
) -> anyhow::Result<()> {
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let section = section.trim_end();
    let updated = match (doc.find(start), doc.find(end)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{}{}", &doc[..a], section, &doc[b + end.len()..])
        }
        _ => format!("{}\n\n{heading}{section}\n", doc.trim_end()),
    };
    std::fs::write(path, updated)?;
    Ok(())
}

pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Today's date (UTC) as YYYY-MM-DD.
pub fn today() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()[..10].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("B.md");
        std::fs::write(&path, "# B\n\ntext\n").unwrap();
        replace_section(
            &path,
            START,
            END,
            &format!("{START}\none\n{END}\n"),
            "## H\n\n",
        )
        .unwrap();
        replace_section(
            &path,
            START,
            END,
            &format!("{START}\ntwo\n{END}\n"),
            "## H\n\n",
        )
        .unwrap();
        let doc = std::fs::read_to_string(&path).unwrap();
        assert_eq!(doc, format!("# B\n\ntext\n\n## H\n\n{START}\ntwo\n{END}\n"));
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(today().len(), 10);
    }
}
