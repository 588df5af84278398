//! Exact verification of Suricata rules on an HTTP request's buffers.
//!
//! Hyperscan only prefilters: each Suricata rule contributes one literal
//! (its `fast_pattern`, else its longest positive content) and the rule is
//! a candidate when that literal is found. The candidate is then checked
//! here, keyword by keyword, with Suricata's semantics:
//!
//! * a rule is a list of [`Section`]s, one per buffer ([`View`]); every
//!   section must match, and a buffer the request does not have matches
//!   nothing (not even a negated content), as in Suricata;
//! * within a section, items are matched in order. `content` is found in a
//!   window given by `offset`/`depth` (absolute) or `distance`/`within`
//!   (relative to the end of the previous match in the same buffer);
//!   `startswith`/`endswith` pin it to the buffer's ends; `nocase` is the
//!   only case folding (buffers are never lowercased); `isdataat`, `bsize`
//!   and `pcre` (with `R` relative to the previous match) follow the same
//!   cursor;
//! * when an item fails and the next item is relative to the previous
//!   match, the previous content or pcre is retried at its next occurrence
//!   (Suricata's backtracking), up to [`RECURSION_LIMIT`] steps.
//!
//! PCRE is PCRE2 (as in Suricata), so back-references and lookaround are
//! verified exactly. Suricata's PCRE match limits are not applied.

use super::Buffer;
use crate::http::Head;
use pcre2::bytes::{Regex, RegexBuilder};

/// Steps of backtracking per section before giving up (no match), like
/// Suricata's `inspection-recursion-limit` (3000 by default).
pub const RECURSION_LIMIT: u32 = 3000;

/// Bytes of a request body kept for verification: Suricata's default
/// `request-body-limit` (100 KiB). Body bytes past it are not inspected,
/// by Suricata or by flowgate.
pub const BODY_LIMIT: usize = 100 * 1024;

/// A Suricata HTTP request buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    /// `http.method`: the method token.
    Method,
    /// `http.uri`: the normalized target (percent-decoded, dot segments
    /// removed, path and query only).
    Uri,
    /// `http.uri.raw`: the target as sent.
    UriRaw,
    /// `http.request_line`: the request line without its line end.
    RequestLine,
    /// `http.protocol`: `HTTP/1.1`.
    Protocol,
    /// `http.header`: `Name: value\r\n` per field, `Cookie` left out.
    Header,
    /// `http.header.raw`: the header block as sent.
    HeaderRaw,
    /// `http.header_names`: `\r\n` then each name followed by `\r\n`, then `\r\n`.
    HeaderNames,
    /// `http.cookie`: the `Cookie` value.
    Cookie,
    /// `http.user_agent`.
    UserAgent,
    /// `http.host`: the host, lowercased, without the port.
    Host,
    /// `http.host.raw`: the `Host` value as sent.
    HostRaw,
    /// `http.referer`.
    Referer,
    /// `http.content_type`.
    ContentType,
    /// `http.accept`.
    Accept,
    /// `http.accept_lang`.
    AcceptLang,
    /// `http.accept_enc`.
    AcceptEnc,
    /// `http.connection`.
    Connection,
    /// `http.content_len`.
    ContentLen,
    /// `http.request_body` (`http_client_body`): the de-chunked body, at
    /// most [`BODY_LIMIT`] bytes.
    Body,
}

/// Number of [`View`]s.
pub const N_VIEWS: usize = 20;

/// Every view, in index order.
pub const ALL_VIEWS: [View; N_VIEWS] = [
    View::Method,
    View::Uri,
    View::UriRaw,
    View::RequestLine,
    View::Protocol,
    View::Header,
    View::HeaderRaw,
    View::HeaderNames,
    View::Cookie,
    View::UserAgent,
    View::Host,
    View::HostRaw,
    View::Referer,
    View::ContentType,
    View::Accept,
    View::AcceptLang,
    View::AcceptEnc,
    View::Connection,
    View::ContentLen,
    View::Body,
];

impl View {
    /// Index into per-view tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The Suricata sticky-buffer keyword.
    pub fn name(self) -> &'static str {
        match self {
            View::Method => "http.method",
            View::Uri => "http.uri",
            View::UriRaw => "http.uri.raw",
            View::RequestLine => "http.request_line",
            View::Protocol => "http.protocol",
            View::Header => "http.header",
            View::HeaderRaw => "http.header.raw",
            View::HeaderNames => "http.header_names",
            View::Cookie => "http.cookie",
            View::UserAgent => "http.user_agent",
            View::Host => "http.host",
            View::HostRaw => "http.host.raw",
            View::Referer => "http.referer",
            View::ContentType => "http.content_type",
            View::Accept => "http.accept",
            View::AcceptLang => "http.accept_lang",
            View::AcceptEnc => "http.accept_enc",
            View::Connection => "http.connection",
            View::ContentLen => "http.content_len",
            View::Body => "http.request_body",
        }
    }

    /// The view a sticky-buffer keyword selects.
    pub fn from_sticky(k: &str) -> Option<View> {
        ALL_VIEWS.iter().copied().find(|v| v.name() == k)
    }

    /// The view an old-style content modifier (`http_uri`, ...) selects.
    pub fn from_modifier(k: &str) -> Option<View> {
        Some(match k {
            "http_method" => View::Method,
            "http_uri" => View::Uri,
            "http_raw_uri" => View::UriRaw,
            "http_header" => View::Header,
            "http_raw_header" => View::HeaderRaw,
            "http_header_names" => View::HeaderNames,
            "http_cookie" => View::Cookie,
            "http_user_agent" => View::UserAgent,
            "http_host" => View::Host,
            "http_raw_host" => View::HostRaw,
            "http_client_body" => View::Body,
            "http_request_line" => View::RequestLine,
            "http_protocol" => View::Protocol,
            "http_referer" => View::Referer,
            "http_content_type" => View::ContentType,
            "http_accept" => View::Accept,
            "http_accept_lang" => View::AcceptLang,
            "http_accept_enc" => View::AcceptEnc,
            "http_connection" => View::Connection,
            "http_content_len" => View::ContentLen,
            _ => return None,
        })
    }

    /// The view a pcre buffer flag selects (`U I P H D M C V W Z`).
    pub fn from_pcre_flag(f: char) -> Option<View> {
        Some(match f {
            'U' => View::Uri,
            'I' => View::UriRaw,
            'P' => View::Body,
            'H' => View::Header,
            'D' => View::HeaderRaw,
            'M' => View::Method,
            'C' => View::Cookie,
            'V' => View::UserAgent,
            'W' => View::Host,
            'Z' => View::HostRaw,
            _ => return None,
        })
    }

    /// The header whose value this view is, if it is one.
    fn field(self) -> Option<&'static [u8]> {
        Some(match self {
            View::Cookie => b"cookie",
            View::UserAgent => b"user-agent",
            View::HostRaw => b"host",
            View::Referer => b"referer",
            View::ContentType => b"content-type",
            View::Accept => b"accept",
            View::AcceptLang => b"accept-language",
            View::AcceptEnc => b"accept-encoding",
            View::Connection => b"connection",
            View::ContentLen => b"content-length",
            _ => return None,
        })
    }

    /// The coarse buffer an alert names.
    pub fn buffer(self) -> Buffer {
        match self {
            View::Uri | View::UriRaw => Buffer::Uri,
            View::Body => Buffer::Body,
            View::Method | View::RequestLine | View::Protocol => Buffer::Request,
            _ => Buffer::Headers,
        }
    }
}

/// A `content` and its modifiers.
#[derive(Clone, Debug, Default)]
pub struct Content {
    /// The bytes (after `|hex|` decoding).
    pub bytes: Vec<u8>,
    /// `nocase`.
    pub nocase: bool,
    /// `content:!`.
    pub negated: bool,
    /// `offset`.
    pub offset: Option<usize>,
    /// `depth`.
    pub depth: Option<usize>,
    /// `distance` (may be negative).
    pub distance: Option<i64>,
    /// `within`.
    pub within: Option<usize>,
    /// `startswith`.
    pub startswith: bool,
    /// `endswith`.
    pub endswith: bool,
    /// `fast_pattern`.
    pub fast_pattern: bool,
}

impl Content {
    /// Matched relative to the previous match (`distance`/`within`).
    pub fn relative(&self) -> bool {
        self.distance.is_some() || self.within.is_some()
    }
}

/// A `pcre`.
#[derive(Clone, Debug)]
pub struct Pcre {
    /// The expression as written (for messages and the prefilter).
    pub source: String,
    /// Compiled (PCRE2).
    pub re: Regex,
    /// `R`: searched from the end of the previous match.
    pub relative: bool,
    /// `pcre:!`.
    pub negated: bool,
    /// `i`.
    pub caseless: bool,
    /// `s`.
    pub dotall: bool,
    /// `m`.
    pub multiline: bool,
    /// `x`.
    pub extended: bool,
}

/// One keyword of a section, in rule order.
#[derive(Clone, Debug)]
pub enum Item {
    /// `content` with its modifiers.
    Content(Content),
    /// `pcre`.
    Pcre(Pcre),
    /// `isdataat:[!]n[,relative]`.
    IsDataAt {
        /// Position.
        n: usize,
        /// From the previous match.
        relative: bool,
        /// `!`.
        negated: bool,
    },
    /// `bsize` (or `urilen` on the uri): the buffer's length is in `lo..=hi`.
    Size {
        /// Least length.
        lo: usize,
        /// Greatest length.
        hi: usize,
    },
}

impl Item {
    fn relative(&self) -> bool {
        match self {
            Item::Content(c) => c.relative(),
            Item::Pcre(p) => p.relative,
            Item::IsDataAt { relative, .. } => *relative,
            Item::Size { .. } => false,
        }
    }
}

/// The keywords of a rule that apply to one buffer.
#[derive(Clone, Debug)]
pub struct Section {
    /// The buffer.
    pub view: View,
    /// Its keywords in rule order.
    pub items: Vec<Item>,
}

/// What a `threshold` or `detection_filter` counts (per source, in
/// packet time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdKind {
    /// `type limit`: at most `count` alerts per window.
    Limit,
    /// `type threshold`: one alert every `count` matches in a window.
    Threshold,
    /// `type both`: one alert per window, at the `count`th match.
    Both,
    /// `detection_filter`: alerts on every match past the `count`th.
    Detection,
}

/// A `threshold`/`detection_filter` tracked `by_src`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold {
    /// How matches are counted.
    pub kind: ThresholdKind,
    /// `count`.
    pub count: u32,
    /// `seconds`.
    pub seconds: u64,
}

/// A threshold's state for one (rule, source): window start and matches.
#[derive(Clone, Copy, Debug)]
pub struct ThresholdState {
    start_ns: u64,
    count: u32,
}

impl ThresholdState {
    /// Within a window that may still count (a day at most).
    pub fn active(&self, now_ns: u64) -> bool {
        now_ns <= self.start_ns.saturating_add(86_400 * 1_000_000_000)
    }
}

impl Threshold {
    /// Counts a match at `now_ns` into `state` (None: the first for this
    /// rule and source) as Suricata does; returns whether it alerts.
    pub fn check(&self, state: &mut Option<ThresholdState>, now_ns: u64) -> bool {
        let Some(st) = state.as_mut() else {
            *state = Some(ThresholdState {
                start_ns: now_ns,
                count: 1,
            });
            return match self.kind {
                ThresholdKind::Limit => true,
                ThresholdKind::Threshold | ThresholdKind::Both => self.count <= 1,
                ThresholdKind::Detection => self.count == 0,
            };
        };
        let within = now_ns
            <= st
                .start_ns
                .saturating_add(self.seconds.saturating_mul(1_000_000_000));
        if !within {
            st.start_ns = now_ns;
            st.count = 1;
            return match self.kind {
                ThresholdKind::Limit => true,
                ThresholdKind::Both => self.count <= 1,
                ThresholdKind::Threshold => false,
                ThresholdKind::Detection => self.count == 0,
            };
        }
        st.count = st.count.saturating_add(1);
        match self.kind {
            ThresholdKind::Limit => st.count <= self.count,
            ThresholdKind::Threshold => {
                let fire = st.count >= self.count;
                if fire {
                    st.count = 0;
                }
                fire
            }
            ThresholdKind::Both => st.count == self.count,
            ThresholdKind::Detection => st.count > self.count,
        }
    }
}

/// A `flowbits` operation on one named bit of the flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flowbit {
    /// `set`: after the rule matches.
    Set(String),
    /// `unset`.
    Unset(String),
    /// `toggle`.
    Toggle(String),
    /// `isset`: a condition of the rule.
    IsSet(String),
    /// `isnotset`.
    IsNotSet(String),
}

/// What a Suricata rule matches: every section, then its flowbit
/// conditions; and what a match does besides alerting.
#[derive(Clone, Debug, Default)]
pub struct Detect {
    /// One per buffer used, in order of first use.
    pub sections: Vec<Section>,
    /// `flowbits` in rule order.
    pub flowbits: Vec<Flowbit>,
    /// `flowbits:noalert`: a match only sets bits.
    pub noalert: bool,
    /// `threshold` or `detection_filter` (by source).
    pub threshold: Option<Threshold>,
}

impl Detect {
    /// Adds `item` to its view's section (created on first use).
    pub fn push(&mut self, view: View, item: Item) {
        match self.sections.iter_mut().find(|s| s.view == view) {
            Some(s) => s.items.push(item),
            None => self.sections.push(Section {
                view,
                items: vec![item],
            }),
        }
    }

    /// The rule needs the request body.
    pub fn needs_body(&self) -> bool {
        self.sections.iter().any(|s| s.view == View::Body)
    }

    /// The prefilter literal: the `fast_pattern` content, else the longest
    /// positive content. `None` when the rule has no positive content.
    pub fn fast_pattern(&self) -> Option<(View, &Content)> {
        let all = || {
            self.sections.iter().flat_map(|s| {
                s.items.iter().filter_map(move |i| match i {
                    Item::Content(c) if !c.negated && !c.bytes.is_empty() => Some((s.view, c)),
                    _ => None,
                })
            })
        };
        all()
            .find(|(_, c)| c.fast_pattern)
            .or_else(|| all().max_by_key(|(_, c)| c.bytes.len()))
    }

    /// Checks every section against `views`. Returns the view and end of
    /// the last positive match (for the alert's excerpt) when all match.
    pub fn matches(&self, views: &Views) -> Option<(View, usize)> {
        let mut last = None;
        for s in &self.sections {
            let buf = views.get(s.view)?;
            let mut budget = RECURSION_LIMIT;
            let mut end = 0;
            if match_items(&s.items, buf, 0, &mut budget, &mut end) != Outcome::Match {
                return None;
            }
            last = Some((s.view, end));
        }
        last
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Match,
    /// No match here; an earlier item may retry at its next occurrence.
    NoMatch,
    /// No match, and retrying earlier items cannot help.
    Discontinue,
}

/// Matches `items` from the cursor `prev` (end of the previous match).
/// `last` receives the end of the last positive match.
fn match_items(
    items: &[Item],
    buf: &[u8],
    prev: usize,
    budget: &mut u32,
    last: &mut usize,
) -> Outcome {
    let Some((item, rest)) = items.split_first() else {
        return Outcome::Match;
    };
    if *budget == 0 {
        return Outcome::Discontinue;
    }
    *budget -= 1;
    let next_relative = rest.first().is_some_and(Item::relative);
    match item {
        Item::Content(c) => {
            let (start, end) = window(c, buf.len(), prev);
            if c.negated {
                let found = start <= end && find(buf, start, end, c).is_some();
                return if found {
                    Outcome::NoMatch
                } else {
                    match_items(rest, buf, prev, budget, last)
                };
            }
            let mut from = start;
            loop {
                if from > end {
                    return Outcome::NoMatch;
                }
                let Some(at) = find(buf, from, end, c) else {
                    return Outcome::NoMatch;
                };
                let m_end = at + c.bytes.len();
                match match_items(rest, buf, m_end, budget, last) {
                    Outcome::Match => {
                        *last = (*last).max(m_end);
                        return Outcome::Match;
                    }
                    Outcome::Discontinue => return Outcome::Discontinue,
                    Outcome::NoMatch if next_relative && !c.endswith => from = at + 1,
                    Outcome::NoMatch => return Outcome::NoMatch,
                }
            }
        }
        Item::Pcre(p) => {
            let base = if p.relative { prev.min(buf.len()) } else { 0 };
            let subject = &buf[base..];
            if p.negated {
                return match p.re.is_match(subject) {
                    Ok(false) => match_items(rest, buf, prev, budget, last),
                    _ => Outcome::NoMatch,
                };
            }
            let mut from = 0;
            loop {
                let m = match p.re.find_at(subject, from) {
                    Ok(Some(m)) => m,
                    _ => return Outcome::NoMatch,
                };
                let m_end = base + m.end();
                match match_items(rest, buf, m_end, budget, last) {
                    Outcome::Match => {
                        *last = (*last).max(m_end);
                        return Outcome::Match;
                    }
                    Outcome::Discontinue => return Outcome::Discontinue,
                    Outcome::NoMatch if next_relative && m.start() < subject.len() => {
                        from = m.start() + 1;
                        if *budget == 0 {
                            return Outcome::Discontinue;
                        }
                        *budget -= 1;
                    }
                    Outcome::NoMatch => return Outcome::NoMatch,
                }
            }
        }
        Item::IsDataAt {
            n,
            relative,
            negated,
        } => {
            // Suricata: relative needs `prev + n <= len`, absolute `n < len`.
            let has = if *relative {
                prev.saturating_add(*n) <= buf.len()
            } else {
                *n < buf.len()
            };
            if has != *negated {
                match_items(rest, buf, prev, budget, last)
            } else if *relative && *negated {
                // Data after this match: a later occurrence may have none.
                Outcome::NoMatch
            } else {
                Outcome::Discontinue
            }
        }
        Item::Size { lo, hi } => {
            if (*lo..=*hi).contains(&buf.len()) {
                match_items(rest, buf, prev, budget, last)
            } else {
                Outcome::Discontinue
            }
        }
    }
}

/// The window `[start, end]` in which a content's match must lie entirely
/// (`end` is the greatest end offset of the match).
fn window(c: &Content, len: usize, prev: usize) -> (usize, usize) {
    let n = c.bytes.len();
    if c.endswith {
        let start = if c.relative() {
            rel_start(c, prev)
        } else {
            c.offset.unwrap_or(0)
        };
        let at = len.saturating_sub(n);
        return if len >= n && at >= start {
            (at, len)
        } else {
            (1, 0)
        };
    }
    if c.startswith {
        return (0, n.min(len));
    }
    if c.relative() {
        let start = rel_start(c, prev);
        let mut end = len;
        if let Some(w) = c.within {
            let lim = (prev as i64)
                .saturating_add(c.distance.unwrap_or(0))
                .saturating_add(w as i64);
            end = end.min(lim.max(0) as usize);
        }
        (start, end)
    } else {
        let start = c.offset.unwrap_or(0);
        let end = match c.depth {
            Some(d) => len.min(start.saturating_add(d)),
            None => len,
        };
        (start, end)
    }
}

fn rel_start(c: &Content, prev: usize) -> usize {
    let s = (prev as i64).saturating_add(c.distance.unwrap_or(0));
    s.max(0) as usize
}

/// First occurrence of `c` starting at or after `from` and ending at or
/// before `end`.
fn find(buf: &[u8], from: usize, end: usize, c: &Content) -> Option<usize> {
    let n = c.bytes.len();
    let end = end.min(buf.len());
    if from > end || end - from < n {
        return None;
    }
    let hay = &buf[from..end];
    if n == 0 {
        return Some(from);
    }
    if c.nocase {
        hay.windows(n)
            .position(|w| w.eq_ignore_ascii_case(&c.bytes))
            .map(|p| p + from)
    } else {
        memchr::memmem::find(hay, &c.bytes).map(|p| p + from)
    }
}

/// Compiles a Suricata pcre body with its option letters (`i s m x`).
pub fn compile_pcre(
    re: &str,
    caseless: bool,
    dotall: bool,
    multiline: bool,
    extended: bool,
) -> Result<Regex, String> {
    RegexBuilder::new()
        .caseless(caseless)
        .dotall(dotall)
        .multi_line(multiline)
        .extended(extended)
        .jit_if_available(true)
        .build(re)
        .map_err(|e| format!("pcre does not compile: {e}"))
}

/// The Suricata buffers of one request, built only for the views some
/// loaded rule uses; reused across requests.
#[derive(Debug, Default)]
pub struct Views {
    data: Vec<Vec<u8>>,
    present: Vec<bool>,
}

impl Views {
    /// The view's bytes, `None` if the request does not have that buffer.
    pub fn get(&self, v: View) -> Option<&[u8]> {
        if *self.present.get(v.index())? {
            self.data.get(v.index()).map(Vec::as_slice)
        } else {
            None
        }
    }

    fn reset(&mut self) {
        if self.data.len() != N_VIEWS {
            self.data = vec![Vec::new(); N_VIEWS];
            self.present = vec![false; N_VIEWS];
        }
        for (d, p) in self.data.iter_mut().zip(self.present.iter_mut()) {
            d.clear();
            *p = false;
        }
    }

    fn set(&mut self, v: View, f: impl FnOnce(&mut Vec<u8>)) {
        if let (Some(d), Some(p)) = (
            self.data.get_mut(v.index()),
            self.present.get_mut(v.index()),
        ) {
            f(d);
            *p = true;
        }
    }

    /// Builds the head's views that `need` asks for (indexed by
    /// [`View::index`]) from the head bytes `buf` parsed as `head`. The body
    /// view is absent until [`Views::set_body`].
    pub fn build(&mut self, buf: &[u8], head: &Head, need: &[bool; N_VIEWS]) {
        self.reset();
        let span = |s: (usize, usize)| buf.get(s.0..s.1).unwrap_or(&[]);
        let wants = |v: View| need[v.index()];
        let line_end = memchr::memchr(b'\n', buf).unwrap_or(buf.len());
        let line = buf[..line_end]
            .strip_suffix(b"\r")
            .unwrap_or(&buf[..line_end]);
        if wants(View::Method) {
            self.set(View::Method, |d| d.extend_from_slice(span(head.method)));
        }
        let target = span(head.target);
        if wants(View::UriRaw) {
            self.set(View::UriRaw, |d| d.extend_from_slice(target));
        }
        if wants(View::Uri) {
            self.set(View::Uri, |d| normalize_uri(target, d));
        }
        if wants(View::RequestLine) {
            self.set(View::RequestLine, |d| d.extend_from_slice(line));
        }
        if wants(View::Protocol) {
            let proto = line.get(head.target.1.min(line.len())..).unwrap_or(&[]);
            let proto = proto.trim_ascii();
            if !proto.is_empty() {
                self.set(View::Protocol, |d| d.extend_from_slice(proto));
            }
        }
        if wants(View::HeaderRaw) && !head.fields.is_empty() {
            let from = (line_end + 1).min(buf.len());
            self.set(View::HeaderRaw, |d| d.extend_from_slice(&buf[from..]));
        }
        // Fields merged as libhtp does: repeated names joined with ", ".
        let mut merged: Vec<(&[u8], Vec<u8>)> = Vec::new();
        for f in &head.fields {
            let (name, value) = (span(f.name), span(f.value));
            match merged
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                Some((_, v)) => {
                    v.extend_from_slice(b", ");
                    v.extend_from_slice(value);
                }
                None => merged.push((name, value.to_vec())),
            }
        }
        if wants(View::Header) && !merged.is_empty() {
            self.set(View::Header, |d| {
                for (n, v) in &merged {
                    if n.eq_ignore_ascii_case(b"cookie") {
                        continue;
                    }
                    d.extend_from_slice(n);
                    d.extend_from_slice(b": ");
                    d.extend_from_slice(v);
                    d.extend_from_slice(b"\r\n");
                }
            });
        }
        if wants(View::HeaderNames) && !merged.is_empty() {
            self.set(View::HeaderNames, |d| {
                d.extend_from_slice(b"\r\n");
                for f in &head.fields {
                    d.extend_from_slice(span(f.name));
                    d.extend_from_slice(b"\r\n");
                }
                d.extend_from_slice(b"\r\n");
            });
        }
        let value = |name: &[u8]| {
            merged
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_slice())
        };
        for v in ALL_VIEWS {
            if let (true, Some(name)) = (wants(v), v.field()) {
                if let Some(val) = value(name) {
                    self.set(v, |d| d.extend_from_slice(val));
                }
            }
        }
        if wants(View::Host) {
            if let Some(h) = value(b"host") {
                // Lowercased, without a port (`[v6]:port` keeps its brackets).
                let cut = match h.iter().rposition(|&b| b == b':') {
                    Some(i) if !h[i..].contains(&b']') => i,
                    _ => h.len(),
                };
                self.set(View::Host, |d| {
                    d.extend(h[..cut].iter().map(u8::to_ascii_lowercase))
                });
            }
        }
    }

    /// Sets (or, with `None`, removes) the request body view.
    pub fn set_body(&mut self, body: Option<&[u8]>) {
        if self.data.len() != N_VIEWS {
            self.reset();
        }
        match body {
            Some(b) if !b.is_empty() => self.set(View::Body, |d| {
                d.clear();
                d.extend_from_slice(b)
            }),
            _ => {
                if let Some(p) = self.present.get_mut(View::Body.index()) {
                    *p = false;
                }
            }
        }
    }
}

/// Suricata's (libhtp's) normalized URI: for an absolute target only the
/// path and query; `%XX` decoded in both; in the path, `\\` read as `/`,
/// repeated `/` compressed and dot segments removed. `+` is not decoded.
/// Invalid `%` escapes are kept as they are.
pub fn normalize_uri(target: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut t = target;
    if let Some(i) = memchr::memmem::find(t, b"://") {
        if t[..i]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            let rest = &t[i + 3..];
            t = match rest.iter().position(|&b| matches!(b, b'/' | b'?')) {
                Some(j) => &rest[j..],
                None => b"/",
            };
        }
    }
    let (path, query) = match memchr::memchr(b'?', t) {
        Some(i) => (&t[..i], Some(&t[i..])),
        None => (t, None),
    };
    let mut p = Vec::with_capacity(path.len());
    percent_decode(path, &mut p);
    // libhtp's IDS personality (Suricata's default): backslashes are path
    // separators, and repeated separators are compressed.
    let mut q: Vec<u8> = Vec::with_capacity(p.len());
    for b in p {
        let b = if b == b'\\' { b'/' } else { b };
        if !(b == b'/' && q.last() == Some(&b'/')) {
            q.push(b);
        }
    }
    remove_dot_segments(&q, out);
    if let Some(q) = query {
        percent_decode(q, out);
    }
}

fn percent_decode(s: &[u8], out: &mut Vec<u8>) {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &[u8], out: &mut Vec<u8>) {
    let mut input = path;
    let start = out.len();
    while !input.is_empty() {
        if let Some(r) = input.strip_prefix(b"../") {
            input = r;
        } else if let Some(r) = input.strip_prefix(b"./") {
            input = r;
        } else if input.starts_with(b"/./") {
            input = &input[2..];
        } else if input == b"/." {
            input = b"/";
        } else if input.starts_with(b"/../") || input == b"/.." {
            input = if input.len() == 3 { b"/" } else { &input[3..] };
            let seg = out[start..].iter().rposition(|&b| b == b'/').unwrap_or(0);
            out.truncate(start + seg);
        } else if input == b"." || input == b".." {
            input = b"";
        } else {
            let skip = usize::from(input[0] == b'/');
            let n = input[skip..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(input.len(), |p| p + skip);
            out.extend_from_slice(&input[..n]);
            input = &input[n..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(s: &str) -> Content {
        Content {
            bytes: s.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn sec(items: Vec<Item>, buf: &str) -> bool {
        let mut budget = RECURSION_LIMIT;
        let mut last = 0;
        match_items(&items, buf.as_bytes(), 0, &mut budget, &mut last) == Outcome::Match
    }

    fn c(s: &str, f: impl FnOnce(&mut Content)) -> Item {
        let mut c = content(s);
        f(&mut c);
        Item::Content(c)
    }

    fn pcre(re: &str, relative: bool) -> Item {
        Item::Pcre(Pcre {
            source: re.into(),
            re: compile_pcre(re, false, false, false, false).unwrap(),
            relative,
            negated: false,
            caseless: false,
            dotall: false,
            multiline: false,
            extended: false,
        })
    }

    #[test]
    fn content_is_case_sensitive_unless_nocase() {
        assert!(!sec(vec![c("SELECT", |_| {})], "/a?q=select"));
        assert!(sec(vec![c("SELECT", |c| c.nocase = true)], "/a?q=select"));
        assert!(sec(vec![c("select", |_| {})], "/a?q=select"));
    }

    #[test]
    fn offset_and_depth() {
        assert!(sec(vec![c("abc", |c| c.depth = Some(3))], "abcdef"));
        assert!(!sec(vec![c("bcd", |c| c.depth = Some(3))], "abcdef"));
        assert!(sec(vec![c("bcd", |c| c.offset = Some(1))], "abcdef"));
        assert!(!sec(vec![c("abc", |c| c.offset = Some(1))], "abcdef"));
        assert!(sec(
            vec![c("cd", |c| {
                c.offset = Some(2);
                c.depth = Some(2)
            })],
            "abcdef"
        ));
        assert!(!sec(
            vec![c("de", |c| {
                c.offset = Some(2);
                c.depth = Some(2)
            })],
            "abcdef"
        ));
    }

    #[test]
    fn distance_and_within_with_backtracking() {
        // "b" must follow an "a" within 2 bytes: the first "a" fails, the
        // second succeeds (Suricata retries the previous content).
        let items = || {
            vec![
                c("a", |_| {}),
                c("b", |c| {
                    c.distance = Some(0);
                    c.within = Some(2)
                }),
            ]
        };
        assert!(sec(items(), "a....ab"));
        assert!(!sec(items(), "a....a..b"));
        // distance skips bytes.
        let d = vec![c("a", |_| {}), c("b", |c| c.distance = Some(2))];
        assert!(!sec(d.clone(), "ab"));
        assert!(sec(d, "a..b"));
        // Negative distance looks back.
        let n = vec![
            c("bc", |_| {}),
            c("ab", |c| {
                c.distance = Some(-3);
                c.within = Some(3)
            }),
        ];
        assert!(sec(n, "xabc"));
        // Order matters: relative content never matches before the cursor.
        assert!(!sec(
            vec![c("b", |_| {}), c("a", |c| c.distance = Some(0))],
            "ab"
        ));
    }

    #[test]
    fn startswith_and_endswith() {
        assert!(sec(vec![c("GET", |c| c.startswith = true)], "GET"));
        assert!(!sec(vec![c("ET", |c| c.startswith = true)], "GET"));
        assert!(sec(vec![c(".php", |c| c.endswith = true)], "/x.php"));
        assert!(!sec(vec![c(".php", |c| c.endswith = true)], "/x.php?a=1"));
        // Relative endswith: must end the buffer and follow the cursor.
        let r = vec![
            c("/x", |_| {}),
            c(".php", |c| {
                c.distance = Some(0);
                c.endswith = true
            }),
        ];
        assert!(sec(r.clone(), "/x/a.php"));
        assert!(!sec(r, "/a.php/x"));
    }

    #[test]
    fn negated_content() {
        assert!(sec(
            vec![c("a", |_| {}), c("z", |c| c.negated = true)],
            "abc"
        ));
        assert!(!sec(
            vec![c("a", |_| {}), c("c", |c| c.negated = true)],
            "abc"
        ));
        // Negated and relative: only after the cursor.
        let r = vec![
            c("b", |_| {}),
            c("a", |c| {
                c.negated = true;
                c.distance = Some(0)
            }),
        ];
        assert!(sec(r, "ab"));
    }

    #[test]
    fn isdataat() {
        let rel = |n, neg| Item::IsDataAt {
            n,
            relative: true,
            negated: neg,
        };
        assert!(sec(vec![c("id=", |_| {}), rel(1, false)], "id=1"));
        assert!(!sec(vec![c("id=", |_| {}), rel(2, false)], "id=1"));
        assert!(sec(vec![c("id=", |_| {}), rel(1, true)], "x id="));
        assert!(!sec(vec![c("id=", |_| {}), rel(1, true)], "id=1"));
        let abs = |n| Item::IsDataAt {
            n,
            relative: false,
            negated: false,
        };
        assert!(sec(vec![abs(3)], "abcd"));
        assert!(!sec(vec![abs(4)], "abcd"));
    }

    #[test]
    fn bsize() {
        assert!(sec(
            vec![Item::Size { lo: 3, hi: 3 }, c("GET", |_| {})],
            "GET"
        ));
        assert!(!sec(vec![Item::Size { lo: 3, hi: 3 }], "POST"));
    }

    #[test]
    fn relative_pcre_and_backrefs() {
        // `R`: anchored at the end of the previous content.
        assert!(sec(
            vec![c("id=", |_| {}), pcre(r"^\d+'", true)],
            "/a?id=12'"
        ));
        assert!(!sec(
            vec![c("id=", |_| {}), pcre(r"^\d+'", true)],
            "/a?id=x12'"
        ));
        // Non-relative pcre sees the whole buffer.
        assert!(sec(vec![c("zz", |_| {}), pcre(r"^/a", false)], "/a?zz"));
        // Backtracking into an earlier occurrence of the content.
        assert!(sec(vec![c("id=", |_| {}), pcre(r"^\d", true)], "id=x&id=1"));
        // What Hyperscan cannot do: back-references and lookaround.
        assert!(sec(vec![pcre(r"(['\x22])x\1", false)], "a'x'"));
        assert!(!sec(vec![pcre(r"(['\x22])x\1", false)], "a'x\""));
        assert!(sec(vec![pcre(r"foo(?!bar)", false)], "foobaz"));
        assert!(!sec(vec![pcre(r"foo(?!bar)", false)], "foobar"));
    }

    #[test]
    fn thresholds_count_as_suricata() {
        let s = 1_000_000_000u64;
        let run = |kind, count, times: &[u64]| {
            let t = Threshold {
                kind,
                count,
                seconds: 60,
            };
            let mut st = None;
            times
                .iter()
                .map(|&x| t.check(&mut st, x * s))
                .collect::<Vec<bool>>()
        };
        use ThresholdKind::{Both, Detection, Limit};
        assert_eq!(
            run(Limit, 2, &[0, 1, 2, 61, 62]),
            [true, true, false, true, true]
        );
        assert_eq!(
            run(ThresholdKind::Threshold, 3, &[0, 1, 2, 3, 4, 5]),
            [false, false, true, false, false, true]
        );
        assert_eq!(
            run(Both, 2, &[0, 1, 2, 3, 70, 71]),
            [false, true, false, false, false, true]
        );
        assert_eq!(
            run(Detection, 2, &[0, 1, 2, 3, 100]),
            [false, false, true, true, false]
        );
    }

    #[test]
    fn uri_normalization() {
        let n = |s: &str| {
            let mut o = Vec::new();
            normalize_uri(s.as_bytes(), &mut o);
            String::from_utf8_lossy(&o).into_owned()
        };
        assert_eq!(n("/a/./b/../c?x=%27%20OR+1"), "/a/c?x=' OR+1");
        assert_eq!(n("http://h:8080/x?y=1"), "/x?y=1");
        assert_eq!(n("/%zz%4"), "/%zz%4");
        assert_eq!(n("/A/B"), "/A/B");
        assert_eq!(n("/a//b\\\\c%2f/d?x=//"), "/a/b/c/d?x=//");
    }

    #[test]
    fn request_views() {
        let raw = b"POST /a/../B?x=1 HTTP/1.1\r\nHost: Ex.COM:8080\r\nCookie: s=1\r\nUser-Agent: UA\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
        let head = crate::http::head::parse(raw).unwrap();
        let mut v = Views::default();
        v.build(raw, &head, &[true; N_VIEWS]);
        let g = |x| v.get(x).map(|b| String::from_utf8_lossy(b).into_owned());
        assert_eq!(g(View::Method).as_deref(), Some("POST"));
        assert_eq!(g(View::Uri).as_deref(), Some("/B?x=1"));
        assert_eq!(g(View::UriRaw).as_deref(), Some("/a/../B?x=1"));
        assert_eq!(g(View::Protocol).as_deref(), Some("HTTP/1.1"));
        assert_eq!(
            g(View::RequestLine).as_deref(),
            Some("POST /a/../B?x=1 HTTP/1.1")
        );
        assert_eq!(g(View::Host).as_deref(), Some("ex.com"));
        assert_eq!(g(View::HostRaw).as_deref(), Some("Ex.COM:8080"));
        assert_eq!(g(View::Cookie).as_deref(), Some("s=1"));
        assert_eq!(
            g(View::Header).as_deref(),
            Some("Host: Ex.COM:8080\r\nUser-Agent: UA\r\nX-A: 1, 2\r\n")
        );
        assert_eq!(g(View::Referer), None);
        assert_eq!(g(View::Body), None);
        v.set_body(Some(b"a=1"));
        assert_eq!(v.get(View::Body), Some(&b"a=1"[..]));
    }
}
