//! Shard-identical verdicts and alerts on randomized traffic, including
//! under table pressure (tiny capacities force eviction in every bucket).

mod common;
use common::*;
use flowgate_synth as synth;
use proptest::prelude::*;

fn check(seed: u64, n: usize, sources: u8, overrides: &[(&str, &str)]) {
    let frames = synth::random_frames(seed, n, sources);
    let cfg = config(overrides);
    let one = run_frames(&cfg, 1, &frames);
    assert_eq!(one.verdicts.len(), n);
    for shards in [2, 3, 4, 8] {
        let many = run_frames(&cfg, shards, &frames);
        assert_eq!(
            many.events, one.events,
            "seed {seed}: alerts differ with {shards} shards"
        );
        assert_eq!(
            many.verdicts, one.verdicts,
            "seed {seed}: verdicts differ with {shards} shards"
        );
    }
}

// Low limits so every detector fires often in short random captures.
const TIGHT: &[(&str, &str)] = &[
    ("detect.icmp_flood.limit", "5"),
    ("detect.syn_flood.limit", "8"),
    ("detect.syn_flood.half_open_limit", "3"),
    ("detect.syn_flood.half_open_timeout", "\"50ms\""),
    ("detect.port_scan.distinct_ports", "6"),
    ("detect.port_scan.distinct_pairs", "9"),
    ("block.ttl", "\"2s\""),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_traffic_is_shard_identical(seed in any::<u64>(), sources in 1u8..=255) {
        check(seed, 3000, sources, TIGHT);
    }

    #[test]
    fn random_traffic_under_table_pressure_is_shard_identical(seed in any::<u64>()) {
        let mut o = TIGHT.to_vec();
        // One entry per bucket: constant eviction, all of it per bucket.
        o.push(("tables.sources", "1"));
        o.push(("block.capacity", "1"));
        o.push(("tables.idle_timeout", "\"50ms\""));
        check(seed, 3000, 255, &o);
    }
}

#[test]
fn random_traffic_fires_every_family() {
    // Guard against the properties above passing because nothing fires:
    // with the competing detectors off, each family fires on this traffic.
    let frames = synth::random_frames(7, 20_000, 40);
    let off = |k: &'static str| (k, "false");
    for (rule, extra) in [
        ("9100001", vec![]),
        (
            "9100010",
            vec![
                off("detect.icmp_flood.enabled"),
                off("detect.flag_scan.enabled"),
                off("detect.port_scan.enabled"),
                ("detect.syn_flood.half_open_limit", "100000"),
            ],
        ),
        (
            "9100011",
            vec![
                off("detect.icmp_flood.enabled"),
                off("detect.flag_scan.enabled"),
                off("detect.port_scan.enabled"),
                ("detect.syn_flood.limit", "100000"),
            ],
        ),
        (
            "9100030",
            vec![
                off("detect.icmp_flood.enabled"),
                off("detect.flag_scan.enabled"),
                off("detect.syn_flood.enabled"),
            ],
        ),
        ("9100020", vec![]),
        // Any built-in SQLi signature (91010xx).
        (
            "91010",
            vec![
                off("detect.icmp_flood.enabled"),
                off("detect.flag_scan.enabled"),
                off("detect.syn_flood.enabled"),
                off("detect.port_scan.enabled"),
            ],
        ),
    ] {
        let mut o = TIGHT.to_vec();
        o.extend(extra);
        let out = run_frames(&config(&o), 1, &frames);
        let all = out.events.join("\n");
        assert!(
            all.contains(&format!("\"signature_id\":{rule}")),
            "rule {rule} never fired"
        );
        assert!(out.stats.malformed_total() > 0);
    }
}
