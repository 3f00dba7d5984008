//! The RocksDB backend of [`Store`].
//!
//! One column family holds the whole key space of `keys`. Shards are hash ranges of the
//! serial keys rather than column families: RocksDB's C API (the one rust-rocksdb binds)
//! ingests external SST files into one column family per call, and a call with several
//! non-overlapping files is atomic. So a bulk commit writes one SST per run plus one for its
//! metadata, in parallel, and ingests them in a single call; small commits are one synced
//! `WriteBatch` (RocksDB groups concurrent synced writers into one WAL fsync).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use rocksdb::{
    BlockBasedOptions, Cache, DBCompressionType, ErrorKind, IngestExternalFileOptions,
    MergeOperands, Options, ReadOptions, SstFileWriter, WriteBatch, WriteOptions, DB,
};

use super::{codec, Commit, EntrySink, Op, SortedRuns, Store, StoreError, StoreStats, WriteTicket};

/// Read size when reading a freshly written SST file back into the page cache.
const READ_BACK_CHUNK_BYTES: usize = 1 << 20;

/// Tuning of the RocksDB backend.
#[derive(Debug, Clone)]
pub struct RocksConfig {
    /// Commits with at least this many bulk entries are written as SST files and ingested;
    /// smaller ones go through the WAL, where one fsync (shared with concurrent writers) beats
    /// writing and fsyncing several files plus a MANIFEST record. The exact crossover is not
    /// measured yet; 20,000 keeps interactive GRNs on the WAL and bulk ones on ingestion.
    pub ingest_min_entries: usize,
    pub block_cache_bytes: usize,
    pub write_buffer_bytes: usize,
    /// Fsync the WAL before a commit is acknowledged. Only the fuzz harness turns this off
    /// (a synced write per input would cap it at a few hundred inputs a second); without
    /// it, acknowledged writes survive a process crash but not a power loss.
    pub durable: bool,
}

impl Default for RocksConfig {
    fn default() -> Self {
        Self {
            ingest_min_entries: 20_000,
            block_cache_bytes: 256 << 20,
            // Small GRNs insert every serial into the memtable skiplist under their account's
            // lock; a 16 MiB memtable keeps that walk short (64 concurrent 100-serial GRNs:
            // ~170k -> ~190k serials/s against 64 MiB). Bulk GRNs bypass it.
            write_buffer_bytes: 16 << 20,
            durable: true,
        }
    }
}

pub struct RocksStore {
    db: DB,
    /// Options handed to `SstFileWriter`: the table format of the DB, uncompressed, since
    /// ingested files land in L0 and are rewritten by compaction anyway.
    sst_options: Options,
    ingest_dir: PathBuf,
    ingest_seq: AtomicU64,
    /// Every write with a sequence number up to this is on disk.
    synced_seq: AtomicU64,
    sync_lock: parking_lot::Mutex<()>,
    config: RocksConfig,
}

/// Name of the merge operator recorded in the DB's OPTIONS file; a DB holding merge
/// operands can only be read with the operator of this name.
const MERGE_OPERATOR_NAME: &str = "serialgate.serial-record.v1";

fn io(e: rocksdb::Error) -> StoreError {
    match e.kind() {
        ErrorKind::Corruption => StoreError::Corrupt(e.into_string()),
        _ => StoreError::Io(e.into_string()),
    }
}

/// An error from a call that may have taken effect before it failed, whatever its kind.
fn indeterminate(e: rocksdb::Error) -> StoreError {
    StoreError::Indeterminate(e.into_string())
}

fn table_options(cache: Option<&Cache>) -> BlockBasedOptions {
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    // Small blocks: a confirming read or a lookup of one serial reads (and checksums) 4 KiB.
    table.set_block_size(4 << 10);
    if let Some(cache) = cache {
        table.set_block_cache(cache);
    }
    table
}

/// Memtables a store may hold at once; an open may flush as many.
pub const WRITE_BUFFERS_MAX: i32 = 4;

impl RocksStore {
    pub fn open(path: &Path, config: RocksConfig) -> Result<Self, StoreError> {
        fail::fail_point!("store::open", |_| Err(injected("open")));
        fs::create_dir_all(path).map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))?;
        let cache = Cache::new_lru_cache(config.block_cache_bytes);

        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_max_background_jobs(2);
        // One compaction thread at a time leaves the other core to commits; measured: 1.1M
        // -> 1.5M serials/s on 2 cores (docs/BENCHMARKS.md).
        opts.set_max_subcompactions(1);
        opts.set_bytes_per_sync(1 << 20);
        opts.set_write_buffer_size(config.write_buffer_bytes);
        opts.set_max_write_buffer_number(WRITE_BUFFERS_MAX);
        // `avoid_flush_during_recovery` stays at RocksDB's default, false (rust-rocksdb has
        // no setter): an open flushes what it replayed from the WAL into a synced SST file.
        // So a reopen after a failed fsync never answers from writes that live only in the
        // page cache (tests/recovery.rs reads the OPTIONS file to hold it there).
        // Bulk commits land as L0 files. Compaction starts at 4 (measured against 8: 1.24-1.37M
        // vs 1.09-1.36M serials/s, and fewer L0 files for point reads to consult); commits
        // are never stalled on L0 count before the hard limit.
        opts.set_level_zero_file_num_compaction_trigger(4);
        opts.set_level_zero_slowdown_writes_trigger(64);
        opts.set_level_zero_stop_writes_trigger(96);
        opts.set_target_file_size_base(64 << 20);
        opts.set_max_bytes_for_level_base(512 << 20);
        opts.set_compression_per_level(&[
            DBCompressionType::None,
            DBCompressionType::None,
            DBCompressionType::Lz4,
            DBCompressionType::Lz4,
            DBCompressionType::Lz4,
            DBCompressionType::Lz4,
            DBCompressionType::Lz4,
        ]);
        // Lookups that reach RocksDB are prefilter hits, which almost always exist: a bloom
        // filter on the last level would cost ~1.25 bytes per serial and rarely save a read.
        opts.set_optimize_filters_for_hits(true);
        opts.set_block_based_table_factory(&table_options(Some(&cache)));
        opts.set_merge_operator(
            MERGE_OPERATOR_NAME,
            |_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands| {
                codec::merge_serial_record(existing, operands.iter())
            },
            // Operands are only ever folded into a base value, never into each other.
            |_key: &[u8], _existing: Option<&[u8]>, _operands: &MergeOperands| None,
        );

        // The default column family is opened with these options explicitly: `open_cf` by
        // name alone would open it with RocksDB's defaults (no merge operator, no bloom
        // filters, default table options).
        let default_cf =
            rocksdb::ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, opts.clone());
        let db = DB::open_cf_descriptors(&opts, path, [default_cf]).map_err(io)?;

        let mut sst_options = Options::default();
        sst_options.set_compression_type(DBCompressionType::None);
        sst_options.set_block_based_table_factory(&table_options(None));

        let ingest_dir = path.join("ingest");
        // Files left by a commit that crashed before ingestion were never part of the DB.
        let _ = fs::remove_dir_all(&ingest_dir);
        fs::create_dir_all(&ingest_dir)
            .map_err(|e| StoreError::Io(format!("{}: {e}", ingest_dir.display())))?;

        // Whatever was recovered at open is on disk.
        let recovered_seq = db.latest_sequence_number();
        Ok(Self {
            db,
            sst_options,
            ingest_dir,
            ingest_seq: AtomicU64::new(0),
            synced_seq: AtomicU64::new(recovered_seq),
            sync_lock: parking_lot::Mutex::new(()),
            config,
        })
    }

    fn write_batch(&self, commit: &Commit<'_>) -> Result<WriteTicket, StoreError> {
        let mut batch = WriteBatch::default();
        for (key, value) in &commit.puts {
            batch.put(key, value);
        }
        if let Some(runs) = commit.runs {
            for run in 0..runs.run_count() {
                runs.emit(run, &mut |op, key, value| {
                    match op {
                        Op::Put => batch.put(key, value),
                        Op::Merge => batch.merge(key, value),
                    }
                    Ok(())
                })?;
            }
        }
        fail::fail_point!("store::write::before", |_| Err(injected("write")));
        // Not synced here: `sync` makes it durable, sharing one WAL fsync among every writer
        // that arrived meanwhile. A failed WAL append (a full disk, say) may still leave a
        // whole record of this batch, or of another in its write group, that the next open
        // replays; RocksDB also refuses every later write until it is reopened.
        self.db.write(batch).map_err(indeterminate)?;
        fail::fail_point!("store::write::after", |_| Err(StoreError::Indeterminate(
            "failed after the WAL write (injected by a failpoint)".into()
        )));
        Ok(WriteTicket(self.db.latest_sequence_number().max(1)))
    }

    fn write_sst(
        &self,
        path: &Path,
        emit: &mut dyn FnMut(&mut EntrySink<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut writer = SstFileWriter::create(&self.sst_options);
        writer.open(path).map_err(io)?;
        emit(&mut |op, key, value| {
            match op {
                Op::Put => writer.put(key, value),
                Op::Merge => writer.merge(key, value),
            }
            .map_err(io)
        })?;
        writer.finish().map_err(io)?;
        // SstFileWriter drops the file it writes from the OS page cache (every 1 MiB and at
        // close; the C API cannot turn that off). Serials received by recent GRNs would then
        // be confirmed from the disk: with 1 % duplicates that tripled the cost of a rejected
        // pass (docs/BENCHMARKS.md). Reading the file back once, sequentially, keeps it hot;
        // ingestion hard-links it, so the DB's file shares these pages. Best effort.
        if let Ok(mut file) = fs::File::open(path) {
            let mut buf = vec![0u8; READ_BACK_CHUNK_BYTES];
            while matches!(file.read(&mut buf), Ok(n) if n > 0) {}
        }
        Ok(())
    }

    fn ingest(&self, commit: &Commit<'_>, runs: &dyn SortedRuns) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let commit_no = self.ingest_seq.fetch_add(1, Ordering::Relaxed);
        let mut puts: Vec<&(Vec<u8>, Vec<u8>)> = commit.puts.iter().collect();
        // Stable sort keeps request order among equal keys; the last one wins below.
        puts.sort_by(|a, b| a.0.cmp(&b.0));

        // One SST per run plus one for the metadata (file number `run_count`), all written
        // in parallel.
        let meta = runs.run_count();
        let path_of = |file: usize| self.ingest_dir.join(format!("{commit_no}-{file}.sst"));
        let written: Result<Vec<Option<PathBuf>>, StoreError> = (0..=meta)
            .into_par_iter()
            .map(|file| {
                let empty = if file == meta {
                    puts.is_empty()
                } else {
                    runs.run_len(file) == 0
                };
                if empty {
                    return Ok(None);
                }
                let path = path_of(file);
                self.write_sst(&path, &mut |sink| {
                    if file < meta {
                        return runs.emit(file, sink);
                    }
                    for (i, (key, value)) in puts.iter().map(|kv| (&kv.0, &kv.1)).enumerate() {
                        if puts.get(i + 1).is_some_and(|next| &next.0 == key) {
                            continue;
                        }
                        sink(Op::Put, key, value)?;
                    }
                    Ok(())
                })?;
                Ok(Some(path))
            })
            .collect();

        let result = written.and_then(|paths| {
            let paths: Vec<PathBuf> = paths.into_iter().flatten().collect();
            let written = started.elapsed();
            let mut options = IngestExternalFileOptions::default();
            options.set_move_files(true);
            options.set_snapshot_consistency(true);
            options.set_allow_global_seqno(true);
            options.set_allow_blocking_flush(true);
            fail::fail_point!("store::ingest", |_| Err(injected("ingestion")));
            let ingested = self
                .db
                .ingest_external_file_opts(&options, paths.clone())
                // The MANIFEST record may have reached the disk before the failure.
                .map_err(indeterminate);
            tracing::debug!(
                files = paths.len(),
                write_ms = written.as_millis() as u64,
                ingest_ms = (started.elapsed() - written).as_millis() as u64,
                "bulk commit"
            );
            ingested
        });
        // After a successful move the files are gone; after a failure they were never live.
        for file in 0..=meta {
            let _ = fs::remove_file(path_of(file));
        }
        result
    }

    fn int_property(&self, name: &str) -> u64 {
        self.db.property_int_value(name).ok().flatten().unwrap_or(0)
    }
}

impl Store for RocksStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(key).map_err(io)
    }

    fn multi_get_sorted(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let cf = self
            .db
            .cf_handle(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
            .ok_or_else(|| StoreError::Corrupt("default column family missing".into()))?;
        // Batches are random lookups (confirming reads): caching their blocks would only
        // evict hotter ones.
        let mut read_options = ReadOptions::default();
        read_options.fill_cache(false);
        self.db
            .batched_multi_get_cf_opt(&cf, keys.iter(), true, &read_options)
            .into_iter()
            .map(|r| r.map(|v| v.map(|slice| slice.to_vec())).map_err(io))
            .collect()
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let mut read_options = ReadOptions::default();
        read_options.set_iterate_upper_bound(end.to_vec());
        read_options.fill_cache(false);
        read_options.set_readahead_size(2 << 20);
        let mut iter = self.db.raw_iterator_opt(read_options);
        iter.seek(start);
        while iter.valid() {
            let (Some(key), Some(value)) = (iter.key(), iter.value()) else {
                break;
            };
            if !visit(key, value) {
                return Ok(());
            }
            iter.next();
        }
        iter.status().map_err(io)
    }

    fn write(&self, commit: Commit<'_>) -> Result<WriteTicket, StoreError> {
        match commit.runs {
            Some(runs) if commit.bulk_len() >= self.config.ingest_min_entries => {
                // Ingestion fsyncs the files and the MANIFEST before it returns. Earlier WAL
                // writes must be durable first, or a crash could keep this commit (which
                // may build on them, e.g. PO counters) without them.
                // A failed sync is not retryable (the kernel may have dropped the pages it
                // could not write), so the engine must stop, as after its own failed sync.
                self.sync(WriteTicket(self.db.latest_sequence_number()))
                    .map_err(|e| StoreError::Indeterminate(e.to_string()))?;
                self.ingest(&commit, runs)?;
                Ok(WriteTicket::DURABLE)
            }
            _ => self.write_batch(&commit),
        }
    }

    fn written(&self) -> WriteTicket {
        WriteTicket(self.db.latest_sequence_number())
    }

    fn sync(&self, ticket: WriteTicket) -> Result<(), StoreError> {
        if !self.config.durable || ticket <= WriteTicket(self.synced_seq.load(Ordering::Acquire)) {
            return Ok(());
        }
        let _one_sync_at_a_time = self.sync_lock.lock();
        // Another writer's sync may have covered this write while we waited.
        if ticket <= WriteTicket(self.synced_seq.load(Ordering::Acquire)) {
            return Ok(());
        }
        let upto = self.db.latest_sequence_number();
        fail::fail_point!("store::sync", |_| Err(injected("WAL sync")));
        self.db.flush_wal(true).map_err(io)?;
        self.synced_seq.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            live_data_bytes: self.int_property("rocksdb.estimate-live-data-size"),
            sst_files_bytes: self.int_property("rocksdb.total-sst-files-size"),
            estimated_keys: self.int_property("rocksdb.estimate-num-keys"),
            level0_files: self.int_property("rocksdb.num-files-at-level0"),
        }
    }
}

/// The error a `return` failpoint injects.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
fn injected(what: &str) -> StoreError {
    StoreError::Io(format!("{what} failed (injected by a failpoint)"))
}

/// Plain RocksDB with its default options and synced `WriteBatch` puts: the baseline the
/// `bench --baseline` run compares the engine against.
pub struct PlainRocks {
    db: DB,
}

impl PlainRocks {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        Ok(Self {
            db: DB::open(&opts, path).map_err(io)?,
        })
    }

    /// Writes the entries `fill` produces as one synced `WriteBatch`.
    pub fn write_synced(
        &self,
        fill: &mut dyn FnMut(&mut EntrySink<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        fill(&mut |op, key, value| {
            match op {
                Op::Put => batch.put(key, value),
                Op::Merge => batch.merge(key, value),
            }
            Ok(())
        })?;
        let mut write_options = WriteOptions::default();
        write_options.set_sync(true);
        self.db.write_opt(batch, &write_options).map_err(io)
    }

    /// How many of `keys` are present, read with one `MultiGet`.
    pub fn count_present(&self, keys: &[Vec<u8>]) -> Result<usize, StoreError> {
        let mut present = 0;
        for value in self.db.multi_get(keys) {
            present += usize::from(value.map_err(io)?.is_some());
        }
        Ok(present)
    }
}
