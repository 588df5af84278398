//! Port scan: one source probing many destination ports, or many
//! host:port pairs, within a window, without completing handshakes.
//!
//! A probe is a SYN without ACK. A probe counts as answered once the source
//! completes that handshake (its final ACK, seen by `syn_flood`): a client
//! that really talks to many servers is not a scanner; nmap's SYN scan
//! answers SYN-ACKs with RST and so stays unanswered.

use super::{fmt_window, hash_endpoint, Detection};
use crate::packet::{Packet, TcpFlags as F, Ts};
use crate::rules;
use crate::shard::Sharder;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// This detector's `[detect.*]` config section (owned here, so the
/// detector does not depend on the config module).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PortScanConfig {
    /// Run this detector.
    pub enabled: bool,
    /// The window probes are counted in, in packet time: fixed, starting
    /// at a probe and restarting at the first probe after it closes.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Distinct unanswered destination ports allowed per window.
    pub distinct_ports: u32,
    /// Distinct unanswered (host, port) pairs allowed per window.
    pub distinct_pairs: u32,
}

impl Default for PortScanConfig {
    fn default() -> Self {
        PortScanConfig {
            enabled: true,
            window: Duration::from_secs(10),
            distinct_ports: 30,
            distinct_pairs: 100,
        }
    }
}

/// One source's state: the ports and host:port pairs it probed in the
/// current window, and which of them it completed a handshake with.
#[derive(Debug, Default)]
pub struct State {
    /// Allocated on the first probe.
    win: Option<Box<Window>>,
}

#[derive(Debug, Default)]
struct Window {
    start: Ts,
    /// (port, answered)
    ports: Vec<(u16, bool)>,
    /// (endpoint hash, answered)
    pairs: Vec<(u64, bool)>,
    unanswered_ports: u32,
    unanswered_pairs: u32,
}

/// Feeds one TCP segment of the source at packet time `now`. A SYN
/// (without ACK or RST) probes its destination port and host:port pair;
/// `completed` (the SYN flood detector saw this segment finish the
/// source's handshake) marks that pair and port answered. `Some` when the
/// window's unanswered ports or pairs exceed their limits.
pub fn on_tcp(
    cfg: &PortScanConfig,
    hasher: &Sharder,
    st: &mut State,
    pkt: &Packet,
    now: Ts,
    completed: bool,
) -> Option<Detection> {
    let f = pkt.tcp_flags;
    let probe = f.has(F::SYN) && !f.any(F::ACK | F::RST);
    if !probe && !completed {
        return None;
    }
    let w = st.win.get_or_insert_with(Default::default);
    let window = cfg.window.as_nanos() as u64;
    if now.saturating_sub(w.start) >= window {
        if !probe {
            return None;
        }
        w.start = now;
        w.ports.clear();
        w.pairs.clear();
        w.unanswered_ports = 0;
        w.unanswered_pairs = 0;
    }
    let pair = hash_endpoint(hasher, pkt.dst, pkt.dst_port, 0);
    if completed {
        if let Some(e) = w.pairs.iter_mut().find(|e| e.0 == pair && !e.1) {
            e.1 = true;
            w.unanswered_pairs -= 1;
        }
        if let Some(e) = w.ports.iter_mut().find(|e| e.0 == pkt.dst_port && !e.1) {
            e.1 = true;
            w.unanswered_ports -= 1;
        }
        return None;
    }
    if !w.pairs.iter().any(|e| e.0 == pair) {
        w.pairs.push((pair, false));
        w.unanswered_pairs += 1;
        bound(&mut w.pairs, cfg.distinct_pairs);
    }
    if !w.ports.iter().any(|e| e.0 == pkt.dst_port) {
        w.ports.push((pkt.dst_port, false));
        w.unanswered_ports += 1;
        bound(&mut w.ports, cfg.distinct_ports);
    }
    let (metric, value, limit, what) = if w.unanswered_ports > cfg.distinct_ports {
        (
            "distinct_ports",
            w.unanswered_ports,
            cfg.distinct_ports,
            "destination ports",
        )
    } else if w.unanswered_pairs > cfg.distinct_pairs {
        (
            "distinct_host_ports",
            w.unanswered_pairs,
            cfg.distinct_pairs,
            "host:port pairs",
        )
    } else {
        return None;
    };
    Some(Detection {
        rule: rules::PORT_SCAN,
        metric,
        value: value as u64,
        threshold: limit as u64,
        window: Some(cfg.window),
        reason: format!(
            "probed {value} distinct {what} without completing a handshake within {} (limit {limit})",
            fmt_window(cfg.window)
        ),
    })
}

/// Answered entries only matter until the window closes; drop them when the
/// list grows past twice the limit. Unanswered entries never exceed
/// `limit + 1` (that fires), so the list stays within `2 * limit + 2`.
fn bound<T: Copy>(v: &mut Vec<(T, bool)>, limit: u32) {
    if v.len() > 2 * limit as usize + 1 {
        v.retain(|e| !e.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u8, dst: &str, dport: u16) -> Packet<'static> {
        Packet::test_tcp(flags, dst, dport, 40000)
    }

    #[test]
    fn many_ports_fire() {
        let cfg = PortScanConfig {
            distinct_ports: 5,
            ..Default::default()
        };
        let mut st = State::default();
        for p in 1..=5 {
            assert!(on_tcp(
                &cfg,
                &Sharder::DEFAULT,
                &mut st,
                &seg(F::SYN, "198.19.0.2", p),
                p as u64,
                false
            )
            .is_none());
            // Repeats of the same port do not count twice.
            assert!(on_tcp(
                &cfg,
                &Sharder::DEFAULT,
                &mut st,
                &seg(F::SYN, "198.19.0.2", p),
                p as u64,
                false
            )
            .is_none());
        }
        let d = on_tcp(
            &cfg,
            &Sharder::DEFAULT,
            &mut st,
            &seg(F::SYN, "198.19.0.2", 6),
            7,
            false,
        )
        .unwrap();
        assert_eq!(
            (d.rule, d.metric, d.value),
            (rules::PORT_SCAN, "distinct_ports", 6)
        );
    }

    #[test]
    fn answered_connections_do_not_count() {
        let cfg = PortScanConfig {
            distinct_ports: 5,
            distinct_pairs: 5,
            ..Default::default()
        };
        let mut st = State::default();
        for i in 0..200u16 {
            let dst = format!("198.19.{}.{}", i / 200, i % 200 + 1);
            assert!(on_tcp(
                &cfg,
                &Sharder::DEFAULT,
                &mut st,
                &seg(F::SYN, &dst, 443 + i % 3),
                i as u64,
                false
            )
            .is_none());
            assert!(on_tcp(
                &cfg,
                &Sharder::DEFAULT,
                &mut st,
                &seg(F::ACK, &dst, 443 + i % 3),
                i as u64,
                true
            )
            .is_none());
        }
        let w = st.win.as_ref().unwrap();
        assert!(w.pairs.len() <= 11 && w.ports.len() <= 11);
    }

    #[test]
    fn window_expiry_resets() {
        let cfg = PortScanConfig {
            distinct_ports: 5,
            ..Default::default()
        };
        let mut st = State::default();
        let sec = 1_000_000_000u64;
        for p in 0..50u16 {
            // One new port every 3 s: never 6 within 10 s.
            assert!(on_tcp(
                &cfg,
                &Sharder::DEFAULT,
                &mut st,
                &seg(F::SYN, "198.19.0.2", p),
                p as u64 * 3 * sec,
                false
            )
            .is_none());
        }
    }
}
