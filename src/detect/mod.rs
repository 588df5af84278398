//! Behavioural detectors. Each keeps per-source state inside `SourceState`,
//! which lives in the source's shard, and is handed the packet time: no
//! detector does I/O or reads a clock, so tests drive them deterministically
//! and every shard count decides the same.

pub mod flag_scan;
pub mod icmp_flood;
pub mod port_scan;
pub mod repeated_attempts;
pub mod syn_flood;
pub mod victim;

use crate::packet::{Packet, Proto, Ts};
use crate::rules::RuleId;
use crate::shard::Sharder;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// The `[detect]` config section: one sub-section per detector, each
/// defined next to the detector that reads it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// `[detect.icmp_flood]`: echo request rate (rule `icmp_flood`).
    pub icmp_flood: icmp_flood::IcmpFloodConfig,
    /// `[detect.syn_flood]`: SYN rate and half-open handshakes (rules
    /// `syn_flood`, `syn_half_open`).
    pub syn_flood: syn_flood::SynFloodConfig,
    /// `[detect.flag_scan]`: impossible TCP flag combinations (`scan_*`).
    pub flag_scan: flag_scan::FlagScanConfig,
    /// `[detect.port_scan]`: unanswered probes of many ports or pairs
    /// (rule `port_scan`).
    pub port_scan: port_scan::PortScanConfig,
    /// `[detect.repeated_attempts]`: one endpoint retried without a
    /// completed handshake (rule `repeated_attempts`).
    pub repeated_attempts: repeated_attempts::RepeatedAttemptsConfig,
    /// `[detect.victim]`: floods against one destination from all sources
    /// together (rules `victim_syn_flood`, `victim_icmp_flood`).
    pub victim: victim::VictimConfig,
}

/// A detector's finding: the rule, and the measurement against its limit.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// The rule that fired.
    pub rule: RuleId,
    /// What was measured, e.g. `icmp_echo_requests`.
    pub metric: &'static str,
    /// The measurement: the count that crossed the limit (the flags byte
    /// for a flag scan, 1 for a signature).
    pub value: u64,
    /// The limit `value` exceeded (0 for immediate signatures).
    pub threshold: u64,
    /// The window `value` was counted over, if any.
    pub window: Option<Duration>,
    /// Human explanation with the numbers.
    pub reason: String,
}

/// Everything the detectors remember about one source.
#[derive(Debug, Default)]
pub struct SourceState {
    /// Cached allowlist check, made when the source was first seen.
    pub allowlisted: bool,
    /// The ICMP echo request window.
    pub icmp: icmp_flood::State,
    /// SYN and half-open windows, and handshakes awaiting the final ACK.
    pub syn: syn_flood::State,
    /// The port scan window.
    pub scan: port_scan::State,
    /// Endpoints being retried without a completed handshake.
    pub retry: repeated_attempts::State,
}

/// Runs every enabled detector on one packet of a source, cheapest first.
/// Returns the first finding. `completed` is set when the packet is the
/// source's final ACK of a handshake it started (the victim counters use
/// it; it needs `syn_flood` enabled, which tracks handshakes).
pub fn inspect(
    cfg: &DetectConfig,
    h: &Sharder,
    st: &mut SourceState,
    pkt: &Packet,
    now: Ts,
    completed: &mut bool,
) -> Option<Detection> {
    if pkt.fragment {
        return None;
    }
    match pkt.proto {
        Proto::Tcp => {
            if cfg.flag_scan.enabled {
                if let Some(d) = flag_scan::inspect(pkt) {
                    return Some(d);
                }
            }
            if cfg.syn_flood.enabled {
                let out = syn_flood::on_tcp(&cfg.syn_flood, h, &mut st.syn, pkt, now);
                *completed = out.completed;
                if out.detection.is_some() {
                    return out.detection;
                }
            }
            let completed = *completed;
            if cfg.port_scan.enabled {
                let d = port_scan::on_tcp(&cfg.port_scan, h, &mut st.scan, pkt, now, completed);
                if d.is_some() {
                    return d;
                }
            }
            if cfg.repeated_attempts.enabled {
                let flood = cfg
                    .syn_flood
                    .enabled
                    .then_some(repeated_attempts::FloodPace {
                        limit: cfg.syn_flood.limit,
                        window: cfg.syn_flood.window,
                    });
                return repeated_attempts::on_tcp(
                    &cfg.repeated_attempts,
                    flood,
                    h,
                    &mut st.retry,
                    pkt,
                    now,
                    completed,
                );
            }
            None
        }
        Proto::Icmp | Proto::Icmpv6 if cfg.icmp_flood.enabled && pkt.is_icmp_echo_request() => {
            icmp_flood::on_echo_request(&cfg.icmp_flood, &mut st.icmp, now)
        }
        _ => None,
    }
}

/// Events counted in a fixed window that starts at the first event and
/// restarts at the first event after it closes. Integer-only and driven by
/// packet time, so replaying the same packets always gives the same counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowCount {
    start: Ts,
    count: u32,
}

impl WindowCount {
    /// Counts one event at `now`; returns the count in the current window.
    #[inline]
    pub fn hit(&mut self, now: Ts, window: Duration) -> u32 {
        if self.count == 0 || now.saturating_sub(self.start) >= window.as_nanos() as u64 {
            self.start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count
    }
}

/// Keyed hash of a connection's far end as seen from the source (secret
/// key: an attacker cannot make two endpoints collide on purpose). Only
/// compared for equality, never ordered or persisted, so the process-local
/// hash serves (`Sharder::hash_local`).
pub(crate) fn hash_endpoint(h: &Sharder, dst: IpAddr, dst_port: u16, src_port: u16) -> u64 {
    let ip = match dst {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    };
    h.hash_local((ip, dst_port, src_port))
}

pub(crate) fn fmt_window(w: Duration) -> String {
    humantime::format_duration(w).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_restarts_after_it_closes() {
        let mut w = WindowCount::default();
        let s = Duration::from_secs(1);
        assert_eq!(w.hit(0, s), 1);
        assert_eq!(w.hit(999_999_999, s), 2);
        assert_eq!(w.hit(1_000_000_000, s), 1);
        // Out-of-order time (merged captures) stays in the window.
        assert_eq!(w.hit(500, s), 2);
    }
}
