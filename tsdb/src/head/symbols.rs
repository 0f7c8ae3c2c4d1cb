//! The head's string table: every label name and value is stored once and referred to by a
//! `u32` id, so a series costs 8 bytes per label pair however long its strings are.

use std::collections::HashMap;
use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3Builder;

/// Interned strings. Ids are dense and never reused while the head lives.
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    ids: HashMap<Arc<str>, u32, Xxh3Builder>,
    strs: Vec<Arc<str>>,
}

impl Symbols {
    /// The id of `s`, adding it if new. `None` when 2^32 strings exist.
    pub(crate) fn intern(&mut self, s: &str) -> Option<u32> {
        if let Some(&id) = self.ids.get(s) {
            return Some(id);
        }
        let id = u32::try_from(self.strs.len()).ok()?;
        let a: Arc<str> = Arc::from(s);
        self.strs.push(Arc::clone(&a));
        self.ids.insert(a, id);
        Some(id)
    }

    /// The id of `s`, if interned.
    pub(crate) fn lookup(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
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
        self.strs.iter().map(|s| s.len() + 16).sum::<usize>()
            + self.strs.capacity() * 16
            + self.ids.capacity() * 25
    }
}
