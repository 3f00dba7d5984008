//! A GRN is all or nothing: a rejected or failed GRN leaves no trace.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serialgate::store::rocks::RocksStore;
use serialgate::store::{
    Commit, EntrySink, SortedRuns, Store, StoreError, StoreStats, WriteTicket,
};
use serialgate::{Engine, GrnMode};

use crate::util::*;

/// The real RocksDB store with a fault injected into commits: after `fail_after` entries
/// have been handed to the backend, the producer fails, mid-way through writing SST files or
/// building the WriteBatch.
struct FaultyStore {
    inner: RocksStore,
    fail_after: Arc<AtomicUsize>,
    fail_sync: Arc<AtomicBool>,
}

struct FaultyRuns<'a> {
    inner: &'a dyn SortedRuns,
    budget: &'a AtomicUsize,
}

impl SortedRuns for FaultyRuns<'_> {
    fn run_count(&self) -> usize {
        self.inner.run_count()
    }
    fn run_len(&self, run: usize) -> usize {
        self.inner.run_len(run)
    }
    fn emit(&self, run: usize, sink: &mut EntrySink<'_>) -> Result<(), StoreError> {
        self.inner.emit(run, &mut |op, k, v| {
            if self
                .budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
                .is_err()
            {
                return Err(StoreError::Io("injected fault: disk gone".into()));
            }
            sink(op, k, v)
        })
    }
}

impl Store for FaultyStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn multi_get_sorted(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.inner.multi_get_sorted(keys)
    }
    fn scan(
        &self,
        s: &[u8],
        e: &[u8],
        v: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.inner.scan(s, e, v)
    }
    fn write(&self, commit: Commit<'_>) -> Result<WriteTicket, StoreError> {
        match commit.runs {
            Some(runs) => {
                let faulty = FaultyRuns {
                    inner: runs,
                    budget: &self.fail_after,
                };
                self.inner.write(Commit {
                    puts: commit.puts,
                    runs: Some(&faulty),
                })
            }
            None => self.inner.write(commit),
        }
    }
    fn written(&self) -> WriteTicket {
        self.inner.written()
    }
    fn sync(&self, ticket: WriteTicket) -> Result<(), StoreError> {
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(StoreError::Io("injected fault: fsync failed".into()));
        }
        self.inner.sync(ticket)
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}

#[test]
fn a_commit_failing_midway_leaves_nothing_and_can_be_retried() {
    for path in BOTH_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let budget = Arc::new(AtomicUsize::new(usize::MAX));
        let store = FaultyStore {
            inner: RocksStore::open(dir.path(), config(path).rocks).unwrap(),
            fail_after: budget.clone(),
            fail_sync: Arc::new(AtomicBool::new(false)),
        };
        let engine = Engine::with_store(Box::new(store), config(path)).unwrap();
        setup_type2(&engine);
        po(&engine, "PO-1", &[("S1", 5000)]);
        let values: Vec<String> = (0..5000).map(|i| format!("FAIL{i:06}")).collect();
        let payload = grn("GRN-1", "PO-1", vec![item("S1", serials(&values))]);

        budget.store(2500, Ordering::SeqCst);
        let err = engine
            .receive(ACCOUNT, &payload, GrnMode::Commit)
            .unwrap_err();
        assert_eq!(err.code(), "STORAGE", "{path:?}: {err}");
        for probe in ["FAIL000000", "FAIL002499", "FAIL004999"] {
            assert_eq!(state_of(&engine, probe), None, "{path:?} {probe}");
        }
        assert_eq!(
            engine.po_view(ACCOUNT, "PO-1").unwrap().lines[0].received,
            0
        );
        // No stray SST files are left for a later ingestion to pick up.
        let leftovers = std::fs::read_dir(dir.path().join("ingest"))
            .unwrap()
            .count();
        assert_eq!(leftovers, 0);

        budget.store(usize::MAX, Ordering::SeqCst);
        assert!(commit(&engine, &payload).is_committed(), "{path:?}");
        assert_eq!(state_of(&engine, "FAIL002499").as_deref(), Some("inwarded"));
        drop(engine);
        // Reopened, the store holds exactly the one successful commit.
        let engine = open(dir.path(), path);
        assert_eq!(engine.stats().prefilter_fingerprints, 5000);
        assert_eq!(
            engine.po_view(ACCOUNT, "PO-1").unwrap().lines[0].received,
            5000
        );
    }
}

#[test]
fn a_rejected_grn_writes_nothing() {
    for path in BOTH_PATHS {
        let (_dir, engine) = type2(path);
        po(&engine, "PO-1", &[("S1", 100), ("P1", 5)]);
        let mut values: Vec<String> = (0..99).map(|i| format!("R{i:04}")).collect();
        values.push("R0000".into());
        let payload = grn(
            "GRN-1",
            "PO-1",
            vec![item("S1", serials(&values)), plain("P1", 5)],
        );
        let reply = commit(&engine, &payload);
        assert_eq!(reply.errors().len(), 1);
        assert_eq!(state_of(&engine, "R0001"), None);
        assert_eq!(engine.stats().prefilter_fingerprints, 0);
        let view = engine.po_view(ACCOUNT, "PO-1").unwrap();
        assert_eq!((view.lines[0].received, view.lines[1].received), (0, 0));
        // The GRN id was not consumed.
        values.pop();
        let fixed = grn(
            "GRN-1",
            "PO-1",
            vec![item("S1", serials(&values)), plain("P1", 5)],
        );
        assert!(commit(&engine, &fixed).is_committed());
    }
}

#[test]
fn after_a_failed_sync_nothing_more_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let fail_sync = Arc::new(AtomicBool::new(false));
    let store = FaultyStore {
        inner: RocksStore::open(dir.path(), config(WritePath::Wal).rocks).unwrap(),
        fail_after: Arc::new(AtomicUsize::new(usize::MAX)),
        fail_sync: fail_sync.clone(),
    };
    let engine = Engine::with_store(Box::new(store), config(WritePath::Wal)).unwrap();
    setup_type2(&engine);
    po(&engine, "PO-1", &[("S1", 10)]);
    fail_sync.store(true, Ordering::SeqCst);
    let first = grn("GRN-1", "PO-1", vec![item("S1", serials(&["A1"]))]);
    let err = engine
        .receive(ACCOUNT, &first, GrnMode::Commit)
        .unwrap_err();
    assert_eq!(err.code(), "STORAGE");
    // Even once the disk is back, this engine acknowledges nothing more: it cannot know
    // what the failed sync left behind.
    fail_sync.store(false, Ordering::SeqCst);
    let second = grn("GRN-2", "PO-1", vec![item("S1", serials(&["A2"]))]);
    let err = engine
        .receive(ACCOUNT, &second, GrnMode::Commit)
        .unwrap_err();
    assert_eq!(err.code(), "STORAGE");
    assert!(
        err.to_string().contains("until the engine is reopened"),
        "{err}"
    );
    drop(engine);
    // Reopened, it serves again; the retry of GRN-1 answers consistently either way.
    let engine = open(dir.path(), WritePath::Wal);
    let retry = engine.receive(ACCOUNT, &first, GrnMode::Commit).unwrap();
    assert!(retry.is_committed(), "{retry:?}");
    assert!(commit(&engine, &second).is_committed());
}
