//! `serialgate bench usn-types`: GRNs of every USN type side by side in one run, each
//! validated and durably committed through the engine, with type 2 (fresh seller serials)
//! as the reference rate.
//!
//! Per round, untimed set-up first: a type 1 PO listing the round's serials, a type 3 PO
//! whose serials are generated (timed separately, as `generate`), a type 5 pool (likewise),
//! a type 4 PO. Then, timed, one GRN per type: 2 (fresh serials), 1 (the expected serials),
//! 3 (the generated serials, scanned without a SKU), 4 (auto-GRN, generation included),
//! 5 (the pooled serials).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Args;
use serialgate::domain::{SkuKind, UsnType};
use serialgate::engine::{GrnItem, GrnPayload, PoPayload, GENERATE_COUNT_MAX};
use serialgate::outcome::{GrnReply, PoReply};
use serialgate::serial::SerialList;
use serialgate::{workload, AccountOptions, Engine, EngineConfig, GrnMode};

use super::bench::{batches, po_payload as po, progress, rate, SKU};

#[derive(Args)]
pub struct UsnTypesArgs {
    /// Serials received per USN type (timed); several GRNs give a fairer comparison, as
    /// the order of the types rotates from one GRN to the next.
    #[arg(long, default_value_t = 5_000_000)]
    serials: usize,
    /// Serials per GRN (at most the generation limit per request).
    #[arg(long, default_value_t = 1_000_000)]
    grn_size: usize,
    /// Type 2 serials received before the timed part, so the index is not empty.
    #[arg(long, default_value_t = 1_000_000)]
    preload: usize,
    #[arg(long, default_value_t = 11)]
    seed: u64,
}

fn grn(id: &str, reference: &str, sku: Option<&str>, serials: SerialList) -> GrnPayload {
    GrnPayload {
        grn_id: id.into(),
        reference_code: reference.into(),
        invoice_number: None,
        items: vec![GrnItem {
            sku: sku.map(str::to_string),
            serials: Some(serials),
            ..GrnItem::default()
        }],
    }
}

fn create_po(engine: &Engine, account: &str, payload: PoPayload) -> anyhow::Result<()> {
    let reply = engine.create_po(account, payload)?;
    ensure!(
        matches!(reply, PoReply::Created { .. }),
        "PO not created: {reply:?}"
    );
    Ok(())
}

fn timed(
    engine: &Engine,
    account: &str,
    payload: &GrnPayload,
    mode: GrnMode,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let reply = engine.receive(account, payload, mode)?;
    let elapsed = started.elapsed();
    ensure!(
        matches!(reply, GrnReply::Committed { .. }),
        "GRN {} of {account} not committed: {:?}",
        payload.grn_id,
        reply.errors().first()
    );
    Ok(elapsed)
}

pub fn usn_types(args: UsnTypesArgs) -> anyhow::Result<()> {
    ensure!(
        args.grn_size as u64 <= GENERATE_COUNT_MAX,
        "--grn-size is at most {GENERATE_COUNT_MAX} (one SERIALS.GENERATE per GRN)"
    );
    let temp = tempfile::tempdir().context("creating a temporary data directory")?;
    let engine = Engine::open(temp.path(), EngineConfig::default())?;
    let accounts = ["t1", "t2", "t3", "t4", "t5"];
    for (n, account) in accounts.iter().enumerate() {
        let usn = UsnType::from_number(n as u8 + 1).context("usn type")?;
        engine.create_account(
            account,
            AccountOptions {
                prefix: Some(format!("B{}-", n + 1)),
                ..AccountOptions::new(usn)
            },
        )?;
        engine.set_skus(account, SkuKind::Serialized, &[SKU.to_string()])?;
    }
    println!(
        "bench usn-types: {} serials per type in GRNs of {}, onto {} preloaded, {} threads",
        args.serials,
        args.grn_size,
        args.preload,
        rayon::current_num_threads()
    );
    let bar = progress(args.preload, "preload");
    for (k, n) in batches(args.preload, args.grn_size) {
        let reference = format!("PRE-{k}");
        create_po(&engine, "t2", po(&reference, n, None))?;
        let serials = workload::serials(args.seed, k, n);
        timed(
            &engine,
            "t2",
            &grn(&format!("G-{reference}"), &reference, Some(SKU), serials),
            GrnMode::Commit,
        )?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();

    let mut busy = [Duration::ZERO; 5];
    let (mut generate_t3, mut generate_t5) = (Duration::ZERO, Duration::ZERO);
    let bar = progress(args.serials * 5, "usn-types");
    for (k, n) in batches(args.serials, args.grn_size) {
        let reference = format!("RUN-{k}");
        let id = format!("G-{reference}");
        // Type 1: the serials are listed on the PO first.
        let expected = workload::serials(args.seed ^ 0x7101, k, n);
        create_po(&engine, "t1", po(&reference, n, Some(expected.clone())))?;
        // Type 3: generated for the PO line first.
        create_po(&engine, "t3", po(&reference, n, None))?;
        let started = Instant::now();
        let generated = engine.generate_for_po("t3", &reference, SKU, n as u64)?;
        generate_t3 += started.elapsed();
        // Type 5: a pool first.
        let started = Instant::now();
        let pooled = engine.generate_pool("t5", n as u64, None)?;
        generate_t5 += started.elapsed();
        for account in ["t2", "t4", "t5"] {
            create_po(&engine, account, po(&reference, n, None))?;
        }

        let fresh = workload::serials(args.seed ^ 0x7202, k, n);
        let mut grns: Vec<(usize, &str, GrnPayload, GrnMode)> = vec![
            (
                0,
                "t1",
                grn(&id, &reference, Some(SKU), expected),
                GrnMode::Commit,
            ),
            (
                1,
                "t2",
                grn(&id, &reference, Some(SKU), fresh),
                GrnMode::Commit,
            ),
            (
                2,
                "t3",
                grn(&id, &reference, None, generated.serials.clone()),
                GrnMode::Commit,
            ),
            (
                3,
                "t4",
                GrnPayload {
                    grn_id: id.clone(),
                    reference_code: reference.clone(),
                    ..GrnPayload::default()
                },
                GrnMode::Auto,
            ),
            (
                4,
                "t5",
                grn(&id, &reference, Some(SKU), pooled.serials.clone()),
                GrnMode::Commit,
            ),
        ];
        drop((generated, pooled));
        // Background compaction of earlier rounds slows whichever GRN runs while it does:
        // the order rotates every round so no type always goes first.
        let types = grns.len();
        grns.rotate_left(k as usize % types);
        for (slot, account, payload, mode) in grns {
            busy[slot] += timed(&engine, account, &payload, mode)?;
        }
        bar.inc(5 * n as u64);
    }
    bar.finish_and_clear();

    let reference = rate(args.serials, busy[1]);
    for (n, how) in [
        "expected serials listed on the PO",
        "fresh seller serials (reference)",
        "generated serials scanned without a SKU",
        "auto-GRN, serials generated in the commit",
        "pooled serials bound at GRN",
    ]
    .iter()
    .enumerate()
    {
        let r = rate(args.serials, busy[n]);
        println!(
            "type {}: {:>10.0} serials/s  {:.2}x type 2  ({how})",
            n + 1,
            r,
            r / reference
        );
    }
    println!(
        "generate: type 3 {:.0} serials/s, type 5 pool {:.0} serials/s (durably committed)",
        rate(args.serials, generate_t3),
        rate(args.serials, generate_t5)
    );
    Ok(())
}
