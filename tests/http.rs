//! HTTP signature inspection end to end: split, reordered and retransmitted
//! segments in a PCAP, and rule reload without losing state.

mod common;
use common::*;
use flowgate::engine::Verdict;
use flowgate::packet::LinkType;
use flowgate::pipeline::Pipeline;
use flowgate::ruleset::Ruleset;
use flowgate_synth as synth;
use std::sync::Arc;

#[test]
fn fixture_is_current() {
    let (frames, _) = synth::http_cases();
    let mut buf = Vec::new();
    synth::write_pcap(&mut buf, &frames, false).unwrap();
    let on_disk = std::fs::read(fixture("http_sqli.pcap")).unwrap();
    assert!(
        buf == on_disk,
        "fixtures/http_sqli.pcap is stale: run `make fixtures`"
    );
}

#[test]
fn split_reordered_and_retransmitted_segments_give_the_expected_verdicts() {
    let (_, expect) = synth::http_cases();
    for shards in ["1", "3"] {
        let (code, _, err, alerts, verdicts) =
            analyze_cli(&fixture("http_sqli.pcap"), &["--shards", shards]);
        assert_eq!(code, 0, "{err}");
        let got: std::collections::HashMap<u64, String> = verdicts
            .iter()
            .map(|l| {
                let (i, rest) = l.split_once('\t').unwrap();
                (i.parse().unwrap(), rest.to_string())
            })
            .collect();
        for (idx, want) in &expect {
            let want = match want {
                Some(rule) => format!("drop\t{rule}"),
                None => "allow".to_string(),
            };
            assert_eq!(got[idx], want, "packet {idx} with {shards} shard(s)");
        }
        // One alert per attacking client, none for the benign ones.
        let srcs: Vec<String> = alerts
            .iter()
            .filter(|l| l.contains("\"event_type\":\"alert\""))
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["src_ip"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let mut sorted = srcs.clone();
        sorted.sort();
        assert_eq!(sorted, vec!["198.18.70.1", "198.18.70.2", "198.18.70.5"]);
    }
}

#[test]
fn reload_swaps_rules_and_keeps_state() {
    // Frames 1-2: a NULL scan blocks 198.18.71.1 and an HTTP request that
    // only a new rule flags. Reload with that rule, then send both again.
    let scanner = synth::v4(198, 18, 71, 1);
    let client = synth::v4(198, 18, 71, 2);
    let server = synth::v4(198, 19, 0, 80);
    let req = b"GET /admin/backup.tar HTTP/1.1\r\nHost: a.example.test\r\n\r\n";
    let frames = [
        synth::tcp(scanner, server, 1, 22, 0, 0, b""),
        synth::tcp(
            client,
            server,
            40_000,
            80,
            synth::flags::PSH | synth::flags::ACK,
            1,
            req,
        ),
        synth::tcp(scanner, server, 1, 80, synth::flags::SYN, 0, b""),
        synth::tcp(
            client,
            server,
            40_001,
            80,
            synth::flags::PSH | synth::flags::ACK,
            1,
            req,
        ),
    ];
    let cfg = config(&[]);
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extra.rules");
    std::fs::write(
        &extra,
        "drop http any any -> any any (msg:\"backup download\"; http.uri; content:\"/admin/backup\"; sid:4000001;)\n",
    )
    .unwrap();
    let mut cfg2 = cfg.clone();
    cfg2.signatures.rule_files.push(extra);
    let new_rules = Arc::new(Ruleset::load(&cfg2.signatures).unwrap());

    let mut p = Pipeline::start(Arc::new(cfg.clone()), rules(&cfg), Mem::default(), true).unwrap();
    for (i, f) in frames.iter().enumerate() {
        if i == 2 {
            p.reload(Arc::new(cfg2.clone()), new_rules.clone());
        }
        p.push(
            synth::EPOCH + i as u64 * synth::MS,
            LinkType::Ethernet,
            f,
            f.len() as u32,
        );
    }
    let (_, _, mut mem) = p.finish().unwrap();
    mem.verdicts.sort_by_key(|v| v.0);
    assert_eq!(
        mem.verdicts,
        vec![
            (1, Verdict::Drop(flowgate::rules::SCAN_NULL)),
            (2, Verdict::Allow),
            // Still blocked after the reload: the block survived it.
            (3, Verdict::Drop(flowgate::rules::SCAN_NULL)),
            (4, Verdict::Drop(4_000_001)),
        ]
    );
}
