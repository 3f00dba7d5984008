//! The reference model of `reference_model.rs`, over the real server under the power-loss
//! shim (tools/powerloss.c). Besides the model's steps there are crashes: `kill -9` with
//! nothing in flight, or with a GRN in flight, after which every file of the store is cut
//! back to the length its last fsync made durable, as a power cut would leave it. A model
//! reopen is a clean stop (SIGTERM) and start. Every answer must be the model's, every
//! acknowledged step must survive every crash, and a GRN in flight at a crash must be whole
//! or absent: after each step every serial of the universe reads back as the model holds it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;

use serialgate::outcome::{GrnReply, OrderReply};
use serialgate::powerloss::{cut_to_synced, Dropped};

use crate::reference_model::{
    expected, generation_error_answer, grn_answer, order_answer, po_answer, request, settle, step,
    Answer, Model, Request, Step, Unit, POOL, TYPE1, TYPE3, UNIVERSE,
};
use crate::server::{frame, Raw, Server};

#[derive(Debug, Clone)]
enum Op {
    Step(Step),
    /// `kill -9` between requests, then power loss.
    Crash,
    /// A GRN sent, `kill -9` about `after_us` later whether or not it was answered, then
    /// power loss.
    CrashDuringGrn {
        id: u8,
        serials: Vec<u8>,
        after_us: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => step().prop_map(Op::Step),
        1 => Just(Op::Crash),
        1 => (0u8..10, proptest::collection::vec(0..UNIVERSE, 1..6), 0u64..3_000)
            .prop_map(|(id, serials, after_us)| Op::CrashDuringGrn { id, serials, after_us }),
    ]
}

/// What a run's crashes came to.
#[derive(Debug, Default)]
struct Tally {
    dropped: Dropped,
    /// GRNs in flight at a kill: answered before it, and not answered (found whole, found
    /// absent, or one that would have changed nothing).
    acknowledged: u32,
    whole: u32,
    absent: u32,
    unchanged: u32,
    /// Starts after a clean stop that took the prefilter snapshot it left.
    restored: u32,
}

/// The power-loss shim, built once for every test of this file.
fn shim() -> &'static Path {
    static SHIM: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = SHIM.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let path = crate::util::build_shim("powerloss", &root);
        (dir, path)
    });
    path
}

/// The server, its store and the shim's sync log.
struct Node {
    _dir: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
    server: Server,
    con: Raw,
    tally: Tally,
}

impl Node {
    /// Every clean stop leaves a prefilter snapshot, however small the store.
    fn start(data: &Path, log: &Path) -> (Server, Raw) {
        let env = [
            ("LD_PRELOAD", shim().as_os_str()),
            ("SERIALGATE_SYNC_LOG", log.as_os_str()),
        ];
        let server = Server::start_with_env(data, &["--prefilter-snapshot-min", "0"], &env);
        let con = Raw::connect(server.addr);
        (server, con)
    }

    fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let (data, log) = (root.join("data"), root.join("sync-log"));
        let (server, con) = Self::start(&data, &log);
        let mut node = Node {
            _dir: dir,
            data,
            log,
            server,
            con,
            tally: Tally::default(),
        };
        // The accounts and POs of the reference model's `setup`.
        for (account, usn, skus, po) in [
            (
                "acme",
                "2",
                &["S1"][..],
                r#"{"referenceCode":"PO-M","items":[{"lineItemNumber":"1","sku":"S1","quantity":1000000}]}"#,
            ),
            (
                POOL,
                "5",
                &["S1", "S2"][..],
                r#"{"referenceCode":"PO-P","items":[{"lineItemNumber":"1","sku":"S1","quantity":1000000},{"lineItemNumber":"2","sku":"S2","quantity":1000000}]}"#,
            ),
        ] {
            let created = node.command(&["ACCOUNT.CREATE", account, "USN", usn, "PREFIX", "P5"]);
            assert!(created.contains("created"), "{created}");
            let mut set = vec!["SKU.SET", account, "SERIALIZED"];
            set.extend_from_slice(skus);
            assert!(node.command(&set).starts_with(':'));
            assert!(node
                .command(&["PO.CREATE", account, po])
                .contains("created"));
        }
        for create in [
            &["ACCOUNT.CREATE", TYPE1, "USN", "1"][..],
            &[
                "ACCOUNT.CREATE",
                TYPE3,
                "USN",
                "3",
                "PREFIX",
                "G3",
                "TOLERANCE_PCT",
                "50",
            ][..],
        ] {
            let created = node.command(create);
            assert!(created.contains("created"), "{created}");
            assert_eq!(
                node.command(&["SKU.SET", create[1], "SERIALIZED", "S1"]),
                ":1"
            );
        }
        node
    }

    fn command(&mut self, args: &[&str]) -> String {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.con.command(&args)
    }

    fn restart(&mut self) {
        (self.server, self.con) = Self::start(&self.data, &self.log);
    }

    /// `kill -9`, then every file cut back to its synced length, then a start.
    fn crash(&mut self) {
        self.server.kill9();
        self.tally.dropped += cut_to_synced(&self.data, &self.log).unwrap();
        self.restart();
    }

    fn stop_and_start(&mut self) {
        assert!(self.server.terminate(), "clean stop");
        self.restart();
        let info = self.command(&["INFO"]);
        if info.contains("prefilter_restored:1") {
            self.tally.restored += 1;
        }
    }

    /// What the server holds of every serial the model knows.
    fn read(&mut self, model: &Model) -> Vec<Option<Unit>> {
        let mut units = Vec::new();
        for (account, serials) in [
            ("acme", model.universe()),
            (POOL, model.pool()),
            (TYPE1, model.type1_universe()),
            (TYPE3, model.type3_generated_view()),
        ] {
            for (serial, _) in serials {
                let reply = self.command(&["SERIAL.GET", account, &serial]);
                units.push((reply != "(nil)").then(|| unit(&reply)));
            }
        }
        units
    }

    /// Sends `request` and returns what it came to.
    fn send(&mut self, request: Request) -> Sent {
        match request {
            Request::Grn(account, payload) => {
                let body = serde_json::to_string(&payload).unwrap();
                Sent::Answer(wire_grn_answer(&self.command(&[
                    "GRN.COMMIT",
                    account,
                    &body,
                ])))
            }
            Request::Outward(payload) => Sent::Answer(wire_order_answer(&self.command(&[
                "OUTWARD",
                "acme",
                &serde_json::to_string(&payload).unwrap(),
            ]))),
            Request::Return(payload) => Sent::Answer(wire_order_answer(&self.command(&[
                "RETURN",
                "acme",
                &serde_json::to_string(&payload).unwrap(),
            ]))),
            Request::Po(account, payload) => {
                let body = serde_json::to_string(&payload).unwrap();
                let reply = self.command(&["PO.CREATE", account, &body]);
                let answer = if reply.starts_with("-UNKNOWN_PO") {
                    Answer::Refused
                } else {
                    let parsed = serde_json::from_str(&reply)
                        .unwrap_or_else(|e| panic!("PO reply {reply}: {e}"));
                    po_answer(&Ok(parsed))
                };
                Sent::Answer(answer)
            }
            Request::Generate(count, sku) => {
                let count = count.to_string();
                let mut args = vec!["SERIALS.GENERATE", POOL, "COUNT", &count];
                if let Some(sku) = sku {
                    args.extend(["SKU", sku]);
                }
                Self::generated(&self.command(&args))
            }
            Request::GenerateForPo(po, count) => {
                let count = count.to_string();
                let args = [
                    "SERIALS.GENERATE",
                    TYPE3,
                    "PO",
                    &po,
                    "SKU",
                    "S1",
                    "COUNT",
                    &count,
                ];
                Self::generated(&self.command(&args))
            }
        }
    }

    /// A `SERIALS.GENERATE` reply: the serials drawn, or what its error comes to.
    fn generated(reply: &str) -> Sent {
        if let Some(error) = reply.strip_prefix('-') {
            let code = error.split(' ').next().unwrap_or_default();
            return Sent::Answer(generation_error_answer(code));
        }
        let v: Value =
            serde_json::from_str(reply).unwrap_or_else(|e| panic!("SERIALS.GENERATE {reply}: {e}"));
        Sent::Generated(
            v["serials"]
                .as_array()
                .expect("serials")
                .iter()
                .map(|s| s.as_str().expect("a serial").to_string())
                .collect(),
        )
    }
}

/// What a request came to: an answer, or the serials a generation drew.
enum Sent {
    Answer(Answer),
    Generated(Vec<String>),
}

fn unit(reply: &str) -> Unit {
    let v: Value =
        serde_json::from_str(reply).unwrap_or_else(|e| panic!("SERIAL.GET {reply}: {e}"));
    Unit {
        state: serde_json::from_value(v["state"].clone()).unwrap(),
        sku: v["sku"].as_str().map(String::from),
        grn: v["grn"].as_str().unwrap_or_default().to_string(),
        order: v["order"].as_str().map(String::from),
        condition: serde_json::from_value(v["condition"].clone()).unwrap(),
    }
}

/// What a GRN's wire reply comes to; a clash of GRN id, a cancelled or an unknown PO are
/// the expected errors.
fn wire_grn_answer(reply: &str) -> Answer {
    if ["-GRN_EXISTS", "-PO_CANCELLED", "-UNKNOWN_PO"]
        .iter()
        .any(|code| reply.starts_with(code))
    {
        return Answer::Refused;
    }
    let parsed: GrnReply =
        serde_json::from_str(reply).unwrap_or_else(|e| panic!("GRN reply {reply}: {e}"));
    grn_answer(&Ok(parsed))
}

fn wire_order_answer(reply: &str) -> Answer {
    let parsed: OrderReply =
        serde_json::from_str(reply).unwrap_or_else(|e| panic!("order reply {reply}: {e}"));
    order_answer(&Ok(parsed))
}

/// The model's view of every serial it knows, in the order `Node::read` reads them.
fn held(model: &Model) -> Vec<Option<Unit>> {
    model
        .universe()
        .into_iter()
        .chain(model.pool())
        .chain(model.type1_universe())
        .chain(model.type3_generated_view())
        .map(|(_, unit)| unit)
        .collect()
}

fn run(ops: &[Op]) -> Tally {
    let mut node = Node::new();
    let mut model = Model::default();
    for (at, op) in ops.iter().enumerate() {
        match op {
            Op::Step(Step::Reopen) => node.stop_and_start(),
            Op::Step(step) => {
                let (answer, drawn) = match node.send(request(&model, step)) {
                    Sent::Answer(answer) => (answer, Vec::new()),
                    Sent::Generated(serials) => (Answer::Done, serials),
                };
                settle(&mut model, step, answer, &drawn, &format!("op {at}"));
            }
            Op::Crash => node.crash(),
            Op::CrashDuringGrn {
                id,
                serials,
                after_us,
            } => {
                let step = Step::Grn {
                    id: *id,
                    serials: serials.clone(),
                };
                let mut applied = model.clone();
                let answer = expected(&mut applied, &step);
                let Request::Grn(account, payload) = request(&model, &step) else {
                    unreachable!()
                };
                let body = serde_json::to_vec(&payload).unwrap();
                node.con
                    .send(&frame(&[b"GRN.COMMIT", account.as_bytes(), &body]));
                std::thread::sleep(std::time::Duration::from_micros(*after_us));
                node.server.kill9();
                // Answered before the kill: acknowledged, so it must survive.
                let reply = node.con.reply();
                let acknowledged = reply != "<closed>";
                if acknowledged {
                    assert_eq!(wire_grn_answer(&reply), answer, "op {at}: {op:?}");
                }
                node.tally.dropped += cut_to_synced(&node.data, &node.log).unwrap();
                node.restart();
                let found = node.read(&model);
                let tally = &mut node.tally;
                if acknowledged {
                    tally.acknowledged += 1;
                } else if held(&applied) == held(&model) {
                    tally.unchanged += 1;
                } else if found == held(&applied) {
                    tally.whole += 1;
                } else {
                    tally.absent += 1;
                    applied = model.clone();
                }
                model = applied;
            }
        }
        assert_eq!(
            node.read(&model),
            held(&model),
            "op {at}: {op:?}: the store is not the model's (a lost or partial write)"
        );
    }
    node.tally
}

proptest! {
    // Every case and every shrink step starts servers: shrinking is bounded.
    #![proptest_config(ProptestConfig { cases: 16, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_server_matches_the_model_across_power_loss(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops);
    }
}

/// The crashes land on both sides of the acknowledgement, and clean stops leave snapshots
/// that the starts take: the random runs above are not passing for want of trying.
#[test]
fn crashes_land_before_and_after_the_acknowledgement() {
    let ops: Vec<Op> = (0..16u8)
        .map(|n| Op::CrashDuringGrn {
            id: n,
            serials: vec![n, n + 8],
            // At once (before the server has read it) or long after it is acknowledged.
            after_us: if n % 2 == 0 { 0 } else { 100_000 },
        })
        .chain([Op::Step(Step::Reopen)])
        .collect();
    let tally = run(&ops);
    println!("{tally:?}");
    assert!(tally.acknowledged > 0, "{tally:?}");
    assert!(
        tally.whole + tally.absent + tally.unchanged > 0,
        "{tally:?}"
    );
    assert!(tally.dropped.files_cut > 0, "{tally:?}");
    assert_eq!(tally.restored, 1, "{tally:?}");
}
