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

#[derive(Clone, Debug)]
pub struct Alert {
    pub ts: Ts,
    /// 1-based index of the packet in its capture (EVE `pcap_cnt`).
    pub pcap_cnt: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: Proto,
    pub rule: Arc<RuleMeta>,
    /// The packet was dropped (`alert.action` "blocked"), else forwarded.
    pub blocked: bool,
    pub metric: &'static str,
    pub value: u64,
    pub threshold: u64,
    pub window: Option<Duration>,
    pub reason: String,
    /// Packet time the source's block ends (exclusive), if it was blocked.
    pub block_until: Option<Ts>,
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
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::Evicted => "evicted",
            EndReason::EndOfInput => "end_of_input",
        }
    }
}

#[derive(Clone, Debug)]
pub struct BlockEnd {
    /// When the episode ended: the expiry for `Expired`, else the packet
    /// time at which it was cut short.
    pub ts: Ts,
    pub src: IpAddr,
    pub rule: Arc<RuleMeta>,
    pub mode: Mode,
    pub started: Ts,
    /// `pcap_cnt` of the packet that started the episode.
    pub start_pcap_cnt: u64,
    pub reason: EndReason,
    /// Packets and bytes attributed to the episode after the one that
    /// started it: dropped in prevent mode, forwarded but counted in detect.
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug)]
pub enum Event {
    Alert(Alert),
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
        v.insert("flowgate".into(), fg);
        Value::Object(v)
    }
}

impl BlockEnd {
    pub fn to_eve(&self) -> Value {
        json!({
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
        })
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
