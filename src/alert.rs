//! Alert and block-episode records, and their EVE JSON shape.
//!
//! One `Alert` when a source starts a block episode (or, in detect mode,
//! would have); one `BlockEnd` when the episode ends, carrying the packets
//! and bytes it dropped. Both render as one JSON line whose fields follow
//! Suricata's EVE alert so existing tooling reads them.

use crate::config::Mode;
use crate::packet::{Proto, Ts, NANOS_PER_SEC};
use crate::rules::RuleMeta;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// A rule fired on a packet. For behavioural rules and `block` signatures
/// this starts a block episode (and says until when); `drop` and `alert`
/// signature rules raise one per flow. One EVE `alert` line
/// ([`Alert::to_eve`]).
#[derive(Clone, Debug)]
pub struct Alert {
    /// Packet time of the packet that fired (EVE `timestamp`).
    pub ts: Ts,
    /// 1-based index of the packet in its capture (EVE `pcap_cnt`).
    pub pcap_cnt: u64,
    /// Source address of the packet: the source blocked.
    pub src: IpAddr,
    /// Destination address of the packet.
    pub dst: IpAddr,
    /// Source port; 0 without ports (EVE writes ports for TCP and UDP only).
    pub src_port: u16,
    /// Destination port; 0 without ports.
    pub dst_port: u16,
    /// Transport protocol (EVE `proto`).
    pub proto: Proto,
    /// The rule that fired, shared with the rule book (EVE `alert.*`).
    pub rule: Arc<RuleMeta>,
    /// The packet was dropped (`alert.action` "blocked"), else forwarded.
    pub blocked: bool,
    /// What was measured (`icmp_echo_requests`, `tcp_syns`, `tcp_flags`,
    /// `signature`, ...): EVE `flowgate.metric`.
    pub metric: &'static str,
    /// The measured value that crossed the threshold (`flowgate.value`).
    pub value: u64,
    /// The limit `value` exceeded; 0 for rules that fire on one packet.
    pub threshold: u64,
    /// The window `value` was counted over, if any (`flowgate.window_ms`).
    pub window: Option<Duration>,
    /// Human explanation with the numbers (EVE `alert.reason`).
    pub reason: String,
    /// Packet time the source's block ends (exclusive), if it was blocked.
    pub block_until: Option<Ts>,
    /// Estimated distinct sources, for a per-destination (victim) alert;
    /// its `src` is then the unspecified address (`flowgate.distinct_sources`).
    pub sources: Option<u64>,
}

/// Why an episode ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// TTL elapsed (packet time).
    Expired,
    /// The blocklist was full and this was the oldest entry.
    Evicted,
    /// The input ended while the block was still active.
    EndOfInput,
    /// An operator unblocked the source (`flowgate ctl unblock`); the
    /// [`BlockEnd::by`] record says who and why.
    Operator,
    /// The source became allowlisted (`flowgate ctl allow add`, or a
    /// reloaded `block.allowlist`) while blocked.
    Allowlisted,
}

impl EndReason {
    /// Name in EVE `block.end_reason` and the audit log's `end_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::Evicted => "evicted",
            EndReason::EndOfInput => "end_of_input",
            EndReason::Operator => "operator",
            EndReason::Allowlisted => "allowlisted",
        }
    }
}

/// The end of a block episode: how long it lasted and what was decided
/// against the source meanwhile. One EVE `flowgate_block` line
/// ([`BlockEnd::to_eve`]).
#[derive(Clone, Debug)]
pub struct BlockEnd {
    /// When the episode ended: the expiry for `Expired`, else the packet
    /// time at which it was cut short.
    pub ts: Ts,
    /// The source that was blocked.
    pub src: IpAddr,
    /// The rule that started the episode.
    pub rule: Arc<RuleMeta>,
    /// The mode in force when the episode ended: EVE `block.action` is
    /// "blocked" in prevent mode, "allowed" in detect mode.
    pub mode: Mode,
    /// Packet time of the packet that started the episode.
    pub started: Ts,
    /// `pcap_cnt` of the packet that started the episode.
    pub start_pcap_cnt: u64,
    /// Why the episode ended.
    pub reason: EndReason,
    /// Packets and bytes attributed to the episode after the one that
    /// started it: dropped in prevent mode, forwarded but counted in detect.
    /// Live, only frames that reached the shard: once the source is in the
    /// kernel blocklist, the XDP program drops its frames before userspace.
    pub packets: u64,
    /// Wire bytes of those packets.
    pub bytes: u64,
    /// Who ended the episode, for [`EndReason::Operator`] and
    /// [`EndReason::Allowlisted`] (EVE `block.ended_by`).
    pub by: Option<Arc<Operator>>,
}

/// Who asked for an operator action and why: the audit trail of a change
/// made through the control socket (or a configuration reload).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Operator {
    /// The requesting process's user ID (SO_PEERCRED), if a person asked.
    pub uid: Option<u32>,
    /// The user name of `uid`, or what made the change (`config reload`).
    pub user: String,
    /// The reason given, possibly empty.
    pub reason: String,
}

impl Operator {
    /// An action of the configuration itself (a SIGHUP reload).
    pub fn config_reload() -> Operator {
        Operator {
            uid: None,
            user: "config reload".into(),
            reason: "block.allowlist changed".into(),
        }
    }

    /// `root (uid 0)`, `config reload`: for messages.
    pub fn describe(&self) -> String {
        match self.uid {
            Some(uid) => format!("{} (uid {uid})", self.user),
            None => self.user.clone(),
        }
    }

    /// The EVE object: `{"uid":0,"user":"root","reason":"..."}`.
    pub fn to_eve(&self) -> Value {
        json!({"uid": self.uid, "user": self.user, "reason": self.reason})
    }
}

/// What a shard reports besides verdicts. Logs are written in arrival
/// order (shards interleave); [`Event::order_key`] sorts them into packet
/// order, the same for every shard count.
#[derive(Clone, Debug)]
pub enum Event {
    /// A rule fired (a block episode started, or a signature matched).
    Alert(Alert),
    /// A block episode ended.
    BlockEnd(BlockEnd),
}

impl Event {
    /// Sort key: packets in capture order, an episode's end after its start.
    pub fn order_key(&self) -> (u64, u8) {
        match self {
            Event::Alert(a) => (a.pcap_cnt, 0),
            Event::BlockEnd(e) => (e.start_pcap_cnt, 1),
        }
    }

    /// The event as one EVE JSON object (one line of the alert log).
    pub fn to_eve(&self) -> Value {
        match self {
            Event::Alert(a) => a.to_eve(),
            Event::BlockEnd(e) => e.to_eve(),
        }
    }
}

fn action(mode: Mode) -> &'static str {
    match mode {
        Mode::Prevent => "blocked",
        Mode::Detect => "allowed",
    }
}

impl Alert {
    /// EVE `alert` object: Suricata's fields, `pcap_cnt`, and a `flowgate`
    /// object with the metric, value, threshold, window and block end.
    pub fn to_eve(&self) -> Value {
        let mut alert = json!({
            "action": if self.blocked { "blocked" } else { "allowed" },
            "gid": 1,
            "signature_id": self.rule.id,
            "rev": self.rule.rev,
            "signature": self.rule.msg,
            "category": self.rule.category,
            "severity": self.rule.severity,
            "metadata": { "flowgate_rule": [self.rule.name] },
        });
        let mut v = serde_json::Map::new();
        v.insert("timestamp".into(), eve_time(self.ts).into());
        v.insert("event_type".into(), "alert".into());
        v.insert("src_ip".into(), self.src.to_string().into());
        if matches!(self.proto, Proto::Tcp | Proto::Udp) {
            v.insert("src_port".into(), self.src_port.into());
        }
        v.insert("dest_ip".into(), self.dst.to_string().into());
        if matches!(self.proto, Proto::Tcp | Proto::Udp) {
            v.insert("dest_port".into(), self.dst_port.into());
        }
        v.insert("proto".into(), self.proto.eve_name().into());
        v.insert("pcap_cnt".into(), self.pcap_cnt.into());
        alert["reason"] = self.reason.clone().into();
        v.insert("alert".into(), alert);
        let mut fg = json!({
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "window_ms": self.window.map(|w| w.as_millis() as u64),
        });
        if let Some(t) = self.block_until {
            fg["block_until"] = eve_time(t).into();
        }
        if let Some(n) = self.sources {
            fg["distinct_sources"] = n.into();
        }
        v.insert("flowgate".into(), fg);
        Value::Object(v)
    }
}

impl BlockEnd {
    /// EVE object of `event_type` `flowgate_block`: the episode's start,
    /// duration, end reason and counts under `block`.
    pub fn to_eve(&self) -> Value {
        let mut v = json!({
            "timestamp": eve_time(self.ts),
            "event_type": "flowgate_block",
            "src_ip": self.src.to_string(),
            "pcap_cnt": self.start_pcap_cnt,
            "block": {
                "state": "ended",
                "end_reason": self.reason.as_str(),
                "action": action(self.mode),
                "signature_id": self.rule.id,
                "signature": self.rule.msg,
                "started": eve_time(self.started),
                "duration_ms": self.ts.saturating_sub(self.started) / 1_000_000,
                "packets": self.packets,
                "bytes": self.bytes,
            }
        });
        if let Some(by) = &self.by {
            v["block"]["ended_by"] = by.to_eve();
        }
        v
    }
}

/// Suricata's timestamp format: `2026-11-21T23:59:01.123456+0000`.
pub fn eve_time(ts: Ts) -> String {
    let secs = (ts / NANOS_PER_SEC) as i64;
    let nanos = (ts % NANOS_PER_SEC) as u32;
    match chrono::DateTime::from_timestamp(secs, nanos) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.6f+0000").to_string(),
        None => format!("{secs}.{nanos:09}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_format() {
        assert_eq!(
            eve_time(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456+0000"
        );
    }
}
