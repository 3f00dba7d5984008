//! Redis 7 as a serial index: one set of every received serial, `SADD` per serial,
//! pipelined, with the append-only file on (`appendfsync everysec` or `always`).
//!
//! `SADD` answers 0 for a serial already in the set, so duplicates (stored or repeated
//! within a GRN) are reported per serial. A GRN is not all-or-nothing here: the fresh
//! serials of a GRN holding duplicates are kept, as `ON CONFLICT DO NOTHING` keeps them in
//! PostgreSQL. W3 checks each serial against its PO's set with `SMISMEMBER` first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{ensure, Context};
use serialgate::serial::SerialList;

use super::measure::{dir_bytes, Processes};
use super::servers::{free_port, stop, wait_for_port};
use super::{Client, GrnOutcome, System};

const SERIALS: &str = "serials";
/// Commands per round trip.
const PIPELINE: usize = 10_000;
/// Serials per `SMISMEMBER`.
const MEMBERS_PER_COMMAND: usize = 1000;

pub struct RedisPeer {
    name: &'static str,
    url: String,
    con: redis::Connection,
    child: Child,
    dir: PathBuf,
}

impl RedisPeer {
    /// Starts `redis-server` on a free loopback port with its data in `dir`.
    pub fn start(dir: &Path, appendfsync: &str) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(dir)
            .args(["--appendonly", "yes", "--appendfsync", appendfsync])
            // No RDB snapshots on top of the AOF: their forks would only add load.
            .args(["--save", ""])
            .args(["--protected-mode", "no", "--logfile", "redis.log"])
            .stdout(Stdio::null())
            .spawn()
            .context("starting redis-server (Debian package redis-server)")?;
        wait_for_port(port, &mut child, "redis-server")?;
        let url = format!("redis://127.0.0.1:{port}/");
        let con = redis::Client::open(url.as_str())?.get_connection()?;
        let name = match appendfsync {
            "always" => "Redis 7 (appendfsync always)",
            _ => "Redis 7 (appendfsync everysec)",
        };
        Ok(Self {
            name,
            url,
            con,
            child,
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for RedisPeer {
    fn drop(&mut self) {
        stop(&mut self.child, "TERM");
    }
}

/// `SADD serials s` for every serial, pipelined; how many were new.
fn sadd_each(con: &mut redis::Connection, serials: &SerialList) -> anyhow::Result<usize> {
    let all: Vec<&[u8]> = serials.iter().collect();
    let mut added = 0;
    for chunk in all.chunks(PIPELINE) {
        let mut pipe = redis::pipe();
        for serial in chunk {
            pipe.cmd("SADD").arg(SERIALS).arg(*serial);
        }
        let replies: Vec<i64> = pipe.query(con)?;
        added += replies.iter().filter(|&&r| r == 1).count();
    }
    Ok(added)
}

fn grn(con: &mut redis::Connection, serials: &SerialList) -> anyhow::Result<GrnOutcome> {
    let added = sadd_each(con, serials)?;
    Ok(GrnOutcome {
        committed: added,
        reported: serials.len() - added,
    })
}

impl System for RedisPeer {
    fn name(&self) -> &'static str {
        self.name
    }

    fn processes(&self) -> Processes {
        Processes::Tree(self.child.id())
    }

    fn preload(&mut self, serials: &SerialList) -> anyhow::Result<()> {
        let added = sadd_each(&mut self.con, serials)?;
        ensure!(
            added == serials.len(),
            "preload: {added} of {} added",
            serials.len()
        );
        Ok(())
    }

    fn grn(&mut self, _grn: &str, serials: &SerialList) -> anyhow::Result<GrnOutcome> {
        grn(&mut self.con, serials)
    }

    fn expect(&mut self, po: &str, serials: &SerialList) -> anyhow::Result<bool> {
        let key = format!("expected:{po}");
        let all: Vec<&[u8]> = serials.iter().collect();
        let mut pipe = redis::pipe();
        for chunk in all.chunks(MEMBERS_PER_COMMAND) {
            pipe.cmd("SADD").arg(&key).arg(chunk).ignore();
        }
        pipe.query::<()>(&mut self.con)?;
        Ok(true)
    }

    fn grn_expected(&mut self, po: &str, serials: &SerialList) -> anyhow::Result<GrnOutcome> {
        let key = format!("expected:{po}");
        let all: Vec<&[u8]> = serials.iter().collect();
        let mut pipe = redis::pipe();
        for chunk in all.chunks(MEMBERS_PER_COMMAND) {
            pipe.cmd("SMISMEMBER").arg(&key).arg(chunk);
        }
        let answers: Vec<Vec<i64>> = pipe.query(&mut self.con)?;
        let expected: SerialList = all
            .iter()
            .zip(answers.iter().flatten())
            .filter(|(_, &member)| member == 1)
            .map(|(s, _)| *s)
            .collect();
        let unexpected = serials.len() - expected.len();
        let outcome = grn(&mut self.con, &expected)?;
        Ok(GrnOutcome {
            committed: outcome.committed,
            reported: outcome.reported + unexpected,
        })
    }

    fn lookup(&mut self, serials: &[&[u8]]) -> anyhow::Result<usize> {
        let found: Vec<i64> = redis::cmd("SMISMEMBER")
            .arg(SERIALS)
            .arg(serials)
            .query(&mut self.con)?;
        Ok(found.iter().filter(|&&f| f == 1).count())
    }

    fn prepare_clients(&mut self, _serials: usize) -> anyhow::Result<bool> {
        Ok(true)
    }

    fn client(&self) -> anyhow::Result<Box<dyn Client>> {
        let con = redis::Client::open(self.url.as_str())?.get_connection()?;
        Ok(Box::new(RedisClient(con)))
    }

    fn disk_bytes(&mut self) -> anyhow::Result<u64> {
        Ok(dir_bytes(&self.dir))
    }
}

struct RedisClient(redis::Connection);

impl Client for RedisClient {
    fn grn(&mut self, _grn: &str, serials: &SerialList) -> anyhow::Result<GrnOutcome> {
        grn(&mut self.0, serials)
    }
}
