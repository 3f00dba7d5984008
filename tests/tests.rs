//! The integration suite, one binary (link once): every test goes through the real engine
//! on real RocksDB in a temporary directory.

mod util;

mod atomicity;
mod concurrency;
mod recovery;
mod server;
mod type2;
