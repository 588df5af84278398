//! Regression tests for what `perf/fuzz` (cargo-afl) found. Each failed
//! before its fix; the inputs are in `fixtures/fuzz/` or written out here.

mod common;
use common::*;
use flowgate::engine::Verdict;
use flowgate::packet::LinkType;
use flowgate::pipeline::Pipeline;
use flowgate::stream::{Budget, Event, FlowState, HttpFlow, Limits, Placed};
use flowgate_synth as synth;
use std::sync::Arc;

/// Feeds segments `(seq, bytes)` as the engine does (place, parse the
/// in-order bytes, then any queued segments they made contiguous) and
/// checks that every head is a contiguous run of the stream sent so far,
/// which must be in order for the check to hold. Returns every head seen.
fn replay(lim: &Limits, flow: &mut HttpFlow, segs: &[(u32, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut stream = Vec::new();
    let mut seen = Vec::new();
    for (seq, seg) in segs {
        stream.extend_from_slice(seg);
        let Placed::InOrder(new) = flow.place(*seq, seg, lim) else {
            continue;
        };
        let mut input = new;
        loop {
            match flow.next(&mut input, lim) {
                Event::More => break,
                Event::Head(_) => {
                    let h = flow.head_bytes().to_vec();
                    assert!(h.len() <= lim.max_head);
                    assert!(
                        stream.windows(h.len()).any(|w| w == h),
                        "head {:?} is not a contiguous run of the stream {:?}",
                        String::from_utf8_lossy(&h),
                        String::from_utf8_lossy(&stream)
                    );
                    seen.push(h);
                }
                Event::Body(_) | Event::End => {}
                Event::Lost(l) => flow.finish(if l.is_policy() {
                    FlowState::Alerted
                } else {
                    FlowState::Ignored
                }),
            }
        }
    }
    seen
}

/// The `http` fuzz target's input encoding (fuzz/fuzz_targets/http.rs):
/// limits and start from 4 control bytes, then `[delta][len][bytes]`
/// segments (this decoder takes in-order inputs: every delta 0).
fn decode_http_target(data: &[u8], budget: &Budget) -> (Limits, HttpFlow, Vec<(u32, Vec<u8>)>) {
    let (ctl, mut rest) = data.split_at(4);
    let lim = Limits {
        max_head: 16 + usize::from(ctl[0]) * 8,
        max_ooo_bytes: usize::from(ctl[1]) * 4,
        max_ooo_segments: usize::from(ctl[2] % 9),
    };
    let isn = u32::from(ctl[3]).wrapping_mul(0x0101_0101).wrapping_sub(64);
    let (flow, mut next) = if ctl[3] & 1 == 0 {
        (HttpFlow::from_syn(isn, budget), isn.wrapping_add(1))
    } else {
        (HttpFlow::from_data(isn, budget), isn)
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

/// Found by the `http` target against the old request buffer (bytes past a
/// full buffer joined to the next segment); replayed through the streaming
/// parser: every head is a contiguous run of the stream.
#[test]
fn fuzz_http_stream_heads_are_contiguous() {
    let data = std::fs::read(fixture("fuzz/http_stream_noncontiguous.bin")).unwrap();
    let budget = Budget::new(1 << 20);
    let (lim, mut flow, segs) = decode_http_target(&data, &budget);
    replay(&lim, &mut flow, &segs);
    drop(flow);
    assert_eq!(budget.used(), 0);
}

const LIM: Limits = Limits {
    max_head: 256,
    max_ooo_bytes: 1024,
    max_ooo_segments: 4,
};

/// Found by the `http` target against the old request buffer: a pipelined
/// request whose bytes overflowed a full buffer was joined to the next
/// segment ("H" + "3 OTTP/"). The head buffer now only ever holds one head
/// read in order; the injection after a long first request is read whole.
#[test]
fn pipelined_request_after_a_long_one_is_read_whole() {
    let mut first = b"GET /a HTTP/1.1\r\nX-Pad: ".to_vec();
    first.resize(246, b'p');
    first.extend_from_slice(b"\r\n\r\n"); // a complete 250-byte request
    let mut seg1 = first.clone();
    seg1.extend_from_slice(b"GET /?id=1' UNION SELECT password FROM users--");
    let seg2 = b" HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    let budget = Budget::new(1 << 20);
    let mut flow = HttpFlow::from_data(1000, &budget);
    let segs = [(1000, seg1.clone()), (1000 + seg1.len() as u32, seg2)];
    let seen = replay(&LIM, &mut flow, &segs);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], first);
    assert!(seen[1].starts_with(b"GET /?id=1' UNION SELECT password FROM users-- HTTP/1.1"));
    assert_eq!(flow.state, FlowState::Inspecting);
}

/// A request with a body larger than any buffer, all in one segment (GRO,
/// jumbo frames): the body passes through and exactly the next request is
/// read. (The old prefix buffer once skipped 386 bytes too many here,
/// swallowing a SQL injection pipelined after a large upload.)
#[test]
fn a_large_body_in_one_segment_ends_exactly_where_the_next_request_starts() {
    let head = b"POST /u HTTP/1.1\r\nContent-Length: 1000\r\n\r\n";
    let mut seg1 = head.to_vec();
    seg1.extend_from_slice(&[b'x'; 600]);
    let mut seg2 = vec![b'y'; 400]; // the rest of the body
    let attack = b"GET /?id=1'%20OR%201=1-- HTTP/1.1\r\n\r\n";
    seg2.extend_from_slice(attack);
    let budget = Budget::new(1 << 20);
    let mut flow = HttpFlow::from_data(0, &budget);
    let segs = [(0, seg1.clone()), (seg1.len() as u32, seg2)];
    let seen = replay(&LIM, &mut flow, &segs);
    assert_eq!(seen.last().unwrap(), attack, "the next request is read");
    assert_eq!(flow.state, FlowState::Inspecting);
}

/// The same end to end with the default configuration: an upload whose
/// first segment is 9 KB (a GRO or jumbo-frame capture), then a SQL
/// injection pipelined right after the body. Before the fix the injection
/// was skipped as body and the flow passed.
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
