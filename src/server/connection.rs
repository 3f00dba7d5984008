//! One client connection: a buffered socket, pipelined requests answered in order, the
//! idle timeout, and the per-connection memory bound (one request's limits).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::commands::{self, Flow, Session};
use super::{Counters, Shared};
use crate::protocol::{Reply, RequestError, Scanner};

/// Bytes read per socket read.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// Buffered replies are flushed once they pass this size, even mid-pipeline.
const WRITE_FLUSH_BYTES: usize = 64 << 10;

pub(super) async fn handle(
    shared: Arc<Shared>,
    mut socket: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(_permit) = shared.connections.clone().try_acquire_owned() else {
        Counters::add(&shared.counters.connections_rejected, 1);
        let _ = socket
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        return;
    };
    if shared.config.requirepass.is_none() && !peer.ip().is_loopback() {
        Counters::add(&shared.counters.connections_rejected, 1);
        let _ = socket
            .write_all(
                b"-ERR serialgate serves only loopback clients unless a password is set (--requirepass)\r\n",
            )
            .await;
        return;
    }
    let _ = socket.set_nodelay(true);
    let mut session = Session::new(shared.config.requirepass.is_none());
    if let Err(e) = serve_connection(&shared, &mut socket, &mut session, &mut stop).await {
        tracing::debug!(%peer, error = %e, "connection closed");
    }
}

async fn serve_connection(
    shared: &Arc<Shared>,
    socket: &mut TcpStream,
    session: &mut Session,
    stop: &mut watch::Receiver<bool>,
) -> std::io::Result<()> {
    let limits = shared.config.limits;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK_BYTES);
    let mut start = 0usize;
    let mut scanner = Scanner::new();
    let mut out: Vec<u8> = Vec::new();
    // When the first byte of the request still incomplete in `buf` arrived.
    let mut partial_since: Option<Instant> = None;
    loop {
        // Answer every complete request already buffered (pipelining).
        loop {
            match scanner.next(&buf[start..], &limits) {
                Ok(Some((args, used))) => {
                    start += used;
                    if args.is_empty() {
                        continue; // an empty inline line, as Redis ignores it
                    }
                    Counters::add(&shared.counters.commands_total, 1);
                    let (reply, flow) = commands::execute(shared, session, args).await;
                    if reply.is_error() {
                        Counters::add(&shared.counters.errors_total, 1);
                    }
                    reply.encode(&mut out, session.protocol());
                    if flow == Flow::Close {
                        socket.write_all(&out).await?;
                        return Ok(());
                    }
                    if out.len() >= WRITE_FLUSH_BYTES {
                        socket.write_all(&out).await?;
                        out.clear();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // The stream cannot be resynchronised: answer, then close.
                    Counters::add(&shared.counters.errors_total, 1);
                    let reply = match &e {
                        RequestError::Protocol(m) => {
                            Reply::error("ERR", format!("Protocol error: {m}"))
                        }
                        RequestError::Limit(m) => Reply::error("LIMIT", m),
                    };
                    reply.encode(&mut out, session.protocol());
                    socket.write_all(&out).await?;
                    return Ok(());
                }
            }
        }
        if !out.is_empty() {
            socket.write_all(&out).await?;
            out.clear();
        }
        if *stop.borrow() {
            return Ok(());
        }
        // Reclaim consumed bytes before reading more.
        if start > 0 {
            buf.drain(..start);
            start = 0;
        }
        // A request begun and not finished runs against the request deadline.
        match (buf.is_empty(), partial_since) {
            (true, _) => partial_since = None,
            (false, None) => partial_since = Some(Instant::now()),
            (false, Some(_)) => {}
        }
        let deadline = shared
            .config
            .request_timeout
            .zip(partial_since)
            .map(|(limit, since)| since + limit);
        let wait = match (shared.config.idle_timeout, deadline) {
            (Some(idle), Some(d)) => Some(idle.min(d.saturating_duration_since(Instant::now()))),
            (Some(idle), None) => Some(idle),
            (None, Some(d)) => Some(d.saturating_duration_since(Instant::now())),
            (None, None) => None,
        };
        buf.reserve(READ_CHUNK_BYTES);
        let read = socket.read_buf(&mut buf);
        let n = tokio::select! {
            _ = stop.changed() => return Ok(()),
            n = async {
                match wait {
                    Some(wait) => tokio::time::timeout(wait, read).await.unwrap_or_else(|_| {
                        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timeout"))
                    }),
                    None => read.await,
                }
            } => match n {
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut
                    && deadline.is_some_and(|d| Instant::now() >= d) =>
                {
                    Counters::add(&shared.counters.errors_total, 1);
                    let limit = shared.config.request_timeout.unwrap_or_default().as_secs();
                    let mut out = Vec::new();
                    Reply::error("ERR", format!("request not complete within {limit} s of its first byte"))
                        .encode(&mut out, session.protocol());
                    socket.write_all(&out).await?;
                    return Ok(());
                }
                other => other?,
            },
        };
        if n == 0 {
            return Ok(()); // peer closed
        }
    }
}
