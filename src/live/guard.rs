//! The victims' SYN guards in the XDP program (`xdp::SynGuard`): switched
//! on when the engine reports a victim SYN or half-open flood, kept on while
//! they keep dropping more than a flood's worth of SYNs, switched off
//! `guard_hold` after the flood stops.
//!
//! The guard is mitigation without blocking sources: with it on, the
//! program passes a SYN to the victim only when its (source, victim) pair
//! sent one at least 200 ms before — a real client's retransmission after
//! its initial RTO, which a random-source flood never sends. Real clients
//! pay one RTO (1 s) on their first connection during the flood.

use crate::detect::victim::VictimConfig;
use crate::xdp::SynGuard;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What the sink last saw of one guard.
struct Seen {
    dropped: u64,
    at: Instant,
    since: Instant,
}

/// The sink's side of the guards.
pub struct Guards {
    map: SynGuard,
    cfg: VictimConfig,
    seen: HashMap<IpAddr, Seen>,
}

/// Keep a guard on: it dropped more than `rate` SYNs a second since the
/// last look (the flood goes on; without the guard those SYNs would be
/// the victim's half-open backlog).
pub fn still_flooding(dropped: u64, over: Duration, rate: u32) -> bool {
    let secs = over.as_secs_f64().max(1e-3);
    dropped as f64 / secs > rate as f64
}

impl Guards {
    /// Guards on the pinned maps, under `[detect.victim]`.
    pub fn new(map: SynGuard, cfg: VictimConfig) -> Guards {
        Guards {
            map,
            cfg,
            seen: HashMap::new(),
        }
    }

    /// A reload's `[detect.victim]`; `guard_table` (the kernel map's size)
    /// stays as started.
    pub fn set_config(&mut self, cfg: VictimConfig) {
        self.cfg = cfg;
    }

    /// The engine reported a SYN or half-open flood against `victim`.
    pub fn start(&mut self, victim: IpAddr) {
        if let Err(e) = self
            .map
            .arm(victim, self.cfg.guard_hold, self.cfg.guard_rate)
        {
            metrics::counter!("flowgate_syn_guard_errors_total").increment(1);
            tracing::error!("SYN guard for {victim}: {e}");
            return;
        }
        let now = Instant::now();
        if self.seen.contains_key(&victim) {
            return;
        }
        let dropped = self.map.get(victim).map_or(0, |e| e.dropped);
        self.seen.insert(
            victim,
            Seen {
                dropped,
                at: now,
                since: now,
            },
        );
        metrics::counter!("flowgate_syn_guard_started_total").increment(1);
        tracing::warn!(
            "SYN guard on for {victim}: its SYNs pass only as retransmissions (at most {}/s) \
             while the flood lasts, and {} after",
            self.cfg.guard_rate,
            humantime::format_duration(self.cfg.guard_hold)
        );
    }

    /// Extends guards still dropping a flood, removes expired ones.
    /// Called about once a second.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let mono = crate::xdp::monotonic_ns();
        for (victim, e) in self.map.entries() {
            let seen = self.seen.entry(victim).or_insert(Seen {
                dropped: e.dropped,
                at: now,
                since: now,
            });
            if e.until <= mono {
                self.map.disarm(victim);
                metrics::counter!("flowgate_syn_guard_ended_total").increment(1);
                tracing::warn!(
                    "SYN guard off for {victim} after {}: dropped {} SYNs, passed {} retransmitted",
                    humantime::format_duration(Duration::from_secs(
                        now.duration_since(seen.since).as_secs()
                    )),
                    e.dropped,
                    e.passed_total
                );
                self.seen.remove(&victim);
                continue;
            }
            let over = now.duration_since(seen.at);
            if over < Duration::from_millis(500) {
                continue;
            }
            let fresh = e.dropped.saturating_sub(seen.dropped);
            seen.dropped = e.dropped;
            seen.at = now;
            if still_flooding(fresh, over, self.cfg.half_open_rate) {
                if let Err(e) = self
                    .map
                    .arm(victim, self.cfg.guard_hold, self.cfg.guard_rate)
                {
                    tracing::error!("extending the SYN guard for {victim}: {e}");
                }
            }
        }
        self.seen.retain(|ip, _| self.map.get(*ip).is_some());
        metrics::gauge!("flowgate_syn_guard_victims").set(self.seen.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_stays_on_only_while_it_drops_more_than_the_rate() {
        let s = Duration::from_secs(1);
        assert!(still_flooding(501, s, 500));
        assert!(!still_flooding(500, s, 500));
        assert!(still_flooding(300, Duration::from_millis(500), 500));
        assert!(!still_flooding(0, Duration::ZERO, 500));
    }
}
