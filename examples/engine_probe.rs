//! Steady-state engine cost for profilers: feeds one `ShardEngine` the
//! synthetic 64–128-byte mix (100 000 frames, 20 000 sources) `WARM` times,
//! each pass later in packet time by the capture's span, then `MEAS` more
//! passes inside `measured` (a symbol to aim callgrind at), and prints the
//! fastest and median pass. `beh` as the first argument turns signatures
//! off (behavioural detectors only). `SOURCES` (20 000) and `FRAMES`
//! (100 000) change the mix, e.g. to see what a larger table costs.
//!
//! Instruction and simulated cache-miss counts, stable on a noisy machine:
//! `WARM=30 MEAS=2 valgrind --tool=callgrind --cache-sim=yes --LL=2097152,16,64
//!  --toggle-collect='engine_probe::measured' target/release/examples/engine_probe beh`
use flowgate::config::Config;
use flowgate::engine::{RawFrame, ShardEngine};
use flowgate::packet::LinkType;
use flowgate::ruleset::Ruleset;
use std::sync::Arc;

type Frames = [(u64, Vec<u8>)];

mod common;

fn main() {
    let env = common::env;
    let sources = env("SOURCES", 20_000) as u32;
    let fs = flowgate_synth::perf_mix_frames(env("FRAMES", 100_000), sources, 1);
    let mut cfg = Config::default();
    cfg.tables.sources = cfg.tables.sources.max(2 * sources as usize);
    cfg.signatures.enabled = std::env::args().nth(1).as_deref() != Some("beh");
    let cfg = Arc::new(cfg);
    let rules = Arc::new(Ruleset::load(&cfg.signatures).expect("rules"));
    let mut eng = ShardEngine::new(cfg, rules).expect("engine");
    let span = fs.last().map_or(0, |f| f.0) - fs.first().map_or(0, |f| f.0) + 1_000;
    let (warm, meas) = (env("WARM", 30), env("MEAS", 20).max(1));
    for pass in 0..warm {
        run_pass(&mut eng, &fs, pass * span);
    }
    let mut ns = Vec::new();
    for pass in warm..warm + meas {
        let t = std::time::Instant::now();
        measured(&mut eng, &fs, pass * span);
        ns.push(t.elapsed().as_nanos() as f64 / fs.len() as f64);
    }
    ns.sort_by(f64::total_cmp);
    println!(
        "after {warm} passes: fastest {:.1} ns/packet, median {:.1}; {} sources tracked, {} blocked",
        ns[0],
        ns[ns.len() / 2],
        eng.tracked_sources(),
        eng.blocked_sources()
    );
}

#[inline(never)]
fn measured(eng: &mut ShardEngine, fs: &Frames, shift: u64) {
    run_pass(eng, fs, shift)
}

fn run_pass(eng: &mut ShardEngine, fs: &Frames, shift: u64) {
    for (i, (ts, f)) in fs.iter().enumerate() {
        let ts = ts + shift;
        if ts >= eng.poll_timeout() {
            eng.handle_timeout(ts);
        }
        std::hint::black_box(eng.process(&frame(f, i as u64 + 1, ts)));
    }
    eng.take_events();
}

fn frame(f: &[u8], idx: u64, ts: u64) -> RawFrame<'_> {
    RawFrame {
        idx,
        ts,
        link: LinkType::Ethernet,
        data: f,
        wire_len: f.len() as u32,
    }
}
