//! `flowgate analyze` end to end on the bundled fixtures.

mod common;
use common::*;
use flowgate_synth::MIXED_ATTACKERS;
use std::collections::{BTreeMap, BTreeSet};

fn alerts_by_source(lines: &[String]) -> BTreeMap<String, BTreeSet<u64>> {
    let mut m: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["event_type"] == "alert" {
            m.entry(v["src_ip"].as_str().unwrap().to_string())
                .or_default()
                .insert(v["alert"]["signature_id"].as_u64().unwrap());
        }
    }
    m
}

#[test]
fn mixed_fixture_finds_every_attacker_and_no_benign_source() {
    let (code, stdout, stderr, mut alerts, _) =
        analyze_cli(&fixture("mixed.pcap"), &["--shards", "1"]);
    assert_eq!(code, 0, "{stderr}");
    let by_src = alerts_by_source(&alerts);
    let want: BTreeMap<String, BTreeSet<u64>> = MIXED_ATTACKERS
        .iter()
        .map(|(ip, rule)| (ip.to_string(), BTreeSet::from([*rule as u64])))
        .collect();
    assert_eq!(by_src, want, "attackers and their rules");
    // One alert per episode, and every episode closed with an end record.
    let ends = alerts
        .iter()
        .filter(|l| l.contains("\"flowgate_block\""))
        .count();
    assert_eq!(ends, MIXED_ATTACKERS.len());
    assert!(
        stdout.contains("198.18.66.2"),
        "top offenders in summary:\n{stdout}"
    );
    sort_eve(&mut alerts);
    golden("mixed.expected.jsonl", &alerts);
}

#[test]
fn every_fixture_is_shard_identical() {
    let mut names = vec![
        "mixed.pcap",
        "mixed_nanos.pcap",
        "malformed.pcap",
        "http_sqli.pcap",
    ];
    let real: Vec<String> = std::fs::read_dir(fixture("real"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| format!("real/{}", e.file_name().to_string_lossy()))
                .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
                .collect()
        })
        .unwrap_or_default();
    names.extend(real.iter().map(String::as_str));
    for name in names {
        let (code, _, err, alerts1, verdicts1) = analyze_cli(&fixture(name), &["--shards", "1"]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(!verdicts1.is_empty(), "{name}: no verdicts");
        for n in ["2", "3", "4", "8"] {
            let (code, _, err, alerts, verdicts) = analyze_cli(&fixture(name), &["--shards", n]);
            assert_eq!(code, 0, "{name} --shards {n}: {err}");
            assert_eq!(alerts, alerts1, "{name}: alerts differ with --shards {n}");
            assert_eq!(
                verdicts, verdicts1,
                "{name}: verdicts differ with --shards {n}"
            );
        }
    }
}

#[test]
fn nanosecond_pcap_gives_the_same_alerts() {
    let (_, _, _, a, _) = analyze_cli(&fixture("mixed.pcap"), &[]);
    let (_, _, _, b, _) = analyze_cli(&fixture("mixed_nanos.pcap"), &[]);
    assert_eq!(alerts_by_source(&a), alerts_by_source(&b));
}

#[test]
fn detect_mode_alerts_the_same_but_drops_nothing() {
    let (code, stdout, _, alerts, verdicts) =
        analyze_cli(&fixture("mixed.pcap"), &["--mode", "detect"]);
    assert_eq!(code, 0);
    assert!(
        verdicts.iter().all(|l| l.ends_with("\tallow")),
        "detect mode dropped a packet"
    );
    assert_eq!(alerts_by_source(&alerts).len(), MIXED_ATTACKERS.len());
    assert!(alerts
        .iter()
        .filter(|l| l.contains("\"event_type\":\"alert\""))
        .all(|l| l.contains("\"action\":\"allowed\"")));
    assert!(stdout.contains("dropped             0"), "{stdout}");
}

#[test]
fn malformed_frames_are_counted_by_kind() {
    let (code, stdout, _, _, verdicts) =
        analyze_cli(&fixture("malformed.pcap"), &["--summary", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let m = &v["stats"]["malformed"];
    let total: u64 = m
        .as_object()
        .unwrap()
        .values()
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(total, 6, "{m}");
    assert_eq!(m["link"], 1);
    assert_eq!(m["ip_length"], 1);
    // The two good frames pass; broken ones are dropped under the malformed rule.
    assert_eq!(verdicts.iter().filter(|l| l.ends_with("allow")).count(), 2);
    assert!(verdicts
        .iter()
        .filter(|l| l.contains("drop"))
        .all(|l| l.ends_with("9100090")));
}

#[test]
fn allowlisted_sources_are_never_blocked() {
    let (code, _, _, alerts, _) = analyze_cli(
        &fixture("mixed.pcap"),
        &[
            "--set",
            "block.allowlist=[\"198.18.66.0/29\", \"2001:db8:66::/48\"]",
        ],
    );
    assert_eq!(code, 0);
    let by_src = alerts_by_source(&alerts);
    assert_eq!(
        by_src.keys().collect::<Vec<_>>(),
        vec!["198.18.66.10", "198.18.66.11", "198.18.66.8"],
        "only .8, .10 and .11 are outside the /29"
    );
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mixed = std::fs::read(fixture("mixed.pcap")).unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &mixed[..mixed.len() - 30]).unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "this is not a capture\n").unwrap();
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    let missing = dir.path().join("missing.pcap");
    let header_only = dir.path().join("short.pcap");
    std::fs::write(&header_only, &mixed[..10]).unwrap();

    for (p, needle) in [
        (&cut, "truncated after packet"),
        (&text, "not a PCAP or PCAPNG file"),
        (&empty, "empty file"),
        (&missing, "No such file"),
        (&header_only, "bad file header"),
    ] {
        let (code, _, stderr, _, _) = analyze_cli(p, &["--summary", "none"]);
        assert_ne!(code, 0, "{}", p.display());
        assert!(!stderr.contains("panicked"), "{stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line for {}: {stderr}", p.display());
        assert!(lines[0].contains(needle), "{}: {stderr}", p.display());
    }
    // The truncated file still yields every packet before the cut record.
    let total = synth_mixed_len();
    let (code, stdout, _, _, verdicts) = analyze_cli(&cut, &["--summary", "json"]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["packets"], total - 1);
    assert_eq!(verdicts.len() as u64, total - 1);
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[detect.icmp_flood]\nlimit = \"many\"\n").unwrap();
    let out = flowgate(&["config", "check", "--config", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("detect.icmp_flood.limit") && err.contains("many"),
        "{err}"
    );

    let out = flowgate(&["config", "check", "--set", "engine.shards=5000"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("engine.shards") && err.contains("5000") && err.contains("1024"),
        "{err}"
    );

    std::fs::write(&bad, "[block]\nttl = 60\nunknown_key = 1\n").unwrap();
    let out = flowgate(&["config", "check", "--config", bad.to_str().unwrap()]);
    assert!(!out.status.success());

    let out = flowgate(&[
        "config",
        "check",
        "--config",
        root().join("deploy/flowgate.toml").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "shipped example config must validate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Real traffic captured with tcpdump from hping3, nmap, ping and curl
/// (fixtures/real/README.md has the address plan and commands).
#[test]
fn real_captures_find_each_tool_with_the_right_rule() {
    use flowgate::rules::*;
    let full: Vec<(&str, u32)> = vec![
        ("198.18.0.11", ICMP_FLOOD),
        ("198.18.0.12", SYN_FLOOD),
        ("198.18.0.13", SCAN_NULL),
        ("198.18.0.14", SCAN_FIN),
        ("198.18.0.15", SCAN_XMAS),
        ("198.18.0.16", PORT_SCAN),
    ];
    let sll = vec![("198.18.0.11", ICMP_FLOOD), ("198.18.0.15", SCAN_XMAS)];
    for (file, want, golden_name) in [
        (
            "real/real_mixed.pcap",
            &full,
            "real/real_mixed.expected.jsonl",
        ),
        (
            "real/real_mixed_nano.pcapng",
            &full,
            "real/real_mixed_nano.expected.jsonl",
        ),
        (
            "real/real_mixed_sll.pcap",
            &sll,
            "real/real_mixed_sll.expected.jsonl",
        ),
    ] {
        let (code, _, err, mut alerts, _) = analyze_cli(&fixture(file), &[]);
        assert_eq!(code, 0, "{file}: {err}");
        let want: BTreeMap<String, BTreeSet<u64>> = want
            .iter()
            .map(|(ip, r)| (ip.to_string(), BTreeSet::from([*r as u64])))
            .collect();
        // The benign client (.10) and the victim (198.19.0.2) never alert.
        assert_eq!(alerts_by_source(&alerts), want, "{file}");
        sort_eve(&mut alerts);
        golden(golden_name, &alerts);
    }
}

fn synth_mixed_len() -> u64 {
    flowgate_synth::mixed().len() as u64
}

#[test]
fn write_allowed_keeps_exactly_the_allowed_packets() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("allowed.pcap");
    let (code, _, err, _, verdicts) = analyze_cli(
        &fixture("mixed.pcap"),
        &["--write-allowed", out.to_str().unwrap(), "--shards", "3"],
    );
    assert_eq!(code, 0, "{err}");
    let allowed = verdicts.iter().filter(|l| l.ends_with("\tallow")).count();
    // Re-analysed, the forwarded traffic has the same count and nothing to drop.
    let (code, stdout, _, alerts, _) = analyze_cli(&out, &["--summary", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["packets"].as_u64().unwrap() as usize, allowed);
    assert_eq!(v["dropped"], 0);
    assert!(alerts.is_empty(), "{alerts:?}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("x.rules");
    std::fs::write(&rules, "alert http any any -> any any (msg:\"pos\"; content:\"a\"; content:\"b\"; distance:0; sid:77;)\n").unwrap();
    let set = format!("signatures.rule_files=[{:?}]", rules.to_str().unwrap());
    let alerts = dir.path().join("a.jsonl");
    let out = flowgate(&[
        "--log-format",
        "json",
        "analyze",
        fixture("malformed.pcap").to_str().unwrap(),
        "--set",
        &set,
        "--alerts",
        alerts.to_str().unwrap(),
        "--summary",
        "none",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("sid 77"))
        .expect("a warning names the skipped sid");
    let v: serde_json::Value = serde_json::from_str(line).expect("json log line");
    assert_eq!(v["level"], "WARN");
}

/// Requests that repeat a target, header line or parameter value seen
/// clean are not inspected again, and the summary says how often: the
/// real capture's curl and sqlmap requests share their headers.
#[test]
fn inspections_skipped_as_seen_clean_are_counted() {
    let (code, stdout, _, alerts, _) = analyze_cli(
        &fixture("real/real_mixed.pcap"),
        &["--summary", "json", "--shards", "1"],
    );
    assert_eq!(code, 0);
    assert!(!alerts.is_empty());
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let st = &v["stats"];
    let sk = &st["skipped_clean"];
    let n = |k: &str| sk[k].as_u64().unwrap_or_else(|| panic!("{k}: {sk}"));
    let requests = st["http_requests"].as_u64().unwrap();
    assert!(n("header_lines") > 0, "{sk}");
    assert!(n("values") > 0, "{sk}");
    // Every target but the first curl one and sqlmap's attacks repeats.
    assert!(
        n("targets") > 0 && n("targets") < requests,
        "{sk} {requests}"
    );
}
