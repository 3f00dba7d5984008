//! Simulated power loss, for the crash loop and the tests: after a `kill -9`, every file of
//! a store is cut back to the length its last fsync made durable, as a power failure would
//! leave it. The lengths come from the log that `tools/powerloss.c`, preloaded into the
//! server, keeps of every sync, rename and hard link.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What one simulated power loss dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub files_cut: u64,
    pub bytes_dropped: u64,
}

impl std::ops::AddAssign for Dropped {
    fn add_assign(&mut self, other: Self) {
        self.files_cut += other.files_cut;
        self.bytes_dropped += other.bytes_dropped;
    }
}

/// Cuts every file under `data` back to its last synced length according to `sync_log`
/// (a file never synced, to nothing). A missing log means nothing was ever synced.
pub fn cut_to_synced(data: &Path, sync_log: &Path) -> std::io::Result<Dropped> {
    let synced = synced_lengths(&std::fs::read_to_string(sync_log).unwrap_or_default());
    let mut dropped = Dropped::default();
    let mut dirs = vec![std::fs::canonicalize(data)?];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                dirs.push(path);
                continue;
            }
            let keep = synced.get(&path).copied().unwrap_or(0);
            if meta.is_file() && meta.len() > keep {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(keep)?;
                dropped.files_cut += 1;
                dropped.bytes_dropped += meta.len() - keep;
            }
        }
    }
    Ok(dropped)
}

/// Each file's last synced length, by absolute path, following renames and links:
/// `S <size> <path>`, `R <from>\t<to>`, `L <from>\t<to>` (see tools/powerloss.c).
fn synced_lengths(log: &str) -> HashMap<PathBuf, u64> {
    let mut synced: HashMap<PathBuf, u64> = HashMap::new();
    for line in log.lines() {
        let (kind, rest) = line.split_at(line.len().min(2));
        match kind.trim() {
            "S" => {
                if let Some((size, path)) = rest.split_once(' ') {
                    synced.insert(PathBuf::from(path), size.parse().unwrap_or(0));
                }
            }
            kind @ ("R" | "L") => {
                let Some((from, to)) = rest.split_once('\t') else {
                    continue;
                };
                let size = if kind == "R" {
                    synced.remove(Path::new(from))
                } else {
                    synced.get(Path::new(from)).copied()
                };
                match size {
                    Some(size) => synced.insert(PathBuf::from(to), size),
                    None => synced.remove(Path::new(to)),
                };
            }
            _ => {}
        }
    }
    synced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_follow_syncs_renames_and_links() {
        let log = "S 10 /d/a\nS 20 /d/a\nR /d/a\t/d/b\nL /d/b\t/d/c\nS 5 /d/x\nR /d/never\t/d/x\n";
        let synced = synced_lengths(log);
        assert_eq!(synced.get(Path::new("/d/a")), None);
        assert_eq!(synced.get(Path::new("/d/b")), Some(&20));
        assert_eq!(synced.get(Path::new("/d/c")), Some(&20));
        // Renamed over by a file never synced: nothing of it is durable.
        assert_eq!(synced.get(Path::new("/d/x")), None);
    }

    #[test]
    fn files_are_cut_to_their_synced_length() {
        let dir = tempfile::tempdir().unwrap();
        let data = std::fs::canonicalize(dir.path()).unwrap().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("synced"), [1u8; 100]).unwrap();
        std::fs::write(data.join("sub/never"), [2u8; 30]).unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, format!("S 40 {}\n", data.join("synced").display())).unwrap();
        let dropped = cut_to_synced(&data, &log).unwrap();
        assert_eq!(
            dropped,
            Dropped {
                files_cut: 2,
                bytes_dropped: 60 + 30
            }
        );
        assert_eq!(std::fs::metadata(data.join("synced")).unwrap().len(), 40);
        assert_eq!(std::fs::metadata(data.join("sub/never")).unwrap().len(), 0);
    }
}
