//! `serialgate demo`: a newcomer's tour. A server is started on a temporary store; each USN
//! type is walked through over the real protocol, printing every command and its reply;
//! then a bulk GRN of a million serials runs with a progress bar and its measured rate.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use clap::Args;
use serde_json::Value;
use serialgate::workload;

use super::bench::{batches, progress, rate};

#[derive(Args)]
pub struct DemoArgs {
    /// Serials in the bulk part.
    #[arg(long, default_value_t = 1_000_000)]
    serials: usize,
}

/// Serials per GRN of the bulk part.
const BULK_GRN_SERIALS: usize = 100_000;
/// Replies longer than this are shortened on screen.
const REPLY_SHOWN_CHARS: usize = 220;

/// The demo's own server, stopped when dropped.
struct DemoServer {
    child: Child,
    addr: String,
}

impl DemoServer {
    fn start(data: &std::path::Path) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .env_remove("SERIALGATE_PASSWORD")
            .stdout(Stdio::piped())
            .spawn()
            .context("starting serialgate serve")?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("server stdout")?;
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(addr) = line.trim().rsplit(' ').next().filter(|a| a.contains(':')) else {
            bail!("the server did not start: {line:?}");
        };
        Ok(Self {
            addr: addr.to_string(),
            child,
        })
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Tour {
    con: redis::Connection,
}

impl Tour {
    /// Sends one command, prints it and its reply, and returns the reply as text.
    fn run(&mut self, args: &[&str]) -> anyhow::Result<String> {
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains(' ') || a.contains('"') {
                    format!("'{a}'")
                } else {
                    a.to_string()
                }
            })
            .collect();
        println!("> {}", shown.join(" "));
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let reply = match cmd.query::<redis::Value>(&mut self.con) {
            Ok(redis::Value::Nil) => "(nil)".to_string(),
            Ok(redis::Value::Int(n)) => format!("(integer) {n}"),
            Ok(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
            Ok(redis::Value::SimpleString(s)) => s,
            Ok(redis::Value::Okay) => "OK".into(),
            Ok(other) => format!("{other:?}"),
            Err(e) => format!("(error) {e}"),
        };
        let mut on_screen: String = reply.chars().take(REPLY_SHOWN_CHARS).collect();
        if on_screen.len() < reply.len() {
            on_screen.push_str(" …");
        }
        println!("  {}", on_screen.trim_end().replace('\n', "\n  "));
        Ok(reply)
    }

    fn json(&mut self, args: &[&str]) -> anyhow::Result<Value> {
        let reply = self.run(args)?;
        serde_json::from_str(&reply).with_context(|| format!("reply to {}: {reply}", args[0]))
    }
}

fn heading(text: &str) {
    println!("\n== {text}");
}

fn serials_of(reply: &Value) -> Vec<String> {
    reply["serials"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let data = tempfile::tempdir().context("creating a temporary store")?;
    let server = DemoServer::start(data.path())?;
    println!(
        "serialgate demo: a server on {} with a temporary store at {}",
        server.addr,
        data.path().display()
    );
    let client = redis::Client::open(format!("redis://{}/", server.addr))?;
    let mut tour = Tour {
        con: client.get_connection()?,
    };

    heading("USN type 1: the seller lists serials on the PO; a GRN must bring exactly those");
    tour.run(&["ACCOUNT.CREATE", "shop1", "USN", "1"])?;
    tour.run(&["SKU.SET", "shop1", "SERIALIZED", "PHONE"])?;
    tour.run(&["PO.CREATE", "shop1", r#"{"referenceCode":"PO-1","vendorId":"V1","items":[{"lineItemNumber":"1","sku":"PHONE","quantity":"2","serials":["IMEI-0001","IMEI-0002"]}]}"#])?;
    tour.run(&["GRN.COMMIT", "shop1", r#"{"grnId":"G-1","referenceCode":"PO-1","items":[{"sku":"PHONE","serials":["IMEI-0001","IMEI-9999"]}]}"#])?;
    let reply = tour.json(&["GRN.COMMIT", "shop1", r#"{"grnId":"G-1","referenceCode":"PO-1","items":[{"sku":"PHONE","serials":["IMEI-0001","IMEI-0002"]}]}"#])?;
    ensure!(reply["status"] == "committed", "type 1 GRN: {reply}");

    heading("USN type 2: serials arrive at GRN; each must be new to the account");
    tour.run(&["ACCOUNT.CREATE", "shop2", "USN", "2"])?;
    tour.run(&["SKU.SET", "shop2", "SERIALIZED", "LAPTOP"])?;
    tour.run(&[
        "PO.CREATE",
        "shop2",
        r#"{"referenceCode":"PO-2","items":[{"lineItemNumber":"1","sku":"LAPTOP","quantity":3}]}"#,
    ])?;
    tour.run(&["GRN.COMMIT", "shop2", r#"{"grnId":"G-2","referenceCode":"PO-2","items":[{"sku":"LAPTOP","serials":["LT-1","LT-2","LT-1"]}]}"#])?;
    let body = r#"{"grnId":"G-2","referenceCode":"PO-2","items":[{"sku":"LAPTOP","serials":["LT-1","LT-2"],"bin":"A-01"}]}"#;
    tour.run(&["GRN.COMMIT", "shop2", body])?;
    println!("  (the same GRN again is a safe retry)");
    let reply = tour.json(&["GRN.COMMIT", "shop2", body])?;
    ensure!(reply["replayed"] == true, "type 2 retry: {reply}");

    heading("USN type 3: the engine generates serials for a PO line; scanning one finds its PO");
    tour.run(&[
        "ACCOUNT.CREATE",
        "shop3",
        "USN",
        "3",
        "TOLERANCE_PCT",
        "10",
        "PREFIX",
        "DM",
    ])?;
    tour.run(&["SKU.SET", "shop3", "SERIALIZED", "DRILL"])?;
    tour.run(&[
        "PO.CREATE",
        "shop3",
        r#"{"referenceCode":"PO-3","items":[{"lineItemNumber":"1","sku":"DRILL","quantity":2}]}"#,
    ])?;
    let generated = tour.json(&[
        "SERIALS.GENERATE",
        "shop3",
        "PO",
        "PO-3",
        "SKU",
        "DRILL",
        "COUNT",
        "2",
    ])?;
    let labels = serde_json::to_string(&serials_of(&generated))?;
    let reply = tour.json(&[
        "GRN.COMMIT",
        "shop3",
        &format!(r#"{{"grnId":"G-3","referenceCode":"PO-3","items":[{{"serials":{labels}}}]}}"#),
    ])?;
    ensure!(reply["status"] == "committed", "type 3 GRN: {reply}");

    heading("USN type 4: the GRN itself generates the serials (SKU and quantity in, serials out)");
    tour.run(&["ACCOUNT.CREATE", "shop4", "USN", "4", "PREFIX", "BX"])?;
    tour.run(&["SKU.SET", "shop4", "SERIALIZED", "BOX"])?;
    tour.run(&[
        "PO.CREATE",
        "shop4",
        r#"{"referenceCode":"PO-4","items":[{"lineItemNumber":"1","sku":"BOX","quantity":3}]}"#,
    ])?;
    let reply = tour.json(&[
        "GRN.COMMIT",
        "shop4",
        r#"{"grnId":"G-4","referenceCode":"PO-4","items":[{"sku":"BOX","quantity":3}]}"#,
    ])?;
    ensure!(serials_of(&reply).len() == 3, "type 4 GRN: {reply}");

    heading("USN type 5: serials come from a standalone pool generated beforehand");
    tour.run(&["ACCOUNT.CREATE", "shop5", "USN", "5", "PREFIX", "PL"])?;
    tour.run(&["SKU.SET", "shop5", "SERIALIZED", "TOOL"])?;
    let pooled = tour.json(&["SERIALS.GENERATE", "shop5", "COUNT", "2", "SKU", "TOOL"])?;
    let pooled = serde_json::to_string(&serials_of(&pooled))?;
    tour.run(&[
        "PO.CREATE",
        "shop5",
        r#"{"referenceCode":"PO-5","items":[{"lineItemNumber":"1","sku":"TOOL","quantity":2}]}"#,
    ])?;
    let reply = tour.json(&["GRN.COMMIT", "shop5", &format!(r#"{{"grnId":"G-5","referenceCode":"PO-5","items":[{{"sku":"TOOL","serials":{pooled}}}]}}"#)])?;
    ensure!(reply["status"] == "committed", "type 5 GRN: {reply}");

    heading("A serial's life: look it up, sell it, take it back");
    tour.run(&["SERIAL.GET", "shop2", "LT-1"])?;
    tour.run(&["OUTWARD", "shop2", r#"{"order":"SO-1","serials":["LT-1"]}"#])?;
    tour.run(&[
        "RETURN",
        "shop2",
        r#"{"order":"SO-1","serials":["LT-1"],"condition":"bad","qcReason":"SCRATCHED"}"#,
    ])?;
    tour.run(&["PO.REPORT", "shop2", "PO-2"])?;

    bulk(&mut tour.con, args.serials)?;

    println!(
        "\nWhere next:\n\
         - README.md: the two set-up commands, the workflows, limits and figures\n\
         - docs/protocol.md: every command with redis-cli transcripts\n\
         - serialgate serve: the server on ./serialgate-data, port 7878\n\
         - serialgate import po|grn FILE: POs and GRNs from CSV, Excel or ODS sheets\n\
         - serialgate report po|serial|reconcile, serialgate labels: reports and barcode labels\n\
         - serialgate bench: the measurements behind docs/BENCHMARKS.md"
    );
    drop(server);
    Ok(())
}

/// Type 2 GRNs of `serials` fresh serials over the protocol, with a progress bar.
fn bulk(con: &mut redis::Connection, serials: usize) -> anyhow::Result<()> {
    heading(&format!(
        "Bulk: {serials} serials in GRNs of {BULK_GRN_SERIALS}, validated and committed durably"
    ));
    redis::cmd("ACCOUNT.CREATE")
        .arg("bulk")
        .arg("USN")
        .arg("2")
        .exec(con)?;
    redis::cmd("SKU.SET")
        .arg("bulk")
        .arg("SERIALIZED")
        .arg("ITEM")
        .exec(con)?;
    let bar = progress(serials, "bulk GRN");
    let mut busy = std::time::Duration::ZERO;
    for (k, n) in batches(serials, BULK_GRN_SERIALS) {
        let reference = format!("BULK-{k}");
        let po = format!(
            r#"{{"referenceCode":"{reference}","items":[{{"lineItemNumber":"1","sku":"ITEM","quantity":{n}}}]}}"#
        );
        redis::cmd("PO.CREATE").arg("bulk").arg(po).exec(con)?;
        let list = workload::serials(0xDE30, k, n);
        let body = serde_json::json!({
            "grnId": format!("G-{reference}"),
            "referenceCode": reference,
            "items": [{"sku": "ITEM", "serials": list}],
        });
        let body = serde_json::to_vec(&body)?;
        let started = Instant::now();
        let reply: String = redis::cmd("GRN.COMMIT").arg("bulk").arg(body).query(con)?;
        busy += started.elapsed();
        ensure!(
            reply.contains("\"committed\""),
            "bulk GRN {k}: {}",
            &reply[..reply.len().min(300)]
        );
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    println!(
        "  {serials} serials committed in {:.2} s: {:.0} serials/s over the protocol \
         (request sent to reply received; each GRN synced to disk)",
        busy.as_secs_f64(),
        rate(serials, busy)
    );
    Ok(())
}
