//! Per-packet costs on 64–128 byte mixed traffic: parse, shard pick, and a
//! full engine step (parse + blocklist + detectors + verdict).

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use flowgate::config::Config;
use flowgate::engine::{RawFrame, ShardEngine};
use flowgate::packet::{self, LinkType};
use flowgate::ruleset::Ruleset;
use flowgate::shard::Sharder;
use std::hint::black_box;
use std::sync::Arc;

#[path = "../tests/common/corpus.rs"]
#[allow(dead_code)]
mod corpus;

fn bench(c: &mut Criterion) {
    let fs = flowgate_synth::perf_mix_frames(100_000, 20_000, 1);
    let mut g = c.benchmark_group("per_packet");
    g.throughput(Throughput::Elements(fs.len() as u64));

    g.bench_function("parse", |b| {
        b.iter(|| {
            for (_, f) in &fs {
                let _ = black_box(packet::parse(
                    LinkType::Ethernet,
                    black_box(f),
                    f.len() as u32,
                ));
            }
        })
    });

    g.bench_function("shard_pick", |b| {
        b.iter(|| {
            let mut acc = 0usize;
            for (_, f) in &fs {
                if let Some(ip) = packet::source_of(LinkType::Ethernet, black_box(f)) {
                    acc += Sharder::DEFAULT.shard_of(ip, 4);
                }
            }
            black_box(acc)
        })
    });

    let cfg = Arc::new(Config::default());
    let rules = Arc::new(Ruleset::load(&cfg.signatures).expect("rules"));
    g.bench_function("engine_step", |b| {
        b.iter_batched_ref(
            || ShardEngine::new(cfg.clone(), rules.clone()).expect("engine"),
            |eng| {
                for (i, (ts, f)) in fs.iter().enumerate() {
                    let raw = RawFrame {
                        idx: i as u64 + 1,
                        ts: *ts,
                        link: LinkType::Ethernet,
                        data: f,
                        wire_len: f.len() as u32,
                    };
                    black_box(eng.process(&raw));
                }
                eng.take_events().len()
            },
            BatchSize::LargeInput,
        )
    });

    // Steady state (see `warm`): a gateway's normal operating point, where
    // `engine_step` above counts a cold table (a fifth of its packets
    // insert a new source).
    bench_warm(&mut g, "engine_step_warm", &fs, cfg.clone(), false);
    // The item-3 target: parse + shard pick + behavioural detectors (no
    // payload inspection), warm.
    let mut behaviour_cfg = Config::default();
    behaviour_cfg.signatures.enabled = false;
    let behaviour_cfg = Arc::new(behaviour_cfg);
    bench_warm(
        &mut g,
        "behaviour_step_warm",
        &fs,
        behaviour_cfg.clone(),
        true,
    );
    g.finish();

    // The same work where almost no source is blocked: with four times the
    // frames per pass the mix's SYNs are spread over four times the packet
    // time, so few sources cross a limit (289 of 20 983 blocked, against
    // 6 824 of 13 345 above) and every packet runs the detectors. The
    // regime above is the flattering one; this one shows regressions in
    // the detectors themselves (perf/RESULTS.md, "Hot path", session 8).
    let open = flowgate_synth::perf_mix_frames(400_000, 20_000, 1);
    let mut g = c.benchmark_group("per_packet_few_blocked");
    g.throughput(Throughput::Elements(open.len() as u64));
    bench_warm(&mut g, "behaviour_step_warm", &open, behaviour_cfg, true);
    g.finish();
}

/// Registers a steady-state bench: an engine warmed by [`warm`], one
/// untimed pass more, then timed passes.
fn bench_warm(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    fs: &[(u64, Vec<u8>)],
    cfg: Arc<Config>,
    shard_pick: bool,
) {
    let mut run = warm(fs, cfg, shard_pick);
    run(1);
    g.bench_function(name, |b| b.iter_custom(&mut run));
}

/// Steady state: one engine fed the mix over and over, each pass later in
/// packet time by the capture's span (so windows, idle timeouts and block
/// TTLs run as on a long capture), with the timer calls the pipeline
/// makes. `WARM_PASSES` passes run before measuring: by then every source
/// is known and the state has stopped changing (the mix's benign SYNs are
/// never answered, so from about pass 20 on a third of its clients are
/// blocked as half-open or scanning, and stay so). `engine_step` is the
/// other end, a cold table where a fifth of the packets insert a source.
/// With `shard_pick` each packet's source is also read and hashed to a
/// shard, as the reader does.
fn warm(
    fs: &[(u64, Vec<u8>)],
    cfg: Arc<Config>,
    shard_pick: bool,
) -> impl FnMut(u64) -> std::time::Duration + '_ {
    let span = fs.last().map_or(0, |f| f.0) - fs.first().map_or(0, |f| f.0) + 1_000;
    let rules = Arc::new(Ruleset::load(&cfg.signatures).expect("rules"));
    let mut eng = ShardEngine::new(cfg.clone(), rules).expect("engine");
    let sharder = cfg.sharder();
    let mut pass = 0u64;
    for _ in 0..WARM_PASSES {
        feed(&mut eng, fs, pass * span);
        pass += 1;
    }
    move |iters: u64| {
        let start = std::time::Instant::now();
        let mut acc = 0usize;
        for _ in 0..iters {
            let shift = pass * span;
            pass += 1;
            for (i, (ts, f)) in fs.iter().enumerate() {
                if shard_pick {
                    if let Some(ip) = packet::source_of(LinkType::Ethernet, black_box(f)) {
                        acc += sharder.shard_of(ip, 4);
                    }
                }
                step(&mut eng, i, ts + shift, f);
            }
            acc += eng.take_events().len();
        }
        black_box(acc);
        start.elapsed()
    }
}

/// Scans every request in turn; the number that hit a rule.
/// One pass over `reqs`, starting with no header line remembered: a pass
/// gains nothing from the one before (conservative: a shard's memo would
/// still hold the popular lines).
fn scan_all(scanner: &mut flowgate::signature::Scanner, reqs: &[Vec<u8>]) -> usize {
    scanner.forget_clean();
    let hits = reqs
        .iter()
        .filter(|r| scanner.scan_requests(black_box(r)).is_some());
    black_box(hits.count())
}

/// Passes of the mix before the warm benches measure (see [`warm`]).
const WARM_PASSES: u64 = 30;

fn feed(eng: &mut ShardEngine, fs: &[(u64, Vec<u8>)], shift: u64) {
    for (i, (ts, f)) in fs.iter().enumerate() {
        step(eng, i, ts + shift, f);
    }
    eng.take_events();
}

/// One frame as the pipeline hands it over, timers first.
#[inline]
fn step(eng: &mut ShardEngine, i: usize, ts: u64, f: &[u8]) {
    if ts >= eng.poll_timeout() {
        eng.handle_timeout(ts);
    }
    black_box(eng.process(&RawFrame {
        idx: i as u64 + 1,
        ts,
        link: LinkType::Ethernet,
        data: f,
        wire_len: f.len() as u32,
    }));
}

/// Signature scan of realistic HTTP requests (the labelled corpus: 4390
/// benign, 700 malicious), bytes of raw request per second on one core.
/// `scan_http_corpus` is the default scanner (every request normalized and
/// scanned in full); `scan_http_corpus_prefilter` turns the literal
/// prefilter on (same hits); `scan_benign` and `scan_malicious` split the
/// corpus by label, default scanner.
fn signatures(c: &mut Criterion) {
    let rules = flowgate::ruleset::Ruleset::load(&Config::default().signatures).expect("rules");
    let mut scanner = flowgate::signature::Scanner::new(rules.signatures.clone().expect("sigs"))
        .expect("scratch");
    let mut pre = flowgate::signature::Scanner::new(rules.signatures.clone().expect("sigs"))
        .expect("scratch");
    pre.set_prefilter(true);
    let mut reqs: Vec<Vec<u8>> = Vec::new();
    let mut benign = 0;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["benign.jsonl", "sqli_malicious.jsonl"] {
        reqs.extend(corpus::load(root, name).iter().map(|r| r.bytes()));
        if name == "benign.jsonl" {
            benign = reqs.len();
        }
    }
    let bytes = |rs: &[Vec<u8>]| rs.iter().map(|r| r.len()).sum::<usize>() as u64;
    {
        let before = pre.prefilter_skips();
        for r in &reqs {
            pre.scan_requests(r);
        }
        let after = pre.prefilter_skips();
        eprintln!(
            "signatures: {} requests, {} bytes; prefilter skips {} heads, {} bodies per pass",
            reqs.len(),
            bytes(&reqs),
            after.0 - before.0,
            after.1 - before.1
        );
    }
    let mut g = c.benchmark_group("signatures");
    g.throughput(Throughput::Bytes(bytes(&reqs)));
    g.bench_function("scan_http_corpus", |b| {
        b.iter(|| scan_all(&mut scanner, &reqs))
    });
    g.bench_function("scan_http_corpus_prefilter", |b| {
        b.iter(|| scan_all(&mut pre, &reqs))
    });
    for (name, part) in [
        ("scan_benign", &reqs[..benign]),
        ("scan_malicious", &reqs[benign..]),
    ] {
        g.throughput(Throughput::Bytes(bytes(part)));
        g.bench_function(name, |b| b.iter(|| scan_all(&mut scanner, part)));
    }
    g.throughput(Throughput::Bytes(bytes(&reqs)));
    // The same corpus with more rule files, e.g. ET Open's web rules (not
    // in the repository): FLOWGATE_BENCH_RULES=a.rules:b.rules.
    if let Ok(files) = std::env::var("FLOWGATE_BENCH_RULES") {
        let mut sg = Config::default().signatures;
        sg.rule_files = std::env::split_paths(&files).collect();
        match flowgate::ruleset::Ruleset::load(&sg) {
            Ok(rs) => {
                let n = rs.signature_count();
                let mut et =
                    flowgate::signature::Scanner::new(rs.signatures.clone().expect("sigs"))
                        .expect("scratch");
                eprintln!("signatures/scan_http_corpus_extra: {n} rules");
                g.bench_function("scan_http_corpus_extra", |b| {
                    b.iter(|| scan_all(&mut et, &reqs))
                });
            }
            Err(e) => eprintln!("FLOWGATE_BENCH_RULES: {e}"),
        }
    }
    g.finish();

    // The structural SQL detector on every query and body value of the
    // corpus (decoded as the engine does), values per second.
    let mut values: Vec<Vec<u8>> = Vec::new();
    let mut scratch = flowgate::http::Scratch::default();
    for r in &reqs {
        let Some(end) = r.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let Ok(head) = flowgate::http::head::parse(&r[..end + 4]) else {
            continue;
        };
        let mut push = |v: flowgate::http::params::Value<'_>| {
            let mut out = Vec::new();
            flowgate::http::decode(v.raw, flowgate::http::Norm::FORM, &mut out, &mut scratch);
            values.push(out);
        };
        flowgate::http::params::head_values(&r[..end + 4], &head, &mut push);
        let mut body = flowgate::http::params::BodyValues::new(&head);
        body.push(&r[end + 4..], &mut push);
        body.finish(&mut push);
    }
    let mut det = flowgate::sqli::Detector::new();
    let mut g = c.benchmark_group("sqli");
    g.throughput(Throughput::Elements(values.len() as u64));
    g.bench_function("structural_values", |b| {
        b.iter(|| {
            let mut hits = 0;
            for v in &values {
                hits += det.detect(black_box(v)).is_some() as usize;
            }
            black_box(hits)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench, signatures
}
criterion_main!(benches);
