//! PostgreSQL 15 as a serial index: a table with the serial as its primary key. A GRN is one
//! transaction: `COPY` into a temporary staging table, then
//! `INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING serial`; serials not returned are
//! the duplicates (stored, or repeated within the GRN), and the fresh ones are kept.
//!
//! Durable settings: `fsync`, `synchronous_commit` and `full_page_writes` on (the defaults).
//! Tuned as a user with this machine would: 4 GB of shared buffers, a 16 GB WAL budget
//! between checkpoints, and the C collation (serials are ASCII codes, compared bytewise as
//! serialgate does).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, ensure, Context};
use postgres::{Client as PgClient, NoTls};
use serialgate::serial::SerialList;

use super::measure::Processes;
use super::servers::{free_port, stop, wait_for_port};
use super::{Client, GrnOutcome, System};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const SETTINGS: &[&str] = &[
    "fsync=on",
    "synchronous_commit=on",
    "full_page_writes=on",
    "shared_buffers=4GB",
    "max_wal_size=16GB",
    "checkpoint_timeout=30min",
    "max_connections=200",
    "work_mem=64MB",
    "maintenance_work_mem=1GB",
];
const SCHEMA: &str = "
    CREATE TABLE serials (serial text PRIMARY KEY, grn text NOT NULL);
    CREATE TABLE expected (po text NOT NULL, serial text NOT NULL, PRIMARY KEY (po, serial));";
/// Per connection: where a GRN's serials are copied to; emptied at every commit.
const STAGING: &str = "CREATE TEMP TABLE staging (serial text) ON COMMIT DELETE ROWS";
const INSERT: &str = "INSERT INTO serials (serial, grn) SELECT serial, $1 FROM staging \
                      ON CONFLICT DO NOTHING RETURNING serial";
const INSERT_EXPECTED: &str = "INSERT INTO serials (serial, grn) SELECT s.serial, $1 \
                               FROM staging s JOIN expected e ON e.po = $2 AND e.serial = s.serial \
                               ON CONFLICT DO NOTHING RETURNING serial";

pub struct Postgres {
    conninfo: String,
    client: PgClient,
    child: Child,
    data: PathBuf,
}

/// Runs `program` as the `postgres` user when this process is root (PostgreSQL refuses to
/// run as root), as itself otherwise.
fn as_postgres(program: &str) -> Command {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        command
    } else {
        Command::new(program)
    }
}

impl Postgres {
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        ensure!(
            Path::new(BIN).join("postgres").exists(),
            "PostgreSQL 15 is not installed (Debian package postgresql-15)"
        );
        let data = dir.join("pgdata");
        std::fs::create_dir_all(&data)?;
        // The server runs as `postgres`: it must reach and own its directory.
        for parent in data.ancestors().skip(1).take(3) {
            let _ = Command::new("chmod").arg("a+x").arg(parent).status();
        }
        let _ = Command::new("chown").arg("postgres:").arg(&data).status();
        let status = as_postgres(&format!("{BIN}/initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .stdout(Stdio::null())
            .status()
            .context("running initdb")?;
        ensure!(status.success(), "initdb failed: {status}");
        let port = free_port()?;
        let mut command = as_postgres(&format!("{BIN}/postgres"));
        command
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-k",
            ])
            .arg(&data);
        for setting in SETTINGS {
            command.args(["-c", setting]);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting postgres")?;
        wait_for_port(port, &mut child, "postgres")?;
        let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
        // The port opens before the server takes connections ("the database system is
        // starting up" while it recovers or initialises).
        let started = std::time::Instant::now();
        let mut client = loop {
            match connect(&conninfo) {
                Ok(client) => break client,
                Err(e) if started.elapsed() < std::time::Duration::from_secs(60) => {
                    tracing::debug!(error = %e, "PostgreSQL not ready yet");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        };
        client.batch_execute(SCHEMA)?;
        Ok(Self {
            conninfo,
            client,
            child,
            data,
        })
    }

    fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown; the runuser wrapper exits with it.
        if let Some(pid) = self.postmaster_pid() {
            super::servers::signal(pid, "INT");
        }
        stop(&mut self.child, "INT");
    }
}

fn connect(conninfo: &str) -> anyhow::Result<PgClient> {
    let mut client = PgClient::connect(conninfo, NoTls).context("connecting to PostgreSQL")?;
    client.batch_execute(STAGING)?;
    Ok(client)
}

/// One line per serial: COPY's text format. Serials are letters and digits, so nothing
/// needs escaping; anything else is refused rather than sent wrong.
fn copy_lines(serials: &SerialList, suffix: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(serials.byte_len() + serials.len() * (1 + suffix.len()));
    for serial in serials.iter() {
        if serial
            .iter()
            .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
        {
            bail!(
                "serial {:?} would need COPY escaping",
                serial.escape_ascii()
            );
        }
        buf.extend_from_slice(serial);
        buf.extend_from_slice(suffix);
        buf.push(b'\n');
    }
    Ok(buf)
}

/// One GRN in one transaction; `po` checks each serial against that PO's expected serials.
fn grn(
    client: &mut PgClient,
    grn: &str,
    po: Option<&str>,
    serials: &SerialList,
) -> anyhow::Result<GrnOutcome> {
    let lines = copy_lines(serials, b"")?;
    let mut tx = client.transaction()?;
    let mut copy = tx.copy_in("COPY staging (serial) FROM STDIN")?;
    copy.write_all(&lines)?;
    copy.finish()?;
    let inserted = match po {
        None => tx.query(INSERT, &[&grn])?,
        Some(po) => tx.query(INSERT_EXPECTED, &[&grn, &po])?,
    };
    tx.commit()?;
    Ok(GrnOutcome {
        committed: inserted.len(),
        reported: serials.len() - inserted.len(),
    })
}

impl System for Postgres {
    fn name(&self) -> &'static str {
        "PostgreSQL 15"
    }

    fn processes(&self) -> Processes {
        Processes::Tree(self.child.id())
    }

    fn preload(&mut self, serials: &SerialList) -> anyhow::Result<()> {
        let lines = copy_lines(serials, b"\tPRELOAD")?;
        let mut copy = self
            .client
            .copy_in("COPY serials (serial, grn) FROM STDIN")?;
        copy.write_all(&lines)?;
        copy.finish()?;
        Ok(())
    }

    fn grn(&mut self, grn_id: &str, serials: &SerialList) -> anyhow::Result<GrnOutcome> {
        grn(&mut self.client, grn_id, None, serials)
    }

    fn expect(&mut self, po: &str, serials: &SerialList) -> anyhow::Result<bool> {
        let lines = copy_lines(serials, b"")?;
        let mut prefixed = Vec::with_capacity(lines.len() + serials.len() * (po.len() + 1));
        for line in lines.split_inclusive(|&b| b == b'\n') {
            prefixed.extend_from_slice(po.as_bytes());
            prefixed.push(b'\t');
            prefixed.extend_from_slice(line);
        }
        let mut copy = self
            .client
            .copy_in("COPY expected (po, serial) FROM STDIN")?;
        copy.write_all(&prefixed)?;
        copy.finish()?;
        Ok(true)
    }

    fn grn_expected(&mut self, po: &str, serials: &SerialList) -> anyhow::Result<GrnOutcome> {
        grn(&mut self.client, &format!("G-{po}"), Some(po), serials)
    }

    fn lookup(&mut self, serials: &[&[u8]]) -> anyhow::Result<usize> {
        let texts: Vec<&str> = serials
            .iter()
            .map(|s| std::str::from_utf8(s))
            .collect::<Result<_, _>>()?;
        let rows = self.client.query(
            "SELECT serial FROM serials WHERE serial = ANY($1)",
            &[&texts],
        )?;
        Ok(rows.len())
    }

    fn prepare_clients(&mut self, _serials: usize) -> anyhow::Result<bool> {
        Ok(true)
    }

    fn client(&self) -> anyhow::Result<Box<dyn Client>> {
        Ok(Box::new(PostgresClient(connect(&self.conninfo)?)))
    }

    fn disk_bytes(&mut self) -> anyhow::Result<u64> {
        let row = self
            .client
            .query_one("SELECT pg_database_size(current_database())", &[])?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}

struct PostgresClient(PgClient);

impl Client for PostgresClient {
    fn grn(&mut self, grn_id: &str, serials: &SerialList) -> anyhow::Result<GrnOutcome> {
        grn(&mut self.0, grn_id, None, serials)
    }
}
