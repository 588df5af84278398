//! HTTP request framing and normalization (`http`), then the same bytes as
//! a TCP stream through `stream::HttpFlow` reassembly.
//!
//! Input: the first 4 bytes configure the flow (see `flow_limits`), the
//! rest is a list of segments, each `[delta: i8][len: u8][len % 97 bytes]`:
//! `delta` moves the segment's sequence number against the next in-order
//! byte (0: in order; negative: overlap/retransmission; positive: a gap).
//! The whole input is also fed to the framing functions as one request.
//!
//! Checked beyond "no panic": the parts `split` returns lie in the buffer,
//! the request buffer stays within `max_request`, and while every segment
//! so far arrived in order (all deltas 0) the request buffer is a
//! contiguous run of the stream: reassembly never joins bytes that were
//! not next to each other on the wire.

use flowgate::http::{head, normalize, split, starts_request, Head, Norm};
use flowgate::stream::{Fed, HttpFlow, Limits, Next};

const NORMS: [Norm; 4] = [
    Norm {
        plus_is_space: false,
        json: false,
    },
    Norm {
        plus_is_space: true,
        json: false,
    },
    Norm {
        plus_is_space: false,
        json: true,
    },
    Norm {
        plus_is_space: true,
        json: true,
    },
];

struct Bufs {
    out: Vec<u8>,
    tmp: Vec<u8>,
}

/// What a scan does with a request buffer: frame it, split it, normalize
/// each part.
fn inspect(req: &[u8], body_limit: usize, b: &mut Bufs) {
    let _ = starts_request(req);
    if let Head::Complete { head_len, .. } = head(req) {
        assert!(head_len <= req.len(), "head_len past the buffer");
    }
    let p = split(req, body_limit);
    for (lo, hi) in [p.uri, p.headers, p.body] {
        assert!(
            lo <= hi && hi <= req.len(),
            "part {lo}..{hi} of {}",
            req.len()
        );
    }
    assert!(
        p.body.1 - p.body.0 <= body_limit,
        "body part over the limit"
    );
    let norm = |lo: usize, hi: usize, how: Norm, b: &mut Bufs| {
        normalize(&req[lo..hi], how, &mut b.out, &mut b.tmp);
    };
    norm(p.uri.0, p.uri.1, NORMS[1], b);
    norm(p.headers.0, p.headers.1, NORMS[0], b);
    norm(
        p.body.0,
        p.body.1,
        NORMS[if p.json_body { 2 } else { 1 }],
        b,
    );
}

fn flow_limits(c: &[u8]) -> Limits {
    Limits {
        max_request: 16 + usize::from(c[0]) * 8,
        body_limit: usize::from(c[1]) * 4,
        max_ooo_segments: usize::from(c[2] % 9),
    }
}

fn main() {
    let mut b = Bufs {
        out: Vec::new(),
        tmp: Vec::new(),
    };
    afl::fuzz!(|data: &[u8]| {
        // The input as one request buffer, and every normalization of it.
        inspect(data, 1 << 16, &mut b);
        for how in NORMS {
            normalize(data, how, &mut b.out, &mut b.tmp);
        }

        let Some((ctl, mut rest)) = data.split_first_chunk::<4>() else {
            return;
        };
        let lim = flow_limits(ctl);
        // Put the initial sequence number near the wrap for half the inputs.
        let isn = u32::from(ctl[3]).wrapping_mul(0x0101_0101).wrapping_sub(64);
        let (mut flow, first) = if ctl[3] & 1 == 0 {
            (HttpFlow::from_syn(isn), isn.wrapping_add(1))
        } else {
            (HttpFlow::from_data(isn), isn)
        };
        let mut next = first;
        // The stream as sent, while it is sent strictly in order.
        let mut in_order: Option<Vec<u8>> = Some(Vec::new());
        while let [delta, len, tail @ ..] = rest {
            let n = (usize::from(*len) % 97).min(tail.len());
            let (seg, after) = tail.split_at(n);
            rest = after;
            let seq = next.wrapping_add(*delta as i8 as i32 as u32);
            next = next.max_seq(seq.wrapping_add(n as u32));
            if *delta != 0 {
                in_order = None;
            }
            if let Some(s) = &mut in_order {
                s.extend_from_slice(seg);
            }
            let fed = flow.feed(seq, seg, &lim);
            if fed != Fed::Grew {
                continue;
            }
            // As the engine does: scan, then advance; a pipelined request
            // is scanned again. Each rescan consumes a request, so this ends.
            loop {
                let req = flow.request();
                assert!(req.len() <= lim.max_request, "request over max_request");
                if let Some(s) = &in_order {
                    assert!(
                        memmem(s, req),
                        "request buffer is not a contiguous run of the stream"
                    );
                }
                inspect(req, lim.body_limit, &mut b);
                match flow.advance(&lim) {
                    Next::Rescan => continue,
                    Next::Wait | Next::Stop { .. } => break,
                }
            }
        }
    });
}

/// `needle` occurs in `hay` (empty: always).
fn memmem(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// The later of two sequence numbers (serial number arithmetic).
trait MaxSeq {
    fn max_seq(self, other: u32) -> u32;
}

impl MaxSeq for u32 {
    fn max_seq(self, other: u32) -> u32 {
        if (other.wrapping_sub(self) as i32) > 0 {
            other
        } else {
            self
        }
    }
}
