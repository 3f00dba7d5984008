//! `serialgate check`: verifies accounts of a data directory against the engine's
//! invariants (docs/design.md) while no server holds it. Exit status 1 on any problem.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Args;
use serialgate::{Engine, EngineConfig};

#[derive(Args)]
pub struct CheckArgs {
    /// Data directory of a stopped server.
    #[arg(long, default_value = "./serialgate-data")]
    data: PathBuf,
    /// Accounts to check.
    #[arg(required = true)]
    accounts: Vec<String>,
}

pub fn run(args: CheckArgs) -> anyhow::Result<()> {
    let engine = Engine::open(&args.data, EngineConfig::default())
        .with_context(|| format!("opening {}", args.data.display()))?;
    let mut problems = 0;
    for account in &args.accounts {
        let found = engine
            .verify_account(account)
            .with_context(|| format!("checking account {account:?}"))?;
        if found.is_empty() {
            println!("{account}: consistent");
        }
        for problem in &found {
            println!("{account}: {problem}");
        }
        problems += found.len();
    }
    if problems > 0 {
        bail!("{problems} problems found");
    }
    Ok(())
}
