//! Rule identities: every decision names one of these. IDs are stable
//! across releases; they are what operators grep for and build dashboards on.

use std::collections::BTreeMap;
use std::sync::Arc;

pub type RuleId = u32;

/// Metadata carried into alerts (Suricata EVE `alert.*` fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleMeta {
    pub id: RuleId,
    pub rev: u32,
    /// Short machine name, also the metrics label.
    pub name: &'static str,
    /// `alert.signature`.
    pub msg: &'static str,
    /// `alert.category` (Suricata classtype description).
    pub category: &'static str,
    /// 1 = high … 4 = informational, as in Suricata.
    pub severity: u8,
    /// What fires it, for `flowgate rules list` and the README table.
    pub fires_when: &'static str,
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
        name: "icmp_flood",
        msg: "FLOWGATE DOS ICMP echo request flood",
        category: DOS,
        severity: 2,
        fires_when: "a source sends more than detect.icmp_flood.limit (100) ICMP/ICMPv6 echo requests within detect.icmp_flood.window (1s)",
    },
    RuleMeta {
        id: SYN_FLOOD,
        rev: 1,
        name: "syn_flood",
        msg: "FLOWGATE DOS TCP SYN flood",
        category: DOS,
        severity: 2,
        fires_when: "a source sends more than detect.syn_flood.limit (200) SYNs without ACK within detect.syn_flood.window (1s)",
    },
    RuleMeta {
        id: SYN_HALF_OPEN,
        rev: 1,
        name: "syn_half_open",
        msg: "FLOWGATE DOS TCP half-open connection flood",
        category: DOS,
        severity: 2,
        fires_when: "more than detect.syn_flood.half_open_limit (100) of a source's handshakes get no final ACK within half_open_timeout (3s), counted over half_open_window (10s)",
    },
    RuleMeta {
        id: SCAN_NULL,
        rev: 1,
        name: "scan_null",
        msg: "FLOWGATE SCAN TCP NULL scan (no flags)",
        category: RECON,
        severity: 2,
        fires_when: "a TCP segment with no flags set (nmap -sN); immediate",
    },
    RuleMeta {
        id: SCAN_XMAS,
        rev: 1,
        name: "scan_xmas",
        msg: "FLOWGATE SCAN TCP XMAS scan (FIN+PSH+URG)",
        category: RECON,
        severity: 2,
        fires_when: "a TCP segment with FIN, PSH and URG set (nmap -sX); immediate",
    },
    RuleMeta {
        id: SCAN_FIN,
        rev: 1,
        name: "scan_fin",
        msg: "FLOWGATE SCAN TCP FIN without ACK",
        category: RECON,
        severity: 2,
        fires_when: "a TCP segment with FIN but not ACK (nmap -sF); immediate",
    },
    RuleMeta {
        id: SCAN_SYN_FIN,
        rev: 1,
        name: "scan_syn_fin",
        msg: "FLOWGATE SCAN TCP SYN+FIN",
        category: RECON,
        severity: 2,
        fires_when: "a TCP segment with both SYN and FIN set; immediate",
    },
    RuleMeta {
        id: PORT_SCAN,
        rev: 1,
        name: "port_scan",
        msg: "FLOWGATE SCAN TCP port scan",
        category: SCAN,
        severity: 2,
        fires_when: "a source probes (SYN) more than detect.port_scan.distinct_ports (30) distinct ports, or distinct_pairs (100) host:port pairs, that it never completes a handshake with, within detect.port_scan.window (10s)",
    },
    RuleMeta {
        id: MALFORMED,
        rev: 1,
        name: "malformed",
        msg: "FLOWGATE DECODE malformed packet",
        category: "Generic Protocol Command Decode",
        severity: 3,
        fires_when: "a frame fails to decode (truncated or invalid headers) and engine.drop_malformed is true; counted by kind, never alerted",
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
        self.by_id.get(&id).map(|m| m.name).unwrap_or("unknown")
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<RuleMeta>> {
        self.by_id.values()
    }
}
