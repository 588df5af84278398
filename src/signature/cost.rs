//! What the Hyperscan scans of one pass over the HTTP corpus cost, by kind
//! of buffer, and the most a literal gate in front of them could save (a
//! measurement, not a check; issue 12 item 4):
//! `cargo test --release --lib signature::cost -- --ignored --nocapture`.
//!
//! The buffers are the ones a pass of the scanner hands to Hyperscan (see
//! `Scanner::scan_head` and `Scanner::body_last`): each distinct target
//! and each distinct header line once (the memos skip repeats within a
//! pass), credential lines (`Cookie`, `Authorization`,
//! `Proxy-Authorization`) every time (never memoized), every body, all
//! normalized as the scanner does. Each kind is timed with
//! the built-in databases, best of five passes.
//!
//! The gate: for each built-in rule, a set of lowercase literals one of
//! which every match of its pattern on a normalized buffer contains, read
//! off the pattern by hand (`GATE`). A buffer holding none of them could
//! skip Hyperscan. The sets are as selective as the patterns allow or more
//! (where in doubt, the rarer side of an AND), so the saving printed is an
//! upper bound; the gate's own cost is a Hyperscan literal database over
//! the same buffers.

use crate::http::{self, Norm};
use hyperscan::{BlockDatabase, Builder, Matching, Pattern, PatternFlags, Patterns};

#[path = "../../tests/common/corpus.rs"]
#[allow(dead_code)]
mod corpus;

/// Per built-in rule: literals one of which each match contains.
const GATE: &[(u32, &[&str])] = &[
    (9101001, &["'", "\"", "`"]),
    (
        9101002,
        &[
            "or ", "and ", "xor ", "having ", "where ", "&&", "||", "or\n", "and\n",
        ],
    ),
    (9101003, &["or ", "||", "or\n"]),
    (9101010, &["union"]),
    (
        9101020,
        &[
            "drop", "exec", "shutdown", "insert", "delete", "update", "truncate", "declare",
            "create", "alter", "waitfor", "grant", "copy", "select",
        ],
    ),
    (9101030, &["sleep", "benchmark", "dbms_", "randomblob"]),
    (9101031, &["waitfor"]),
    (
        9101040,
        &[
            "ascii(",
            "ascii (",
            "ord(",
            "ord (",
            "substr(",
            "substr (",
            "mid(",
            "mid (",
            "left(",
            "left (",
            "right(",
            "right (",
            "length(",
            "length (",
            "hex(",
            "hex (",
            "bin(",
            "bin (",
            "unicode(",
            "unicode (",
            "if(",
            "if (",
            "exists(",
            "exists (",
            "when(",
            "when (",
        ],
    ),
    (9101041, &["select"]),
    (
        9101050,
        &[
            "extractvalue",
            "updatexml",
            "xmltype",
            "gtid_",
            "st_latfromgeohash",
            "json_keys",
            "exp",
            "floor",
            "convert",
            "cast",
            "utl_inaddr",
            "ctxsys",
            "dbms_xmlgen",
        ],
    ),
    (
        9101060,
        &[
            "information_schema",
            "sysobjects",
            "syscolumns",
            "sys.",
            "mysql",
            "pg_",
            "sqlite_master",
            "all_tab",
            "user_tables",
            "@@",
            "system_user",
            "current_user",
            "schema",
            "database",
        ],
    ),
    (9101061, &["concat", "char", "chr"]),
    (9101070, &["'", "\""]),
    (9101071, &["order ", "group ", "order\n", "group\n"]),
    (
        9101080,
        &[
            "load_file",
            "into ",
            "xp_",
            "sp_",
            "utl_",
            "dbms_",
            "master",
            "openrowset",
            "opendatasource",
            "program",
            "lo_",
        ],
    ),
    (9101081, &["'", "concat"]),
    (9101004, &["between", "in(", "in ("]),
    (9101005, &["null", "like "]),
    (9101042, &["when"]),
    (9101072, &["--", "'", "\""]),
    (9101073, &["#"]),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Target,
    Line,
    Credential,
    Body,
}

/// The normalized buffers of one pass: (kind, malicious, bytes), and the
/// pass's raw request bytes.
fn buffers() -> (Vec<(Kind, bool, Vec<u8>)>, usize) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut s = http::Scratch::default();
    let mut out = Vec::new();
    let mut raw_bytes = 0;
    let (mut targets, mut lines) = (
        std::collections::HashSet::new(),
        std::collections::HashSet::new(),
    );
    for name in ["benign.jsonl", "sqli_malicious.jsonl"] {
        let bad = name.starts_with("sqli");
        for req in corpus::load(root, name) {
            let r = req.bytes();
            raw_bytes += r.len();
            let h = http::head::parse(&r).expect("corpus head");
            let target = &r[h.target.0..h.target.1];
            if targets.insert(target.to_vec()) {
                let mut o = Vec::new();
                http::normalize(target, Norm::FORM, &mut o, &mut s);
                out.push((Kind::Target, bad, o));
            }
            for f in &h.fields {
                let line = &r[f.name.0..f.value.1];
                let cred = super::holds_credentials(&r[f.name.0..f.name.1]);
                if cred || lines.insert(line.to_vec()) {
                    let mut o = Vec::new();
                    http::normalize(line, Norm::PLAIN, &mut o, &mut s);
                    o.push(b'\n');
                    out.push((if cred { Kind::Credential } else { Kind::Line }, bad, o));
                }
            }
            if !req.body.is_empty() {
                let mut o = Vec::new();
                http::normalize(
                    req.body.as_bytes(),
                    super::body_norm(h.body_kind),
                    &mut o,
                    &mut s,
                );
                out.push((Kind::Body, bad, o));
            }
        }
    }
    (out, raw_bytes)
}

/// Nanoseconds to scan each of `bufs` once with `db`, best of five passes.
fn time(db: &BlockDatabase, bufs: &[&[u8]]) -> f64 {
    let sc = db.alloc_scratch().expect("scratch");
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        for b in bufs {
            db.scan(*b, &sc, |_, _, _, _| Matching::Continue)
                .expect("scan");
        }
        best = best.min(t.elapsed().as_nanos() as f64);
    }
    best
}

#[test]
#[ignore]
fn hyperscan_per_pass_and_what_a_literal_gate_could_save() {
    let set = super::tests::builtin_set();
    let head = set.head.as_ref().expect("head database");
    let body = set.body_block.as_ref().expect("body database");
    let (bufs, raw_bytes) = buffers();
    let mut toks: Vec<&str> = GATE.iter().flat_map(|g| g.1.iter().copied()).collect();
    toks.sort_unstable();
    toks.dedup();
    let gate: BlockDatabase = Patterns(
        toks.iter()
            .enumerate()
            .map(|(i, t)| {
                let expr: String = t.bytes().map(|b| format!("\\x{b:02x}")).collect();
                let mut p = Pattern::with_flags(expr, PatternFlags::SINGLEMATCH).expect("literal");
                p.id = Some(i);
                p
            })
            .collect(),
    )
    .build()
    .expect("gate database");
    let holds = |b: &[u8]| {
        toks.iter()
            .any(|t| memchr::memmem::find(b, t.as_bytes()).is_some())
    };
    eprintln!(
        "corpus pass: {} raw bytes; 500 MiB/s leaves {:.2} ms per pass",
        raw_bytes,
        raw_bytes as f64 / (500u64 << 20) as f64 * 1e3
    );
    let (mut all, mut skippable, mut gate_ns) = (0.0, 0.0, 0.0);
    for kind in [Kind::Target, Kind::Line, Kind::Credential, Kind::Body] {
        for bad in [false, true] {
            let part: Vec<&[u8]> = bufs
                .iter()
                .filter(|b| b.0 == kind && b.1 == bad)
                .map(|b| b.2.as_slice())
                .collect();
            if part.is_empty() {
                continue;
            }
            let db = if kind == Kind::Body { body } else { head };
            let ns = time(db, &part);
            let clean: Vec<&[u8]> = part.iter().copied().filter(|b| !holds(b)).collect();
            let saved = time(db, &clean);
            let g = time(&gate, &part);
            let bytes: usize = part.iter().map(|b| b.len()).sum();
            eprintln!(
                "{kind:?} {}: {} buffers, {} B avg; Hyperscan {:.0} ns each, {:.2} ms; no gate literal in {} ({:.2} ms of it); gate {:.2} ms",
                if bad { "malicious" } else { "benign" },
                part.len(),
                bytes / part.len(),
                ns / part.len() as f64,
                ns / 1e6,
                clean.len(),
                saved / 1e6,
                g / 1e6
            );
            all += ns;
            skippable += saved;
            gate_ns += g;
        }
    }
    eprintln!(
        "Hyperscan per pass {:.2} ms; a gate could skip {:.2} ms of it and costs {:.2} ms itself",
        all / 1e6,
        skippable / 1e6,
        gate_ns / 1e6
    );
}
