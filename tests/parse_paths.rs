//! `packet::parse` reads plain IPv4 TCP/UDP/ICMP-echo packets directly and
//! everything else through etherparse's layers. The two must agree on
//! every frame: same packet, or the same `Malformed` kind. Checked on the
//! synthetic fixtures, the fixture PCAPs in the repository, the benchmark
//! mix, and random damage to all of them.

use flowgate::packet::{self, LinkType};
use proptest::prelude::*;

fn frames() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    out.extend(flowgate_synth::mixed().into_iter().map(|(_, f)| f));
    out.extend(flowgate_synth::malformed().into_iter().map(|(_, f)| f));
    out.extend(
        flowgate_synth::random_frames(7, 3000, 40)
            .into_iter()
            .map(|(_, f)| f),
    );
    let (frames, _) = flowgate_synth::http_cases();
    out.extend(frames.into_iter().map(|(_, f)| f));
    out.extend(
        flowgate_synth::perf_mix_frames(5000, 500, 3)
            .into_iter()
            .map(|(_, f)| f),
    );
    for name in [
        "mixed.pcap",
        "http_sqli.pcap",
        "malformed.pcap",
        "mixed_nanos.pcap",
    ] {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        out.extend(records(&bytes));
    }
    out
}

/// Ethernet records of a classic PCAP, as far as they parse.
fn records(pcap: &[u8]) -> Vec<Vec<u8>> {
    flowgate_synth::read_pcap(pcap)
        .into_iter()
        .map(|(_, f)| f)
        .collect()
}

fn same(data: &[u8], wire_len: u32) -> Result<(), TestCaseError> {
    for link in [LinkType::Ethernet, LinkType::RawIp] {
        let data = match link {
            LinkType::RawIp => data.get(14..).unwrap_or(&[]),
            _ => data,
        };
        let wire = wire_len.max(data.len() as u32);
        prop_assert_eq!(
            packet::parse(link, data, wire),
            packet::parse_reference(link, data, wire),
            "{:?} frame {:02x?} wire {}",
            link,
            data,
            wire
        );
    }
    Ok(())
}

#[test]
fn both_paths_agree_on_every_fixture_frame() {
    let all = frames();
    assert!(all.len() > 10_000, "{} frames", all.len());
    let mut fast = 0;
    for f in &all {
        same(f, f.len() as u32).unwrap();
        // Cut by a snaplen: always the layered path, same answer.
        same(f, f.len() as u32 + 100).unwrap();
        if packet::parse(LinkType::Ethernet, f, f.len() as u32).is_ok_and(|p| match p {
            packet::Frame::Ip(p) => !p.fragment && p.src.is_ipv4(),
            _ => false,
        }) {
            fast += 1;
        }
    }
    assert!(
        fast > all.len() / 2,
        "only {fast} of {} frames are plain IPv4",
        all.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Damage near the headers (where the fast path decides), cuts, and a
    /// wire length past the capture.
    #[test]
    fn both_paths_agree_on_damaged_frames(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((0usize..80, any::<u8>()), 0..6),
        cut in prop::option::of(0usize..120),
        extra in prop::option::of(1u32..64),
    ) {
        thread_local! {
            static ALL: Vec<Vec<u8>> = frames();
        }
        let mut f = ALL.with(|all| all[pick.index(all.len())].clone());
        for (at, v) in edits {
            if let Some(b) = f.get_mut(at) {
                *b = v;
            }
        }
        if let Some(c) = cut {
            f.truncate(c);
        }
        let wire = f.len() as u32 + extra.unwrap_or(0);
        same(&f, wire)?;
    }
}
