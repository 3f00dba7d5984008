//! A connection without a socket: request bytes in, reply bytes out, answered exactly as
//! `connection.rs` answers them (same scanner, limits, commands and encoding). The fuzz
//! targets drive the whole command layer through it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::commands::{self, Flow, Session};
use super::{ServerConfig, Shared};
use crate::engine::Engine;
use crate::protocol::{Reply, RequestError, Scanner};

pub struct Harness {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Runtime,
}

impl Harness {
    pub fn new(engine: Engine, config: ServerConfig) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared::new(
            engine,
            config,
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ));
        Ok(Self { shared, runtime })
    }

    /// The engine; a harness never reopens it, so it is always there.
    pub fn engine(&self) -> Arc<Engine> {
        self.shared
            .engine
            .get()
            .expect("a harness's engine is never taken out")
    }

    /// Answers `bytes` as one new connection that sent them and then closed: every
    /// complete request in order, up to `QUIT` or a framing error (whose error reply is
    /// the last). Returns the reply bytes.
    pub fn connection(&self, bytes: &[u8]) -> Vec<u8> {
        let shared = &self.shared;
        let mut session = Session::new(shared.config.requirepass.is_none());
        let mut scanner = Scanner::new();
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            match scanner.next(&bytes[start..], &shared.config.limits) {
                Ok(Some((args, used))) => {
                    assert!(used > 0 && start + used <= bytes.len(), "scanner overran");
                    start += used;
                    if args.is_empty() {
                        continue;
                    }
                    let (reply, flow) =
                        self.runtime
                            .block_on(commands::execute(shared, &mut session, args));
                    reply.encode(&mut out, session.protocol());
                    if flow == Flow::Close {
                        return out;
                    }
                }
                Ok(None) => return out,
                Err(e) => {
                    let reply = match &e {
                        RequestError::Protocol(m) => {
                            Reply::error("ERR", format!("Protocol error: {m}"))
                        }
                        RequestError::Limit(m) => Reply::error("LIMIT", m),
                    };
                    reply.encode(&mut out, session.protocol());
                    return out;
                }
            }
        }
    }
}
