//! Where a packet's verdict is made: the per-shard engine.
//!
//! A `ShardEngine` owns all state of the sources hashed to its shard: the
//! detector tables and the mirror of the blocklist. It is handed frames and
//! their packet time and returns a verdict; it does no I/O and reads no
//! clock. `analyze` (PCAP) and `live` (AF_XDP) drive the same code.

use crate::alert::{Alert, BlockEnd, EndReason, Event, Operator};
use crate::config::{Config, Mode, Unfollowable};
use crate::detect::{self, Detection, SourceState};
use crate::frag;
use crate::http::params::{self, BodyValues, Place, Value};
use crate::http::{self, Norm};
use crate::memo::{self, Memo};
use crate::packet::{self, Frame, LinkType, Malformed, Packet, Ts};
use crate::packet::{Proto, TcpFlags};
use crate::rules::{self, RuleId, RuleMeta};
use crate::ruleset::Ruleset;
use crate::shard::{Sharder, SourceKey};
use crate::signature::{Action, Buffer, Hit, RequestScan, Scanner, ScratchError};
use crate::sqli;
use crate::stream::{
    Budget, Event as StreamEvent, FlowKey, FlowState, HttpFlow, Limits, Lost, Placed,
};
use crate::table::{BoundedTable, TableStats};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One captured frame as handed to a shard: borrowed bytes plus what the
/// engine needs to know about them. The engine does not keep the borrow
/// past [`ShardEngine::process`].
#[derive(Clone, Copy, Debug)]
pub struct RawFrame<'a> {
    /// 1-based position of the frame in its capture: EVE `pcap_cnt` in the
    /// alerts it causes, and the key events are ordered by. Live, a count
    /// of the frames this shard has processed, so not unique across shards.
    pub idx: u64,
    /// Packet time, ns since the Unix epoch: the PCAP record time offline,
    /// the wall clock at RX live. The engine's only clock: windows, block
    /// TTLs and idle timeouts all run on it.
    pub ts: Ts,
    /// How `data` is framed (the capture's link type; always Ethernet live).
    pub link: LinkType,
    /// The captured bytes from the link-layer header on. May be shorter
    /// than `wire_len` (snaplen); the engine tolerates that.
    pub data: &'a [u8],
    /// Length on the wire; more than `data.len()` if the capture was cut.
    /// Byte counters (stats, episodes, metrics) count this, not `data.len()`.
    pub wire_len: u32,
}

/// What happens to a frame: forwarded unchanged, or dropped under a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward the frame (live: transmit it unchanged on the other port).
    /// Every frame gets this in detect mode, whatever was decided.
    Allow,
    /// Do not forward the frame. Names the rule that decided, as alerts,
    /// metrics and `--verdicts` do. Only returned in prevent mode.
    Drop(RuleId),
}

/// Counters of one shard since it started; summed across shards (with
/// [`Stats::add`]) for reports, published as deltas for metrics. Packet
/// counts are frames; byte counts are wire lengths ([`RawFrame::wire_len`]).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Frames handed to [`ShardEngine::process`], whatever they were.
    pub packets: u64,
    /// Wire bytes of those frames.
    pub bytes: u64,
    /// Frames that got [`Verdict::Allow`] (in detect mode, every frame).
    pub allowed: u64,
    /// Frames that got [`Verdict::Drop`] (prevent mode only).
    pub dropped: u64,
    /// Wire bytes of the dropped frames.
    pub dropped_bytes: u64,
    /// Frames with no IPv4/IPv6 layer (ARP, LLDP, ...): allowed uninspected.
    pub non_ip: u64,
    /// IP fragments, first fragments included ([`Packet::fragment`]): held
    /// for reassembly (IPv4, and IPv6 with the Fragment header first) and
    /// inspected as whole datagrams; other IPv6 layouts pass the blocklist
    /// check but no detector or signature.
    pub fragments: u64,
    /// Frames the capture cut short (snaplen): decoded as far as they go.
    pub capture_truncated: u64,
    /// Frames from sources in `block.allowlist`, allowed uninspected.
    pub allowlisted: u64,
    /// Frames that failed to decode, by [`Malformed::name`] kind. They are
    /// dropped (under [`rules::MALFORMED`]) only with `engine.drop_malformed`.
    pub malformed: BTreeMap<&'static str, u64>,
    /// Per rule: packets decided against it (dropped, or would-be dropped in
    /// detect mode) and episodes it started. A signature rule with action
    /// `alert` counts its matching packet here too, though it is forwarded.
    pub rules: BTreeMap<RuleId, RuleCount>,
    /// The per-source detector state table (`tables.sources`).
    pub sources_table: TableStats,
    /// The blocklist mirror (`block.capacity`); an eviction ends an episode
    /// early.
    pub blocklist_table: TableStats,
    /// The HTTP flow table (`signatures.flows`).
    pub flows_table: TableStats,
    /// HTTP request heads read (each scanned once).
    pub http_requests: u64,
    /// HTTP body bytes inspected (chunked coding removed).
    pub http_body_bytes: u64,
    /// Flows whose requests could no longer be followed, by
    /// [`Lost::label`]: `not_http` and `tunnel` are not HTTP to begin
    /// with; the rest fall under `signatures.unfollowable`.
    pub http_lost: BTreeMap<&'static str, u64>,
    /// Flows evicted from a full table bucket while they mattered (in the
    /// middle of a request, or dropped).
    pub http_evicted_busy: u64,
    /// Request bodies longer than the prefix Suricata body rules verify
    /// (100 KiB, Suricata's request-body-limit): the rest was matched by
    /// the streaming signatures only.
    pub rule_body_truncated: u64,
    /// Requests not verified by Suricata body rules because the shard's
    /// hold budget for them was spent.
    pub rule_body_unverified: u64,
    /// IP datagrams reassembled from fragments (then inspected whole).
    pub fragments_reassembled: u64,
    /// Datagrams whose fragments did not all arrive within 30 s.
    pub fragments_timed_out: u64,
    /// Most bytes this shard's flows buffered at once (heads being read,
    /// out-of-order segments; bounded by `signatures.buffer_budget`).
    /// Summed over shards it bounds the total.
    pub http_buffer_peak: u64,
    /// Out-of-order segments not held: past `signatures.max_ooo_bytes` or
    /// `max_ooo_segments` for the flow, or the shard's `buffer_budget`.
    pub ooo_overflow: u64,
    /// Hyperscan scans that failed: request data that was not inspected.
    pub signature_scan_errors: u64,
    /// Inspections skipped because the same bytes were found clean before
    /// (`crate::memo`): a measure of how much the memos save.
    pub skipped_clean: SkippedClean,
    /// Packets to a destination not counted per destination because the
    /// shard already counted `detect.victim.max_victims` in that epoch.
    pub victim_overflow: u64,
}

/// Inspections skipped because their bytes were found clean before
/// (see [`Stats::skipped_clean`]).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct SkippedClean {
    /// Request targets not scanned again.
    pub targets: u64,
    /// Header lines not scanned again.
    pub header_lines: u64,
    /// Parameter values the structural SQL detector did not judge again.
    pub values: u64,
}

impl SkippedClean {
    /// Adds another shard's counts into these.
    pub fn add(&mut self, o: &SkippedClean) {
        self.targets += o.targets;
        self.header_lines += o.header_lines;
        self.values += o.values;
    }

    /// Each count with its `what` label in
    /// `flowgate_inspection_skipped_total`.
    pub fn labelled(&self) -> [(&'static str, u64); 3] {
        [
            ("target", self.targets),
            ("header_line", self.header_lines),
            ("value", self.values),
        ]
    }
}

/// What one rule decided in one shard (see [`Stats::rules`]).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RuleCount {
    /// Packets decided against the rule, the ones that started an episode
    /// included.
    pub packets: u64,
    /// Wire bytes of those packets.
    pub bytes: u64,
    /// Alerts the rule raised: block episodes it started, plus one per flow
    /// for signature rules whose action is `drop` or `alert`.
    pub episodes: u64,
}

impl Stats {
    /// Adds `o`'s counters into these (totals across shards, or a shard's
    /// final counts into a running total).
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
        self.flows_table.add(&o.flows_table);
        self.http_requests += o.http_requests;
        self.http_body_bytes += o.http_body_bytes;
        for (k, v) in &o.http_lost {
            *self.http_lost.entry(k).or_default() += v;
        }
        self.http_evicted_busy += o.http_evicted_busy;
        self.http_buffer_peak += o.http_buffer_peak;
        self.fragments_reassembled += o.fragments_reassembled;
        self.rule_body_truncated += o.rule_body_truncated;
        self.rule_body_unverified += o.rule_body_unverified;
        self.fragments_timed_out += o.fragments_timed_out;
        self.ooo_overflow += o.ooo_overflow;
        self.signature_scan_errors += o.signature_scan_errors;
        self.skipped_clean.add(&o.skipped_clean);
        self.victim_overflow += o.victim_overflow;
    }

    /// Frames that failed to decode, all kinds together.
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
    /// Who blocked the source by hand (`operator_block`); `None` for a
    /// detector's block.
    by: Option<Arc<Operator>>,
}

mod operator;
pub use operator::{net_contains, BlockInfo, OperatorError};

/// The verdict engine of one shard. It owns all state of the sources
/// hashed to its shard — detector counters, the mirror of the blocklist,
/// the HTTP flows of its clients — and decides every frame it is handed.
///
/// One engine per shard thread, no locks: feed it only frames whose source
/// maps to its shard ([`crate::shard::shard_of`]); frames without a
/// readable source may go to any shard. It does no I/O and reads no clock
/// (time is [`RawFrame::ts`]), so the same frames in the same order give
/// the same verdicts and events offline and live, for any shard count.
///
/// Lifecycle: [`new`](Self::new); [`process`](Self::process) per frame,
/// draining [`take_events`](Self::take_events) after each batch;
/// [`reload`](Self::reload) between frames when the configuration
/// changes; [`finish`](Self::finish) once when the input ends.
pub struct ShardEngine {
    cfg: Arc<Config>,
    rules: Arc<Ruleset>,
    sharder: Sharder,
    ttl_ns: u64,
    sources: BoundedTable<SourceKey, SourceState>,
    blocks: BoundedTable<SourceKey, Block>,
    /// HTTP flows whose client is in this shard.
    flows: BoundedTable<FlowKey, Box<Flow>>,
    /// Bytes the shard's flows buffer (heads, out-of-order segments).
    budget: Budget,
    /// IP datagrams being reassembled from fragments.
    frags: frag::Reassembler,
    /// The structural SQL detector's state.
    structural: Structural,
    /// The rule it names; `None` when `signatures.sqli_structural` is off.
    structural_meta: Option<Arc<RuleMeta>>,
    scanner: Option<Scanner>,
    limits: Limits,
    stats: Stats,
    events: Vec<Event>,
    /// No block expires before this (a lower bound: blocks that ended early
    /// leave it stale, and `handle_timeout` then recomputes it).
    next_expiry: Ts,
    /// When the idle sources and flows are next swept.
    next_sweep: Ts,
    /// Per-destination counts of this shard's sources, by (epoch start,
    /// destination), until the next timer tick hands them over.
    victims: std::collections::HashMap<
        (Ts, std::net::IpAddr),
        crate::detect::victim::VictimCounts,
        ahash::RandomState,
    >,
    /// The allowlist changed in `set_config`: the next `handle_timeout`
    /// ends the episodes of sources it now covers.
    allowlist_pending: bool,
}

/// How often `handle_timeout` sweeps idle table entries (packet time).
pub const SWEEP_INTERVAL_NS: Ts = packet::NANOS_PER_SEC;

/// One HTTP flow: its reassembly and framing, and the inspection state of
/// its current request. Kept boxed in the flow table: it is about 480
/// bytes, and a table slot that held it inline was copied on every insert,
/// removal and table growth; a box is one allocation per flow instead.
struct Flow {
    http: HttpFlow,
    scan: RequestScan,
    /// Cuts the current request's body into parameter values.
    values: BodyValues,
}

impl Flow {
    fn new(http: HttpFlow) -> Box<Flow> {
        Box::new(Flow {
            http,
            scan: RequestScan::default(),
            values: BodyValues::default(),
        })
    }
}

/// The structural SQL detector and its decode buffers (one per shard).
#[derive(Default)]
struct Structural {
    detector: sqli::Detector,
    decoded: Vec<u8>,
    scratch: http::Scratch,
    /// Values judged clean, keyed by how they are decoded and their raw
    /// bytes: the judgement is a pure function of the two, so a repeat
    /// (a browser's `User-Agent`, `page=1`) is skipped; cookie values never
    /// (credentials, see `crate::memo`).
    memo: Memo,
    key: Vec<u8>,
}

impl Structural {
    /// Decodes a raw parameter value as its application would and judges
    /// it. A hit blocks the source, like the built-in signatures.
    fn judge(&mut self, v: Value<'_>, meta: &Arc<RuleMeta>) -> Option<Hit> {
        let place = v.place;
        let how = match place {
            Place::Query | Place::Cookie | Place::Form => Norm::FORM,
            Place::Header => Norm::PLAIN,
            Place::Json => Norm::JSON,
        };
        self.key.clear();
        // Cookie values are credentials: never kept (`crate::memo`).
        if v.raw.len() < memo::MAX_KEY && place != Place::Cookie {
            // The key's first byte is how the value is decoded.
            self.key
                .push(u8::from(how.plus_is_space) | u8::from(how.json) << 1);
            self.key.extend_from_slice(v.raw);
            if self.memo.check(&self.key) {
                return None;
            }
        }
        self.decoded.clear();
        http::decode(v.raw, how, &mut self.decoded, &mut self.scratch);
        let Some(f) = self.detector.detect(&self.decoded) else {
            if !self.key.is_empty() {
                self.memo.insert(&self.key);
            }
            return None;
        };
        let named = if v.name.is_empty() {
            String::new()
        } else {
            format!(" ({})", String::from_utf8_lossy(v.name))
        };
        Some(Hit {
            meta: meta.clone(),
            action: Action::Block,
            reason: format!(
                "a {} value{named} forms SQL in {} context (fingerprint {})",
                place.name(),
                f.context.name(),
                f.fingerprint
            ),
            buffer: match place {
                Place::Query => Buffer::Uri,
                Place::Cookie | Place::Header => Buffer::Headers,
                Place::Form | Place::Json => Buffer::Body,
            },
            excerpt: f.tokens,
        })
    }
}

/// What the stream inspection decided for one segment.
enum StreamOutcome {
    Allow,
    /// The flow was dropped earlier: drop this packet too.
    FlowDropped(RuleId),
    /// A signature matched.
    Hit(Hit),
    /// A head whose body length could be read two ways.
    Smuggling(&'static str),
    /// The flow cannot be followed from here.
    Lost(Lost),
    /// An out-of-order segment past the bounds, dropped under
    /// `unfollowable = "drop"` (TCP retransmits it later).
    DropSegment,
}

/// What parsing some in-order bytes of a flow found.
enum Parsed {
    More,
    Hit(Hit),
    Smuggling(&'static str),
    Lost(Lost),
}

/// Frames and inspects `input`, the next in-order bytes of `flow`: each
/// head is scanned once when complete, each body byte once as it passes.
/// Counts a flow evicted from a full bucket while it still mattered
/// (mid-request, or dropped).
fn count_eviction(stats: &mut Stats, evicted: Option<(FlowKey, Box<Flow>)>) {
    if evicted.is_some_and(|(_, old)| old.http.eviction_weight() > 0) {
        stats.http_evicted_busy += 1;
    }
}

/// The structural detector, when enabled, and the rule its hits name.
type StructuralRef<'a> = Option<(&'a mut Structural, &'a Arc<RuleMeta>)>;

fn parse_stream(
    flow: &mut Flow,
    scanner: &mut Scanner,
    mut sq: StructuralRef<'_>,
    stats: &mut Stats,
    mut input: &[u8],
    lim: &Limits,
) -> Parsed {
    let structural = sq.is_some();
    loop {
        // The structural detector's first finding among this step's values.
        let mut found = None;
        let mut judge = |v: Value<'_>| {
            if found.is_none() {
                if let Some((s, meta)) = sq.as_mut() {
                    found = s.judge(v, meta);
                }
            }
        };
        let hit = match flow.http.next(&mut input, lim) {
            StreamEvent::More => return Parsed::More,
            StreamEvent::Lost(l) => return Parsed::Lost(l),
            StreamEvent::Head(h) => {
                stats.http_requests += 1;
                if let Some(why) = h.smuggling {
                    return Parsed::Smuggling(why);
                }
                let buf = flow.http.head_bytes();
                if structural {
                    params::head_values(buf, &h, &mut judge);
                    flow.values = BodyValues::new(&h);
                }
                scanner.head(&mut flow.scan, buf, &h)
            }
            StreamEvent::Body(d) => {
                stats.http_body_bytes += d.len() as u64;
                if structural {
                    flow.values.push(d, &mut judge);
                }
                if flow.http.body_complete() {
                    scanner.body_last(&mut flow.scan, d)
                } else {
                    scanner.body(&mut flow.scan, d)
                }
            }
            StreamEvent::End => {
                if structural {
                    flow.values.finish(&mut judge);
                }
                scanner.end(&mut flow.scan)
            }
        };
        stats.signature_scan_errors += scanner.take_scan_errors();
        let (targets, lines) = scanner.take_skipped();
        stats.skipped_clean.targets += targets;
        stats.skipped_clean.header_lines += lines;
        if let Some((s, _)) = sq.as_mut() {
            stats.skipped_clean.values += s.memo.take_hits();
        }
        stats.rule_body_truncated += scanner.take_body_truncated();
        stats.rule_body_unverified += scanner.take_body_unverified();
        // A signature names the attack more precisely: it wins a tie.
        if let Some(hit) = hit.or(found) {
            return Parsed::Hit(hit);
        }
    }
}

impl ShardEngine {
    /// An engine with empty tables deciding with `cfg` and `rules`. Table
    /// sizes and idle timeouts (`tables.*`, `block.capacity`,
    /// `signatures.flows` and `flow_timeout`) are fixed here for the
    /// engine's life; a reload does not change them.
    ///
    /// Fails only if Hyperscan cannot allocate scratch for the signatures.
    pub fn new(cfg: Arc<Config>, rules: Arc<Ruleset>) -> Result<ShardEngine, ScratchError> {
        let sg = &cfg.signatures;
        let sharder = cfg.sharder();
        let mut e = ShardEngine {
            sharder,
            ttl_ns: cfg.block.ttl.as_nanos() as u64,
            sources: BoundedTable::new(
                cfg.tables.sources,
                cfg.tables.idle_timeout.as_nanos() as u64,
                sharder,
            ),
            // Blocks end by TTL, never by idleness.
            blocks: BoundedTable::new(cfg.block.capacity, u64::MAX, sharder),
            flows: BoundedTable::new(sg.flows, sg.flow_timeout.as_nanos() as u64, sharder),
            budget: Budget::new(sg.buffer_budget),
            frags: frag::Reassembler::new(frag::Limits::default()),
            structural: Structural::default(),
            structural_meta: None,
            scanner: None,
            limits: sg.limits(),
            stats: Stats::default(),
            events: Vec::new(),
            next_expiry: Ts::MAX,
            next_sweep: 0,
            // Order never matters (`take_victims` sorts); the seed keeps the
            // probe sequences secret.
            victims: std::collections::HashMap::with_hasher(sharder.map_hasher()),
            allowlist_pending: false,
            rules: Arc::new(Ruleset::builtin_only()),
            cfg,
        };
        e.set_rules(rules)?;
        Ok(e)
    }

    /// Swaps in a new rule set (hot reload) between packets. Detector,
    /// block and flow state are kept. On error (no Hyperscan scratch for the
    /// new set) the old rules stay in force.
    pub fn set_rules(&mut self, rules: Arc<Ruleset>) -> Result<(), ScratchError> {
        self.scanner = match &rules.signatures {
            Some(set) => Some(Scanner::new(set.clone())?),
            None => None,
        };
        self.rules = rules;
        self.refresh_structural();
        Ok(())
    }

    /// The structural detector runs where requests are inspected, when
    /// `signatures.sqli_structural` is on.
    fn refresh_structural(&mut self) {
        self.structural_meta = match (self.cfg.signatures.sqli_structural, &self.scanner) {
            (true, Some(_)) => self.rules.book.get(rules::SQLI_STRUCTURAL).cloned(),
            _ => None,
        };
    }

    /// Swaps in a new configuration (hot reload) between packets: new
    /// thresholds, windows, mode, TTL and HTTP limits apply to the next
    /// packet; detector, block and flow state are kept. Table sizes and
    /// timeouts are fixed at start (see `Config::reloadable_from`). A new
    /// `block.allowlist` re-evaluates every tracked source's allowlist bit
    /// now, and the next [`handle_timeout`](Self::handle_timeout) ends the
    /// open episodes of sources it covers (`allowlisted`); use
    /// [`set_allowlist`](Self::set_allowlist) to end them at once and say
    /// who asked.
    pub fn set_config(&mut self, cfg: Arc<Config>) {
        let sg = &cfg.signatures;
        self.ttl_ns = cfg.block.ttl.as_nanos() as u64;
        self.limits = sg.limits();
        let allowlist_changed = cfg.block.allowlist != self.cfg.block.allowlist;
        self.cfg = cfg;
        self.refresh_structural();
        if allowlist_changed {
            self.recheck_allowlist();
            // Blocks of newly allowlisted sources end at the next tick.
            self.allowlist_pending = true;
            self.next_expiry = 0;
        }
    }

    /// Both of the above, as a SIGHUP reload does: the new configuration
    /// always applies; if the new rules cannot get scratch, the error is
    /// logged and the old rules stay.
    pub fn reload(&mut self, cfg: Arc<Config>, rules: Arc<Ruleset>) {
        self.set_config(cfg);
        if let Err(e) = self.set_rules(rules) {
            tracing::error!("rule reload failed in a shard, keeping the old rules: {e}");
        }
    }

    /// Decides one frame and updates this shard's state and counters.
    ///
    /// In order: decode ([`packet::parse`]); a source whose block has not
    /// expired at `f.ts` is decided against its episode's rule before any
    /// detector runs (a block found expired ends its episode, dated at its
    /// expiry); allowlisted sources pass; then the behavioural detectors
    /// and, for TCP when signatures are loaded, HTTP request inspection. A
    /// behavioural detection or a `block` signature starts a block episode:
    /// one [`Alert`] event, and this and the source's later packets are
    /// decided against the rule until `block.ttl` of packet time passes. A
    /// `drop` signature drops the rest of its flow; an `alert` one only
    /// alerts.
    ///
    /// Non-IP frames are allowed; frames that fail to decode are counted
    /// and, with `engine.drop_malformed`, dropped under
    /// [`rules::MALFORMED`]. Malformed input is never a panic.
    pub fn process(&mut self, f: &RawFrame) -> Verdict {
        self.stats.packets += 1;
        self.stats.bytes += f.wire_len as u64;
        // The packet (about 70 bytes) is used by reference from here on:
        // each move into a new binding was a copy on every packet (about 20
        // instructions each in the steady-state probe).
        let parsed = packet::parse(f.link, f.data, f.wire_len);
        let pkt = match &parsed {
            Ok(Frame::Ip(p)) => p,
            Ok(Frame::NonIp) => {
                self.stats.non_ip += 1;
                return self.allow();
            }
            Err(m) => return self.malformed(*m, f.wire_len),
        };
        self.stats.fragments += pkt.fragment as u64;
        self.stats.capture_truncated += pkt.capture_truncated as u64;
        let key = SourceKey::from(pkt.src);
        // One hash for both per-source tables (same hasher, same key).
        let key_hash = self.sources.hash(&key);

        // A blocked source is dropped before any detector runs, as the XDP
        // program does live.
        // Touching marks the block used: it counts as hot when a full
        // blocklist bucket chooses what to evict.
        if let Some(b) = self.blocks.touch_hashed(key, key_hash, f.ts) {
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

        // A fragment waits for the rest of its datagram; the fragment that
        // completes it is decided as the whole datagram, so dropping it
        // leaves the receiver nothing to reassemble.
        let whole;
        let reassembled;
        let pkt = if pkt.fragment {
            match self.frags.add(f.link, f.data, f.ts) {
                frag::Outcome::Unsupported => pkt,
                frag::Outcome::Held => return self.allow(),
                frag::Outcome::Refused(_) => {
                    return self.malformed(Malformed::Fragment, f.wire_len)
                }
                frag::Outcome::Complete(w) => {
                    whole = w;
                    reassembled = match packet::parse(LinkType::RawIp, &whole, whole.len() as u32) {
                        Ok(Frame::Ip(p)) => p,
                        Ok(Frame::NonIp) => return self.allow(),
                        Err(m) => return self.malformed(m, f.wire_len),
                    };
                    &reassembled
                }
            }
        } else {
            pkt
        };

        let cfg = &self.cfg;
        let (st, _evicted) = self
            .sources
            .touch_or_insert_hashed(key, key_hash, f.ts, || SourceState {
                allowlisted: cfg.is_allowlisted(pkt.src),
                ..Default::default()
            });
        if st.allowlisted {
            self.stats.allowlisted += 1;
            return self.allow();
        }
        let mut completed = false;
        let found = detect::inspect(&cfg.detect, &self.sharder, st, pkt, f.ts, &mut completed);
        if self.cfg.detect.victim.enabled {
            self.count_victim(key, f, pkt, completed);
        }
        match found {
            Some(d) => self.start_episode(key, f, pkt, d),
            None if pkt.proto == Proto::Tcp && self.scanner.is_some() && !pkt.fragment => {
                self.inspect_stream(key, f, pkt)
            }
            None => self.allow(),
        }
    }

    /// Counts a SYN, a completed handshake or an echo request toward its
    /// destination's epoch (`detect::victim`).
    fn count_victim(&mut self, key: SourceKey, f: &RawFrame, pkt: &Packet, completed: bool) {
        use crate::detect::victim::Hit;
        let fl = pkt.tcp_flags;
        let hit = if pkt.proto == Proto::Tcp {
            if fl.has(TcpFlags::SYN) && !fl.any(TcpFlags::ACK | TcpFlags::RST) {
                Hit::Syn
            } else if completed {
                Hit::Completed
            } else {
                return;
            }
        } else if pkt.is_icmp_echo_request() {
            Hit::Echo
        } else {
            return;
        };
        let epoch = f.ts - f.ts % crate::detect::victim::EPOCH_NS;
        let full = self.victims.len() >= self.cfg.detect.victim.max_victims;
        let src = self.sharder.hash_one(key.0);
        match self.victims.get_mut(&(epoch, pkt.dst)) {
            Some(c) => c.add(hit, src, f.idx, f.ts),
            // A completion alone does not open a destination's slot.
            None if full || hit == Hit::Completed => {
                self.stats.victim_overflow += u64::from(hit != Hit::Completed)
            }
            None => self
                .victims
                .entry((epoch, pkt.dst))
                .or_default()
                .add(hit, src, f.idx, f.ts),
        }
    }

    /// HTTP request inspection for one TCP segment of a client.
    fn inspect_stream(&mut self, key: SourceKey, f: &RawFrame, pkt: &Packet) -> Verdict {
        let fl = pkt.tcp_flags;
        let fkey = FlowKey::new(pkt.src, pkt.dst, pkt.src_port, pkt.dst_port);
        if fl.has(TcpFlags::SYN) && !fl.any(TcpFlags::ACK | TcpFlags::RST) {
            // A (new) handshake: bytes will start at ISN + 1. Tracked from
            // the SYN only on HTTP ports (so a reordered first segment is
            // still placed); elsewhere a flow is picked up at its first
            // segment that starts a request, which keeps SYN floods and
            // TLS out of the flow table.
            if !self.cfg.signatures.http_ports.contains(&pkt.dst_port) {
                return self.allow();
            }
            let budget = &self.budget;
            let mut made = false;
            let (flow, evicted) = self.flows.touch_or_insert_weighted(
                fkey,
                f.ts,
                || {
                    made = true;
                    Flow::new(HttpFlow::from_syn(pkt.tcp_seq, budget))
                },
                |fl| fl.http.eviction_weight(),
            );
            // A SYN restarts a finished or idle flow (port reuse). It does
            // not restart one that is dropped or in the middle of a request:
            // a forged SYN would otherwise make the rest of that request look
            // like the start of a new, non-HTTP stream. (A flow just made
            // from this SYN is already what a restart would make.)
            if !made && flow.http.eviction_weight() == 0 {
                *flow = Flow::new(HttpFlow::from_syn(pkt.tcp_seq, budget));
            }
            count_eviction(&mut self.stats, evicted);
            return self.allow();
        }
        let closing = fl.any(TcpFlags::FIN | TcpFlags::RST);
        let outcome = self.stream_outcome(fkey, f.ts, pkt, closing);
        let held = self.budget.used() as u64;
        self.stats.http_buffer_peak = self.stats.http_buffer_peak.max(held);
        // A dropped flow stays until it idles out: a forged RST must not
        // turn its later segments into untracked ones.
        if closing
            && !matches!(
                outcome,
                StreamOutcome::FlowDropped(_) | StreamOutcome::Hit(_)
            )
        {
            self.flows.remove(fkey);
        }
        let hit = match outcome {
            StreamOutcome::Allow => return self.allow(),
            StreamOutcome::FlowDropped(rule) => return self.decide(rule, f.wire_len),
            StreamOutcome::DropSegment => return self.decide(rules::HTTP_UNFOLLOWABLE, f.wire_len),
            StreamOutcome::Hit(hit) => hit,
            StreamOutcome::Smuggling(why) => {
                let Some(meta) = self.rules.book.get(rules::HTTP_SMUGGLING).cloned() else {
                    return self.allow();
                };
                Hit {
                    meta,
                    action: Action::Drop,
                    reason: format!("request framing can be read two ways: {why}"),
                    buffer: Buffer::Request,
                    excerpt: String::new(),
                }
            }
            StreamOutcome::Lost(lost) => match self.lost_hit(lost) {
                Some(hit) => hit,
                None => return self.allow(),
            },
        };
        let d = Detection {
            rule: hit.meta.id,
            metric: "signature",
            value: 1,
            threshold: 0,
            window: None,
            reason: if hit.excerpt.is_empty() {
                hit.reason.clone()
            } else {
                format!(
                    "{}; matched in {}: \"{}\"",
                    hit.reason,
                    hit.buffer.name(),
                    hit.excerpt
                )
            },
        };
        match hit.action {
            Action::Block => self.start_episode(key, f, pkt, d),
            Action::Drop => {
                self.stats.rules.entry(d.rule).or_default().episodes += 1;
                self.push_alert(
                    f,
                    pkt,
                    &hit.meta,
                    d,
                    None,
                    self.cfg.engine.mode == Mode::Prevent,
                );
                self.decide(hit.meta.id, f.wire_len)
            }
            Action::Alert => {
                let r = self.stats.rules.entry(d.rule).or_default();
                r.episodes += 1;
                r.packets += 1;
                r.bytes += f.wire_len as u64;
                self.push_alert(f, pkt, &hit.meta, d, None, false);
                self.allow()
            }
        }
    }

    /// Counts a lost flow and, under `signatures.unfollowable`, the alert
    /// and verdict it gets (`None`: allowed without an alert).
    fn lost_hit(&mut self, lost: Lost) -> Option<Hit> {
        *self.stats.http_lost.entry(lost.label()).or_default() += 1;
        let action = match self.cfg.signatures.unfollowable {
            _ if !lost.is_policy() => return None,
            Unfollowable::Allow => return None,
            Unfollowable::Alert => Action::Alert,
            Unfollowable::Drop => Action::Drop,
        };
        Some(Hit {
            meta: self.rules.book.get(rules::HTTP_UNFOLLOWABLE)?.clone(),
            action,
            reason: format!("HTTP stream cannot be inspected: {}", lost.describe()),
            buffer: Buffer::Request,
            excerpt: String::new(),
        })
    }

    fn stream_outcome(
        &mut self,
        fkey: FlowKey,
        ts: Ts,
        pkt: &Packet,
        closing: bool,
    ) -> StreamOutcome {
        let budget = &self.budget;
        let flow = match self.flows.touch(fkey, ts) {
            Some(flow) => flow,
            None => {
                // Picked up mid-stream: at a segment that starts a request.
                // Other data on an HTTP port is the middle of a request whose
                // flow is gone (evicted, or older than us): say so, once.
                if pkt.payload.is_empty() {
                    return StreamOutcome::Allow;
                }
                let starts = crate::http::starts_request(pkt.payload) == Some(true);
                let ports = &self.cfg.signatures.http_ports;
                let untracked =
                    !starts && ports.contains(&pkt.dst_port) && !ports.contains(&pkt.src_port);
                if !starts && !untracked {
                    return StreamOutcome::Allow;
                }
                let (flow, evicted) = self.flows.touch_or_insert_weighted(
                    fkey,
                    ts,
                    || Flow::new(HttpFlow::from_data(pkt.tcp_seq, budget)),
                    |fl| fl.http.eviction_weight(),
                );
                count_eviction(&mut self.stats, evicted);
                if untracked {
                    let policy = self.cfg.signatures.unfollowable;
                    flow.http.finish(match policy {
                        Unfollowable::Drop => FlowState::Dropped(rules::HTTP_UNFOLLOWABLE),
                        _ => FlowState::Ignored,
                    });
                    return StreamOutcome::Lost(Lost::Untracked);
                }
                flow
            }
        };
        match flow.http.state {
            FlowState::Dropped(rule) => return StreamOutcome::FlowDropped(rule),
            FlowState::Ignored | FlowState::Alerted => return StreamOutcome::Allow,
            FlowState::Inspecting => {}
        }
        let Some(scanner) = self.scanner.as_mut() else {
            return StreamOutcome::Allow;
        };
        // Suricata thresholds count per source in packet time.
        scanner.set_packet(pkt.src, ts);
        let lim = &self.limits;
        let mut parsed = match flow.http.place(pkt.tcp_seq, pkt.payload, lim) {
            Placed::Old | Placed::Queued => Parsed::More,
            Placed::Overflow => {
                self.stats.ooo_overflow += 1;
                let prevent = self.cfg.engine.mode == Mode::Prevent;
                if prevent && self.cfg.signatures.unfollowable == Unfollowable::Drop {
                    // Not held, and not forwarded: the sender retransmits it
                    // once the gap before it has filled.
                    return StreamOutcome::DropSegment;
                }
                Parsed::Lost(Lost::OooOverflow)
            }
            Placed::InOrder(new) => {
                let meta = self.structural_meta.as_ref();
                let mut sq = meta.map(|m| (&mut self.structural, m));
                let mut p = parse_stream(flow, scanner, sq.take(), &mut self.stats, new, lim);
                while matches!(p, Parsed::More) {
                    let Some(more) = flow.http.pop_ready() else {
                        break;
                    };
                    let sq = meta.map(|m| (&mut self.structural, m));
                    p = parse_stream(flow, scanner, sq, &mut self.stats, &more, lim);
                }
                p
            }
        };
        if closing && matches!(parsed, Parsed::More) && flow.http.has_gap() {
            parsed = Parsed::Lost(Lost::Gap);
        }
        match parsed {
            Parsed::More => StreamOutcome::Allow,
            Parsed::Hit(hit) => {
                flow.http.finish(match hit.action {
                    Action::Alert => FlowState::Alerted,
                    Action::Drop | Action::Block => FlowState::Dropped(hit.meta.id),
                });
                flow.scan = RequestScan::default();
                StreamOutcome::Hit(hit)
            }
            Parsed::Smuggling(why) => {
                flow.http.finish(FlowState::Dropped(rules::HTTP_SMUGGLING));
                flow.scan = RequestScan::default();
                StreamOutcome::Smuggling(why)
            }
            Parsed::Lost(lost) => {
                let policy = self.cfg.signatures.unfollowable;
                flow.http.finish(match policy {
                    Unfollowable::Drop if lost.is_policy() => {
                        FlowState::Dropped(rules::HTTP_UNFOLLOWABLE)
                    }
                    _ => FlowState::Ignored,
                });
                flow.scan = RequestScan::default();
                StreamOutcome::Lost(lost)
            }
        }
    }

    /// When `handle_timeout` next has work: the earliest block expiry or
    /// idle sweep. Live workers call it when this time has passed; offline,
    /// the pipeline calls `handle_timeout` on a fixed packet-time grid.
    pub fn poll_timeout(&self) -> Ts {
        self.next_expiry.min(self.next_sweep)
    }

    /// Advances the engine to `now` without a packet (quinn-proto's
    /// pattern): blocks whose TTL has passed end (their `flowgate_block`
    /// record carries the expiry time), and idle sources and flows are
    /// forgotten. Deterministic: the result depends only on `now` and the
    /// packets before it, so every shard count decides the same when all
    /// shards are handed the same times.
    pub fn handle_timeout(&mut self, now: Ts) {
        self.frags.expire(now);
        if now >= self.next_expiry {
            if std::mem::take(&mut self.allowlist_pending) {
                self.end_allowlisted(now, None);
            }
            let mut due: Vec<SourceKey> = self
                .blocks
                .iter()
                .filter(|(_, b)| b.expires <= now)
                .map(|(k, _)| *k)
                .collect();
            due.sort_unstable();
            for key in due {
                if let Some(b) = self.blocks.remove(key) {
                    let expires = b.expires;
                    self.end_episode(key, b, expires, EndReason::Expired);
                }
            }
            self.next_expiry = self
                .blocks
                .iter()
                .map(|(_, b)| b.expires)
                .min()
                .unwrap_or(Ts::MAX);
        }
        if now >= self.next_sweep {
            self.sources.expire_all(now);
            self.flows.expire_all(now);
            self.next_sweep = now.saturating_add(SWEEP_INTERVAL_NS);
        }
    }

    /// Hands over the per-destination counts gathered since the last call,
    /// by epoch (sorted), for the merge across shards
    /// (`detect::victim::VictimMerger`).
    pub fn take_victims(&mut self) -> Vec<(Ts, crate::detect::victim::Partial)> {
        let mut all: Vec<((Ts, std::net::IpAddr), crate::detect::victim::VictimCounts)> =
            self.victims.drain().collect();
        all.sort_unstable_by_key(|(k, _)| *k);
        let mut out: Vec<(Ts, crate::detect::victim::Partial)> = Vec::new();
        for ((epoch, ip), c) in all {
            match out.last_mut() {
                Some((e, part)) if *e == epoch => part.push((ip, c)),
                _ => out.push((epoch, vec![(ip, c)])),
            }
        }
        out
    }

    /// Ends every episode still open when the input ends at `end`:
    /// expired ones as expired (at their expiry), the rest as cut short.
    /// Call once after the last frame, with the last packet time (offline)
    /// or the stop time (live). Queues one [`BlockEnd`] per episode, in
    /// source order, and empties the blocklist mirror.
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

    /// Alerts and episode ends produced since the last call, in the order
    /// they happened. The engine holds them until taken, without bound:
    /// drain after every batch.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Whether [`take_events`](Self::take_events) has anything to return,
    /// so a caller can skip the hand-off for a quiet batch.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// A copy of this shard's counters since it was created (cumulative),
    /// with the tables' counters filled in. Clones maps: call per batch or
    /// per publish interval, not per packet.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.sources_table = self.sources.stats;
        s.blocklist_table = self.blocks.stats;
        s.flows_table = self.flows.stats;
        s.fragments_reassembled = self.frags.completed;
        s.fragments_timed_out = self.frags.timed_out;
        s
    }

    /// HTTP flows held in the flow table now (a gauge for metrics).
    pub fn tracked_flows(&self) -> usize {
        self.flows.len()
    }

    /// Block episodes held in the blocklist mirror now. Includes blocks
    /// whose TTL has passed but that no packet of the source (nor
    /// [`finish`](Self::finish)) has ended yet: expiry is checked on use.
    pub fn blocked_sources(&self) -> usize {
        self.blocks.len()
    }

    /// Sources with detector state in this shard now (allowlisted ones
    /// included: they are remembered so the allowlist check runs once).
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
            by: None,
        };
        let expires = block.expires;
        self.next_expiry = self.next_expiry.min(expires);
        if let Some((old_key, old)) = self.blocks.insert_weighted(key, f.ts, block, |b| b.packets) {
            self.end_episode(old_key, old, f.ts, EndReason::Evicted);
        }
        self.stats.rules.entry(d.rule).or_default().episodes += 1;
        if let Some(meta) = self.rules.book.get(d.rule).cloned() {
            let blocked = self.cfg.engine.mode == Mode::Prevent;
            self.push_alert(f, pkt, &meta, d.clone(), Some(expires), blocked);
        }
        self.decide(d.rule, f.wire_len)
    }

    fn push_alert(
        &mut self,
        f: &RawFrame,
        pkt: &Packet,
        meta: &Arc<RuleMeta>,
        d: Detection,
        block_until: Option<Ts>,
        blocked: bool,
    ) {
        self.events.push(Event::Alert(Alert {
            ts: f.ts,
            pcap_cnt: f.idx,
            src: pkt.src,
            dst: pkt.dst,
            src_port: pkt.src_port,
            dst_port: pkt.dst_port,
            proto: pkt.proto,
            rule: meta.clone(),
            blocked,
            metric: d.metric,
            value: d.value,
            threshold: d.threshold,
            window: d.window,
            reason: d.reason,
            block_until,
            sources: None,
        }));
    }

    fn end_episode(&mut self, key: SourceKey, b: Block, ts: Ts, reason: EndReason) {
        self.end_episode_by(key, b, ts, reason, None);
    }

    /// Ends an episode, recording who ended it (operator actions).
    fn end_episode_by(
        &mut self,
        key: SourceKey,
        b: Block,
        ts: Ts,
        reason: EndReason,
        by: Option<Arc<Operator>>,
    ) {
        if let Some(meta) = self.rules.book.get(b.rule) {
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
                by,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(place: Place, raw: &[u8]) -> Value<'_> {
        Value {
            place,
            name: b"q",
            raw,
        }
    }

    /// The structural detector's memo skips a value judged clean before and
    /// nothing else: a hit is judged again each time, and the same bytes
    /// decoded another way (a JSON string rather than a query value) are
    /// judged afresh.
    #[test]
    fn structural_values_seen_clean_are_skipped_and_hits_never_are() {
        let book = rules::RuleBook::builtin();
        let meta = book.get(rules::SQLI_STRUCTURAL).expect("builtin rule");
        let mut s = Structural::default();
        let ua = b"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101";
        assert!(s.judge(value(Place::Header, ua), meta).is_none());
        assert!(s.judge(value(Place::Header, ua), meta).is_none());
        assert_eq!(s.memo.stats(), (1, 1));
        for _ in 0..2 {
            assert!(s
                .judge(value(Place::Query, b"1' OR '1'='1"), meta)
                .is_some());
        }
        assert_eq!(s.memo.stats(), (1, 1));
        // Cookie values are credentials: judged every time, never kept.
        for _ in 0..2 {
            assert!(s.judge(value(Place::Cookie, b"a81f9c"), meta).is_none());
        }
        assert_eq!(s.memo.stats(), (1, 1));
        // `\u0027` is a quote only in JSON.
        let escaped = br"x\u0027 OR \u0027a\u0027=\u0027a";
        assert!(s.judge(value(Place::Query, escaped), meta).is_none());
        assert!(s.judge(value(Place::Json, escaped), meta).is_some());
    }
}
