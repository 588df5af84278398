//! Repeated attempts: one source trying the same destination port again and
//! again without ever completing a handshake — a closed port answering with
//! RST, or a filtered one answering nothing. Brute-force connectors and
//! misbehaving scanners do this; a port scan (many ports) and a SYN flood
//! (a high rate) do not cover it.
//!
//! An attempt is a SYN without ACK to (destination, port). The source's own
//! final ACK of a handshake to that endpoint (seen by `syn_flood`) clears
//! it: the port answered. The RST of a closed port comes from the other
//! side (another shard), so "unanswered" here means "never completed",
//! which needs only the source's packets and stays shard-identical.
//!
//! State is a handful of endpoints per source (`max_targets`); a new one
//! replaces the least recently tried, so memory stays bounded whatever the
//! source sends.

use super::{fmt_window, hash_endpoint, Detection};
use crate::packet::{Packet, TcpFlags as F, Ts};
use crate::rules;
use crate::shard::Sharder;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The `[detect.repeated_attempts]` config section.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RepeatedAttemptsConfig {
    /// Run this detector.
    pub enabled: bool,
    /// Attempts to one endpoint allowed per window; one more fires. Above a
    /// client's own SYN retransmissions (Linux sends at most 7 per connect).
    pub limit: u32,
    /// Window the attempts are counted over, from the first attempt.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Endpoints tracked per source.
    pub max_targets: usize,
}

impl Default for RepeatedAttemptsConfig {
    fn default() -> Self {
        RepeatedAttemptsConfig {
            enabled: true,
            limit: 20,
            window: Duration::from_secs(60),
            max_targets: 8,
        }
    }
}

/// Per-source state: the endpoints being retried.
#[derive(Debug, Default)]
pub struct State {
    /// Allocated on the first attempt; at most `max_targets` long. Boxed:
    /// 8 bytes in every source's slot instead of a `Vec`'s 24, most sources
    /// never retrying anything.
    #[allow(clippy::box_collection)]
    targets: Option<Box<Vec<Target>>>,
}

#[derive(Clone, Copy, Debug)]
struct Target {
    /// Keyed hash of (destination, port).
    endpoint: u64,
    /// First attempt of the current window.
    start: Ts,
    /// Latest attempt: the least recent target is replaced first.
    last: Ts,
    attempts: u32,
}

/// The SYN-flood rate limit, when that detector runs: attempts made at a
/// flood's pace during its first window are left to it, so a flood on one
/// port is reported as a flood (and a slower stream of retries as this).
#[derive(Clone, Copy, Debug)]
pub struct FloodPace {
    /// SYNs allowed per window (`detect.syn_flood.limit`).
    pub limit: u32,
    /// `detect.syn_flood.window`.
    pub window: Duration,
}

/// Looks at one TCP segment of the source. `completed` is true when it is
/// the final ACK of a handshake the source started (from `syn_flood`).
pub fn on_tcp(
    cfg: &RepeatedAttemptsConfig,
    flood: Option<FloodPace>,
    hasher: &Sharder,
    st: &mut State,
    pkt: &Packet,
    now: Ts,
    completed: bool,
) -> Option<Detection> {
    let f = pkt.tcp_flags;
    let attempt = f.has(F::SYN) && !f.any(F::ACK | F::RST);
    if !attempt && !completed {
        return None;
    }
    let endpoint = hash_endpoint(hasher, pkt.dst, pkt.dst_port, 0);
    if completed {
        if let Some(t) = st.targets.as_mut() {
            t.retain(|t| t.endpoint != endpoint);
        }
        return None;
    }
    let targets = st.targets.get_or_insert_with(Default::default);
    let window = cfg.window.as_nanos().min(u64::MAX as u128) as u64;
    let i = match targets.iter().position(|t| t.endpoint == endpoint) {
        Some(i) => i,
        None => {
            let fresh = Target {
                endpoint,
                start: now,
                last: now,
                attempts: 0,
            };
            if targets.len() < cfg.max_targets.max(1) {
                targets.push(fresh);
                targets.len() - 1
            } else {
                // Least recently tried goes; ties: the earlier slot.
                let (i, _) = targets
                    .iter()
                    .enumerate()
                    .min_by_key(|(i, t)| (t.last, *i))?;
                targets[i] = fresh;
                i
            }
        }
    };
    let t = &mut targets[i];
    if now.saturating_sub(t.start) >= window {
        t.start = now;
        t.attempts = 0;
    }
    t.last = now;
    t.attempts = t.attempts.saturating_add(1);
    if t.attempts <= cfg.limit {
        return None;
    }
    if let Some(f) = flood {
        // attempts / elapsed > limit / window, in integers (no division).
        let fw = f.window.as_nanos().min(u64::MAX as u128) as u64;
        let elapsed = now.saturating_sub(t.start);
        let flood_pace =
            (t.attempts as u128) * (fw as u128) > (f.limit as u128) * (elapsed as u128);
        if elapsed < fw && flood_pace {
            return None;
        }
    }
    Some(Detection {
        rule: rules::REPEATED_ATTEMPTS,
        metric: "attempts_same_port",
        value: t.attempts as u64,
        threshold: cfg.limit as u64,
        window: Some(cfg.window),
        reason: format!(
            "{} connection attempts to {}:{} within {}, none completed (limit {})",
            t.attempts,
            pkt.dst,
            pkt.dst_port,
            fmt_window(cfg.window),
            cfg.limit
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Packet;

    const MS: Ts = 1_000_000;

    fn seg(flags: u8, dst: &str, port: u16) -> Packet<'static> {
        Packet::test_tcp(flags, dst, port, 40000)
    }

    fn cfg() -> RepeatedAttemptsConfig {
        RepeatedAttemptsConfig {
            limit: 5,
            ..Default::default()
        }
    }

    #[test]
    fn fires_one_past_the_limit_on_one_port() {
        let (c, mut st) = (cfg(), State::default());
        for i in 0..5 {
            let d = on_tcp(
                &c,
                None,
                &Sharder::DEFAULT,
                &mut st,
                &seg(F::SYN, "198.19.0.1", 23),
                i * MS,
                false,
            );
            assert!(d.is_none(), "attempt {i}");
        }
        let d = on_tcp(
            &c,
            None,
            &Sharder::DEFAULT,
            &mut st,
            &seg(F::SYN, "198.19.0.1", 23),
            5 * MS,
            false,
        )
        .expect("sixth attempt fires");
        assert_eq!(
            (d.rule, d.value, d.threshold),
            (rules::REPEATED_ATTEMPTS, 6, 5)
        );
        assert!(d.reason.contains("198.19.0.1:23"), "{}", d.reason);
    }

    #[test]
    fn a_completed_handshake_clears_and_the_window_restarts() {
        let (c, mut st) = (cfg(), State::default());
        let h = &Sharder::DEFAULT;
        for i in 0..5 {
            assert!(on_tcp(
                &c,
                None,
                h,
                &mut st,
                &seg(F::SYN, "198.19.0.1", 80),
                i * MS,
                false
            )
            .is_none());
        }
        // The port answered: the source finished a handshake.
        assert!(on_tcp(
            &c,
            None,
            h,
            &mut st,
            &seg(F::ACK, "198.19.0.1", 80),
            6 * MS,
            true
        )
        .is_none());
        for i in 0..5 {
            assert!(on_tcp(
                &c,
                None,
                h,
                &mut st,
                &seg(F::SYN, "198.19.0.1", 80),
                (10 + i) * MS,
                false
            )
            .is_none());
        }
        // A minute later the count starts over.
        let later = 61_000 * MS;
        assert!(on_tcp(
            &c,
            None,
            h,
            &mut st,
            &seg(F::SYN, "198.19.0.1", 80),
            later,
            false
        )
        .is_none());
    }

    #[test]
    fn a_flood_on_one_port_is_left_to_the_flood_detector() {
        let (c, mut st) = (cfg(), State::default());
        let pace = Some(FloodPace {
            limit: 200,
            window: Duration::from_secs(1),
        });
        // 1000/s: faster than 200/s, within the first second: not ours.
        for i in 0..300u64 {
            let d = on_tcp(
                &c,
                pace,
                &Sharder::DEFAULT,
                &mut st,
                &seg(F::SYN, "198.19.0.1", 80),
                i * MS,
                false,
            );
            assert!(d.is_none(), "attempt {i}");
        }
        // Slower than the flood limit (50/s): ours, at the sixth attempt.
        let mut st = State::default();
        let fired: Vec<u64> = (0..10u64)
            .filter(|i| {
                on_tcp(
                    &c,
                    pace,
                    &Sharder::DEFAULT,
                    &mut st,
                    &seg(F::SYN, "198.19.0.1", 80),
                    i * 20 * MS,
                    false,
                )
                .is_some()
            })
            .collect();
        assert_eq!(fired.first(), Some(&5));
    }

    #[test]
    fn state_stays_bounded_and_other_ports_do_not_add_up() {
        let (c, mut st) = (cfg(), State::default());
        let h = &Sharder::DEFAULT;
        for i in 0..1000u16 {
            let d = on_tcp(
                &c,
                None,
                h,
                &mut st,
                &seg(F::SYN, "198.19.0.1", 1000 + i),
                i as u64 * MS,
                false,
            );
            assert!(d.is_none(), "distinct ports are the port scan's job");
        }
        assert_eq!(st.targets.as_ref().map(|t| t.len()), Some(c.max_targets));
    }
}
