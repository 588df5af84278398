//! Shared helpers: run the shard pipeline in memory and on the CLI.
#![allow(dead_code)]

pub mod corpus;

use flowgate::alert::Event;
use flowgate::config::{Config, Sources};
use flowgate::engine::{Stats, Verdict};
use flowgate::output::{Collector, ShardOutput};
use flowgate::packet::{LinkType, Ts};
use flowgate::pipeline::Pipeline;
use flowgate::ruleset::Ruleset;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

#[derive(Default)]
pub struct Mem {
    pub events: Vec<String>,
    pub verdicts: Vec<(u64, Verdict)>,
}

impl Collector for Mem {
    fn collect(&mut self, out: ShardOutput) {
        for e in &out.events {
            self.events.push(line_key(e));
        }
        self.verdicts.extend(out.verdicts);
    }
}

fn line_key(e: &Event) -> String {
    let (a, b) = e.order_key();
    format!("{a:012}.{b} {}", e.to_eve())
}

/// Alerts (sorted by packet index) and per-packet verdicts (sorted).
pub struct Outcome {
    pub events: Vec<String>,
    pub verdicts: Vec<(u64, Verdict)>,
    pub stats: Stats,
}

pub fn config(overrides: &[(&str, &str)]) -> Config {
    let mut s = Sources::default();
    for (k, v) in overrides {
        s.set(k, v);
    }
    Config::load(&s).expect("test config")
}

/// The rule set for `cfg`; the default signatures compile once per test
/// binary (Hyperscan compilation dominates short runs otherwise).
pub fn rules(cfg: &Config) -> Arc<Ruleset> {
    static DEFAULT: std::sync::OnceLock<Arc<Ruleset>> = std::sync::OnceLock::new();
    if cfg.signatures == Config::default().signatures {
        return DEFAULT
            .get_or_init(|| Arc::new(Ruleset::load(&cfg.signatures).expect("rules load")))
            .clone();
    }
    Arc::new(Ruleset::load(&cfg.signatures).expect("rules load"))
}

pub fn run_frames(cfg: &Config, shards: usize, frames: &[(Ts, Vec<u8>)]) -> Outcome {
    let mut cfg = cfg.clone();
    cfg.engine.shards = shards;
    let rules = rules(&cfg);
    let mut p =
        Pipeline::start(Arc::new(cfg), rules, Mem::default(), true).expect("start pipeline");
    for (ts, f) in frames {
        p.push(*ts, LinkType::Ethernet, f, f.len() as u32);
    }
    let (stats, _, mut mem) = p.finish().expect("finish");
    mem.events.sort();
    mem.verdicts.sort_by_key(|(i, _)| *i);
    Outcome {
        events: mem.events,
        verdicts: mem.verdicts,
        stats,
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("fixtures").join(name)
}

pub fn flowgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(args)
        .env_remove("FLOWGATE_CONFIG")
        .output()
        .expect("run flowgate")
}

/// `analyze` through the CLI: returns (exit code, stdout, stderr, sorted
/// alert lines, sorted verdict lines).
pub fn analyze_cli(pcap: &Path, extra: &[&str]) -> (i32, String, String, Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let alerts = dir.path().join("alerts.jsonl");
    let verdicts = dir.path().join("verdicts.tsv");
    let mut args = vec![
        "analyze",
        pcap.to_str().expect("utf8 path"),
        "--alerts",
        alerts.to_str().expect("utf8"),
        "--verdicts",
        verdicts.to_str().expect("utf8"),
    ];
    args.extend_from_slice(extra);
    let out = flowgate(&args);
    let read = |p: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
        read(&alerts),
        read(&verdicts),
    )
}

/// Sorts EVE lines by (pcap_cnt, alert before episode end): the order the
/// golden files keep.
pub fn sort_eve(lines: &mut [String]) {
    lines.sort_by_key(|l| {
        let v: serde_json::Value = serde_json::from_str(l).expect("alert line is JSON");
        (
            v["pcap_cnt"].as_u64().unwrap_or(0),
            v["event_type"].as_str().unwrap_or("") != "alert",
        )
    });
}

/// Compares with `fixtures/<name>`; `UPDATE_GOLDEN=1` rewrites it.
pub fn golden(name: &str, lines: &[String]) {
    let path = fixture(name);
    let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create)",
            path.display()
        )
    });
    if want != text {
        for (i, (a, b)) in want.lines().zip(text.lines()).enumerate() {
            if a != b {
                panic!("{} line {}:\n want {a}\n  got {b}", path.display(), i + 1);
            }
        }
        panic!(
            "{}: {} lines expected, {} produced",
            path.display(),
            want.lines().count(),
            text.lines().count()
        );
    }
}
