//! Rule identities: every decision names one of these. IDs are stable
//! across releases; they are what operators grep for and build dashboards on.
//!
//! A leaf: ids, metadata and the book of every rule loaded. What compiles
//! signature rules registers them here (`signature::SignatureSet::compile`);
//! `ruleset` ties the two together for the engine.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A rule's stable number, Suricata's `sid` (EVE `alert.signature_id`).
/// Behavioural rules are 91000xx, built-in SQL injection signatures
/// 91010xx; loaded rules bring their own, unique across all.
pub type RuleId = u32;

/// Metadata carried into alerts (Suricata EVE `alert.*` fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleMeta {
    /// Stable ID (`alert.signature_id`).
    pub id: RuleId,
    /// Revision of the rule's definition (`alert.rev`).
    pub rev: u32,
    /// Short machine name, also the metrics label.
    pub name: Cow<'static, str>,
    /// `alert.signature`.
    pub msg: Cow<'static, str>,
    /// `alert.category` (Suricata classtype description).
    pub category: Cow<'static, str>,
    /// 1 = high … 4 = informational, as in Suricata.
    pub severity: u8,
    /// What fires it, for `flowgate rules list`. Config keys appear as
    /// `{section.key}` and are filled in with the running values by
    /// [`RuleMeta::fires_when`]: defaults live only in `config.rs`.
    pub fires_when: Cow<'static, str>,
}

impl RuleMeta {
    /// `fires_when` with each `{key}` written as `key (value)`, the value
    /// looked up by `value_of` (the effective configuration). A key it does
    /// not know stays as written.
    pub fn fires_when(&self, value_of: impl Fn(&str) -> Option<String>) -> String {
        let mut out = String::with_capacity(self.fires_when.len() + 32);
        let mut rest: &str = &self.fires_when;
        while let Some(open) = rest.find('{') {
            let Some(len) = rest[open..].find('}') else {
                break;
            };
            let key = &rest[open + 1..open + len];
            out.push_str(&rest[..open]);
            match value_of(key) {
                Some(v) => out.push_str(&format!("{key} ({v})")),
                None => out.push_str(key),
            }
            rest = &rest[open + len + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// `icmp_flood`: a source's ICMP/ICMPv6 echo requests exceed
/// `detect.icmp_flood.limit` within its window.
pub const ICMP_FLOOD: RuleId = 9_100_001;
/// `syn_flood`: a source's SYNs (without ACK) exceed
/// `detect.syn_flood.limit` within its window.
pub const SYN_FLOOD: RuleId = 9_100_010;
/// `syn_half_open`: too many of a source's handshakes never get its final
/// ACK (`detect.syn_flood.half_open_*`).
pub const SYN_HALF_OPEN: RuleId = 9_100_011;
/// `scan_null`: a TCP segment with none of the six classic flags.
pub const SCAN_NULL: RuleId = 9_100_020;
/// `scan_xmas`: a TCP segment with FIN, PSH and URG.
pub const SCAN_XMAS: RuleId = 9_100_021;
/// `scan_fin`: a TCP segment with FIN but no ACK.
pub const SCAN_FIN: RuleId = 9_100_022;
/// `scan_syn_fin`: a TCP segment with SYN and FIN together.
pub const SCAN_SYN_FIN: RuleId = 9_100_023;
/// `port_scan`: a source probes too many ports or host:port pairs without
/// completing handshakes (`detect.port_scan.*`).
pub const PORT_SCAN: RuleId = 9_100_030;
/// `repeated_attempts`: one source retrying one closed or unanswered port.
pub const REPEATED_ATTEMPTS: RuleId = 9_100_040;
/// `victim_syn_flood`: SYNs to one destination from many sources.
pub const VICTIM_SYN_FLOOD: RuleId = 9_100_050;
/// `victim_icmp_flood`: echo requests to one destination from many sources.
pub const VICTIM_ICMP_FLOOD: RuleId = 9_100_051;
/// Handshakes to one destination left half-open, all sources together.
pub const VICTIM_HALF_OPEN: RuleId = 9_100_052;
/// `malformed`: the rule a frame that fails to decode is dropped under
/// (with `engine.drop_malformed`). Counted, never alerted.
pub const MALFORMED: RuleId = 9_100_090;
/// `operator_block`: a source blocked by hand (`flowgate ctl block`); the
/// alert's reason says who and why.
pub const OPERATOR_BLOCK: RuleId = 9_100_099;
/// `http_request_smuggling`: a request whose body length can be read two
/// ways (CL+TE, conflicting or invalid Content-Length, an obfuscated
/// Transfer-Encoding); the rest of its flow is dropped.
pub const HTTP_SMUGGLING: RuleId = 9_102_001;
/// `http_unfollowable`: an HTTP flow that can no longer be followed, under
/// `signatures.unfollowable` = `alert` or `drop`.
pub const HTTP_UNFOLLOWABLE: RuleId = 9_102_002;
/// `sqli_structural`: a request parameter that tokenizes as an injected
/// SQL construct (the structural detector in `sqli`).
pub const SQLI_STRUCTURAL: RuleId = 9_101_100;

const DOS: &str = "Attempted Denial of Service";
const RECON: &str = "Attempted Information Leak";
const SCAN: &str = "Detection of a Network Scan";

/// Metadata of the behavioural rules, in ID order: every rule book starts
/// with these ([`RuleBook::builtin`]).
pub static BUILTIN: &[RuleMeta] = &[
    RuleMeta {
        id: ICMP_FLOOD,
        rev: 1,
        name: Cow::Borrowed("icmp_flood"),
        msg: Cow::Borrowed("FLOWGATE DOS ICMP echo request flood"),
        category: Cow::Borrowed(DOS),
        severity: 2,
        fires_when: Cow::Borrowed("a source sends more than {detect.icmp_flood.limit} ICMP/ICMPv6 echo requests within {detect.icmp_flood.window}"),
    },
    RuleMeta {
        id: SYN_FLOOD,
        rev: 1,
        name: Cow::Borrowed("syn_flood"),
        msg: Cow::Borrowed("FLOWGATE DOS TCP SYN flood"),
        category: Cow::Borrowed(DOS),
        severity: 2,
        fires_when: Cow::Borrowed("a source sends more than {detect.syn_flood.limit} SYNs without ACK within {detect.syn_flood.window}"),
    },
    RuleMeta {
        id: SYN_HALF_OPEN,
        rev: 1,
        name: Cow::Borrowed("syn_half_open"),
        msg: Cow::Borrowed("FLOWGATE DOS TCP half-open connection flood"),
        category: Cow::Borrowed(DOS),
        severity: 2,
        fires_when: Cow::Borrowed("more than {detect.syn_flood.half_open_limit} of a source's handshakes get no final ACK within {detect.syn_flood.half_open_timeout}, counted over {detect.syn_flood.half_open_window}"),
    },
    RuleMeta {
        id: SCAN_NULL,
        rev: 1,
        name: Cow::Borrowed("scan_null"),
        msg: Cow::Borrowed("FLOWGATE SCAN TCP NULL scan (no flags)"),
        category: Cow::Borrowed(RECON),
        severity: 2,
        fires_when: Cow::Borrowed("a TCP segment with no flags set (nmap -sN); immediate"),
    },
    RuleMeta {
        id: SCAN_XMAS,
        rev: 1,
        name: Cow::Borrowed("scan_xmas"),
        msg: Cow::Borrowed("FLOWGATE SCAN TCP XMAS scan (FIN+PSH+URG)"),
        category: Cow::Borrowed(RECON),
        severity: 2,
        fires_when: Cow::Borrowed("a TCP segment with FIN, PSH and URG set (nmap -sX); immediate"),
    },
    RuleMeta {
        id: SCAN_FIN,
        rev: 1,
        name: Cow::Borrowed("scan_fin"),
        msg: Cow::Borrowed("FLOWGATE SCAN TCP FIN without ACK"),
        category: Cow::Borrowed(RECON),
        severity: 2,
        fires_when: Cow::Borrowed("a TCP segment with FIN but not ACK (nmap -sF); immediate"),
    },
    RuleMeta {
        id: SCAN_SYN_FIN,
        rev: 1,
        name: Cow::Borrowed("scan_syn_fin"),
        msg: Cow::Borrowed("FLOWGATE SCAN TCP SYN+FIN"),
        category: Cow::Borrowed(RECON),
        severity: 2,
        fires_when: Cow::Borrowed("a TCP segment with both SYN and FIN set; immediate"),
    },
    RuleMeta {
        id: PORT_SCAN,
        rev: 1,
        name: Cow::Borrowed("port_scan"),
        msg: Cow::Borrowed("FLOWGATE SCAN TCP port scan"),
        category: Cow::Borrowed(SCAN),
        severity: 2,
        fires_when: Cow::Borrowed("a source probes (SYN) more than {detect.port_scan.distinct_ports} distinct ports, or {detect.port_scan.distinct_pairs} host:port pairs, that it never completes a handshake with, within {detect.port_scan.window}"),
    },
    RuleMeta {
        id: REPEATED_ATTEMPTS,
        rev: 1,
        name: Cow::Borrowed("repeated_attempts"),
        msg: Cow::Borrowed("FLOWGATE SCAN TCP repeated attempts to one closed or unanswered port"),
        category: Cow::Borrowed(SCAN),
        severity: 3,
        fires_when: Cow::Borrowed("a source sends more than {detect.repeated_attempts.limit} SYNs to one destination port within {detect.repeated_attempts.window} without completing a handshake (closed port answering RST, or silence)"),
    },
    RuleMeta {
        id: VICTIM_SYN_FLOOD,
        rev: 1,
        name: Cow::Borrowed("victim_syn_flood"),
        msg: Cow::Borrowed("FLOWGATE DOS TCP SYN flood against one destination (distributed or spoofed)"),
        category: Cow::Borrowed(DOS),
        severity: 1,
        fires_when: Cow::Borrowed("all sources together send one destination more than {detect.victim.syn_rate} SYNs in a second of packet time, from at least {detect.victim.min_sources} distinct sources; sources are not blocked; live prevent mode switches on the victim's SYN guard in XDP (syn_guard = {detect.victim.syn_guard})"),
    },
    RuleMeta {
        id: VICTIM_HALF_OPEN,
        rev: 1,
        name: Cow::Borrowed("victim_half_open"),
        msg: Cow::Borrowed("FLOWGATE DOS TCP handshakes left half-open against one destination (distributed or spoofed)"),
        category: Cow::Borrowed(DOS),
        severity: 1,
        fires_when: Cow::Borrowed("all sources together start more than {detect.victim.half_open_rate} handshakes a second with one destination that they do not complete (SYNs minus final ACKs, a second of packet time), from at least {detect.victim.min_sources} distinct sources, while the SYN rate stays under {detect.victim.syn_rate}/s; sources are not blocked; live prevent mode switches on the victim's SYN guard"),
    },
    RuleMeta {
        id: VICTIM_ICMP_FLOOD,
        rev: 1,
        name: Cow::Borrowed("victim_icmp_flood"),
        msg: Cow::Borrowed("FLOWGATE DOS ICMP echo flood against one destination (distributed or spoofed)"),
        category: Cow::Borrowed(DOS),
        severity: 1,
        fires_when: Cow::Borrowed("all sources together send one destination more than {detect.victim.icmp_rate} ICMP echo requests in a second of packet time, from at least {detect.victim.min_sources} distinct sources; alert only, sources are not blocked"),
    },
    RuleMeta {
        id: MALFORMED,
        rev: 1,
        name: Cow::Borrowed("malformed"),
        msg: Cow::Borrowed("FLOWGATE DECODE malformed packet"),
        category: Cow::Borrowed("Generic Protocol Command Decode"),
        severity: 3,
        fires_when: Cow::Borrowed("a frame fails to decode (truncated or invalid headers) and {engine.drop_malformed}; counted by kind, never alerted"),
    },
    RuleMeta {
        id: OPERATOR_BLOCK,
        rev: 1,
        name: Cow::Borrowed("operator_block"),
        msg: Cow::Borrowed("FLOWGATE POLICY source blocked by an operator"),
        category: Cow::Borrowed("Misc activity"),
        severity: 3,
        fires_when: Cow::Borrowed("an operator blocks a source through the control socket (`flowgate ctl block IP`); the source is blocked until the TTL given there, {block.ttl} by default"),
    },
    RuleMeta {
        id: SQLI_STRUCTURAL,
        rev: 1,
        name: Cow::Borrowed("sqli_structural"),
        msg: Cow::Borrowed("FLOWGATE SQLi structure in a request parameter"),
        category: Cow::Borrowed("Web Application Attack"),
        severity: 1,
        fires_when: Cow::Borrowed("{signatures.sqli_structural} and a decoded parameter value (query, cookie, User-Agent/Referer/X-Forwarded-For, form or JSON body) tokenizes as SQL that breaks out of its context: a tautology after a closing quote, UNION SELECT, a stacked statement, blind-injection functions; the source is blocked for {block.ttl}"),
    },
    RuleMeta {
        id: HTTP_SMUGGLING,
        rev: 1,
        name: Cow::Borrowed("http_request_smuggling"),
        msg: Cow::Borrowed("FLOWGATE HTTP request smuggling (ambiguous message framing)"),
        category: Cow::Borrowed("Attempted Administrator Privilege Gain"),
        severity: 1,
        fires_when: Cow::Borrowed("a request head's body length can be read two ways (RFC 9112 §6.3): Content-Length with Transfer-Encoding, conflicting or invalid Content-Length, a final coding that is not chunked, whitespace or folding in a framing header; the rest of the flow is dropped"),
    },
    RuleMeta {
        id: HTTP_UNFOLLOWABLE,
        rev: 1,
        name: Cow::Borrowed("http_unfollowable"),
        msg: Cow::Borrowed("FLOWGATE HTTP stream cannot be inspected"),
        category: Cow::Borrowed("Generic Protocol Command Decode"),
        severity: 3,
        fires_when: Cow::Borrowed("an HTTP flow can no longer be followed (non-HTTP after a request, a head past {signatures.max_head}, broken chunked coding, an unknowable body length, out-of-order data past {signatures.max_ooo_bytes} or the shard's {signatures.buffer_budget}, a gap at close) and {signatures.unfollowable} is alert or drop"),
    },
];

/// All rules the engine can name, by ID.
#[derive(Debug)]
pub struct RuleBook {
    by_id: BTreeMap<RuleId, Arc<RuleMeta>>,
}

impl RuleBook {
    /// A book of the behavioural rules only; loading signatures adds theirs
    /// ([`RuleBook::insert`]).
    pub fn builtin() -> RuleBook {
        RuleBook {
            by_id: BUILTIN
                .iter()
                .map(|m| (m.id, Arc::new(m.clone())))
                .collect(),
        }
    }

    /// Metadata of rule `id`, if this book has it.
    pub fn get(&self, id: RuleId) -> Option<&Arc<RuleMeta>> {
        self.by_id.get(&id)
    }

    /// Short name of rule `id` (for labels and summaries), or `"unknown"`
    /// for an ID this book does not have.
    pub fn name(&self, id: RuleId) -> &str {
        self.by_id
            .get(&id)
            .map(|m| m.name.as_ref())
            .unwrap_or("unknown")
    }

    /// Adds a rule; an existing rule with the same ID is an error.
    pub fn insert(&mut self, meta: RuleMeta) -> Result<Arc<RuleMeta>, RuleId> {
        if self.by_id.contains_key(&meta.id) {
            return Err(meta.id);
        }
        let m = Arc::new(meta);
        self.by_id.insert(m.id, m.clone());
        Ok(m)
    }

    /// Every rule, in ID order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<RuleMeta>> {
        self.by_id.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_when_fills_in_running_values() {
        let m = BUILTIN.iter().find(|m| m.id == ICMP_FLOOD).unwrap();
        let text = m.fires_when(|k| (k == "detect.icmp_flood.limit").then(|| "7".to_string()));
        assert_eq!(
            text,
            "a source sends more than detect.icmp_flood.limit (7) ICMP/ICMPv6 echo requests \
             within detect.icmp_flood.window"
        );
        assert!(!text.contains('{'));
    }
}
