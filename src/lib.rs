//! serialgate: a serial-number validation engine for goods receipt.
//!
//! Layers, top to bottom: `server` (TCP connections, auth, commands) over `protocol` (RESP
//! bytes in and out) → `engine` (the library API: accounts, POs, GRNs, lookups; its
//! `rules` module holds the USN workflow rules; `batch` the serial pipeline every workflow
//! shares) → `prefilter` (in-memory fingerprints) and
//! `store` (the `Store` trait, the keyer, value codec and the RocksDB backend). `domain` is
//! the stored model, `outcome` the replies, `serial` the serial value itself, `generator`
//! how engine-generated serials are spelled, `workload`
//! deterministic serials for benchmarks and tests.

#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod client;
pub mod domain;
pub mod engine;
pub mod fuzz_targets;
pub mod generator;
pub mod import;
pub mod labels;
pub mod outcome;
pub mod powerloss;
pub mod prefilter;
pub mod protocol;
pub mod reconcile;
pub mod serial;
pub mod server;
pub mod store;
pub mod workload;

pub use engine::{AccountOptions, Engine, EngineConfig, EngineError, GrnMode};
