//! Which message ids were seen recently: an in-memory index with bounded memory.
//!
//! A message id is keyed by a 128-bit hash of `(workspace, messageId)` — 16 bytes however
//! long the id, and collisions are out of reach (about 2^-64 for billions of ids). Time is cut
//! into generations one dedup window long. Keys go into the current generation's set; lookups
//! check the current and the previous set. When a generation ends, the previous set is dropped
//! and the current one becomes previous. So a message id is remembered for at least one
//! window and at most two.
//!
//! Memory is bounded: both sets are allocated once for `capacity` keys and never grow (a set
//! has a power of two of 17-byte slots, at least `capacity × 8/7`: 18 MB for both at
//! 400,000). A set that reaches `capacity` keys is rotated early, as if its generation had
//! ended. Under a flood the window therefore shrinks to the last
//! `capacity`..`2 × capacity` messages instead of memory growing without limit.
//!
//! The index is rebuilt at startup from the append-only `dedup_keys` table, which records
//! `(row, key, received_at)` for every stored event; rows older than the previous set's first
//! row are no longer needed and can be deleted.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use sha2::{Digest, Sha256};

/// The dedup key of a message id in a workspace.
pub fn key(workspace_id: &str, message_id: &str) -> u128 {
    let mut hasher = Sha256::new();
    hasher.update(workspace_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(message_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

/// Keys are already uniformly random: hash them by taking their low bits.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

type KeySet = HashSet<u128, BuildHasherDefault<KeyHasher>>;

/// One generation of keys and the `dedup_keys` row of its first key.
struct Generation {
    keys: KeySet,
    first_row: Option<i64>,
}

impl Generation {
    /// Allocated once at full size: a set that grows rehashes everything it holds, which at a
    /// million keys stalled the writer (and every request waiting on it) for tens of ms.
    fn with_capacity(capacity: usize) -> Generation {
        Generation {
            keys: KeySet::with_capacity_and_hasher(capacity, BuildHasherDefault::default()),
            first_row: None,
        }
    }

    /// Empties the generation, keeping its allocation.
    fn clear(&mut self) {
        self.keys.clear();
        self.first_row = None;
    }
}

pub struct DedupIndex {
    window_ms: i64,
    capacity: usize,
    /// `received_at / window` of the current set; `i64::MIN` before the first key.
    generation: i64,
    current: Generation,
    previous: Generation,
}

impl DedupIndex {
    /// `capacity` is the most keys one generation holds (allocated now; see the module doc for its size).
    pub fn new(window_ms: i64, capacity: usize) -> DedupIndex {
        DedupIndex {
            window_ms: window_ms.max(1),
            capacity: capacity.max(1),
            generation: i64::MIN,
            current: Generation::with_capacity(capacity.max(1)),
            previous: Generation::with_capacity(capacity.max(1)),
        }
    }

    /// Whether the key was seen within the window, as of `now_ms` (which may end a
    /// generation).
    pub fn contains(&mut self, key: u128, now_ms: i64) -> bool {
        self.advance(now_ms);
        self.current.keys.contains(&key) || self.previous.keys.contains(&key)
    }

    /// Records a key stored at `row` of `dedup_keys`.
    pub fn record(&mut self, key: u128, now_ms: i64, row: i64) {
        self.advance(now_ms);
        if self.current.keys.len() >= self.capacity {
            self.rotate();
        }
        self.current.keys.insert(key);
        self.current.first_row.get_or_insert(row);
    }

    /// `dedup_keys` rows below this one are no longer needed (`None`: no row is).
    pub fn keep_from_row(&self) -> Option<i64> {
        self.previous.first_row.or(self.current.first_row)
    }

    /// Keys held, both generations.
    pub fn len(&self) -> usize {
        self.current.keys.len() + self.previous.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn advance(&mut self, now_ms: i64) {
        let generation = now_ms.div_euclid(self.window_ms);
        if generation <= self.generation {
            return;
        }
        if self.generation != i64::MIN && generation == self.generation + 1 {
            self.rotate();
        } else {
            self.current.clear();
            self.previous.clear();
        }
        self.generation = generation;
    }

    /// The current generation becomes the previous one; the old previous one, emptied, is
    /// reused as the new current one.
    fn rotate(&mut self) {
        std::mem::swap(&mut self.current, &mut self.previous);
        self.current.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 1_000;

    #[test]
    fn keys_differ_by_workspace_and_id() {
        assert_ne!(key("w1", "m"), key("w2", "m"));
        assert_ne!(key("w", "m1"), key("w", "m2"));
        assert_ne!(
            key("ab", "c"),
            key("a", "bc"),
            "the separator keeps fields apart"
        );
        assert_eq!(key("w", "m"), key("w", "m"));
    }

    #[test]
    fn remembered_for_one_window_at_least_and_two_at_most() {
        let mut index = DedupIndex::new(W, 100);
        let k = key("w", "m");
        assert!(!index.contains(k, 999));
        index.record(k, 999, 1);
        assert!(
            index.contains(k, 1_998),
            "one window later (next generation)"
        );
        assert!(
            !index.contains(k, 2_000),
            "two generations later it is forgotten"
        );
    }

    #[test]
    fn a_jump_of_several_windows_forgets_everything() {
        let mut index = DedupIndex::new(W, 100);
        index.record(key("w", "a"), 0, 1);
        assert!(!index.contains(key("w", "a"), 10 * W));
        assert!(index.is_empty());
        assert_eq!(index.keep_from_row(), None);
    }

    #[test]
    fn memory_is_bounded_by_capacity() {
        let mut index = DedupIndex::new(W, 3);
        for row in 0..10 {
            index.record(key("w", &row.to_string()), 0, row);
            assert!(index.len() <= 6);
        }
        // The newest keys are remembered, the oldest forgotten.
        assert!(index.contains(key("w", "9"), 0));
        assert!(index.contains(key("w", "6"), 0));
        assert!(!index.contains(key("w", "0"), 0));
        assert_eq!(index.keep_from_row(), Some(6));
    }

    #[test]
    fn keep_from_row_follows_the_previous_generation() {
        let mut index = DedupIndex::new(W, 100);
        index.record(key("w", "a"), 0, 10);
        index.record(key("w", "b"), 0, 11);
        assert_eq!(index.keep_from_row(), Some(10));
        index.record(key("w", "c"), W, 12);
        assert_eq!(
            index.keep_from_row(),
            Some(10),
            "the previous generation still counts"
        );
        index.record(key("w", "d"), 2 * W, 13);
        assert_eq!(index.keep_from_row(), Some(12));
    }

    #[test]
    fn time_going_backwards_does_not_forget() {
        let mut index = DedupIndex::new(W, 100);
        index.record(key("w", "a"), 5 * W, 1);
        assert!(index.contains(key("w", "a"), 3 * W));
    }
}
