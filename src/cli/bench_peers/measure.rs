//! What a system costs while it works: CPU seconds and peak memory of its processes, read
//! from `/proc`, and the bytes its data takes on disk.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Linux reports CPU times in clock ticks of `USER_HZ`, which is 100 on every architecture
/// the kernel supports for user space ABI purposes.
const TICKS_PER_SECOND: f64 = 100.0;
/// Often enough to catch a peak, rarely enough that reading /proc costs the systems
/// under measurement next to nothing.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// The processes that make up a system under measurement.
#[derive(Clone, Copy, Debug)]
pub enum Processes {
    /// This benchmark's own process (an engine embedded in it).
    Me,
    /// A server and every process below it (PostgreSQL's backends, Redis's rewrite forks).
    Tree(u32),
}

impl Processes {
    fn pids(self) -> Vec<u32> {
        match self {
            Processes::Me => vec![std::process::id()],
            Processes::Tree(root) => {
                // One pass over /proc for the parent of every process, then the tree.
                let parents: Vec<(u32, u32)> = all_pids()
                    .into_iter()
                    .filter_map(|pid| Some((pid, parent_of(pid)?)))
                    .collect();
                let mut pids = vec![root];
                let mut next = 0;
                while next < pids.len() {
                    let parent = pids[next];
                    pids.extend(parents.iter().filter(|p| p.1 == parent).map(|p| p.0));
                    next += 1;
                }
                pids
            }
        }
    }

    /// CPU seconds used so far by the live processes, plus what their exited children used.
    pub fn cpu_seconds(self) -> f64 {
        let ticks: u64 = self.pids().into_iter().filter_map(cpu_ticks).sum();
        ticks as f64 / TICKS_PER_SECOND
    }

    /// Proportional set size of all the processes, in bytes: shared pages (PostgreSQL's
    /// shared buffers) are split between the processes mapping them, so they count once.
    pub fn pss_bytes(self) -> u64 {
        self.pids().into_iter().filter_map(pss_bytes).sum()
    }
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `/proc/PID/stat` fields after the command name (which may hold spaces and parentheses).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    // Field 3 (state) is a letter; it parses as 0 and is never used.
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1).map(|&p| p as u32)
}

/// utime + stime + cutime + cstime (fields 14–17 of `stat`, 1-based).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    Some(fields.get(11..15)?.iter().sum())
}

fn pss_bytes(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = rollup.lines().find(|l| l.starts_with("Pss:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Samples the memory of some processes in the background and keeps the peak.
pub struct PeakMemory {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    sampler: Option<JoinHandle<()>>,
}

impl PeakMemory {
    pub fn start(processes: Processes) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(processes.pss_bytes()));
        let sampler = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(processes.pss_bytes(), Ordering::Relaxed);
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })
        };
        Self {
            stop,
            peak,
            sampler: Some(sampler),
        }
    }

    /// Stops sampling; the highest proportional set size seen, in bytes.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// Bytes of all files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_cpu_and_memory() {
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(Processes::Me.cpu_seconds() > 0.0);
        assert!(Processes::Me.pss_bytes() > 1 << 20);
        let peak = PeakMemory::start(Processes::Me).finish();
        assert!(peak > 1 << 20);
    }

    #[test]
    fn a_tree_holds_its_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let tree = Processes::Tree(std::process::id()).pids();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(tree.contains(&child.id()), "{tree:?}");
    }
}
