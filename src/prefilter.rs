//! The in-memory prefilter: a set of serial fingerprints answering "certainly new" or
//! "maybe known" without touching disk.
//!
//! It is exact over 40 bits of the serial hash: 256 segments chosen by the top 8 bits, each an
//! open-addressing table of the low 32 bits. A fresh serial collides with a stored one with
//! probability ~ n / 2^40 (about 1 in 55,000 at 20 million serials); a "maybe" is confirmed
//! against storage. Entries are never removed: a cancelled serial keeps its fingerprint and
//! the confirming read sees it is free again. So the prefilter is a superset of the stored
//! serials, the one invariant the pipeline relies on.
//!
//! Why not `HashSet<u64>`: 8-byte slots at hashbrown's load factors cost 9–18 bytes per
//! serial; 4-byte slots with the segment bits implied cost 4.6–9.2 bytes (measured in
//! docs/BENCHMARKS.md), well inside the 16-byte budget at 100 million serials.

use std::io::{self, Write};

use parking_lot::RwLock;
use rayon::prelude::*;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

const SEGMENT_BITS: u32 = 8;
pub const SEGMENTS: usize = 1 << SEGMENT_BITS;
const EMPTY: u32 = 0;
const INITIAL_SLOTS: usize = 1024;
/// Below this many entries a batch is processed on the calling thread: handing a few
/// hundred probes to the pool costs more than it saves.
const PARALLEL_ENTRIES_MIN: usize = 4096;

/// Which segment a hash belongs to: its top bits, so hashes sorted ascending arrive
/// segment by segment.
#[inline]
pub fn segment_of(hash: u64) -> usize {
    (hash >> (64 - SEGMENT_BITS)) as usize
}

#[inline]
fn fingerprint(hash: u64) -> u32 {
    // 0 marks an empty slot; folding it onto 1 merges two fingerprints out of 2^32.
    (hash as u32).max(1)
}

/// Home slot, derived from the fingerprint alone so a table can grow without the hash.
#[inline]
fn home(fp: u32, mask: usize) -> usize {
    ((u64::from(fp).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize) & mask
}

struct Table {
    slots: Vec<u32>,
    len: usize,
}

impl Table {
    fn with_capacity(entries: usize) -> Self {
        let slots = (entries * 8 / 7 + 1).next_power_of_two().max(INITIAL_SLOTS);
        Table {
            slots: vec![EMPTY; slots],
            len: 0,
        }
    }

    #[inline]
    fn contains(&self, hash: u64) -> bool {
        let fp = fingerprint(hash);
        let mask = self.slots.len() - 1;
        let mut i = home(fp, mask);
        loop {
            match self.slots[i] {
                EMPTY => return false,
                slot if slot == fp => return true,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Returns false if the fingerprint was already present.
    #[inline]
    fn insert(&mut self, hash: u64) -> bool {
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            self.grow();
        }
        self.insert_fingerprint(fingerprint(hash))
    }

    #[inline]
    fn insert_fingerprint(&mut self, fp: u32) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = home(fp, mask);
        loop {
            match self.slots[i] {
                EMPTY => {
                    self.slots[i] = fp;
                    self.len += 1;
                    return true;
                }
                slot if slot == fp => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn grow(&mut self) {
        let doubled = vec![EMPTY; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        self.len = 0;
        for fp in old.into_iter().filter(|&fp| fp != EMPTY) {
            self.insert_fingerprint(fp);
        }
    }

    fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u32>()
    }
}

pub struct Prefilter {
    segments: Vec<RwLock<Table>>,
}

impl Default for Prefilter {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl Prefilter {
    /// A prefilter sized for about `entries` serials.
    pub fn with_capacity(entries: usize) -> Self {
        let per_segment = entries / SEGMENTS;
        Self {
            segments: (0..SEGMENTS)
                .map(|_| RwLock::new(Table::with_capacity(per_segment)))
                .collect(),
        }
    }

    pub fn contains(&self, hash: u64) -> bool {
        self.segments[segment_of(hash)].read().contains(hash)
    }

    pub fn insert(&self, hash: u64) -> bool {
        self.segments[segment_of(hash)].write().insert(hash)
    }

    /// Probes hashes given in ascending order; `maybe[i]` is set where `hashes[i]` may be
    /// stored. Segments are probed in parallel, each under one read lock.
    pub fn probe_sorted<T: Sync>(
        &self,
        entries: &[T],
        hash_of: impl Fn(&T) -> u64 + Sync,
        maybe: &mut [bool],
    ) {
        debug_assert!(entries.windows(2).all(|w| hash_of(&w[0]) <= hash_of(&w[1])));
        let groups = split_by_segment(entries, &hash_of);
        let mut maybe_groups = Vec::with_capacity(groups.len());
        let mut rest = maybe;
        for (_, group) in &groups {
            let (head, tail) = rest.split_at_mut(group.len());
            maybe_groups.push(head);
            rest = tail;
        }
        let probe = |((segment, group), out): ((usize, &[T]), &mut [bool])| {
            let table = self.segments[segment].read();
            for (entry, flag) in group.iter().zip(out.iter_mut()) {
                *flag = table.contains(hash_of(entry));
            }
        };
        if entries.len() < PARALLEL_ENTRIES_MIN {
            groups.into_iter().zip(maybe_groups).for_each(probe);
        } else {
            groups.into_par_iter().zip(maybe_groups).for_each(probe);
        }
    }

    /// Inserts hashes given in ascending order, each segment under one write lock.
    pub fn insert_sorted<T: Sync>(&self, entries: &[T], hash_of: impl Fn(&T) -> u64 + Sync) {
        let fill = |(segment, group): (usize, &[T])| {
            let mut table = self.segments[segment].write();
            for entry in group {
                table.insert(hash_of(entry));
            }
        };
        let groups = split_by_segment(entries, &hash_of);
        if entries.len() < PARALLEL_ENTRIES_MIN {
            groups.into_iter().for_each(fill);
        } else {
            groups.into_par_iter().for_each(fill);
        }
    }

    pub fn len(&self) -> usize {
        self.segments.iter().map(|s| s.read().len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by the fingerprint tables.
    pub fn bytes(&self) -> usize {
        self.segments.iter().map(|s| s.read().bytes()).sum()
    }
}

/// The snapshot format: this magic, `u64` tag (what the caller ties the snapshot to), then
/// per segment `u64` slot count, `u64` entry count and the slots as little-endian `u32`s,
/// then an xxh3-64 of everything before it.
const SNAPSHOT_MAGIC: &[u8; 8] = b"SGPFSNP1";

impl Prefilter {
    /// Writes the tables as they are, so [`Prefilter::from_snapshot`] restores them without
    /// rehashing a single entry. `tag` is given back on reading.
    pub fn write_snapshot(&self, out: &mut impl Write, tag: u64) -> io::Result<()> {
        let mut hasher = Xxh3::new();
        let mut put = |out: &mut dyn Write, bytes: &[u8]| -> io::Result<()> {
            hasher.update(bytes);
            out.write_all(bytes)
        };
        put(out, SNAPSHOT_MAGIC)?;
        put(out, &tag.to_le_bytes())?;
        let mut buf = Vec::new();
        for segment in &self.segments {
            let table = segment.read();
            put(out, &(table.slots.len() as u64).to_le_bytes())?;
            put(out, &(table.len as u64).to_le_bytes())?;
            buf.clear();
            buf.extend(table.slots.iter().flat_map(|s| s.to_le_bytes()));
            put(out, &buf)?;
        }
        let digest = hasher.digest();
        out.write_all(&digest.to_le_bytes())
    }

    /// Restores a prefilter from a snapshot and its tag; `None` if the bytes are not a
    /// whole, intact snapshot.
    pub fn from_snapshot(bytes: &[u8]) -> Option<(Prefilter, u64)> {
        let (body, digest) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
        if xxh3_64(body) != u64::from_le_bytes(digest.try_into().ok()?) {
            return None;
        }
        let rest = body.strip_prefix(SNAPSHOT_MAGIC)?;
        let word = |b: &[u8], at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        let tag = word(rest, 0)?;
        let mut at = 8;
        let mut parts = Vec::with_capacity(SEGMENTS);
        for _ in 0..SEGMENTS {
            let slots = usize::try_from(word(rest, at)?).ok()?;
            let len = usize::try_from(word(rest, at + 8)?).ok()?;
            let start = at + 16;
            let end = start.checked_add(slots.checked_mul(4)?)?;
            // A table must keep an empty slot (probes stop there) and hold `len` entries.
            if !slots.is_power_of_two() || len * 8 > slots * 7 {
                return None;
            }
            parts.push((rest.get(start..end)?, len));
            at = end;
        }
        if at != rest.len() {
            return None;
        }
        let segments: Vec<Option<RwLock<Table>>> = parts
            .into_par_iter()
            .map(|(raw, len)| {
                let slots: Vec<u32> = raw
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                let filled = slots.iter().filter(|&&s| s != EMPTY).count();
                (filled == len).then(|| RwLock::new(Table { slots, len }))
            })
            .collect();
        let segments = segments.into_iter().collect::<Option<Vec<_>>>()?;
        Some((Prefilter { segments }, tag))
    }
}

/// Splits entries in ascending hash order into (segment, slice) groups.
fn split_by_segment<'a, T>(
    entries: &'a [T],
    hash_of: &impl Fn(&T) -> u64,
) -> Vec<(usize, &'a [T])> {
    let mut groups = Vec::new();
    let mut rest = entries;
    while let Some(first) = rest.first() {
        let segment = segment_of(hash_of(first));
        let end = rest.partition_point(|e| segment_of(hash_of(e)) == segment);
        let (group, tail) = rest.split_at(end);
        groups.push((segment, group));
        rest = tail;
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(n: u64, seed: u64) -> Vec<u64> {
        (0..n)
            .map(|i| crate::serial::serial_hash(seed as u32, &i.to_le_bytes()))
            .collect()
    }

    #[test]
    fn no_false_negatives_across_growth() {
        let filter = Prefilter::default();
        let stored = hashes(200_000, 1);
        for h in &stored {
            filter.insert(*h);
        }
        assert!(stored.iter().all(|h| filter.contains(*h)));
        assert_eq!(filter.len(), 200_000);
        // Fresh hashes are almost never reported: 40-bit fingerprints.
        let false_hits = hashes(200_000, 2)
            .iter()
            .filter(|h| filter.contains(**h))
            .count();
        assert!(false_hits < 5, "{false_hits} false hits");
    }

    #[test]
    fn sorted_batch_probe_matches_single_probes() {
        let filter = Prefilter::with_capacity(10_000);
        let mut stored = hashes(10_000, 3);
        stored.sort_unstable();
        filter.insert_sorted(&stored, |h| *h);
        let mut probe: Vec<u64> = stored
            .iter()
            .step_by(2)
            .copied()
            .chain(hashes(5_000, 4))
            .collect();
        probe.sort_unstable();
        let mut maybe = vec![false; probe.len()];
        filter.probe_sorted(&probe, |h| *h, &mut maybe);
        for (h, m) in probe.iter().zip(&maybe) {
            assert_eq!(*m, filter.contains(*h));
        }
        assert_eq!(maybe.iter().filter(|m| **m).count(), 5_000);
    }

    #[test]
    fn a_snapshot_restores_the_same_set_and_refuses_damage() {
        let filter = Prefilter::default();
        let stored = hashes(300_000, 6);
        for h in &stored {
            filter.insert(*h);
        }
        let mut bytes = Vec::new();
        filter.write_snapshot(&mut bytes, 42).unwrap();
        let (restored, tag) = Prefilter::from_snapshot(&bytes).unwrap();
        assert_eq!(tag, 42);
        assert_eq!(restored.len(), filter.len());
        assert_eq!(restored.bytes(), filter.bytes());
        assert!(stored.iter().all(|h| restored.contains(*h)));
        let fresh = hashes(10_000, 7);
        for h in &fresh {
            assert_eq!(restored.contains(*h), filter.contains(*h));
        }
        // It keeps working as a table: inserts after a restore are found.
        restored.insert(fresh[0]);
        assert!(restored.contains(fresh[0]));

        assert!(Prefilter::from_snapshot(&bytes[..bytes.len() - 1]).is_none());
        let mut flipped = bytes.clone();
        flipped[1000] ^= 1;
        assert!(Prefilter::from_snapshot(&flipped).is_none());
        assert!(Prefilter::from_snapshot(b"").is_none());
    }

    #[test]
    fn memory_stays_within_budget() {
        let filter = Prefilter::default();
        for h in hashes(1_000_000, 5) {
            filter.insert(h);
        }
        let per_serial = filter.bytes() as f64 / filter.len() as f64;
        assert!(per_serial <= 16.0, "{per_serial} bytes per serial");
    }
}
