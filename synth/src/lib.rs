//! Deterministic synthetic traffic: the generator behind the `fixtures/`
//! PCAPs, the `perf/` large PCAP, the benches and the randomized
//! shard-identity tests. Same seed, same bytes, on every machine.
//!
//! Regenerate the fixtures with `make fixtures`
//! (`cargo run --release -p flowgate-synth --bin flowgate-pcapgen -- fixtures`).
//!
//! A crate of its own: test traffic is a dev dependency of the engine, never
//! part of what the `flowgate` library ships.

use etherparse::{IpHeaders, PacketBuilder, PacketBuilderStep, TcpHeader};
use flowgate::packet::{Ts, NANOS_PER_SEC};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapTsResolution, PcapWriter};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

pub const MS: Ts = 1_000_000;
pub const SEC: Ts = NANOS_PER_SEC;

/// Capture epoch of generated files: 2026-01-01T00:00:00Z.
pub const EPOCH: Ts = 1_767_225_600 * SEC;

const MAC_A: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x0b];

/// TCP flag bits: the engine's own constants, so a generated frame and
/// the detector that reads it cannot disagree.
pub mod flags {
    use flowgate::packet::TcpFlags;
    pub const FIN: u8 = TcpFlags::FIN;
    pub const SYN: u8 = TcpFlags::SYN;
    pub const RST: u8 = TcpFlags::RST;
    pub const PSH: u8 = TcpFlags::PSH;
    pub const ACK: u8 = TcpFlags::ACK;
    pub const URG: u8 = TcpFlags::URG;
}

/// Frame builders (Ethernet II, valid checksums).
pub fn tcp(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    fl: u8,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut h = TcpHeader::new(sport, dport, seq, 64240);
    h.fin = fl & flags::FIN != 0;
    h.syn = fl & flags::SYN != 0;
    h.rst = fl & flags::RST != 0;
    h.psh = fl & flags::PSH != 0;
    h.ack = fl & flags::ACK != 0;
    h.urg = fl & flags::URG != 0;
    if h.ack {
        h.acknowledgment_number = seq.wrapping_mul(2_654_435_761);
    }
    let mut v = Vec::with_capacity(64 + payload.len());
    ip_step(src, dst, (MAC_A, MAC_B))
        .tcp_header(h)
        .write(&mut v, payload)
        .expect("building a frame into a Vec cannot fail");
    v
}

/// Ethernet + IPv4 or IPv6 header, by the addresses' family.
fn ip_step(
    src: IpAddr,
    dst: IpAddr,
    (from, to): ([u8; 6], [u8; 6]),
) -> PacketBuilderStep<IpHeaders> {
    let b = PacketBuilder::ethernet2(from, to);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => b.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => b.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed address families"),
    }
}

pub fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(64 + payload.len());
    ip_step(src, dst, (MAC_A, MAC_B))
        .udp(sport, dport)
        .write(&mut v, payload)
        .expect("building a frame into a Vec cannot fail");
    v
}

fn echo(src: IpAddr, dst: IpAddr, id: u16, seq: u16, payload: &[u8], reply: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(64 + payload.len());
    let macs = if reply {
        (MAC_B, MAC_A)
    } else {
        (MAC_A, MAC_B)
    };
    let step = ip_step(src, dst, macs);
    let r = match (src.is_ipv4(), reply) {
        (true, false) => step.icmpv4_echo_request(id, seq).write(&mut v, payload),
        (true, true) => step.icmpv4_echo_reply(id, seq).write(&mut v, payload),
        (false, false) => step.icmpv6_echo_request(id, seq).write(&mut v, payload),
        (false, true) => step.icmpv6_echo_reply(id, seq).write(&mut v, payload),
    };
    r.expect("building a frame into a Vec cannot fail");
    v
}

pub fn echo_request(src: IpAddr, dst: IpAddr, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    echo(src, dst, id, seq, payload, false)
}

pub fn echo_reply(src: IpAddr, dst: IpAddr, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    echo(src, dst, id, seq, payload, true)
}

pub fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut v = vec![0xff; 6];
    v.extend_from_slice(&MAC_A);
    v.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    v.extend_from_slice(&MAC_A);
    v.extend_from_slice(&sender.octets());
    v.extend_from_slice(&[0; 6]);
    v.extend_from_slice(&target.octets());
    v
}

/// Inserts an 802.1Q tag after the MAC addresses.
pub fn vlan_tag(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut v = frame[..12].to_vec();
    v.extend_from_slice(&[0x81, 0x00]);
    v.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    v.extend_from_slice(&frame[12..]);
    v
}

pub fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

pub fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().expect("literal"))
}

/// Timestamped frames.
pub type Frames = Vec<(Ts, Vec<u8>)>;

/// Frames one millisecond apart, in the order added.
struct Timeline {
    frames: Frames,
    ts: Ts,
}

impl Timeline {
    /// Adds a frame; returns its 1-based index (`pcap_cnt`).
    fn add(&mut self, f: Vec<u8>) -> u64 {
        self.ts += MS;
        self.frames.push((self.ts, f));
        self.frames.len() as u64
    }
}

/// Frames with times, collected then written in time order.
#[derive(Default)]
pub struct Capture {
    pub frames: Vec<(Ts, Vec<u8>)>,
}

impl Capture {
    pub fn add(&mut self, ts: Ts, frame: Vec<u8>) {
        self.frames.push((ts, frame));
    }

    /// Sorts by time; equal times keep insertion order.
    pub fn finish(mut self) -> Vec<(Ts, Vec<u8>)> {
        self.frames.sort_by_key(|(t, _)| *t);
        self.frames
    }
}

/// A PCAP writer (micro- or nanosecond records) for generated frames.
fn pcap_writer<W: Write>(out: W, nanos: bool) -> std::io::Result<PcapWriter<W>> {
    let header = PcapHeader {
        ts_resolution: if nanos {
            PcapTsResolution::NanoSecond
        } else {
            PcapTsResolution::MicroSecond
        },
        snaplen: 262_144,
        ..Default::default()
    };
    PcapWriter::with_header(out, header).map_err(std::io::Error::other)
}

fn write_frame<W: Write>(w: &mut PcapWriter<W>, ts: Ts, f: &[u8]) -> std::io::Result<()> {
    let p = PcapPacket::new(Duration::from_nanos(ts), f.len() as u32, f)
        .map_err(std::io::Error::other)?;
    w.write_packet(&p)
        .map(|_| ())
        .map_err(std::io::Error::other)
}

pub fn write_pcap<W: Write>(out: W, frames: &[(Ts, Vec<u8>)], nanos: bool) -> std::io::Result<()> {
    let mut w = pcap_writer(out, nanos)?;
    for (ts, f) in frames {
        write_frame(&mut w, *ts, f)?;
    }
    w.flush().map_err(std::io::Error::other)
}

/// The records of a classic PCAP in memory, as (time in ns, frame), up to
/// the first that does not parse (none for a bad header).
pub fn read_pcap(pcap: &[u8]) -> Frames {
    let Ok((mut rest, parser)) = pcap_file::pcap::PcapParser::new(pcap) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Ok((r, p)) = parser.next_packet(rest) {
        out.push((p.timestamp().as_nanos() as Ts, p.data().to_vec()));
        rest = r;
    }
    out
}

/// [`perf_mix`] as frames in memory (benches and profilers).
pub fn perf_mix_frames(n: u64, sources: u32, seed: u64) -> Frames {
    let mut buf = Vec::new();
    perf_mix(&mut buf, n, sources, seed).expect("writing to memory");
    read_pcap(&buf)
}

/// A complete HTTP exchange: handshake, request, response, FIN close.
#[allow(clippy::too_many_arguments)]
pub fn http_session(
    cap: &mut Capture,
    t0: Ts,
    client: IpAddr,
    server: IpAddr,
    sport: u16,
    dport: u16,
    path: &str,
) {
    use flags::*;
    let req = format!("GET {path} HTTP/1.1\r\nHost: www.example.test\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n");
    let resp =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\n\r\n<p>hello</p>\n";
    let rtt = 2 * MS;
    cap.add(t0, tcp(client, server, sport, dport, SYN, 1000, b""));
    cap.add(
        t0 + rtt / 2,
        tcp(server, client, dport, sport, SYN | ACK, 5000, b""),
    );
    cap.add(t0 + rtt, tcp(client, server, sport, dport, ACK, 1001, b""));
    cap.add(
        t0 + rtt + 10_000,
        tcp(
            client,
            server,
            sport,
            dport,
            PSH | ACK,
            1001,
            req.as_bytes(),
        ),
    );
    cap.add(
        t0 + 2 * rtt,
        tcp(server, client, dport, sport, PSH | ACK, 5001, resp),
    );
    cap.add(
        t0 + 2 * rtt + 10_000,
        tcp(
            client,
            server,
            sport,
            dport,
            FIN | ACK,
            1001 + req.len() as u32,
            b"",
        ),
    );
    cap.add(
        t0 + 3 * rtt,
        tcp(
            server,
            client,
            dport,
            sport,
            FIN | ACK,
            5001 + resp.len() as u32,
            b"",
        ),
    );
    cap.add(
        t0 + 3 * rtt + 10_000,
        tcp(
            client,
            server,
            sport,
            dport,
            ACK,
            1002 + req.len() as u32,
            b"",
        ),
    );
}

/// Who does what in the mixed fixture. Tests assert on this table.
pub const MIXED_ATTACKERS: &[(&str, u32)] = &[
    ("198.18.66.1", flowgate::rules::ICMP_FLOOD),
    ("198.18.66.2", flowgate::rules::SYN_FLOOD),
    ("198.18.66.3", flowgate::rules::SYN_HALF_OPEN),
    ("198.18.66.4", flowgate::rules::SCAN_NULL),
    ("198.18.66.5", flowgate::rules::SCAN_XMAS),
    ("198.18.66.6", flowgate::rules::SCAN_FIN),
    ("198.18.66.7", flowgate::rules::SCAN_SYN_FIN),
    ("198.18.66.8", flowgate::rules::PORT_SCAN),
    ("2001:db8:66::9", flowgate::rules::ICMP_FLOOD),
    ("198.18.66.10", 9_101_010), // UNION SELECT split across two segments
    // Form login admin'-- with segments reordered: the structural detector
    // judges the value as the `&` after it arrives.
    ("198.18.66.11", flowgate::rules::SQLI_STRUCTURAL),
];

#[allow(clippy::too_many_arguments)]
/// One HTTP request sent in pieces: handshake, then `parts` as segments at
/// the given offsets, in the order given (so callers can reorder).
pub fn http_request_in_segments(
    cap: &mut Capture,
    t0: Ts,
    client: IpAddr,
    server: IpAddr,
    sport: u16,
    req: &[u8],
    cuts: &[usize],
    order: &[usize],
) {
    use flags::*;
    let isn = 7000u32;
    cap.add(t0, tcp(client, server, sport, 80, SYN, isn, b""));
    cap.add(
        t0 + MS,
        tcp(server, client, 80, sport, SYN | ACK, 90_000, b""),
    );
    cap.add(
        t0 + 2 * MS,
        tcp(client, server, sport, 80, ACK, isn + 1, b""),
    );
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(req.len());
    for (k, &i) in order.iter().enumerate() {
        let (a, b) = (bounds[i], bounds[i + 1]);
        let ts = t0 + (3 + k as Ts) * MS;
        cap.add(
            ts,
            tcp(
                client,
                server,
                sport,
                80,
                PSH | ACK,
                isn + 1 + a as u32,
                &req[a..b],
            ),
        );
    }
}

/// Benign traffic plus one source per attack family (`MIXED_ATTACKERS`),
/// about 20 s of capture.
pub fn mixed() -> Vec<(Ts, Vec<u8>)> {
    use flags::*;
    let mut rng = ChaCha8Rng::seed_from_u64(0xf10_9a7e);
    let mut cap = Capture::default();
    let server = v4(198, 19, 0, 80);
    let t = |s: f64| EPOCH + (s * SEC as f64) as Ts;

    // Benign: 20 web clients, a few pages each.
    for c in 1..=20u8 {
        let client = v4(198, 18, 1, c);
        for k in 0..5u16 {
            let start = t(rng.random_range(0.0..19.0));
            http_session(
                &mut cap,
                start,
                client,
                server,
                40_000 + k * 7 + c as u16,
                80,
                &format!("/page/{c}/{k}?q=select+union+or"),
            );
        }
    }
    // A busy but benign client: 60 completed connections/s to many hosts on 443.
    let busy = v4(198, 18, 1, 100);
    for i in 0..300u32 {
        let host = v4(198, 19, 1 + (i / 250) as u8, (i % 250) as u8 + 1);
        http_session(
            &mut cap,
            t(2.0) + i as Ts * 16 * MS,
            busy,
            host,
            20_000 + i as u16,
            443,
            "/",
        );
    }
    // DNS lookups.
    for i in 0..60u32 {
        let c = v4(198, 18, 1, 1 + (i % 20) as u8);
        let ts = t(i as f64 * 0.3);
        cap.add(ts, udp(c, v4(198, 19, 0, 53), 30_000 + i as u16, 53, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x04test\x00\x00\x01\x00\x01"));
        cap.add(
            ts + MS,
            udp(
                v4(198, 19, 0, 53),
                c,
                53,
                30_000 + i as u16,
                b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00",
            ),
        );
    }
    // Pings at 1/s, and ARP.
    for i in 0..15u16 {
        let c = v4(198, 18, 1, 5);
        cap.add(
            t(i as f64 + 0.5),
            echo_request(c, server, 77, i, b"abcdefgh"),
        );
        cap.add(
            t(i as f64 + 0.5) + MS,
            echo_reply(server, c, 77, i, b"abcdefgh"),
        );
        cap.add(
            t(i as f64 + 0.7),
            arp_request(
                Ipv4Addr::new(198, 18, 1, 254),
                Ipv4Addr::new(198, 18, 1, (i % 20) as u8 + 1),
            ),
        );
    }
    // IPv6 client behind a VLAN tag, web + ping.
    let c6 = v6("2001:db8:1::10");
    let s6 = v6("2001:db8:2::80");
    for k in 0..4u16 {
        let mut sess = Capture::default();
        http_session(
            &mut sess,
            t(3.0 + k as f64 * 3.0),
            c6,
            s6,
            50_000 + k,
            80,
            "/v6",
        );
        for (ts, f) in sess.frames {
            cap.add(ts, vlan_tag(&f, 42));
        }
        cap.add(
            t(3.5 + k as f64 * 3.0),
            echo_request(c6, s6, 9, k, b"v6ping"),
        );
    }

    // Attacks.
    let a = |d: u8| v4(198, 18, 66, d);
    // ICMP echo flood: 500 requests at 1000/s.
    for i in 0..500u16 {
        cap.add(
            t(4.0) + i as Ts * MS,
            echo_request(a(1), server, 0x4242, i, &[0u8; 56]),
        );
    }
    // SYN flood: 1000 SYNs at 2000/s to port 80, random source ports.
    for i in 0..1000u32 {
        let sport = rng.random_range(1024..65535);
        cap.add(
            t(6.0) + i as Ts * 500_000,
            tcp(a(2), server, sport, 80, SYN, rng.random(), b""),
        );
    }
    // Half-open: 30 SYNs/s to port 443 of a 12-server farm for 8 s, never
    // completed: below the SYN rate limit, too few host:port pairs for a
    // port scan and too few tries per server for repeated attempts.
    for i in 0..240u32 {
        cap.add(
            t(1.0) + i as Ts * 33 * MS,
            tcp(
                a(3),
                v4(198, 19, 0, 100 + (i % 12) as u8),
                10_000 + i as u16,
                443,
                SYN,
                i * 7919,
                b"",
            ),
        );
    }
    // Flag scans: a few probes each.
    for (d, fl) in [(4u8, 0u8), (5, FIN | PSH | URG), (6, FIN), (7, SYN | FIN)] {
        for p in [21u16, 22, 23, 25, 80] {
            cap.add(
                t(8.0 + d as f64 * 0.1) + p as Ts * MS,
                tcp(a(d), server, 61_000, p, fl, 0, b""),
            );
        }
    }
    // Port scan: SYN to ports 1..=200 at 100/s; closed ports answer RST/ACK.
    for p in 1..=200u16 {
        let ts = t(10.0) + p as Ts * 10 * MS;
        cap.add(ts, tcp(a(8), server, 55_555, p, SYN, 42, b""));
        cap.add(ts + MS, tcp(server, a(8), p, 55_555, RST | ACK, 0, b""));
    }
    // SQL injection in a URI, split mid-keyword across two segments.
    let req = b"GET /search?q=1%27+UNI";
    let mut full = req.to_vec();
    full.extend_from_slice(
        b"ON+SELECT+NULL,password+FROM+users-- HTTP/1.1\r\nHost: www.example.test\r\n\r\n",
    );
    http_request_in_segments(
        &mut cap,
        t(14.0),
        a(10),
        server,
        47_001,
        &full,
        &[req.len()],
        &[0, 1],
    );
    // SQL injection in a login form, the second segment arriving first.
    let body = b"user=admin%27--&pass=x";
    let mut post = format!("POST /login HTTP/1.1\r\nHost: www.example.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    post.extend_from_slice(body);
    let cut = post.len() - 12;
    http_request_in_segments(
        &mut cap,
        t(15.0),
        a(11),
        server,
        47_002,
        &post,
        &[cut],
        &[1, 0],
    );
    // IPv6 ICMP flood.
    for i in 0..300u16 {
        cap.add(
            t(12.0) + i as Ts * 2 * MS,
            echo_request(v6("2001:db8:66::9"), s6, 1, i, &[0u8; 32]),
        );
    }
    cap.finish()
}

/// Frames that must be counted as malformed, between valid ones.
pub fn malformed() -> Vec<(Ts, Vec<u8>)> {
    use flags::*;
    let c = v4(198, 18, 2, 1);
    let s = v4(198, 19, 0, 80);
    let good = tcp(c, s, 40_000, 80, SYN, 1, b"");
    let mut out = Vec::new();
    let mut ts = EPOCH;
    let mut push = |f: Vec<u8>| {
        ts += MS;
        out.push((ts, f));
    };
    push(good.clone());
    push(good[..10].to_vec()); // shorter than an Ethernet header
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x43; // IHL 3 (< 5)
    push(bad_ihl);
    let mut too_long = good.clone();
    too_long[16..18].copy_from_slice(&1500u16.to_be_bytes()); // total length beyond frame
    push(too_long);
    let mut short_tcp = good.clone();
    short_tcp.truncate(14 + 20 + 10);
    short_tcp[16..18].copy_from_slice(&30u16.to_be_bytes()); // IP says 30: 10 bytes of TCP
    push(short_tcp);
    let mut bad_version = good.clone();
    bad_version[14] = 0x75;
    push(bad_version);
    let mut v6_short = tcp(v6("2001:db8::1"), v6("2001:db8::2"), 1, 2, SYN, 0, b"");
    v6_short.truncate(14 + 30);
    push(v6_short);
    push(good);
    out
}

/// Traffic mix for throughput runs: `n` frames of 64–128 bytes from
/// `sources` benign clients (TCP data, handshakes, DNS, pings) with 2 %
/// attack traffic (floods, scans) from a few hundred attackers. Streams to
/// `out` without holding the capture in memory. Packet rate: 1 M/s.
pub fn perf_mix<W: Write>(out: W, n: u64, sources: u32, seed: u64) -> std::io::Result<()> {
    use flags::*;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = pcap_writer(out, false)?;
    let server = |r: &mut ChaCha8Rng| v4(198, 19, r.random_range(0..4), r.random_range(1..255));
    let client = |r: &mut ChaCha8Rng| {
        let i = r.random_range(0..sources);
        v4(198, 18, (i >> 8) as u8, (i & 0xff) as u8)
    };
    let mut pad = [0u8; 64];
    for i in 0..n {
        let ts = EPOCH + i * 1_000;
        let roll = rng.random_range(0..1000u32);
        let plen = rng.random_range(0..=60usize);
        rng.fill(&mut pad[..plen]);
        let f = match roll {
            // 2 % attacks from 256 attacker sources.
            0..=19 => {
                let atk = v4(198, 18, 200, rng.random_range(0..=255));
                match roll % 4 {
                    0 => echo_request(atk, server(&mut rng), 1, i as u16, &pad[..plen]),
                    1 => tcp(
                        atk,
                        server(&mut rng),
                        rng.random(),
                        80,
                        SYN,
                        rng.random(),
                        b"",
                    ),
                    2 => tcp(
                        atk,
                        server(&mut rng),
                        61_000,
                        rng.random_range(1..1024),
                        SYN,
                        7,
                        b"",
                    ),
                    _ => tcp(
                        atk,
                        server(&mut rng),
                        61_001,
                        rng.random_range(1..1024),
                        FIN | PSH | URG,
                        7,
                        b"",
                    ),
                }
            }
            20..=99 => tcp(
                client(&mut rng),
                server(&mut rng),
                rng.random_range(1024..65535),
                443,
                SYN,
                rng.random(),
                b"",
            ),
            100..=179 => udp(
                client(&mut rng),
                v4(198, 19, 0, 53),
                rng.random_range(1024..65535),
                53,
                &pad[..plen.min(40)],
            ),
            180..=199 => echo_request(
                client(&mut rng),
                server(&mut rng),
                7,
                i as u16,
                &pad[..plen],
            ),
            _ => {
                let (c, s) = (client(&mut rng), server(&mut rng));
                if rng.random_bool(0.5) {
                    tcp(
                        c,
                        s,
                        rng.random_range(1024..65535),
                        443,
                        PSH | ACK,
                        rng.random(),
                        &pad[..plen],
                    )
                } else {
                    tcp(
                        s,
                        c,
                        443,
                        rng.random_range(1024..65535),
                        ACK,
                        rng.random(),
                        &pad[..plen],
                    )
                }
            }
        };
        write_frame(&mut w, ts, &f)?;
    }
    w.flush().map_err(std::io::Error::other)
}

/// A spoofed SYN flood for memory and detection runs: `spoofed` SYNs to
/// one victim (198.19.0.80:80) at `rate` a second, each from a different
/// source in 10.0.0.0/8; one real attacker (198.18.7.7) sending 2000 SYN/s
/// to the same victim throughout; one real client (198.18.5.5) completing a
/// handshake every 100 ms. Time-ordered, deterministic.
pub fn spoofed_flood<W: Write>(out: W, spoofed: u32, rate: u32) -> std::io::Result<()> {
    use flags::*;
    let mut w = pcap_writer(out, false)?;
    let victim = v4(198, 19, 0, 80);
    let attacker = v4(198, 18, 7, 7);
    let client = v4(198, 18, 5, 5);
    let step = SEC / rate.max(1) as u64;
    let span = spoofed as u64 * step;
    // Merge three regular streams by time without materialising frames.
    let (mut i, mut a, mut c) = (0u64, 0u64, 0u64);
    let (a_step, c_step) = (SEC / 2000, 100 * MS);
    loop {
        let ti = (i < spoofed as u64).then(|| EPOCH + i * step);
        let ta = (a * a_step < span).then(|| EPOCH + a * a_step + 7);
        let tc = (c * c_step < span).then(|| EPOCH + c * c_step + 11);
        let next = [ti.map(|t| (t, 0)), ta.map(|t| (t, 1)), tc.map(|t| (t, 2))]
            .into_iter()
            .flatten()
            .min();
        let Some((t, k)) = next else { break };
        match k {
            0 => {
                // Multiplying by an odd constant permutes 24-bit values:
                // every spoofed source is distinct.
                let x = (i as u32).wrapping_mul(0x9E37_79B1) & 0x00ff_ffff;
                let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | x));
                let f = tcp(src, victim, 1024 + (x % 60_000) as u16, 80, SYN, x, b"");
                write_frame(&mut w, t, &f)?;
                i += 1;
            }
            1 => {
                let sport = 1024 + (a % 60_000) as u16;
                write_frame(
                    &mut w,
                    t,
                    &tcp(attacker, victim, sport, 80, SYN, a as u32, b""),
                )?;
                a += 1;
            }
            _ => {
                let sport = 30_000 + (c % 30_000) as u16;
                write_frame(&mut w, t, &tcp(client, victim, sport, 80, SYN, 1, b""))?;
                write_frame(
                    &mut w,
                    t + MS,
                    &tcp(victim, client, 80, sport, SYN | ACK, 9, b""),
                )?;
                write_frame(
                    &mut w,
                    t + 2 * MS,
                    &tcp(client, victim, sport, 80, ACK, 2, b""),
                )?;
                c += 1;
            }
        }
    }
    w.flush().map_err(std::io::Error::other)
}

/// Random traffic for property tests: `n` frames from `sources` sources,
/// every protocol and flag combination, times jittering forward, with
/// bursts so that rate detectors fire. Includes malformed frames.
pub fn random_frames(seed: u64, n: usize, sources: u8) -> Vec<(Ts, Vec<u8>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ts = EPOCH;
    let mut out = Vec::with_capacity(n);
    let dsts = [v4(198, 19, 0, 1), v4(198, 19, 0, 2), v4(198, 19, 0, 3)];
    for _ in 0..n {
        // Bursty time: mostly 0.1–2 ms steps, sometimes a long gap.
        ts += if rng.random_bool(0.01) {
            rng.random_range(1..90) * SEC
        } else {
            rng.random_range(100_000..2_000_000)
        };
        // Skewed toward low indices: a few heavy sources (floods) and a
        // long tail of light ones (half-open, scans).
        let n = sources.max(1) as u32;
        let s = v4(
            198,
            18,
            9,
            (rng.random_range(0..n) * rng.random_range(0..n) / n) as u8,
        );
        let d = dsts[rng.random_range(0..dsts.len())];
        let f = match rng.random_range(0..12u8) {
            0..=1 => echo_request(s, d, 1, rng.random(), b"x"),
            2..=7 => {
                // Weighted toward SYN and ACK, with the odd scan flag set.
                let fl = match rng.random_range(0..10u8) {
                    0..=3 => flags::SYN,
                    4..=6 => flags::ACK,
                    7 => flags::RST,
                    _ => rng.random(),
                };
                {
                    // Mostly one service port, so floods outpace scans.
                    let dport = if rng.random_bool(0.3) {
                        rng.random_range(1..400)
                    } else {
                        80
                    };
                    tcp(
                        s,
                        d,
                        rng.random_range(1000..1100),
                        dport,
                        fl,
                        rng.random(),
                        b"",
                    )
                }
            }
            8 => udp(s, d, 5000, rng.random_range(1..100), b"u"),
            10 | 11 => {
                // HTTP request pieces at nearby sequence numbers: in order,
                // overlapping, with gaps; benign and malicious.
                const PIECES: [&[u8]; 6] = [
                    b"GET /s?q=1%27+UNI",
                    b"ON+SELECT+1,2-- HTTP/1.1\r\n\r\n",
                    b"GET /s?q=union+square HTTP/1.1\r\n\r\n",
                    b"POST /login HTTP/1.1\r\nContent-Length: 17\r\n\r\nuser=admin%27--&x",
                    b"GET /p?id=5 HTTP/1.1\r\nHost: a\r\n\r\n",
                    b" OR 1=1-- HTTP/1.1\r\n\r\n",
                ];
                let p = PIECES[rng.random_range(0..PIECES.len())];
                let seq = 1000 + rng.random_range(0..4u32) * 17;
                let fl = if rng.random_bool(0.1) {
                    flags::SYN
                } else {
                    flags::PSH | flags::ACK
                };
                tcp(
                    s,
                    d,
                    2000 + rng.random_range(0..3u16),
                    80,
                    fl,
                    if fl == flags::SYN { 999 } else { seq },
                    p,
                )
            }
            _ => {
                let mut f = tcp(s, d, 1, 2, flags::SYN, 0, b"");
                let cut = rng.random_range(0..f.len());
                f.truncate(cut);
                f
            }
        };
        out.push((ts, f));
    }
    out
}

/// HTTP inspection cases in one capture, each from its own client, with the
/// verdict expected for chosen packets: `(pcap_cnt, Some(rule) = drop,
/// None = allow)`. Frames are in construction order (strictly increasing time).
pub fn http_cases() -> (Frames, Vec<(u64, Option<u32>)>) {
    use flags::*;
    let server = v4(198, 19, 0, 80);
    let mut out = Timeline {
        frames: Vec::new(),
        ts: EPOCH + 30 * SEC,
    };
    let mut expect = Vec::new();
    let hs = |out: &mut Timeline, c: IpAddr, sport: u16| {
        out.add(tcp(c, server, sport, 80, SYN, 999, b""));
        out.add(tcp(server, c, 80, sport, SYN | ACK, 5000, b""));
        out.add(tcp(c, server, sport, 80, ACK, 1000, b""));
    };

    // A: UNION SELECT split mid-keyword: the second segment completes the
    // match and is dropped; the source is blocked after it.
    let c = v4(198, 18, 70, 1);
    hs(&mut out, c, 40_001);
    let p1 = b"GET /item?id=1%27%20UNI".to_vec();
    let p2 = b"ON%20SELECT%20username,password%20FROM%20users-- HTTP/1.1\r\nHost: shop.example.test\r\n\r\n".to_vec();
    let i = out.add(tcp(c, server, 40_001, 80, PSH | ACK, 1000, &p1));
    expect.push((i, None));
    let i = out.add(tcp(
        c,
        server,
        40_001,
        80,
        PSH | ACK,
        1000 + p1.len() as u32,
        &p2,
    ));
    expect.push((i, Some(9_101_010)));
    let i = out.add(tcp(
        c,
        server,
        40_001,
        80,
        FIN | ACK,
        1000 + (p1.len() + p2.len()) as u32,
        b"",
    ));
    expect.push((i, Some(9_101_010)));

    // B: form login injection, segments reordered: the late first segment
    // fills the gap, completes the match and is dropped.
    let c = v4(198, 18, 70, 2);
    hs(&mut out, c, 40_002);
    let body = b"username=admin%27--&password=x";
    let mut req = format!(
        "POST /login HTTP/1.1\r\nHost: shop.example.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let cut = req.len() - 20;
    let i = out.add(tcp(
        c,
        server,
        40_002,
        80,
        PSH | ACK,
        1000 + cut as u32,
        &req[cut..],
    ));
    expect.push((i, None));
    let i = out.add(tcp(c, server, 40_002, 80, ACK, 1000, &req[..cut]));
    expect.push((i, Some(flowgate::rules::SQLI_STRUCTURAL)));

    // C: no false match across a gap: "union " then, after a hole that is
    // never filled, "select 1,2,3--". Nothing joins them; all allowed.
    let c = v4(198, 18, 70, 3);
    hs(&mut out, c, 40_003);
    let a = b"GET /find?q=union+";
    let i = out.add(tcp(c, server, 40_003, 80, PSH | ACK, 1000, a));
    expect.push((i, None));
    let i = out.add(tcp(
        c,
        server,
        40_003,
        80,
        PSH | ACK,
        1000 + a.len() as u32 + 10,
        b"select+1,2,3-- HTTP/1.1\r\n\r\n",
    ));
    expect.push((i, None));
    // A retransmission of the first segment with different bytes: first
    // copy wins, nothing new, allowed.
    let i = out.add(tcp(
        c,
        server,
        40_003,
        80,
        PSH | ACK,
        1000,
        b"GET /find?q=1'+or+",
    ));
    expect.push((i, None));

    // D: benign requests full of SQL words, split and pipelined: allowed.
    let c = v4(198, 18, 70, 4);
    hs(&mut out, c, 40_004);
    let r = b"GET /search?q=union+square+select+hotels+or+motels HTTP/1.1\r\nHost: a.example.test\r\n\r\nGET /people?name=O%27Brien&sort=desc HTTP/1.1\r\nHost: a.example.test\r\n\r\n";
    let mut off = 0;
    for len in [17usize, 40, r.len() - 57] {
        let i = out.add(tcp(
            c,
            server,
            40_004,
            80,
            PSH | ACK,
            1000 + off as u32,
            &r[off..off + len],
        ));
        expect.push((i, None));
        off += len;
    }

    // E: mid-stream pickup (no handshake seen): still inspected.
    let c = v4(198, 18, 70, 5);
    let i = out.add(tcp(
        c,
        server,
        40_005,
        80,
        PSH | ACK,
        77,
        b"GET /p?id=1;%20DROP%20TABLE%20users-- HTTP/1.1\r\n\r\n",
    ));
    expect.push((i, Some(9_101_020)));
    (out.frames, expect)
}

/// HTTP-heavy traffic for throughput runs: `sessions` complete HTTP/1.1
/// exchanges (8 packets each: handshake, request, response, close) from
/// `clients` sources; 2 % of requests carry SQL injection, from 256 other
/// sources. Streams to `out`.
pub fn perf_http<W: Write>(out: W, sessions: u64, clients: u32, seed: u64) -> std::io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = pcap_writer(out, false)?;
    const PATHS: [&str; 8] = [
        "/search?q=union+square+hotels&page=2",
        "/product.php?id=4411&ref=home",
        "/api/v1/items?sort=price&order=desc&limit=20",
        "/static/js/app.3f2a1b.js",
        "/news?cat=sports&utm_source=newsletter&utm_medium=email",
        "/people?name=O%27Brien&city=Dublin",
        "/blog/2024/05/how-to-select-a-database",
        "/login?next=%2Faccount%2Forders",
    ];
    const ATTACKS: [&str; 4] = [
        "%27+or+%271%27%3D%271",
        "-1+union+select+null,version()--",
        "1;drop+table+users--",
        "1+and+sleep(5)",
    ];
    for s in 0..sessions {
        let i = rng.random_range(0..clients);
        let mut client = v4(198, 18, (i >> 8) as u8, (i & 0xff) as u8);
        let server = v4(198, 19, 0, rng.random_range(1..20));
        let mut path = PATHS[rng.random_range(0..PATHS.len())].to_string();
        if rng.random_range(0..100) < 2 {
            // Attacks come from their own 256 sources, so blocking them
            // leaves the benign clients' sessions to be inspected.
            client = v4(198, 18, 250, rng.random());
            path = format!("/item?id={}", ATTACKS[rng.random_range(0..ATTACKS.len())]);
        }
        let mut cap = Capture::default();
        http_session(
            &mut cap,
            EPOCH + s * 20_000,
            client,
            server,
            rng.random_range(1024..65535),
            80,
            &path,
        );
        for (ts, f) in cap.finish() {
            write_frame(&mut w, ts, &f)?;
        }
    }
    w.flush().map_err(std::io::Error::other)
}
