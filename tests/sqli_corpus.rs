//! Detection and false-positive rates of the built-in SQL injection rules
//! on the labelled corpus in tests/corpus/ (see its README).

mod common;
use flowgate::config::Config;
use flowgate::ruleset::Ruleset;
use flowgate::signature::Scanner;

use common::corpus::Req;

fn load(name: &str) -> Vec<Req> {
    common::corpus::load(&common::root(), name)
}

fn scanner() -> Scanner {
    let rules = Ruleset::load(&Config::default().signatures).expect("builtin rules");
    Scanner::new(rules.signatures.clone().expect("signatures")).expect("scratch")
}

#[test]
fn builtin_sqli_rules_meet_detection_and_false_positive_targets() {
    let mut sc = scanner();
    let bad = load("sqli_malicious.jsonl");
    let good = load("benign.jsonl");
    let mut missed = Vec::new();
    for r in &bad {
        if sc.scan_requests(&r.bytes()).is_none() {
            missed.push(format!("{} {} {}", r.id, r.family, r.uri));
        }
    }
    let mut fps = Vec::new();
    for r in &good {
        if let Some(h) = sc.scan_requests(&r.bytes()) {
            fps.push(format!(
                "{} {} {} -> {} in {}: {}",
                r.id,
                r.family,
                r.uri,
                h.meta.name,
                h.buffer.name(),
                h.excerpt
            ));
        }
    }
    let det = 100.0 * (bad.len() - missed.len()) as f64 / bad.len() as f64;
    let fp = 100.0 * fps.len() as f64 / good.len() as f64;
    println!("SQLi corpus: detection {det:.2}% ({} of {} malicious), false positives {fp:.3}% ({} of {} benign)", bad.len() - missed.len(), bad.len(), fps.len(), good.len());
    for m in &missed {
        println!("  missed: {m}");
    }
    for f in &fps {
        println!("  false positive: {f}");
    }
    assert!(bad.len() >= 300 && good.len() >= 3000, "corpus too small");
    assert!(det >= 97.0, "detection {det:.2}% < 97%");
    assert!(fp <= 0.1, "false positives {fp:.3}% > 0.1%");
}
