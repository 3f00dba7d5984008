//! The integration suite, one binary (link once): every test goes through the real engine
//! on real RocksDB in a temporary directory.

mod util;

mod atomicity;
mod bench_peers;
mod concurrency;
mod crash;
mod demo;
mod disk_full;
mod fuzz_corpus;
mod hostile;
mod import;
mod labels;
mod lifecycle;
mod model;
mod outcomes;
mod powerloss_model;
mod recovery;
mod reference_model;
mod reports;
mod server;
mod server_usn;
mod type1;
mod type2;
mod type3;
mod type4;
mod type5;
