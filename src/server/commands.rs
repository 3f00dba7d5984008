//! Commands: parse arguments, call the engine, shape the reply (CONTRACT §3).
//!
//! Connection-level commands (PING, AUTH, HELLO, …) answer inline; engine commands run on
//! the blocking pool so a ten-million-serial GRN never stalls other connections.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;

use super::{constant_time_eq, Counters, Shared};
use crate::domain::{CheckChar, SerialOrder, SkuKind, UsnType};
use crate::engine::{
    AccountOptions, Engine, EngineError, GrnMode, GrnPayload, OrderPayload, PoPayload,
};
use crate::outcome::GrnReply;
use crate::protocol::{Args, Protocol, Reply};

/// `SERIAL.MGET`s with more arguments than this run on the blocking pool.
const INLINE_MGET_MAX: usize = 64;

/// What the connection does after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

/// Per-connection state.
#[derive(Debug)]
pub struct Session {
    authenticated: bool,
    name: Option<Vec<u8>>,
    protocol: Protocol,
}

impl Session {
    pub fn new(authenticated: bool) -> Self {
        Self {
            authenticated,
            name: None,
            protocol: Protocol::Resp2,
        }
    }

    /// RESP2 until the client says `HELLO 3`.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
}

fn wrong_arity(name: &str) -> Reply {
    Reply::error(
        "ERR",
        format!(
            "wrong number of arguments for '{}' command",
            name.to_lowercase()
        ),
    )
}

fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

fn engine_error(e: EngineError) -> Reply {
    Reply::error(e.code(), e.to_string())
}

fn json(value: &impl Serialize) -> Reply {
    match serde_json::to_vec(value) {
        Ok(bytes) => Reply::Bulk(bytes),
        Err(e) => Reply::error("ERR", format!("reply encoding failed: {e}")),
    }
}

pub async fn execute(shared: &Arc<Shared>, session: &mut Session, args: Args) -> (Reply, Flow) {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    // Before authentication only these may run.
    if !session.authenticated && !matches!(name.as_str(), "AUTH" | "HELLO" | "QUIT") {
        return (
            Reply::error("NOAUTH", "Authentication required."),
            Flow::Continue,
        );
    }
    let reply = match name.as_str() {
        "PING" => match args.len() {
            1 => Reply::Simple("PONG".into()),
            2 => Reply::Bulk(args[1].clone()),
            _ => wrong_arity(&name),
        },
        "ECHO" if args.len() == 2 => Reply::Bulk(args[1].clone()),
        "QUIT" => return (Reply::ok(), Flow::Close),
        "AUTH" => auth(shared, session, &args),
        "HELLO" => hello(shared, session, &args),
        "SELECT" if args.len() == 2 => {
            if args[1] == b"0" {
                Reply::ok()
            } else {
                Reply::error("ERR", "DB index is out of range")
            }
        }
        "CLIENT" => client(session, &args),
        "COMMAND" => Reply::Array(Vec::new()),
        "INFO" => info(shared),
        // Point reads take microseconds: answered on the connection's own task, so a
        // pipeline of lookups costs no thread hand-offs.
        "SERIAL.GET" | "PO.GET" => engine_command(shared, &name, args),
        "SERIAL.MGET" if args.len() <= INLINE_MGET_MAX => engine_command(shared, &name, args),
        "ACCOUNT.CREATE" | "SKU.SET" | "PO.CREATE" | "PO.IMPORT" | "PO.REPORT" | "GRN.CHECK"
        | "GRN.COMMIT" | "GRN.AUTO" | "SERIAL.MGET" | "SERIALS.GENERATE" | "OUTWARD" | "RETURN" => {
            let shared = shared.clone();
            let run = tokio::task::spawn_blocking(move || engine_command(&shared, &name, args));
            match run.await {
                Ok(reply) => reply,
                // A bug, not the request's fault. A write it interrupted is whole or
                // absent, and the engine takes no more writes until it is reopened.
                Err(e) => Reply::error(
                    "ERR",
                    format!(
                        "command failed inside the server ({e}); a write it carried is whole \
                         or absent: send it again to learn which"
                    ),
                ),
            }
        }
        "ECHO" | "SELECT" => wrong_arity(&name),
        _ => Reply::error(
            "ERR",
            format!(
                "unknown command '{}'",
                String::from_utf8_lossy(&args[0])
                    .chars()
                    .take(64)
                    .collect::<String>()
            ),
        ),
    };
    (reply, Flow::Continue)
}

fn check_password(shared: &Shared, session: &mut Session, password: &[u8]) -> Reply {
    match &shared.config.requirepass {
        None => Reply::error(
            "ERR",
            "AUTH <password> called without any password configured for the default user",
        ),
        Some(expected) if constant_time_eq(expected.as_bytes(), password) => {
            session.authenticated = true;
            Reply::ok()
        }
        Some(_) => Reply::error(
            "WRONGPASS",
            "invalid username-password pair or user is disabled.",
        ),
    }
}

fn auth(shared: &Shared, session: &mut Session, args: &Args) -> Reply {
    match args.len() {
        2 => check_password(shared, session, &args[1]),
        // AUTH <username> <password>: the only user is "default".
        3 if args[1] == b"default" => check_password(shared, session, &args[2]),
        3 => Reply::error(
            "WRONGPASS",
            "invalid username-password pair or user is disabled.",
        ),
        _ => wrong_arity("AUTH"),
    }
}

fn hello(shared: &Shared, session: &mut Session, args: &Args) -> Reply {
    let mut i = 1;
    let mut protocol = session.protocol;
    if let Some(version) = args.get(1) {
        protocol = match version.as_slice() {
            b"2" => Protocol::Resp2,
            b"3" => Protocol::Resp3,
            _ => {
                return Reply::error(
                    "NOPROTO",
                    "unsupported protocol version; serialgate serves RESP2 and RESP3",
                )
            }
        };
        i = 2;
    }
    while i < args.len() {
        match args[i].to_ascii_uppercase().as_slice() {
            b"AUTH" if i + 2 < args.len() => {
                let reply = if args[i + 1] == b"default" {
                    check_password(shared, session, &args[i + 2])
                } else {
                    Reply::error(
                        "WRONGPASS",
                        "invalid username-password pair or user is disabled.",
                    )
                };
                if reply.is_error() {
                    return reply;
                }
                i += 3;
            }
            b"SETNAME" if i + 1 < args.len() => {
                session.name = Some(args[i + 1].clone());
                i += 2;
            }
            _ => return Reply::error("ERR", "syntax error in HELLO"),
        }
    }
    if !session.authenticated {
        return Reply::error(
            "NOAUTH",
            "HELLO must be called with AUTH when a password is set.",
        );
    }
    // The switch applies from this reply on, as in Redis.
    session.protocol = protocol;
    let pair = |k: &str, v: Reply| (Reply::bulk(k), v);
    Reply::Map(vec![
        pair("server", Reply::bulk("serialgate")),
        pair("version", Reply::bulk(env!("CARGO_PKG_VERSION"))),
        pair(
            "proto",
            Reply::Integer(match protocol {
                Protocol::Resp2 => 2,
                Protocol::Resp3 => 3,
            }),
        ),
        pair("id", Reply::Integer(0)),
        pair("mode", Reply::bulk("standalone")),
        pair("role", Reply::bulk("master")),
        pair("modules", Reply::Array(Vec::new())),
    ])
}

fn client(session: &mut Session, args: &Args) -> Reply {
    let Some(sub) = args.get(1) else {
        return wrong_arity("CLIENT");
    };
    match sub.to_ascii_uppercase().as_slice() {
        b"SETNAME" if args.len() == 3 => {
            session.name = Some(args[2].clone());
            Reply::ok()
        }
        b"GETNAME" => session.name.clone().map_or(Reply::Nil, Reply::Bulk),
        b"SETINFO" => Reply::ok(),
        b"ID" => Reply::Integer(0),
        _ => Reply::error(
            "ERR",
            format!("unknown subcommand '{}' for 'client'", text(sub)),
        ),
    }
}

fn info(shared: &Shared) -> Reply {
    let c = &shared.counters;
    // While the engine is being reopened it has no figures to show.
    let stats = shared.engine.get().ok().map(|engine| engine.stats());
    let mut s = String::new();
    let _ = write!(
        s,
        "# Server\r\nserver:serialgate\r\nversion:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        shared.local_addr.port(),
        shared.started.elapsed().as_secs()
    );
    let _ = write!(
        s,
        "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\ntotal_connections_received:{}\r\nrejected_connections:{}\r\n\r\n",
        shared.connections_current(),
        shared.config.connections_max,
        c.connections_total.load(Ordering::Relaxed),
        c.connections_rejected.load(Ordering::Relaxed)
    );
    let _ = write!(
        s,
        "# Stats\r\ntotal_commands_processed:{}\r\ntotal_error_replies:{}\r\ngrns_committed:{}\r\ngrns_rejected:{}\r\nunits_committed:{}\r\n\r\n",
        c.commands_total.load(Ordering::Relaxed),
        c.errors_total.load(Ordering::Relaxed),
        c.grns_committed.load(Ordering::Relaxed),
        c.grns_rejected.load(Ordering::Relaxed),
        c.units_committed.load(Ordering::Relaxed)
    );
    let _ = write!(
        s,
        "# Engine\r\nengine_state:{}\r\nengine_reopens:{}\r\n",
        shared.engine.state().name(),
        shared.engine.reopens(),
    );
    if let Some(error) = shared.engine.open_error() {
        let _ = write!(
            s,
            "engine_open_error:{}\r\n",
            error.replace(['\r', '\n'], " ")
        );
    }
    if let Some(stats) = stats {
        let _ = write!(
            s,
            "prefilter_fingerprints:{}\r\nprefilter_bytes:{}\r\nprefilter_load_ms:{}\r\nprefilter_restored:{}\r\nsst_files_bytes:{}\r\nlive_data_bytes:{}\r\nestimated_keys:{}\r\nlevel0_files:{}\r\n",
            stats.prefilter_fingerprints,
            stats.prefilter_bytes,
            stats.prefilter_load_ms,
            u8::from(stats.prefilter_restored),
            stats.store.sst_files_bytes,
            stats.store.live_data_bytes,
            stats.store.estimated_keys,
            stats.store.level0_files
        );
    }
    Reply::Bulk(s.into_bytes())
}

/// Commands that call the engine; run on the blocking pool.
fn engine_command(shared: &Shared, name: &str, args: Args) -> Reply {
    let engine = match shared.engine.get() {
        Ok(engine) => engine,
        Err(reopening) => return reopening,
    };
    let _wake = shared.engine.watch(&engine);
    run_engine_command(shared, &engine, name, args)
}

fn run_engine_command(shared: &Shared, engine: &Engine, name: &str, args: Args) -> Reply {
    match name {
        "ACCOUNT.CREATE" => account_create(engine, &args),
        "SKU.SET" => {
            if args.len() < 4 {
                return wrong_arity(name);
            }
            let kind = match args[2].to_ascii_uppercase().as_slice() {
                b"SERIALIZED" => SkuKind::Serialized,
                b"PLAIN" => SkuKind::Plain,
                _ => return Reply::error("ERR", "SKU kind must be SERIALIZED or PLAIN"),
            };
            let skus: Vec<String> = args[3..].iter().map(|a| text(a)).collect();
            match engine.set_skus(&text(&args[1]), kind, &skus) {
                Ok(created) => Reply::Integer(created as i64),
                Err(e) => engine_error(e),
            }
        }
        "PO.CREATE" => {
            if args.len() != 3 {
                return wrong_arity(name);
            }
            let payload: PoPayload = match serde_json::from_slice(&args[2]) {
                Ok(p) => p,
                Err(e) => return Reply::error("BADJSON", e.to_string()),
            };
            match engine.create_po(&text(&args[1]), payload) {
                Ok(reply) => json(&reply),
                Err(e) => engine_error(e),
            }
        }
        "PO.IMPORT" => {
            // PO.IMPORT <acct> [CHECK] <json array of PO payloads>
            let check_only = match args.len() {
                3 => false,
                4 if args[2].eq_ignore_ascii_case(b"CHECK") => true,
                4 => {
                    return Reply::error("ERR", "PO.IMPORT takes CHECK or nothing before the body")
                }
                _ => return wrong_arity(name),
            };
            let payloads: Vec<PoPayload> = match serde_json::from_slice(&args[args.len() - 1]) {
                Ok(p) => p,
                Err(e) => return Reply::error("BADJSON", e.to_string()),
            };
            let account = text(&args[1]);
            drop(args);
            match engine.import_pos(&account, &payloads, check_only) {
                Ok(reply) => json(&reply),
                Err(e) => engine_error(e),
            }
        }
        "PO.GET" => {
            if args.len() != 3 {
                return wrong_arity(name);
            }
            match engine.po_view(&text(&args[1]), &text(&args[2])) {
                Ok(view) => json(&view),
                Err(e) => engine_error(e),
            }
        }
        "GRN.CHECK" | "GRN.COMMIT" | "GRN.AUTO" => {
            if args.len() != 3 {
                return wrong_arity(name);
            }
            let mode = match name {
                "GRN.CHECK" => GrnMode::Check,
                "GRN.COMMIT" => GrnMode::Commit,
                _ => GrnMode::Auto,
            };
            let payload: GrnPayload = match serde_json::from_slice(&args[2]) {
                Ok(p) => p,
                Err(e) => return Reply::error("BADJSON", e.to_string()),
            };
            let account = text(&args[1]);
            // The raw body can be hundreds of MB; free it before the pipeline runs.
            drop(args);
            match engine.receive(&account, &payload, mode) {
                Ok(reply) => {
                    count_grn(&shared.counters, &reply);
                    json(&reply)
                }
                Err(e) => engine_error(e),
            }
        }
        "PO.REPORT" => {
            if args.len() != 3 {
                return wrong_arity(name);
            }
            match engine.po_report(&text(&args[1]), &text(&args[2])) {
                Ok(csv) => Reply::Bulk(csv),
                Err(e) => engine_error(e),
            }
        }
        "SERIALS.GENERATE" => serials_generate(engine, &args),
        "OUTWARD" | "RETURN" => {
            if args.len() != 3 {
                return wrong_arity(name);
            }
            let payload: OrderPayload = match serde_json::from_slice(&args[2]) {
                Ok(p) => p,
                Err(e) => return Reply::error("BADJSON", e.to_string()),
            };
            let account = text(&args[1]);
            let reply = if name == "OUTWARD" {
                engine.outward(&account, &payload)
            } else {
                engine.return_units(&account, &payload)
            };
            match reply {
                Ok(reply) => json(&reply),
                Err(e) => engine_error(e),
            }
        }
        "SERIAL.GET" => {
            if args.len() != 3 {
                return wrong_arity(name);
            }
            match engine.serial(&text(&args[1]), &args[2]) {
                Ok(Some(view)) => json(&view),
                Ok(None) => Reply::Nil,
                Err(e) => engine_error(e),
            }
        }
        "SERIAL.MGET" => {
            if args.len() < 3 {
                return wrong_arity(name);
            }
            let serials: Vec<&[u8]> = args[2..].iter().map(Vec::as_slice).collect();
            match engine.serials(&text(&args[1]), &serials) {
                Ok(views) => Reply::Array(
                    views
                        .into_iter()
                        .map(|v| v.map_or(Reply::Nil, |v| json(&v)))
                        .collect(),
                ),
                Err(e) => engine_error(e),
            }
        }
        _ => Reply::error("ERR", format!("unknown command '{name}'")),
    }
}

fn count_grn(counters: &Counters, reply: &GrnReply) {
    match reply {
        GrnReply::Committed {
            units,
            replayed: false,
            ..
        } => {
            Counters::add(&counters.grns_committed, 1);
            Counters::add(&counters.units_committed, *units);
        }
        GrnReply::Rejected { .. } => Counters::add(&counters.grns_rejected, 1),
        _ => {}
    }
}

/// `SERIALS.GENERATE <acct> PO <ref> SKU <sku> COUNT <n>` (type 3) or
/// `SERIALS.GENERATE <acct> COUNT <n> [SKU <sku>]` (type 5).
fn serials_generate(engine: &Engine, args: &Args) -> Reply {
    if args.len() < 4 || args.len() % 2 != 0 {
        return wrong_arity("SERIALS.GENERATE");
    }
    let (mut po, mut sku, mut count) = (None, None, None);
    for pair in args[2..].chunks(2) {
        let value = text(&pair[1]);
        match pair[0].to_ascii_uppercase().as_slice() {
            b"PO" => po = Some(value),
            b"SKU" => sku = Some(value),
            b"COUNT" => match value.parse::<u64>() {
                Ok(n) => count = Some(n),
                Err(_) => {
                    return Reply::error(
                        "ERR",
                        format!("COUNT must be a positive integer: {value:?}"),
                    )
                }
            },
            other => {
                return Reply::error(
                    "ERR",
                    format!("unknown SERIALS.GENERATE option '{}'", text(other)),
                )
            }
        }
    }
    let Some(count) = count else {
        return Reply::error("ERR", "SERIALS.GENERATE needs COUNT <n>");
    };
    let account = text(&args[1]);
    let reply = match (po, sku) {
        (Some(po), Some(sku)) => engine.generate_for_po(&account, &po, &sku, count),
        (Some(_), None) => return Reply::error("ERR", "SERIALS.GENERATE ... PO needs SKU <sku>"),
        (None, sku) => engine.generate_pool(&account, count, sku.as_deref()),
    };
    match reply {
        Ok(reply) => json(&reply),
        Err(e) => engine_error(e),
    }
}

fn account_create(engine: &Engine, args: &Args) -> Reply {
    // ACCOUNT.CREATE <acct> USN <1-5> [TOLERANCE_PCT n] [TOLERANCE_QTY n] [AUTOGRN on|off]
    //                [PREFIX p] [CHECK none|luhn|gs1] [SEQUENCE sequential|random]
    if args.len() < 4 || args.len() % 2 != 0 {
        return wrong_arity("ACCOUNT.CREATE");
    }
    let account = text(&args[1]);
    let mut usn = None;
    let mut options = AccountOptions::new(UsnType::SellerAtGrn);
    for pair in args[2..].chunks(2) {
        let value = text(&pair[1]);
        let bad = |what: &str| Reply::error("ERR", format!("{what}: {value:?}"));
        match pair[0].to_ascii_uppercase().as_slice() {
            b"USN" => match value.parse::<u8>().ok().and_then(UsnType::from_number) {
                Some(t) => usn = Some(t),
                None => return bad("USN must be 1-5"),
            },
            b"TOLERANCE_PCT" => match value.parse() {
                Ok(n) => options.tolerance_pct = Some(n),
                Err(_) => return bad("TOLERANCE_PCT must be a non-negative integer"),
            },
            b"TOLERANCE_QTY" => match value.parse() {
                Ok(n) => options.tolerance_qty = Some(n),
                Err(_) => return bad("TOLERANCE_QTY must be a non-negative integer"),
            },
            b"AUTOGRN" => match value.to_ascii_lowercase().as_str() {
                "on" => options.auto_grn = Some(true),
                "off" => options.auto_grn = Some(false),
                _ => return bad("AUTOGRN must be on or off"),
            },
            b"PREFIX" => options.prefix = Some(value),
            b"CHECK" => match value.to_ascii_lowercase().as_str() {
                "none" => options.check_char = Some(CheckChar::None),
                "luhn" => options.check_char = Some(CheckChar::Luhn),
                "gs1" | "mod10" => options.check_char = Some(CheckChar::Gs1),
                _ => return bad("CHECK must be none, luhn or gs1"),
            },
            b"SEQUENCE" => match value.to_ascii_lowercase().as_str() {
                "sequential" => options.order = Some(SerialOrder::Sequential),
                "random" => options.order = Some(SerialOrder::Random),
                _ => return bad("SEQUENCE must be sequential or random"),
            },
            other => {
                return Reply::error(
                    "ERR",
                    format!("unknown ACCOUNT.CREATE option '{}'", text(other)),
                )
            }
        }
    }
    let Some(usn) = usn else {
        return Reply::error("ERR", "ACCOUNT.CREATE needs USN <1-5>");
    };
    options.usn_type = usn;
    match engine.create_account(&account, options) {
        Ok(created) => json(&serde_json::json!({
            "status": if created { "created" } else { "updated" },
            "account": account,
            "usnType": usn.number(),
        })),
        Err(e) => engine_error(e),
    }
}
