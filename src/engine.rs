//! Where a packet's verdict is made: the per-shard engine.
//!
//! A `ShardEngine` owns all state of the sources hashed to its shard: the
//! detector tables and the mirror of the blocklist. It is handed frames and
//! their packet time and returns a verdict; it does no I/O and reads no
//! clock. `analyze` (PCAP) and `live` (AF_XDP) drive the same code.

use crate::alert::{Alert, BlockEnd, EndReason, Event};
use crate::config::{Config, Mode};
use crate::detect::{self, Detection, SourceState};
use crate::packet::{self, Frame, LinkType, Malformed, Packet, Ts};
use crate::rules::{self, RuleBook, RuleId};
use crate::shard::SourceKey;
use crate::table::{BoundedTable, TableStats};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One captured frame as handed to a shard.
#[derive(Clone, Copy, Debug)]
pub struct RawFrame<'a> {
    /// 1-based position in the capture (or RX sequence live).
    pub idx: u64,
    pub ts: Ts,
    pub link: LinkType,
    pub data: &'a [u8],
    /// Length on the wire; more than `data.len()` if the capture was cut.
    pub wire_len: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Drop(RuleId),
}

/// Counters of one shard; summed across shards for reports.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub packets: u64,
    pub bytes: u64,
    pub allowed: u64,
    pub dropped: u64,
    pub dropped_bytes: u64,
    pub non_ip: u64,
    pub fragments: u64,
    pub capture_truncated: u64,
    pub allowlisted: u64,
    pub malformed: BTreeMap<&'static str, u64>,
    /// Per rule: packets decided against it (dropped, or would-be dropped in
    /// detect mode) and episodes it started.
    pub rules: BTreeMap<RuleId, RuleCount>,
    pub sources_table: TableStats,
    pub blocklist_table: TableStats,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RuleCount {
    pub packets: u64,
    pub bytes: u64,
    pub episodes: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.allowed += o.allowed;
        self.dropped += o.dropped;
        self.dropped_bytes += o.dropped_bytes;
        self.non_ip += o.non_ip;
        self.fragments += o.fragments;
        self.capture_truncated += o.capture_truncated;
        self.allowlisted += o.allowlisted;
        for (k, v) in &o.malformed {
            *self.malformed.entry(k).or_default() += v;
        }
        for (k, v) in &o.rules {
            let r = self.rules.entry(*k).or_default();
            r.packets += v.packets;
            r.bytes += v.bytes;
            r.episodes += v.episodes;
        }
        self.sources_table.add(&o.sources_table);
        self.blocklist_table.add(&o.blocklist_table);
    }

    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }
}

/// An active block episode: the shard's mirror of one XDP blocklist entry.
#[derive(Clone, Debug)]
struct Block {
    rule: RuleId,
    started: Ts,
    start_idx: u64,
    expires: Ts,
    packets: u64,
    bytes: u64,
}

pub struct ShardEngine {
    cfg: Arc<Config>,
    rules: Arc<RuleBook>,
    ttl_ns: u64,
    sources: BoundedTable<SourceState>,
    blocks: BoundedTable<Block>,
    stats: Stats,
    events: Vec<Event>,
}

impl ShardEngine {
    pub fn new(cfg: Arc<Config>, rules: Arc<RuleBook>) -> ShardEngine {
        ShardEngine {
            ttl_ns: cfg.block.ttl.as_nanos() as u64,
            sources: BoundedTable::new(
                cfg.tables.sources,
                cfg.tables.idle_timeout.as_nanos() as u64,
            ),
            // Blocks end by TTL (checked on use), never by idleness.
            blocks: BoundedTable::new(cfg.block.capacity, u64::MAX),
            stats: Stats::default(),
            events: Vec::new(),
            cfg,
            rules,
        }
    }

    /// Decides one frame.
    pub fn process(&mut self, f: &RawFrame) -> Verdict {
        self.stats.packets += 1;
        self.stats.bytes += f.wire_len as u64;
        let pkt = match packet::parse(f.link, f.data, f.wire_len) {
            Ok(Frame::Ip(p)) => p,
            Ok(Frame::NonIp) => {
                self.stats.non_ip += 1;
                return self.allow();
            }
            Err(m) => return self.malformed(m, f.wire_len),
        };
        self.stats.fragments += pkt.fragment as u64;
        self.stats.capture_truncated += pkt.capture_truncated as u64;
        let key = SourceKey::from(pkt.src);

        // A blocked source is dropped before any detector runs, as the XDP
        // program does live.
        if let Some(b) = self.blocks.get_mut(key) {
            if f.ts < b.expires {
                b.packets += 1;
                b.bytes += f.wire_len as u64;
                let rule = b.rule;
                return self.decide(rule, f.wire_len);
            }
            if let Some(b) = self.blocks.remove(key) {
                let expires = b.expires;
                self.end_episode(key, b, expires, EndReason::Expired);
            }
        }

        let cfg = &self.cfg;
        let (st, _evicted) = self.sources.touch_or_insert(key, f.ts, || SourceState {
            allowlisted: cfg.is_allowlisted(pkt.src),
            ..Default::default()
        });
        if st.allowlisted {
            self.stats.allowlisted += 1;
            return self.allow();
        }
        match detect::inspect(&cfg.detect, st, &pkt, f.ts) {
            None => self.allow(),
            Some(d) => self.start_episode(key, f, &pkt, d),
        }
    }

    /// Ends every episode still open when the input ends at `end`:
    /// expired ones as expired (at their expiry), the rest as cut short.
    pub fn finish(&mut self, end: Ts) {
        for (key, b) in self.blocks.drain_sorted() {
            let (ts, why) = if b.expires <= end {
                (b.expires, EndReason::Expired)
            } else {
                (end, EndReason::EndOfInput)
            };
            self.end_episode(key, b, ts, why);
        }
    }

    /// Alerts and episode ends produced since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.sources_table = self.sources.stats;
        s.blocklist_table = self.blocks.stats;
        s
    }

    pub fn blocked_sources(&self) -> usize {
        self.blocks.len()
    }

    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    fn allow(&mut self) -> Verdict {
        self.stats.allowed += 1;
        Verdict::Allow
    }

    /// A packet decided against `rule`: dropped in prevent mode, counted and
    /// forwarded in detect mode.
    fn decide(&mut self, rule: RuleId, len: u32) -> Verdict {
        let r = self.stats.rules.entry(rule).or_default();
        r.packets += 1;
        r.bytes += len as u64;
        match self.cfg.engine.mode {
            Mode::Prevent => {
                self.stats.dropped += 1;
                self.stats.dropped_bytes += len as u64;
                Verdict::Drop(rule)
            }
            Mode::Detect => self.allow(),
        }
    }

    fn malformed(&mut self, m: Malformed, len: u32) -> Verdict {
        *self.stats.malformed.entry(m.name()).or_default() += 1;
        if self.cfg.engine.drop_malformed {
            self.decide(rules::MALFORMED, len)
        } else {
            self.allow()
        }
    }

    fn start_episode(
        &mut self,
        key: SourceKey,
        f: &RawFrame,
        pkt: &Packet,
        d: Detection,
    ) -> Verdict {
        // The block supersedes the detector state; a source that returns
        // after its TTL starts from clean counters.
        self.sources.remove(key);
        let block = Block {
            rule: d.rule,
            started: f.ts,
            start_idx: f.idx,
            expires: f.ts.saturating_add(self.ttl_ns),
            packets: 0,
            bytes: 0,
        };
        let expires = block.expires;
        if let Some((old_key, old)) = self.blocks.insert(key, f.ts, block) {
            self.end_episode(old_key, old, f.ts, EndReason::Evicted);
        }
        self.stats.rules.entry(d.rule).or_default().episodes += 1;
        if let Some(meta) = self.rules.get(d.rule) {
            self.events.push(Event::Alert(Alert {
                ts: f.ts,
                pcap_cnt: f.idx,
                src: pkt.src,
                dst: pkt.dst,
                src_port: pkt.src_port,
                dst_port: pkt.dst_port,
                proto: pkt.proto,
                rule: meta.clone(),
                mode: self.cfg.engine.mode,
                metric: d.metric,
                value: d.value,
                threshold: d.threshold,
                window: d.window,
                reason: d.reason,
                block_until: expires,
            }));
        }
        self.decide(d.rule, f.wire_len)
    }

    fn end_episode(&mut self, key: SourceKey, b: Block, ts: Ts, reason: EndReason) {
        if let Some(meta) = self.rules.get(b.rule) {
            self.events.push(Event::BlockEnd(BlockEnd {
                ts,
                src: key.ip(),
                rule: meta.clone(),
                mode: self.cfg.engine.mode,
                started: b.started,
                start_pcap_cnt: b.start_idx,
                reason,
                packets: b.packets,
                bytes: b.bytes,
            }));
        }
    }
}
