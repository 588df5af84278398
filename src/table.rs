//! A hash table keyed by source with a hard capacity and deterministic
//! eviction.
//!
//! Capacity is split evenly over the fixed buckets of `shard.rs`; each
//! bucket keeps its keys in a FIFO. When a bucket is full, the oldest key is
//! evicted unless it was used since it was queued, in which case it gets a
//! second chance at the back (CLOCK). Idle keys at the front are expired on
//! the way. All decisions depend only on the packets of the bucket, in
//! packet order, with packet time: never on the shard count or wall clock.

use crate::packet::Ts;
use crate::shard::{Sharder, SourceKey, BUCKETS};
use std::collections::VecDeque;
use std::hash::Hash;

/// A table key and the fixed bucket it belongs to. Keys of one source must
/// share the source's bucket so eviction stays within one shard.
pub trait TableKey: Copy + Eq + Hash + Ord {
    /// The source this key belongs to; its bucket is the key's bucket.
    fn source(&self) -> SourceKey;
}

impl TableKey for SourceKey {
    #[inline]
    fn source(&self) -> SourceKey {
        *self
    }
}

/// How many queued keys one insert may look at before evicting regardless.
const MAX_SECOND_CHANCES: usize = 8;
/// How many idle keys one insert may expire.
const MAX_EXPIRE_PER_INSERT: usize = 2;

/// Counters of one bounded table (one shard's; summed with [`add`](Self::add)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableStats {
    /// New keys inserted.
    pub inserts: u64,
    /// Removed because the bucket was full.
    pub evictions: u64,
    /// Removed because idle for longer than the idle timeout.
    pub expirations: u64,
}

impl TableStats {
    /// Adds another table's counters into these.
    pub fn add(&mut self, o: &TableStats) {
        self.inserts += o.inserts;
        self.evictions += o.evictions;
        self.expirations += o.expirations;
    }
}

struct Slot<V> {
    value: V,
    gen: u32,
    last_seen: Ts,
    queued_at: Ts,
}

/// The key -> slot map under a [`BoundedTable`]: hashbrown's `HashTable`,
/// which takes the hash from the caller. A hit costs one hash and one probe
/// (std's map needs two probes to "find, else insert, then hand out"), and
/// a caller that already hashed the key for another table over the same
/// hasher (the engine: blocklist and source table) passes that hash on.
struct Map<K, V> {
    t: hashbrown::HashTable<(K, Slot<V>)>,
    hasher: ahash::RandomState,
}

impl<K: Copy + Eq + Hash, V> Map<K, V> {
    #[inline]
    fn hash(&self, k: &K) -> u64 {
        self.hasher.hash_one(k)
    }

    #[inline]
    fn get(&self, k: &K) -> Option<&Slot<V>> {
        self.t.find(self.hash(k), |e| e.0 == *k).map(|e| &e.1)
    }

    #[inline]
    fn get_mut(&mut self, k: &K) -> Option<&mut Slot<V>> {
        let h = self.hash(k);
        self.get_mut_h(k, h)
    }

    #[inline]
    fn get_mut_h(&mut self, k: &K, h: u64) -> Option<&mut Slot<V>> {
        self.t.find_mut(h, |e| e.0 == *k).map(|e| &mut e.1)
    }

    /// Inserts a key known to be absent.
    fn insert_h(&mut self, k: K, h: u64, s: Slot<V>) {
        let hasher = &self.hasher;
        self.t.insert_unique(h, (k, s), |e| hasher.hash_one(e.0));
    }

    fn remove(&mut self, k: &K) -> Option<Slot<V>> {
        let h = self.hash(k);
        let e = self.t.find_entry(h, |e| e.0 == *k).ok()?;
        Some(e.remove().0 .1)
    }
}

/// A map with a hard bound and deterministic eviction, for state keyed by
/// something an attacker chooses (source addresses, flows).
///
/// Capacity is per fixed bucket ([`TableKey::bucket`]). Inserting into a
/// full bucket evicts its oldest entry, unless that one was used since it
/// was queued: then it gets a second chance at the back (CLOCK, a bounded
/// number of times per insert). A few idle entries at the front of the
/// bucket expire on the way. Nothing runs between inserts: an idle entry
/// leaves only when an insert into its bucket passes it. Every decision
/// depends on the bucket's own keys in packet order and on packet time, so
/// a shard's table behaves exactly like the same buckets of a one-shard
/// table. Evictions and expirations are counted in `stats`.
pub struct BoundedTable<K, V> {
    map: Map<K, V>,
    sharder: Sharder,
    fifo: Vec<VecDeque<(K, u32)>>,
    live: Vec<u32>,
    per_bucket: usize,
    idle_ns: u64,
    next_gen: u32,
    /// Inserts, evictions and expirations since the table was created.
    pub stats: TableStats,
}

impl<K: TableKey, V> BoundedTable<K, V> {
    /// `capacity` is the whole table's bound across all shards; each bucket
    /// gets `ceil(capacity / BUCKETS)` (at least 1), so the real bound is
    /// `per_bucket() * BUCKETS`: `capacity` rounded up to a multiple of
    /// `BUCKETS`, never under `BUCKETS`.
    /// `idle_ns` is the packet time after which an unused entry may expire;
    /// `idle_ns == u64::MAX` disables idle expiry. `sharder` decides each
    /// key's bucket (the deployment's keyed hash).
    pub fn new(capacity: usize, idle_ns: u64, sharder: Sharder) -> Self {
        BoundedTable {
            map: Map {
                t: hashbrown::HashTable::new(),
                hasher: sharder.map_hasher(),
            },
            sharder,
            fifo: (0..BUCKETS).map(|_| VecDeque::new()).collect(),
            live: vec![0; BUCKETS],
            per_bucket: capacity.div_ceil(BUCKETS).max(1),
            idle_ns,
            next_gen: 0,
            stats: TableStats::default(),
        }
    }

    /// Most entries one bucket holds. The table holds at most this times
    /// `BUCKETS`, and a shard only ever fills its own buckets.
    pub fn per_bucket(&self) -> usize {
        self.per_bucket
    }

    /// Entries held now, idle ones not yet expired included.
    pub fn len(&self) -> usize {
        self.map.t.len()
    }

    /// No entries held.
    pub fn is_empty(&self) -> bool {
        self.map.t.is_empty()
    }

    /// Looks up without marking the entry used.
    pub fn get_mut(&mut self, key: K) -> Option<&mut V> {
        self.map.get_mut(&key).map(|s| &mut s.value)
    }

    /// Looks up and marks the entry used at `now`.
    #[inline]
    pub fn touch(&mut self, key: K, now: Ts) -> Option<&mut V> {
        let h = self.map.hash(&key);
        self.touch_hashed(key, h, now)
    }

    /// The hash this table files `key` under. Tables built from the same
    /// [`Sharder`] hash alike, so one hash serves all of them.
    #[inline]
    pub fn hash(&self, key: &K) -> u64 {
        self.map.hash(key)
    }

    /// [`touch`](Self::touch) with the key's [`hash`](Self::hash) already
    /// known.
    #[inline]
    pub fn touch_hashed(&mut self, key: K, h: u64, now: Ts) -> Option<&mut V> {
        debug_assert_eq!(h, self.map.hash(&key), "hash from another hasher");
        self.map.get_mut_h(&key, h).map(|s| {
            s.last_seen = s.last_seen.max(now);
            &mut s.value
        })
    }

    /// Looks up and marks used, inserting `make()` if absent. Also returns
    /// the entry evicted to make room, if any.
    #[inline]
    pub fn touch_or_insert(
        &mut self,
        key: K,
        now: Ts,
        make: impl FnOnce() -> V,
    ) -> (&mut V, Option<(K, V)>) {
        let h = self.map.hash(&key);
        self.touch_or_insert_hashed(key, h, now, make)
    }

    /// [`touch_or_insert`](Self::touch_or_insert) with the key's
    /// [`hash`](Self::hash) already known.
    #[inline]
    pub fn touch_or_insert_hashed(
        &mut self,
        key: K,
        h: u64,
        now: Ts,
        make: impl FnOnce() -> V,
    ) -> (&mut V, Option<(K, V)>) {
        self.touch_or(key, h, now, |t| t.insert_hashed(key, h, now, make()))
    }

    /// [`touch_or_insert`](Self::touch_or_insert) with
    /// [`insert_weighted`](Self::insert_weighted)'s choice of what to evict.
    pub fn touch_or_insert_weighted(
        &mut self,
        key: K,
        now: Ts,
        make: impl FnOnce() -> V,
        weight: impl Fn(&V) -> u64,
    ) -> (&mut V, Option<(K, V)>) {
        let h = self.map.hash(&key);
        self.touch_or(key, h, now, |t| {
            t.insert_weighted_hashed(key, h, now, make(), weight)
        })
    }

    /// Marks `key` used, running `insert` first if it is absent. A hit is
    /// one probe: the bucket index found is reused (a returned reference
    /// could not be, because `insert` needs the whole table).
    #[inline]
    fn touch_or(
        &mut self,
        key: K,
        h: u64,
        now: Ts,
        insert: impl FnOnce(&mut Self) -> Option<(K, V)>,
    ) -> (&mut V, Option<(K, V)>) {
        debug_assert_eq!(h, self.map.hash(&key), "hash from another hasher");
        let (at, evicted) = match self.map.t.find_bucket_index(h, |e| e.0 == key) {
            Some(i) => (Some(i), None),
            None => (None, insert(self)),
        };
        let entry = match at {
            Some(i) => self.map.t.get_bucket_mut(i),
            None => self.map.t.find_mut(h, |e| e.0 == key),
        };
        let slot = &mut entry.expect("present: found or just inserted").1;
        slot.last_seen = slot.last_seen.max(now);
        (&mut slot.value, evicted)
    }

    /// Inserts a key known to be absent. Returns the entry evicted to make
    /// room, if the bucket was full.
    pub fn insert(&mut self, key: K, now: Ts, value: V) -> Option<(K, V)> {
        let h = self.map.hash(&key);
        self.insert_hashed(key, h, now, value)
    }

    fn insert_hashed(&mut self, key: K, h: u64, now: Ts, value: V) -> Option<(K, V)> {
        let b = self.bucket(&key);
        self.expire_idle(b, now);
        let evicted = if self.live[b] as usize >= self.per_bucket {
            self.evict_one(b)
        } else {
            None
        };
        self.next_gen = self.next_gen.wrapping_add(1);
        let gen = self.next_gen;
        let slot = Slot {
            value,
            gen,
            last_seen: now,
            queued_at: now,
        };
        match self.map.get_mut_h(&key, h) {
            // A caller bug; replace the entry as a map insert would, so the
            // table stays consistent (its old queue entry goes stale).
            Some(old) => {
                if cfg!(debug_assertions) {
                    panic!("insert of a present key");
                }
                *old = slot;
            }
            None => {
                self.map.insert_h(key, h, slot);
                self.live[b] += 1;
            }
        }
        self.fifo[b].push_back((key, gen));
        self.stats.inserts += 1;
        self.compact(b);
        evicted
    }

    /// Inserts a key known to be absent into a table whose entries have a
    /// weight (the blocklist: packets dropped). A full bucket evicts its
    /// lightest entry, the oldest among equals, instead of the oldest: an
    /// attacker who floods a bucket with cheap new entries cannot push out
    /// an entry that is actively being hit.
    pub fn insert_weighted(
        &mut self,
        key: K,
        now: Ts,
        value: V,
        weight: impl Fn(&V) -> u64,
    ) -> Option<(K, V)> {
        let h = self.map.hash(&key);
        self.insert_weighted_hashed(key, h, now, value, weight)
    }

    fn insert_weighted_hashed(
        &mut self,
        key: K,
        h: u64,
        now: Ts,
        value: V,
        weight: impl Fn(&V) -> u64,
    ) -> Option<(K, V)> {
        let b = self.bucket(&key);
        let mut evicted = None;
        if self.live[b] as usize >= self.per_bucket {
            let map = &self.map;
            let victim = self.fifo[b]
                .iter()
                .enumerate()
                .filter_map(|(i, (k, g))| {
                    map.get(k)
                        .filter(|s| s.gen == *g)
                        .map(|s| (weight(&s.value), i, *k))
                })
                .min();
            if let Some((_, i, k)) = victim {
                self.fifo[b].remove(i);
                if let Some(slot) = self.map.remove(&k) {
                    self.live[b] -= 1;
                    self.stats.evictions += 1;
                    evicted = Some((k, slot.value));
                }
            }
        }
        // Room now: the plain insert will not evict again.
        debug_assert!((self.live[b] as usize) < self.per_bucket);
        self.insert_hashed(key, h, now, value);
        evicted
    }

    /// Takes `key` out, returning its value (`None` if absent). Not counted
    /// as an eviction or expiry: the caller decided.
    pub fn remove(&mut self, key: K) -> Option<V> {
        let slot = self.map.remove(&key)?;
        let b = self.bucket(&key);
        self.live[b] = self.live[b].saturating_sub(1);
        // Its queue entry is stale now. At either end of the queue (a
        // short-lived flow's is usually the newest) it goes at once, so a
        // later insert does not spend a map probe, and a place in its
        // expiry budget, on finding it stale; elsewhere it stays until a
        // walk or `compact` reaches it.
        let q = &mut self.fifo[b];
        if q.back() == Some(&(key, slot.gen)) {
            q.pop_back();
        } else if q.front() == Some(&(key, slot.gen)) {
            q.pop_front();
        }
        Some(slot.value)
    }

    /// Removes and returns every entry, in key order (deterministic).
    pub fn drain_sorted(&mut self) -> Vec<(K, V)> {
        let mut all: Vec<(K, V)> = self.map.t.drain().map(|(k, s)| (k, s.value)).collect();
        all.sort_by_key(|(k, _)| *k);
        for q in &mut self.fifo {
            q.clear();
        }
        self.live.iter_mut().for_each(|c| *c = 0);
        all
    }

    /// Every entry, in no particular order (use
    /// [`drain_sorted`](Self::drain_sorted) where order must be
    /// deterministic).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.t.iter().map(|(k, s)| (k, &s.value))
    }

    #[inline]
    fn bucket(&self, key: &K) -> usize {
        self.sharder.bucket_of(key.source())
    }

    /// Forgets idle entries in every bucket (a timer sweep). Walks each
    /// bucket's queue from the front, as an insert does, but without the
    /// per-insert bound; stops at the first entry that is neither idle nor
    /// stale, so the work is bounded by what it removes plus one per bucket.
    pub fn expire_all(&mut self, now: Ts) {
        for b in 0..BUCKETS {
            if !self.fifo[b].is_empty() {
                self.expire_idle_up_to(b, now, self.per_bucket * 2 + 8);
            }
        }
    }

    fn expire_idle(&mut self, b: usize, now: Ts) {
        self.expire_idle_up_to(b, now, MAX_EXPIRE_PER_INSERT);
    }

    fn expire_idle_up_to(&mut self, b: usize, now: Ts, max: usize) {
        if self.idle_ns == u64::MAX {
            return;
        }
        for _ in 0..max {
            let Some(&(key, gen)) = self.fifo[b].front() else {
                return;
            };
            match self.map.get_mut(&key) {
                Some(s) if s.gen == gen => {
                    if now.saturating_sub(s.last_seen) >= self.idle_ns {
                        self.fifo[b].pop_front();
                        self.map.remove(&key);
                        self.live[b] -= 1;
                        self.stats.expirations += 1;
                    } else if s.last_seen > s.queued_at {
                        // Used since queued: requeue, it is not the oldest.
                        s.queued_at = s.last_seen;
                        self.fifo[b].pop_front();
                        self.fifo[b].push_back((key, gen));
                    } else {
                        return;
                    }
                }
                _ => {
                    self.fifo[b].pop_front(); // stale: removed or re-inserted
                }
            }
        }
    }

    fn evict_one(&mut self, b: usize) -> Option<(K, V)> {
        let mut chances = 0;
        while let Some((key, gen)) = self.fifo[b].pop_front() {
            let Some(s) = self.map.get_mut(&key) else {
                continue;
            };
            if s.gen != gen {
                continue;
            }
            if s.last_seen > s.queued_at && chances < MAX_SECOND_CHANCES {
                chances += 1;
                s.queued_at = s.last_seen;
                self.fifo[b].push_back((key, gen));
                continue;
            }
            let slot = self.map.remove(&key)?;
            self.live[b] -= 1;
            self.stats.evictions += 1;
            return Some((key, slot.value));
        }
        None
    }

    /// `remove` leaves stale FIFO entries; keep the queue within 2x the
    /// bucket's capacity so it cannot grow without bound.
    fn compact(&mut self, b: usize) {
        if self.fifo[b].len() <= 2 * self.per_bucket + 8 {
            return;
        }
        let map = &self.map;
        self.fifo[b].retain(|(k, g)| map.get(k).is_some_and(|s| s.gen == *g));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn bucket_of(k: SourceKey) -> usize {
        Sharder::default().bucket_of(k)
    }

    fn key(i: u32) -> SourceKey {
        SourceKey::from(Ipv4Addr::from(0xc612_0000 + i))
    }

    #[test]
    fn never_exceeds_capacity() {
        let cap = 2048;
        let mut t = BoundedTable::new(cap, u64::MAX, Sharder::default());
        let mut evicted = 0;
        for i in 0..100_000u32 {
            if t.insert(key(i), i as u64, i).is_some() {
                evicted += 1;
            }
            assert!(t.len() <= t.per_bucket() * BUCKETS);
        }
        assert!(t.len() <= cap.div_ceil(BUCKETS) * BUCKETS);
        assert_eq!(t.stats.evictions, evicted);
        assert_eq!(t.len() as u64 + evicted, 100_000);
    }

    #[test]
    fn tables_of_one_sharder_share_hashes_and_a_hit_is_the_entry() {
        // The engine hashes a source once for the blocklist and the source
        // table: that is only right if tables of one sharder hash alike.
        let s = Sharder::default();
        let mut a: BoundedTable<SourceKey, u32> = BoundedTable::new(BUCKETS * 2, u64::MAX, s);
        let b: BoundedTable<SourceKey, u64> = BoundedTable::new(BUCKETS, 10, s);
        let k = key(1);
        let h = b.hash(&k);
        assert_eq!(a.hash(&k), h);
        let (v, evicted) = a.touch_or_insert_hashed(k, h, 5, || 7);
        assert_eq!((*v, evicted.is_none()), (7, true));
        *v = 9;
        let (v, _) = a.touch_or_insert_hashed(k, h, 6, || 0);
        assert_eq!(*v, 9, "a hit hands out the stored entry");
        assert_eq!((a.len(), a.stats.inserts), (1, 1));
        assert_eq!(a.touch_hashed(k, h, 7), Some(&mut 9));
        assert_eq!(a.remove(k), Some(9));
        assert!(a.touch_hashed(k, h, 8).is_none());
    }

    #[test]
    fn recently_used_entry_survives_eviction() {
        // One entry per bucket: find two keys in the same bucket.
        let mut t = BoundedTable::new(BUCKETS * 2, u64::MAX, Sharder::default());
        let b0 = bucket_of(key(0));
        let same: Vec<u32> = (1..100_000)
            .filter(|i| bucket_of(key(*i)) == b0)
            .take(2)
            .collect();
        t.insert(key(0), 0, 0u32);
        t.insert(key(same[0]), 1, 1);
        t.touch(key(0), 5);
        let ev = t.insert(key(same[1]), 6, 2).unwrap();
        assert_eq!(ev.0, key(same[0]), "the untouched older entry goes first");
        assert!(t.get_mut(key(0)).is_some());
    }

    #[test]
    fn weighted_insert_evicts_the_lightest_entry() {
        let mut t = BoundedTable::new(BUCKETS * 3, u64::MAX, Sharder::default());
        let b0 = bucket_of(key(0));
        let same: Vec<u32> = (1..200_000)
            .filter(|i| bucket_of(key(*i)) == b0)
            .take(10)
            .collect();
        // The oldest entry is the heaviest: it must survive.
        t.insert(key(0), 0, 500u64);
        t.insert(key(same[0]), 1, 0);
        t.insert(key(same[1]), 2, 3);
        for (n, &i) in same[2..].iter().enumerate() {
            let ev = t.insert_weighted(key(i), 10 + n as u64, 0, |w| *w).unwrap();
            assert_ne!(ev.0, key(0), "the hot entry was evicted");
            assert_eq!(t.len(), 3);
        }
        assert_eq!(t.get_mut(key(0)), Some(&mut 500));
    }

    #[test]
    fn expire_all_forgets_idle_entries_in_every_bucket() {
        let mut t = BoundedTable::new(BUCKETS * 4, 10, Sharder::default());
        for i in 0..3000u32 {
            t.insert(key(i), 0, ());
        }
        t.touch(key(7), 15);
        t.expire_all(20);
        assert_eq!(t.len(), 1, "only the entry used within the idle time stays");
        assert!(t.get_mut(key(7)).is_some());
        assert_eq!(t.stats.expirations + t.stats.evictions, 2999);
    }

    #[test]
    fn a_removed_entry_at_either_end_of_its_queue_leaves_nothing_stale() {
        let mut t = BoundedTable::new(BUCKETS * 8, 10, Sharder::default());
        let b0 = bucket_of(key(0));
        let same: Vec<u32> = (0..200_000)
            .filter(|i| bucket_of(key(*i)) == b0)
            .take(4)
            .collect();
        for (n, &i) in same.iter().enumerate() {
            t.insert(key(i), n as u64, ());
        }
        t.remove(key(same[3])); // the newest: the back of the queue
        t.remove(key(same[0])); // the oldest: the front
        t.remove(key(same[1])); // the front again
        assert_eq!(t.fifo[b0].len(), 1, "only the live entry is queued");
        // In the middle it stays queued, stale, as before.
        t.insert(key(same[0]), 4, ());
        t.insert(key(same[1]), 5, ());
        t.remove(key(same[0]));
        assert_eq!(t.fifo[b0].len(), 3);
        // A stale entry in the middle still takes a place in an insert's
        // expiry budget (two entries): same[1], idle too, waits for a walk.
        t.insert(key(same[3]), 100, ());
        assert_eq!(t.len(), 2);
        assert_eq!(t.stats.expirations, 1);
        t.expire_all(200);
        assert_eq!(t.len(), 0);
        assert!(t.fifo[b0].is_empty());
    }

    #[test]
    fn idle_entries_expire_and_removed_ones_do_not_leak_queue() {
        let mut t = BoundedTable::new(BUCKETS, 10, Sharder::default());
        t.insert(key(0), 0, ());
        let b0 = bucket_of(key(0));
        let other = (1..100_000).find(|i| bucket_of(key(*i)) == b0).unwrap();
        assert!(
            t.insert(key(other), 100, ()).is_none(),
            "idle entry expires, no eviction"
        );
        assert_eq!(t.stats.expirations, 1);
        for i in 0..10_000 {
            t.remove(key(other));
            t.insert(key(other), 200 + i, ());
        }
        assert!(t.fifo[b0].len() <= 2 * t.per_bucket() + 9);
    }
}
