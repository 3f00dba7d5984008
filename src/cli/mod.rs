//! Subcommands of the `serialgate` binary. Each calls the library's engine; none holds
//! workflow rules of its own.

pub mod bench;
pub mod serve;
