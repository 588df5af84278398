//! Regression tests for what `perf/fuzz` (cargo-afl) found. Each failed
//! before its fix; the inputs are in `fixtures/fuzz/` or written out here.

mod common;
use common::*;
use flowgate::engine::Verdict;
use flowgate::packet::LinkType;
use flowgate::pipeline::Pipeline;
use flowgate::stream::{Fed, FlowState, HttpFlow, Limits, Next};
use flowgate_synth as synth;
use std::sync::Arc;

/// Feeds segments `(seq, bytes)` as the engine does (scan, then advance
/// while a pipelined request follows) and checks after every step that the
/// request buffer is a contiguous run of the stream sent so far, which
/// must be in order for the check to hold. Returns every buffer seen.
fn replay(lim: &Limits, flow: &mut HttpFlow, segs: &[(u32, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut stream = Vec::new();
    let mut seen = Vec::new();
    for (seq, seg) in segs {
        stream.extend_from_slice(seg);
        if flow.feed(*seq, seg, lim) != Fed::Grew {
            continue;
        }
        loop {
            let req = flow.request().to_vec();
            assert!(req.len() <= lim.max_request);
            assert!(
                req.is_empty() || stream.windows(req.len()).any(|w| w == req),
                "request buffer {:?} is not a contiguous run of the stream {:?}",
                String::from_utf8_lossy(&req),
                String::from_utf8_lossy(&stream)
            );
            seen.push(req);
            if flow.advance(lim) != Next::Rescan {
                break;
            }
        }
    }
    seen
}

/// The `http` fuzz target's input encoding (fuzz/fuzz_targets/http.rs):
/// limits and start from 4 control bytes, then `[delta][len][bytes]`
/// segments (this input has every delta 0: strictly in order).
fn decode_http_target(data: &[u8]) -> (Limits, HttpFlow, Vec<(u32, Vec<u8>)>) {
    let (ctl, mut rest) = data.split_at(4);
    let lim = Limits {
        max_request: 16 + usize::from(ctl[0]) * 8,
        body_limit: usize::from(ctl[1]) * 4,
        max_ooo_segments: usize::from(ctl[2] % 9),
    };
    let isn = u32::from(ctl[3]).wrapping_mul(0x0101_0101).wrapping_sub(64);
    let (flow, mut next) = if ctl[3] & 1 == 0 {
        (HttpFlow::from_syn(isn), isn.wrapping_add(1))
    } else {
        (HttpFlow::from_data(isn), isn)
    };
    let mut segs = Vec::new();
    while let [delta, len, tail @ ..] = rest {
        assert_eq!(*delta, 0, "this decoder handles in-order inputs only");
        let n = (usize::from(*len) % 97).min(tail.len());
        segs.push((next, tail[..n].to_vec()));
        next = next.wrapping_add(n as u32);
        rest = &tail[n..];
    }
    (lim, flow, segs)
}

/// Found by the `http` target: a pipelined request whose bytes overflowed
/// the full request buffer. The bytes past the buffer were dropped while
/// the sequence number moved on, and the next segment was appended after
/// the buffer, joining bytes that were not adjacent ("H" + "3 OTTP/").
#[test]
fn fuzz_http_stream_buffer_never_joins_non_adjacent_bytes() {
    let data = std::fs::read(fixture("fuzz/http_stream_noncontiguous.bin")).unwrap();
    let (lim, mut flow, segs) = decode_http_target(&data);
    replay(&lim, &mut flow, &segs);
}

const LIM: Limits = Limits {
    max_request: 256,
    body_limit: 64,
    max_ooo_segments: 4,
};

/// The same bug as an evasion: the injection sits in the bytes past a full
/// buffer; before the fix the scanner saw `GET /? HTTP/1.1` (the start of
/// the pipelined request joined to the next segment), which is clean.
#[test]
fn pipelined_request_cut_by_a_full_buffer_is_not_joined_to_later_bytes() {
    let mut first = b"GET /a HTTP/1.1\r\nX-Pad: ".to_vec();
    first.resize(246, b'p');
    first.extend_from_slice(b"\r\n\r\n"); // a complete 250-byte request
    let mut seg1 = first.clone();
    seg1.extend_from_slice(b"GET /?id=1' UNION SELECT password FROM users--");
    let seg2 = b" HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    let mut flow = HttpFlow::from_data(1000);
    let segs = [(1000, seg1.clone()), (1000 + seg1.len() as u32, seg2)];
    let seen = replay(&LIM, &mut flow, &segs);
    // The first request was scanned whole, then the kept start of the
    // second; the rest of it is gone, so the flow stops (truncated).
    assert_eq!(seen[0][..first.len()], first[..]);
    assert_eq!(seen[1], b"GET /?");
    assert_eq!(flow.state, FlowState::Ignored);
}

/// A request with a body larger than the buffer, all in one segment (GRO,
/// jumbo frames, or a head near `max_request`): the body bytes past the
/// full buffer count toward the body, so exactly the rest of the body is
/// skipped and the next request is inspected. Before the fix they were
/// not counted: 386 more bytes were skipped, swallowing the next request
/// (a SQL injection pipelined after a large upload went uninspected).
#[test]
fn body_bytes_past_a_full_buffer_count_toward_the_skip() {
    let head = b"POST /u HTTP/1.1\r\nContent-Length: 1000\r\n\r\n";
    let mut seg1 = head.to_vec();
    seg1.extend_from_slice(&[b'x'; 600]);
    let mut seg2 = vec![b'y'; 400]; // the rest of the body
    let attack = b"GET /?id=1'%20OR%201=1-- HTTP/1.1\r\n\r\n";
    seg2.extend_from_slice(attack);
    let mut flow = HttpFlow::from_data(0);
    let segs = [(0, seg1.clone()), (seg1.len() as u32, seg2)];
    let seen = replay(&LIM, &mut flow, &segs);
    assert_eq!(
        seen.last().unwrap(),
        attack,
        "the next request is inspected"
    );
    assert_eq!(flow.state, FlowState::Inspecting);
}

/// The same end to end with the default configuration (`max_request`
/// 8192, `body_limit` 4096): an upload whose first segment is larger than
/// the request buffer (a GRO or jumbo-frame capture), then a SQL injection
/// pipelined right after the body. Before the fix the injection was
/// skipped as body and the flow passed.
#[test]
fn sqli_pipelined_after_an_upload_larger_than_the_buffer_is_dropped() {
    let client = synth::v4(198, 18, 72, 1);
    let server = synth::v4(198, 19, 0, 80);
    let pa = synth::flags::PSH | synth::flags::ACK;
    let mut upload = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 12000\r\n\r\n".to_vec();
    let head = upload.len();
    upload.resize(head + 12_000, b'u');
    let (seg1, rest) = upload.split_at(head + 9_000);
    let mut seg2 = rest.to_vec();
    seg2.extend_from_slice(b"GET /item?id=1'%20OR%20'a'='a HTTP/1.1\r\nHost: a\r\n\r\n");
    let frames = [
        synth::tcp(client, server, 40_000, 80, synth::flags::SYN, 0, b""),
        synth::tcp(client, server, 40_000, 80, pa, 1, seg1),
        synth::tcp(client, server, 40_000, 80, pa, 1 + seg1.len() as u32, &seg2),
    ];
    let cfg = config(&[]);
    let mut p = Pipeline::start(Arc::new(cfg.clone()), rules(&cfg), Mem::default(), true).unwrap();
    for (i, f) in frames.iter().enumerate() {
        p.push(
            synth::EPOCH + i as u64 * synth::MS,
            LinkType::Ethernet,
            f,
            f.len() as u32,
        );
    }
    let (_, _, mut mem) = p.finish().unwrap();
    mem.verdicts.sort_by_key(|v| v.0);
    assert_eq!(
        mem.verdicts[0..2],
        [(1, Verdict::Allow), (2, Verdict::Allow)]
    );
    assert!(
        matches!(mem.verdicts[2], (3, Verdict::Drop(_))),
        "the pipelined injection must be inspected and dropped: {:?}",
        mem.verdicts
    );
}
