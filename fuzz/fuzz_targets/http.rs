//! HTTP request parsing and normalization (`http`), then the same bytes as
//! a TCP stream through `stream::HttpFlow` reassembly and framing.
//!
//! Input: the first 4 bytes configure the flow (see `flow_limits`), the
//! rest is a list of segments, each `[delta: i8][len: u8][len % 97 bytes]`:
//! `delta` moves the segment's sequence number against the next in-order
//! byte (0: in order; negative: overlap/retransmission; positive: a gap).
//! The whole input is also parsed as one head and normalized whole.
//!
//! Checked beyond "no panic": the spans a parsed head returns lie in its
//! buffer; streaming normalization cut at a fuzz-chosen point gives the
//! same bytes as normalizing the whole; a head never exceeds `max_head`;
//! while every segment so far arrived in order (all deltas 0) each head
//! is a contiguous run of the stream (reassembly never joins bytes that
//! were not next to each other on the wire); and a flow gives back every
//! byte of the shard's buffer budget when dropped.

use flowgate::http::{head, normalize, Norm, Normalizer, Scratch};
use flowgate::stream::{Budget, Event, HttpFlow, Limits, Placed};

const NORMS: [Norm; 3] = [Norm::PLAIN, Norm::FORM, Norm::JSON];

fn flow_limits(c: &[u8]) -> Limits {
    Limits {
        max_head: 16 + usize::from(c[0]) * 8,
        max_ooo_bytes: usize::from(c[1]) * 4,
        max_ooo_segments: usize::from(c[2] % 9),
    }
}

fn main() {
    let mut s = Scratch::default();
    let (mut whole, mut parts) = (Vec::new(), Vec::new());
    afl::fuzz!(|data: &[u8]| {
        if let Ok(h) = head::parse(data) {
            let spans = [h.method, h.target]
                .into_iter()
                .chain(h.fields.iter().flat_map(|f| [f.name, f.value]));
            for (lo, hi) in spans {
                assert!(lo <= hi && hi <= data.len(), "span {lo}..{hi} of {}", data.len());
            }
        }
        let cut = data.first().map_or(0, |&c| usize::from(c) % (data.len() + 1));
        for how in NORMS {
            normalize(data, how, &mut whole, &mut s);
            parts.clear();
            let mut n = Normalizer::new(how);
            n.push(&data[..cut], &mut parts, &mut s);
            n.push(&data[cut..], &mut parts, &mut s);
            n.finish(&mut parts, &mut s);
            assert_eq!(whole, parts, "streaming normalization differs from whole");
        }

        let Some((ctl, mut rest)) = data.split_first_chunk::<4>() else {
            return;
        };
        let lim = flow_limits(ctl);
        let budget = Budget::new(1 << 16);
        // Put the initial sequence number near the wrap for half the inputs.
        let isn = u32::from(ctl[3]).wrapping_mul(0x0101_0101).wrapping_sub(64);
        let (mut flow, first) = if ctl[3] & 1 == 0 {
            (HttpFlow::from_syn(isn, &budget), isn.wrapping_add(1))
        } else {
            (HttpFlow::from_data(isn, &budget), isn)
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
            let Placed::InOrder(new) = flow.place(seq, seg, &lim) else {
                continue;
            };
            let mut pieces = vec![new.to_vec()];
            while let Some(more) = flow.pop_ready() {
                pieces.push(more.into());
            }
            for piece in pieces {
                let mut input = piece.as_slice();
                loop {
                    match flow.next(&mut input, &lim) {
                        Event::More => break,
                        Event::Head(_) => {
                            let h = flow.head_bytes();
                            assert!(h.len() <= lim.max_head, "head over max_head");
                            if let Some(s) = &in_order {
                                assert!(memmem(s, h), "head is not a contiguous run of the stream");
                            }
                        }
                        Event::Body(_) | Event::End | Event::Lost(_) => {}
                    }
                }
            }
        }
        drop(flow);
        assert_eq!(budget.used(), 0, "a dropped flow keeps budget bytes");
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
