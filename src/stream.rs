//! Client-to-server TCP byte streams of HTTP requests, reassembled within
//! bounds so a signature split across segments still matches.
//!
//! Only in-order bytes reach the request buffer: a retransmission adds only
//! what lies past the bytes already taken (first copy wins), and an
//! out-of-order segment waits in a small queue until the gap before it is
//! filled. Bytes that are not contiguous are never joined, so overlapping or
//! reordered segments cannot create a match the receiver would not see.
//! Flows live in the shard of their client (the source), bucketed by it.

use crate::http::{self, Head};
use crate::rules::RuleId;
use crate::shard::SourceKey;
use crate::table::TableKey;
use std::net::IpAddr;

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

/// What the engine does with a flow's next segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowState {
    /// Collecting and scanning request bytes.
    Inspecting,
    /// Not HTTP, or past what we inspect: pass without looking.
    Ignored,
    /// An alert-only rule fired; the flow is not scanned again.
    Alerted,
    /// A drop rule fired: every later packet of the flow is dropped.
    Dropped(RuleId),
}

/// Bounds on one flow's buffering and inspection, from `signatures.*`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most bytes of one request held (head plus body prefix).
    pub max_request: usize,
    /// Body bytes inspected.
    pub body_limit: usize,
    /// Out-of-order segments held per flow.
    pub max_ooo_segments: usize,
}

/// Reassembly and inspection state of one client-to-server stream: the
/// in-order bytes of the current request (bounded), a few segments that
/// arrived early, and how many body bytes to let pass uninspected.
#[derive(Debug)]
pub struct HttpFlow {
    /// What happens to the flow's next segments. The engine sets it when a
    /// rule matches ([`HttpFlow::finish`]); the flow sets `Ignored` itself
    /// when it stops inspecting.
    pub state: FlowState,
    next_seq: u32,
    /// In-order bytes of the current request.
    buf: Vec<u8>,
    /// Body bytes of the current request still to pass uninspected.
    skip: usize,
    /// In-order bytes taken past a full buffer (`max_request`) and not
    /// kept: they follow `buf` in the stream. While non-zero nothing more
    /// is appended, so the buffer never joins bytes that were not adjacent.
    dropped: usize,
    ooo: Vec<(u32, Vec<u8>)>,
}

/// What feeding a segment did.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// New in-order bytes reached the request buffer: scan it.
    Grew,
    /// Nothing new to scan (retransmission, gap, skipped body).
    Nothing,
    /// An out-of-order segment had to be discarded (queue full).
    OverflowedOoo,
}

/// What to do after a clean scan of the current request.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Wait for more bytes.
    Wait,
    /// A pipelined request follows in the buffer: scan again.
    Rescan,
    /// Stop inspecting this flow (not HTTP, or the request outgrew the limit).
    Stop {
        /// The request outgrew `max_request` before its head ended, or a
        /// pipelined request began in bytes taken past a full buffer and
        /// not kept (counted in the shard's `http_truncated`).
        truncated: bool,
    },
}

impl HttpFlow {
    /// A flow seen from its SYN: bytes start at `isn + 1`.
    pub fn from_syn(isn: u32) -> HttpFlow {
        HttpFlow {
            state: FlowState::Inspecting,
            next_seq: isn.wrapping_add(1),
            buf: Vec::new(),
            skip: 0,
            dropped: 0,
            ooo: Vec::new(),
        }
    }

    /// A flow picked up mid-stream at a segment that starts a request.
    pub fn from_data(seq: u32) -> HttpFlow {
        HttpFlow {
            next_seq: seq,
            ..HttpFlow::from_syn(0)
        }
    }

    /// The in-order bytes of the current request, from its first byte and
    /// at most `max_request` long: what the scanner sees.
    pub fn request(&self) -> &[u8] {
        &self.buf
    }

    /// Places a segment by sequence number.
    pub fn feed(&mut self, seq: u32, data: &[u8], lim: &Limits) -> Fed {
        let mut fed = self.take(seq, data, lim);
        if fed == Fed::Nothing && !data.is_empty() && seq_gt(seq, self.next_seq) {
            // A gap before it: hold it (bounded) until the gap fills.
            if seq.wrapping_sub(self.next_seq) > 1 << 20 {
                return Fed::Nothing; // far outside any window: garbage
            }
            if self.ooo.len() >= lim.max_ooo_segments {
                return Fed::OverflowedOoo;
            }
            self.ooo.push((seq, data.to_vec()));
            return Fed::Nothing;
        }
        // Drain queued segments that are now contiguous.
        loop {
            let next = self.next_seq;
            let Some(i) = self.ooo.iter().position(|(s, _)| !seq_gt(*s, next)) else {
                break;
            };
            let (s, d) = self.ooo.swap_remove(i);
            if self.take(s, &d, lim) == Fed::Grew {
                fed = Fed::Grew;
            }
        }
        fed
    }

    /// Appends the part of an at-or-before-`next_seq` segment that is new.
    fn take(&mut self, seq: u32, data: &[u8], lim: &Limits) -> Fed {
        if seq_gt(seq, self.next_seq) {
            return Fed::Nothing;
        }
        let already = self.next_seq.wrapping_sub(seq) as usize;
        if already >= data.len() {
            return Fed::Nothing; // pure retransmission
        }
        let new = &data[already..];
        self.next_seq = self.next_seq.wrapping_add(new.len() as u32);
        let skipped = self.skip.min(new.len());
        self.skip -= skipped;
        let new = &new[skipped..];
        if new.is_empty() || self.state != FlowState::Inspecting {
            return Fed::Nothing;
        }
        // Once bytes have been dropped the buffer is frozen: appending
        // later bytes would join two runs that were not adjacent.
        let room = if self.dropped > 0 {
            0
        } else {
            lim.max_request.saturating_sub(self.buf.len())
        };
        let kept = new.len().min(room);
        self.buf.extend_from_slice(&new[..kept]);
        self.dropped = self.dropped.saturating_add(new.len() - kept);
        Fed::Grew
    }

    /// After a scan found nothing: move past a finished request, or decide
    /// to stop inspecting.
    pub fn advance(&mut self, lim: &Limits) -> Next {
        if http::starts_request(&self.buf) == Some(false) {
            self.stop();
            return Next::Stop { truncated: false };
        }
        match http::head(&self.buf) {
            Head::NotHttp => {
                self.stop();
                Next::Stop { truncated: false }
            }
            Head::Partial if self.buf.len() >= lim.max_request || self.dropped > 0 => {
                self.stop();
                Next::Stop { truncated: true }
            }
            Head::Partial => Next::Wait,
            Head::Complete { head_len, body_len } => {
                // Body bytes taken so far: kept, and dropped past a full buffer.
                let seen_body = (self.buf.len() - head_len).saturating_add(self.dropped);
                let full = self.buf.len() >= lim.max_request || self.dropped > 0;
                match body_len {
                    Some(n) if seen_body >= n => {
                        // Request complete; what follows is the next one.
                        let end = head_len + n;
                        if end < self.buf.len() {
                            // The next request starts in the buffer (any
                            // dropped bytes still follow it).
                            self.buf.drain(..end);
                            self.shrink();
                            Next::Rescan
                        } else if seen_body == n {
                            // It ends with the last byte taken.
                            self.buf.clear();
                            self.dropped = 0;
                            self.shrink();
                            Next::Wait
                        } else {
                            // The next request starts in bytes that were
                            // dropped: its beginning cannot be inspected.
                            self.stop();
                            Next::Stop { truncated: true }
                        }
                    }
                    Some(n) if seen_body >= lim.body_limit || full => {
                        // Inspected the body prefix; let the rest pass.
                        self.skip = n - seen_body;
                        self.buf.clear();
                        self.dropped = 0;
                        self.shrink();
                        Next::Wait
                    }
                    Some(_) => Next::Wait,
                    // Chunked or unknown length: inspect the body prefix,
                    // then stop (we cannot find the next request reliably).
                    None if seen_body >= lim.body_limit || full => {
                        self.stop();
                        Next::Stop { truncated: false }
                    }
                    None => Next::Wait,
                }
            }
        }
    }

    fn stop(&mut self) {
        self.state = FlowState::Ignored;
        self.dropped = 0;
        self.buf = Vec::new();
        self.ooo = Vec::new();
    }

    fn shrink(&mut self) {
        if self.buf.capacity() > 4096 && self.buf.len() < 1024 {
            self.buf.shrink_to(1024);
        }
    }

    /// Drops the request buffer once a verdict is final for the flow.
    pub fn finish(&mut self, state: FlowState) {
        self.stop();
        self.state = state;
    }
}

/// `a` after `b` in sequence space.
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: Limits = Limits {
        max_request: 256,
        body_limit: 64,
        max_ooo_segments: 2,
    };

    #[test]
    fn in_order_retransmit_and_reorder() {
        let mut f = HttpFlow::from_syn(999);
        assert_eq!(f.feed(1000, b"GET /a?q=1' ", &LIM), Fed::Grew);
        // Retransmission with different bytes: first copy wins.
        assert_eq!(f.feed(1000, b"GET /a?q=2' ", &LIM), Fed::Nothing);
        // Out of order: held until the gap fills.
        assert_eq!(f.feed(1015, b"1=1 HTTP/1.1\r\n\r\n", &LIM), Fed::Nothing);
        assert_eq!(f.request(), b"GET /a?q=1' ");
        // The gap filler joins the queued segment in one step.
        assert_eq!(f.feed(1012, b"or ", &LIM), Fed::Grew);
        assert_eq!(f.request(), b"GET /a?q=1' or 1=1 HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn overlapping_retransmission_adds_only_new_bytes() {
        let mut f = HttpFlow::from_data(5);
        f.feed(5, b"GET /x", &LIM);
        assert_eq!(f.feed(8, b" /xyz", &LIM), Fed::Grew);
        assert_eq!(f.request(), b"GET /xyz");
    }

    #[test]
    fn ooo_queue_is_bounded() {
        let mut f = HttpFlow::from_data(0);
        assert_eq!(f.feed(100, b"a", &LIM), Fed::Nothing);
        assert_eq!(f.feed(200, b"b", &LIM), Fed::Nothing);
        assert_eq!(f.feed(300, b"c", &LIM), Fed::OverflowedOoo);
    }

    #[test]
    fn pipelined_requests_and_body_skip() {
        let mut f = HttpFlow::from_data(0);
        let two = b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
        f.feed(0, two, &LIM);
        assert_eq!(f.advance(&LIM), Next::Rescan);
        assert_eq!(f.request(), b"GET /2 HTTP/1.1\r\n\r\n");
        assert_eq!(f.advance(&LIM), Next::Wait);
        assert!(f.request().is_empty());
        // A large body: inspected up to body_limit, the rest skipped.
        let head = b"POST /u HTTP/1.1\r\nContent-Length: 1000\r\n\r\n";
        let mut seq = two.len() as u32;
        f.feed(seq, head, &LIM);
        seq += head.len() as u32;
        f.feed(seq, &[b'x'; 100], &LIM);
        seq += 100;
        assert_eq!(f.advance(&LIM), Next::Wait);
        assert!(f.request().is_empty());
        assert_eq!(
            f.feed(seq, &[b'y'; 900], &LIM),
            Fed::Nothing,
            "rest of the body is skipped"
        );
        seq += 900;
        assert_eq!(f.feed(seq, b"GET /3 HTTP/1.1\r\n\r\n", &LIM), Fed::Grew);
        assert_eq!(f.request(), b"GET /3 HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn non_http_stops() {
        let mut f = HttpFlow::from_syn(0);
        f.feed(1, b"\x16\x03\x01\x00\xa5", &LIM);
        assert_eq!(f.advance(&LIM), Next::Stop { truncated: false });
        assert_eq!(f.state, FlowState::Ignored);
        assert_eq!(f.feed(6, b"GET / HTTP/1.1\r\n\r\n", &LIM), Fed::Nothing);
    }
}
