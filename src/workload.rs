//! Deterministic, realistic serial workloads for benchmarks, demos and tests.
//!
//! Serials look like what warehouses scan: a short vendor prefix and a random upper-case
//! alphanumeric body, 16–24 bytes in all. The same `(seed, batch)` always gives the same
//! serials, and batches are generated in parallel.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::serial::SerialList;

const PREFIXES: [&str; 6] = ["UK", "SN", "IMEI", "BX", "LT", "PRD"];
const BODY: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Serials per independently seeded piece, so generation parallelises.
const PIECE: usize = 65_536;

/// `count` serials of batch `batch` under `seed`.
pub fn serials(seed: u64, batch: u64, count: usize) -> SerialList {
    let pieces: Vec<SerialList> = (0..count.div_ceil(PIECE))
        .into_par_iter()
        .map(|piece| {
            let n = PIECE.min(count - piece * PIECE);
            let mut rng = ChaCha8Rng::seed_from_u64(
                seed ^ batch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((piece as u64) << 40),
            );
            let mut list = SerialList::with_capacity(n, n * 20);
            let mut buf = Vec::with_capacity(24);
            for _ in 0..n {
                buf.clear();
                let prefix = PREFIXES[rng.random_range(0..PREFIXES.len())];
                buf.extend_from_slice(prefix.as_bytes());
                let len = rng.random_range(16..=24);
                while buf.len() < len {
                    buf.push(BODY[rng.random_range(0..BODY.len())]);
                }
                list.push(&buf);
            }
            list
        })
        .collect();
    let mut all = SerialList::with_capacity(count, count * 20);
    for piece in &pieces {
        for serial in piece.iter() {
            all.push(serial);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serial::check_syntax;

    #[test]
    fn deterministic_valid_and_distinct() {
        let a = serials(42, 0, 100_000);
        assert_eq!(a, serials(42, 0, 100_000));
        assert_ne!(a.get(0), serials(42, 1, 1).get(0));
        assert!(a
            .iter()
            .all(|s| check_syntax(s).is_ok() && (16..=24).contains(&s.len())));
        let distinct: std::collections::HashSet<&[u8]> = a.iter().collect();
        assert_eq!(distinct.len(), a.len());
    }
}
