//! The request head (RFC 9112 §3, §5, §6): request line, header fields and
//! the message framing they imply.
//!
//! Parsing is lenient where servers are (a raw space inside the target,
//! bare LF line ends, obs-fold) so that what a server would accept is still
//! inspected, and strict where leniency is an attack: every way the body
//! length could be read two ways is reported as request smuggling.

/// A byte range of the head buffer.
pub type Span = (usize, usize);

/// One header field, obs-fold continuations included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field name.
    pub name: Span,
    /// The value, without surrounding whitespace (continuation lines and
    /// their line breaks included).
    pub value: Span,
}

/// How the body's end is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// The length cannot be known (an invalid `Content-Length`): the next
    /// request cannot be found.
    Unknown,
}

/// How the body is encoded, from `Content-Type`: decides normalization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/x-www-form-urlencoded` (also the default: many clients
    /// send form data without a type).
    Form,
    /// A JSON media type.
    Json,
    /// Anything else (multipart, XML, text).
    Other,
}

/// A parsed request head. Spans index the buffer given to [`parse`].
#[derive(Clone, Debug)]
pub struct Head {
    /// The method token.
    pub method: Span,
    /// The request target, up to the protocol version (raw spaces inside
    /// are kept: some servers accept them).
    pub target: Span,
    /// `HTTP/1.0` rather than 1.1.
    pub http10: bool,
    /// The header fields in order.
    pub fields: Vec<Field>,
    /// How the body ends.
    pub framing: Framing,
    /// Why the framing is ambiguous, if it is: a front end and a back end
    /// could disagree on where this request ends (request smuggling).
    pub smuggling: Option<&'static str>,
    /// How the body is encoded.
    pub body_kind: BodyKind,
    /// `CONNECT`, or an `Upgrade` header: non-HTTP bytes may follow.
    pub tunnel: bool,
}

/// Why bytes are not a request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The first line does not start with a method token and a space.
    #[error("not an HTTP request")]
    NotHttp,
}

/// Longest method token accepted.
pub const MAX_METHOD: usize = 24;

/// RFC 9110 `tchar`.
pub fn is_tchar(c: u8) -> bool {
    TCHAR[c as usize]
}

/// `tchar` by byte: one load per byte of every field name.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        c += 1;
    }
    t
};

/// Whether `buf` (the first bytes of a head) can still start a request:
/// `Some(true)` once a method token and its space are there, `None` while
/// undecided, `Some(false)` when it cannot.
pub fn method_ok(buf: &[u8]) -> Option<bool> {
    for (i, &c) in buf.iter().enumerate().take(MAX_METHOD + 1) {
        if c == b' ' {
            return Some(i > 0);
        }
        if !is_tchar(c) || i == MAX_METHOD {
            return Some(false);
        }
    }
    None
}

/// Splits `buf` into lines ending in LF (CR before it removed); the last
/// piece has no LF.
fn lines(buf: &[u8]) -> impl Iterator<Item = Span> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= buf.len() {
            return None;
        }
        let start = at;
        let end = memchr::memchr(b'\n', &buf[at..]).map_or(buf.len(), |i| at + i);
        at = end + 1;
        let end = if end > start && buf[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        Some((start, end))
    })
}

fn trim(buf: &[u8], (mut a, mut b): Span) -> Span {
    while a < b && matches!(buf[a], b' ' | b'\t') {
        a += 1;
    }
    while b > a && matches!(buf[b - 1], b' ' | b'\t' | b'\r') {
        b -= 1;
    }
    (a, b)
}

/// Parses a complete head (request line through the blank line; a buffer
/// without the blank line is parsed as far as it goes).
pub fn parse(buf: &[u8]) -> Result<Head, HeadError> {
    let mut ls = lines(buf);
    let line = ls.next().ok_or(HeadError::NotHttp)?;
    let l = &buf[line.0..line.1];
    let sp = memchr::memchr(b' ', l).ok_or(HeadError::NotHttp)?;
    if sp == 0 || sp > MAX_METHOD || !l[..sp].iter().all(|&c| is_tchar(c)) {
        return Err(HeadError::NotHttp);
    }
    let method = (line.0, line.0 + sp);
    let mut t0 = sp + 1;
    while t0 < l.len() && l[t0] == b' ' {
        t0 += 1;
    }
    // Up to the protocol token, so a raw space inside the target (invalid,
    // but some servers accept it) does not end it early.
    let (t1, http10) = match memchr::memmem::rfind(&l[t0..], b" HTTP/") {
        Some(i) => (t0 + i, l[t0 + i..].starts_with(b" HTTP/1.0")),
        None => (l.len(), false),
    };
    let mut head = Head {
        method,
        target: (line.0 + t0, line.0 + t1.max(t0)),
        http10,
        // Browsers send 10–20 fields: one allocation instead of five.
        fields: Vec::with_capacity(16),
        framing: Framing::Empty,
        smuggling: None,
        body_kind: BodyKind::Form,
        tunnel: buf[method.0..method.1].eq_ignore_ascii_case(b"CONNECT"),
    };
    let smuggle = |why: &'static str, head: &mut Head| {
        head.smuggling.get_or_insert(why);
    };
    // Which fields are framing fields, for the obs-fold check.
    let is_framing = |name: &[u8]| {
        name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
    };
    for (a, b) in ls {
        if a == b {
            break; // the blank line
        }
        if matches!(buf[a], b' ' | b'\t') {
            // obs-fold: continues the previous field's value.
            match head.fields.last_mut() {
                Some(f) => {
                    f.value.1 = trim(buf, (f.value.0, b)).1;
                    if is_framing(&buf[f.name.0..f.name.1]) {
                        smuggle("line folding in a framing header", &mut head);
                    }
                }
                None => smuggle("whitespace before the first header field", &mut head),
            }
            continue;
        }
        // The name runs to the first byte that is not a tchar; a field iff
        // that byte is its ':' (no separate search for the colon).
        let stop = buf[a..b].iter().position(|&c| !is_tchar(c)).map(|i| a + i);
        let colon = match stop {
            Some(c) if buf[c] == b':' => c,
            // All tchar: no colon, not a field; servers ignore or reject it.
            None => continue,
            // Junk before any colon: the colon, if any, lies after `c`.
            Some(c) => {
                let Some(colon) = memchr::memchr(b':', &buf[c..b]).map(|i| c + i) else {
                    continue; // not a field; servers ignore or reject it
                };
                let trimmed = trim(buf, (a, colon));
                if is_framing(&buf[trimmed.0..trimmed.1]) {
                    smuggle("whitespace or junk in a framing header's name", &mut head);
                }
                continue;
            }
        };
        head.fields.push(Field {
            name: (a, colon),
            value: trim(buf, (colon + 1, b)),
        });
    }
    framing(buf, &mut head);
    Ok(head)
}

/// Works out the framing from `Content-Length` and `Transfer-Encoding`
/// (RFC 9112 §6.1–6.3), and the body kind and tunnel flag.
fn framing(buf: &[u8], head: &mut Head) {
    let mut lengths: Option<Result<u64, ()>> = None;
    let mut conflict = false;
    let mut codings = 0usize;
    let mut chunked_last = false;
    let mut chunked_twice = false;
    for f in &head.fields {
        let name = &buf[f.name.0..f.name.1];
        let value = &buf[f.value.0..f.value.1];
        if name.eq_ignore_ascii_case(b"content-length") {
            for v in value.split(|&c| c == b',') {
                let (a, b) = trim(v, (0, v.len()));
                let v = &v[a..b];
                let n = if !v.is_empty() && v.len() <= 18 && v.iter().all(u8::is_ascii_digit) {
                    std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or(())
                } else {
                    Err(())
                };
                match (lengths, n) {
                    (None, n) => lengths = Some(n),
                    (Some(Ok(x)), Ok(y)) if x == y => {}
                    (Some(_), _) => conflict = true,
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            for v in value.split(|&c| c == b',') {
                let (a, b) = trim(v, (0, v.len()));
                if a == b {
                    continue;
                }
                codings += 1;
                let chunked = v[a..b].eq_ignore_ascii_case(b"chunked");
                chunked_twice |= chunked && chunked_last;
                chunked_last = chunked;
            }
        } else if name.eq_ignore_ascii_case(b"content-type") {
            let v = value.to_ascii_lowercase();
            head.body_kind = if memchr::memmem::find(&v, b"json").is_some() {
                BodyKind::Json
            } else if v.starts_with(b"application/x-www-form-urlencoded") {
                BodyKind::Form
            } else {
                BodyKind::Other
            };
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            head.tunnel = true;
        }
    }
    let why = if codings > 0 {
        head.framing = Framing::Chunked;
        if lengths.is_some() {
            Some("both Content-Length and Transfer-Encoding")
        } else if !chunked_last {
            Some("Transfer-Encoding whose final coding is not chunked")
        } else if chunked_twice {
            Some("chunked applied twice")
        } else if head.http10 {
            Some("Transfer-Encoding in an HTTP/1.0 request")
        } else {
            None
        }
    } else {
        match lengths {
            None => None,
            Some(Ok(n)) if !conflict => {
                head.framing = Framing::Length(n);
                None
            }
            Some(Ok(_)) => {
                head.framing = Framing::Unknown;
                Some("conflicting Content-Length values")
            }
            Some(Err(())) => {
                head.framing = Framing::Unknown;
                Some("invalid Content-Length")
            }
        }
    };
    if let Some(why) = why {
        head.smuggling.get_or_insert(why);
    }
}

impl Head {
    /// The value of the first field called `name` (case-insensitive).
    pub fn field<'a>(&self, buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        self.fields
            .iter()
            .find(|f| buf[f.name.0..f.name.1].eq_ignore_ascii_case(name))
            .map(|f| &buf[f.value.0..f.value.1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smuggling(req: &str) -> Option<&'static str> {
        parse(req.as_bytes()).unwrap().smuggling
    }

    #[test]
    fn tchar_table_is_rfc_9110_tchar() {
        for c in 0..=255u8 {
            let rfc = c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
            assert_eq!(is_tchar(c), rfc, "byte {c:#04x}");
        }
    }

    #[test]
    fn request_line_fields_and_framing() {
        let req = b"POST /login?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 5\r\nX-Long: a\r\n b\r\n\r\n";
        let h = parse(req).unwrap();
        assert_eq!(&req[h.method.0..h.method.1], b"POST");
        assert_eq!(&req[h.target.0..h.target.1], b"/login?x=1");
        assert_eq!(h.framing, Framing::Length(5));
        assert_eq!(h.body_kind, BodyKind::Json);
        assert_eq!(h.field(req, b"x-long"), Some(&b"a\r\n b"[..]));
        assert_eq!(h.smuggling, None);
        // Raw spaces in the target; bare LF line ends.
        let req = b"GET /a b' or 1=1 HTTP/1.1\nHost: a\n\n";
        let h = parse(req).unwrap();
        assert_eq!(&req[h.target.0..h.target.1], b"/a b' or 1=1");
        assert_eq!(h.framing, Framing::Empty);
        assert_eq!(parse(b"\x16\x03\x01 x").unwrap_err(), HeadError::NotHttp);
        assert_eq!(method_ok(b"GE"), None);
        assert_eq!(method_ok(b"PROPFIND /"), Some(true));
        assert_eq!(method_ok(b"SSH-2.0-x\r"), Some(false));
        assert!(parse(b"CONNECT a:443 HTTP/1.1\r\n\r\n").unwrap().tunnel);
    }

    #[test]
    fn every_ambiguous_length_is_smuggling() {
        let te = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n";
        assert_eq!(smuggling(&format!("{te}\r\n")), None);
        assert_eq!(
            parse(format!("{te}\r\n").as_bytes()).unwrap().framing,
            Framing::Chunked
        );
        for (req, why) in [
            (
                format!("{te}Content-Length: 4\r\n\r\n"),
                "both Content-Length",
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n".into(),
                "conflicting",
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 4, 5\r\n\r\n".into(),
                "conflicting",
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: +4\r\n\r\n".into(),
                "invalid",
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 0x4\r\n\r\n".into(),
                "invalid",
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n".into(),
                "final coding",
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n".into(),
                "final coding",
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\x0b\r\n\r\n".into(),
                "final coding",
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n".into(),
                "twice",
            ),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
                "HTTP/1.0",
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n".into(),
                "name",
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\n\r\n".into(),
                "folding",
            ),
            (
                "POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\n\r\n".into(),
                "first header",
            ),
        ] {
            let got = smuggling(&req);
            assert!(got.is_some_and(|g| g.contains(why)), "{req:?}: {got:?}");
        }
        // Repeating the same length is allowed (RFC 9112 §6.3).
        assert_eq!(
            smuggling("POST / HTTP/1.1\r\nContent-Length: 4, 4\r\nContent-Length: 4\r\n\r\n"),
            None
        );
    }

    proptest::proptest! {
        /// Fields and smuggling verdicts are those of the rule as written
        /// (a field is a line whose text before its first ':' is all tchar),
        /// on lines dense in colons, blanks, junk and framing names.
        #[test]
        fn a_field_is_a_tchar_name_before_the_first_colon(
            lines in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec![
                    "a", ":", " ", "\t", "\x7f", "content-length", "Content-Length",
                    "transfer-encoding", "4", "chunked", "/",
                ]), 0..8),
                0..6),
        ) {
            let mut req = String::from("POST / HTTP/1.1\r\n");
            for l in &lines {
                req.push_str(&l.concat());
                req.push_str("\r\n");
            }
            req.push_str("\r\n");
            let buf = req.as_bytes();
            let head = parse(buf).unwrap();
            let mut want = Vec::new();
            for l in &lines {
                let line = l.concat();
                if line.is_empty() {
                    break;
                }
                if line.starts_with([' ', '\t']) {
                    continue; // obs-fold: not a new field
                }
                let Some(colon) = line.find(':') else { continue };
                if line[..colon].bytes().all(is_tchar) {
                    want.push(line[..colon].to_string());
                }
            }
            let got: Vec<String> = head
                .fields
                .iter()
                .map(|f| String::from_utf8_lossy(&buf[f.name.0..f.name.1]).into_owned())
                .collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
