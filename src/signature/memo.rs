//! Header lines already scanned clean, so a repeat is neither normalized
//! nor scanned again.
//!
//! Clients send the same lines over and over (`User-Agent`, `Accept`,
//! `sec-ch-ua`, a session's cookie): on the HTTP corpus 88 % of header
//! lines, 69 % of header bytes, repeat an earlier line. A header line is
//! matched on its own (see `Scanner::scan_head`), and its normalization and
//! scan are pure functions of its bytes and the compiled set, so a line
//! that matched no condition once matches none again: skipping it changes
//! no verdict, whatever the memo holds. The key is the line's bytes
//! themselves, compared in full, not a hash of them: no collision can make
//! an unseen line pass for a clean one. One memo per scanner, so per shard
//! and per rule set (a reload makes new scanners).
//!
//! Bounds: at most [`ENTRIES`] lines of at most [`MAX_LINE`] bytes (longer
//! lines are always scanned), so at most 1 MiB of keys per shard. When it
//! is full, lines never looked up again since they went in are dropped and
//! the rest kept (their use counts restart); if that frees less than half,
//! everything goes. A flood of unique lines (fresh cookies, tokens) so costs
//! the popular lines their place for at most one round, and never costs
//! more than scanning every line, which is what happens without the memo.

use std::collections::HashMap;

/// Lines kept at most.
pub const ENTRIES: usize = 4096;

/// Longest line kept, in bytes: a cookie or token line that long is rarely
/// sent twice.
pub const MAX_LINE: usize = 256;

/// Clean header lines with how often each was found again since the last
/// eviction.
#[derive(Default)]
pub struct LineMemo {
    lines: HashMap<Box<[u8]>, u32, ahash::RandomState>,
    /// Lookups that found the line, and lines put in, since made.
    hits: u64,
    inserts: u64,
}

impl LineMemo {
    /// Whether `line` is known clean (and counts the use).
    pub fn check(&mut self, line: &[u8]) -> bool {
        match self.lines.get_mut(line) {
            Some(n) => {
                *n = n.saturating_add(1);
                self.hits += 1;
                true
            }
            None => false,
        }
    }

    /// Notes that `line` (just checked, so not held) matched no condition.
    /// Lines longer than [`MAX_LINE`] are not kept.
    pub fn insert(&mut self, line: &[u8]) {
        if line.len() > MAX_LINE {
            return;
        }
        if self.lines.len() >= ENTRIES {
            self.evict();
        }
        self.lines.insert(line.into(), 0);
        self.inserts += 1;
    }

    /// Drops the lines not found again since they went in (or since the
    /// last eviction); everything if that would free less than half.
    fn evict(&mut self) {
        self.lines.retain(|_, n| *n > 0);
        if self.lines.len() > ENTRIES / 2 {
            self.lines.clear();
        }
        self.lines.values_mut().for_each(|n| *n = 0);
    }

    /// Lines held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lines.len()
    }

    /// (lookups that skipped a line, lines put in) since made.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.inserts)
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
        let mut m = LineMemo::default();
        assert!(!m.check(b"accept: */*"));
        m.insert(b"accept: */*");
        assert!(m.check(b"accept: */*"));
        assert!(!m.check(b"accept: */* "));
        assert!(!m.check(b"Accept: */*"));
        assert!(!m.check(b"accept: */"));
        assert_eq!(m.stats(), (1, 1));
    }

    #[test]
    fn a_line_one_past_the_length_limit_is_never_kept() {
        let mut m = LineMemo::default();
        let at = vec![b'a'; MAX_LINE];
        let past = vec![b'a'; MAX_LINE + 1];
        m.insert(&at);
        m.insert(&past);
        assert!(m.check(&at));
        assert!(!m.check(&past));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn one_past_full_keeps_the_lines_in_use_and_drops_the_rest() {
        let mut m = LineMemo::default();
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
        let mut m = LineMemo::default();
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
