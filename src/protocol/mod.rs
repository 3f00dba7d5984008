//! The line protocol's bytes: requests in ([`request`]) and replies out ([`reply`]).
//! RESP2 (and RESP3 after `HELLO 3`) with inline commands, so redis-cli and every Redis
//! client work. Commands and their
//! meaning live in `server::commands`; this module never sees the engine.

pub mod reply;
pub mod request;

pub use reply::{Protocol, Reply};
pub use request::{split_inline, Args, Limits, RequestError, Scanner};
