//! Suricata rules for HTTP requests, with Suricata's semantics or not at
//! all: a rule either loads with every keyword verified exactly (see
//! [`super::verify`]) or is skipped with its sid and the reason.
//!
//! Loaded: `alert`/`drop`/`reject` actions; `http` rules (and `tcp` rules
//! that use HTTP buffers) from any port to any port, client to server;
//! `msg`, `sid`, `rev`, `classtype`, `priority`; `content` (with `|hex|`)
//! and its modifiers `nocase`, `offset`, `depth`, `distance`, `within`,
//! `startswith`, `endswith`, `fast_pattern`, negation; `pcre` (PCRE2, with
//! `i s m x`, `R` and the buffer flags `U I P H D M C V W Z`); `isdataat`;
//! `bsize`; `urilen`; `flowbits` (`set`, `unset`, `toggle`, `isset`,
//! `isnotset`, `noalert`) within a flow; `threshold` and `detection_filter`
//! tracked `by_src` in packet time; the sticky buffers of the request (`http.method`,
//! `http.uri`, `http.uri.raw`, `http.header`, `http.cookie`, ...,
//! `http.request_body`) and the older `http_*` modifiers. Ignored because
//! they do not change what matches: `metadata`, `reference`, `target`,
//! `rawbytes`, and `flow:established,to_server`.
//!
//! Address variables (`$HOME_NET`, `$EXTERNAL_NET`, ...) are not evaluated:
//! flowgate inspects the requests sent to the servers it protects, which is
//! what these rules describe. Skipped with a reason: literal addresses,
//! ports other than `any`, response buffers and `flow:to_client`,
//! `file.data` on requests, content on the raw stream payload (no HTTP
//! buffer), thresholds not tracked by source, flowbit expressions, byte
//! tests, base64 and every keyword not listed above.

use super::verify::{
    compile_pcre, Content, Detect, Flowbit, Item, Pcre, Threshold, ThresholdKind, View,
};
use super::{Action, Rejected, SigRule};
use crate::rules::RuleMeta;
use std::borrow::Cow;

/// Parses every rule in `text`; lines that are blank or `#` comments are
/// skipped, `\` continues a rule on the next line.
pub fn parse(text: &str, origin: &str) -> (Vec<SigRule>, Vec<Rejected>) {
    parse_lines(text.split('\n').map(Ok), origin)
}

/// Parses rule file bytes: a line that is not UTF-8 is skipped with its
/// line number (the rest of the file still loads).
pub fn parse_bytes(bytes: &[u8], origin: &str) -> (Vec<SigRule>, Vec<Rejected>) {
    parse_lines(
        bytes
            .split(|&b| b == b'\n')
            .map(|l| std::str::from_utf8(l).map_err(|e| e.valid_up_to())),
        origin,
    )
}

fn parse_lines<'a>(
    lines: impl Iterator<Item = Result<&'a str, usize>>,
    origin: &str,
) -> (Vec<SigRule>, Vec<Rejected>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    let mut acc = String::new();
    let mut start_line = 0;
    for (n, line) in lines.enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(at) => {
                bad.push(Rejected {
                    origin: format!("{origin}:{}", n + 1),
                    id: None,
                    reason: format!("line is not UTF-8 (invalid byte at column {})", at + 1),
                });
                acc.clear();
                continue;
            }
        };
        let t = line.trim();
        if acc.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if acc.is_empty() {
            start_line = n + 1;
        }
        if let Some(stripped) = t.strip_suffix('\\') {
            acc.push_str(stripped);
            acc.push(' ');
            continue;
        }
        acc.push_str(t);
        let where_ = format!("{origin}:{start_line}");
        match parse_rule(&acc) {
            Ok(mut r) => {
                r.origin = where_;
                ok.push(r)
            }
            Err((id, reason)) => bad.push(Rejected {
                origin: where_,
                id,
                reason,
            }),
        }
        acc.clear();
    }
    if !acc.is_empty() {
        bad.push(Rejected {
            origin: format!("{origin}:{start_line}"),
            id: None,
            reason: "rule continues past the end of the file".into(),
        });
    }
    (ok, bad)
}

type Fail = (Option<u32>, String);

/// Keywords that select a response buffer: responses are not inspected.
const RESPONSE_BUFFERS: [&str; 14] = [
    "http.stat_code",
    "http.stat_msg",
    "http.response_body",
    "http.response_line",
    "http.response_header",
    "http.server",
    "http.location",
    "http_stat_code",
    "http_stat_msg",
    "http_server_body",
    "http.set_cookie",
    "file.data",
    "file_data",
    "http.content_len.response",
];

/// Keywords accepted and ignored (they do not change what matches).
const IGNORED: [&str; 6] = ["metadata", "reference", "target", "rawbytes", "gid", "tag"];

fn is_address_ok(a: &str) -> bool {
    // `any`, variables, negated variables and lists of them.
    let a = a.trim_start_matches('!');
    if a == "any" {
        return true;
    }
    if let Some(list) = a.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        return list.split(',').all(|x| is_address_ok(x.trim()));
    }
    a.starts_with('$')
}

fn parse_rule(text: &str) -> Result<SigRule, Fail> {
    let open = text
        .find('(')
        .ok_or((None, "no option list `( ... )`".to_string()))?;
    let close = text
        .rfind(')')
        .filter(|&c| c > open)
        .ok_or((None, "unclosed option list".to_string()))?;
    let header: Vec<&str> = text[..open].split_whitespace().collect();
    let opts = split_options(&text[open + 1..close]);
    let sid_opt = opts.iter().find(|(k, _)| k == "sid").map(|(_, v)| v);
    let sid = sid_opt
        .and_then(|v| v.as_deref())
        .and_then(|v| v.trim().parse::<u32>().ok());
    let fail = |reason: String| -> Fail { (sid, reason) };
    let sid = sid.ok_or_else(|| {
        fail(match sid_opt {
            None => "missing sid".into(),
            Some(v) => format!("invalid sid `{}`", v.as_deref().unwrap_or("")),
        })
    })?;
    if header.len() != 7 {
        return Err(fail(format!(
            "header `{}` is not `action proto src sport dir dst dport`",
            text[..open].trim()
        )));
    }
    let action = match header[0] {
        "alert" => Action::Alert,
        "drop" | "reject" => Action::Drop,
        other => {
            return Err(fail(format!(
                "action `{other}` does not map (alert, drop, reject do)"
            )))
        }
    };
    let proto = header[1];
    if !matches!(proto, "http" | "http1" | "tcp" | "tcp-pkt" | "tcp-stream") {
        return Err(fail(format!(
            "protocol `{proto}`: only HTTP request rules map"
        )));
    }
    if header[4] != "->" {
        return Err(fail(format!(
            "direction `{}`: only client-to-server rules map",
            header[4]
        )));
    }
    for a in [header[2], header[5]] {
        if !is_address_ok(a) {
            return Err(fail(format!(
                "address `{a}`: literal addresses are not evaluated"
            )));
        }
    }
    for p in [header[3], header[6]] {
        if p != "any" {
            return Err(fail(format!(
                "port `{p}`: port-restricted rules do not map (the scanner does not see ports)"
            )));
        }
    }

    let mut msg = format!("sid {sid}");
    let mut rev = 1;
    let mut category = "Unknown".to_string();
    let mut severity = 3u8;
    // Items in rule order with their buffer (None: the stream payload).
    let mut items: Vec<(Option<View>, Item)> = Vec::new();
    let mut sticky: Option<View> = None;
    let mut flowbits: Vec<Flowbit> = Vec::new();
    let mut noalert = false;
    let mut threshold: Option<Threshold> = None;

    for (key, val) in &opts {
        let v = val.as_deref().unwrap_or("").trim();
        let k = key.as_str();
        // Content modifiers apply to the last content of the rule, even
        // when a pcre, bsize or isdataat came after it (as in Suricata).
        macro_rules! with_content {
            (|$c:ident| $body:expr) => {{
                match items.iter_mut().rev().find_map(|(_, i)| match i {
                    Item::Content(c) => Some(c),
                    _ => None,
                }) {
                    Some($c) => $body,
                    None => return Err(fail(format!("`{k}` with no content before it"))),
                }
            }};
        }
        match k {
            "msg" => msg = unquote(v),
            "sid" => {}
            "rev" => rev = v.parse().unwrap_or(1),
            "classtype" => {
                let (c, s) = classtype(v);
                category = c;
                severity = s;
            }
            "priority" => severity = v.parse::<u8>().unwrap_or(severity).clamp(1, 4),
            "flow" => {
                for f in v.split(',').map(str::trim) {
                    match f {
                        "established" | "to_server" | "from_client" | "not_established"
                        | "stateless" => {}
                        "to_client" | "from_server" => {
                            return Err(fail(format!("flow:{f}: responses are not inspected")))
                        }
                        other => return Err(fail(format!("flow option `{other}` does not map"))),
                    }
                }
            }
            k if IGNORED.contains(&k) => {}
            "threshold" | "detection_filter" => {
                if threshold.is_some() {
                    return Err(fail("more than one threshold/detection_filter".into()));
                }
                threshold = Some(parse_threshold(k, v).map_err(fail)?);
            }
            "flowbits" => {
                let (op, name) = match v.split_once(',') {
                    Some((o, n)) => (o.trim(), n.trim()),
                    None => (v, ""),
                };
                if name.contains(['|', '&']) {
                    return Err(fail(format!("flowbits `{v}`: bit expressions do not map")));
                }
                let name = name.to_string();
                flowbits.push(match op {
                    "noalert" => {
                        noalert = true;
                        continue;
                    }
                    "set" => Flowbit::Set(name),
                    "unset" => Flowbit::Unset(name),
                    "toggle" => Flowbit::Toggle(name),
                    "isset" => Flowbit::IsSet(name),
                    "isnotset" => Flowbit::IsNotSet(name),
                    other => return Err(fail(format!("flowbits `{other}` does not map"))),
                });
            }
            "content" => {
                let (negated, raw) = match v.strip_prefix('!') {
                    Some(r) => (true, r.trim()),
                    None => (false, v),
                };
                let bytes = content_bytes(&unquote(raw)).map_err(fail)?;
                items.push((
                    sticky,
                    Item::Content(Content {
                        bytes,
                        negated,
                        ..Default::default()
                    }),
                ));
            }
            "nocase" => with_content!(|c| c.nocase = true),
            "fast_pattern" => with_content!(|c| c.fast_pattern = true),
            "startswith" => with_content!(|c| c.startswith = true),
            "endswith" => with_content!(|c| c.endswith = true),
            "offset" | "depth" | "within" => {
                let n: usize = v
                    .parse()
                    .map_err(|_| fail(format!("`{k}:{v}`: not a number (variables do not map)")))?;
                with_content!(|c| match k {
                    "offset" => c.offset = Some(n),
                    "depth" => c.depth = Some(n),
                    _ => c.within = Some(n),
                })
            }
            "distance" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| fail(format!("`{k}:{v}`: not a number (variables do not map)")))?;
                with_content!(|c| c.distance = Some(n))
            }
            "pcre" => {
                let (pcre, view) = pcre(v).map_err(fail)?;
                if let (Some(a), Some(b)) = (view, sticky) {
                    if a != b {
                        return Err(fail(format!(
                            "pcre buffer flag selects {} inside {}",
                            a.name(),
                            b.name()
                        )));
                    }
                }
                items.push((view.or(sticky), Item::Pcre(pcre)));
            }
            "isdataat" => {
                let mut parts = v.split(',').map(str::trim);
                let first = parts.next().unwrap_or("");
                let (negated, n) = match first.strip_prefix('!') {
                    Some(r) => (true, r),
                    None => (false, first),
                };
                let n: usize = n
                    .parse()
                    .map_err(|_| fail(format!("isdataat `{v}`: not a number")))?;
                let mut relative = false;
                for p in parts {
                    match p {
                        "relative" => relative = true,
                        "rawbytes" => {}
                        other => {
                            return Err(fail(format!("isdataat option `{other}` does not map")))
                        }
                    }
                }
                let view = if relative {
                    items.last().map(|(v, _)| *v).unwrap_or(sticky)
                } else {
                    sticky
                };
                items.push((
                    view,
                    Item::IsDataAt {
                        n,
                        relative,
                        negated,
                    },
                ));
            }
            "bsize" => {
                let (lo, hi) =
                    size_range(v).ok_or_else(|| fail(format!("bsize `{v}` does not map")))?;
                if sticky.is_none() {
                    return Err(fail("bsize without a sticky buffer".into()));
                }
                items.push((sticky, Item::Size { lo, hi }));
            }
            "urilen" => {
                let (range, kind) = match v.split_once(',') {
                    Some((r, k)) => (r.trim(), k.trim()),
                    None => (v, "norm"),
                };
                let view = match kind {
                    "norm" => View::Uri,
                    "raw" => View::UriRaw,
                    other => return Err(fail(format!("urilen option `{other}` does not map"))),
                };
                let (lo, hi) =
                    size_range(range).ok_or_else(|| fail(format!("urilen `{v}` does not map")))?;
                items.push((Some(view), Item::Size { lo, hi }));
            }
            k if RESPONSE_BUFFERS.contains(&k) => {
                return Err(fail(format!(
                    "`{k}`: response (and file) buffers are not inspected"
                )))
            }
            k => {
                if let Some(b) = View::from_sticky(k) {
                    sticky = Some(b);
                } else if let Some(b) = View::from_modifier(k) {
                    match items
                        .iter_mut()
                        .rev()
                        .find(|(_, i)| matches!(i, Item::Content(_)))
                    {
                        Some((view, _)) => *view = Some(b),
                        None => return Err(fail(format!("`{k}` with no content before it"))),
                    }
                } else {
                    return Err(fail(format!("keyword `{k}` does not map")));
                }
            }
        }
    }
    let mut detect = Detect {
        flowbits,
        noalert,
        threshold,
        ..Default::default()
    };
    for (view, item) in items {
        let Some(view) = view else {
            return Err(fail(
                "content outside an HTTP buffer (stream payload) does not map".into(),
            ));
        };
        if let Item::Content(c) = &item {
            if c.relative() && (c.offset.is_some() || c.depth.is_some()) {
                return Err(fail(
                    "content mixes offset/depth with distance/within".into(),
                ));
            }
            if c.within.is_some_and(|w| w < c.bytes.len()) {
                return Err(fail("within shorter than its content".into()));
            }
            if c.depth.is_some_and(|d| d < c.bytes.len()) {
                return Err(fail("depth shorter than its content".into()));
            }
        }
        detect.push(view, item);
    }
    if detect.sections.is_empty() {
        return Err(fail("no content or pcre to match".into()));
    }
    Ok(SigRule {
        meta: RuleMeta {
            id: sid,
            rev,
            name: Cow::Owned(format!("sid_{sid}")),
            fires_when: Cow::Owned(format!("Suricata rule sid {sid}: {msg}")),
            msg: Cow::Owned(msg.clone()),
            category: Cow::Owned(category),
            severity,
        },
        action,
        reason: msg,
        conds: Vec::new(),
        detect: Some(Box::new(detect)),
        origin: String::new(),
    })
}

/// `threshold:type limit, track by_src, count 1, seconds 60` or
/// `detection_filter:track by_src, count 5, seconds 60`. Only `by_src` maps:
/// shards are keyed by source, so other tracking would be split.
fn parse_threshold(k: &str, v: &str) -> Result<Threshold, String> {
    let mut kind = (k == "detection_filter").then_some(ThresholdKind::Detection);
    let (mut count, mut seconds, mut track) = (None, None, None);
    for part in v.split(',') {
        let mut it = part.split_whitespace();
        let (Some(key), Some(val), None) = (it.next(), it.next(), it.next()) else {
            return Err(format!("{k} `{v}` does not parse"));
        };
        match key {
            "type" if k == "threshold" => {
                kind = Some(match val {
                    "limit" => ThresholdKind::Limit,
                    "threshold" => ThresholdKind::Threshold,
                    "both" => ThresholdKind::Both,
                    other => return Err(format!("{k} type `{other}` does not map")),
                })
            }
            "track" => track = Some(val),
            "count" => count = val.parse::<u32>().ok(),
            "seconds" => seconds = val.parse::<u64>().ok(),
            other => return Err(format!("{k} option `{other}` does not map")),
        }
    }
    match track {
        Some("by_src") => {}
        Some(t) => {
            return Err(format!(
                "{k} track {t}: only by_src maps (shards are keyed by source)"
            ))
        }
        None => return Err(format!("{k} without track")),
    }
    match (kind, count, seconds) {
        (Some(kind), Some(count), Some(seconds)) => Ok(Threshold {
            kind,
            count,
            seconds,
        }),
        _ => Err(format!("{k} `{v}` needs type, count and seconds")),
    }
}

/// `N`, `<N`, `>N`, `<=N`, `>=N`, `N<>M` (exclusive, as in Suricata).
fn size_range(v: &str) -> Option<(usize, usize)> {
    let v = v.trim();
    let num = |s: &str| s.trim().parse::<usize>().ok();
    if let Some((a, b)) = v.split_once("<>") {
        let (a, b) = (num(a)?, num(b)?);
        return (a < b && b - a >= 2).then(|| (a + 1, b - 1));
    }
    if let Some(r) = v.strip_prefix("<=") {
        return Some((0, num(r)?));
    }
    if let Some(r) = v.strip_prefix(">=") {
        return Some((num(r)?, usize::MAX));
    }
    if let Some(r) = v.strip_prefix('<') {
        return Some((0, num(r)?.checked_sub(1)?));
    }
    if let Some(r) = v.strip_prefix('>') {
        return Some((num(r)?.checked_add(1)?, usize::MAX));
    }
    let n = num(v)?;
    Some((n, n))
}

/// Splits `k:v; k; k:"a\;b";` as Suricata does: at every `;` not escaped
/// by a backslash. Quotes do not protect a `;` (Suricata requires `\;`),
/// so an unbalanced quote inside a pcre cannot swallow the options after it.
fn split_options(s: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut esc = false;
    for c in s.chars() {
        if esc {
            cur.push(c);
            esc = false;
            continue;
        }
        match c {
            '\\' => {
                esc = true;
                cur.push(c);
            }
            ';' => {
                push_opt(&mut out, &cur);
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    push_opt(&mut out, &cur);
    out
}

fn push_opt(out: &mut Vec<(String, Option<String>)>, s: &str) {
    let s = s.trim();
    if s.is_empty() {
        return;
    }
    match s.split_once(':') {
        Some((k, v)) => out.push((k.trim().to_string(), Some(v.trim().to_string()))),
        None => out.push((s.to_string(), None)),
    }
}

fn strip_quotes(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v)
}

fn unquote(v: &str) -> String {
    let v = strip_quotes(v);
    // Suricata escapes `"`, `;`, `:` and `\` inside quoted values.
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some(n @ ('"' | ';' | '\\' | ':')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `abc|3b 20|def` → bytes.
fn content_bytes(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut parts = s.split('|');
    let mut hex = false;
    for part in parts.by_ref() {
        if hex {
            let digits: Vec<u8> = part.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            if digits.len() % 2 != 0 {
                return Err(format!("bad hex `{part}` in content"));
            }
            for h in digits.chunks(2) {
                let h = std::str::from_utf8(h).unwrap_or("");
                let b =
                    u8::from_str_radix(h, 16).map_err(|_| format!("bad hex `{h}` in content"))?;
                out.push(b);
            }
        } else {
            out.extend_from_slice(part.as_bytes());
        }
        hex = !hex;
    }
    if !hex {
        return Err("unbalanced `|` in content".into());
    }
    Ok(out)
}

/// Hyperscan expression for a literal.
pub fn escape_regex(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b == b' ' || b == b'_' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// `[!]"/re/flags"` → the pcre and the buffer a flag selects.
fn pcre(v: &str) -> Result<(Pcre, Option<View>), String> {
    let (negated, v) = match v.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, v),
    };
    // Escapes stay as written: PCRE reads `\;` and `\"` as the characters.
    let s = strip_quotes(v);
    let body = s.strip_prefix('/').ok_or("pcre must be /regex/flags")?;
    let end = body.rfind('/').ok_or("pcre must be /regex/flags")?;
    let (re, flags) = (&body[..end], &body[end + 1..]);
    let mut view = None;
    let (mut i, mut sflag, mut m, mut x, mut relative) = (false, false, false, false, false);
    for f in flags.chars() {
        match f {
            'i' => i = true,
            's' => sflag = true,
            'm' => m = true,
            'x' => x = true,
            'R' => relative = true,
            'B' | 'O' => {}
            f => match View::from_pcre_flag(f) {
                Some(b) => view = Some(b),
                None => return Err(format!("pcre flag `{f}` does not map")),
            },
        }
    }
    let compiled = compile_pcre(re, i, sflag, m, x)?;
    Ok((
        Pcre {
            source: re.to_string(),
            re: compiled,
            relative,
            negated,
            caseless: i,
            dotall: sflag,
            multiline: m,
            extended: x,
        },
        view,
    ))
}

/// Suricata's default classification.config, the common entries.
fn classtype(c: &str) -> (String, u8) {
    let (desc, prio) = match c {
        "web-application-attack" => ("Web Application Attack", 1),
        "attempted-admin" => ("Attempted Administrator Privilege Gain", 1),
        "attempted-user" => ("Attempted User Privilege Gain", 1),
        "trojan-activity" => ("A Network Trojan was detected", 1),
        "shellcode-detect" => ("Executable code was detected", 1),
        "attempted-recon" => ("Attempted Information Leak", 2),
        "attempted-dos" => ("Attempted Denial of Service", 2),
        "misc-attack" => ("Misc Attack", 2),
        "bad-unknown" => ("Potentially Bad Traffic", 2),
        "web-application-activity" => ("access to a potentially vulnerable web application", 2),
        "policy-violation" => ("Potential Corporate Privacy Violation", 1),
        "misc-activity" => ("Misc activity", 3),
        "not-suspicious" => ("Not Suspicious Traffic", 3),
        other => return (other.to_string(), 3),
    };
    (desc.to_string(), prio)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::Buffer;

    #[test]
    fn maps_common_http_rule() {
        let (ok, bad) = parse(
            r#"alert http any any -> any any (msg:"SQLi UNION"; flow:established,to_server; http.uri; content:"union"; nocase; content:"select|20|"; distance:0; pcre:"/union\s+select/Ui"; classtype:web-application-attack; sid:1000001; rev:3;)"#,
            "t.rules",
        );
        assert!(bad.is_empty(), "{bad:?}");
        let r = &ok[0];
        assert_eq!((r.meta.id, r.meta.rev, r.meta.severity), (1000001, 3, 1));
        assert_eq!(r.origin, "t.rules:1");
        let d = r.detect.as_ref().unwrap();
        assert_eq!(d.sections.len(), 1);
        assert_eq!(d.sections[0].view, View::Uri);
        assert_eq!(d.sections[0].items.len(), 3);
        assert_eq!(d.fast_pattern().unwrap().1.bytes, b"select ");
        assert_eq!(r.action, Action::Alert);
        assert_eq!(d.sections[0].view.buffer(), Buffer::Uri);
    }

    #[test]
    fn old_style_modifiers_and_rejections() {
        let text = r#"
# comment
drop http any any -> any any (msg:"body"; content:"sleep("; http_client_body; sid:2;)
alert http any any -> any 8080 (msg:"port"; http.uri; content:"a"; sid:3;)
alert dns any any -> any any (msg:"dns"; content:"x"; sid:4;)
alert http any any -> any any (msg:"resp"; flow:established,to_client; http.stat_code; content:"200"; sid:5;)
alert tcp any any -> any any (msg:"raw"; content:"x"; sid:6;)
alert http any any -> any any (msg:"no sid"; content:"x";)
alert http any any -> any any (msg:"quote in pcre"; http.uri; pcre:"/a"b/"; sid:7;)
alert http any any -> any any (msg:"thr"; http.uri; content:"a"; threshold:type limit, track by_dst, count 1, seconds 60; sid:8;)
"#;
        let (ok, bad) = parse(text, "t.rules");
        let ids: Vec<Option<u32>> = bad.iter().map(|r| r.id).collect();
        assert_eq!(ok.len(), 2, "{bad:?}");
        assert_eq!(ok[0].detect.as_ref().unwrap().sections[0].view, View::Body);
        assert_eq!(ok[0].action, Action::Drop);
        assert_eq!(
            ok[1].meta.id, 7,
            "a quote inside a pcre is not a missing sid"
        );
        assert_eq!(ids, vec![Some(3), Some(4), Some(5), Some(6), None, Some(8)]);
        assert!(bad[0].reason.contains("port"), "{}", bad[0]);
        assert!(
            bad[0].to_string().starts_with("t.rules:4: sid 3:"),
            "{}",
            bad[0]
        );
        assert!(bad[2].reason.contains("to_client"), "{}", bad[2]);
        assert!(bad[3].reason.contains("stream payload"), "{}", bad[3]);
        assert!(bad[5].reason.contains("threshold"), "{}", bad[5]);
    }

    #[test]
    fn non_utf8_line_is_named() {
        let (ok, bad) = parse_bytes(
            b"alert http any any -> any any (http.uri; content:\"a\"; sid:1;)\nalert http any any -> any any (content:\"\xff\"; sid:2;)\n",
            "t.rules",
        );
        assert_eq!(ok.len(), 1);
        assert_eq!(bad[0].origin, "t.rules:2");
        assert!(bad[0].reason.contains("UTF-8"), "{}", bad[0]);
    }

    #[test]
    fn sizes() {
        assert_eq!(size_range("5"), Some((5, 5)));
        assert_eq!(size_range("<5"), Some((0, 4)));
        assert_eq!(size_range(">5"), Some((6, usize::MAX)));
        assert_eq!(size_range("2<>5"), Some((3, 4)));
    }
}
