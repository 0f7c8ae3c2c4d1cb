//! The head's string table: every label name and value is stored once and referred to by a
//! `u32` id, so a series costs a few bytes per label pair however long its strings are.
//!
//! The lookup table holds only ids (5 bytes a slot with its control byte, instead of 25 for a
//! map from `Arc<str>` to id); a string's hash is recomputed from `strs` when the table grows.

use std::sync::Arc;

use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64;

/// Interned strings. Ids are dense and never reused while the head lives.
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    ids: HashTable<u32>,
    strs: Vec<Arc<str>>,
}

fn str_of(strs: &[Arc<str>], id: u32) -> &str {
    strs.get(id as usize).map_or("", |s| s.as_ref())
}

impl Symbols {
    /// The id of `s`, adding it if new. `None` when 2^32 strings exist.
    pub(crate) fn intern(&mut self, s: &str) -> Option<u32> {
        let hash = xxh3_64(s.as_bytes());
        if let Some(&id) = self.ids.find(hash, |&id| str_of(&self.strs, id) == s) {
            return Some(id);
        }
        let id = u32::try_from(self.strs.len()).ok()?;
        self.strs.push(Arc::from(s));
        let strs = &self.strs;
        self.ids.insert_unique(hash, id, |&id| xxh3_64(str_of(strs, id).as_bytes()));
        Some(id)
    }

    /// The id of `s`, if interned.
    pub(crate) fn lookup(&self, s: &str) -> Option<u32> {
        self.ids.find(xxh3_64(s.as_bytes()), |&id| str_of(&self.strs, id) == s).copied()
    }

    /// The string with id `id` (the empty string for an unknown id, which the head never makes).
    #[inline]
    pub(crate) fn get(&self, id: u32) -> &Arc<str> {
        static EMPTY: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
        self.strs.get(id as usize).unwrap_or_else(|| EMPTY.get_or_init(|| Arc::from("")))
    }

    /// Number of strings.
    pub(crate) fn len(&self) -> usize {
        self.strs.len()
    }

    /// Approximate heap bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        // An `Arc<str>` is its bytes after two counters; a table slot is an id and a control
        // byte, with about 8 slots for every 7 ids at most.
        self.strs.iter().map(|s| s.len() + 16).sum::<usize>()
            + self.strs.capacity() * 16
            + self.ids.capacity() * 5 * 8 / 7
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_gives_one_id_per_string() {
        let mut s = Symbols::default();
        let words: Vec<String> = (0..5000).map(|i| format!("w{}", i % 1700)).collect();
        let ids: Vec<u32> = words.iter().map(|w| s.intern(w).unwrap()).collect();
        assert_eq!(s.len(), 1700);
        for (w, id) in words.iter().zip(&ids) {
            assert_eq!(s.get(*id).as_ref(), w.as_str());
            assert_eq!(s.lookup(w), Some(*id));
        }
        assert_eq!(s.lookup("absent"), None);
        assert_eq!(s.get(99_999).as_ref(), "");
    }
}
