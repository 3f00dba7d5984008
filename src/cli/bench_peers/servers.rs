//! Starting and stopping the servers under measurement: each a child process on loopback,
//! stopped (and waited for) when its handle drops.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A port nothing listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts connections on `port`, or `child` exits.
pub fn wait_for_port(port: u16, child: &mut Child, what: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited while starting: {status}");
        }
        if started.elapsed() > START_TIMEOUT {
            bail!("{what} did not listen on port {port} within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (a name such as `INT` or `TERM`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Stops a child with `signal_name` and waits for it; kills it if it takes over a minute.
pub fn stop(child: &mut Child, signal_name: &str) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    signal(child.id(), signal_name);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `serialgate serve` on a data directory.
pub struct ServeProcess {
    pub addr: String,
    child: Child,
}

impl ServeProcess {
    pub fn start(data: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .env_remove("SERIALGATE_PASSWORD")
            .stdout(Stdio::piped())
            .spawn()
            .context("starting serialgate serve")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("serialgate listening on ") else {
            let _ = child.kill();
            bail!("serialgate serve did not start: {line:?}");
        };
        Ok(Self {
            addr: addr.to_string(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGKILL: no clean shutdown.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        stop(&mut self.child, "TERM");
    }
}
