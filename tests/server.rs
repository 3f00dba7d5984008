//! The real `serialgate serve` binary on a free loopback port, driven with raw bytes,
//! redis-cli (Debian's redis-tools) and the `redis` crate.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server process, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
}

impl Server {
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        Self::start_with_env(data, extra, &[])
    }

    /// As `start`, with extra environment variables (an `LD_PRELOAD` shim, say).
    pub fn start_with_env(data: &Path, extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_serialgate"))
            .args(["serve", "--data"])
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .env_remove("SERIALGATE_PASSWORD")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn serialgate serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the listening line");
        let mut metrics = String::new();
        if extra.contains(&"--metrics-listen") {
            stdout
                .read_line(&mut metrics)
                .expect("read the metrics line");
        }
        let addr = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let metrics_addr = metrics
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok());
        Server {
            child,
            addr,
            metrics_addr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the process to exit; returns its exit status success.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw RESP client over a plain socket.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn command(&mut self, args: &[&[u8]]) -> String {
        self.send(&frame(args));
        self.reply()
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    pub fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Some(line);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// One reply rendered as text: `+OK`, `-ERR …`, `:3`, the bulk's content, `(nil)`, or
    /// `[a, b]` for arrays. `<closed>` if the server closed the connection.
    pub fn reply(&mut self) -> String {
        let Some(line) = self.line() else {
            return "<closed>".into();
        };
        match line.as_bytes().first() {
            Some(b'$') => {
                let len: i64 = line[1..].parse().unwrap();
                if len < 0 {
                    return "(nil)".into();
                }
                while self.buf.len() < len as usize + 2 {
                    assert!(self.fill(), "closed mid-bulk");
                }
                let body = String::from_utf8_lossy(&self.buf[..len as usize]).into_owned();
                self.buf.drain(..len as usize + 2);
                body
            }
            Some(b'*') => {
                let n: usize = line[1..].parse().unwrap();
                let items: Vec<String> = (0..n).map(|_| self.reply()).collect();
                format!("[{}]", items.join(", "))
            }
            // RESP3 map and null.
            Some(b'%') => {
                let n: usize = line[1..].parse().unwrap();
                let pairs: Vec<String> = (0..n)
                    .map(|_| format!("{}: {}", self.reply(), self.reply()))
                    .collect();
                format!("{{{}}}", pairs.join(", "))
            }
            Some(b'_') => "(null)".into(),
            _ => line,
        }
    }

    pub fn is_closed(&mut self) -> bool {
        self.line().is_none()
    }
}

/// `args` as one RESP multibulk request.
pub fn frame(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

pub fn redis_cli(port: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", port])
        .args(args)
        .output()
        .expect("redis-cli (Debian redis-tools) must be installed: tools/setup does it");
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

const PO: &str = r#"{"vendorId":"VENDORE123","referenceCode":"TestPo22232","createOrUpdate":"I","isCancel":0,
 "items":[{"lineItemNumber":"12","sku":"SODA01","quantity":"3","unitPrice":5},
          {"lineItemNumber":"13","sku":"PLAIN1","quantity":"5"}]}"#;

fn setup_type2(raw: &mut Raw) {
    assert!(raw
        .command(&[b"ACCOUNT.CREATE", b"acme", b"USN", b"2"])
        .contains("\"created\""));
    assert_eq!(
        raw.command(&[b"SKU.SET", b"acme", b"SERIALIZED", b"SODA01"]),
        ":1"
    );
    assert_eq!(
        raw.command(&[b"SKU.SET", b"acme", b"PLAIN", b"PLAIN1"]),
        ":1"
    );
    assert!(raw
        .command(&[b"PO.CREATE", b"acme", PO.as_bytes()])
        .contains("\"created\""));
}

#[test]
fn handshake_inline_and_pipelining() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut raw = Raw::connect(server.addr);
    raw.send(b"PING\r\n");
    assert_eq!(raw.reply(), "+PONG");
    raw.send(b"ECHO \"hello world\"\n");
    assert_eq!(raw.reply(), "hello world");
    assert_eq!(raw.command(&[b"SELECT", b"0"]), "+OK");
    assert!(raw.command(&[b"SELECT", b"1"]).starts_with("-ERR"));
    assert_eq!(raw.command(&[b"CLIENT", b"SETNAME", b"erp"]), "+OK");
    assert_eq!(raw.command(&[b"CLIENT", b"GETNAME"]), "erp");
    assert_eq!(
        raw.command(&[b"CLIENT", b"SETINFO", b"LIB-NAME", b"x"]),
        "+OK"
    );
    assert!(raw.command(&[b"HELLO", b"4"]).starts_with("-NOPROTO"));
    assert!(raw.command(&[b"HELLO", b"2"]).contains("serialgate"));
    assert_eq!(raw.command(&[b"COMMAND", b"DOCS"]), "[]");
    assert!(raw.command(&[b"INFO"]).contains("prefilter_fingerprints:"));
    // An unknown command is an error, and the connection stays usable.
    assert!(raw.command(&[b"NOPE"]).starts_with("-ERR unknown command"));
    assert!(raw.command(&[b"ECHO"]).starts_with("-ERR wrong number"));
    assert_eq!(raw.command(&[b"ping"]), "+PONG");

    // 10,000 pipelined commands in one write, answered in order.
    let mut batch = Vec::new();
    for i in 0..10_000 {
        batch.extend_from_slice(
            format!("*2\r\n$4\r\nECHO\r\n${}\r\n{}\r\n", i.to_string().len(), i).as_bytes(),
        );
    }
    raw.send(&batch);
    for i in 0..10_000 {
        assert_eq!(raw.reply(), i.to_string());
    }
    assert_eq!(raw.command(&[b"QUIT"]), "+OK");
    assert!(raw.is_closed());
}

#[test]
fn resp3_after_hello_3() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut raw = Raw::connect(server.addr);
    setup_type2(&mut raw);
    // RESP2: nil is `$-1`, HELLO's answer a flat array.
    raw.send(b"SERIAL.GET acme NOPE\r\n");
    assert_eq!(raw.line(), Some("$-1".into()));
    assert!(raw
        .command(&[b"HELLO", b"2"])
        .starts_with("[server, serialgate, "));
    // RESP3 from HELLO 3's own reply on: a map, and `_` for nil.
    let hello = raw.command(&[b"HELLO", b"3"]);
    assert!(hello.starts_with("{server: serialgate, "), "{hello}");
    assert!(hello.contains("proto: :3"), "{hello}");
    raw.send(b"SERIAL.MGET acme NOPE UK1\r\n");
    assert_eq!(raw.line(), Some("*2".into()));
    assert_eq!(raw.line(), Some("_".into()));
    assert_eq!(raw.line(), Some("_".into()));
    assert_eq!(raw.command(&[b"PING"]), "+PONG");
    // And back.
    raw.command(&[b"HELLO", b"2"]);
    raw.send(b"SERIAL.GET acme NOPE\r\n");
    assert_eq!(raw.line(), Some("$-1".into()));

    // redis-cli -3 and the redis crate over RESP3.
    // redis-cli prints a null as an empty line when not on a terminal.
    assert_eq!(
        redis_cli(&server.port(), &["-3", "SERIAL.GET", "acme", "NOPE"]),
        ""
    );
    assert!(redis_cli(&server.port(), &["-3", "HELLO", "3"]).contains("proto 3\n"));
    let client = redis::Client::open(format!("redis://{}/?protocol=resp3", server.addr)).unwrap();
    let mut con = client.get_connection().unwrap();
    let missing: Option<String> = redis::cmd("SERIAL.GET")
        .arg("acme")
        .arg("NOPE")
        .query(&mut con)
        .unwrap();
    assert_eq!(missing, None);
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn type2_workflow_over_the_wire_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut raw = Raw::connect(server.addr);
    setup_type2(&mut raw);
    let grn = r#"{"grnId":"GRN-1","referenceCode":"TestPo22232","invoiceNumber":"INV-7",
      "items":[{"sku":"SODA01","serials":["UK07812","UK08912"],"condition":"good","bin":"A-01"},
               {"sku":"SODA01","serials":["UK09012"],"condition":"bad","qcReason":"DAMAGED"},
               {"sku":"PLAIN1","quantity":5}]}"#;
    assert!(raw
        .command(&[b"GRN.CHECK", b"acme", grn.as_bytes()])
        .starts_with(r#"{"status":"valid""#));
    assert_eq!(
        raw.command(&[b"GRN.COMMIT", b"acme", grn.as_bytes()]),
        r#"{"status":"committed","grnId":"GRN-1","units":8,"serials":[]}"#
    );
    assert!(raw
        .command(&[b"GRN.COMMIT", b"acme", grn.as_bytes()])
        .contains(r#""replayed":true"#));
    let other = grn.replace("UK07812", "UK00001");
    assert!(raw
        .command(&[b"GRN.COMMIT", b"acme", other.as_bytes()])
        .starts_with("-GRN_EXISTS"));
    let view = raw.command(&[b"SERIAL.GET", b"acme", b"UK09012"]);
    let view: serde_json::Value = serde_json::from_str(&view).unwrap();
    assert_eq!(view["condition"], "bad");
    assert_eq!(view["qcReason"], "DAMAGED");
    assert_eq!(view["grn"], "GRN-1");
    assert_eq!(raw.command(&[b"SERIAL.GET", b"acme", b"UNKNOWN"]), "(nil)");
    let many = raw.command(&[b"SERIAL.MGET", b"acme", b"UK07812", b"NOPE"]);
    assert!(
        many.starts_with("[{") && many.ends_with(", (nil)]"),
        "{many}"
    );
    let po: serde_json::Value =
        serde_json::from_str(&raw.command(&[b"PO.GET", b"acme", b"TestPo22232"])).unwrap();
    assert_eq!(po["lines"][0]["received"], 3);

    // Rejections are JSON replies, not errors.
    let dup = r#"{"grnId":"GRN-2","referenceCode":"TestPo22232","items":[{"sku":"SODA01","serials":["UK07812"]}]}"#;
    let rejected = raw.command(&[b"GRN.COMMIT", b"acme", dup.as_bytes()]);
    assert!(rejected.contains(r#""status":"rejected""#) && rejected.contains("ALREADY_INWARDED"));

    // Request-level failures: code first.
    assert!(raw
        .command(&[b"GRN.COMMIT", b"acme", b"{not json"])
        .starts_with("-BADJSON"));
    assert!(raw
        .command(&[b"GRN.COMMIT", b"nobody", dup.as_bytes()])
        .starts_with("-UNKNOWN_ACCOUNT"));
    let unknown_po = dup.replace("TestPo22232", "PO-404");
    assert!(raw
        .command(&[b"GRN.COMMIT", b"acme", unknown_po.as_bytes()])
        .starts_with("-UNKNOWN_PO"));
    assert!(raw
        .command(&[b"ACCOUNT.CREATE", b"x", b"USN", b"9"])
        .starts_with("-ERR"));
    assert!(raw
        .command(&[b"OUTWARD", b"acme", b"{}"])
        .starts_with("-BADJSON"));
    assert_eq!(raw.command(&[b"PING"]), "+PONG");
}

#[test]
fn malformed_frames_get_an_error_and_a_closed_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for bad in [
        &b"*1\r\n+PING\r\n"[..],
        b"*1\r\n$4\r\nPINGXX\r\n",
        b"*x\r\n",
        b"ECHO \"open\r\n",
    ] {
        let mut raw = Raw::connect(server.addr);
        raw.send(bad);
        let reply = raw.reply();
        assert!(reply.starts_with("-ERR Protocol error"), "{bad:?}: {reply}");
        assert!(raw.is_closed());
    }
    // The server keeps serving others.
    assert_eq!(Raw::connect(server.addr).command(&[b"PING"]), "+PONG");
}

#[test]
fn limits_one_past_their_edge() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--max-inline-bytes",
            "32",
            "--max-bulk-bytes",
            "1000",
            "--max-args",
            "4",
            "--max-connections",
            "3",
            "--max-grn-units",
            "3",
            "--max-request-bytes",
            "2500",
        ],
    );
    let mut raw = Raw::connect(server.addr);
    raw.send(format!("ECHO {}\r\n", "x".repeat(25)).as_bytes());
    assert_eq!(raw.reply(), "x".repeat(25));
    raw.send(format!("ECHO {}\r\n", "x".repeat(40)).as_bytes());
    assert!(raw.reply().starts_with("-LIMIT"));
    assert!(raw.is_closed());

    let mut raw = Raw::connect(server.addr);
    assert_eq!(raw.command(&[b"ECHO", &[b'y'; 1000]]).len(), 1000);
    assert!(raw.command(&[b"ECHO", &[b'y'; 1001]]).starts_with("-LIMIT"));
    assert!(raw.is_closed());

    // Whole-request size: two 1000-byte arguments fit in 2500 bytes, three do not.
    let mut raw = Raw::connect(server.addr);
    assert!(raw
        .command(&[b"PING", &[b'z'; 1000], &[b'z'; 1000]])
        .starts_with("-ERR wrong number"));
    assert!(raw
        .command(&[b"PING", &[b'z'; 1000], &[b'z'; 1000], &[b'z'; 1000]])
        .starts_with("-LIMIT"));

    let mut raw = Raw::connect(server.addr);
    assert!(raw
        .command(&[b"SERIAL.MGET", b"a", b"b", b"c"])
        .starts_with("-UNKNOWN_ACCOUNT"));
    assert!(raw
        .command(&[b"SERIAL.MGET", b"a", b"b", b"c", b"d"])
        .starts_with("-LIMIT"));

    // An 8 MiB line without a newline is refused without buffering it all.
    let mut raw = Raw::connect(server.addr);
    let _ = raw.stream.write_all(&vec![b'A'; 8 << 20]);
    assert!(raw.reply().starts_with("-LIMIT"));

    // GRN unit limit.
    let mut raw = Raw::connect(server.addr);
    setup_type2(&mut raw);
    let at = r#"{"grnId":"G1","referenceCode":"TestPo22232","items":[{"sku":"SODA01","serials":["A","B","C"]}]}"#;
    assert!(raw
        .command(&[b"GRN.COMMIT", b"acme", at.as_bytes()])
        .contains("committed"));
    let past =
        r#"{"grnId":"G2","referenceCode":"TestPo22232","items":[{"sku":"PLAIN1","quantity":4}]}"#;
    assert!(raw
        .command(&[b"GRN.COMMIT", b"acme", past.as_bytes()])
        .starts_with("-LIMIT"));

    // Connections: 3 served, the 4th refused.
    drop(raw);
    // Let the server see the earlier connections close.
    std::thread::sleep(Duration::from_millis(500));
    let mut held: Vec<Raw> = (0..3).map(|_| Raw::connect(server.addr)).collect();
    for r in &mut held {
        assert_eq!(r.command(&[b"PING"]), "+PONG");
    }
    let mut fourth = Raw::connect(server.addr);
    assert!(fourth.reply().starts_with("-ERR max number of clients"));
    drop(held);
}

#[test]
fn slow_and_idle_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--idle-timeout-secs", "2"]);
    // One byte at a time.
    let mut slow = Raw::connect(server.addr);
    for b in b"*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\n" {
        slow.send(&[*b]);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(slow.reply(), "abc");
    // 1000 idle connections while another client is served.
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    let mut active = Raw::connect(server.addr);
    assert_eq!(active.command(&[b"PING"]), "+PONG");
    // The idle timeout closes a silent connection.
    let mut quiet = Raw::connect(server.addr);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(quiet.is_closed());
    drop(idle);
}

#[test]
fn password_gates_every_command_but_auth_hello_quit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--requirepass", "s3cret"]);
    let mut raw = Raw::connect(server.addr);
    assert!(raw.command(&[b"PING"]).starts_with("-NOAUTH"));
    assert!(raw
        .command(&[b"ACCOUNT.CREATE", b"a", b"USN", b"2"])
        .starts_with("-NOAUTH"));
    assert!(raw.command(&[b"AUTH", b"wrong"]).starts_with("-WRONGPASS"));
    assert!(raw.command(&[b"HELLO", b"2"]).starts_with("-NOAUTH"));
    assert!(raw
        .command(&[b"HELLO", b"2", b"AUTH", b"default", b"s3cret"])
        .contains("serialgate"));
    assert_eq!(raw.command(&[b"PING"]), "+PONG");
    let mut other = Raw::connect(server.addr);
    assert_eq!(other.command(&[b"AUTH", b"s3cret"]), "+OK");
    assert_eq!(other.command(&[b"PING"]), "+PONG");
    assert_eq!(
        redis_cli(
            &server.port(),
            &["-a", "s3cret", "--no-auth-warning", "PING"]
        ),
        "PONG"
    );
    assert!(redis_cli(&server.port(), &["PING"]).contains("NOAUTH"));
}

#[test]
fn redis_cli_receives_a_po() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let port = server.port();
    assert_eq!(redis_cli(&port, &["PING"]), "PONG");
    assert!(redis_cli(&port, &["ACCOUNT.CREATE", "acme", "USN", "2"]).contains("created"));
    assert_eq!(
        redis_cli(&port, &["SKU.SET", "acme", "SERIALIZED", "SODA01"]),
        "1"
    );
    assert_eq!(
        redis_cli(&port, &["SKU.SET", "acme", "PLAIN", "PLAIN1"]),
        "1"
    );
    assert!(redis_cli(&port, &["PO.CREATE", "acme", PO]).contains("created"));
    let grn = r#"{"grnId":"GRN-1","referenceCode":"TestPo22232","items":[{"sku":"SODA01","serials":["UK07812","UK08912","UK09012"]},{"sku":"PLAIN1","quantity":5}]}"#;
    assert!(redis_cli(&port, &["GRN.COMMIT", "acme", grn]).contains(r#""status":"committed""#));
    assert!(redis_cli(&port, &["SERIAL.GET", "acme", "UK08912"]).contains(r#""state":"inwarded""#));
    assert!(redis_cli(&port, &["INFO"]).contains("grns_committed:1"));
}

#[test]
fn the_redis_crate_is_a_second_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = redis::Client::open(format!("redis://{}/", server.addr)).unwrap();
    let mut con = client.get_connection().unwrap();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    let created: String = redis::cmd("ACCOUNT.CREATE")
        .arg("acme")
        .arg("USN")
        .arg(2)
        .query(&mut con)
        .unwrap();
    assert!(created.contains("created"));
    let n: i64 = redis::cmd("SKU.SET")
        .arg("acme")
        .arg("SERIALIZED")
        .arg("SODA01")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1);
    let _: i64 = redis::cmd("SKU.SET")
        .arg("acme")
        .arg("PLAIN")
        .arg("PLAIN1")
        .query(&mut con)
        .unwrap();
    let _: String = redis::cmd("PO.CREATE")
        .arg("acme")
        .arg(PO)
        .query(&mut con)
        .unwrap();
    let grn = r#"{"grnId":"G","referenceCode":"TestPo22232","items":[{"sku":"SODA01","serials":["S1","S2"]}]}"#;
    let reply: String = redis::cmd("GRN.COMMIT")
        .arg("acme")
        .arg(grn)
        .query(&mut con)
        .unwrap();
    assert!(reply.contains("committed"));
    let missing: Option<String> = redis::cmd("SERIAL.GET")
        .arg("acme")
        .arg("S9")
        .query(&mut con)
        .unwrap();
    assert_eq!(missing, None);
    let err = redis::cmd("GRN.COMMIT")
        .arg("acme")
        .arg("{oops")
        .query::<String>(&mut con)
        .unwrap_err();
    assert_eq!(err.code(), Some("BADJSON"));
}

#[test]
fn concurrent_clients_racing_on_the_same_serials() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut raw = Raw::connect(server.addr);
    assert!(raw
        .command(&[b"ACCOUNT.CREATE", b"acme", b"USN", b"2"])
        .contains("created"));
    raw.command(&[b"SKU.SET", b"acme", b"SERIALIZED", b"S"]);
    let po =
        r#"{"referenceCode":"P","items":[{"lineItemNumber":"1","sku":"S","quantity":100000}]}"#;
    raw.command(&[b"PO.CREATE", b"acme", po.as_bytes()]);
    let addr = server.addr;
    let winners: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                scope.spawn(move || {
                    let mut raw = Raw::connect(addr);
                    let mut won = Vec::new();
                    for round in 0..5 {
                        let serials: Vec<String> = (0..100).map(|i| format!("\"R{round}-{i}\"")).collect();
                        let body = format!(
                            r#"{{"grnId":"G-{round}-{t}","referenceCode":"P","items":[{{"sku":"S","serials":[{}]}}]}}"#,
                            serials.join(",")
                        );
                        let reply = raw.command(&[b"GRN.COMMIT", b"acme", body.as_bytes()]);
                        if reply.contains("\"committed\"") {
                            won.push(format!("G-{round}-{t}"));
                        } else {
                            assert!(reply.contains("ALREADY_INWARDED"), "{reply}");
                        }
                    }
                    won
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<String> = winners.into_iter().flatten().collect();
    assert_eq!(won.len(), 5, "exactly one GRN per round: {won:?}");
    let po: serde_json::Value =
        serde_json::from_str(&raw.command(&[b"PO.GET", b"acme", b"P"])).unwrap();
    assert_eq!(po["lines"][0]["received"], 500);
}

#[test]
fn kill_9_during_a_stream_of_grns_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let mut raw = Raw::connect(server.addr);
    assert!(raw
        .command(&[b"ACCOUNT.CREATE", b"acme", b"USN", b"2"])
        .contains("created"));
    raw.command(&[b"SKU.SET", b"acme", b"SERIALIZED", b"S"]);
    let po =
        r#"{"referenceCode":"P","items":[{"lineItemNumber":"1","sku":"S","quantity":10000000}]}"#;
    raw.command(&[b"PO.CREATE", b"acme", po.as_bytes()]);
    let body = |g: usize| {
        // Alternate small (WAL) and large (ingested) GRNs.
        let n = if g % 2 == 0 { 200 } else { 30_000 };
        let serials: Vec<String> = (0..n).map(|i| format!("\"K{g}-{i}\"")).collect();
        format!(
            r#"{{"grnId":"G{g}","referenceCode":"P","items":[{{"sku":"S","serials":[{}]}}]}}"#,
            serials.join(",")
        )
    };
    let addr = server.addr;
    let streamer = std::thread::spawn(move || {
        let mut raw = Raw::connect(addr);
        let mut acked = Vec::new();
        for g in 0..10_000 {
            let reply = raw.command(&[b"GRN.COMMIT", b"acme", body(g).as_bytes()]);
            if reply.contains("\"committed\"") {
                acked.push(g);
            } else {
                break; // the server died mid-request
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(1500));
    server.kill9();
    let acked = streamer.join().unwrap();
    assert!(
        acked.len() > 2,
        "too few GRNs before the kill: {}",
        acked.len()
    );

    let server = Server::start(dir.path(), &[]);
    let mut raw = Raw::connect(server.addr);
    let count_present = |raw: &mut Raw, g: usize| -> (usize, usize) {
        let n = if g % 2 == 0 { 200 } else { 30_000 };
        let mut present = 0;
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            let names: Vec<String> = chunk.iter().map(|i| format!("K{g}-{i}")).collect();
            let mut args: Vec<&[u8]> = vec![b"SERIAL.MGET", b"acme"];
            args.extend(names.iter().map(|s| s.as_bytes()));
            let reply = raw.command(&args);
            present += reply.matches("\"state\":\"inwarded\"").count();
        }
        (present, n)
    };
    for &g in &acked {
        let (present, n) = count_present(&mut raw, g);
        assert_eq!(present, n, "acknowledged GRN G{g} lost serials");
    }
    // The GRN in flight at the kill is either all there or not at all.
    let next = acked.last().map_or(0, |g| g + 1);
    let (present, n) = count_present(&mut raw, next);
    assert!(
        present == 0 || present == n,
        "GRN G{next} is partial: {present}/{n}"
    );
    let po: serde_json::Value =
        serde_json::from_str(&raw.command(&[b"PO.GET", b"acme", b"P"])).unwrap();
    let expected: usize = acked
        .iter()
        .map(|g| if g % 2 == 0 { 200 } else { 30_000 })
        .sum::<usize>()
        + if present == n { n } else { 0 };
    assert_eq!(po["lines"][0]["received"], expected as u64);
}

#[test]
fn sigterm_finishes_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let mut raw = Raw::connect(server.addr);
    assert_eq!(raw.command(&[b"PING"]), "+PONG");
    assert!(server.terminate(), "serve did not exit cleanly on SIGTERM");
}

#[test]
fn prometheus_metrics_on_a_second_listener() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--metrics-listen", "127.0.0.1:0"]);
    let mut raw = Raw::connect(server.addr);
    setup_type2(&mut raw);
    let grn = r#"{"grnId":"G","referenceCode":"TestPo22232","items":[{"sku":"SODA01","serials":["M1","M2"]}]}"#;
    assert!(raw
        .command(&[b"GRN.COMMIT", b"acme", grn.as_bytes()])
        .contains("committed"));
    let mut http = TcpStream::connect(server.metrics_addr.expect("metrics address")).unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    http.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("# TYPE serialgate_grns_committed_total counter"));
    assert!(response.contains("serialgate_grns_committed_total 1\n"));
    assert!(response.contains("serialgate_units_committed_total 2\n"));
    assert!(response.contains("serialgate_prefilter_fingerprints 2\n"));
    assert!(response.contains("serialgate_engine_writable 1\n"));
    assert!(response.contains("serialgate_engine_reopens_total 0\n"));
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _server = Server::start(dir.path(), &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_serialgate"))
        .args(["serve", "--data"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another serialgate process is using it"),
        "{stderr}"
    );
}
