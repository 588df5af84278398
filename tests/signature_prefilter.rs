//! The literal prefilter of the signature scanner changes speed, never
//! results: with it on and off, every request of the labelled corpus, the
//! same requests cut into segments, and random encoded attack strings in
//! every view (query, header, form, JSON and plain bodies) give the same
//! first hit (rule, buffer, excerpt) on the same segment. Likewise a body
//! scanned whole in block mode and the same body as a stream get the same
//! verdict, and a header line skipped because the shard saw it clean
//! before gets the verdict a scan of it would give.

mod common;
use flowgate::config::Config;
use flowgate::http::head;
use flowgate::ruleset::Ruleset;
use flowgate::signature::{Hit, RequestScan, Scanner};
use proptest::prelude::*;

fn corpus() -> Vec<Vec<u8>> {
    ["benign.jsonl", "sqli_malicious.jsonl"]
        .iter()
        .flat_map(|name| common::corpus::load(&common::root(), name))
        .map(|r| r.bytes())
        .collect()
}

fn scanner(prefilter: bool) -> Scanner {
    let rules = Ruleset::load(&Config::default().signatures).expect("builtin rules");
    let mut s = Scanner::new(rules.signatures.clone().expect("signatures")).expect("scratch");
    s.set_prefilter(prefilter);
    s
}

type Key = (u32, &'static str, String);

fn key(h: Hit) -> Key {
    (h.meta.id, h.buffer.name(), h.excerpt)
}

/// Feeds one request as a head and then its body cut at `cuts`; returns
/// the first hit and the step it came in (0 head, 1.. body segments,
/// `usize::MAX` the end).
fn segmented(s: &mut Scanner, req: &[u8], cuts: &[usize]) -> Option<(usize, Key)> {
    let end = req.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let h = head::parse(&req[..end]).ok()?;
    let mut rs = RequestScan::default();
    if let Some(hit) = s.head(&mut rs, &req[..end], &h) {
        return Some((0, key(hit)));
    }
    let body = &req[end..];
    let mut prev = 0;
    for (i, &c) in cuts.iter().chain([&body.len()]).enumerate() {
        let c = c.clamp(prev, body.len());
        if let Some(hit) = s.body(&mut rs, &body[prev..c]) {
            return Some((i + 1, key(hit)));
        }
        prev = c;
    }
    s.end(&mut rs).map(|h| (usize::MAX, key(h)))
}

/// A small deterministic generator (xorshift) for cut points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn builtin_rules_have_a_prefilter_that_skips_some_requests() {
    let mut on = scanner(true);
    assert!(on.has_prefilter());
    let reqs = corpus();
    for r in &reqs {
        on.scan_requests(r);
    }
    let (heads, bodies) = on.prefilter_skips();
    eprintln!(
        "{} requests: {heads} heads and {bodies} bodies skipped",
        reqs.len()
    );
    assert!(heads > 0 && bodies > 0, "{heads} {bodies}");
}

#[test]
fn corpus_hits_are_the_same_with_and_without_the_prefilter() {
    let (mut on, mut off) = (scanner(true), scanner(false));
    let mut hits = 0;
    for (i, r) in corpus().iter().enumerate() {
        let a = on.scan_requests(r).map(key);
        let b = off.scan_requests(r).map(key);
        assert_eq!(a, b, "request {i}: {}", String::from_utf8_lossy(r));
        hits += a.is_some() as usize;
    }
    assert!(hits > 600, "{hits} hits");
}

#[test]
fn corpus_hits_are_the_same_on_the_same_segment_when_bodies_are_cut() {
    let (mut on, mut off) = (scanner(true), scanner(false));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (i, r) in corpus().iter().enumerate() {
        for _ in 0..3 {
            let n = rng.below(6);
            let mut cuts: Vec<usize> = (0..n).map(|_| rng.below(r.len())).collect();
            cuts.sort_unstable();
            let a = segmented(&mut on, r, &cuts);
            let b = segmented(&mut off, r, &cuts);
            assert_eq!(a, b, "request {i} cut at {cuts:?}");
        }
    }
}

/// A body that arrives whole (one piece of known length) is scanned in
/// block mode (`Scanner::body_last`); the same body fed as a stream and
/// ended gets the same verdict on every corpus request, with the prefilter
/// off and on. Only the rule named may differ, and only where one rule
/// completes inside the body and an earlier one (in rule order) at its
/// end: the block scan sees both at once and names the earlier.
#[test]
fn bodies_scanned_whole_get_the_verdict_they_get_as_a_stream() {
    let rules = Ruleset::load(&Config::default().signatures).expect("builtin rules");
    let action_of = |id: u32| {
        let set = rules.signatures.as_ref()?;
        set.rules.iter().find(|(m, _, _)| m.id == id).map(|r| r.1)
    };
    for pre in [false, true] {
        let (mut whole, mut streamed) = (scanner(pre), scanner(pre));
        let (mut bodies, mut renamed) = (0, 0);
        for (i, r) in corpus().iter().enumerate() {
            let end = r
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(0, |e| e + 4);
            if end == r.len() {
                continue;
            }
            bodies += 1;
            let a = whole.scan_requests(r).map(|h| (h.action, h.meta.id));
            let b = segmented(&mut streamed, r, &[]).map(|(_, k)| k.0);
            assert_eq!(
                a.is_some(),
                b.is_some(),
                "request {i}: {}",
                String::from_utf8_lossy(r)
            );
            if let (Some((action, id)), Some(sid)) = (a, b) {
                assert_eq!(
                    Some(action),
                    action_of(sid),
                    "request {i}: action of {id} vs {sid}"
                );
                renamed += (id != sid) as usize;
            }
        }
        eprintln!("prefilter {pre}: {bodies} requests with a body, {renamed} named another rule");
        assert!(bodies > 1000, "{bodies} bodies");
        assert!(renamed * 100 < bodies, "{renamed} of {bodies} renamed");
    }
}

/// Encoded attacks are still caught with the prefilter on: every encoding
/// the normalizer undoes is undone before the prefilter looks for tokens.
#[test]
fn encoded_attacks_still_alert_with_the_prefilter() {
    let post = |ct: &str, b: &str| {
        format!(
            "POST /l HTTP/1.1\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )
    };
    let chunked = |pieces: &[&str]| {
        let mut r = String::from(
            "POST /l HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        for p in pieces {
            r += &format!("{:x}\r\n{p}\r\n", p.len());
        }
        r + "0\r\n\r\n"
    };
    let mut cases: Vec<String> = [
        "GET /p?id=1%2527%2520UnIoN%2520SeLeCt%25201,2 HTTP/1.1\r\n\r\n",
        "GET /p?id=1%u0027%u0020or%u0020%u00271%u0027=%u00271 HTTP/1.1\r\n\r\n",
        "GET /p?id=1%uff07+or+%uff071%uff07%uff1d%uff071 HTTP/1.1\r\n\r\n",
        "GET /p?id=-1+UnIoN/**/SeLeCt/*x*/1,2 HTTP/1.1\r\n\r\n",
        "GET /p?id=-1/*!50000UnIoN*//*!50000SeLeCt*/1,2,3 HTTP/1.1\r\n\r\n",
        "GET /p?id=%%32%37%20or%20%271%27%3d%271 HTTP/1.1\r\n\r\n",
        "GET /p?id=1%25%32%37+or+%25%32%371%25%32%37=%25%32%371 HTTP/1.1\r\n\r\n",
        "GET /p?id=1 HTTP/1.1\r\nCookie: sid=1%27%20or%20%271%27%3D%271\r\n\r\n",
        "GET /p?id=1 HTTP/1.1\r\nX-Forwarded-For: 1' Or SlEeP(5)-- -\r\n\r\n",
    ]
    .map(String::from)
    .to_vec();
    cases.push(post(
        "application/json",
        r#"{"u":"a\u0027 \u004fR \u00271\u0027=\u00271"}"#,
    ));
    cases.push(post(
        "application/json",
        r#"{"u":"x%5cu0027 or sleep(5)-- -"}"#,
    ));
    cases.push(post(
        "application/x-www-form-urlencoded",
        "u=1%27+%55NION%09%0bSELECT+null,null--+-",
    ));
    cases.push(post("text/plain", "1 union--x\nselect 1,2 from users"));
    cases.push(chunked(&["q=1%27", "%20or%20%27", "1%27=%2", "71x"]));
    let (mut on, mut off) = (scanner(true), scanner(false));
    for c in &cases {
        let a = on.scan_requests(c.as_bytes()).map(key);
        let b = off.scan_requests(c.as_bytes()).map(key);
        assert!(a.is_some(), "missed with the prefilter: {c:?}");
        assert_eq!(a, b, "{c:?}");
    }
}

/// Pieces an attacker would combine: keywords, quotes, operators, every
/// encoding and comment form the normalizer knows, and bytes that make
/// encodings out of their neighbours.
const PIECES: [&str; 56] = [
    "union",
    "UnIoN",
    "select",
    "SELECT",
    "or",
    "OR",
    "and",
    "sleep(",
    "benchmark(",
    "1",
    "5",
    "=",
    "'",
    "\"",
    "`",
    ")",
    "(",
    " ",
    "+",
    "\t",
    "%20",
    "%09",
    "%0a",
    "%0d%0a",
    "%27",
    "%2527",
    "%u0027",
    "%uff07",
    "%22",
    "%%32%37",
    "%25",
    "%",
    "2",
    "7",
    "u",
    "00",
    "\\u0027",
    "\\",
    "%5c",
    "/**/",
    "/*",
    "*/",
    "/*!50000",
    "--",
    "-- -",
    "#",
    "\n",
    ";",
    "drop table",
    "information_schema.",
    "tables",
    "waitfor delay '",
    "0:0:5'",
    "concat(",
    "char(",
    "@@version",
];

fn build(pieces: &[usize]) -> String {
    pieces.iter().map(|&i| PIECES[i % PIECES.len()]).collect()
}

fn requests(s: &str) -> Vec<Vec<u8>> {
    let body = |ct: &str, b: &str| {
        format!(
            "POST /f HTTP/1.1\r\nHost: h\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )
    };
    let line: String = s.chars().filter(|c| !c.is_control()).collect();
    vec![
        format!(
            "GET /p?q={} HTTP/1.1\r\nHost: h\r\n\r\n",
            line.replace(' ', "+")
        ),
        format!("GET /p HTTP/1.1\r\nHost: h\r\nCookie: a={line}\r\n\r\n"),
        body("application/x-www-form-urlencoded", &format!("a={s}")),
        body("application/json", &format!("{{\"q\":\"{s}\"}}")),
        body("text/plain", s),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

thread_local! {
    /// Compiling the rules takes a while: one pair of scanners per thread.
    static PAIR: std::cell::RefCell<(Scanner, Scanner)> =
        std::cell::RefCell::new((scanner(true), scanner(false)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn random_encoded_strings_hit_the_same_with_and_without_the_prefilter(
        pieces in proptest::collection::vec(0usize..PIECES.len(), 1..24),
        cut_seed in any::<u64>(),
    ) {
        let s = build(&pieces);
        let mut rng = Rng(cut_seed | 1);
        PAIR.with(|p| {
            let (on, off) = &mut *p.borrow_mut();
            for r in requests(&s) {
                prop_assert_eq!(on.scan_requests(&r).map(key), off.scan_requests(&r).map(key));
                let n = rng.below(5);
                let mut cuts: Vec<usize> = (0..n).map(|_| rng.below(r.len())).collect();
                cuts.sort_unstable();
                prop_assert_eq!(segmented(on, &r, &cuts), segmented(off, &r, &cuts));
            }
            Ok(())
        })?;
    }
}

/// The header-line memo changes no hit: each corpus request scanned by a
/// scanner that has seen every earlier request (most header lines are
/// skipped) and by one that has forgotten them (nothing skipped) gives the same first hit,
/// rule, buffer and excerpt, prefilter off and on; so does the request
/// sent again right after, all its lines just seen. And it does skip: most
/// corpus header lines repeat.
#[test]
fn header_lines_seen_clean_before_are_skipped_and_change_no_hit() {
    let reqs = corpus();
    for pre in [false, true] {
        let (mut warm, mut cold) = (scanner(pre), scanner(pre));
        let mut hits = 0;
        for (i, r) in reqs.iter().enumerate() {
            let a = warm.scan_requests(r).map(key);
            cold.forget_clean();
            let b = cold.scan_requests(r).map(key);
            // Sent again, to a scanner that has just seen every line of it.
            assert_eq!(a, warm.scan_requests(r).map(key), "request {i} again");
            assert_eq!(
                a,
                b,
                "request {i} (prefilter {pre}): {}",
                String::from_utf8_lossy(r)
            );
            hits += a.is_some() as usize;
        }
        assert!(hits > 600, "{hits} hits");
        let lines: usize = reqs
            .iter()
            .filter_map(|r| {
                let end = r.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
                head::parse(&r[..end]).ok().map(|h| h.fields.len())
            })
            .sum();
        let (skipped, kept) = warm.header_memo();
        eprintln!("prefilter {pre}: {lines} header lines, {skipped} skipped, {kept} remembered");
        let (targets, _) = warm.target_memo();
        eprintln!("prefilter {pre}: {} targets, {targets} skipped", reqs.len());
        if !pre {
            assert!(skipped * 10 > lines as u64 * 8, "{skipped} of {lines}");
            // 3 586 distinct targets in 5 090 requests.
            assert!(targets > 1000, "{targets}");
        }
    }
}

/// A line one byte away from a line seen clean is scanned, not skipped:
/// the memo compares whole lines.
#[test]
fn a_line_one_byte_from_a_clean_one_is_still_scanned() {
    let mut s = scanner(false);
    let clean = b"GET / HTTP/1.1\r\nHost: a\r\nX-Note: 1' or 1\r\n\r\n";
    let bad = b"GET / HTTP/1.1\r\nHost: a\r\nX-Note: 1' or 1=1\r\n\r\n";
    assert!(s.scan_requests(clean).is_none());
    assert_eq!(s.header_memo().0, 0);
    let hit = s
        .scan_requests(bad)
        .map(key)
        .expect("the attack line is scanned");
    assert_eq!(hit.1, "headers");
    // Host was skipped the second time; the excerpt is the attack line's
    // own bytes, not what the memo left before it.
    assert_eq!(s.header_memo().0, 1);
    assert_eq!(hit.2, "x-note: 1' or 1=");
    // A line that matched is never remembered: sent again, it hits again.
    assert_eq!(s.scan_requests(bad).map(key), Some(hit));
}

/// A target one byte away from a target seen clean is scanned; and
/// credential lines are never remembered (`Authorization`, `Cookie`): the
/// memo keeps no secret and its timing tells nothing about them.
#[test]
fn near_copies_of_clean_targets_are_scanned_and_credentials_never_remembered() {
    let mut s = scanner(false);
    let req = |target: &str, extra: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: a\r\n{extra}\r\n").into_bytes()
    };
    assert!(s.scan_requests(&req("/item?id=12", "")).is_none());
    assert!(s.scan_requests(&req("/item?id=12", "")).is_none());
    assert_eq!(s.target_memo().0, 1);
    let hit = s.scan_requests(&req("/item?id=12'--", "")).map(key);
    assert_eq!(hit.map(|h| h.1), Some("uri"));
    let (lines, _) = s.header_memo();
    let secrets =
        "Authorization: Bearer abc.def\r\nCookie: sid=42\r\nProxy-Authorization: Basic eA==\r\n";
    for _ in 0..3 {
        assert!(s.scan_requests(&req("/", secrets)).is_none());
    }
    // Only `Host: a` was skipped, twice: the credential lines never.
    assert_eq!(s.header_memo().0 - lines, 3);
}
