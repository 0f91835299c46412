//! A fast hasher for the parser's tables of short strings (section slugs, cell ids,
//! annotations), keyed at random per table like std's `RandomState`, so a notebook cannot be
//! written to make its lookups collide. std's SipHash was a tenth of the parse time.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hasher, RandomState};

/// Multiplies and folds the 128-bit product: every input bit reaches every output bit.
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

const ODD: u64 = 0x9e37_79b9_7f4a_7c15;

/// Builds `FastHasher`s with a random key.
#[derive(Debug, Clone, Copy)]
pub struct FastState {
    key: u64,
}

impl Default for FastState {
    fn default() -> Self {
        FastState {
            key: RandomState::new().hash_one(ODD),
        }
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher {
            state: self.key,
            key: self.key | 1,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct FastHasher {
    state: u64,
    key: u64,
}

impl FastHasher {
    fn mix(&mut self, word: u64) {
        self.state = fold(self.state ^ word, self.key ^ ODD);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        // The length first, so "a" and "a\0" (padded alike below) differ.
        self.mix(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n) | 0x100);
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        fold(self.state, self.key.rotate_left(32) | 1)
    }
}

/// For keys that are already hashes: passes a `u64` through.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prehashed;

impl BuildHasher for Prehashed {
    type Hasher = PassThrough;

    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed with this; anything else still gets a usable hash.
        for &b in bytes {
            self.0 = fold(self.0 ^ u64::from(b), ODD);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A set of strings with a value each, the strings kept end to end in one buffer.
///
/// Growing a `HashMap<String, _>` rehashes every key, reading each from its own allocation;
/// here the table holds only hashes, so growing it reads nothing else, and a key costs no
/// allocation of its own.
#[derive(Debug)]
pub struct StrMap<V, S = FastState> {
    state: S,
    /// Hash of a key to its entry (the first, when keys share a hash).
    slots: HashMap<u64, usize, Prehashed>,
    entries: Vec<StrEntry<V>>,
    keys: String,
}

impl<V, S: Default> Default for StrMap<V, S> {
    fn default() -> Self {
        StrMap {
            state: S::default(),
            slots: HashMap::default(),
            entries: Vec::new(),
            keys: String::new(),
        }
    }
}

#[derive(Debug)]
struct StrEntry<V> {
    key: std::ops::Range<usize>,
    value: V,
    /// The next entry with the same hash.
    next: Option<usize>,
}

impl<V, S: BuildHasher> StrMap<V, S> {
    pub fn get(&self, key: &str) -> Option<&V> {
        if self.entries.is_empty() {
            return None;
        }
        let mut at = self.slots.get(&self.state.hash_one(key)).copied();
        while let Some(i) = at {
            let entry = &self.entries[i];
            if &self.keys[entry.key.clone()] == key {
                return Some(&entry.value);
            }
            at = entry.next;
        }
        None
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds `key` with `value`; when `key` is already there, leaves it and returns its value.
    pub fn insert_new(&mut self, key: &str, value: V) -> Result<(), &V> {
        let index = self.entries.len();
        match self.slots.entry(self.state.hash_one(key)) {
            Entry::Vacant(slot) => {
                slot.insert(index);
            }
            Entry::Occupied(slot) => {
                // Keys that share a hash are chained: walk to the chain's end.
                let mut i = *slot.get();
                loop {
                    let entry = &self.entries[i];
                    if &self.keys[entry.key.clone()] == key {
                        return Err(&self.entries[i].value);
                    }
                    match entry.next {
                        Some(next) => i = next,
                        None => break,
                    }
                }
                self.entries[i].next = Some(index);
            }
        }
        let start = self.keys.len();
        self.keys.push_str(key);
        self.entries.push(StrEntry {
            key: start..self.keys.len(),
            value,
            next: None,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn distinct_strings_hash_apart() {
        let state = FastState::default();
        let words = [
            "",
            "a",
            "a\0",
            "\0a",
            "ab",
            "ba",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefghi",
        ];
        let hashes: HashSet<u64> = words.iter().map(|w| state.hash_one(w)).collect();
        assert_eq!(hashes.len(), words.len());
        let many: HashSet<u64> = (0..100_000)
            .map(|n| state.hash_one(format!("step-{n}")))
            .collect();
        assert_eq!(many.len(), 100_000);
        assert_eq!(state.hash_one("x"), state.hash_one("x"));
    }

    #[test]
    fn str_map_keeps_the_first_value() {
        let mut map: StrMap<i32> = StrMap::default();
        assert_eq!(map.insert_new("a", 1), Ok(()));
        assert_eq!(map.insert_new("b", 2), Ok(()));
        assert_eq!(map.insert_new("a", 3), Err(&1));
        assert!(map.get("b") == Some(&2) && map.get("c").is_none() && map.get("").is_none());
        for n in 0..10_000 {
            assert_eq!(map.insert_new(&format!("k{n}"), n), Ok(()));
        }
        assert_eq!(map.insert_new("k9999", 0), Err(&9999));
    }

    /// Hashes everything alike.
    #[derive(Default)]
    struct Same;

    impl BuildHasher for Same {
        type Hasher = Same;

        fn build_hasher(&self) -> Same {
            Same
        }
    }

    impl Hasher for Same {
        fn write(&mut self, _: &[u8]) {}

        fn finish(&self) -> u64 {
            7
        }
    }

    #[test]
    fn str_map_chains_keys_that_share_a_hash() {
        let mut map: StrMap<usize, Same> = StrMap::default();
        let keys = ["x", "y", "", "xy", "yx", "z"];
        for (n, key) in keys.iter().enumerate() {
            assert_eq!(map.insert_new(key, n), Ok(()));
        }
        assert_eq!(map.slots.len(), 1);
        for (n, key) in keys.iter().enumerate() {
            assert_eq!(map.insert_new(key, 99), Err(&n));
        }
        assert!(map.get("w").is_none());
        assert_eq!(map.get("yx"), Some(&4));
        assert_eq!(map.len(), keys.len());
    }
}
