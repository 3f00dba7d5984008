//! Criterion benches of the hot pieces: serial hashing, the prefilter, key encoding, and the
//! whole validate-and-commit pipeline on 100k serials (real RocksDB, synced).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serialgate::domain::{SkuKind, UsnType};
use serialgate::engine::{GrnItem, GrnPayload, PoItem, PoPayload};
use serialgate::prefilter::Prefilter;
use serialgate::serial::{check_syntax, serial_hash};
use serialgate::store::keys;
use serialgate::{workload, AccountOptions, Engine, EngineConfig, GrnMode};

const N: usize = 100_000;

fn hashing(c: &mut Criterion) {
    let serials = workload::serials(1, 0, N);
    let mut group = c.benchmark_group("serial");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("check_syntax+xxh3 100k", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for s in serials.iter() {
                if check_syntax(s).is_ok() {
                    acc ^= serial_hash(7, s);
                }
            }
            black_box(acc)
        })
    });
    group.bench_function("serial key encoding 100k", |b| {
        let mut key = Vec::with_capacity(80);
        b.iter(|| {
            let mut total = 0usize;
            for s in serials.iter() {
                keys::serial_into(&mut key, 7, 0x0123_4567_89ab_cdef, s);
                total += key.len();
            }
            black_box(total)
        })
    });
    group.finish();
}

fn prefilter(c: &mut Criterion) {
    let stored: Vec<u64> = workload::serials(2, 0, 1_000_000)
        .iter()
        .map(|s| serial_hash(7, s))
        .collect();
    let filter = Prefilter::with_capacity(stored.len());
    let mut sorted = stored.clone();
    sorted.sort_unstable();
    filter.insert_sorted(&sorted, |h| *h);
    let mut fresh: Vec<u64> = workload::serials(3, 0, N)
        .iter()
        .map(|s| serial_hash(7, s))
        .collect();
    fresh.sort_unstable();

    let mut group = c.benchmark_group("prefilter (1M stored)");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("probe_sorted 100k fresh", |b| {
        let mut maybe = vec![false; fresh.len()];
        b.iter(|| {
            filter.probe_sorted(&fresh, |h| *h, &mut maybe);
            black_box(maybe.iter().filter(|m| **m).count())
        })
    });
    group.bench_function("contains 100k fresh (one by one)", |b| {
        b.iter(|| black_box(fresh.iter().filter(|h| filter.contains(**h)).count()))
    });
    group.bench_function("insert_sorted 100k into empty", |b| {
        b.iter_batched(
            || Prefilter::with_capacity(N),
            |f| {
                f.insert_sorted(&fresh, |h| *h);
                f
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(dir.path(), EngineConfig::default()).expect("open");
    engine
        .create_account("bench", AccountOptions::new(UsnType::SellerAtGrn))
        .expect("account");
    engine
        .set_skus("bench", SkuKind::Serialized, &["SKU".into()])
        .expect("sku");
    let batch = AtomicU64::new(0);
    let next_payload = || {
        let k = batch.fetch_add(1, Ordering::Relaxed);
        let reference = format!("PO-{k}");
        engine
            .create_po(
                "bench",
                PoPayload {
                    vendor_id: "V".into(),
                    reference_code: reference.clone(),
                    create_or_update: "I".into(),
                    is_cancel: None,
                    items: vec![PoItem {
                        line_item_number: "1".into(),
                        sku: "SKU".into(),
                        quantity: N as u64,
                        serials: None,
                    }],
                },
            )
            .expect("po");
        GrnPayload {
            grn_id: format!("GRN-{k}"),
            reference_code: reference,
            invoice_number: None,
            items: vec![GrnItem {
                sku: Some("SKU".into()),
                serials: Some(workload::serials(4, k, N)),
                ..GrnItem::default()
            }],
        }
    };
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("type 2 auto-GRN commit 100k (synced)", |b| {
        b.iter_batched(
            next_payload,
            |payload| {
                let reply = engine
                    .receive("bench", &payload, GrnMode::Auto)
                    .expect("receive");
                assert!(reply.is_committed());
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("type 2 check 100k (no write)", |b| {
        b.iter_batched(
            next_payload,
            |payload| {
                black_box(
                    engine
                        .receive("bench", &payload, GrnMode::Check)
                        .expect("check"),
                )
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, hashing, prefilter, pipeline);
criterion_main!(benches);
