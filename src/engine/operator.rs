//! Operator actions on a shard's state: block and unblock by hand, change
//! the allowlist, list the blocks. Like the rest of the engine they do no
//! I/O and read no clock: the caller hands the time (`now`) and who asked,
//! so they are driven deterministically in tests and, live, between
//! batches by the shard worker (`live/control.rs`), the same way a reload
//! reaches a shard. The kernel blocklist follows from the events they
//! queue (an alert with `block_until`, a `BlockEnd`) and from the control
//! thread, never from here.

use super::{Block, ShardEngine};
use crate::alert::{Alert, EndReason, Event, Operator};
use crate::config::Mode;
use crate::packet::{Proto, Ts};
use crate::rules::{self, RuleId};
use crate::shard::SourceKey;
use ipnet::IpNet;
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// One open block episode as an operator sees it (`flowgate ctl blocks`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockInfo {
    /// The blocked source.
    pub src: IpAddr,
    /// The rule that started the episode ([`rules::OPERATOR_BLOCK`] for a
    /// block made by hand).
    pub rule: RuleId,
    /// The rule's short name.
    pub name: String,
    /// When the episode started (ns since the epoch, packet time).
    pub since: Ts,
    /// When the block ends (exclusive).
    pub until: Ts,
    /// Packets the shard decided against the source since (the kernel
    /// drops the rest before userspace sees them).
    pub packets: u64,
    /// Wire bytes of those packets.
    pub bytes: u64,
    /// Who blocked it by hand, if an operator did.
    pub by: Option<Operator>,
}

/// Why an operator action was refused; the message says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// The source is allowlisted: the XDP program would pass it anyway.
    #[error("{0} is allowlisted (block.allowlist or `ctl allow add`): remove it from the allowlist first (`flowgate ctl allow del CIDR`)")]
    Allowlisted(IpAddr),
    /// The block would end before it starts.
    #[error("block of {0} would end in the past: give a positive --ttl")]
    NoTime(IpAddr),
    /// The engine's rule book lacks the operator rule (cannot happen with
    /// the built-in book).
    #[error("the rule book has no operator_block rule ({})", rules::OPERATOR_BLOCK)]
    NoRule,
}

/// Whether `ip` (an IPv4-mapped IPv6 address as IPv4) is inside `net`.
pub fn net_contains(net: &IpNet, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    net.contains(&ip)
}

impl ShardEngine {
    /// Blocks `src` by hand from `now` until `until` (packet time; live,
    /// the wall clock), as the operator `by` asked. A source not yet
    /// blocked starts an episode under [`rules::OPERATOR_BLOCK`]: one alert
    /// (with `block_until`, which the live sink puts into the kernel
    /// blocklist), its detector state dropped. A source already blocked
    /// keeps its episode, which now ends at `until` and names `by`.
    /// Returns the episode as it stands. Refused for an allowlisted source
    /// (the kernel would pass it) and for `until <= now`.
    ///
    /// Feed it only sources of this shard, like frames.
    pub fn operator_block(
        &mut self,
        src: IpAddr,
        now: Ts,
        until: Ts,
        by: Arc<Operator>,
    ) -> Result<BlockInfo, OperatorError> {
        if until <= now {
            return Err(OperatorError::NoTime(src));
        }
        if self.cfg.is_allowlisted(src) {
            return Err(OperatorError::Allowlisted(src));
        }
        let meta = self
            .rules
            .book
            .get(rules::OPERATOR_BLOCK)
            .cloned()
            .ok_or(OperatorError::NoRule)?;
        let key = SourceKey::from(src);
        self.next_expiry = self.next_expiry.min(until);
        if let Some(b) = self.blocks.touch(key, now) {
            b.expires = until;
            b.by = Some(by);
            let b = b.clone();
            return Ok(self.info(key, &b));
        }
        self.sources.remove(key);
        let block = Block {
            rule: rules::OPERATOR_BLOCK,
            started: now,
            start_idx: 0,
            expires: until,
            packets: 0,
            bytes: 0,
            by: Some(by.clone()),
        };
        let info = self.info(key, &block);
        if let Some((old_key, old)) = self.blocks.insert_weighted(key, now, block, |b| b.packets) {
            self.end_episode(old_key, old, now, EndReason::Evicted);
        }
        self.stats
            .rules
            .entry(rules::OPERATOR_BLOCK)
            .or_default()
            .episodes += 1;
        let unspecified = match src {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let why = if by.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", by.reason)
        };
        self.events.push(Event::Alert(Alert {
            ts: now,
            pcap_cnt: 0,
            src,
            dst: unspecified,
            src_port: 0,
            dst_port: 0,
            proto: Proto::Other(0),
            rule: meta,
            blocked: self.cfg.engine.mode == Mode::Prevent,
            metric: "operator",
            value: 1,
            threshold: 0,
            window: None,
            reason: format!("blocked by operator {}{why}", by.describe()),
            block_until: Some(until),
            sources: None,
        }));
        Ok(info)
    }

    /// Ends the open episodes of every source in `net` at `now` (end
    /// reason `operator`, naming `by`), whatever started them. Returns the
    /// episodes ended, in source order. Sources of other shards are simply
    /// not here: hand every shard the same call.
    pub fn operator_unblock(&mut self, net: IpNet, now: Ts, by: Arc<Operator>) -> Vec<BlockInfo> {
        let keys: Vec<SourceKey> = self
            .blocks
            .iter()
            .filter(|(k, _)| net_contains(&net, k.ip()))
            .map(|(k, _)| *k)
            .collect();
        self.end_blocks(keys, now, EndReason::Operator, Some(by))
    }

    /// Ends the blocks of `keys` at `now` for `reason`, in source order;
    /// returns them as they stood.
    fn end_blocks(
        &mut self,
        mut keys: Vec<SourceKey>,
        now: Ts,
        reason: EndReason,
        by: Option<Arc<Operator>>,
    ) -> Vec<BlockInfo> {
        keys.sort_unstable();
        let mut ended = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(b) = self.blocks.remove(key) {
                let mut info = self.info(key, &b);
                info.until = now;
                ended.push(info);
                self.end_episode_by(key, b, now, reason, by.clone());
            }
        }
        ended
    }

    /// Replaces the allowlist (`block.allowlist`) with `nets`: every
    /// tracked source's allowlist bit is re-evaluated, and the open
    /// episodes of sources it now covers end at `now` (end reason
    /// `allowlisted`, naming `by`). Returns those episodes, in source
    /// order. The rest of the configuration is kept; a later reload
    /// replaces the list again (the live control thread re-applies the
    /// operator's changes to what the file says).
    pub fn set_allowlist(
        &mut self,
        nets: Vec<IpNet>,
        now: Ts,
        by: Option<Arc<Operator>>,
    ) -> Vec<BlockInfo> {
        let mut cfg = (*self.cfg).clone();
        cfg.block.allowlist = nets;
        self.cfg = Arc::new(cfg);
        self.recheck_allowlist();
        self.allowlist_pending = false;
        self.end_allowlisted(now, by)
    }

    /// The allowlist in force.
    pub fn allowlist(&self) -> &[IpNet] {
        &self.cfg.block.allowlist
    }

    /// Every open block episode of this shard, in source order.
    pub fn blocks(&self) -> Vec<BlockInfo> {
        let mut v: Vec<BlockInfo> = self.blocks.iter().map(|(k, b)| self.info(*k, b)).collect();
        v.sort_unstable_by_key(|i| SourceKey::from(i.src));
        v
    }

    fn info(&self, key: SourceKey, b: &Block) -> BlockInfo {
        BlockInfo {
            src: key.ip(),
            rule: b.rule,
            name: self.rules.book.name(b.rule).to_string(),
            since: b.started,
            until: b.expires,
            packets: b.packets,
            bytes: b.bytes,
            by: b.by.as_deref().cloned(),
        }
    }

    /// Re-evaluates the cached allowlist bit of every tracked source.
    pub(super) fn recheck_allowlist(&mut self) {
        let keys: Vec<SourceKey> = self.sources.iter().map(|(k, _)| *k).collect();
        for key in keys {
            let allowed = self.cfg.is_allowlisted(key.ip());
            if let Some(st) = self.sources.get_mut(key) {
                st.allowlisted = allowed;
            }
        }
    }

    /// Ends, at `now`, the episodes of sources the allowlist covers.
    pub(super) fn end_allowlisted(&mut self, now: Ts, by: Option<Arc<Operator>>) -> Vec<BlockInfo> {
        if self.cfg.block.allowlist.is_empty() {
            return Vec::new();
        }
        let keys: Vec<SourceKey> = self
            .blocks
            .iter()
            .filter(|(k, _)| self.cfg.is_allowlisted(k.ip()))
            .map(|(k, _)| *k)
            .collect();
        self.end_blocks(keys, now, EndReason::Allowlisted, by)
    }
}
