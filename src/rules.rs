//! Rule identities: every decision names one of these. IDs are stable
//! across releases; they are what operators grep for and build dashboards on.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

pub type RuleId = u32;

/// Metadata carried into alerts (Suricata EVE `alert.*` fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleMeta {
    pub id: RuleId,
    pub rev: u32,
    /// Short machine name, also the metrics label.
    pub name: Cow<'static, str>,
    /// `alert.signature`.
    pub msg: Cow<'static, str>,
    /// `alert.category` (Suricata classtype description).
    pub category: Cow<'static, str>,
    /// 1 = high … 4 = informational, as in Suricata.
    pub severity: u8,
    /// What fires it, for `flowgate rules list` and the README table.
    pub fires_when: Cow<'static, str>,
}

pub const ICMP_FLOOD: RuleId = 9_100_001;
pub const SYN_FLOOD: RuleId = 9_100_010;
pub const SYN_HALF_OPEN: RuleId = 9_100_011;
pub const SCAN_NULL: RuleId = 9_100_020;
pub const SCAN_XMAS: RuleId = 9_100_021;
pub const SCAN_FIN: RuleId = 9_100_022;
pub const SCAN_SYN_FIN: RuleId = 9_100_023;
pub const PORT_SCAN: RuleId = 9_100_030;
pub const MALFORMED: RuleId = 9_100_090;

const DOS: &str = "Attempted Denial of Service";
const RECON: &str = "Attempted Information Leak";
const SCAN: &str = "Detection of a Network Scan";

pub static BUILTIN: &[RuleMeta] = &[
    RuleMeta {
        id: ICMP_FLOOD,
        rev: 1,
        name: Cow::Borrowed("icmp_flood"),
        msg: Cow::Borrowed("FLOWGATE DOS ICMP echo request flood"),
        category: Cow::Borrowed(DOS),
        severity: 2,
        fires_when: Cow::Borrowed("a source sends more than detect.icmp_flood.limit (100) ICMP/ICMPv6 echo requests within detect.icmp_flood.window (1s)"),
    },
    RuleMeta {
        id: SYN_FLOOD,
        rev: 1,
        name: Cow::Borrowed("syn_flood"),
        msg: Cow::Borrowed("FLOWGATE DOS TCP SYN flood"),
        category: Cow::Borrowed(DOS),
        severity: 2,
        fires_when: Cow::Borrowed("a source sends more than detect.syn_flood.limit (200) SYNs without ACK within detect.syn_flood.window (1s)"),
    },
    RuleMeta {
        id: SYN_HALF_OPEN,
        rev: 1,
        name: Cow::Borrowed("syn_half_open"),
        msg: Cow::Borrowed("FLOWGATE DOS TCP half-open connection flood"),
        category: Cow::Borrowed(DOS),
        severity: 2,
        fires_when: Cow::Borrowed("more than detect.syn_flood.half_open_limit (100) of a source's handshakes get no final ACK within half_open_timeout (3s), counted over half_open_window (10s)"),
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
        fires_when: Cow::Borrowed("a source probes (SYN) more than detect.port_scan.distinct_ports (30) distinct ports, or distinct_pairs (100) host:port pairs, that it never completes a handshake with, within detect.port_scan.window (10s)"),
    },
    RuleMeta {
        id: MALFORMED,
        rev: 1,
        name: Cow::Borrowed("malformed"),
        msg: Cow::Borrowed("FLOWGATE DECODE malformed packet"),
        category: Cow::Borrowed("Generic Protocol Command Decode"),
        severity: 3,
        fires_when: Cow::Borrowed("a frame fails to decode (truncated or invalid headers) and engine.drop_malformed is true; counted by kind, never alerted"),
    },
];

/// All rules the engine can name, by ID.
#[derive(Debug)]
pub struct RuleBook {
    by_id: BTreeMap<RuleId, Arc<RuleMeta>>,
}

impl RuleBook {
    pub fn builtin() -> RuleBook {
        RuleBook {
            by_id: BUILTIN
                .iter()
                .map(|m| (m.id, Arc::new(m.clone())))
                .collect(),
        }
    }

    pub fn get(&self, id: RuleId) -> Option<&Arc<RuleMeta>> {
        self.by_id.get(&id)
    }

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

    pub fn iter(&self) -> impl Iterator<Item = &Arc<RuleMeta>> {
        self.by_id.values()
    }
}

/// Everything the engine decides with: rule metadata and the compiled
/// signatures. Built off the packet path; shards hold it by `Arc`, and a
/// reload hands them a new one between batches.
#[derive(Debug)]
pub struct Ruleset {
    pub book: RuleBook,
    pub signatures: Option<Arc<crate::signature::SignatureSet>>,
    /// Rules that did not load, with why.
    pub rejected: Vec<crate::signature::Rejected>,
}

impl Ruleset {
    /// Behavioural rules only.
    pub fn builtin_only() -> Ruleset {
        Ruleset {
            book: RuleBook::builtin(),
            signatures: None,
            rejected: Vec::new(),
        }
    }

    /// Loads and compiles what `cfg` asks for. Fails on unreadable files,
    /// duplicate IDs and compile errors (naming rule and pattern), and on
    /// unmappable Suricata rules when `strict`.
    pub fn load(cfg: &crate::config::SignaturesConfig) -> Result<Ruleset, String> {
        use crate::signature::{self, SignatureSet};
        let mut book = RuleBook::builtin();
        if !cfg.enabled {
            return Ok(Ruleset {
                book,
                signatures: None,
                rejected: Vec::new(),
            });
        }
        let mut rules = Vec::new();
        let mut rejected = Vec::new();
        if cfg.builtin {
            rules.extend(signature::native::parse(
                signature::BUILTIN_SQLI,
                "built-in sqli.toml",
            )?);
        }
        for path in &cfg.rule_files {
            let (ok, bad) = signature::load_file(path)?;
            rules.extend(ok);
            rejected.extend(bad);
        }
        if cfg.strict && !rejected.is_empty() {
            let list: Vec<String> = rejected.iter().map(|r| r.to_string()).collect();
            return Err(format!(
                "{} rule(s) do not map (signatures.strict = true):\n  {}",
                list.len(),
                list.join("\n  ")
            ));
        }
        let mut metas = Vec::with_capacity(rules.len());
        for r in &rules {
            let m = book
                .insert(r.meta.clone())
                .map_err(|id| format!("rule id {id} is defined twice (IDs must be unique across built-in and loaded rules)"))?;
            metas.push(m);
        }
        let set = SignatureSet::compile(rules, metas).map_err(|e| e.to_string())?;
        Ok(Ruleset {
            book,
            signatures: (!set.is_empty()).then(|| Arc::new(set)),
            rejected,
        })
    }
}
