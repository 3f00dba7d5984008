//! Load generators that talk to a running `serialgate serve` as any Redis client would.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Args;
use serialgate::workload;

use super::bench::{batches, progress, rate};

#[derive(Args)]
pub struct WireGrnArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:7878")]
    server: String,
    #[arg(long)]
    password: Option<String>,
    /// Fresh serials to receive (timed).
    #[arg(long, default_value_t = 1_000_000)]
    serials: usize,
    /// Serials received before the timed part.
    #[arg(long, default_value_t = 1_000_000)]
    preload: usize,
    /// Serials per GRN (one PO per GRN, received in full by GRN.AUTO).
    #[arg(long, default_value_t = 1_000_000)]
    grn_size: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

#[derive(Args)]
pub struct GrnClientsArgs {
    #[arg(long, default_value = "127.0.0.1:7878")]
    server: String,
    #[arg(long)]
    password: Option<String>,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Serials per GRN.
    #[arg(long, default_value_t = 100)]
    grn_serials: usize,
    /// GRNs each client commits.
    #[arg(long, default_value_t = 200)]
    grns: usize,
    /// Give every client its own account instead of sharing one.
    #[arg(long)]
    account_per_client: bool,
}

fn connect(server: &str, password: Option<&str>) -> anyhow::Result<redis::Connection> {
    let url = match password {
        Some(p) => format!("redis://:{p}@{server}/"),
        None => format!("redis://{server}/"),
    };
    let client = redis::Client::open(url).context("server address")?;
    client
        .get_connection()
        .with_context(|| format!("connecting to {server}"))
}

fn call(con: &mut redis::Connection, args: &[&[u8]]) -> anyhow::Result<String> {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap_or("PING"));
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query::<String>(con).map_err(|e| anyhow::anyhow!("{e}"))
}

fn setup(con: &mut redis::Connection, account: &str) -> anyhow::Result<()> {
    call(con, &[b"ACCOUNT.CREATE", account.as_bytes(), b"USN", b"2"])?;
    call(
        con,
        &[b"SKU.SET", account.as_bytes(), b"SERIALIZED", b"BENCH-SKU"],
    )?;
    Ok(())
}

fn create_po(
    con: &mut redis::Connection,
    account: &str,
    reference: &str,
    quantity: usize,
) -> anyhow::Result<()> {
    let body = format!(
        r#"{{"referenceCode":"{reference}","items":[{{"lineItemNumber":"1","sku":"BENCH-SKU","quantity":{quantity}}}]}}"#
    );
    let reply = call(con, &[b"PO.CREATE", account.as_bytes(), body.as_bytes()])?;
    ensure!(reply.contains("\"created\""), "PO {reference}: {reply}");
    Ok(())
}

/// A GRN body with the given serials as JSON.
fn grn_json(
    grn_id: &str,
    reference: &str,
    serials: impl Iterator<Item = impl AsRef<[u8]>>,
) -> Vec<u8> {
    let mut body = format!(
        r#"{{"grnId":"{grn_id}","referenceCode":"{reference}","items":[{{"sku":"BENCH-SKU","serials":["#
    )
    .into_bytes();
    for (i, s) in serials.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.push(b'"');
        body.extend_from_slice(s.as_ref());
        body.push(b'"');
    }
    body.extend_from_slice(b"]}]}");
    body
}

pub fn wire_grn(args: WireGrnArgs) -> anyhow::Result<()> {
    let mut con = connect(&args.server, args.password.as_deref())?;
    let account = format!("wire-{}", std::process::id());
    setup(&mut con, &account)?;
    println!(
        "bench wire-grn: {} fresh serials onto {} preloaded, GRNs of {}, server {}",
        args.serials, args.preload, args.grn_size, args.server
    );
    let bar = progress(args.preload, "preload");
    for (k, n) in batches(args.preload, args.grn_size) {
        let reference = format!("WPRE-{k}");
        create_po(&mut con, &account, &reference, n)?;
        let body = grn_json(
            &format!("G-{reference}"),
            &reference,
            workload::serials(args.seed, k, n).iter(),
        );
        let reply = call(&mut con, &[b"GRN.AUTO", account.as_bytes(), &body])?;
        ensure!(
            reply.contains("\"committed\""),
            "preload: {}",
            &reply[..reply.len().min(300)]
        );
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    let bar = progress(args.serials, "wire-grn");
    let mut busy = Duration::ZERO;
    for (k, n) in batches(args.serials, args.grn_size) {
        let reference = format!("WRUN-{k}");
        create_po(&mut con, &account, &reference, n)?;
        let serials = workload::serials(args.seed ^ 0x5EED_0000_0001, k, n);
        let body = grn_json(&format!("G-{reference}"), &reference, serials.iter());
        let started = Instant::now();
        let reply = call(&mut con, &[b"GRN.AUTO", account.as_bytes(), &body])?;
        busy += started.elapsed();
        ensure!(
            reply.contains("\"committed\""),
            "GRN {k}: {}",
            &reply[..reply.len().min(300)]
        );
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    println!(
        "wire validate+commit: {} serials in {:.2} s = {:.0} serials/s (JSON sent as one bulk per GRN)",
        args.serials,
        busy.as_secs_f64(),
        rate(args.serials, busy)
    );
    Ok(())
}

pub fn grn_clients(args: GrnClientsArgs) -> anyhow::Result<()> {
    ensure!(
        args.clients > 0 && args.grn_serials > 0,
        "--clients and --grn-serials must be positive"
    );
    let run = std::process::id();
    let shared_account = format!("clients-{run}");
    let accounts: Vec<String> = (0..args.clients)
        .map(|c| {
            if args.account_per_client {
                format!("{shared_account}-{c}")
            } else {
                shared_account.clone()
            }
        })
        .collect();
    let mut con = connect(&args.server, args.password.as_deref())?;
    let mut distinct = accounts.clone();
    distinct.dedup();
    for account in &distinct {
        setup(&mut con, account)?;
        let per_account = if args.account_per_client {
            1
        } else {
            args.clients
        };
        create_po(
            &mut con,
            account,
            "P",
            per_account * args.grns * args.grn_serials,
        )?;
    }
    println!(
        "bench grn-clients: {} clients x {} GRNs of {} serials, {} account(s), server {}",
        args.clients,
        args.grns,
        args.grn_serials,
        distinct.len(),
        args.server
    );
    let started = Instant::now();
    let results: Vec<anyhow::Result<Vec<Duration>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.clients)
            .map(|c| {
                let account = accounts[c].clone();
                let args = &args;
                scope.spawn(move || -> anyhow::Result<Vec<Duration>> {
                    let mut con = connect(&args.server, args.password.as_deref())?;
                    let mut latencies = Vec::with_capacity(args.grns);
                    for g in 0..args.grns {
                        let serials = (0..args.grn_serials).map(|i| format!("C{c}-{g}-{i}-{run}"));
                        let body = grn_json(&format!("G-{c}-{g}"), "P", serials);
                        let t = Instant::now();
                        let reply = call(&mut con, &[b"GRN.COMMIT", account.as_bytes(), &body])?;
                        latencies.push(t.elapsed());
                        if !reply.contains("\"committed\"") {
                            bail!("client {c} GRN {g}: {}", &reply[..reply.len().min(300)]);
                        }
                    }
                    Ok(latencies)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("client panicked")))
            .collect()
    });
    let elapsed = started.elapsed();
    let mut latencies = Vec::new();
    for r in results {
        latencies.extend(r?);
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let serials = args.clients * args.grns * args.grn_serials;
    println!(
        "committed {} serials in {} GRNs in {:.2} s = {:.0} serials/s, {:.0} GRNs/s",
        serials,
        latencies.len(),
        elapsed.as_secs_f64(),
        rate(serials, elapsed),
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "GRN latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    Ok(())
}
