//! `packet::parse` and `packet::source_of` on one frame, for every link
//! type, with the capture both whole and cut by a snaplen.
//!
//! Checked beyond "no panic": the payload is a sub-slice of the frame, and
//! the reader's cheap shard key (`source_of`) is the source `parse` finds,
//! so a packet's per-source state always lives in one shard.

use flowgate::packet::{parse, source_of, Frame, LinkType};

const LINKS: [LinkType; 6] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Null,
    LinkType::Unsupported,
];

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let frame = data.as_ptr_range();
        for link in LINKS {
            let src = source_of(link, data);
            let len = data.len() as u32;
            for wire_len in [len, len.saturating_add(1500)] {
                if let Ok(Frame::Ip(p)) = parse(link, data, wire_len) {
                    let pay = p.payload.as_ptr_range();
                    assert!(
                        p.payload.is_empty() || (pay.start >= frame.start && pay.end <= frame.end),
                        "payload outside the frame"
                    );
                    assert_eq!(
                        src,
                        Some(p.src),
                        "source_of disagrees with parse ({link:?})"
                    );
                }
            }
        }
    });
}
