//! The subset of Suricata's rule language that maps onto flowgate's HTTP
//! request buffers, so operators can bring rules they already have.
//!
//! Mapped: `alert`/`drop`/`reject` actions; `http` (or `tcp` with HTTP
//! buffers) rules; `msg`, `sid`, `rev`, `classtype`, `priority`; `content`
//! (with `|hex|` bytes) and `nocase`; `pcre` with `i s m` and the `U P H`
//! buffer modifiers; sticky buffers `http.uri`, `http.uri.raw`,
//! `http.request_body`, `http.header`, `http.cookie`, `http.user_agent`,
//! `http.host`, `http.method` and the older `http_*` modifiers. Ignored
//! because they do not change what matches: `flow`, `metadata`, `reference`,
//! `fast_pattern`, `target`. Everything else (positional modifiers such as
//! `distance`/`within`/`offset`/`depth`, negated content, byte tests,
//! flowbits, thresholds, non-HTTP protocols) rejects the rule with its sid
//! and the reason: never silently dropped or loosened.

use super::{Action, Buffer, Cond, Rejected, SigRule};
use crate::rules::RuleMeta;
use std::borrow::Cow;

/// Parses every rule in `text`; lines that are blank or `#` comments are
/// skipped, `\` continues a rule on the next line.
pub fn parse(text: &str, origin: &str) -> (Vec<SigRule>, Vec<Rejected>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    let mut acc = String::new();
    let mut start_line = 0;
    for (n, line) in text.lines().enumerate() {
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
            Ok(r) => ok.push(r),
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
    let sid = opts
        .iter()
        .find(|(k, _)| k == "sid")
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| v.trim().parse::<u32>().ok());
    let fail = |reason: String| -> Fail { (sid, reason) };
    let sid = sid.ok_or_else(|| fail("missing or invalid sid".into()))?;
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
    if header[4] == "<-" {
        return Err(fail(
            "direction `<-`: only client-to-server rules map".into(),
        ));
    }

    let mut msg = format!("sid {sid}");
    let mut rev = 1;
    let mut category = "Unknown".to_string();
    let mut severity = 3u8;
    let mut conds: Vec<Cond> = Vec::new();
    let mut sticky: Option<Buffer> = None;
    // Index of the last content/pcre, for modifiers that follow it.
    let mut last: Option<usize> = None;
    let mut saw_http_buffer = false;

    for (key, val) in &opts {
        let v = val.as_deref().unwrap_or("");
        match key.as_str() {
            "msg" => msg = unquote(v),
            "sid" => {}
            "rev" => rev = v.trim().parse().unwrap_or(1),
            "classtype" => {
                let (c, s) = classtype(v.trim());
                category = c;
                severity = s;
            }
            "priority" => severity = v.trim().parse::<u8>().unwrap_or(severity).clamp(1, 4),
            "flow" | "metadata" | "reference" | "fast_pattern" | "target" | "nocase" => {}
            "content" => {
                let raw = v.trim();
                if raw.starts_with('!') {
                    return Err(fail("negated content (`content:!`) does not map".into()));
                }
                let bytes = content_bytes(&unquote(raw)).map_err(fail)?;
                conds.push(Cond {
                    buffer: sticky.unwrap_or(Buffer::Request),
                    pattern: escape_regex(&bytes),
                });
                last = Some(conds.len() - 1);
            }
            "pcre" => {
                let (pattern, buf) = pcre(&unquote(v)).map_err(fail)?;
                let buffer = buf.or(sticky).unwrap_or(Buffer::Request);
                saw_http_buffer |= buf.is_some();
                conds.push(Cond { buffer, pattern });
                last = Some(conds.len() - 1);
            }
            k => {
                if let Some(b) = sticky_buffer(k) {
                    sticky = Some(b);
                    saw_http_buffer = true;
                } else if let Some(b) = modifier_buffer(k) {
                    let i = last.ok_or_else(|| fail(format!("`{k}` with no content before it")))?;
                    conds[i].buffer = b;
                    saw_http_buffer = true;
                } else {
                    return Err(fail(format!(
                        "keyword `{k}` does not map onto flowgate's buffers"
                    )));
                }
            }
        }
    }
    if conds.is_empty() {
        return Err(fail("no content or pcre to match".into()));
    }
    if proto.starts_with("tcp") && !saw_http_buffer {
        return Err(fail(
            "tcp rule without HTTP buffers: raw stream matching does not map".into(),
        ));
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
        conds,
    })
}

fn sticky_buffer(k: &str) -> Option<Buffer> {
    Some(match k {
        "http.uri" | "http.uri.raw" => Buffer::Uri,
        "http.request_body" | "http.request_body.raw" => Buffer::Body,
        "http.header" | "http.header.raw" | "http.cookie" | "http.user_agent" | "http.host"
        | "http.host.raw" | "http.referer" | "http.content_type" => Buffer::Headers,
        "http.method" | "http.request_line" | "http.protocol" => Buffer::Request,
        _ => return None,
    })
}

fn modifier_buffer(k: &str) -> Option<Buffer> {
    Some(match k {
        "http_uri" | "http_raw_uri" => Buffer::Uri,
        "http_client_body" => Buffer::Body,
        "http_header" | "http_raw_header" | "http_cookie" | "http_user_agent" | "http_host"
        | "http_raw_host" => Buffer::Headers,
        "http_method" => Buffer::Request,
        _ => return None,
    })
}

/// Splits `k:v; k; k:"a;b";` honouring quotes and backslash escapes.
fn split_options(s: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    let mut esc = false;
    for c in s.chars() {
        if esc {
            cur.push('\\');
            cur.push(c);
            esc = false;
            continue;
        }
        match c {
            '\\' => esc = true,
            '"' => {
                in_q = !in_q;
                cur.push(c);
            }
            ';' if !in_q => {
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

fn unquote(v: &str) -> String {
    let v = v.trim();
    let v = v
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v);
    // Suricata escapes `"`, `;` and `\` inside quoted values.
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some(n @ ('"' | ';' | '\\')) => out.push(n),
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
            for h in part.split_whitespace() {
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

fn escape_regex(bytes: &[u8]) -> String {
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

/// `/re/flags` → Hyperscan expression with inline flags, and the buffer a
/// U/P/H modifier selects.
fn pcre(s: &str) -> Result<(String, Option<Buffer>), String> {
    let neg = s.starts_with('!');
    if neg {
        return Err("negated pcre does not map".into());
    }
    let body = s.strip_prefix('/').ok_or("pcre must be /regex/flags")?;
    let end = body.rfind('/').ok_or("pcre must be /regex/flags")?;
    let (re, flags) = (&body[..end], &body[end + 1..]);
    let mut inline = String::new();
    let mut buf = None;
    for f in flags.chars() {
        match f {
            'i' => {}
            's' => inline.push('s'),
            'm' => inline.push('m'),
            'U' | 'I' => buf = Some(Buffer::Uri),
            'P' => buf = Some(Buffer::Body),
            'H' | 'D' | 'C' => buf = Some(Buffer::Headers),
            'M' => buf = Some(Buffer::Request),
            other => return Err(format!("pcre flag `{other}` does not map")),
        }
    }
    let re = if inline.is_empty() {
        re.to_string()
    } else {
        format!("(?{inline}){re}")
    };
    Ok((re, buf))
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

    #[test]
    fn maps_common_http_rule() {
        let (ok, bad) = parse(
            r#"alert http any any -> any any (msg:"SQLi UNION"; flow:established,to_server; http.uri; content:"union"; nocase; content:"select|20|"; pcre:"/union\s+select/Ui"; classtype:web-application-attack; sid:1000001; rev:3;)"#,
            "t.rules",
        );
        assert!(bad.is_empty(), "{bad:?}");
        let r = &ok[0];
        assert_eq!((r.meta.id, r.meta.rev, r.meta.severity), (1000001, 3, 1));
        assert_eq!(r.conds.len(), 3);
        assert!(r.conds.iter().all(|c| c.buffer == Buffer::Uri));
        assert_eq!(r.conds[1].pattern, "select ");
        assert_eq!(r.action, Action::Alert);
    }

    #[test]
    fn old_style_modifiers_and_rejections() {
        let text = r#"
# comment
drop tcp any any -> any $HTTP_PORTS (msg:"body"; content:"sleep("; http_client_body; sid:2;)
alert http any any -> any any (msg:"positional"; content:"a"; content:"b"; distance:0; sid:3;)
alert dns any any -> any any (msg:"dns"; content:"x"; sid:4;)
alert http any any -> any any (msg:"neg"; content:!"x"; sid:5;)
alert tcp any any -> any any (msg:"raw"; content:"x"; sid:6;)
alert http any any -> any any (msg:"no sid"; content:"x";)
"#;
        let (ok, bad) = parse(text, "t.rules");
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].conds[0].buffer, Buffer::Body);
        assert_eq!(ok[0].action, Action::Drop);
        let ids: Vec<Option<u32>> = bad.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![Some(3), Some(4), Some(5), Some(6), None]);
        assert!(bad[0].reason.contains("distance"), "{}", bad[0]);
        assert!(
            bad[0].to_string().starts_with("t.rules:4: sid 3:"),
            "{}",
            bad[0]
        );
    }
}
