//! Suricata rules: per-rule isolation, exact buffers and case, and each
//! keyword ET web rules use, written the way ET rules write them (these
//! rules are ours; no ET rule is part of the repository).

use flowgate::config::SignaturesConfig;
use flowgate::rules::RuleBook;
use flowgate::ruleset::{Ruleset, RulesetError};
use flowgate::signature::{suricata, Scanner, SignatureSet};
use std::sync::Arc;

/// Compiles `rules` (one per line, sids from 1) and returns the sid that
/// fires on each request, in order.
fn fire(rules: &str, requests: &[&str]) -> Vec<Option<u32>> {
    let (ok, bad) = suricata::parse(rules, "t.rules");
    assert!(bad.is_empty(), "{bad:?}");
    let set = SignatureSet::compile(ok, &mut RuleBook::builtin()).unwrap();
    assert!(set.rejected.is_empty(), "{:?}", set.rejected);
    let mut s = Scanner::new(Arc::new(set)).unwrap();
    requests
        .iter()
        .map(|r| s.scan_requests(r.as_bytes()).map(|h| h.meta.id))
        .collect()
}

fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: example.test\r\nUser-Agent: Mozilla/5.0\r\n\r\n")
}

fn post(target: &str, body: &str) -> String {
    format!(
        "POST {target} HTTP/1.1\r\nHost: example.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const H: &str = "alert http $EXTERNAL_NET any -> $HOME_NET any";

#[test]
fn http_method_is_the_method_token_only_and_case_sensitive() {
    let rules = format!(
        "{H} (msg:\"CONNECT\"; flow:established,to_server; http.method; content:\"CONNECT\"; sid:1;)\n"
    );
    let r = fire(
        &rules,
        &[
            &get("/CONNECT?x=CONNECT"),
            "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n",
            "connect example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n",
        ],
    );
    assert_eq!(r, vec![None, Some(1), None]);
    let nocase = format!("{H} (msg:\"m\"; http.method; content:\"connect\"; nocase; sid:2;)\n");
    assert_eq!(
        fire(
            &nocase,
            &["CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n"]
        ),
        vec![Some(2)]
    );
    // Old-style modifier, same semantics.
    let old = format!("{H} (msg:\"m\"; content:\"POST\"; http_method; sid:3;)\n");
    assert_eq!(
        fire(&old, &[&get("/POST"), &post("/x", "a=1")]),
        vec![None, Some(3)]
    );
}

#[test]
fn content_without_nocase_is_case_sensitive() {
    let rules = format!(
        "{H} (msg:\"cs\"; http.uri; content:\"UNION SELECT\"; sid:1;)\n{H} (msg:\"ci\"; http.uri; content:\"union all\"; nocase; sid:2;)\n"
    );
    let r = fire(
        &rules,
        &[
            &get("/a?id=1%20union%20select%201"),
            &get("/a?id=1%20UNION%20SELECT%201"),
            &get("/a?id=1%20UnIoN%20aLl%201"),
        ],
    );
    assert_eq!(r, vec![None, Some(1), Some(2)]);
}

#[test]
fn raw_uri_is_raw_and_uri_is_normalized() {
    let rules = format!(
        "{H} (msg:\"raw\"; http.uri.raw; content:\"%27\"; sid:1;)\n{H} (msg:\"norm\"; http.uri; content:\"/etc/passwd\"; sid:2;)\n"
    );
    let r = fire(
        &rules,
        &[
            &get("/a?id=%27"),
            &get("/a/../etc/./passwd"),
            &get("/a?id='"),
            &get("/%65tc/passwd"),
        ],
    );
    assert_eq!(r, vec![Some(1), Some(2), None, Some(2)]);
    // The normalized uri does not keep the escape.
    let norm_escape = format!("{H} (msg:\"n\"; http.uri; content:\"%27\"; sid:3;)\n");
    assert_eq!(fire(&norm_escape, &[&get("/a?id=%27")]), vec![None]);
}

#[test]
fn offset_depth_startswith_endswith() {
    let rules = format!(
        "{H} (msg:\"sw\"; http.uri; content:\"/admin/\"; startswith; content:\".php\"; endswith; sid:1;)\n{H} (msg:\"od\"; http.uri; content:\"cgi\"; offset:1; depth:4; sid:2;)\n"
    );
    let r = fire(
        &rules,
        &[
            &get("/admin/x.php"),
            &get("/x/admin/x.php"),
            &get("/admin/x.php?a=1"),
            &get("/cgi-bin/x"),
            &get("/x/cgi-bin/x"),
        ],
    );
    assert_eq!(r, vec![Some(1), None, None, Some(2), None]);
}

#[test]
fn distance_and_within_retry_later_occurrences() {
    let rules = format!(
        "{H} (msg:\"dw\"; http.uri; content:\"id=\"; nocase; content:\"UNION\"; nocase; distance:0; within:12; content:\"SELECT\"; nocase; distance:1; sid:1;)\n"
    );
    let r = fire(
        &rules,
        &[
            &get("/a?id=1&x=aaaaaaaaaaaaaaaa&id=2%20union%20select"),
            &get("/a?id=1aaaaaaaaaaaaaaaaaaa%20union%20select"),
            &get("/a?id=1%20unionselect"),
            &get("/a?select=1&union=1&id=1"),
        ],
    );
    assert_eq!(r, vec![Some(1), None, None, None]);
}

#[test]
fn isdataat_and_relative_pcre() {
    let rules = format!(
        "{H} (msg:\"isdataat\"; http.uri; content:\"cmd=\"; isdataat:!1,relative; sid:1;)\n{H} (msg:\"pcre R\"; http.uri; content:\"id=\"; pcre:\"/^\\d+[\\x27\\x22]/R\"; sid:2;)\n{H} (msg:\"backref\"; http.uri; content:\"q=\"; pcre:\"/q=(['\\x22]).{{1,20}}\\1\\s*or\\s*\\1/Ui\"; sid:3;)\n"
    );
    let r = fire(
        &rules,
        &[
            &get("/x?cmd="),
            &get("/x?cmd=ls"),
            &get("/x?id=12'"),
            &get("/x?id=x12'"),
            &get("/x?q='abc'%20OR%20'"),
            &get("/x?q='abc\"%20OR%20'"),
        ],
    );
    assert_eq!(r, vec![Some(1), None, Some(2), None, Some(3), None]);
}

#[test]
fn header_buffers() {
    let rules = format!(
        "{H} (msg:\"ua\"; http.user_agent; content:\"sqlmap\"; startswith; sid:1;)\n{H} (msg:\"hdr\"; http.header; content:\"X-Forwarded-For|3a 20|127.0.0.1|0d 0a|\"; sid:2;)\n{H} (msg:\"cookie\"; http.cookie; content:\"admin=1\"; sid:3;)\n{H} (msg:\"host\"; http.host; content:\"evil.test\"; bsize:9; sid:4;)\n"
    );
    let req = |extra: &str| format!("GET / HTTP/1.1\r\nHost: example.test\r\n{extra}\r\n");
    let r = fire(
        &rules,
        &[
            &req("User-Agent: sqlmap/1.7\r\n"),
            &req("User-Agent: x sqlmap/1.7\r\n"),
            &req("X-Forwarded-For: 127.0.0.1\r\n"),
            &req("X-Forwarded-For: 127.0.0.10\r\n"),
            &req("Cookie: admin=1\r\n"),
            "GET / HTTP/1.1\r\nHost: EVIL.test:8080\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a.evil.test\r\n\r\n",
        ],
    );
    assert_eq!(
        r,
        vec![Some(1), None, Some(2), None, Some(3), Some(4), None]
    );
    // Cookie is not part of http.header, as in Suricata.
    let hc = format!("{H} (msg:\"h\"; http.header; content:\"admin=1\"; sid:5;)\n");
    assert_eq!(fire(&hc, &[&req("Cookie: admin=1\r\n")]), vec![None]);
}

#[test]
fn request_body_rules_see_the_decoded_body_up_to_the_limit() {
    let rules = format!(
        "{H} (msg:\"body\"; http.method; content:\"POST\"; http.uri; content:\"/login\"; http.request_body; content:\"user=admin\"; startswith; content:\"--\"; distance:0; sid:1;)\n"
    );
    let chunked = "POST /login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nuser=a\r\n8\r\ndmin'--&\r\n0\r\n\r\n";
    let r = fire(
        &rules,
        &[
            &post("/login", "user=admin'--&pass=x"),
            &post("/login", "pass=x&user=admin'--"),
            &post("/other", "user=admin'--"),
            chunked,
            &get("/login?user=admin'--"),
        ],
    );
    assert_eq!(r, vec![Some(1), None, None, Some(1), None]);
    // Past the body limit nothing is inspected (Suricata's request-body-limit).
    let far = format!("{H} (msg:\"far\"; http.request_body; content:\"EVIL\"; sid:2;)\n");
    let big = format!(
        "{}EVIL",
        "a".repeat(flowgate::signature::verify::BODY_LIMIT)
    );
    let near = format!("{}EVIL", "a".repeat(1000));
    assert_eq!(
        fire(&far, &[&post("/u", &big), &post("/u", &near)]),
        vec![None, Some(2)]
    );
}

#[test]
fn urilen_and_bsize_and_negation() {
    let rules = format!(
        "{H} (msg:\"len\"; urilen:>20; http.uri; content:\"/x\"; startswith; content:!\"safe\"; sid:1;)\n"
    );
    let r = fire(
        &rules,
        &[
            &get("/x?aaaaaaaaaaaaaaaaaaaaa"),
            &get("/x?a"),
            &get("/x?aaaaaaaaaaaaaaaaaasafe"),
        ],
    );
    assert_eq!(r, vec![Some(1), None, None]);
}

#[test]
fn pcre_only_rule_with_backreference_loads_and_is_exact() {
    // Hyperscan cannot compile a back-reference: the rule is prefiltered
    // in Hyperscan's prefilter mode or verified on every request, never
    // loosened and never rejecting its file.
    let rules = format!(
        "{H} (msg:\"br\"; pcre:\"/(\\w+)=\\1/U\"; sid:1;)\n{H} (msg:\"lit\"; http.uri; content:\"/ok\"; sid:2;)\n"
    );
    let r = fire(
        &rules,
        &[&get("/p?abc=abc"), &get("/p?abc=abd"), &get("/ok")],
    );
    assert_eq!(r, vec![Some(1), None, Some(2)]);
}

#[test]
fn unmappable_rules_are_skipped_with_reasons_and_the_rest_load() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("t.rules");
    let text = format!(
        "{H} (msg:\"ok\"; http.uri; content:\"/a\"; sid:1;)\n\
         alert http any any -> any 8080 (msg:\"port\"; http.uri; content:\"/a\"; sid:2;)\n\
         {H} (msg:\"resp\"; flow:established,to_client; http.stat_code; content:\"200\"; sid:3;)\n\
         {H} (msg:\"quote\"; http.uri; pcre:\"/a\\x22b\"c/\"; sid:4;)\n\
         {H} (msg:\"bits\"; flowbits:isset,x|y; http.uri; content:\"/b\"; sid:5;)\n"
    );
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(
        b"alert http any any -> any any (msg:\"\xff\"; content:\"x\"; sid:6;)\n",
    );
    std::fs::write(&rules, bytes).unwrap();
    let toml = dir.path().join("t.toml");
    std::fs::write(
        &toml,
        "[[rule]]\nid = 7\nmsg = \"bad\"\npatterns = ['(a']\n[[rule]]\nid = 8\nmsg = \"good\"\npatterns = ['zz']\n",
    )
    .unwrap();
    let cfg = SignaturesConfig {
        enabled: true,
        builtin: false,
        rule_files: vec![rules.clone(), toml.clone()],
        strict: false,
        ..Default::default()
    };
    let set = Ruleset::load(&cfg).unwrap();
    let skipped: Vec<(Option<u32>, String)> =
        set.rejected.iter().map(|r| (r.id, r.to_string())).collect();
    let ids: Vec<Option<u32>> = skipped.iter().map(|s| s.0).collect();
    assert_eq!(
        ids,
        vec![Some(2), Some(3), Some(5), None, Some(7)],
        "{skipped:?}"
    );
    let line = |n: usize| format!("{}:{n}", rules.display());
    assert!(
        skipped[0]
            .1
            .starts_with(&format!("{}: sid 2: port", line(2))),
        "{skipped:?}"
    );
    assert!(
        skipped[3].1.starts_with(&line(6)) && skipped[3].1.contains("UTF-8"),
        "{skipped:?}"
    );
    assert!(
        skipped[4].1.contains("rule 7 pattern 1 `(a`"),
        "{skipped:?}"
    );
    // sid 1, sid 4 (a quote inside its pcre), rule 8.
    assert_eq!(set.signature_count(), 3);
    let kinds: Vec<(String, usize)> = set.reasons();
    assert_eq!(kinds.len(), 5, "{kinds:?}");
    // strict refuses the set, naming every skipped rule.
    let strict = SignaturesConfig {
        strict: true,
        ..cfg
    };
    match Ruleset::load(&strict) {
        Err(RulesetError::Strict(r)) => assert_eq!(r.len(), 4, "{r:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn flowbits_link_requests_of_one_flow() {
    let rules = format!(
        "{H} (msg:\"step1\"; http.uri; content:\"/step1\"; flowbits:set,ex.s1; flowbits:noalert; sid:1;)\n{H} (msg:\"step2\"; http.uri; content:\"/step2\"; flowbits:isset,ex.s1; sid:2;)\n{H} (msg:\"fresh\"; http.uri; content:\"/fresh\"; flowbits:isnotset,ex.s1; sid:3;)\n"
    );
    let both = format!("{}{}", get("/step1"), get("/step2"));
    let reversed = format!("{}{}", get("/step2"), get("/step1"));
    let after = format!("{}{}", get("/step1"), get("/fresh"));
    let r = fire(
        &rules,
        &[&get("/step2"), &both, &reversed, &get("/fresh"), &after],
    );
    assert_eq!(r, vec![None, Some(2), None, Some(3), None]);
}

#[test]
fn threshold_and_detection_filter_count_per_source_in_packet_time() {
    let rules = format!(
        "{H} (msg:\"limit\"; http.uri; content:\"/lim\"; threshold:type limit, track by_src, count 1, seconds 60; sid:1;)\n{H} (msg:\"df\"; http.uri; content:\"/df\"; detection_filter:track by_src, count 2, seconds 60; sid:2;)\n"
    );
    let (ok, bad) = suricata::parse(&rules, "t.rules");
    assert!(bad.is_empty(), "{bad:?}");
    let set = SignatureSet::compile(ok, &mut RuleBook::builtin()).unwrap();
    let mut s = Scanner::new(Arc::new(set)).unwrap();
    let s1: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    let s2: std::net::IpAddr = "192.0.2.2".parse().unwrap();
    let sec = 1_000_000_000u64;
    let mut at = |src, t: u64, path: &str| {
        s.set_packet(src, t * sec);
        s.scan_requests(get(path).as_bytes()).map(|h| h.meta.id)
    };
    assert_eq!(at(s1, 0, "/lim"), Some(1));
    assert_eq!(at(s1, 1, "/lim"), None, "limit 1 per 60 s");
    assert_eq!(at(s2, 2, "/lim"), Some(1), "another source counts apart");
    assert_eq!(
        at(s1, 60, "/lim"),
        None,
        "the window is 60 s, ends included"
    );
    assert_eq!(at(s1, 61, "/lim"), Some(1), "a new window");
    assert_eq!(at(s1, 200, "/lim"), Some(1), "a new window");
    assert_eq!(at(s1, 0, "/df"), None);
    assert_eq!(at(s1, 1, "/df"), None);
    assert_eq!(at(s1, 2, "/df"), Some(2), "past the count");
    assert_eq!(at(s1, 3, "/df"), Some(2));
}

#[test]
fn body_bytes_held_for_body_rules_are_given_back() {
    let rules = format!("{H} (msg:\"b\"; http.request_body; content:\"EVIL\"; sid:1;)\n");
    let (ok, _) = suricata::parse(&rules, "t.rules");
    let set = SignatureSet::compile(ok, &mut RuleBook::builtin()).unwrap();
    let mut s = Scanner::new(Arc::new(set)).unwrap();
    let head = b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n";
    let parsed = flowgate::http::head::parse(head).unwrap();
    let mut rs = flowgate::signature::RequestScan::default();
    assert!(s.head(&mut rs, head, &parsed).is_none());
    assert!(s.body(&mut rs, b"a=1&b=").is_none());
    assert!(s.body_held() >= head.len() + 6, "{}", s.body_held());
    // A flow evicted mid-request gives its bytes back.
    drop(rs);
    assert_eq!(s.body_held(), 0);
    let mut rs = flowgate::signature::RequestScan::default();
    assert!(s.head(&mut rs, head, &parsed).is_none());
    assert!(s.body(&mut rs, b"x=EVIL").is_none());
    assert_eq!(s.end(&mut rs).map(|h| h.meta.id), Some(1));
    assert_eq!(s.body_held(), 0);
    assert_eq!(s.take_body_unverified(), 0);
}
