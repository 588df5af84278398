//! Parameter values of a request — query string, cookies, a few headers,
//! form and JSON bodies — cut out one by one for the structural SQL
//! detector, which judges a value by the SQL it would form.
//!
//! Body values are cut as the body streams past: a value is held (up to
//! [`MAX_VALUE`] bytes) only until it ends. A longer value is judged in
//! overlapping windows of [`MAX_VALUE`] bytes, so padding a value does not
//! push an injection out of sight.

use super::head::{BodyKind, Head};

/// Longest run of one value judged at once; a longer value is judged in
/// windows this long that overlap by [`OVERLAP`].
pub const MAX_VALUE: usize = 4096;
/// Bytes a window shares with the next one.
pub const OVERLAP: usize = 1024;

/// Where a value was found (named in alerts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The query string of the request target.
    Query,
    /// A cookie.
    Cookie,
    /// A header that applications commonly read (`User-Agent`, `Referer`,
    /// `X-Forwarded-For`).
    Header,
    /// A form body field.
    Form,
    /// A JSON body string.
    Json,
}

impl Place {
    /// Name in alert reasons.
    pub fn name(self) -> &'static str {
        match self {
            Place::Query => "query",
            Place::Cookie => "cookie",
            Place::Header => "header",
            Place::Form => "form",
            Place::Json => "json",
        }
    }
}

/// One parameter value, raw (the caller decodes it), with where it was
/// found and its name (at most [`MAX_NAME`] bytes; empty when it has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value<'a> {
    /// Where it was found.
    pub place: Place,
    /// The parameter, cookie, header or JSON key name.
    pub name: &'a [u8],
    /// The raw value.
    pub raw: &'a [u8],
}

/// Longest name kept for a body value.
pub const MAX_NAME: usize = 64;

/// Headers whose values are judged as parameters.
const HEADERS: [&[u8]; 3] = [b"user-agent", b"referer", b"x-forwarded-for"];

/// Calls `f` for each value in a complete head: the query string's (split
/// on `&`, the part after `=`), each cookie's, and the headers in
/// [`HEADERS`]. Values are raw: the caller decodes them.
pub fn head_values(buf: &[u8], head: &Head, mut f: impl FnMut(Value<'_>)) {
    let target = &buf[head.target.0..head.target.1];
    if let Some(q) = memchr::memchr(b'?', target) {
        for pair in target[q + 1..].split(|&c| c == b'&') {
            f(split_pair(Place::Query, pair));
        }
    }
    for field in &head.fields {
        let name = &buf[field.name.0..field.name.1];
        let value = &buf[field.value.0..field.value.1];
        if name.eq_ignore_ascii_case(b"cookie") {
            for pair in value.split(|&c| c == b';') {
                f(split_pair(Place::Cookie, trim(pair)));
            }
        } else if HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            f(Value {
                place: Place::Header,
                name,
                raw: value,
            });
        }
    }
}

/// `name=value` (a pair without `=` is all value, unnamed).
fn split_pair(place: Place, pair: &[u8]) -> Value<'_> {
    match memchr::memchr(b'=', pair) {
        Some(i) => Value {
            place,
            name: &pair[..i.min(MAX_NAME)],
            raw: &pair[i + 1..],
        },
        None => Value {
            place,
            name: &[],
            raw: pair,
        },
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end]
}

/// Where a streaming cut is inside the body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Cut {
    /// Form: in a field name (before `=`).
    #[default]
    Name,
    /// Form: in a value.
    Value,
    /// JSON: outside any string.
    Outside,
    /// JSON: in a string.
    Str,
    /// JSON: in a string, after a backslash.
    Escape,
}

/// Cuts the values out of one streaming body: form fields (`a=1&b=2`) or
/// JSON strings. Other body types have no values to cut (their bytes are
/// still matched by signatures).
#[derive(Clone, Debug, Default)]
pub struct BodyValues {
    kind: Option<Place>,
    cut: Cut,
    /// The current value's raw bytes (at most [`MAX_VALUE`]).
    value: Vec<u8>,
    /// The current value's name (at most [`MAX_NAME`] bytes).
    name: Vec<u8>,
    /// JSON: the last string, which names the value if a `:` follows.
    key: Vec<u8>,
    /// The current value has already been judged in a window.
    windowed: bool,
}

impl BodyValues {
    /// A cutter for the body of a request with this head.
    pub fn new(head: &Head) -> BodyValues {
        let kind = match head.body_kind {
            BodyKind::Form => Some(Place::Form),
            BodyKind::Json => Some(Place::Json),
            BodyKind::Other => None,
        };
        BodyValues {
            kind,
            cut: if kind == Some(Place::Json) {
                Cut::Outside
            } else {
                Cut::Name
            },
            ..Default::default()
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.value.capacity() + self.name.capacity() + self.key.capacity()
    }

    /// Feeds the next body bytes; calls `f` for every value (or window of
    /// a long value) that is complete.
    pub fn push(&mut self, data: &[u8], f: &mut impl FnMut(Value<'_>)) {
        let Some(place) = self.kind else {
            return;
        };
        for &c in data {
            match (self.cut, c) {
                (Cut::Name, b'=') => self.cut = Cut::Value,
                (Cut::Name, b'&') => self.name.clear(),
                (Cut::Name, _) => {
                    if self.name.len() < MAX_NAME {
                        self.name.push(c);
                    }
                }
                (Cut::Value, b'&') => {
                    self.emit(place, f);
                    self.name.clear();
                    self.cut = Cut::Name;
                }
                (Cut::Outside, b'"') => self.cut = Cut::Str,
                (Cut::Outside, b':') => std::mem::swap(&mut self.name, &mut self.key),
                (Cut::Outside, b'{' | b',') => self.name.clear(),
                (Cut::Outside, _) => {}
                (Cut::Str, b'"') => {
                    self.key.clear();
                    let n = self.value.len().min(MAX_NAME);
                    self.key.extend_from_slice(&self.value[..n]);
                    self.emit(place, f);
                    self.cut = Cut::Outside;
                }
                (Cut::Str, b'\\') => {
                    self.cut = Cut::Escape;
                    self.add(c, place, f);
                }
                (Cut::Escape, _) => {
                    self.cut = Cut::Str;
                    self.add(c, place, f);
                }
                (Cut::Value | Cut::Str, _) => self.add(c, place, f),
            }
        }
    }

    /// The body ended: judges the last value.
    pub fn finish(&mut self, f: &mut impl FnMut(Value<'_>)) {
        if let (Some(place), Cut::Value | Cut::Str | Cut::Escape) = (self.kind, self.cut) {
            self.emit(place, f);
        }
        self.value = Vec::new();
        self.name = Vec::new();
        self.key = Vec::new();
    }

    fn add(&mut self, c: u8, place: Place, f: &mut impl FnMut(Value<'_>)) {
        if self.value.len() == MAX_VALUE {
            // A long value: judge this window, keep its end for the next.
            f(Value {
                place,
                name: &self.name,
                raw: &self.value,
            });
            self.value.drain(..MAX_VALUE - OVERLAP);
            self.windowed = true;
        }
        self.value.push(c);
    }

    fn emit(&mut self, place: Place, f: &mut impl FnMut(Value<'_>)) {
        // After windows, a tail no longer than the overlap was judged already.
        let seen = self.windowed && self.value.len() <= OVERLAP;
        if !self.value.is_empty() && !seen {
            f(Value {
                place,
                name: &self.name,
                raw: &self.value,
            });
        }
        self.value.clear();
        self.windowed = false;
        if self.value.capacity() > 2 * MAX_VALUE {
            self.value.shrink_to(MAX_VALUE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head;

    fn cut(head_text: &str, body: &[u8], piece: usize) -> Vec<(Place, String)> {
        let h = head::parse(head_text.as_bytes()).unwrap();
        let mut v = BodyValues::new(&h);
        let mut out = Vec::new();
        let mut f = |v: Value<'_>| {
            let name = String::from_utf8_lossy(v.name);
            out.push((
                v.place,
                format!("{name}={}", String::from_utf8_lossy(v.raw)),
            ))
        };
        for part in body.chunks(piece) {
            v.push(part, &mut f);
        }
        v.finish(&mut f);
        out
    }

    #[test]
    fn head_values_from_query_cookies_and_headers() {
        let buf = b"GET /a?x=1&y=2%27&flag HTTP/1.1\r\nCookie: sid=abc; q=it%27s\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n";
        let h = head::parse(buf).unwrap();
        let mut got = Vec::new();
        head_values(buf, &h, |v| {
            let name = String::from_utf8_lossy(v.name);
            got.push((
                v.place,
                format!("{name}={}", String::from_utf8_lossy(v.raw)),
            ))
        });
        let want = [
            (Place::Query, "x=1"),
            (Place::Query, "y=2%27"),
            (Place::Query, "=flag"),
            (Place::Cookie, "sid=abc"),
            (Place::Cookie, "q=it%27s"),
            (Place::Header, "User-Agent=curl/8"),
        ];
        assert_eq!(got, want.map(|(p, s)| (p, s.to_string())));
    }

    #[test]
    fn form_and_json_values_in_any_pieces() {
        let form = "POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n";
        let json = "POST / HTTP/1.1\r\nContent-Type: application/json\r\n\r\n";
        for piece in 1..8 {
            assert_eq!(
                cut(form, b"a=1&b=x%27y&c", piece),
                [(Place::Form, "a=1".into()), (Place::Form, "b=x%27y".into())]
            );
            assert_eq!(
                cut(json, br#"{"q": "a\"b", "n": 5, "t": ["x"]}"#, piece),
                [
                    (Place::Json, "=q".into()),
                    (Place::Json, r#"q=a\"b"#.into()),
                    (Place::Json, "=n".into()),
                    (Place::Json, "=t".into()),
                    (Place::Json, "t=x".into())
                ]
            );
        }
        let other = "POST / HTTP/1.1\r\nContent-Type: text/plain\r\n\r\n";
        assert!(cut(other, b"a=1", 3).is_empty());
    }

    #[test]
    fn a_long_value_is_judged_in_overlapping_windows() {
        let form = "POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n";
        let mut body = b"pad=".to_vec();
        body.extend(std::iter::repeat_n(b'x', 10_000));
        body.extend_from_slice(b"' or 1=1");
        let got = cut(form, &body, 1000);
        assert!(got.len() >= 3, "{}", got.len());
        assert!(got.iter().all(|(_, v)| v.len() <= "pad=".len() + MAX_VALUE));
        assert!(got.last().unwrap().1.ends_with("' or 1=1"));
    }
}
