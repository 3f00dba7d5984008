//! Subcommands of the `serialgate` binary. Each calls the library's engine; none holds
//! workflow rules of its own.

pub mod bench;
mod bench_usn;
mod bench_wire;
pub mod check;
pub mod serve;
