//! Signature-scan cost for profilers: scans the labelled HTTP corpus
//! (`tests/corpus/`) with the built-in rules `WARM` times, then `MEAS` more
//! passes inside `measured` (a symbol to aim callgrind at), and prints the
//! fastest and median pass in MiB/s. Instruction counts, stable on a noisy
//! machine:
//! `WARM=3 MEAS=1 valgrind --tool=callgrind --toggle-collect='sig_probe::measured'
//!  target/release/examples/sig_probe`
use flowgate::config::Config;
use flowgate::ruleset::Ruleset;
use flowgate::signature::Scanner;

#[path = "../tests/common/corpus.rs"]
#[allow(dead_code)]
mod corpus;

mod common;

fn main() {
    let env = common::env;
    let rules = Ruleset::load(&Config::default().signatures).expect("rules");
    let mut scanner = Scanner::new(rules.signatures.clone().expect("signatures")).expect("scratch");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut reqs: Vec<Vec<u8>> = Vec::new();
    for name in ["benign.jsonl", "sqli_malicious.jsonl"] {
        reqs.extend(corpus::load(root, name).iter().map(|r| r.bytes()));
    }
    let bytes: usize = reqs.iter().map(Vec::len).sum();
    let (warm, meas) = (env("WARM", 3), env("MEAS", 20).max(1));
    let mut hits = 0;
    for _ in 0..warm {
        hits = scan_pass(&mut scanner, &reqs);
    }
    let mut rate = Vec::new();
    for _ in 0..meas {
        let t = std::time::Instant::now();
        measured(&mut scanner, &reqs);
        rate.push(bytes as f64 / t.elapsed().as_secs_f64() / (1 << 20) as f64);
    }
    rate.sort_by(f64::total_cmp);
    println!(
        "{} requests, {bytes} bytes, {hits} hits: fastest {:.1} MiB/s, median {:.1}; {:.0} ns/request (fastest)",
        reqs.len(),
        rate[rate.len() - 1],
        rate[rate.len() / 2],
        bytes as f64 / reqs.len() as f64 / (rate[rate.len() - 1] * (1 << 20) as f64) * 1e9
    );
}

#[inline(never)]
fn measured(scanner: &mut Scanner, reqs: &[Vec<u8>]) -> usize {
    scan_pass(scanner, reqs)
}

/// One pass, with no header line remembered from the pass before.
fn scan_pass(scanner: &mut Scanner, reqs: &[Vec<u8>]) -> usize {
    scanner.forget_clean();
    reqs.iter()
        .filter(|r| scanner.scan_requests(std::hint::black_box(r)).is_some())
        .count()
}
