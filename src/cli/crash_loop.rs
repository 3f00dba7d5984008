//! `serialgate crash-loop`: the server killed with SIGKILL at random moments while four
//! clients stream GRNs, restarted, and checked against an oracle the clients keep.
//!
//! Clients: (0) valid type 2 GRNs; (1) type 2 GRNs with a serial repeated inside; (2) type 2
//! GRNs carrying a serial already acknowledged; (3) type 4 GRNs (the engine generates the
//! serials) alternating with type 1 GRNs, one of which brings a serial the PO does not
//! expect. Every GRN's own serials are unique to it, so after each restart:
//!
//! - every serial of an acknowledged GRN is there, inwarded by that GRN (nothing lost,
//!   no serial in two GRNs);
//! - a GRN whose reply never came is all there or not there at all (never partial);
//! - a rejected GRN left none of its serials;
//! - a stored serial a rejected GRN repeated still belongs to its first GRN;
//! - no generated serial is ever handed out twice, across every crash.
//!
//! One round in ten also kills the restarted server at a random moment of its start
//! (recovery). At the end the server is stopped and `serialgate check` verifies every
//! account's invariants offline.

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Args;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use serialgate::powerloss::{self, Dropped};

#[derive(Args)]
pub struct CrashLoopArgs {
    /// Kill-and-restart rounds.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Data directory (default: a temporary one, removed afterwards).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Longest a round runs before the kill, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    round_ms_max: u64,
    /// Most serials in one GRN.
    #[arg(long, default_value_t = 200)]
    grn_serials_max: usize,
    /// Simulate power loss: preload this shim (tools/powerloss.c, built by
    /// tools/crash-loop) into the server, and after every kill cut each file back to the
    /// length its last fsync made durable.
    #[arg(long)]
    power_loss_shim: Option<PathBuf>,
}

/// How the server is run: where, and with the power-loss shim or not.
struct Launch {
    data: PathBuf,
    shim: Option<(PathBuf, PathBuf)>,
}

const CLIENTS: usize = 4;
/// Every this many rounds, the restart itself is killed once.
const RECOVERY_KILL_EVERY: usize = 10;
/// One round in this many ends with a clean stop (SIGTERM) instead of a kill, so restarts
/// from the prefilter snapshot a clean stop leaves are crash-tested too.
const CLEAN_STOP_EVERY: usize = 4;
/// Earlier GRNs re-checked after each restart, besides all of the last round's.
const RECHECK_SAMPLE: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Committed,
    Rejected,
    /// Sent; the server died before the reply.
    Unknown,
}

#[derive(Debug, Clone)]
struct GrnFact {
    account: &'static str,
    grn_id: String,
    /// The body sent, to resolve an unknown type 4 GRN by replaying it.
    body: String,
    /// Serials unique to this GRN (given, or generated and acknowledged).
    serials: Vec<String>,
    /// A stored serial this GRN repeated (client 2), with the GRN that owns it.
    repeated: Option<(String, String)>,
    outcome: Outcome,
    /// The kill came before the reply (`outcome` is then settled by what the store holds).
    was_unknown: bool,
    generated: bool,
}

#[derive(Default)]
struct Oracle {
    grns: Vec<GrnFact>,
    /// Acknowledged type 2 serials and their GRN, for client 2 to repeat.
    stored: Vec<(String, String)>,
    generated: HashSet<String>,
    violations: Vec<String>,
}

impl Oracle {
    fn violation(&mut self, what: String) {
        eprintln!("VIOLATION: {what}");
        self.violations.push(what);
    }

    /// Records type 4 serials just acknowledged; any seen before is a reissue.
    fn generated(&mut self, grn: &str, serials: &[String]) {
        for s in serials {
            if !self.generated.insert(s.clone()) {
                self.violation(format!("generated serial {s} reissued (GRN {grn})"));
            }
        }
    }
}

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(launch: &Launch) -> anyhow::Result<Server> {
        let mut child = spawn(launch)?;
        let mut stdout = child.stdout.take().context("server stdout")?;
        let line = read_line(&mut stdout)?;
        let Some(addr) = line.rsplit(' ').next().filter(|a| a.contains(':')) else {
            let _ = child.kill();
            bail!("the server did not start: {line:?}");
        };
        Ok(Server {
            addr: addr.to_string(),
            child,
        })
    }

    /// SIGTERM: the server stops accepting, finishes what is in flight and closes the
    /// engine, which leaves its prefilter snapshot.
    fn stop_clean(&mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                ensure!(status.success(), "the server stopped with {status}");
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(120) {
                self.kill9();
                bail!("the server did not stop within 120 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the server's prefilter came from a snapshot (INFO `prefilter_restored`).
    fn prefilter_restored(&self) -> anyhow::Result<bool> {
        let mut con = connect(&self.addr)?;
        let info: String = redis::cmd("INFO").query(&mut con)?;
        Ok(info.contains("prefilter_restored:1"))
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(launch: &Launch) -> anyhow::Result<Child> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&launch.data)
        // Every clean stop leaves a prefilter snapshot, however small the store.
        .args(["--prefilter-snapshot-min", "0"])
        .env("RUST_LOG", "error")
        .env_remove("SERIALGATE_PASSWORD")
        .stdout(Stdio::piped());
    if let Some((shim, log)) = &launch.shim {
        command
            .env("LD_PRELOAD", shim)
            .env("SERIALGATE_SYNC_LOG", log);
    }
    command.spawn().context("starting serialgate serve")
}

impl Launch {
    /// After a kill: with the shim, cut every file of the store back to the length its last
    /// fsync made durable (files never synced to nothing), as a power failure would.
    fn lose_power(&self, total: &mut Dropped) -> anyhow::Result<()> {
        if let Some((_, log)) = &self.shim {
            *total += powerloss::cut_to_synced(&self.data, log)?;
        }
        Ok(())
    }
}

fn read_line(out: &mut impl Read) -> anyhow::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte)? == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).trim().to_string())
}

fn connect(addr: &str) -> anyhow::Result<redis::Connection> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let con = client.get_connection_with_timeout(Duration::from_secs(5))?;
    con.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(con)
}

fn call(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<String> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con)
}

pub fn run(args: CrashLoopArgs) -> anyhow::Result<()> {
    ensure!(
        args.grn_serials_max >= 2,
        "--grn-serials-max must be at least 2"
    );
    let temp;
    let data = match &args.data {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().join("data")
        }
    };
    let launch = Launch {
        shim: match &args.power_loss_shim {
            Some(shim) => Some((
                std::fs::canonicalize(shim).context("the power-loss shim")?,
                data.with_extension("sync-log"),
            )),
            None => None,
        },
        data: data.clone(),
    };
    let mut power = Dropped::default();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let oracle = Arc::new(Mutex::new(Oracle::default()));
    let started = Instant::now();
    std::fs::create_dir_all(&data)?;
    let mut server = Server::start(&launch)?;
    setup(&server.addr)?;
    let (mut recovery_kills, mut recovery_kills_before_ready) = (0, 0);
    let (mut clean_stops, mut restored) = (0, 0);
    println!(
        "crash-loop: {} rounds, {CLIENTS} clients, kill -9 within {} ms, seed {}{}",
        args.rounds,
        args.round_ms_max,
        args.seed,
        if launch.shim.is_some() {
            ", power loss simulated after every kill"
        } else {
            ""
        }
    );
    for round in 0..args.rounds {
        let first_new = oracle.lock().grns.len();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (addr, oracle) = (server.addr.clone(), oracle.clone());
                let seed = rng.random::<u64>();
                let max = args.grn_serials_max;
                std::thread::spawn(move || run_client(client, round, &addr, &oracle, seed, max))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(
            rng.random_range(20..=args.round_ms_max.max(20)),
        ));
        let clean_stop = round % CLEAN_STOP_EVERY == CLEAN_STOP_EVERY - 1;
        if clean_stop {
            server.stop_clean()?;
            clean_stops += 1;
        } else {
            server.kill9();
        }
        for client in clients {
            let _ = client.join();
        }
        launch.lose_power(&mut power)?;
        let recovery_kill = round % RECOVERY_KILL_EVERY == RECOVERY_KILL_EVERY - 1;
        if recovery_kill {
            // Kill the restart at a random moment of opening the store.
            let mut child = spawn(&launch)?;
            std::thread::sleep(Duration::from_millis(rng.random_range(0..30)));
            let _ = child.kill();
            let _ = child.wait();
            let mut printed = String::new();
            if let Some(mut out) = child.stdout.take() {
                let _ = out.read_to_string(&mut printed);
            }
            launch.lose_power(&mut power)?;
            recovery_kills += 1;
            if !printed.contains("listening") {
                recovery_kills_before_ready += 1;
            }
        }
        server = Server::start(&launch)?;
        if clean_stop && !recovery_kill && server.prefilter_restored()? {
            restored += 1;
        }
        check(&server.addr, &oracle, first_new, &mut rng)?;
        let o = oracle.lock();
        if !o.violations.is_empty() {
            break;
        }
        if (round + 1) % 10 == 0 || round + 1 == args.rounds {
            println!(
                "  round {:>4}: {} GRNs so far, {} generated serials, {:.0} s",
                round + 1,
                o.grns.len(),
                o.generated.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    // Everything once more, then the offline invariant check on the stopped store.
    {
        let mut con = connect(&server.addr)?;
        let mut o = oracle.lock();
        let all: Vec<usize> = (0..o.grns.len()).collect();
        verify(&mut con, &mut o, &all)?;
    }
    server.kill9();
    let check = Command::new(std::env::current_exe()?)
        .args(["check", "--data"])
        .arg(&data)
        .args(["t1", "t2", "t4"])
        .env("RUST_LOG", "error")
        .output()?;
    let o = oracle.lock();
    let count = |outcome| {
        o.grns
            .iter()
            .filter(|g| !g.was_unknown && g.outcome == outcome)
            .count()
    };
    let unknown = |outcome| {
        o.grns
            .iter()
            .filter(|g| g.was_unknown && g.outcome == outcome)
            .count()
    };
    println!(
        "crash-loop: {} rounds in {:.0} s; {} GRNs: {} committed, {} rejected as they should be, \
         {} cut off by the kill ({} found whole, {} found absent; partial ones are violations); {} generated \
         serials (reissues are violations); {recovery_kills} kills during restart \
         ({recovery_kills_before_ready} before it was serving); {clean_stops} clean stops \
         (SIGTERM), {restored} restarts from the prefilter snapshot they left; violations: {}; offline check: {}",
        args.rounds,
        started.elapsed().as_secs_f64(),
        o.grns.len(),
        count(Outcome::Committed),
        count(Outcome::Rejected),
        unknown(Outcome::Committed) + unknown(Outcome::Rejected) + unknown(Outcome::Unknown),
        unknown(Outcome::Committed),
        unknown(Outcome::Rejected),
        o.generated.len(),
        o.violations.len(),
        if check.status.success() {
            "consistent"
        } else {
            "FAILED"
        }
    );
    if launch.shim.is_some() {
        println!(
            "power loss: {} files cut back to their synced length, {} unsynced bytes dropped",
            power.files_cut, power.bytes_dropped
        );
    }
    if !check.status.success() {
        bail!(
            "serialgate check failed:\n{}",
            String::from_utf8_lossy(&check.stdout)
        );
    }
    if !o.violations.is_empty() {
        bail!(
            "{} violations; the first: {}",
            o.violations.len(),
            o.violations[0]
        );
    }
    Ok(())
}

fn setup(addr: &str) -> anyhow::Result<()> {
    let mut con = connect(addr)?;
    for (account, usn) in [("t1", "1"), ("t2", "2"), ("t4", "4")] {
        call(
            &mut con,
            &["ACCOUNT.CREATE", account, "USN", usn, "PREFIX", "CL"],
        )?;
        call(&mut con, &["SKU.SET", account, "SERIALIZED", "S"])?;
    }
    Ok(())
}

/// Units ordered on each client's round PO: more than any round receives.
const ROUND_PO_UNITS: u64 = 100_000_000;

fn round_po(round: usize, client: usize) -> String {
    format!("PO-{round}-{client}")
}

/// What client `client` sends as its `n`-th GRN.
struct Plan {
    account: &'static str,
    /// A PO to create first (type 1); else the GRN goes against the client's round PO.
    po: Option<Value>,
    grn: Value,
    serials: Vec<String>,
    repeated: Option<(String, String)>,
    expect: Outcome,
    generated: bool,
}

fn plan(
    client: usize,
    round: usize,
    n: usize,
    k: usize,
    oracle: &Mutex<Oracle>,
    rng: &mut ChaCha8Rng,
) -> Plan {
    let tag = format!("{round}-{client}-{n}");
    let shared = round_po(round, client);
    let own = format!("PO-{tag}");
    let fresh: Vec<String> = (0..k).map(|i| format!("CL-{tag}-{i}")).collect();
    let po = |quantity: usize, serials: Option<&[String]>| {
        let mut line = json!({"lineItemNumber": "1", "sku": "S", "quantity": quantity});
        if let Some(s) = serials {
            line["serials"] = json!(s);
        }
        json!({"referenceCode": own, "items": [line]})
    };
    let grn_on = |reference: &str, serials: &[String]| {
        json!({"grnId": format!("G-{tag}"), "referenceCode": reference,
               "items": [{"sku": "S", "serials": serials}]})
    };
    let grn = |serials: &[String]| grn_on(&shared, serials);
    let plain = |account, expect| Plan {
        account,
        po: None,
        grn: grn(&fresh),
        serials: fresh.clone(),
        repeated: None,
        expect,
        generated: false,
    };
    match client {
        0 => plain("t2", Outcome::Committed),
        1 => {
            let mut with_repeat = fresh.clone();
            with_repeat.push(fresh[rng.random_range(0..k)].clone());
            Plan {
                grn: grn(&with_repeat),
                ..plain("t2", Outcome::Rejected)
            }
        }
        2 => {
            let stored = {
                let o = oracle.lock();
                (!o.stored.is_empty())
                    .then(|| o.stored[rng.random_range(0..o.stored.len())].clone())
            };
            match stored {
                Some((serial, owner)) => {
                    let mut with_stored = fresh.clone();
                    with_stored.insert(rng.random_range(0..=k), serial.clone());
                    Plan {
                        grn: grn(&with_stored),
                        repeated: Some((serial, owner)),
                        ..plain("t2", Outcome::Rejected)
                    }
                }
                None => plain("t2", Outcome::Committed),
            }
        }
        _ if n % 2 == 0 => Plan {
            grn: json!({"grnId": format!("G-{tag}"), "referenceCode": shared,
                        "items": [{"sku": "S", "quantity": k}]}),
            serials: Vec::new(),
            generated: true,
            ..plain("t4", Outcome::Committed)
        },
        _ => {
            // Type 1: the PO expects `fresh`; every other GRN swaps one for a stranger.
            let unexpected = n % 4 == 1;
            let mut sent = fresh.clone();
            if unexpected {
                sent[0] = format!("CL-{tag}-stranger");
            }
            Plan {
                po: Some(po(k, Some(&fresh))),
                grn: grn_on(&own, &sent),
                serials: if unexpected {
                    sent[1..].to_vec()
                } else {
                    fresh.clone()
                },
                ..plain(
                    "t1",
                    if unexpected {
                        Outcome::Rejected
                    } else {
                        Outcome::Committed
                    },
                )
            }
        }
    }
}

fn run_client(
    client: usize,
    round: usize,
    addr: &str,
    oracle: &Mutex<Oracle>,
    seed: u64,
    max: usize,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let Ok(mut con) = connect(addr) else {
        return;
    };
    // One PO per client and round takes every type 2 or type 4 GRN of the round.
    let round_po = json!({"referenceCode": round_po(round, client),
        "items": [{"lineItemNumber": "1", "sku": "S", "quantity": ROUND_PO_UNITS}]});
    let account = if client == 3 { "t4" } else { "t2" };
    if call(&mut con, &["PO.CREATE", account, &round_po.to_string()]).is_err() {
        return;
    }
    for n in 0.. {
        let k = rng.random_range(1..=max / 2).max(1);
        let p = plan(client, round, n, k, oracle, &mut rng);
        if let Some(po) = &p.po {
            if call(&mut con, &["PO.CREATE", p.account, &po.to_string()]).is_err() {
                return; // killed before the GRN was sent: nothing to track
            }
        }
        let body = p.grn.to_string();
        let mut fact = GrnFact {
            account: p.account,
            grn_id: p.grn["grnId"].as_str().unwrap_or_default().to_string(),
            body: body.clone(),
            serials: p.serials,
            repeated: p.repeated,
            outcome: Outcome::Unknown,
            was_unknown: false,
            generated: p.generated,
        };
        let reply = call(&mut con, &["GRN.COMMIT", p.account, &body]);
        let mut o = oracle.lock();
        let reply = match reply {
            Ok(reply) => reply,
            // The server answered with an error: none is due here.
            Err(e) if e.code().is_some() => {
                o.violation(format!("GRN {} refused: {e}", fact.grn_id));
                return;
            }
            Err(_) => {
                fact.was_unknown = true;
                o.grns.push(fact);
                return;
            }
        };
        let reply: Value = serde_json::from_str(&reply).unwrap_or(Value::Null);
        let status = reply["status"].as_str().unwrap_or("");
        fact.outcome = match status {
            "committed" => Outcome::Committed,
            _ => Outcome::Rejected,
        };
        if fact.outcome != p.expect {
            o.violation(format!(
                "GRN {} answered {reply} where {:?} was due",
                fact.grn_id, p.expect
            ));
        }
        if fact.generated && fact.outcome == Outcome::Committed {
            let serials = strings(&reply["serials"]);
            o.generated(&fact.grn_id, &serials);
            fact.serials = serials;
        }
        if fact.outcome == Outcome::Committed && fact.account == "t2" {
            for s in &fact.serials {
                o.stored.push((s.clone(), fact.grn_id.clone()));
            }
        }
        o.grns.push(fact);
        drop(o);
        // A short pause, so kills land between GRNs as well as inside them.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..10)));
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// After a restart: resolves the last round's unknown GRNs and checks them all, plus a
/// sample of earlier ones.
fn check(
    addr: &str,
    oracle: &Mutex<Oracle>,
    first_new: usize,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<()> {
    let mut con = connect(addr)?;
    let mut o = oracle.lock();
    let mut indices: Vec<usize> = (first_new..o.grns.len()).collect();
    for _ in 0..RECHECK_SAMPLE.min(first_new) {
        indices.push(rng.random_range(0..first_new));
    }
    // Unknown type 4 GRNs are resolved by replaying them: a committed one answers its
    // original serials; one that never committed commits now.
    for &i in &indices {
        let g = &o.grns[i];
        if g.generated && g.outcome == Outcome::Unknown {
            let (id, body) = (g.grn_id.clone(), g.body.clone());
            let reply: Value =
                serde_json::from_str(&call(&mut con, &["GRN.COMMIT", "t4", &body])?)?;
            ensure!(reply["status"] == "committed", "replay of {id}: {reply}");
            // Committed before the kill (replayed) or now: either way its serials are
            // new to the oracle.
            let serials = strings(&reply["serials"]);
            o.generated(&id, &serials);
            o.grns[i].serials = serials;
            o.grns[i].outcome = Outcome::Committed;
        }
    }
    verify(&mut con, &mut o, &indices)
}

/// Checks GRNs `indices` against the store; settles unknown ones as committed or absent.
fn verify(con: &mut redis::Connection, o: &mut Oracle, indices: &[usize]) -> anyhow::Result<()> {
    for &i in indices {
        let g = o.grns[i].clone();
        let mut present = 0;
        for chunk in g.serials.chunks(1000) {
            let mut cmd = redis::cmd("SERIAL.MGET");
            cmd.arg(g.account);
            for s in chunk {
                cmd.arg(s);
            }
            let views: Vec<Option<String>> = cmd.query(con)?;
            for (serial, view) in chunk.iter().zip(views) {
                let Some(view) = view else { continue };
                let view: Value = serde_json::from_str(&view)?;
                if view["grn"] == g.grn_id.as_str() && view["state"] == "inwarded" {
                    present += 1;
                } else if view["state"] != "expected" {
                    o.violation(format!("{serial} of GRN {} is {view}", g.grn_id));
                }
            }
        }
        match g.outcome {
            Outcome::Committed if present != g.serials.len() => o.violation(format!(
                "acknowledged GRN {} has {present} of its {} serials",
                g.grn_id,
                g.serials.len()
            )),
            Outcome::Rejected if present != 0 => {
                o.violation(format!("rejected GRN {} left {present} serials", g.grn_id))
            }
            Outcome::Unknown if present != 0 && present != g.serials.len() => o.violation(format!(
                "GRN {} is partly present: {present} of {}",
                g.grn_id,
                g.serials.len()
            )),
            // Settled: from now on it must stay as it is.
            Outcome::Unknown if present == 0 => o.grns[i].outcome = Outcome::Rejected,
            Outcome::Unknown => o.grns[i].outcome = Outcome::Committed,
            _ => {}
        }
        if let Some((serial, owner)) = &g.repeated {
            let view: Option<String> = redis::cmd("SERIAL.GET")
                .arg(g.account)
                .arg(serial)
                .query(con)?;
            let view: Value = view.map_or(Value::Null, |v| {
                serde_json::from_str(&v).unwrap_or(Value::Null)
            });
            if view["grn"] != owner.as_str() {
                o.violation(format!(
                    "stored {serial} of {owner} now reads {view} after GRN {}",
                    g.grn_id
                ));
            }
        }
    }
    Ok(())
}
