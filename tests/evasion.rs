//! HTTP framing and reassembly evasions, each as captured traffic through
//! the shard pipeline with 1 and 3 shards: every one hides a SQL injection
//! that is caught when sent plainly, and each must still be caught (or,
//! where the stream cannot be followed, reported under the configured
//! policy — never passed silently).

mod common;
use common::*;
use flowgate::engine::Verdict;
use flowgate::packet::Ts;
use flowgate::rules;
use flowgate_synth as synth;
use std::net::IpAddr;

const SERVER: [u8; 4] = [198, 19, 0, 80];
/// The built-in rule a quoted tautology fires.
const TAUTOLOGY: u32 = 9_101_001;
const ATTACK: &[u8] = b"GET /item?id=1%27%20or%20%271%27=%271 HTTP/1.1\r\nHost: a\r\n\r\n";

/// Builds one client's connections as frames, in the order pushed.
struct Capture {
    frames: Vec<(Ts, Vec<u8>)>,
}

/// One connection: its addresses and next sequence number.
struct Conn {
    client: IpAddr,
    sport: u16,
    next: u32,
}

impl Capture {
    fn new() -> Capture {
        Capture { frames: Vec::new() }
    }

    fn push(&mut self, frame: Vec<u8>) -> u64 {
        let ts = synth::EPOCH + self.frames.len() as u64 * synth::MS;
        self.frames.push((ts, frame));
        self.frames.len() as u64 // pcap_cnt of this frame
    }

    /// A SYN from `client:sport` to the server's port 80.
    fn open(&mut self, client: IpAddr, sport: u16) -> Conn {
        let isn = 1000 + u32::from(sport) * 7;
        let server = IpAddr::from(SERVER);
        self.push(synth::tcp(
            client,
            server,
            sport,
            80,
            synth::flags::SYN,
            isn,
            b"",
        ));
        Conn {
            client,
            sport,
            next: isn + 1,
        }
    }

    /// A data segment at the connection's next sequence number.
    fn send(&mut self, c: &mut Conn, data: &[u8]) -> u64 {
        let seq = c.next;
        c.next = c.next.wrapping_add(data.len() as u32);
        self.segment(c, seq, data)
    }

    /// A data segment at an explicit sequence number.
    fn segment(&mut self, c: &Conn, seq: u32, data: &[u8]) -> u64 {
        let pa = synth::flags::PSH | synth::flags::ACK;
        let server = IpAddr::from(SERVER);
        self.push(synth::tcp(c.client, server, c.sport, 80, pa, seq, data))
    }
}

fn client(n: u8) -> IpAddr {
    synth::v4(198, 18, 90, n)
}

/// The verdict of frame `idx` and the rule IDs alerted, for 1 and 3
/// shards (which must agree).
fn outcome(cfg_over: &[(&str, &str)], frames: &[(Ts, Vec<u8>)], idx: u64) -> (Verdict, Vec<u32>) {
    let cfg = config(cfg_over);
    let mut seen = None;
    for shards in [1, 3] {
        let o = run_frames(&cfg, shards, frames);
        let v = o
            .verdicts
            .iter()
            .find(|(i, _)| *i == idx)
            .map(|(_, v)| *v)
            .expect("verdict for the frame");
        let ids: Vec<u32> = o
            .events
            .iter()
            .filter_map(|e| {
                let j: serde_json::Value = serde_json::from_str(e.split_once(' ')?.1).ok()?;
                j["alert"]["signature_id"].as_u64().map(|n| n as u32)
            })
            .collect();
        match &seen {
            None => seen = Some((v, ids)),
            Some(s) => assert_eq!(s, &(v, ids), "1 and 3 shards disagree"),
        }
    }
    seen.expect("ran")
}

fn dropped_by(v: Verdict) -> Option<u32> {
    match v {
        Verdict::Drop(r) => Some(r),
        Verdict::Allow => None,
    }
}

#[test]
fn attack_after_a_chunked_body_longer_than_4k_on_the_same_connection() {
    let mut cap = Capture::new();
    let mut c = cap.open(client(1), 40_001);
    cap.send(
        &mut c,
        b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for i in 0..6 {
        let chunk = format!("3e8;part={i}\r\n{}\r\n", "z".repeat(1000));
        cap.send(&mut c, chunk.as_bytes());
    }
    cap.send(&mut c, b"0\r\nX-Checksum: 1\r\n\r\n");
    let idx = cap.send(&mut c, ATTACK);
    let (v, ids) = outcome(&[], &cap.frames, idx);
    assert_eq!(dropped_by(v), Some(TAUTOLOGY));
    assert_eq!(ids, [TAUTOLOGY]);
}

#[test]
fn attack_after_a_short_chunked_request_and_8k_of_pipelined_requests() {
    let mut cap = Capture::new();
    let mut c = cap.open(client(2), 40_002);
    let mut burst =
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec();
    while burst.len() < 8 * 1024 {
        burst.extend_from_slice(b"GET /static/app.js?v=12345 HTTP/1.1\r\nHost: a\r\n\r\n");
    }
    for part in burst.chunks(1400) {
        cap.send(&mut c, part);
    }
    let idx = cap.send(&mut c, ATTACK);
    let (v, ids) = outcome(&[], &cap.frames, idx);
    assert_eq!(dropped_by(v), Some(TAUTOLOGY));
    assert_eq!(ids, [TAUTOLOGY]);
}

#[test]
fn attack_in_a_form_body_after_5000_bytes_of_padding() {
    let body = format!(
        "pad={}&user=admin%27%20or%20%271%27%3D%271",
        "x".repeat(5000)
    );
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut cap = Capture::new();
    let mut c = cap.open(client(3), 40_003);
    cap.send(&mut c, head.as_bytes());
    let mut last = 0;
    for part in body.as_bytes().chunks(1400) {
        last = cap.send(&mut c, part);
    }
    let (v, ids) = outcome(&[], &cap.frames, last);
    assert_eq!(
        dropped_by(v),
        Some(TAUTOLOGY),
        "the segment ending the match"
    );
    assert_eq!(ids, [TAUTOLOGY]);
}

#[test]
fn twenty_segments_in_reverse_order_are_reassembled() {
    let mut cap = Capture::new();
    let c = cap.open(client(4), 40_004);
    let parts: Vec<&[u8]> = ATTACK.chunks(3).collect();
    assert!(parts.len() >= 20);
    let mut offsets = Vec::new();
    let mut at = c.next;
    for p in &parts {
        offsets.push(at);
        at += p.len() as u32;
    }
    let mut last = 0;
    for i in (0..parts.len()).rev() {
        last = cap.segment(&c, offsets[i], parts[i]);
    }
    let (v, ids) = outcome(&[], &cap.frames, last);
    assert_eq!(
        dropped_by(v),
        Some(TAUTOLOGY),
        "caught when the first segment fills the gap"
    );
    assert_eq!(ids, [TAUTOLOGY]);
}

#[test]
fn one_byte_segments_are_each_read_once() {
    let mut cap = Capture::new();
    let mut c = cap.open(client(5), 40_005);
    let mut req = b"GET /item?pad=".to_vec();
    req.extend_from_slice(&[b'p'; 2000]);
    req.extend_from_slice(b"&id=1%27%20or%20%271%27=%271 HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut last = 0;
    for b in &req {
        last = cap.send(&mut c, std::slice::from_ref(b));
    }
    let cfg = config(&[]);
    let o = run_frames(&cfg, 1, &cap.frames);
    assert_eq!(
        o.stats.http_requests, 1,
        "the head is parsed once, not per segment"
    );
    assert!(matches!(o.verdicts.last(), Some((i, Verdict::Drop(TAUTOLOGY))) if *i == last));
}

#[test]
fn raw_space_in_a_request_line_split_across_segments() {
    let mut cap = Capture::new();
    let mut c = cap.open(client(6), 40_006);
    cap.send(&mut c, b"GET /search?q=1' or ");
    let idx = cap.send(&mut c, b"'1'='1 HTTP/1.1\r\nHost: a\r\n\r\n");
    let (v, ids) = outcome(&[], &cap.frames, idx);
    assert_eq!(dropped_by(v), Some(TAUTOLOGY));
    assert_eq!(ids, [TAUTOLOGY]);
}

#[test]
fn forty_connections_from_the_same_client_do_not_evict_the_attack() {
    let attacker = client(7);
    let mut cap = Capture::new();
    let mut a = cap.open(attacker, 41_000);
    cap.send(&mut a, b"GET /item?id=1%27%20or%20");
    for i in 0..40 {
        cap.open(attacker, 41_001 + i);
    }
    let idx = cap.send(&mut a, b"%271%27=%271 HTTP/1.1\r\nHost: a\r\n\r\n");
    let (v, ids) = outcome(&[], &cap.frames, idx);
    assert_eq!(
        dropped_by(v),
        Some(TAUTOLOGY),
        "idle connections are evicted first"
    );
    assert_eq!(ids, [TAUTOLOGY]);
}

#[test]
fn an_attack_flow_evicted_mid_request_falls_under_the_policy() {
    // Worst case: 40 connections that are themselves mid-request push the
    // attack flow out; its rest is then untracked data on an HTTP port.
    let attacker = client(8);
    let mut cap = Capture::new();
    let mut a = cap.open(attacker, 42_000);
    cap.send(&mut a, b"GET /item?id=1%27%20or%20");
    for i in 0..40 {
        let mut o = cap.open(attacker, 42_001 + i);
        cap.send(&mut o, b"GET /slow");
    }
    let idx = cap.send(&mut a, b"%271%27=%271 HTTP/1.1\r\nHost: a\r\n\r\n");
    let (v, ids) = outcome(&[("signatures.unfollowable", "drop")], &cap.frames, idx);
    assert_eq!(dropped_by(v), Some(rules::HTTP_UNFOLLOWABLE));
    assert_eq!(ids, [rules::HTTP_UNFOLLOWABLE]);
    let (v, ids) = outcome(&[], &cap.frames, idx);
    assert_eq!(dropped_by(v), None, "default policy: alert and forward");
    assert_eq!(ids, [rules::HTTP_UNFOLLOWABLE]);
}

#[test]
fn content_length_with_transfer_encoding_is_smuggling() {
    let mut cap = Capture::new();
    let mut c = cap.open(client(9), 40_009);
    let idx = cap.send(
        &mut c,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n",
    );
    let after = cap.send(&mut c, b"GET / HTTP/1.1\r\n\r\n");
    let (v, ids) = outcome(&[], &cap.frames, idx);
    assert_eq!(dropped_by(v), Some(rules::HTTP_SMUGGLING));
    assert_eq!(ids, [rules::HTTP_SMUGGLING]);
    let (v, _) = outcome(&[], &cap.frames, after);
    assert_eq!(
        dropped_by(v),
        Some(rules::HTTP_SMUGGLING),
        "the rest of the flow"
    );
}

#[test]
fn non_http_after_a_request_is_reported() {
    let mut cap = Capture::new();
    let mut c = cap.open(client(10), 40_010);
    cap.send(&mut c, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let idx = cap.send(&mut c, b"\x00\x01binary junk ' or 1=1");
    let (v, ids) = outcome(&[], &cap.frames, idx);
    assert_eq!(dropped_by(v), None);
    assert_eq!(ids, [rules::HTTP_UNFOLLOWABLE]);
    let (v, _) = outcome(&[("signatures.unfollowable", "drop")], &cap.frames, idx);
    assert_eq!(dropped_by(v), Some(rules::HTTP_UNFOLLOWABLE));
}

/// 1,000 flows each parking a 60 KB segment past a gap, and one flow
/// trying to park 8 of them: what is held stays within the per-flow bound
/// (`max_ooo_bytes`, 64 KiB) and the shard's `buffer_budget`, and every
/// flow that could not be held is counted and reported.
#[test]
fn a_thousand_flows_parking_out_of_order_data_stay_within_the_budget() {
    let mut cap = Capture::new();
    let seg = vec![b'q'; 60_000];
    let greedy = cap.open(client(11), 43_001);
    for k in 0..8u32 {
        cap.segment(&greedy, greedy.next + 100 + k * 60_000, &seg);
    }
    for n in 0..1000u32 {
        let ip = synth::v4(198, 18, 100 + (n / 250) as u8, (n % 250) as u8 + 1);
        let c = cap.open(ip, 43_000);
        cap.segment(&c, c.next + 100, &seg);
    }
    let budget: u64 = 16 << 20;
    let cfg = config(&[("signatures.buffer_budget", &budget.to_string())]);
    let o = run_frames(&cfg, 1, &cap.frames);
    let st = &o.stats;
    assert!(
        st.http_buffer_peak <= budget,
        "peak {} over {budget}",
        st.http_buffer_peak
    );
    assert!(
        st.http_buffer_peak >= budget - 60_000,
        "the budget is used: {}",
        st.http_buffer_peak
    );
    let held = budget / 60_000;
    let lost = st.http_lost.get("ooo_overflow").copied().unwrap_or(0);
    assert_eq!(
        lost,
        1 + 1000 - held,
        "the greedy flow and every flow past the budget"
    );
    assert_eq!(st.ooo_overflow, lost);
}

/// Splits an Ethernet frame's IP payload into fragments of `size` bytes
/// (a multiple of 8): IPv4 by its header fields, IPv6 with a Fragment
/// header after the fixed header.
fn fragment(frame: &[u8], size: usize, id: u32) -> Vec<Vec<u8>> {
    let (eth, ip) = frame.split_at(14);
    let v6 = ip[0] >> 4 == 6;
    let hlen = if v6 {
        40
    } else {
        usize::from(ip[0] & 0x0f) * 4
    };
    let (head, payload) = ip.split_at(hlen);
    let chunks: Vec<&[u8]> = payload.chunks(size).collect();
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let off = i * size;
        let more = i + 1 < chunks.len();
        let mut f = eth.to_vec();
        let mut h = head.to_vec();
        if v6 {
            let next = h[6];
            h[6] = 44;
            h[4..6].copy_from_slice(&((8 + c.len()) as u16).to_be_bytes());
            f.extend_from_slice(&h);
            let fo = ((off / 8) as u16) << 3 | more as u16;
            f.extend_from_slice(&[next, 0]);
            f.extend_from_slice(&fo.to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
        } else {
            h[2..4].copy_from_slice(&((hlen + c.len()) as u16).to_be_bytes());
            h[4..6].copy_from_slice(&(id as u16).to_be_bytes());
            let fo = (off / 8) as u16 | if more { 0x2000 } else { 0 };
            h[6..8].copy_from_slice(&fo.to_be_bytes());
            h[10..12].copy_from_slice(&[0, 0]);
            let mut sum: u32 = h
                .chunks(2)
                .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
                .sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            f.extend_from_slice(&h);
        }
        f.extend_from_slice(c);
        out.push(f);
    }
    out
}

/// The attack request in one TCP segment, sent as IP fragments (last one
/// first, so reassembly completes on the first fragment): the datagram is
/// inspected whole and the completing fragment dropped, over IPv4 and IPv6.
#[test]
fn an_attack_split_into_ip_fragments_is_reassembled_and_dropped() {
    for client in [client(12), synth::v6("2001:db8:90::12")] {
        let server = if client.is_ipv4() {
            IpAddr::from(SERVER)
        } else {
            synth::v6("2001:db8:19::80")
        };
        let mut cap = Capture::new();
        cap.push(synth::tcp(
            client,
            server,
            40_012,
            80,
            synth::flags::SYN,
            500,
            b"",
        ));
        let pa = synth::flags::PSH | synth::flags::ACK;
        let seg = synth::tcp(client, server, 40_012, 80, pa, 501, ATTACK);
        let frags = fragment(&seg, 16, 0x4242);
        assert!(frags.len() >= 4);
        let mut last = 0;
        for f in frags.iter().rev() {
            last = cap.push(f.clone());
        }
        let (v, ids) = outcome(&[], &cap.frames, last);
        assert_eq!(dropped_by(v), Some(TAUTOLOGY), "{client}");
        assert_eq!(ids, [TAUTOLOGY], "{client}");
        // A late copy of a fragment (which could replace what was dropped)
        // is refused.
        let late = cap.push(frags[1].clone());
        let (v, _) = outcome(&[], &cap.frames, late);
        assert!(matches!(v, Verdict::Drop(_)), "{client}: {v:?}");
    }
}

/// Overlapping fragments that disagree are refused: the receiver might
/// keep either copy.
#[test]
fn conflicting_overlapping_fragments_are_refused() {
    let c = client(13);
    let server = IpAddr::from(SERVER);
    let mut cap = Capture::new();
    let pa = synth::flags::PSH | synth::flags::ACK;
    let seg = synth::tcp(
        c,
        server,
        40_013,
        80,
        pa,
        1,
        b"GET /?q=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n",
    );
    let frags = fragment(&seg, 24, 7);
    cap.push(frags[0].clone());
    let mut evil = frags[1].clone();
    let n = evil.len();
    evil[n - 4] ^= 0x20; // same place, different byte
    cap.push(frags[1].clone());
    let idx = cap.push(evil);
    let cfg = config(&[]);
    let o = run_frames(&cfg, 1, &cap.frames);
    assert!(matches!(
        o.verdicts.iter().find(|(i, _)| *i == idx),
        Some((_, Verdict::Drop(_)))
    ));
    assert_eq!(o.stats.malformed.get("fragment").copied(), Some(1));
}
