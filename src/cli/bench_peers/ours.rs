//! serialgate itself, embedded or as a server on loopback: the same typed requests through
//! `client::Target` either way.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, ensure};
use serialgate::client::Target;
use serialgate::domain::{SkuKind, UsnType};
use serialgate::engine::GrnPayload;
use serialgate::outcome::{GrnReply, OutcomeCode, PoReply};
use serialgate::serial::SerialList;
use serialgate::{Engine, EngineConfig, GrnMode};

use super::measure::{dir_bytes, Processes};
use super::servers::ServeProcess;
use super::{Client, GrnOutcome, System};
use crate::cli::bench::{grn_payload, po_payload, SKU};

/// Type 2 (serials given at GRN): W1, W2, W4, W5.
const SELLER: &str = "peers";
/// Type 1 (serials listed on the PO): W3.
const EXPECTING: &str = "peers-expected";
/// W5's clients all receive against this PO.
const CLIENTS_PO: &str = "CLIENTS";

pub struct Serialgate {
    name: &'static str,
    target: Target,
    /// Where a W5 client connects: the server's address, or the shared embedded engine.
    connect: Connect,
    data: std::path::PathBuf,
    processes: Processes,
    _server: Option<ServeProcess>,
}

enum Connect {
    Embedded(Arc<Engine>),
    Server(String),
}

impl Serialgate {
    pub fn in_process(dir: &Path) -> anyhow::Result<Self> {
        let engine = Arc::new(Engine::open(dir, EngineConfig::default())?);
        Self::set_up(Serialgate {
            name: "serialgate in-process",
            target: Target::Local(engine.clone()),
            connect: Connect::Embedded(engine),
            data: dir.to_path_buf(),
            processes: Processes::Me,
            _server: None,
        })
    }

    pub fn over_wire(dir: &Path) -> anyhow::Result<Self> {
        let server = ServeProcess::start(dir)?;
        Self::set_up(Serialgate {
            name: "serialgate over the protocol",
            target: Target::connect(&server.addr, None)?,
            connect: Connect::Server(server.addr.clone()),
            data: dir.to_path_buf(),
            processes: Processes::Tree(server.pid()),
            _server: Some(server),
        })
    }

    fn set_up(mut self) -> anyhow::Result<Self> {
        for (account, usn_type) in [
            (SELLER, UsnType::SellerAtGrn),
            (EXPECTING, UsnType::SellerOnPo),
        ] {
            self.target.create_account(account, usn_type)?;
            self.target
                .set_skus(account, SkuKind::Serialized, &[SKU.to_string()])?;
        }
        Ok(self)
    }

    fn create_po(
        &mut self,
        account: &str,
        reference: &str,
        quantity: usize,
        serials: Option<SerialList>,
    ) -> anyhow::Result<()> {
        match self
            .target
            .create_po(account, po_payload(reference, quantity, serials))?
        {
            PoReply::Created { .. } => Ok(()),
            other => bail!("PO {reference} was not created: {other:?}"),
        }
    }
}

fn payload(grn: &str, reference: &str, serials: SerialList) -> GrnPayload {
    grn_payload(grn.into(), reference.into(), serials)
}

/// Commits a GRN of `serials` against PO `reference`. A GRN holding duplicates is rejected
/// whole with every duplicate reported; it is then resubmitted without them, as an
/// ingestion job would, so the outcome matches the peers' (fresh serials stored,
/// duplicates reported) while serialgate pays for both passes.
fn receive(
    target: &mut Target,
    account: &str,
    grn: &str,
    reference: &str,
    serials: &SerialList,
) -> anyhow::Result<GrnOutcome> {
    let reply = target.receive(
        account,
        &payload(grn, reference, serials.clone()),
        GrnMode::Commit,
    )?;
    let errors = match reply {
        GrnReply::Committed { units, .. } => {
            return Ok(GrnOutcome {
                committed: units as usize,
                reported: 0,
            })
        }
        GrnReply::Rejected { errors, .. } => errors,
        GrnReply::Valid { .. } => bail!("a commit was answered as a check"),
    };
    let mut stored = HashSet::new();
    let mut repeated = HashSet::new();
    for e in &errors {
        let serial = e.serial.as_deref().unwrap_or_default();
        match e.code {
            OutcomeCode::AlreadyInwarded => stored.insert(serial),
            OutcomeCode::DuplicateInRequest => repeated.insert(serial),
            other => bail!("GRN {grn} rejected for {other:?}: {:?}", e.detail),
        };
    }
    // Keep the first of each repeated serial, drop every stored one.
    let mut seen = HashSet::new();
    let clean: SerialList = serials
        .iter()
        .filter(|s| {
            let text = std::str::from_utf8(s).unwrap_or_default();
            !stored.contains(text) && (!repeated.contains(text) || seen.insert(text))
        })
        .collect();
    let kept = clean.len();
    let reply = target.receive(account, &payload(grn, reference, clean), GrnMode::Commit)?;
    ensure!(
        reply.is_committed(),
        "resubmitted GRN {grn}: {:?}",
        reply.errors().first()
    );
    Ok(GrnOutcome {
        committed: kept,
        reported: errors.len(),
    })
}

impl System for Serialgate {
    fn name(&self) -> &'static str {
        self.name
    }

    fn processes(&self) -> Processes {
        self.processes
    }

    fn preload(&mut self, serials: &SerialList) -> anyhow::Result<()> {
        let reference = format!("PRE-{}", serials.get(0).escape_ascii());
        self.create_po(SELLER, &reference, serials.len(), None)?;
        let outcome = receive(&mut self.target, SELLER, &reference, &reference, serials)?;
        ensure!(outcome.reported == 0, "preload GRN {reference} rejected");
        Ok(())
    }

    fn before_grn(&mut self, grn: &str, serials: usize) -> anyhow::Result<()> {
        self.create_po(SELLER, grn, serials, None)
    }

    fn grn(&mut self, grn: &str, serials: &SerialList) -> anyhow::Result<GrnOutcome> {
        receive(&mut self.target, SELLER, grn, grn, serials)
    }

    fn expect(&mut self, po: &str, serials: &SerialList) -> anyhow::Result<bool> {
        self.create_po(EXPECTING, po, serials.len(), Some(serials.clone()))?;
        Ok(true)
    }

    fn grn_expected(&mut self, po: &str, serials: &SerialList) -> anyhow::Result<GrnOutcome> {
        receive(&mut self.target, EXPECTING, &format!("G-{po}"), po, serials)
    }

    fn lookup(&mut self, serials: &[&[u8]]) -> anyhow::Result<usize> {
        Ok(self.target.count_known(SELLER, serials)?)
    }

    fn prepare_clients(&mut self, serials: usize) -> anyhow::Result<bool> {
        self.create_po(SELLER, CLIENTS_PO, serials, None)?;
        Ok(true)
    }

    fn client(&self) -> anyhow::Result<Box<dyn Client>> {
        let target = match &self.connect {
            Connect::Embedded(engine) => Target::Local(engine.clone()),
            Connect::Server(addr) => Target::connect(addr, None)?,
        };
        Ok(Box::new(SerialgateClient(target)))
    }

    fn disk_bytes(&mut self) -> anyhow::Result<u64> {
        Ok(dir_bytes(&self.data))
    }
}

struct SerialgateClient(Target);

impl Client for SerialgateClient {
    fn grn(&mut self, grn: &str, serials: &SerialList) -> anyhow::Result<GrnOutcome> {
        receive(&mut self.0, SELLER, grn, CLIENTS_PO, serials)
    }
}
