//! `source::pcap::PcapSource` (PCAP and PCAPNG) over the input as a file;
//! every record read is parsed with `packet::parse` as the engine would.

use flowgate::packet::parse;
use flowgate::source::pcap::PcapSource;

#[path = "scratch.rs"]
mod scratch;

fn main() {
    let file = scratch::path("input.pcap");
    afl::fuzz!(|data: &[u8]| {
        scratch::write(&file, data);
        let Ok(mut src) = PcapSource::open(&file) else {
            return;
        };
        let mut n = 0u64;
        let res = src.for_each(|r| {
            n += 1;
            let _ = parse(r.link, r.data, r.wire_len);
        });
        if let Ok(count) = res {
            assert_eq!(count, n, "packet count differs from records handed over");
        }
    });
}
