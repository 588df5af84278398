//! HTTP request view and normalization for signature matching.
//!
//! Attackers encode SQL injection to slip past literal matching; servers
//! decode it again before it reaches the database. So signatures match a
//! normalized copy of each buffer: percent-decoded (twice, for `%2527`),
//! `+` as space in query and form data, JSON `\uXXXX` escapes undone, ASCII
//! case-folded, SQL block comments removed (`UNION/**/SELECT` → `union
//! select`; MySQL `/*!50000UNION*/` keeps its content), and whitespace runs
//! collapsed to one space. The raw bytes stay matchable too.

/// Where a request stands in a byte stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// Not enough bytes yet to see the end of the header block.
    Partial,
    /// Bytes that are not an HTTP request.
    NotHttp,
    /// The header block is complete: `head_len` bytes (through CRLFCRLF),
    /// then a body of `body_len` bytes (`None` if chunked or unknown).
    Complete {
        /// Bytes of the request line and headers, through the blank line.
        head_len: usize,
        /// The body length `Content-Length` gives; `None` for
        /// `Transfer-Encoding` (chunked) or an unreadable length, and then
        /// the next request's start cannot be found. Of several such
        /// headers, the last one wins.
        body_len: Option<usize>,
    },
}

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
];

/// Does this look like the start of an HTTP/1.x request? Needs the method
/// and its space; shorter prefixes of a method answer "maybe" (`None`).
pub fn starts_request(buf: &[u8]) -> Option<bool> {
    for m in METHODS {
        let n = m.len().min(buf.len());
        if buf[..n] == m[..n] {
            return if n == m.len() { Some(true) } else { None };
        }
    }
    Some(false)
}

/// Parses the request head with httparse.
pub fn head(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => Head::Partial,
        Ok(httparse::Status::Complete(head_len)) => {
            let mut body_len = Some(0);
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    body_len = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok());
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    body_len = None;
                }
            }
            Head::Complete { head_len, body_len }
        }
        // Too many headers is still HTTP: inspect what we have.
        Err(httparse::Error::TooManyHeaders) => Head::Complete {
            head_len: buf.len(),
            body_len: None,
        },
        Err(_) => Head::NotHttp,
    }
}

/// The parts of a (possibly partial) request that signatures look at, as
/// byte ranges of the request buffer. Works on prefixes: a URI cut by a
/// segment boundary is matched as far as it goes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// Request target: after the method's space up to ` HTTP/` (to the end
    /// of what is there if the line is not complete).
    pub uri: (usize, usize),
    /// The header lines, without the request line or the blank line.
    pub headers: (usize, usize),
    /// The body prefix: at most `body_limit` bytes after the blank line;
    /// empty until the head is complete.
    pub body: (usize, usize),
    /// `Content-Type` names JSON: the body is normalized as JSON (escapes
    /// undone) rather than as form data (`+` as space).
    pub json_body: bool,
}

/// Finds the [`Parts`] of a possibly partial request in `buf` (raw bytes
/// from the request line on). Never fails: a part not reached yet is an
/// empty range.
pub fn split(buf: &[u8], body_limit: usize) -> Parts {
    let line_end = find(buf, b"\r\n").unwrap_or(buf.len());
    let line = &buf[..line_end];
    let uri_start = line
        .iter()
        .position(|&b| b == b' ')
        .map_or(line.len(), |i| i + 1);
    // Up to the protocol token, so a raw space inside the URI (invalid, but
    // some servers accept it) does not end it early.
    let uri_end =
        memchr::memmem::rfind(&line[uri_start..], b" HTTP/").map_or(line.len(), |i| uri_start + i);
    let hdr_start = (line_end + 2).min(buf.len());
    let (hdr_end, body_start) = match find(&buf[hdr_start..], b"\r\n\r\n") {
        Some(i) => (hdr_start + i, hdr_start + i + 4),
        // An empty header block ends right after the request line.
        None if buf[hdr_start..].starts_with(b"\r\n") => (hdr_start, hdr_start + 2),
        None => (buf.len(), buf.len()),
    };
    let body_end = buf.len().min(body_start.saturating_add(body_limit));
    let headers = &buf[hdr_start..hdr_end];
    let json_body = memchr::memmem::find(headers, b"json")
        .and_then(|_| find_ci(headers, b"content-type:"))
        .map(|i| {
            let rest = &headers[i..];
            let eol = find(rest, b"\r\n").unwrap_or(rest.len());
            find_ci(&rest[..eol], b"json").is_some()
        })
        .unwrap_or(false);
    Parts {
        uri: (uri_start, uri_end),
        headers: (hdr_start, hdr_end),
        body: (body_start, body_end),
        json_body,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// How to normalize a buffer.
#[derive(Clone, Copy, Debug)]
pub struct Norm {
    /// `+` means space (query strings, form bodies).
    pub plus_is_space: bool,
    /// Undo JSON `\uXXXX` and `\"`-style escapes.
    pub json: bool,
}

/// Writes the normalized form of `raw` into `out` (cleared first).
pub fn normalize(raw: &[u8], how: Norm, out: &mut Vec<u8>, tmp: &mut Vec<u8>) {
    // Decode twice: `%2527` → `%27` → `'`. Servers that decode twice are
    // exactly the ones double encoding targets.
    tmp.clear();
    percent_decode(raw, how.plus_is_space, tmp);
    out.clear();
    if memchr::memchr(b'%', tmp).is_some() {
        percent_decode(tmp, false, out);
    } else {
        out.extend_from_slice(tmp);
    }
    if how.json {
        std::mem::swap(out, tmp);
        out.clear();
        json_unescape(tmp, out);
    }
    std::mem::swap(out, tmp);
    out.clear();
    fold_comments_space(tmp, out);
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(raw: &[u8], plus_is_space: bool, out: &mut Vec<u8>) {
    out.reserve(raw.len());
    let mut i = 0;
    while i < raw.len() {
        // Copy the run up to the next byte that needs decoding in one go.
        let next = if plus_is_space {
            memchr::memchr2(b'%', b'+', &raw[i..])
        } else {
            memchr::memchr(b'%', &raw[i..])
        };
        let Some(k) = next else {
            out.extend_from_slice(&raw[i..]);
            return;
        };
        out.extend_from_slice(&raw[i..i + k]);
        i += k;
        if raw[i] == b'+' {
            out.push(b' ');
            i += 1;
            continue;
        }
        // %XX, and IIS-style %uXXXX.
        if let (Some(h), Some(l)) = (
            raw.get(i + 1).and_then(|&c| hex(c)),
            raw.get(i + 2).and_then(|&c| hex(c)),
        ) {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        if let Some(cp) = unicode_escape(raw, i + 1) {
            push_codepoint(cp, out);
            i += 6;
            continue;
        }
        out.push(b'%');
        i += 1;
    }
}

/// The code point of `uXXXX` at `at`, if that is what is there.
fn unicode_escape(raw: &[u8], at: usize) -> Option<u32> {
    if !matches!(raw.get(at), Some(b'u') | Some(b'U')) {
        return None;
    }
    let mut cp = 0u32;
    for k in 1..5 {
        cp = cp << 4 | hex(*raw.get(at + k)?)? as u32;
    }
    Some(cp)
}

/// Fullwidth forms (U+FF01..FF5E) fold to ASCII: some stacks do the same.
fn push_codepoint(cp: u32, out: &mut Vec<u8>) {
    let cp = if (0xff01..=0xff5e).contains(&cp) {
        cp - 0xfee0
    } else {
        cp
    };
    match char::from_u32(cp) {
        Some(c) => {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
        }
        None => out.push(b'?'),
    }
}

fn json_unescape(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' {
            match raw.get(i + 1) {
                Some(b'u') => {
                    let d: Option<Vec<u8>> = (2..6)
                        .map(|k| raw.get(i + k).and_then(|&c| hex(c)))
                        .collect();
                    if let Some(d) = d {
                        let cp = (d[0] as u32) << 12
                            | (d[1] as u32) << 8
                            | (d[2] as u32) << 4
                            | d[3] as u32;
                        push_codepoint(cp, out);
                        i += 6;
                        continue;
                    }
                }
                Some(&c @ (b'"' | b'\\' | b'/')) => {
                    out.push(c);
                    i += 2;
                    continue;
                }
                Some(b'n') | Some(b't') | Some(b'r') | Some(b'f') | Some(b'b') => {
                    out.push(b' ');
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(raw[i]);
        i += 1;
    }
}

/// Bytes `fold_comments_space` must look at: whitespace and control
/// characters, and the first bytes of comment syntax.
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_whitespace()
            || c == 0
            || c == 0x0b
            || c == b'/'
            || c == b'*'
            || c == b'-'
            || c == b'#';
        b += 1;
    }
    t
};

/// Lowercases ASCII, replaces `/* ... */` with a space (keeping the body of
/// MySQL `/*! ... */` executable comments), turns control characters and
/// whitespace runs into one space.
fn fold_comments_space(raw: &[u8], out: &mut Vec<u8>) {
    out.reserve(raw.len());
    let mut i = 0;
    let mut last_space = false;
    let push = |out: &mut Vec<u8>, b: u8, last_space: &mut bool| {
        let is_space = b.is_ascii_whitespace() || b == 0 || b == 0x0b;
        if is_space {
            if !*last_space {
                out.push(b' ');
            }
            *last_space = true;
        } else {
            out.push(b.to_ascii_lowercase());
            *last_space = false;
        }
    };
    while i < raw.len() {
        // Fast path: a run of ordinary bytes is only lowercased.
        let start = i;
        while i < raw.len() && !SPECIAL[raw[i] as usize] {
            i += 1;
        }
        if i > start {
            out.extend(raw[start..i].iter().map(u8::to_ascii_lowercase));
            last_space = false;
            continue;
        }
        if raw[i] == b'/' && raw.get(i + 1) == Some(&b'*') {
            if raw.get(i + 2) == Some(&b'!') {
                // MySQL executes the content: keep it, drop the version digits.
                let mut j = i + 3;
                while j < raw.len() && raw[j].is_ascii_digit() {
                    j += 1;
                }
                push(out, b' ', &mut last_space);
                i = j;
                continue;
            }
            push(out, b' ', &mut last_space);
            match find(&raw[i + 2..], b"*/") {
                Some(k) => i = i + 2 + k + 2,
                None => {
                    // Unterminated: the database ignores the rest, which is
                    // itself a tell (`admin'/*`): keep a marker.
                    out.extend_from_slice(b"/*");
                    i = raw.len();
                }
            }
            continue;
        }
        let line_comment = (raw[i] == b'-' && raw.get(i + 1) == Some(&b'-')) || raw[i] == b'#';
        if line_comment {
            // `-- text\n` and `#text\n` are comments up to the newline:
            // tamper scripts use them as spaces (`UNION--x\nSELECT`). Only
            // when the newline is there; a trailing `--` stays visible. After
            // a quote or parenthesis it is the terminator itself: keep `--`.
            if let Some(nl) = raw[i..].iter().position(|&b| b == b'\n' || b == b'\r') {
                let after_quote =
                    matches!(out.iter().rev().find(|&&b| b != b' '), Some(b'\'' | b'"'));
                if after_quote {
                    // `admin'--\n...`: keep the terminator and its line end.
                    push(out, b' ', &mut last_space);
                    out.extend_from_slice(if raw[i] == b'#' { b"#\n" } else { b"--\n" });
                    last_space = false;
                }
                push(out, b' ', &mut last_space);
                i += nl + 1;
                continue;
            }
        }
        if raw[i] == b'*' && raw.get(i + 1) == Some(&b'/') {
            // End of a kept /*! comment.
            push(out, b' ', &mut last_space);
            i += 2;
            continue;
        }
        push(out, raw[i], &mut last_space);
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str, plus: bool) -> String {
        let (mut o, mut t) = (Vec::new(), Vec::new());
        normalize(
            s.as_bytes(),
            Norm {
                plus_is_space: plus,
                json: false,
            },
            &mut o,
            &mut t,
        );
        String::from_utf8_lossy(&o).into_owned()
    }

    #[test]
    fn decodes_folds_and_strips() {
        assert_eq!(
            norm("/p?id=1%27%20UnIoN/**/SeLeCt+1,2--", true),
            "/p?id=1' union select 1,2--"
        );
        assert_eq!(norm("id=1%2527%2520or%25201=1", true), "id=1' or 1=1");
        assert_eq!(
            norm("1/*!50000UNION*//*!50000SELECT*/1", false),
            "1 union select 1"
        );
        assert_eq!(norm("a%09%0a%0d%0a  b", false), "a b");
        assert_eq!(norm("x%u0027 or 1=1", false), "x' or 1=1");
        assert_eq!(norm("%zz%4", false), "%zz%4", "invalid escapes are kept");
        assert_eq!(norm("O'Brien", true), "o'brien");
        assert_eq!(norm("admin'/*", true), "admin' /*");
        assert_eq!(
            norm("1--x%0aUNION--y%0aSELECT#z%0a1", true),
            "1 union select 1"
        );
        assert_eq!(norm("admin'--%0a", true), "admin' --\n ");
        assert_eq!(norm("5--", true), "5--");
    }

    #[test]
    fn json_escapes() {
        let (mut o, mut t) = (Vec::new(), Vec::new());
        normalize(
            br#"{"q":"1\u0027 OR \u00271\u0027=\u00271"}"#,
            Norm {
                plus_is_space: false,
                json: true,
            },
            &mut o,
            &mut t,
        );
        assert_eq!(String::from_utf8_lossy(&o), r#"{"q":"1' or '1'='1"}"#);
    }

    #[test]
    fn head_and_parts() {
        let req = b"POST /login?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(
            head(req),
            Head::Complete {
                head_len: req.len() - 5,
                body_len: Some(5)
            }
        );
        let p = split(req, 1024);
        assert_eq!(&req[p.uri.0..p.uri.1], b"/login?x=1");
        assert_eq!(&req[p.body.0..p.body.1], b"hello");
        assert!(p.json_body);
        assert!(find(&req[p.headers.0..p.headers.1], b"Host: a").is_some());
        // A partial request line still yields the URI so far.
        let p = split(b"GET /search?q=1' uni", 1024);
        assert_eq!(p.uri, (4, 20));
        assert_eq!(head(b"GET /x HTT"), Head::Partial);
        assert_eq!(head(b"\x16\x03\x01\x02\x00"), Head::NotHttp);
        assert_eq!(starts_request(b"GE"), None);
        assert_eq!(starts_request(b"GET /"), Some(true));
        assert_eq!(starts_request(b"SSH-2.0"), Some(false));
    }
}
