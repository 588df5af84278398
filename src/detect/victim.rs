//! Per-destination (victim) floods: SYNs or ICMP echo requests to one
//! destination from all sources together — the spoofed flood whose every
//! source stays under the per-source limits.
//!
//! Sources live in different shards, so each shard counts, per epoch of
//! packet time, what its own sources sent to each destination
//! ([`VictimCounts`]: packet counts and a mergeable distinct-source
//! sketch) and hands the counts over at the epoch's end. The
//! [`VictimMerger`] adds the shards' counts once every shard has reported
//! the epoch and decides. Sums and sketch merges do not depend on how the
//! sources were split, and every shard is handed the same epoch ends, so
//! the result is the same for any shard count.
//!
//! Three rules: `victim_syn_flood` (SYN rate), `victim_half_open`
//! (handshakes started and never completed, a slower spoofed flood that
//! still fills the victim's backlog) and `victim_icmp_flood`.
//!
//! Mitigation does not block sources (they are mostly spoofed): the alert
//! names the victim, the rate and the number of distinct sources, and in
//! live prevent mode the sink switches on the victim's SYN guard in the XDP
//! program (`syn_guard` below; `xdp::SynGuard`): a SYN passes only when its
//! source retransmits it, which a real TCP client does and a random-source
//! flood does not.

use crate::alert::Alert;
use crate::packet::Proto;
use crate::packet::Ts;
use crate::rules::{self, RuleId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The `[detect.victim]` config section.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VictimConfig {
    /// Run this detector.
    pub enabled: bool,
    /// SYNs (without ACK) per second to one destination, all sources
    /// together; more fires `victim_syn_flood`.
    pub syn_rate: u32,
    /// ICMP echo requests per second to one destination; more fires
    /// `victim_icmp_flood`.
    pub icmp_rate: u32,
    /// Distinct sources needed: fewer is a per-source flood, the per-source
    /// rules' job.
    pub min_sources: u32,
    /// Handshakes per second started to one destination and not completed
    /// (SYNs minus the sources' final ACKs); more fires `victim_half_open`.
    /// Needs `[detect.syn_flood]` enabled (it tracks the handshakes).
    pub half_open_rate: u32,
    /// Destinations counted per shard and epoch; more are counted as
    /// overflow (memory stays bounded under a flood to random addresses).
    pub max_victims: usize,
    /// Live prevent mode: on a victim SYN or half-open flood, switch on the
    /// victim's SYN guard in the XDP program.
    pub syn_guard: bool,
    /// The guard stays on while it drops more than `half_open_rate` SYNs a
    /// second, and this long after.
    #[serde(with = "humantime_serde")]
    pub guard_hold: std::time::Duration,
    /// SYNs the guard passes per second to one victim (retransmissions,
    /// i.e. real clients); 0 = no cap.
    pub guard_rate: u32,
    /// (source, victim) pairs the guard remembers (the kernel LRU map
    /// `syn_seen`); must exceed the flood's SYNs per second so a real
    /// client's first SYN is still remembered when it retransmits one
    /// second later. Restart-only.
    pub guard_table: u32,
}

impl Default for VictimConfig {
    fn default() -> Self {
        VictimConfig {
            enabled: true,
            syn_rate: 2000,
            icmp_rate: 1000,
            min_sources: 8,
            half_open_rate: 500,
            max_victims: 65_536,
            syn_guard: true,
            guard_hold: std::time::Duration::from_secs(30),
            guard_rate: 2000,
            guard_table: 131_072,
        }
    }
}

/// Length of an epoch: rates are per second of packet time.
pub const EPOCH_NS: Ts = crate::packet::NANOS_PER_SEC;

/// HyperLogLog registers: 64 of them, about 13 % error, 64 bytes.
const REGISTERS: usize = 64;

/// What a packet counted toward its destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hit {
    /// A SYN without ACK or RST.
    Syn,
    /// The source's final ACK of a handshake it started.
    Completed,
    /// An ICMP or ICMPv6 echo request.
    Echo,
}

/// What one shard's sources sent to one destination in one epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VictimCounts {
    /// SYNs without ACK.
    pub syns: u32,
    /// Handshakes completed (the sources' final ACKs).
    pub completed: u32,
    /// ICMP/ICMPv6 echo requests.
    pub echoes: u32,
    /// Highest packet index counted (the alert's `pcap_cnt`).
    pub last_idx: u64,
    /// Packet time of that packet.
    pub last_ts: Ts,
    /// Distinct-source sketch (HyperLogLog registers).
    sketch: [u8; REGISTERS],
}

impl Default for VictimCounts {
    fn default() -> Self {
        VictimCounts {
            syns: 0,
            completed: 0,
            echoes: 0,
            last_idx: 0,
            last_ts: 0,
            sketch: [0; REGISTERS],
        }
    }
}

impl VictimCounts {
    /// Counts one packet from a source whose keyed hash is `src_hash`.
    pub fn add(&mut self, hit: Hit, src_hash: u64, idx: u64, ts: Ts) {
        match hit {
            Hit::Syn => self.syns = self.syns.saturating_add(1),
            Hit::Echo => self.echoes = self.echoes.saturating_add(1),
            Hit::Completed => {
                // Not a flood packet: neither the alert's packet nor a
                // flooding source.
                self.completed = self.completed.saturating_add(1);
                return;
            }
        }
        if idx >= self.last_idx {
            self.last_idx = idx;
            self.last_ts = ts;
        }
        let reg = (src_hash as usize) % REGISTERS;
        // Rank of the first set bit in the 58 bits above the register index.
        let rank = ((src_hash >> 6).leading_zeros() - 5).min(59) as u8;
        self.sketch[reg] = self.sketch[reg].max(rank);
    }

    /// Adds another shard's counts for the same destination and epoch.
    pub fn merge(&mut self, o: &VictimCounts) {
        self.syns = self.syns.saturating_add(o.syns);
        self.completed = self.completed.saturating_add(o.completed);
        self.echoes = self.echoes.saturating_add(o.echoes);
        if o.last_idx >= self.last_idx {
            self.last_idx = o.last_idx;
            self.last_ts = o.last_ts;
        }
        for (a, b) in self.sketch.iter_mut().zip(o.sketch) {
            *a = (*a).max(b);
        }
    }

    /// Estimated number of distinct sources.
    pub fn sources(&self) -> u64 {
        let m = REGISTERS as f64;
        let zeros = self.sketch.iter().filter(|&&r| r == 0).count();
        let sum: f64 = self.sketch.iter().map(|&r| (-(r as f64)).exp2()).sum();
        let raw = 0.709 * m * m / sum;
        let est = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        est.round() as u64
    }
}

/// One shard's counts for one epoch, sorted by destination.
pub type Partial = Vec<(IpAddr, VictimCounts)>;

/// Adds the shards' partial counts epoch by epoch and decides.
pub struct VictimMerger {
    cfg: VictimConfig,
    /// Epoch end each shard has reported up to.
    reported: Vec<Ts>,
    /// Epoch end → (its start, destination → counts so far).
    pending: BTreeMap<Ts, (Ts, HashMap<IpAddr, VictimCounts>)>,
    /// Destinations flooding in the last decided epoch, by rule: one alert
    /// per episode, a new one after a quiet epoch.
    active: HashMap<(IpAddr, RuleId), ()>,
    book: std::sync::Arc<crate::ruleset::Ruleset>,
}

impl VictimMerger {
    /// A merger for `shards` shards.
    pub fn new(
        cfg: VictimConfig,
        shards: usize,
        book: std::sync::Arc<crate::ruleset::Ruleset>,
    ) -> Self {
        VictimMerger {
            cfg,
            reported: vec![0; shards.max(1)],
            pending: BTreeMap::new(),
            active: HashMap::new(),
            book,
        }
    }

    /// New thresholds (a reload), for the epochs decided from now on.
    pub fn set_config(&mut self, cfg: VictimConfig) {
        self.cfg = cfg;
    }

    /// Shard `shard` has been handed every packet before `upto` and
    /// reports what it counted, per epoch. Returns the alerts of every epoch
    /// that all shards have now reported.
    pub fn add(&mut self, shard: usize, upto: Ts, epochs: Vec<(Ts, Partial)>) -> Vec<Alert> {
        for (start, part) in epochs {
            let e = self
                .pending
                .entry(start.saturating_add(EPOCH_NS))
                .or_insert_with(|| (start, HashMap::new()));
            for (ip, c) in part {
                e.1.entry(ip).or_default().merge(&c);
            }
        }
        if let Some(r) = self.reported.get_mut(shard) {
            *r = (*r).max(upto);
        }
        let done = self.reported.iter().copied().min().unwrap_or(0);
        let mut out = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > done {
                break;
            }
            let (end, (start, counts)) = entry.remove_entry();
            self.decide(start, end, counts, &mut out);
        }
        out
    }

    fn decide(
        &mut self,
        start: Ts,
        end: Ts,
        counts: HashMap<IpAddr, VictimCounts>,
        out: &mut Vec<Alert>,
    ) {
        let secs = (end.saturating_sub(start)).max(1) as f64 / 1e9;
        let mut over: Vec<(IpAddr, RuleId, u64, u64, VictimCounts)> = Vec::new();
        for (ip, c) in counts {
            let sources = c.sources();
            if sources < self.cfg.min_sources as u64 {
                continue;
            }
            let rate = |n: u32| (n as f64 / secs).round() as u64;
            let syn = rate(c.syns);
            if syn > self.cfg.syn_rate as u64 {
                over.push((ip, rules::VICTIM_SYN_FLOOD, syn, sources, c.clone()));
            } else {
                // The SYN rate rule covers a fast flood; this one the slow
                // one whose handshakes never complete.
                let open = rate(c.syns.saturating_sub(c.completed));
                if open > self.cfg.half_open_rate as u64 {
                    over.push((ip, rules::VICTIM_HALF_OPEN, open, sources, c.clone()));
                }
            }
            let echo = rate(c.echoes);
            if echo > self.cfg.icmp_rate as u64 {
                over.push((ip, rules::VICTIM_ICMP_FLOOD, echo, sources, c.clone()));
            }
        }
        over.sort_by_key(|o| (o.0, o.1));
        let still: HashMap<(IpAddr, RuleId), ()> = over.iter().map(|o| ((o.0, o.1), ())).collect();
        for (ip, rule, rate, sources, c) in over {
            if self.active.contains_key(&(ip, rule)) {
                continue;
            }
            let Some(meta) = self.book.book.get(rule).cloned() else {
                continue;
            };
            let (limit, what, proto) = if rule == rules::VICTIM_SYN_FLOOD {
                (self.cfg.syn_rate, "TCP SYNs", Proto::Tcp)
            } else if rule == rules::VICTIM_HALF_OPEN {
                (
                    self.cfg.half_open_rate,
                    "TCP handshakes left half-open",
                    Proto::Tcp,
                )
            } else {
                (
                    self.cfg.icmp_rate,
                    "ICMP echo requests",
                    if ip.is_ipv4() {
                        Proto::Icmp
                    } else {
                        Proto::Icmpv6
                    },
                )
            };
            out.push(Alert {
                ts: c.last_ts,
                pcap_cnt: c.last_idx,
                src: if ip.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) },
                dst: ip,
                src_port: 0,
                dst_port: 0,
                proto,
                rule: meta,
                blocked: false,
                metric: match rule {
                    rules::VICTIM_SYN_FLOOD => "tcp_syns_per_s_to_victim",
                    rules::VICTIM_HALF_OPEN => "tcp_half_open_per_s_to_victim",
                    _ => "icmp_echo_requests_per_s_to_victim",
                },
                value: rate,
                threshold: limit as u64,
                window: Some(std::time::Duration::from_nanos(end.saturating_sub(start))),
                reason: if rule == rules::VICTIM_ICMP_FLOOD {
                    format!(
                        "{rate} {what}/s to {ip} from about {sources} distinct sources (limit {limit}/s); \
                         sources not blocked (likely spoofed)"
                    )
                } else {
                    format!(
                        "{rate} {what}/s to {ip} from about {sources} distinct sources (limit {limit}/s; \
                         {} SYNs, {} handshakes completed); sources not blocked (likely spoofed)",
                        c.syns, c.completed
                    )
                },
                block_until: None,
                sources: Some(sources),
            });
        }
        self.active = still;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sketch_estimates_and_merges_like_one_counter() {
        let h = crate::shard::Sharder::DEFAULT;
        let mut one = VictimCounts::default();
        let mut parts = [
            VictimCounts::default(),
            VictimCounts::default(),
            VictimCounts::default(),
        ];
        for i in 0..5000u32 {
            let s = h.hash_one(i);
            one.add(Hit::Syn, s, i as u64, i as u64);
            parts[(i % 3) as usize].add(Hit::Syn, s, i as u64, i as u64);
        }
        let mut merged = VictimCounts::default();
        for p in &parts {
            merged.merge(p);
        }
        assert_eq!(merged, one, "merging is exact whatever the split");
        let est = one.sources() as f64;
        assert!((3000.0..7500.0).contains(&est), "estimate {est} for 5000");
        let mut few = VictimCounts::default();
        for i in 0..3u32 {
            few.add(Hit::Syn, h.hash_one(i), 0, 0);
        }
        assert!(few.sources() <= 4, "{}", few.sources());
    }
}
