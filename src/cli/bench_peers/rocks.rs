//! RocksDB alone: the same keys serialgate writes, put in one synced `WriteBatch` per GRN,
//! with no validation at all. The ceiling of the storage underneath, not a serial index: it
//! reports no duplicate, so W2's duplicates simply overwrite and W3/W5 do not apply.

use std::path::{Path, PathBuf};

use serialgate::serial::{serial_hash, SerialList};
use serialgate::store::keys;
use serialgate::store::rocks::PlainRocks;
use serialgate::store::Op;

use super::measure::{dir_bytes, Processes};
use super::{Client, GrnOutcome, System};

/// The account id the keys are written under.
const ACCOUNT: u32 = 1;

pub struct Rocks {
    db: PlainRocks,
    dir: PathBuf,
    value: Vec<u8>,
}

impl Rocks {
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            db: PlainRocks::open(dir)?,
            dir: dir.to_path_buf(),
            value: crate::cli::bench::inwarded_record(),
        })
    }

    fn put(&self, serials: &SerialList) -> anyhow::Result<()> {
        let mut key = Vec::with_capacity(80);
        self.db.write_synced(&mut |sink| {
            for serial in serials.iter() {
                keys::serial_into(&mut key, ACCOUNT, serial_hash(ACCOUNT, serial), serial);
                sink(Op::Put, &key, &self.value)?;
            }
            Ok(())
        })?;
        Ok(())
    }
}

impl System for Rocks {
    fn name(&self) -> &'static str {
        "RocksDB alone (no checks)"
    }

    fn processes(&self) -> Processes {
        Processes::Me
    }

    fn preload(&mut self, serials: &SerialList) -> anyhow::Result<()> {
        self.put(serials)
    }

    fn grn(&mut self, _grn: &str, serials: &SerialList) -> anyhow::Result<GrnOutcome> {
        self.put(serials)?;
        Ok(GrnOutcome {
            committed: serials.len(),
            reported: 0,
        })
    }

    fn checks(&self) -> bool {
        false
    }

    fn expect(&mut self, _po: &str, _serials: &SerialList) -> anyhow::Result<bool> {
        Ok(false)
    }

    fn grn_expected(&mut self, _po: &str, _serials: &SerialList) -> anyhow::Result<GrnOutcome> {
        anyhow::bail!("RocksDB alone has no expected serials")
    }

    fn lookup(&mut self, serials: &[&[u8]]) -> anyhow::Result<usize> {
        let keys: Vec<Vec<u8>> = serials
            .iter()
            .map(|s| keys::serial(ACCOUNT, serial_hash(ACCOUNT, s), s))
            .collect();
        Ok(self.db.count_present(&keys)?)
    }

    fn prepare_clients(&mut self, _serials: usize) -> anyhow::Result<bool> {
        Ok(false)
    }

    fn client(&self) -> anyhow::Result<Box<dyn Client>> {
        anyhow::bail!("RocksDB alone takes no clients")
    }

    fn disk_bytes(&mut self) -> anyhow::Result<u64> {
        Ok(dir_bytes(&self.dir))
    }
}
