//! What was acknowledged survives a reopen: records, PO counters, GRN ids, the prefilter.

use serialgate::outcome::{GrnReply, OutcomeCode};

use crate::util::*;

#[test]
fn reopen_keeps_everything_acknowledged() {
    for path in BOTH_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let first: Vec<String> = (0..3000).map(|i| format!("KEEP{i:05}")).collect();
        let payload = grn(
            "GRN-1",
            "PO-1",
            vec![item("S1", serials(&first)), plain("P1", 7)],
        );
        {
            let engine = open(dir.path(), path);
            setup_type2(&engine);
            po(&engine, "PO-1", &[("S1", 5000), ("P1", 10)]);
            assert!(commit(&engine, &payload).is_committed());
        }
        let engine = open(dir.path(), path);
        assert_eq!(engine.stats().prefilter_fingerprints, 3000, "{path:?}");
        assert_eq!(state_of(&engine, "KEEP01234").as_deref(), Some("inwarded"));
        let view = engine.po_view(ACCOUNT, "PO-1").unwrap();
        assert_eq!((view.lines[0].received, view.lines[1].received), (3000, 7));
        // The retry after a restart is still recognised.
        assert!(matches!(
            commit(&engine, &payload),
            GrnReply::Committed { replayed: true, .. }
        ));
        // The rebuilt prefilter still catches every old serial.
        let again = grn("GRN-2", "PO-1", vec![item("S1", serials(&first[..100]))]);
        let reply = commit(&engine, &again);
        assert_eq!(reply.errors().len(), 100);
        assert!(reply
            .errors()
            .iter()
            .all(|e| e.code == OutcomeCode::AlreadyInwarded));
        // New ids continue after the old ones.
        po(&engine, "PO-2", &[("S2", 1)]);
        assert!(commit(
            &engine,
            &grn("GRN-3", "PO-2", vec![item("S2", serials(&["NEW1"]))])
        )
        .is_committed());
        assert_eq!(
            engine
                .serial(ACCOUNT, b"NEW1")
                .unwrap()
                .unwrap()
                .reference_code
                .as_deref(),
            Some("PO-2")
        );
        assert_eq!(
            engine
                .serial(ACCOUNT, b"KEEP00000")
                .unwrap()
                .unwrap()
                .grn
                .as_deref(),
            Some("GRN-1")
        );
    }
}

#[test]
fn accounts_survive_reopen_and_ids_are_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path(), WritePath::Wal);
        setup_type2(&engine);
        po(&engine, "PO-1", &[("S1", 1)]);
        assert!(commit(
            &engine,
            &grn("G", "PO-1", vec![item("S1", serials(&["SAME"]))])
        )
        .is_committed());
    }
    let engine = open(dir.path(), WritePath::Wal);
    // A second account gets its own id, so the same serial value is new to it.
    engine
        .create_account(
            "other",
            serialgate::AccountOptions::new(serialgate::domain::UsnType::SellerAtGrn),
        )
        .unwrap();
    engine
        .set_skus(
            "other",
            serialgate::domain::SkuKind::Serialized,
            &["S1".into()],
        )
        .unwrap();
    let po_payload: serialgate::engine::PoPayload = serde_json::from_str(
        r#"{"referenceCode":"PO-1","items":[{"lineItemNumber":"1","sku":"S1","quantity":"1"}]}"#,
    )
    .unwrap();
    engine.create_po("other", po_payload).unwrap();
    let reply = engine
        .receive(
            "other",
            &grn("G", "PO-1", vec![item("S1", serials(&["SAME"]))]),
            serialgate::GrnMode::Commit,
        )
        .unwrap();
    assert!(reply.is_committed(), "{reply:?}");
    assert!(engine.serial(ACCOUNT, b"SAME").unwrap().is_some());
}

/// An engine that writes a prefilter snapshot on every clean close, however small.
fn open_snapshotting(dir: &std::path::Path, path: WritePath) -> serialgate::Engine {
    let mut config = config(path);
    config.prefilter_snapshot_min = 0;
    serialgate::Engine::open(dir, config).unwrap()
}

fn assert_all_known(engine: &serialgate::Engine, grn_id: &str, stored: &[String]) {
    po(
        engine,
        &format!("PO-{grn_id}"),
        &[("S1", stored.len() as u64)],
    );
    let reply = commit(
        engine,
        &grn(
            grn_id,
            &format!("PO-{grn_id}"),
            vec![item("S1", serials(stored))],
        ),
    );
    assert_eq!(reply.errors().len(), stored.len(), "{grn_id}");
    assert!(reply
        .errors()
        .iter()
        .all(|e| e.code == OutcomeCode::AlreadyInwarded));
}

#[test]
fn a_clean_close_leaves_a_snapshot_that_the_next_open_takes() {
    for path in BOTH_PATHS {
        clean_close_snapshot(path);
    }
}

fn clean_close_snapshot(path: WritePath) {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("PREFILTER.snapshot");
    let first: Vec<String> = (0..2000).map(|i| format!("SNAP{i:05}")).collect();
    {
        let engine = open_snapshotting(dir.path(), path);
        assert!(!engine.stats().prefilter_restored);
        setup_type2(&engine);
        po(&engine, "PO-1", &[("S1", 2000)]);
        assert!(commit(
            &engine,
            &grn("G1", "PO-1", vec![item("S1", serials(&first))])
        )
        .is_committed());
    }
    assert!(snapshot.exists(), "a clean close writes the snapshot");
    let second: Vec<String> = (0..500).map(|i| format!("MORE{i:05}")).collect();
    {
        let engine = open_snapshotting(dir.path(), path);
        assert!(engine.stats().prefilter_restored);
        assert_eq!(engine.stats().prefilter_fingerprints, 2000);
        // Taken: no snapshot stays on disk while the engine can write.
        assert!(!snapshot.exists());
        assert_all_known(&engine, "CHECK1", &first);
        po(&engine, "PO-2", &[("S1", 500)]);
        assert!(commit(
            &engine,
            &grn("G2", "PO-2", vec![item("S1", serials(&second))])
        )
        .is_committed());
    }
    let engine = open_snapshotting(dir.path(), path);
    assert!(engine.stats().prefilter_restored);
    assert_eq!(engine.stats().prefilter_fingerprints, 2500);
    assert_all_known(&engine, "CHECK2", &second);
}

#[test]
fn a_stale_or_damaged_snapshot_is_ignored_and_the_prefilter_rebuilt() {
    for path in BOTH_PATHS {
        stale_snapshot(path);
    }
}

fn stale_snapshot(path: WritePath) {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("PREFILTER.snapshot");
    let old: Vec<String> = (0..1000).map(|i| format!("OLD{i:05}")).collect();
    let new: Vec<String> = (0..1000).map(|i| format!("NEW{i:05}")).collect();
    {
        let engine = open_snapshotting(dir.path(), path);
        setup_type2(&engine);
        po(&engine, "PO-1", &[("S1", 1000)]);
        assert!(
            commit(&engine, &grn("G1", "PO-1", vec![item("S1", serials(&old))])).is_committed()
        );
    }
    let stale = std::fs::read(&snapshot).unwrap();
    {
        let engine = open_snapshotting(dir.path(), path);
        po(&engine, "PO-2", &[("S1", 1000)]);
        assert!(
            commit(&engine, &grn("G2", "PO-2", vec![item("S1", serials(&new))])).is_committed()
        );
    }
    // An older snapshot put back (a restored backup, a file copied by hand) knows nothing
    // of the second GRN: it must not be used.
    std::fs::write(&snapshot, &stale).unwrap();
    {
        let engine = open_snapshotting(dir.path(), path);
        assert!(!engine.stats().prefilter_restored);
        assert_eq!(engine.stats().prefilter_fingerprints, 2000);
        assert!(!snapshot.exists());
        assert_all_known(&engine, "CHECK1", &new);
    }
    // A damaged one neither.
    let mut damaged = std::fs::read(&snapshot).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    std::fs::write(&snapshot, &damaged).unwrap();
    let engine = open_snapshotting(dir.path(), path);
    assert!(!engine.stats().prefilter_restored);
    assert_all_known(&engine, "CHECK2", &old);
}

/// An open flushes what it replayed from the WAL into a synced SST file
/// (`avoid_flush_during_recovery=false`, RocksDB's default, which rust-rocksdb cannot set):
/// a reopen after a failed fsync must not answer from writes only in the page cache.
#[test]
fn an_open_flushes_what_it_recovered() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), WritePath::Wal));
    let options: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("OPTIONS-"))
        })
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(!options.is_empty(), "no OPTIONS file");
    for text in options {
        assert!(
            text.lines()
                .any(|l| l.trim() == "avoid_flush_during_recovery=false"),
            "recovery flush not on"
        );
    }
}
