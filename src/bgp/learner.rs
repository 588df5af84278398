//! Importing peers' blocks, sans I/O: from each listing of the routes peers
//! announce (already filtered to blocks: the learn community, or a FlowSpec
//! discard of one source), decide which sources to put into the kernel
//! blocklist (new, or due for a refresh) and which to take out (the peer
//! withdrew). Sources this box announces itself (a route reflected back)
//! and allowlisted ones are ignored.

use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// What to do to the kernel blocklist after a listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LearnDelta {
    /// Insert (or refresh) with the learn TTL.
    pub block: Vec<IpAddr>,
    /// Remove: the peers withdrew the route.
    pub unblock: Vec<IpAddr>,
    /// Routes ignored: allowlisted, our own, or past the maximum.
    pub ignored: u64,
}

/// The learner's state: what it imported, and when each entry was last
/// written to the kernel (ns, caller's monotonic clock).
#[derive(Debug)]
pub struct Learner {
    ttl: u64,
    max: usize,
    allow: Vec<IpNet>,
    learned: BTreeMap<IpAddr, u64>,
}

impl Learner {
    /// Imported entries last `ttl` ns in the kernel unless refreshed.
    pub fn new(ttl: u64, max: usize, allow: Vec<IpNet>) -> Learner {
        Learner {
            ttl,
            max,
            allow,
            learned: BTreeMap::new(),
        }
    }

    /// Sources imported now.
    pub fn len(&self) -> usize {
        self.learned.len()
    }

    /// Nothing imported.
    pub fn is_empty(&self) -> bool {
        self.learned.is_empty()
    }

    /// Was `ip` imported (so the kernel entry is ours to remove)?
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.learned.contains_key(&ip)
    }

    /// A listing: `peers` are the sources peers announce as blocked;
    /// `ours(ip)` says this box blocks `ip` itself (never imported, never
    /// removed by the learner).
    pub fn update(
        &mut self,
        peers: &BTreeSet<IpAddr>,
        ours: impl Fn(IpAddr) -> bool,
        now: u64,
    ) -> LearnDelta {
        let mut d = LearnDelta::default();
        let gone: Vec<IpAddr> = self
            .learned
            .keys()
            .filter(|ip| !peers.contains(ip) || ours(**ip))
            .copied()
            .collect();
        for ip in gone {
            self.learned.remove(&ip);
            if !ours(ip) {
                d.unblock.push(ip);
            }
        }
        for &ip in peers {
            if ours(ip) || self.allow.iter().any(|n| n.contains(&ip)) {
                d.ignored += 1;
                continue;
            }
            let full = self.learned.len() >= self.max;
            match self.learned.get_mut(&ip) {
                // Refresh at half the TTL, so a live route never lapses.
                Some(at) if now.saturating_sub(*at) < self.ttl / 2 => {}
                Some(at) => {
                    *at = now;
                    d.block.push(ip);
                }
                None if full => d.ignored += 1,
                None => {
                    self.learned.insert(ip, now);
                    d.block.push(ip);
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn set(v: &[&str]) -> BTreeSet<IpAddr> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn imports_refreshes_and_removes() {
        let mut l = Learner::new(60 * SEC, 10, vec!["198.18.9.0/24".parse().unwrap()]);
        let d = l.update(&set(&["198.18.1.5", "198.18.9.9"]), |_| false, 0);
        assert_eq!(d.block, Vec::from_iter(set(&["198.18.1.5"])));
        assert_eq!(d.ignored, 1, "allowlisted");
        // Within half the TTL nothing is rewritten.
        let d = l.update(&set(&["198.18.1.5"]), |_| false, 10 * SEC);
        assert!(d.block.is_empty() && d.unblock.is_empty());
        let d = l.update(&set(&["198.18.1.5"]), |_| false, 31 * SEC);
        assert_eq!(d.block.len(), 1, "refreshed");
        let d = l.update(&set(&[]), |_| false, 32 * SEC);
        assert_eq!(d.unblock, Vec::from_iter(set(&["198.18.1.5"])));
        assert!(l.is_empty());
    }

    #[test]
    fn own_blocks_are_neither_imported_nor_removed() {
        let mut l = Learner::new(60 * SEC, 10, Vec::new());
        let own: IpAddr = "198.18.1.5".parse().unwrap();
        let d = l.update(&set(&["198.18.1.5"]), |ip| ip == own, 0);
        assert!(d.block.is_empty() && d.ignored == 1);
        // Learned first, then blocked here too: handed over, not removed.
        l.update(&set(&["198.18.1.6"]), |_| false, 0);
        let d = l.update(&set(&["198.18.1.6"]), |_| true, SEC);
        assert!(d.unblock.is_empty() && l.is_empty());
    }

    #[test]
    fn bounded() {
        let mut l = Learner::new(60 * SEC, 2, Vec::new());
        let d = l.update(
            &set(&["198.18.1.1", "198.18.1.2", "198.18.1.3"]),
            |_| false,
            0,
        );
        assert_eq!((d.block.len(), d.ignored, l.len()), (2, 1, 2));
    }
}
