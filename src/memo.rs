//! Byte strings an inspection found clean, so a repeat is not inspected
//! again.
//!
//! Clients send the same bytes over and over: a browser's `User-Agent`,
//! `Accept` and `sec-ch-ua` lines, `/favicon.ico`, `page=1`. On the HTTP
//! corpus 88 % of header lines, 69 % of header bytes, repeat an earlier
//! line. Three inspections are pure functions of the bytes they are given
//! (and of the rule set): the signature scan of a request target and of
//! one header line (`signature::Scanner`, which matches each line on its
//! own), and the structural SQL detector's judgement of one parameter
//! value (`engine`, keyed with how the value is decoded). For those, bytes
//! that were found clean once are clean again: skipping them changes no
//! verdict, whatever the memo holds. The key is the bytes themselves,
//! compared in full, not a hash of them: no collision can make unseen bytes
//! pass for clean ones. Bytes that matched anything are never put in. One
//! memo per inspection per shard. The signature memos live in the scanner,
//! which a rule reload replaces; the structural detector does not depend on
//! the rules, so its memo lives as long as the shard.
//!
//! Credentials are never put in (`Authorization`, `Proxy-Authorization`
//! and `Cookie` lines, cookie values): a memo would keep another client's
//! secret in memory for as long as it is reused, and how fast a request is
//! inspected would tell whether a guessed line was sent before.
//!
//! Bounds: at most [`ENTRIES`] keys of at most [`MAX_KEY`] bytes (longer
//! ones are always inspected), so at most 1 MiB of keys per memo. When it
//! is full, keys not found again since they went in are dropped and the
//! rest kept (their use counts restart); if that frees less than half,
//! everything goes. A flood of unique values (fresh cookies, tokens) so
//! costs the popular ones their place for at most one round, and never
//! costs more than inspecting everything, which is what happens without
//! the memo.

use std::collections::HashMap;

/// Keys kept at most.
pub const ENTRIES: usize = 4096;

/// Longest key kept, in bytes: a cookie or token that long is rarely sent
/// twice.
pub const MAX_KEY: usize = 256;

/// Clean byte strings with how often each was found again since the last
/// eviction.
#[derive(Default)]
pub struct Memo {
    keys: HashMap<Box<[u8]>, u32, ahash::RandomState>,
    /// Lookups that found the key, and keys put in, since made.
    hits: u64,
    inserts: u64,
    /// `hits` when [`Memo::take_hits`] was last called.
    taken: u64,
}

impl Memo {
    /// Whether `key` is known clean (and counts the use).
    pub fn check(&mut self, key: &[u8]) -> bool {
        if key.len() > MAX_KEY {
            return false; // never kept: not worth hashing
        }
        match self.keys.get_mut(key) {
            Some(n) => {
                *n = n.saturating_add(1);
                self.hits += 1;
                true
            }
            None => false,
        }
    }

    /// Notes that `key` (just checked, so not held) was found clean. Keys
    /// longer than [`MAX_KEY`] are not kept.
    pub fn insert(&mut self, key: &[u8]) {
        if key.len() > MAX_KEY {
            return;
        }
        if self.keys.len() >= ENTRIES {
            self.evict();
        }
        self.keys.insert(key.into(), 0);
        self.inserts += 1;
    }

    /// Drops the keys not found again since they went in (or since the
    /// last eviction); everything if that would free less than half.
    fn evict(&mut self) {
        self.keys.retain(|_, n| *n > 0);
        if self.keys.len() > ENTRIES / 2 {
            self.keys.clear();
        }
        self.keys.values_mut().for_each(|n| *n = 0);
    }

    /// Keys held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
    }

    /// (lookups that found the key, keys put in) since made.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.inserts)
    }

    /// Lookups that found the key since the last call (for the shard's
    /// counters).
    pub fn take_hits(&mut self) -> u64 {
        let n = self.hits - self.taken;
        self.taken = self.hits;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize) -> Vec<u8> {
        format!("cookie: s={i}").into_bytes()
    }

    #[test]
    fn a_line_is_known_only_once_inserted_and_only_byte_for_byte() {
        let mut m = Memo::default();
        assert!(!m.check(b"accept: */*"));
        m.insert(b"accept: */*");
        assert!(m.check(b"accept: */*"));
        assert!(!m.check(b"accept: */* "));
        assert!(!m.check(b"Accept: */*"));
        assert!(!m.check(b"accept: */"));
        assert_eq!(m.stats(), (1, 1));
        assert_eq!(m.take_hits(), 1);
        assert_eq!(m.take_hits(), 0);
        assert!(m.check(b"accept: */*"));
        assert_eq!(m.take_hits(), 1);
    }

    #[test]
    fn a_line_one_past_the_length_limit_is_never_kept() {
        let mut m = Memo::default();
        let at = vec![b'a'; MAX_KEY];
        let past = vec![b'a'; MAX_KEY + 1];
        m.insert(&at);
        m.insert(&past);
        assert!(m.check(&at));
        assert!(!m.check(&past));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn one_past_full_keeps_the_lines_in_use_and_drops_the_rest() {
        let mut m = Memo::default();
        let popular = b"user-agent: curl/8.0".to_vec();
        m.insert(&popular);
        for i in 0..ENTRIES - 1 {
            m.insert(&line(i));
            // The popular line is sent again now and then.
            if i % 1000 == 0 {
                assert!(m.check(&popular));
            }
        }
        assert_eq!(m.len(), ENTRIES);
        // One past full: the never-repeated lines go, the popular one stays.
        m.insert(&line(ENTRIES));
        assert_eq!(m.len(), 2);
        assert!(m.check(&popular));
        assert!(m.check(&line(ENTRIES)));
        assert!(!m.check(&line(0)));
    }

    #[test]
    fn when_most_lines_are_in_use_a_full_memo_starts_over() {
        let mut m = Memo::default();
        for i in 0..ENTRIES {
            m.insert(&line(i));
            assert!(m.check(&line(i)));
        }
        m.insert(&line(ENTRIES));
        assert_eq!(m.len(), 1);
        assert!(m.check(&line(ENTRIES)));
        // Use counts restarted: bounded whatever the traffic.
        for i in 0..10 * ENTRIES {
            m.insert(&line(ENTRIES + 1 + i));
            assert!(m.len() <= ENTRIES);
        }
    }
}
