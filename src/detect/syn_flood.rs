//! SYN flood from one source, two ways:
//! - rate: more SYNs (without ACK) than the limit within a window;
//! - half-open: handshakes the source starts and never finishes. A SYN with
//!   no final ACK from the same source after `half_open_timeout` counts as
//!   half-open; more than `half_open_limit` of those within
//!   `half_open_window` fires. The final ACK comes from the client, so this
//!   needs only the source's own packets and stays within its shard.

use super::{fmt_window, hash_endpoint, Detection, WindowCount};
use crate::packet::{Packet, TcpFlags as F, Ts};
use crate::rules;
use crate::shard::Sharder;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// This detector's `[detect.*]` config section (owned here, so the
/// detector does not depend on the config module).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SynFloodConfig {
    /// Run this detector (both `syn_flood` and `syn_half_open`).
    pub enabled: bool,
    /// SYNs (without ACK) allowed per window; one more fires.
    pub limit: u32,
    /// The SYN counting window, in packet time (fixed, from the first SYN).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Handshakes left half-open allowed per `half_open_window`.
    pub half_open_limit: u32,
    /// A SYN with no final ACK from the source after this long is half-open.
    #[serde(with = "humantime_serde")]
    pub half_open_timeout: Duration,
    /// The window half-open handshakes are counted in (fixed, from the
    /// first one).
    #[serde(with = "humantime_serde")]
    pub half_open_window: Duration,
    /// Pending handshakes tracked per source; the oldest beyond this count
    /// as half-open at once.
    pub max_pending: usize,
}

impl Default for SynFloodConfig {
    fn default() -> Self {
        SynFloodConfig {
            enabled: true,
            limit: 200,
            window: Duration::from_secs(1),
            half_open_limit: 100,
            half_open_timeout: Duration::from_secs(3),
            half_open_window: Duration::from_secs(10),
            max_pending: 1024,
        }
    }
}

/// One source's state: its SYN and half-open windows and the handshakes
/// still waiting for its final ACK (allocated on its first SYN).
#[derive(Debug, Default)]
pub struct State {
    syns: WindowCount,
    half_open: WindowCount,
    /// Time of the oldest queued SYN, or `Ts::MAX` when none is queued: most
    /// packets skip the aging walk without touching `pending`.
    oldest: Ts,
    /// One bit per pending endpoint (`h >> 58`), cleared when nothing is
    /// pending: most ACKs of established connections skip the map probe.
    filter: u64,
    /// Allocated on the first SYN: most sources never send one.
    pending: Option<Box<Pending>>,
}

fn filter_bit(h: u64) -> u64 {
    1 << (h >> 58)
}

#[derive(Debug, Default)]
struct Pending {
    /// endpoint hash → time of the SYN awaiting its final ACK.
    by_endpoint: HashMap<u64, Ts, ahash::RandomState>,
    /// The same SYNs in arrival order, for aging. Entries whose time no
    /// longer matches `by_endpoint` are stale (completed or retransmitted).
    order: VecDeque<(Ts, u64)>,
}

/// What one segment did to a source's SYN state.
pub struct Outcome {
    /// A SYN rate or half-open finding, if this segment crossed a limit.
    pub detection: Option<Detection>,
    /// This packet completed a handshake the source had started.
    pub completed: bool,
}

/// Feeds one TCP segment of the source at packet time `now`. A SYN is
/// counted and remembered by endpoint (keyed hash) until the source's ACK
/// (completed) or RST (abandoned) for it; one still pending
/// `half_open_timeout` later counts as half-open. Aging runs as the
/// source's later segments arrive, so a half-open finding lands on a later
/// packet of the source.
pub fn on_tcp(
    cfg: &SynFloodConfig,
    hasher: &Sharder,
    st: &mut State,
    pkt: &Packet,
    now: Ts,
) -> Outcome {
    let mut out = Outcome {
        detection: None,
        completed: false,
    };
    let f = pkt.tcp_flags;
    let is_syn = f.has(F::SYN) && !f.any(F::ACK | F::RST);

    // Touch `pending` (another cache line) only when aging is due or the
    // filter says this ACK may complete a pending handshake.
    if let Some(p) = st.pending.as_deref_mut() {
        let timeout = cfg.half_open_timeout.as_nanos() as u64;
        if now.saturating_sub(st.oldest) >= timeout {
            // Age: SYNs older than the timeout still pending are half-open.
            let mut aged = 0u32;
            while let Some(&(t, h)) = p.order.front() {
                if now.saturating_sub(t) < timeout {
                    break;
                }
                p.order.pop_front();
                if p.by_endpoint.get(&h) == Some(&t) {
                    p.by_endpoint.remove(&h);
                    aged += 1;
                }
            }
            st.oldest = p.order.front().map_or(Ts::MAX, |e| e.0);
            if p.by_endpoint.is_empty() {
                st.filter = 0;
            }
            for _ in 0..aged {
                out.detection = out.detection.or(half_open_hit(cfg, &mut st.half_open, now));
            }
        }
        if !is_syn && st.filter != 0 && f.any(F::ACK | F::RST) && !f.any(F::SYN) {
            let h = hash_endpoint(hasher, pkt.dst, pkt.dst_port, pkt.src_port);
            if st.filter & filter_bit(h) != 0 && p.by_endpoint.remove(&h).is_some() {
                // An ACK completes the handshake; a RST abandons it. Either
                // way it was not left half-open.
                out.completed = f.any(F::ACK) && !f.any(F::RST);
                if p.by_endpoint.is_empty() {
                    st.filter = 0;
                }
            }
        }
    }
    if out.detection.is_some() || !is_syn {
        return out;
    }

    let n = st.syns.hit(now, cfg.window);
    if n > cfg.limit {
        out.detection = Some(Detection {
            rule: rules::SYN_FLOOD,
            metric: "tcp_syns",
            value: n as u64,
            threshold: cfg.limit as u64,
            window: Some(cfg.window),
            reason: format!(
                "{n} TCP SYNs within {} (limit {}), latest to port {}",
                fmt_window(cfg.window),
                cfg.limit,
                pkt.dst_port
            ),
        });
        return out;
    }

    let p = st.pending.get_or_insert_with(Default::default);
    let h = hash_endpoint(hasher, pkt.dst, pkt.dst_port, pkt.src_port);
    if p.by_endpoint.len() >= cfg.max_pending && !p.by_endpoint.contains_key(&h) {
        // Table for this source full: the oldest pending SYN is given up on.
        while let Some((t, old)) = p.order.pop_front() {
            if p.by_endpoint.get(&old) == Some(&t) {
                p.by_endpoint.remove(&old);
                out.detection = half_open_hit(cfg, &mut st.half_open, now);
                break;
            }
        }
    }
    p.by_endpoint.insert(h, now);
    if p.order.is_empty() {
        st.oldest = now;
    }
    p.order.push_back((now, h));
    st.filter |= filter_bit(h);
    // Retransmissions leave stale entries; keep the queue bounded.
    if p.order.len() > 2 * cfg.max_pending + 8 {
        let live = &p.by_endpoint;
        p.order.retain(|(t, h)| live.get(h) == Some(t));
    }
    out
}

fn half_open_hit(cfg: &SynFloodConfig, w: &mut WindowCount, now: Ts) -> Option<Detection> {
    let n = w.hit(now, cfg.half_open_window);
    (n > cfg.half_open_limit).then(|| Detection {
        rule: rules::SYN_HALF_OPEN,
        metric: "tcp_half_open",
        value: n as u64,
        threshold: cfg.half_open_limit as u64,
        window: Some(cfg.half_open_window),
        reason: format!(
            "{n} handshakes left half-open (no final ACK within {}) within {} (limit {})",
            fmt_window(cfg.half_open_timeout),
            fmt_window(cfg.half_open_window),
            cfg.half_open_limit
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn seg(flags: u8, sport: u16, dport: u16) -> Packet<'static> {
        Packet::test_tcp(flags, "198.19.0.2", dport, sport)
    }
    const MS: u64 = 1_000_000;

    #[test]
    fn syn_rate_fires_past_limit() {
        let cfg = SynFloodConfig {
            limit: 10,
            ..Default::default()
        };
        let mut st = State::default();
        for i in 0..10u16 {
            assert!(on_tcp(
                &cfg,
                &Sharder::DEFAULT,
                &mut st,
                &seg(F::SYN, 1000 + i, 80),
                i as u64 * MS
            )
            .detection
            .is_none());
        }
        let d = on_tcp(
            &cfg,
            &Sharder::DEFAULT,
            &mut st,
            &seg(F::SYN, 2000, 80),
            20 * MS,
        )
        .detection
        .unwrap();
        assert_eq!(d.rule, rules::SYN_FLOOD);
        assert_eq!(d.value, 11);
    }

    #[test]
    fn completed_handshakes_are_not_half_open() {
        let cfg = SynFloodConfig {
            half_open_limit: 2,
            half_open_timeout: Duration::from_millis(100),
            ..Default::default()
        };
        let mut st = State::default();
        let mut t = 0;
        for i in 0..50u16 {
            t += 50 * MS;
            assert!(on_tcp(
                &cfg,
                &Sharder::DEFAULT,
                &mut st,
                &seg(F::SYN, 1000 + i, 80),
                t
            )
            .detection
            .is_none());
            let o = on_tcp(
                &cfg,
                &Sharder::DEFAULT,
                &mut st,
                &seg(F::ACK, 1000 + i, 80),
                t + MS,
            );
            assert!(o.completed && o.detection.is_none());
        }
    }

    #[test]
    fn unanswered_syns_become_half_open() {
        let cfg = SynFloodConfig {
            half_open_limit: 2,
            half_open_timeout: Duration::from_millis(100),
            ..Default::default()
        };
        let mut st = State::default();
        let mut fired = None;
        for i in 0..10u16 {
            let o = on_tcp(
                &cfg,
                &Sharder::DEFAULT,
                &mut st,
                &seg(F::SYN, 1000 + i, 80),
                i as u64 * 60 * MS,
            );
            if let Some(d) = o.detection {
                fired = Some((i, d));
                break;
            }
        }
        let (i, d) = fired.expect("half-open fires");
        assert_eq!(d.rule, rules::SYN_HALF_OPEN);
        assert_eq!(d.value, 3);
        // SYNs 0,1,2 aged past 100 ms by the time SYN 4 arrives at 240 ms.
        assert_eq!(i, 4);
    }

    #[test]
    fn pending_table_is_bounded() {
        let cfg = SynFloodConfig {
            limit: u32::MAX,
            half_open_limit: u32::MAX,
            max_pending: 16,
            ..Default::default()
        };
        let mut st = State::default();
        for i in 0..10_000u32 {
            on_tcp(
                &cfg,
                &Sharder::DEFAULT,
                &mut st,
                &seg(F::SYN, (i % 60000) as u16, (i / 60000) as u16),
                i as u64,
            );
            // Retransmit the same SYN to create stale queue entries.
            on_tcp(
                &cfg,
                &Sharder::DEFAULT,
                &mut st,
                &seg(F::SYN, (i % 60000) as u16, (i / 60000) as u16),
                i as u64,
            );
        }
        let p = st.pending.as_ref().unwrap();
        assert!(p.by_endpoint.len() <= 16);
        assert!(p.order.len() <= 2 * 16 + 9);
    }
}
