//! Client-to-server TCP byte streams of HTTP requests: reassembly within
//! byte bounds, and the request framing that splits the stream into heads
//! and bodies.
//!
//! Only in-order bytes are parsed: a retransmission adds only what lies past
//! the bytes already taken (first copy wins), and an out-of-order segment
//! waits, bounded in bytes per flow and in a byte budget shared by the
//! shard, until the gap before it is filled. Each in-order byte is looked at
//! once: a head is buffered (up to `max_head`) until its blank line, a body
//! is handed on as it arrives and never held. Wherever the stream cannot be
//! followed the flow says why ([`Lost`]) instead of silently stopping.
//! Flows live in the shard of their client (the source), bucketed by it.

use crate::http::chunked::{Chunked, Step};
use crate::http::head::{self, Framing, Head};
use crate::shard::SourceKey;
use crate::table::TableKey;
use memchr::memmem;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

/// One TCP connection as seen from its client: the flow table's key.
/// Bucketed by the client, so a flow lives in its client's shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// The client (the segment's source).
    pub src: SourceKey,
    /// The server address, IPv4 v4-mapped as in [`SourceKey`].
    pub dst: u128,
    /// The client's port.
    pub sport: u16,
    /// The server's port.
    pub dport: u16,
}

impl FlowKey {
    /// The key of a client-to-server segment.
    pub fn new(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> FlowKey {
        FlowKey {
            src: SourceKey::from(src),
            dst: SourceKey::from(dst).0,
            sport,
            dport,
        }
    }
}

impl TableKey for FlowKey {
    #[inline]
    fn source(&self) -> SourceKey {
        self.src
    }
}

/// Why a flow's requests can no longer be followed. The engine counts each
/// and, for the ones an attacker can cause, applies
/// `signatures.unfollowable`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lost {
    /// The first bytes are not an HTTP request (TLS on port 80, another
    /// protocol): nothing to follow; not a policy event.
    NotHttp,
    /// Non-HTTP bytes after a `CONNECT` or `Upgrade` request: a tunnel;
    /// not a policy event.
    Tunnel,
    /// Non-HTTP bytes where the next request should start.
    NonHttpAfterRequest,
    /// A request head longer than `signatures.max_head`.
    HeadTooLong,
    /// A broken chunked coding (its reason in the alert).
    BadChunked(&'static str),
    /// A body length that cannot be known (invalid `Content-Length`).
    UnknownLength,
    /// Out-of-order data past the flow's or the shard's byte bounds.
    OooOverflow,
    /// The connection closed with a gap still open before queued data.
    Gap,
    /// Data in the middle of a request on an HTTP port, for a connection
    /// not tracked: its flow was evicted from a full table bucket, or began
    /// before flowgate did.
    Untracked,
}

impl Lost {
    /// Every kind, in a fixed order (counters and metrics labels).
    pub const ALL: [Lost; 9] = [
        Lost::NotHttp,
        Lost::Tunnel,
        Lost::NonHttpAfterRequest,
        Lost::HeadTooLong,
        Lost::BadChunked(""),
        Lost::UnknownLength,
        Lost::OooOverflow,
        Lost::Gap,
        Lost::Untracked,
    ];

    /// Index into [`Lost::ALL`].
    pub fn index(self) -> usize {
        match self {
            Lost::NotHttp => 0,
            Lost::Tunnel => 1,
            Lost::NonHttpAfterRequest => 2,
            Lost::HeadTooLong => 3,
            Lost::BadChunked(_) => 4,
            Lost::UnknownLength => 5,
            Lost::OooOverflow => 6,
            Lost::Gap => 7,
            Lost::Untracked => 8,
        }
    }

    /// Metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Lost::NotHttp => "not_http",
            Lost::Tunnel => "tunnel",
            Lost::NonHttpAfterRequest => "non_http_after_request",
            Lost::HeadTooLong => "head_too_long",
            Lost::BadChunked(_) => "bad_chunked",
            Lost::UnknownLength => "unknown_length",
            Lost::OooOverflow => "ooo_overflow",
            Lost::Gap => "gap",
            Lost::Untracked => "untracked",
        }
    }

    /// Whether this is an evasion an attacker can cause (the policy
    /// applies), rather than a flow that simply is not HTTP.
    pub fn is_policy(self) -> bool {
        !matches!(self, Lost::NotHttp | Lost::Tunnel)
    }

    /// For the alert's reason.
    pub fn describe(self) -> String {
        match self {
            Lost::NotHttp => "not HTTP".into(),
            Lost::Tunnel => "tunnelled bytes after CONNECT or Upgrade".into(),
            Lost::NonHttpAfterRequest => {
                "bytes that are not an HTTP request where the next request should start".into()
            }
            Lost::HeadTooLong => "request head longer than signatures.max_head".into(),
            Lost::BadChunked(why) => format!("broken chunked body: {why}"),
            Lost::UnknownLength => "body length cannot be known".into(),
            Lost::OooOverflow => {
                "out-of-order data past signatures.max_ooo_bytes or the shard's buffer budget"
                    .into()
            }
            Lost::Gap => "connection closed with a sequence gap before queued data".into(),
            Lost::Untracked => {
                "request data on an HTTP port for a connection not tracked (evicted from a full flow table bucket, or older than flowgate)".into()
            }
        }
    }
}

/// What the engine does with a flow's next segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowState {
    /// Following and inspecting requests.
    Inspecting,
    /// Not followed any more (not HTTP, a tunnel, or lost under an `allow`
    /// or `alert` policy): pass without looking.
    Ignored,
    /// An alert-only rule fired; the flow is not inspected again.
    Alerted,
    /// A drop rule fired: every later packet of the flow is dropped.
    Dropped(crate::rules::RuleId),
}

/// Bounds on one flow's buffering, from `signatures.*`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest request head (request line and fields) buffered.
    pub max_head: usize,
    /// Most out-of-order bytes held per flow.
    pub max_ooo_bytes: usize,
    /// Most out-of-order segments held per flow.
    pub max_ooo_segments: usize,
}

/// Bytes buffered by all flows of one shard (heads being read, out-of-order
/// segments), against one limit (`signatures.buffer_budget`). Each flow
/// holds a handle and gives its bytes back when dropped, however it leaves
/// the table (closed, evicted, expired).
#[derive(Clone, Debug)]
pub struct Budget {
    used: Arc<AtomicUsize>,
    limit: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Budget {
        Budget {
            used: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, n: usize) -> bool {
        // One shard thread owns every handle: load-then-store is not racy.
        let used = self.used();
        if used.saturating_add(n) > self.limit {
            return false;
        }
        self.used.store(used + n, Ordering::Relaxed);
        true
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n.min(self.used()), Ordering::Relaxed);
    }
}

/// Where a segment went.
#[derive(Debug, PartialEq, Eq)]
pub enum Placed<'a> {
    /// These bytes continue the stream: parse them (then any queued
    /// segments they made contiguous, [`HttpFlow::pop_ready`]).
    InOrder(&'a [u8]),
    /// Held until the gap before it fills.
    Queued,
    /// Nothing new (a retransmission, or an empty segment).
    Old,
    /// Past the out-of-order bounds: not held.
    Overflow,
}

/// Where the request parser is.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Between requests (empty lines before a request line are skipped,
    /// RFC 9112 §2.2).
    Idle,
    /// Reading a head into `head`.
    Head,
    /// In a `Content-Length` body: bytes left.
    Body(u64),
    /// In a chunked body.
    Chunked(Chunked),
    /// Reported lost: the next call says so.
    Losing(Lost),
    /// Not following any more.
    Done,
}

/// One parsing step's result.
#[derive(Debug)]
pub enum Event<'a> {
    /// A complete head, parsed; its bytes are [`HttpFlow::head_bytes`]
    /// until the next call.
    Head(Head),
    /// Body bytes (chunked coding removed).
    Body(&'a [u8]),
    /// The current request ended (its body, if any, is complete).
    End,
    /// The stream cannot be followed from here.
    Lost(Lost),
    /// The input is used up.
    More,
}

/// Reassembly and framing state of one client-to-server stream.
#[derive(Debug)]
pub struct HttpFlow {
    /// What happens to the flow's next segments.
    pub state: FlowState,
    next_seq: u32,
    ooo: Vec<(u32, Box<[u8]>)>,
    ooo_bytes: usize,
    phase: Phase,
    /// The head being read (or, after [`Event::Head`], the head just read).
    head: Vec<u8>,
    /// Bytes of `head` charged to the budget.
    head_charged: usize,
    /// Heads read so far on this connection.
    requests: u32,
    /// The last request was CONNECT or asked for an Upgrade.
    tunnel: bool,
    budget: Budget,
}

impl Drop for HttpFlow {
    fn drop(&mut self) {
        self.budget.give(self.ooo_bytes + self.head_charged);
    }
}

impl HttpFlow {
    /// A flow seen from its SYN: bytes start at `isn + 1`.
    pub fn from_syn(isn: u32, budget: &Budget) -> HttpFlow {
        HttpFlow::from_data(isn.wrapping_add(1), budget)
    }

    /// A flow picked up mid-stream at a segment that starts a request.
    pub fn from_data(seq: u32, budget: &Budget) -> HttpFlow {
        HttpFlow {
            state: FlowState::Inspecting,
            next_seq: seq,
            ooo: Vec::new(),
            ooo_bytes: 0,
            phase: Phase::Idle,
            head: Vec::new(),
            head_charged: 0,
            requests: 0,
            tunnel: false,
            budget: budget.clone(),
        }
    }

    /// Between requests with nothing buffered: forgetting this flow loses
    /// nothing (its next request is picked up where it starts).
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle) && self.ooo.is_empty()
    }

    /// What forgetting this flow would cost, for choosing what a full table
    /// bucket evicts (the lightest, oldest first): nothing for an idle or
    /// finished flow; a request's inspection for one mid-request; a
    /// standing drop for a dropped flow.
    pub fn eviction_weight(&self) -> u64 {
        match self.state {
            FlowState::Dropped(_) => 2,
            FlowState::Inspecting if !self.is_idle() => 1,
            _ => 0,
        }
    }

    /// Out-of-order bytes held.
    pub fn ooo_bytes(&self) -> usize {
        self.ooo_bytes
    }

    /// Segments wait before a gap.
    pub fn has_gap(&self) -> bool {
        !self.ooo.is_empty()
    }

    /// The bytes of the head last reported by [`Event::Head`].
    pub fn head_bytes(&self) -> &[u8] {
        &self.head
    }

    /// Whether the body of the current request is complete: the last
    /// [`Event::Body`] ended a body of known length, and [`Event::End`]
    /// comes next. (A chunked body's end is known only once its last
    /// chunk is read, so this is false for it.)
    pub fn body_complete(&self) -> bool {
        matches!(self.phase, Phase::Body(0))
    }

    /// Places a segment by sequence number.
    pub fn place<'a>(&mut self, seq: u32, data: &'a [u8], lim: &Limits) -> Placed<'a> {
        if data.is_empty() {
            return Placed::Old;
        }
        if !seq_gt(seq, self.next_seq) {
            let already = self.next_seq.wrapping_sub(seq) as usize;
            if already >= data.len() {
                return Placed::Old; // pure retransmission
            }
            let new = &data[already..];
            self.next_seq = self.next_seq.wrapping_add(new.len() as u32);
            return Placed::InOrder(new);
        }
        // A gap before it: hold it, within the flow's and the shard's bounds.
        let ahead = seq.wrapping_sub(self.next_seq) as usize;
        let fits = ahead <= lim.max_ooo_bytes
            && self.ooo.len() < lim.max_ooo_segments
            && self.ooo_bytes + data.len() <= lim.max_ooo_bytes;
        if !fits || !self.budget.try_take(data.len()) {
            return Placed::Overflow;
        }
        self.ooo_bytes += data.len();
        self.ooo.push((seq, data.into()));
        Placed::Queued
    }

    /// The next queued segment's new bytes, once the stream has reached it
    /// (call until `None` after parsing in-order bytes).
    pub fn pop_ready(&mut self) -> Option<Box<[u8]>> {
        loop {
            let next = self.next_seq;
            let i = self.ooo.iter().position(|(s, _)| !seq_gt(*s, next))?;
            let (seq, data) = self.ooo.swap_remove(i);
            self.ooo_bytes -= data.len();
            self.budget.give(data.len());
            let already = next.wrapping_sub(seq) as usize;
            if already < data.len() {
                self.next_seq = next.wrapping_add((data.len() - already) as u32);
                return Some(data[already..].into());
            }
        }
    }

    /// Parses the next piece of `input` (in-order bytes), advancing it.
    /// Call until [`Event::More`].
    pub fn next<'a>(&mut self, input: &mut &'a [u8], lim: &Limits) -> Event<'a> {
        loop {
            match self.phase {
                Phase::Done => {
                    *input = &[];
                    return Event::More;
                }
                Phase::Losing(why) => {
                    self.lose();
                    return Event::Lost(why);
                }
                Phase::Idle => {
                    let skip = input
                        .iter()
                        .position(|&c| c != b'\r' && c != b'\n')
                        .unwrap_or(input.len());
                    *input = &input[skip..];
                    if input.is_empty() {
                        return Event::More;
                    }
                    self.head.clear();
                    self.phase = Phase::Head;
                }
                Phase::Head => return self.read_head(input, lim),
                Phase::Body(0) => {
                    self.phase = Phase::Idle;
                    return Event::End;
                }
                Phase::Body(left) => {
                    if input.is_empty() {
                        return Event::More;
                    }
                    let n = (input.len() as u64).min(left) as usize;
                    let (data, rest) = input.split_at(n);
                    *input = rest;
                    self.phase = Phase::Body(left - n as u64);
                    return Event::Body(data);
                }
                Phase::Chunked(mut c) => {
                    let step = c.step(input);
                    self.phase = Phase::Chunked(c);
                    return match step {
                        Step::Data(d) => Event::Body(d),
                        Step::More => Event::More,
                        Step::Done => {
                            self.phase = Phase::Idle;
                            Event::End
                        }
                        Step::Error(why) => {
                            self.lose();
                            Event::Lost(Lost::BadChunked(why))
                        }
                    };
                }
            }
        }
    }

    fn read_head<'a>(&mut self, input: &mut &'a [u8], lim: &Limits) -> Event<'a> {
        let base = self.head.len();
        let end = head_end(&self.head, input);
        let take = end.unwrap_or(input.len());
        let room = lim.max_head.saturating_sub(base);
        let take_now = take.min(room);
        if !self.budget.try_take(take_now) {
            self.phase = Phase::Done;
            self.lose();
            return Event::Lost(Lost::OooOverflow);
        }
        self.head_charged += take_now;
        self.head.extend_from_slice(&input[..take_now]);
        *input = &input[take_now..];
        match head::method_ok(&self.head) {
            Some(false) => {
                let why = if self.requests == 0 {
                    Lost::NotHttp
                } else if self.tunnel {
                    Lost::Tunnel
                } else {
                    Lost::NonHttpAfterRequest
                };
                self.lose();
                return Event::Lost(why);
            }
            None if end.is_some() => {
                self.lose();
                return Event::Lost(if self.requests == 0 {
                    Lost::NotHttp
                } else {
                    Lost::NonHttpAfterRequest
                });
            }
            _ => {}
        }
        if take_now < take || (end.is_none() && self.head.len() >= lim.max_head) {
            self.lose();
            return Event::Lost(Lost::HeadTooLong);
        }
        if end.is_none() {
            return Event::More;
        }
        // The head is complete: its bytes stay readable until the next call,
        // but no longer count against the budget.
        self.budget.give(self.head_charged);
        self.head_charged = 0;
        match head::parse(&self.head) {
            Err(_) => {
                self.lose();
                Event::Lost(Lost::NotHttp)
            }
            Ok(h) => {
                self.requests += 1;
                self.tunnel = h.tunnel;
                self.phase = match h.framing {
                    Framing::Empty => Phase::Body(0),
                    Framing::Length(n) => Phase::Body(n),
                    Framing::Chunked => Phase::Chunked(Chunked::default()),
                    Framing::Unknown => Phase::Losing(Lost::UnknownLength),
                };
                Event::Head(h)
            }
        }
    }

    /// Stops following: frees the buffers.
    fn lose(&mut self) {
        self.phase = Phase::Done;
        self.budget.give(self.ooo_bytes + self.head_charged);
        self.ooo_bytes = 0;
        self.head_charged = 0;
        self.ooo = Vec::new();
        self.head = Vec::new();
    }

    /// Sets the flow's fate and frees its buffers (a final verdict, or a
    /// lost stream).
    pub fn finish(&mut self, state: FlowState) {
        self.lose();
        self.state = state;
    }
}

/// `a` after `b` in sequence space.
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Where a head ends in `input`: just past the LF of its blank line (an LF
/// ending a line that is empty or holds only a CR), given the head's bytes
/// read before `input` (`prev`). Two vectorized searches over the segment
/// rather than one search per line: a head is read once, line by line,
/// by [`head::parse`] anyway.
fn head_end(prev: &[u8], input: &[u8]) -> Option<usize> {
    static CRLF: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"\n\r\n"));
    static LFLF: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"\n\n"));
    // The byte `k` places before `input[i]` (from `prev` if need be);
    // `None` before the head's first byte, which starts a line.
    let before = |i: usize, k: usize| -> Option<u8> {
        match i.checked_sub(k) {
            Some(j) => input.get(j).copied(),
            None => prev
                .len()
                .checked_sub(k - i)
                .and_then(|j| prev.get(j).copied()),
        }
    };
    // An LF at 0 or 1 may end a line begun in `prev`.
    for (i, &c) in input.iter().enumerate().take(2) {
        let blank = c == b'\n'
            && match before(i, 1) {
                None | Some(b'\n') => true,
                Some(b'\r') => matches!(before(i, 2), None | Some(b'\n')),
                Some(_) => false,
            };
        if blank {
            return Some(i + 1);
        }
    }
    // Further on, the blank line is "\n\r\n" or "\n\n" inside `input`:
    // the first of either (a bare-LF one only counts before the CRLF one).
    let crlf = CRLF.find(input);
    let upto = crlf.map_or(input.len(), |p| p + 2);
    match LFLF.find(input.get(..upto).unwrap_or(input)) {
        Some(p) => Some(p + 2),
        None => crlf.map(|p| p + 3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: Limits = Limits {
        max_head: 256,
        max_ooo_bytes: 64,
        max_ooo_segments: 3,
    };

    /// Feeds segments and collects what the parser reports, as text.
    fn run(f: &mut HttpFlow, segs: &[(u32, &[u8])]) -> Vec<String> {
        let mut out = Vec::new();
        let parse = |f: &mut HttpFlow, mut input: &[u8], out: &mut Vec<String>| loop {
            match f.next(&mut input, &LIM) {
                Event::More => break,
                Event::Head(h) => out.push(format!(
                    "head {}",
                    String::from_utf8_lossy(&f.head_bytes()[h.target.0..h.target.1])
                )),
                Event::Body(b) => out.push(format!("body {}", String::from_utf8_lossy(b))),
                Event::End => out.push("end".into()),
                Event::Lost(l) => out.push(format!("lost {}", l.label())),
            }
        };
        for &(seq, data) in segs {
            match f.place(seq, data, &LIM) {
                Placed::InOrder(new) => {
                    parse(f, new, &mut out);
                    while let Some(more) = f.pop_ready() {
                        parse(f, &more, &mut out);
                    }
                }
                Placed::Overflow => out.push("overflow".into()),
                Placed::Queued | Placed::Old => {}
            }
        }
        out
    }

    #[test]
    fn pipelined_keep_alive_chunked_and_reordered() {
        let budget = Budget::new(1 << 20);
        let mut f = HttpFlow::from_syn(999, &budget);
        let a = b"\r\nGET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        let b = b"POST /3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n";
        let seq_b = 1000 + a.len() as u32;
        // b arrives first (queued), then a, then a retransmission of a.
        let got = run(&mut f, &[(seq_b, b), (1000, a), (1000, a)]);
        assert_eq!(
            got,
            ["head /1", "end", "head /2", "body abc", "end", "head /3", "body xy", "end"]
        );
        assert_eq!(budget.used(), 0, "queued bytes given back");
        assert!(f.is_idle());
    }

    #[test]
    fn heads_cut_anywhere_are_found_once() {
        let req = b"GET /a?q=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\n\n";
        for cut in 1..req.len() {
            let budget = Budget::new(1 << 20);
            let mut f = HttpFlow::from_data(0, &budget);
            let got = run(&mut f, &[(0, &req[..cut]), (cut as u32, &req[cut..])]);
            assert_eq!(got, ["head /a?q=1", "end", "head /b", "end"], "cut {cut}");
        }
    }

    #[test]
    fn ooo_is_bounded_in_bytes_per_flow_and_shard() {
        let budget = Budget::new(100);
        let mut f = HttpFlow::from_data(0, &budget);
        assert_eq!(f.place(10, &[b'a'; 40], &LIM), Placed::Queued);
        assert_eq!(
            f.place(50, &[b'a'; 30], &LIM),
            Placed::Overflow,
            "flow bytes"
        );
        assert_eq!(f.place(500, b"x", &LIM), Placed::Overflow, "out of window");
        let mut g = HttpFlow::from_data(0, &budget);
        assert_eq!(g.place(5, &[b'b'; 50], &LIM), Placed::Queued);
        let mut h = HttpFlow::from_data(0, &budget);
        assert_eq!(
            h.place(5, &[b'c'; 20], &LIM),
            Placed::Overflow,
            "shard budget"
        );
        assert_eq!(budget.used(), 90);
        drop(g);
        assert_eq!(budget.used(), 40, "a dropped flow gives its bytes back");
        assert_eq!(h.place(5, &[b'c'; 20], &LIM), Placed::Queued);
    }

    #[test]
    fn lost_streams_say_why() {
        let budget = Budget::new(1 << 20);
        let mut f = HttpFlow::from_syn(0, &budget);
        assert_eq!(run(&mut f, &[(1, b"\x16\x03\x01\x00")]), ["lost not_http"]);
        let mut f = HttpFlow::from_data(0, &budget);
        let got = run(&mut f, &[(0, b"GET / HTTP/1.1\r\n\r\n\x16\x03")]);
        assert_eq!(got, ["head /", "end", "lost non_http_after_request"]);
        let mut f = HttpFlow::from_data(0, &budget);
        let got = run(
            &mut f,
            &[(0, b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x05")],
        );
        assert_eq!(got, ["head /", "end", "lost tunnel"]);
        let mut f = HttpFlow::from_data(0, &budget);
        let long = [b"GET /".as_slice(), &[b'a'; 300]].concat();
        assert_eq!(run(&mut f, &[(0, &long)]), ["lost head_too_long"]);
        let mut f = HttpFlow::from_data(0, &budget);
        let got = run(
            &mut f,
            &[(
                0,
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            )],
        );
        assert_eq!(got, ["head /", "lost bad_chunked"]);
        let mut f = HttpFlow::from_data(0, &budget);
        let got = run(
            &mut f,
            &[(0, b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n")],
        );
        assert_eq!(got, ["head /", "lost unknown_length"]);
        drop(f);
        assert_eq!(budget.used(), 0);
    }

    /// The blank line as the parser found it before `head_end`: one LF
    /// search per line, carrying the current line's start across segments.
    fn head_end_by_lines(segs: &[&[u8]]) -> Option<(usize, usize)> {
        let mut head: Vec<u8> = Vec::new();
        let mut line_start = 0;
        for (n, input) in segs.iter().enumerate() {
            let base = head.len();
            let mut at = 0;
            while let Some(i) = memchr::memchr(b'\n', &input[at..]) {
                let lf = base + at + i;
                let line_len = lf - line_start;
                let first = if line_start >= base {
                    input[line_start - base]
                } else {
                    head[line_start]
                };
                if line_len == 0 || (line_len == 1 && first == b'\r') {
                    return Some((n, at + i + 1));
                }
                line_start = lf + 1;
                at += i + 1;
            }
            head.extend_from_slice(input);
        }
        None
    }

    proptest::proptest! {
        /// `head_end` finds the same blank line as a search line by line,
        /// wherever the head is cut into segments (CR, LF and ':' dense
        /// bytes, so every edge case is common).
        #[test]
        fn head_end_is_the_first_blank_line(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![b'\r', b'\n', b'a', b':']), 0..40),
            cuts in proptest::collection::vec(0usize..40, 0..4),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut segs: Vec<&[u8]> = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                segs.push(&bytes[at..c]);
                at = c;
            }
            let mut head: Vec<u8> = Vec::new();
            let mut got = None;
            for (n, seg) in segs.iter().enumerate() {
                if let Some(e) = head_end(&head, seg) {
                    got = Some((n, e));
                    break;
                }
                head.extend_from_slice(seg);
            }
            proptest::prop_assert_eq!(got, head_end_by_lines(&segs));
        }
    }
}
