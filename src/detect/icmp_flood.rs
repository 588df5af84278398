//! ICMP echo flood: too many echo requests from one source in a window.

use super::{fmt_window, Detection, WindowCount};
use crate::packet::Ts;
use crate::rules;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// This detector's `[detect.*]` config section (owned here, so the
/// detector does not depend on the config module).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IcmpFloodConfig {
    /// Run this detector.
    pub enabled: bool,
    /// Echo requests allowed per window; one more fires.
    pub limit: u32,
    /// The counting window, in packet time: fixed, starting at a source's
    /// first request and restarting at its first request after it closes.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for IcmpFloodConfig {
    fn default() -> Self {
        IcmpFloodConfig {
            enabled: true,
            limit: 100,
            window: Duration::from_secs(1),
        }
    }
}

/// One source's state: its echo requests in the current window.
#[derive(Clone, Copy, Debug, Default)]
pub struct State {
    echo: WindowCount,
}

/// Counts one echo request from the source at packet time `now`. `Some`
/// once the window's count exceeds `limit` (the engine then blocks the
/// source, which clears this state).
pub fn on_echo_request(cfg: &IcmpFloodConfig, st: &mut State, now: Ts) -> Option<Detection> {
    let n = st.echo.hit(now, cfg.window);
    (n > cfg.limit).then(|| Detection {
        rule: rules::ICMP_FLOOD,
        metric: "icmp_echo_requests",
        value: n as u64,
        threshold: cfg.limit as u64,
        window: Some(cfg.window),
        reason: format!(
            "{n} ICMP echo requests within {} (limit {})",
            fmt_window(cfg.window),
            cfg.limit
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_on_the_packet_past_the_limit() {
        let cfg = IcmpFloodConfig {
            limit: 3,
            ..Default::default()
        };
        let mut st = State::default();
        for i in 0..3 {
            assert!(on_echo_request(&cfg, &mut st, i * 1_000_000).is_none());
        }
        let d = on_echo_request(&cfg, &mut st, 4_000_000).unwrap();
        assert_eq!((d.value, d.threshold), (4, 3));
        assert!(
            d.reason
                .contains("4 ICMP echo requests within 1s (limit 3)"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn slow_pings_never_fire() {
        let cfg = IcmpFloodConfig {
            limit: 3,
            ..Default::default()
        };
        let mut st = State::default();
        for i in 0..100u64 {
            assert!(on_echo_request(&cfg, &mut st, i * 400_000_000).is_none());
        }
    }
}
