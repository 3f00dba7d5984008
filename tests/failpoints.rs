//! Failpoints (the `fail` crate; `cargo test --features failpoints --test failpoints`):
//! before the WAL write, after it but before the acknowledgement, in the WAL sync, during
//! SST ingestion, in the store's open and in the prefilter load — each with a panic, an
//! error and a delay. The oracle: a GRN acknowledged before the fault is whole after a
//! restart, the GRN hit by the fault is whole or absent, nothing is acknowledged twice,
//! and after a panicked write, a write whose outcome is unknown or a failed sync the engine
//! refuses writes until it is reopened (its prefilter may have missed the write; a
//! reopen rebuilds it from the store), while an error that applied nothing leaves it
//! writing.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use fail::FailScenario;
use serialgate::domain::{SkuKind, UsnType};
use serialgate::engine::{GrnItem, GrnPayload, PoItem, PoPayload};
use serialgate::outcome::GrnReply;
use serialgate::serial::SerialList;
use serialgate::store::rocks::RocksConfig;
use serialgate::{AccountOptions, Engine, EngineConfig, EngineError, GrnMode};

const ACCOUNT: &str = "acme";

/// Engines of the commit-path cases leave a prefilter snapshot on every clean close
/// (`snapshot_min` 0), so the oracle can check that a failed one leaves none.
fn open(dir: &Path, ingest: bool) -> Result<Engine, EngineError> {
    open_with(dir, ingest, EngineConfig::default().prefilter_snapshot_min)
}

fn config(ingest: bool, snapshot_min: usize) -> EngineConfig {
    EngineConfig {
        rocks: RocksConfig {
            ingest_min_entries: if ingest { 1 } else { usize::MAX },
            block_cache_bytes: 8 << 20,
            write_buffer_bytes: 4 << 20,
            durable: true,
        },
        prefilter_snapshot_min: snapshot_min,
        ..EngineConfig::default()
    }
}

fn open_with(dir: &Path, ingest: bool, snapshot_min: usize) -> Result<Engine, EngineError> {
    Engine::open(dir, config(ingest, snapshot_min))
}

fn setup(dir: &Path, ingest: bool) -> Engine {
    setup_with(dir, ingest, EngineConfig::default().prefilter_snapshot_min)
}

fn setup_with(dir: &Path, ingest: bool, snapshot_min: usize) -> Engine {
    let engine = open_with(dir, ingest, snapshot_min).unwrap();
    engine
        .create_account(ACCOUNT, AccountOptions::new(UsnType::SellerAtGrn))
        .unwrap();
    engine
        .set_skus(ACCOUNT, SkuKind::Serialized, &["S1".into()])
        .unwrap();
    engine
        .create_po(
            ACCOUNT,
            PoPayload {
                vendor_id: "V".into(),
                reference_code: "PO".into(),
                create_or_update: "I".into(),
                is_cancel: None,
                items: vec![PoItem {
                    line_item_number: "1".into(),
                    sku: "S1".into(),
                    quantity: 1_000_000,
                    serials: None,
                }],
            },
        )
        .unwrap();
    engine
}

fn serials(tag: &str) -> Vec<String> {
    (0..50).map(|i| format!("{tag}-{i:03}")).collect()
}

fn grn(id: &str, values: &[String]) -> GrnPayload {
    let mut list = SerialList::new();
    for v in values {
        list.push(v.as_bytes());
    }
    GrnPayload {
        grn_id: id.into(),
        reference_code: "PO".into(),
        invoice_number: None,
        items: vec![GrnItem {
            sku: Some("S1".into()),
            serials: Some(list),
            ..GrnItem::default()
        }],
    }
}

/// How many of `values` the engine holds as inwarded by GRN `id`.
fn present(engine: &Engine, id: &str, values: &[String]) -> usize {
    let keys: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    engine
        .serials(ACCOUNT, &keys)
        .unwrap()
        .iter()
        .flatten()
        .filter(|v| v.grn.as_deref() == Some(id))
        .count()
}

fn is_storage(result: &Result<GrnReply, EngineError>) -> bool {
    matches!(result, Err(e) if e.code() == "STORAGE")
}

#[test]
fn commit_path_failpoints_lose_nothing_and_leave_nothing_partial() {
    let cases = [
        ("store::write::before", false),
        ("store::write::after", false),
        ("store::sync", false),
        ("store::ingest", true),
    ];
    for (point, ingest) in cases {
        for action in ["panic", "return", "delay(30)"] {
            let case = format!("{point} x {action}");
            let scenario = FailScenario::setup();
            let dir = tempfile::tempdir().unwrap();
            let engine = setup_with(dir.path(), ingest, 0);
            let (a, b, c) = (serials("A"), serials("B"), serials("C"));
            let acked = engine
                .receive(ACCOUNT, &grn("G-A", &a), GrnMode::Commit)
                .unwrap();
            assert!(acked.is_committed(), "{case}");

            fail::cfg(point, action).unwrap();
            let hit = catch_unwind(AssertUnwindSafe(|| {
                engine.receive(ACCOUNT, &grn("G-B", &b), GrnMode::Commit)
            }));
            fail::remove(point);
            match (action, &hit) {
                ("delay(30)", Ok(Ok(reply))) => assert!(reply.is_committed(), "{case}"),
                ("return", Ok(result)) => assert!(is_storage(result), "{case}: {result:?}"),
                ("panic", Err(_)) => {}
                _ => panic!("{case}: unexpected {hit:?}"),
            }
            // Writes stop after a panicked write, a write whose outcome is unknown, or a
            // failed sync; an error that applied nothing leaves the engine writing.
            let refusing = match (point, action) {
                (_, "delay(30)") => false,
                ("store::sync", "panic") => false, // the prefilter already has B
                ("store::write::before" | "store::ingest", "return") => false,
                _ => true,
            };
            if !refusing {
                let next = engine.receive(ACCOUNT, &grn("G-C", &c), GrnMode::Commit);
                assert!(
                    matches!(&next, Ok(r) if r.is_committed()),
                    "{case}: {next:?}"
                );
            }
            if refusing {
                // Writes stop, with a clear error, until a reopen.
                let next = engine.receive(ACCOUNT, &grn("G-C", &c), GrnMode::Commit);
                assert!(is_storage(&next), "{case}: {next:?}");
                // B may be in the store unknown to the prefilter: sending its serials again
                // must not get them in twice.
                let again = engine.receive(ACCOUNT, &grn("G-B2", &b), GrnMode::Commit);
                assert!(is_storage(&again), "{case}: B's serials again: {again:?}");
            }
            drop(engine);
            // Only an engine still writing leaves a prefilter snapshot: a failed one's
            // prefilter may miss what the faulty write stored.
            let snapshot = dir.path().join("PREFILTER.snapshot").exists();
            assert_eq!(snapshot, !refusing, "{case}: snapshot left: {snapshot}");

            // Restart: A whole, B whole or absent, and the engine takes writes again.
            let engine = open_with(dir.path(), ingest, 0).unwrap();
            assert_eq!(present(&engine, "G-A", &a), a.len(), "{case}: A lost");
            let b_present = present(&engine, "G-B", &b);
            assert!(
                b_present == 0 || b_present == b.len(),
                "{case}: B has {b_present}"
            );
            if action == "delay(30)" {
                assert_eq!(b_present, b.len(), "{case}: an acknowledged B lost");
            }
            let duplicate = engine
                .receive(ACCOUNT, &grn("G-A3", &a), GrnMode::Commit)
                .unwrap();
            assert!(!duplicate.is_committed(), "{case}: A received twice");
            let fresh = engine
                .receive(ACCOUNT, &grn("G-D", &serials("D")), GrnMode::Commit)
                .unwrap();
            assert!(fresh.is_committed(), "{case}: {fresh:?}");
            let problems = engine.verify_account(ACCOUNT).unwrap();
            assert!(problems.is_empty(), "{case}: {problems:?}");
            scenario.teardown();
        }
    }
}

#[test]
fn open_and_prefilter_load_failpoints_fail_the_open_cleanly() {
    for point in ["store::open", "engine::prefilter_load"] {
        for action in ["panic", "return", "delay(30)"] {
            let case = format!("{point} x {action}");
            let scenario = FailScenario::setup();
            let dir = tempfile::tempdir().unwrap();
            let a = serials("A");
            {
                let engine = setup(dir.path(), false);
                let reply = engine
                    .receive(ACCOUNT, &grn("G-A", &a), GrnMode::Commit)
                    .unwrap();
                assert!(reply.is_committed());
            }
            fail::cfg(point, action).unwrap();
            let opened = catch_unwind(AssertUnwindSafe(|| open(dir.path(), false)));
            fail::remove(point);
            match (action, &opened) {
                ("delay(30)", Ok(Ok(_))) => {}
                ("return", Ok(Err(e))) => assert_eq!(e.code(), "STORAGE", "{case}"),
                ("panic", Err(_)) => {}
                _ => panic!(
                    "{case}: unexpected {:?}",
                    opened.as_ref().map(|r| r.is_ok())
                ),
            }
            drop(opened);
            // Opened again without the fault: everything acknowledged is there.
            let engine = open(dir.path(), false).unwrap();
            assert_eq!(present(&engine, "G-A", &a), a.len(), "{case}");
            let duplicate = engine
                .receive(ACCOUNT, &grn("G-A2", &a), GrnMode::Commit)
                .unwrap();
            assert!(!duplicate.is_committed(), "{case}: prefilter missed A");
            scenario.teardown();
        }
    }
}

/// A RESP client for the in-process server: one request, one reply, as text.
struct Client(std::io::BufReader<std::net::TcpStream>);

impl Client {
    fn command(&mut self, args: &[&str]) -> String {
        use std::io::{BufRead, Read, Write};
        let mut frame = format!("*{}\r\n", args.len());
        for a in args {
            frame.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.0.get_mut().write_all(frame.as_bytes()).unwrap();
        let mut line = String::new();
        self.0.read_line(&mut line).unwrap();
        let line = line.trim_end().to_string();
        match line.strip_prefix('$') {
            Some(len) => {
                let mut body = vec![0u8; len.parse::<usize>().unwrap() + 2];
                self.0.read_exact(&mut body).unwrap();
                String::from_utf8_lossy(&body[..body.len() - 2]).into_owned()
            }
            None => line,
        }
    }
}

/// Through the server: a write that panics fails the engine, and the server reopens it by
/// itself (the panic must wake the reopener: no other request arrives to do it), after
/// which the GRN hit is whole or absent and writes are taken again, with no restart.
#[test]
fn the_server_reopens_an_engine_a_panicking_write_failed() {
    use serialgate::server::{serve, Reopen, ServerConfig};

    let scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let engine = setup_with(dir.path(), false, 0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ServerConfig {
        reopen: Some(Reopen {
            dir: dir.path().to_path_buf(),
            config: config(false, 0),
        }),
        ..ServerConfig::default()
    };
    let server = runtime.spawn(serve(listener, None, engine, config, async {
        let _ = stopped.await;
    }));
    let mut client = Client(std::io::BufReader::new(
        std::net::TcpStream::connect(addr).unwrap(),
    ));
    let body = |id: &str, values: &[String]| serde_json::to_string(&grn(id, values)).unwrap();
    let (a, b, c) = (serials("A"), serials("B"), serials("C"));
    assert!(client
        .command(&["GRN.COMMIT", ACCOUNT, &body("G-A", &a)])
        .contains("\"committed\""));

    fail::cfg("store::write::after", "1*panic").unwrap();
    let reply = client.command(&["GRN.COMMIT", ACCOUNT, &body("G-B", &b)]);
    fail::remove("store::write::after");
    assert!(
        reply.starts_with("-ERR command failed inside the server"),
        "{reply}"
    );

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let info = client.command(&["INFO"]);
        if info.contains("engine_reopens:1") {
            assert!(info.contains("engine_state:serving"), "{info}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reopened: {info}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // B whole or absent: sending it again commits it or answers the replay.
    let again = client.command(&["GRN.COMMIT", ACCOUNT, &body("G-B", &b)]);
    assert!(again.contains("\"committed\""), "{again}");
    let c_reply = client.command(&["GRN.COMMIT", ACCOUNT, &body("G-C", &c)]);
    assert!(c_reply.contains("\"committed\""), "{c_reply}");
    let duplicate = client.command(&["GRN.COMMIT", ACCOUNT, &body("G-A2", &a)]);
    assert!(duplicate.contains("\"rejected\""), "{duplicate}");

    drop(client);
    let _ = stop.send(());
    runtime.block_on(server).unwrap().unwrap();
    drop(runtime);
    let engine = open_with(dir.path(), false, 0).unwrap();
    for (id, values) in [("G-A", &a), ("G-B", &b), ("G-C", &c)] {
        assert_eq!(present(&engine, id, values), values.len(), "{id}");
    }
    assert!(engine.verify_account(ACCOUNT).unwrap().is_empty());
    scenario.teardown();
}
