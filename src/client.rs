//! One handle on the engine's commands for the command-line tools (import, reports, labels,
//! demo): either an engine embedded on a data directory, or a running server reached over
//! the line protocol with the `redis` client. Both answer with the same typed replies, so
//! a tool behaves the same whichever it is given.

use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::domain::{SkuKind, UsnType};
use crate::engine::{AccountOptions, GrnMode, PoView};
use crate::engine::{Engine, EngineConfig, EngineError, GenerateReply, GrnPayload, PoPayload};
use crate::outcome::{GrnReply, PoImportReply, PoReply};

#[derive(Debug, Error)]
pub enum ClientError {
    /// A request-level failure: the protocol's error code and its message.
    #[error("{code} {message}")]
    Refused { code: String, message: String },
    #[error("server connection: {0}")]
    Connection(String),
    #[error("unexpected reply from the server: {0}")]
    Reply(String),
}

impl ClientError {
    /// The protocol error code (`UNKNOWN_PO`, `LIMIT`, …), when the request was refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl From<EngineError> for ClientError {
    fn from(e: EngineError) -> Self {
        ClientError::Refused {
            code: e.code().to_string(),
            message: e.to_string(),
        }
    }
}

impl From<redis::RedisError> for ClientError {
    fn from(e: redis::RedisError) -> Self {
        match e.code() {
            Some(code) => ClientError::Refused {
                code: code.to_string(),
                message: e.detail().unwrap_or_default().to_string(),
            },
            None => ClientError::Connection(e.to_string()),
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Where commands go.
pub enum Target {
    /// Shared, so several handles (one per thread) can drive one embedded engine.
    Local(Arc<Engine>),
    Remote(redis::Connection),
}

impl Target {
    /// Opens the engine on `data` (its default configuration).
    pub fn open_local(data: &Path) -> Result<Self> {
        Ok(Target::Local(Arc::new(Engine::open(
            data,
            EngineConfig::default(),
        )?)))
    }

    /// Connects to a server at `addr` (`host:port`), authenticating with `password`.
    pub fn connect(addr: &str, password: Option<&str>) -> Result<Self> {
        let url = match password {
            Some(p) => format!("redis://:{p}@{addr}/"),
            None => format!("redis://{addr}/"),
        };
        let client =
            redis::Client::open(url).map_err(|e| ClientError::Connection(e.to_string()))?;
        let connection = client
            .get_connection()
            .map_err(|e| ClientError::Connection(format!("{addr}: {e}")))?;
        Ok(Target::Remote(connection))
    }

    /// `ACCOUNT.CREATE <account> USN <type>` with every other option at its default.
    pub fn create_account(&mut self, account: &str, usn_type: UsnType) -> Result<()> {
        match self {
            Target::Local(engine) => {
                engine.create_account(account, AccountOptions::new(usn_type))?;
            }
            Target::Remote(con) => redis::cmd("ACCOUNT.CREATE")
                .arg(account)
                .arg("USN")
                .arg(usn_type.number())
                .query::<()>(con)?,
        }
        Ok(())
    }

    /// `SKU.SET`.
    pub fn set_skus(&mut self, account: &str, kind: SkuKind, skus: &[String]) -> Result<()> {
        match self {
            Target::Local(engine) => {
                engine.set_skus(account, kind, skus)?;
            }
            Target::Remote(con) => {
                let kind = match kind {
                    SkuKind::Serialized => "SERIALIZED",
                    SkuKind::Plain => "PLAIN",
                };
                redis::cmd("SKU.SET")
                    .arg(account)
                    .arg(kind)
                    .arg(skus)
                    .query::<()>(con)?
            }
        }
        Ok(())
    }

    /// `PO.CREATE`.
    pub fn create_po(&mut self, account: &str, payload: PoPayload) -> Result<PoReply> {
        match self {
            Target::Local(engine) => Ok(engine.create_po(account, payload)?),
            Target::Remote(con) => {
                let body = to_json(&payload)?;
                json_reply(redis::cmd("PO.CREATE").arg(account).arg(body).query(con)?)
            }
        }
    }

    /// `SERIAL.MGET`: how many of `serials` the account knows.
    pub fn count_known(&mut self, account: &str, serials: &[&[u8]]) -> Result<usize> {
        match self {
            Target::Local(engine) => Ok(engine
                .serials(account, serials)?
                .iter()
                .filter(|v| v.is_some())
                .count()),
            Target::Remote(con) => {
                let records: Vec<Option<Vec<u8>>> = redis::cmd("SERIAL.MGET")
                    .arg(account)
                    .arg(serials)
                    .query(con)?;
                Ok(records.iter().filter(|r| r.is_some()).count())
            }
        }
    }

    /// `PO.IMPORT`: all of `payloads` inserted atomically, or (with `check_only`) validated.
    pub fn import_pos(
        &mut self,
        account: &str,
        payloads: &[PoPayload],
        check_only: bool,
    ) -> Result<PoImportReply> {
        match self {
            Target::Local(engine) => Ok(engine.import_pos(account, payloads, check_only)?),
            Target::Remote(con) => {
                let body = to_json(payloads)?;
                let mut cmd = redis::cmd("PO.IMPORT");
                cmd.arg(account);
                if check_only {
                    cmd.arg("CHECK");
                }
                json_reply(cmd.arg(body).query(con)?)
            }
        }
    }

    /// `GRN.CHECK`, `GRN.COMMIT` or `GRN.AUTO`.
    pub fn receive(
        &mut self,
        account: &str,
        payload: &GrnPayload,
        mode: GrnMode,
    ) -> Result<GrnReply> {
        match self {
            Target::Local(engine) => Ok(engine.receive(account, payload, mode)?),
            Target::Remote(con) => {
                let name = match mode {
                    GrnMode::Check => "GRN.CHECK",
                    GrnMode::Commit => "GRN.COMMIT",
                    GrnMode::Auto => "GRN.AUTO",
                };
                let body = to_json(payload)?;
                json_reply(redis::cmd(name).arg(account).arg(body).query(con)?)
            }
        }
    }

    /// `PO.GET`.
    pub fn po_view(&mut self, account: &str, reference_code: &str) -> Result<PoView> {
        match self {
            Target::Local(engine) => Ok(engine.po_view(account, reference_code)?),
            Target::Remote(con) => json_reply(
                redis::cmd("PO.GET")
                    .arg(account)
                    .arg(reference_code)
                    .query(con)?,
            ),
        }
    }

    /// `PO.REPORT`: the USN report as CSV bytes.
    pub fn po_report(&mut self, account: &str, reference_code: &str) -> Result<Vec<u8>> {
        match self {
            Target::Local(engine) => Ok(engine.po_report(account, reference_code)?),
            Target::Remote(con) => Ok(redis::cmd("PO.REPORT")
                .arg(account)
                .arg(reference_code)
                .query(con)?),
        }
    }

    /// `SERIAL.GET` as the JSON the protocol answers, or `None` for an unknown serial.
    pub fn serial_json(&mut self, account: &str, serial: &[u8]) -> Result<Option<String>> {
        match self {
            Target::Local(engine) => match engine.serial(account, serial)? {
                Some(view) => Ok(Some(to_json_text(&view)?)),
                None => Ok(None),
            },
            Target::Remote(con) => Ok(redis::cmd("SERIAL.GET")
                .arg(account)
                .arg(serial)
                .query(con)?),
        }
    }

    /// `SERIALS.GENERATE`: for a PO line (type 3) when `po` is given, else into the
    /// account's pool (type 5), optionally bound to `sku`.
    pub fn generate(
        &mut self,
        account: &str,
        po: Option<&str>,
        sku: Option<&str>,
        count: u64,
    ) -> Result<GenerateReply> {
        match self {
            Target::Local(engine) => Ok(match (po, sku) {
                (Some(po), Some(sku)) => engine.generate_for_po(account, po, sku, count)?,
                (Some(_), None) => {
                    return Err(ClientError::Refused {
                        code: "ERR".into(),
                        message: "generating for a PO line needs its SKU".into(),
                    })
                }
                (None, sku) => engine.generate_pool(account, count, sku)?,
            }),
            Target::Remote(con) => {
                let mut cmd = redis::cmd("SERIALS.GENERATE");
                cmd.arg(account);
                if let Some(po) = po {
                    cmd.arg("PO").arg(po);
                }
                if let Some(sku) = sku {
                    cmd.arg("SKU").arg(sku);
                }
                json_reply(cmd.arg("COUNT").arg(count).query(con)?)
            }
        }
    }
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| ClientError::Reply(format!("encoding request: {e}")))
}

fn to_json_text(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| ClientError::Reply(format!("encoding reply: {e}")))
}

fn json_reply<T: DeserializeOwned>(bytes: Vec<u8>) -> Result<T> {
    serde_json::from_slice(&bytes).map_err(|e| {
        let start = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned();
        ClientError::Reply(format!("{e}: {start}"))
    })
}
