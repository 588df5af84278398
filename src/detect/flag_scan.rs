//! Flag-combination scans that no TCP stack sends in normal operation:
//! NULL, XMAS (FIN+PSH+URG), FIN without ACK, SYN+FIN. One packet suffices.

use super::Detection;
use crate::packet::{Packet, TcpFlags as F};
use crate::rules;
use serde::{Deserialize, Serialize};

/// The `[detect.flag_scan]` config section (owned here, so the detector
/// does not depend on the config module).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FlagScanConfig {
    /// Run this detector (all four `scan_*` rules).
    pub enabled: bool,
}

impl Default for FlagScanConfig {
    fn default() -> Self {
        FlagScanConfig { enabled: true }
    }
}

/// Classifies one TCP segment by its flags: `Some` for a scan
/// combination, checked as SYN+FIN, XMAS, NULL, then FIN without ACK. No
/// state: one packet suffices, so it fires on the first such segment.
pub fn inspect(pkt: &Packet) -> Option<Detection> {
    let f = pkt.tcp_flags;
    let (rule, what) = if f.has(F::SYN | F::FIN) {
        (rules::SCAN_SYN_FIN, "SYN+FIN")
    } else if f.has(F::FIN | F::PSH | F::URG) {
        (rules::SCAN_XMAS, "XMAS (FIN+PSH+URG)")
    } else if f.classic() == 0 {
        (rules::SCAN_NULL, "NULL (no flags)")
    } else if f.has(F::FIN) && !f.any(F::ACK) {
        (rules::SCAN_FIN, "FIN without ACK")
    } else {
        return None;
    };
    Some(Detection {
        rule,
        metric: "tcp_flags",
        value: f.0 as u64,
        threshold: 0,
        window: None,
        reason: format!(
            "TCP {what} segment to port {} (flags 0x{:02x})",
            pkt.dst_port, f.0
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(flags: u8) -> Packet<'static> {
        Packet::test_tcp(flags, "198.19.0.2", 22, 1)
    }

    #[test]
    fn classifies() {
        let r = |f| inspect(&pkt(f)).map(|d| d.rule);
        assert_eq!(r(0), Some(rules::SCAN_NULL));
        assert_eq!(r(F::ECE | F::CWR), Some(rules::SCAN_NULL));
        assert_eq!(r(F::FIN | F::PSH | F::URG), Some(rules::SCAN_XMAS));
        assert_eq!(r(F::FIN), Some(rules::SCAN_FIN));
        assert_eq!(r(F::SYN | F::FIN), Some(rules::SCAN_SYN_FIN));
        for ok in [
            F::SYN,
            F::SYN | F::ACK,
            F::ACK,
            F::FIN | F::ACK,
            F::RST,
            F::RST | F::ACK,
            F::PSH | F::ACK,
        ] {
            assert_eq!(r(ok), None, "flags {ok:#x}");
        }
    }
}
