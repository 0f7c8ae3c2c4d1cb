//! The head's string table: every label name and value is stored once and referred to by a
//! `u32` id, so a series costs a few bytes per label pair however long its strings are.
//!
//! The lookup table holds only ids (5 bytes a slot with its control byte, instead of 25 for a
//! map from `Arc<str>` to id); a string's hash is recomputed from `strs` when the table grows.
//!
//! Each id counts the label pairs of head series that use it ([`Symbols::intern`] adds one,
//! [`Symbols::release`] takes one away); a string whose count falls to zero is dropped and its
//! id reused, so that pod churn (series leaving the head at truncation, new ones with new pod
//! names and container ids arriving) does not grow the table forever.

use std::sync::Arc;

use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64;

/// Interned strings.
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    ids: HashTable<u32>,
    /// The string of each id; `None` for a free id.
    strs: Vec<Option<Arc<str>>>,
    /// Uses of each id.
    uses: Vec<u32>,
    /// Free ids, reused before new ones.
    free: Vec<u32>,
}

fn str_of(strs: &[Option<Arc<str>>], id: u32) -> &str {
    strs.get(id as usize).and_then(Option::as_deref).unwrap_or("")
}

impl Symbols {
    /// The id of `s`, adding it if new, with one more use. `None` when 2^32 strings exist.
    pub(crate) fn intern(&mut self, s: &str) -> Option<u32> {
        let hash = xxh3_64(s.as_bytes());
        if let Some(&id) = self.ids.find(hash, |&id| str_of(&self.strs, id) == s) {
            if let Some(n) = self.uses.get_mut(id as usize) {
                *n = n.saturating_add(1);
            }
            return Some(id);
        }
        let id = match self.free.pop() {
            Some(id) => {
                if let (Some(slot), Some(n)) =
                    (self.strs.get_mut(id as usize), self.uses.get_mut(id as usize))
                {
                    *slot = Some(Arc::from(s));
                    *n = 1;
                }
                id
            }
            None => {
                let id = u32::try_from(self.strs.len()).ok()?;
                self.strs.push(Some(Arc::from(s)));
                self.uses.push(1);
                id
            }
        };
        let strs = &self.strs;
        self.ids.insert_unique(hash, id, |&id| xxh3_64(str_of(strs, id).as_bytes()));
        Some(id)
    }

    /// Takes one use away from `id`; drops the string and frees the id when none is left. The
    /// caller guarantees that nothing reads `id` for that use any more.
    pub(crate) fn release(&mut self, id: u32) {
        let Some(n) = self.uses.get_mut(id as usize) else { return };
        if *n == 0 {
            return;
        }
        *n -= 1;
        if *n > 0 {
            return;
        }
        let hash = xxh3_64(str_of(&self.strs, id).as_bytes());
        if let Ok(e) = self.ids.find_entry(hash, |&x| x == id) {
            e.remove();
        }
        if let Some(slot) = self.strs.get_mut(id as usize) {
            *slot = None;
        }
        self.free.push(id);
    }

    /// The id of `s`, if interned.
    pub(crate) fn lookup(&self, s: &str) -> Option<u32> {
        self.ids.find(xxh3_64(s.as_bytes()), |&id| str_of(&self.strs, id) == s).copied()
    }

    /// The string with id `id` (the empty string for an unknown or free id, which no head
    /// series holds).
    #[inline]
    pub(crate) fn get(&self, id: u32) -> &Arc<str> {
        static EMPTY: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
        match self.strs.get(id as usize) {
            Some(Some(s)) => s,
            _ => EMPTY.get_or_init(|| Arc::from("")),
        }
    }

    /// Number of strings held.
    pub(crate) fn len(&self) -> usize {
        self.strs.len() - self.free.len()
    }

    /// Approximate heap bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        // An `Arc<str>` is its bytes after two counters; a table slot is an id and a control
        // byte, with about 8 slots for every 7 ids at most.
        self.strs.iter().flatten().map(|s| s.len() + 16).sum::<usize>()
            + self.strs.capacity() * 16
            + self.uses.capacity() * 4
            + self.free.capacity() * 4
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

    /// A string goes when its last use does, and its id is reused for the next new string;
    /// the other strings keep their ids.
    #[test]
    fn released_strings_are_dropped_and_their_ids_reused() {
        let mut s = Symbols::default();
        let a = s.intern("a").unwrap();
        let b = s.intern("b").unwrap();
        assert_eq!(s.intern("a"), Some(a));
        s.release(a);
        assert_eq!(s.lookup("a"), Some(a), "one use of a is left");
        s.release(a);
        assert_eq!((s.lookup("a"), s.len(), s.get(a).as_ref()), (None, 1, ""));
        s.release(a);
        let c = s.intern("c").unwrap();
        assert_eq!(c, a, "the free id is reused");
        assert_eq!((s.get(c).as_ref(), s.get(b).as_ref(), s.lookup("b"), s.len()), ("c", "b", Some(b), 2));
        for i in 0..1000 {
            let id = s.intern(&format!("x{i}")).unwrap();
            s.release(id);
        }
        assert_eq!((s.len(), s.strs.len()), (2, 3), "churn reuses one id");
    }
}
