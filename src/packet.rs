//! Where a frame is parsed: a checked, zero-copy view of one captured frame.
//!
//! `parse` does every bounds check once (with etherparse) and copies the few
//! header fields the detectors need into a plain struct. After it returns
//! `Ok`, nothing a detector reads can panic or index out of bounds; the
//! payload is a sub-slice of the original frame, never a copy.
//!
//! `source_of` is the cheap path the reader thread uses to pick a shard: it
//! reads only as far as the IP source address.

use etherparse::{Icmpv4Slice, Icmpv6Slice, LaxIpv4Slice, LaxIpv6Slice, TcpSlice, UdpSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Packet time in nanoseconds since the Unix epoch. Detectors only ever see
/// this clock (PCAP record time offline, RX time live), never the wall clock.
pub type Ts = u64;

/// Nanoseconds per second, for converting [`Ts`] to and from seconds.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Link-layer framing of a capture (PCAP DLT / LINKTYPE values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// Ethernet II, with up to three 802.1Q / 802.1ad VLAN tags. The only
    /// framing live mode sees.
    Ethernet,
    /// Linux cooked capture v1 (`tcpdump -i any` on older libpcap).
    LinuxSll,
    /// Linux cooked capture v2 (`tcpdump -i any` on libpcap >= 1.10).
    LinuxSll2,
    /// Raw IPv4 or IPv6, version taken from the first nibble.
    RawIp,
    /// BSD loopback: 4-byte address family in host order.
    Null,
    /// A PCAPNG interface whose link type we cannot decode.
    Unsupported,
}

impl LinkType {
    /// The LINKTYPE_* number to write this framing back out with.
    pub fn to_linktype(self) -> Option<u32> {
        match self {
            LinkType::Ethernet => Some(1),
            LinkType::LinuxSll => Some(113),
            LinkType::LinuxSll2 => Some(276),
            LinkType::RawIp => Some(101),
            LinkType::Null => Some(0),
            LinkType::Unsupported => None,
        }
    }

    /// Maps a LINKTYPE_* number; `None` means we cannot decode it.
    pub fn from_linktype(n: u32) -> Option<LinkType> {
        match n {
            1 => Some(LinkType::Ethernet),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            // LINKTYPE_RAW, the two historic DLT_RAW values, IPV4, IPV6.
            101 | 12 | 14 | 228 | 229 => Some(LinkType::RawIp),
            0 | 108 => Some(LinkType::Null),
            _ => None,
        }
    }
}

/// Transport protocol of an IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP (IP protocol 6): ports, flags, sequence number and payload set.
    Tcp,
    /// UDP (17): ports and payload set.
    Udp,
    /// ICMP for IPv4 (1): type, code and body set.
    Icmp,
    /// ICMPv6 (58): type, code and body set.
    Icmpv6,
    /// Any other IP protocol, by number (GRE, ESP, SCTP, ...): no ports;
    /// the payload is the whole IP payload.
    Other(u8),
}

impl Proto {
    /// Name as Suricata writes it in EVE `proto`.
    pub fn eve_name(self) -> String {
        match self {
            Proto::Tcp => "TCP".into(),
            Proto::Udp => "UDP".into(),
            Proto::Icmp => "ICMP".into(),
            Proto::Icmpv6 => "IPv6-ICMP".into(),
            Proto::Other(n) => format!("{n:03}"),
        }
    }
}

/// TCP flag bits as on the wire (byte 13 of the TCP header).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN: the sender has finished sending.
    pub const FIN: u8 = 0x01;
    /// SYN: opens a connection (alone: a client's first segment).
    pub const SYN: u8 = 0x02;
    /// RST: aborts the connection.
    pub const RST: u8 = 0x04;
    /// PSH: push buffered data to the application.
    pub const PSH: u8 = 0x08;
    /// ACK: the acknowledgment number is valid (every segment after the SYN).
    pub const ACK: u8 = 0x10;
    /// URG: the urgent pointer is valid.
    pub const URG: u8 = 0x20;
    /// ECE: ECN echo (not one of the classic six flags).
    pub const ECE: u8 = 0x40;
    /// CWR: congestion window reduced (not one of the classic six flags).
    pub const CWR: u8 = 0x80;

    /// Every bit of `bits` is set (`has(SYN | FIN)`: both).
    pub fn has(self, bits: u8) -> bool {
        self.0 & bits == bits
    }
    /// At least one bit of `bits` is set (`any(ACK | RST)`: either).
    pub fn any(self, bits: u8) -> bool {
        self.0 & bits != 0
    }
    /// The six classic flags, ignoring ECN bits.
    pub fn classic(self) -> u8 {
        self.0 & 0x3f
    }
}

/// A parsed IP packet. Plain fields: no accessor can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Source address as in the header (IPv4 or IPv6): the shard key and
    /// the key of every piece of per-source state.
    pub src: IpAddr,
    /// Destination address as in the header.
    pub dst: IpAddr,
    /// Transport protocol; decides which of the fields below are set.
    pub proto: Proto,
    /// 0 for protocols without ports.
    pub src_port: u16,
    /// Destination port; 0 for protocols without ports.
    pub dst_port: u16,
    /// Zero unless `proto == Tcp`.
    pub tcp_flags: TcpFlags,
    /// TCP sequence number of the segment (the ISN on a SYN, else the
    /// number of its first payload byte); zero unless `proto == Tcp`.
    pub tcp_seq: u32,
    /// ICMP / ICMPv6 type and code; zero otherwise.
    pub icmp_type: u8,
    /// ICMP / ICMPv6 code; zero otherwise.
    pub icmp_code: u8,
    /// Transport payload (TCP/UDP data, ICMP body; the whole IP payload for
    /// other protocols). Empty for every fragment.
    pub payload: &'a [u8],
    /// An IP fragment, the first one included (IPv4 or IPv6: more-fragments
    /// set or a non-zero offset), or a snaplen-cut packet whose extension
    /// headers could not be read: the transport fields above are unset, and
    /// detectors and signatures skip it.
    pub fragment: bool,
    /// The capture cut the frame short (snaplen): fields are valid but the
    /// payload is incomplete.
    pub capture_truncated: bool,
}

impl Packet<'_> {
    /// The IP layer only: transport fields zero, no payload, not a
    /// fragment, not cut. The parsers fill in the rest.
    #[inline]
    fn ip_only(src: IpAddr, dst: IpAddr, proto: Proto) -> Packet<'static> {
        Packet {
            src,
            dst,
            proto,
            src_port: 0,
            dst_port: 0,
            tcp_flags: TcpFlags(0),
            tcp_seq: 0,
            icmp_type: 0,
            icmp_code: 0,
            payload: &[],
            fragment: false,
            capture_truncated: false,
        }
    }

    /// A TCP segment from 198.18.0.1:40000 for unit tests of the detectors.
    #[cfg(test)]
    pub(crate) fn test_tcp(flags: u8, dst: &str, dst_port: u16, src_port: u16) -> Packet<'static> {
        Packet {
            src_port,
            dst_port,
            tcp_flags: TcpFlags(flags),
            ..Packet::ip_only(
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
                dst.parse().expect("test address"),
                Proto::Tcp,
            )
        }
    }

    /// An ICMP echo request (type 8) or ICMPv6 echo request (type 128):
    /// what the ICMP flood detector counts.
    pub fn is_icmp_echo_request(&self) -> bool {
        match self.proto {
            Proto::Icmp => self.icmp_type == 8,
            Proto::Icmpv6 => self.icmp_type == 128,
            _ => false,
        }
    }
}

/// What a frame turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// An IPv4 or IPv6 packet (VLAN tags and cooked headers walked past).
    Ip(Packet<'a>),
    /// ARP, LLDP and every other non-IP frame: a bump in the wire passes these.
    NonIp,
}

/// Why a frame could not be decoded. Counted per kind, never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// Ethernet / VLAN / cooked header cut short or invalid.
    Link,
    /// IPv4 header invalid or cut short; also a raw-IP frame whose version
    /// nibble is neither 4 nor 6.
    Ipv4,
    /// IPv6 fixed header invalid or cut short.
    Ipv6,
    /// IPv6 extension headers or IPv4 AH.
    IpExt,
    /// IP total/payload length larger than the frame.
    IpLength,
    /// TCP header invalid or cut short (without a snaplen to explain it).
    Tcp,
    /// UDP header cut short (without a snaplen to explain it).
    Udp,
    /// ICMP or ICMPv6 header cut short (without a snaplen to explain it).
    Icmp,
    /// The capture's link type is not one we decode.
    UnsupportedLink,
    /// An IP fragment that overlaps bytes already received with different
    /// content (the receiver's reassembly could differ from ours), arrives
    /// after its datagram was complete, or does not fit the fragment
    /// table's bounds.
    Fragment,
}

impl Malformed {
    /// Every kind, in declaration order: metrics create one series per
    /// kind at start so rates exist before the first malformed frame.
    pub const ALL: [Malformed; 10] = [
        Malformed::Link,
        Malformed::Ipv4,
        Malformed::Ipv6,
        Malformed::IpExt,
        Malformed::IpLength,
        Malformed::Tcp,
        Malformed::Udp,
        Malformed::Icmp,
        Malformed::UnsupportedLink,
        Malformed::Fragment,
    ];

    /// Stable snake_case name: the key in [`crate::engine::Stats`]'s
    /// `malformed` map and the `kind` label of
    /// `flowgate_malformed_packets_total`.
    pub fn name(self) -> &'static str {
        match self {
            Malformed::Link => "link",
            Malformed::Ipv4 => "ipv4",
            Malformed::Ipv6 => "ipv6",
            Malformed::IpExt => "ip_ext",
            Malformed::IpLength => "ip_length",
            Malformed::Tcp => "tcp",
            Malformed::Udp => "udp",
            Malformed::Icmp => "icmp",
            Malformed::UnsupportedLink => "unsupported_link",
            Malformed::Fragment => "fragment",
        }
    }

    /// Position of this kind in [`Malformed::ALL`], for per-kind arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// 802.1Q, 802.1ad (QinQ) and the older 0x9100 tag.
fn is_vlan(ether_type: u16) -> bool {
    // A `match`, not `[..].contains`: whether the slice search is inlined
    // changed with unrelated code elsewhere in the crate, and when it was
    // not, the tag walk cost 50 instructions per packet more.
    matches!(ether_type, 0x8100 | 0x88a8 | 0x9100)
}
const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;

/// Decodes one frame. `wire_len` is the original length; when it exceeds
/// `data.len()` the capture was cut by a snaplen and a short IP payload is
/// tolerated instead of being called malformed. Frames without an IP
/// layer are `Frame::NonIp`; `Err` says what is damaged. No input panics.
///
/// The common case, a whole unfragmented IPv4 packet without options
/// carrying TCP, UDP or an ICMP echo, is read directly ([`plain_ipv4`]);
/// everything else walks the layers with etherparse's per-layer slices
/// rather than `SlicedPacket`: same checks, half the cost, nothing built
/// we do not read. Both give the same result (tested on every fixture, the
/// benchmark mix and mutations of them).
pub fn parse(link: LinkType, data: &[u8], wire_len: u32) -> Result<Frame<'_>, Malformed> {
    let capture_truncated = (wire_len as usize) > data.len();
    let Some((ether_type, l3)) = l3_of(link, data)? else {
        return Ok(Frame::NonIp);
    };
    if ether_type == ETH_IPV4 && !capture_truncated {
        if let Some(pkt) = plain_ipv4(l3) {
            return Ok(Frame::Ip(pkt));
        }
    }
    parse_layers(ether_type, l3, capture_truncated)
}

/// The fast path of [`parse`]: `Some` only for an IPv4 packet whose header
/// is 20 bytes, whose total length fits the slice, that is not a fragment,
/// and whose TCP header, UDP header and length, or ICMP echo header are
/// whole; `None` sends the packet through [`parse_layers`], which decides
/// (and names the damage) exactly as before. Every read is checked: a
/// short slice is a `None`, never a panic.
#[inline]
fn plain_ipv4(l3: &[u8]) -> Option<Packet<'_>> {
    let h: &[u8; 20] = l3.get(..20)?.try_into().ok()?;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    // Version 4, IHL 5; no MF flag, offset 0 (DF allowed).
    if h[0] != 0x45 || total < 20 || total > l3.len() || h[6] & 0x3f != 0 || h[7] != 0 {
        return None;
    }
    let body = l3.get(20..total)?;
    let mut pkt = Packet::ip_only(
        IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        Proto::Other(h[9]),
    );
    match h[9] {
        6 => {
            let t: &[u8; 20] = body.get(..20)?.try_into().ok()?;
            let doff = usize::from(t[12] >> 4) * 4;
            if doff < 20 {
                return None;
            }
            pkt.proto = Proto::Tcp;
            pkt.src_port = u16::from_be_bytes([t[0], t[1]]);
            pkt.dst_port = u16::from_be_bytes([t[2], t[3]]);
            pkt.tcp_seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
            pkt.tcp_flags = TcpFlags(t[13]);
            pkt.payload = body.get(doff..)?;
        }
        17 => {
            let u: &[u8; 8] = body.get(..8)?.try_into().ok()?;
            let len = usize::from(u16::from_be_bytes([u[4], u[5]]));
            pkt.proto = Proto::Udp;
            pkt.src_port = u16::from_be_bytes([u[0], u[1]]);
            pkt.dst_port = u16::from_be_bytes([u[2], u[3]]);
            // Length 0 means "the rest" (as etherparse reads it); under 8
            // or past the slice is damage, named by the slow path.
            pkt.payload = match len {
                0 => &body[8..],
                8.. => body.get(8..len)?,
                _ => return None,
            };
        }
        // Echo reply and request: an 8-byte header (other types differ).
        1 if matches!(body.first(), Some(0 | 8)) => {
            let i = body.get(..8)?;
            pkt.proto = Proto::Icmp;
            pkt.icmp_type = i[0];
            pkt.icmp_code = i[1];
            pkt.payload = &body[8..];
        }
        _ => return None,
    }
    Some(pkt)
}

/// [`parse`] without its fast path: every frame through etherparse's
/// layers. The reference the fast path is tested against; not for use on
/// the packet path.
#[doc(hidden)]
pub fn parse_reference(link: LinkType, data: &[u8], wire_len: u32) -> Result<Frame<'_>, Malformed> {
    let capture_truncated = (wire_len as usize) > data.len();
    let Some((ether_type, l3)) = l3_of(link, data)? else {
        return Ok(Frame::NonIp);
    };
    parse_layers(ether_type, l3, capture_truncated)
}

/// [`parse`] past the link layer, layer by layer with etherparse.
fn parse_layers(
    ether_type: u16,
    l3: &[u8],
    capture_truncated: bool,
) -> Result<Frame<'_>, Malformed> {
    let (src, dst, payload, ext_ok) = match ether_type {
        ETH_IPV4 => {
            let (ip, ext_err) = LaxIpv4Slice::from_slice(l3).map_err(|_| Malformed::Ipv4)?;
            let h = ip.header();
            // The lax parser takes a header longer than the packet it claims
            // to be; a host would not. (A total length of 0 is what capture
            // of segmentation offload writes: the slice length stands.)
            if h.total_len() != 0 && usize::from(h.ihl()) * 4 > usize::from(h.total_len()) {
                return Err(Malformed::Ipv4);
            }
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                ip.payload().clone(),
                ext_err.is_none(),
            )
        }
        _ => {
            let (ip, ext_err) = LaxIpv6Slice::from_slice(l3).map_err(|_| Malformed::Ipv6)?;
            let h = ip.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                ip.payload().clone(),
                ext_err.is_none(),
            )
        }
    };
    if !capture_truncated {
        if !ext_ok {
            return Err(Malformed::IpExt);
        }
        if payload.incomplete {
            return Err(Malformed::IpLength);
        }
    }
    let proto = match payload.ip_number.0 {
        6 => Proto::Tcp,
        17 => Proto::Udp,
        1 => Proto::Icmp,
        58 => Proto::Icmpv6,
        n => Proto::Other(n),
    };
    let mut pkt = Packet {
        fragment: payload.fragmented || !ext_ok,
        capture_truncated,
        ..Packet::ip_only(src, dst, proto)
    };
    if pkt.fragment {
        // Only a first fragment has a transport header, and not always all
        // of it; detectors skip fragments (counted in stats).
        return Ok(Frame::Ip(pkt));
    }
    let body = payload.payload;
    // A snaplen cut inside the transport header leaves the IP fields usable.
    let bad = |m: Malformed| if capture_truncated { Ok(()) } else { Err(m) };
    match proto {
        Proto::Tcp => match TcpSlice::from_slice(body) {
            Ok(t) => {
                pkt.src_port = t.source_port();
                pkt.dst_port = t.destination_port();
                pkt.tcp_flags = TcpFlags(t.header_slice().get(13).copied().unwrap_or(0));
                pkt.tcp_seq = t.sequence_number();
                pkt.payload = t.payload();
            }
            Err(_) => bad(Malformed::Tcp)?,
        },
        Proto::Udp => match UdpSlice::from_slice(body) {
            Ok(u) => {
                pkt.src_port = u.source_port();
                pkt.dst_port = u.destination_port();
                pkt.payload = u.payload();
            }
            Err(_) => bad(Malformed::Udp)?,
        },
        Proto::Icmp => match Icmpv4Slice::from_slice(body) {
            Ok(i) => {
                pkt.icmp_type = i.type_u8();
                pkt.icmp_code = i.code_u8();
                pkt.payload = i.payload();
            }
            Err(_) => bad(Malformed::Icmp)?,
        },
        Proto::Icmpv6 => match Icmpv6Slice::from_slice(body) {
            Ok(i) => {
                pkt.icmp_type = i.type_u8();
                pkt.icmp_code = i.code_u8();
                pkt.payload = i.payload();
            }
            Err(_) => bad(Malformed::Icmp)?,
        },
        Proto::Other(_) => pkt.payload = body,
    }
    Ok(Frame::Ip(pkt))
}

/// The EtherType of the IP layer and the bytes from the IP header on, or
/// `None` for non-IP frames. Walks any depth of VLAN tags (802.1Q, QinQ).
pub(crate) fn l3_of(link: LinkType, data: &[u8]) -> Result<Option<(u16, &[u8])>, Malformed> {
    let (mut et, mut rest) = match link {
        LinkType::Ethernet => (
            be16(data, 12).ok_or(Malformed::Link)?,
            data.get(14..).ok_or(Malformed::Link)?,
        ),
        LinkType::RawIp => match data.first().map(|b| b >> 4) {
            Some(4) => (ETH_IPV4, data),
            Some(6) => (ETH_IPV6, data),
            _ => return Err(Malformed::Ipv4),
        },
        LinkType::LinuxSll | LinkType::LinuxSll2 | LinkType::Null => {
            cooked_ether_type(link, data).ok_or(Malformed::Link)?
        }
        LinkType::Unsupported => return Err(Malformed::UnsupportedLink),
    };
    // Any number of tags: each is 4 bytes of the frame, so the walk ends
    // with the frame; a stack of tags cannot hide IP from the detectors.
    while is_vlan(et) {
        et = be16(rest, 2).ok_or(Malformed::Link)?;
        rest = rest.get(4..).ok_or(Malformed::Link)?;
    }
    Ok(match et {
        ETH_IPV4 | ETH_IPV6 => Some((et, rest)),
        _ => None,
    })
}

/// EtherType and payload of a cooked (SLL, SLL2) or loopback frame.
fn cooked_ether_type(link: LinkType, data: &[u8]) -> Option<(u16, &[u8])> {
    match link {
        LinkType::LinuxSll => Some((be16(data, 14)?, data.get(16..)?)),
        LinkType::LinuxSll2 => Some((be16(data, 0)?, data.get(20..)?)),
        LinkType::Null => {
            let fam = data.get(0..4)?;
            // Written in the capturing host's byte order; AF_INET is 2 and
            // AF_INET6 is 10 (Linux), 24, 28 or 30 (BSDs) everywhere.
            let af = if fam[0] == 0 && fam[1] == 0 {
                u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]])
            } else {
                u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]])
            };
            let et = match af {
                2 => ETH_IPV4,
                10 | 24 | 28 | 30 => ETH_IPV6,
                _ => 0,
            };
            Some((et, data.get(4..)?))
        }
        _ => None,
    }
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// The source address, reading no further than the IP header's address
/// fields. Used by the reader thread to pick a shard; `None` for non-IP or
/// frames too short to tell (those are spread over shards by index).
pub fn source_of(link: LinkType, data: &[u8]) -> Option<IpAddr> {
    let (_, ip) = l3_of(link, data).ok()??;
    match ip.first()? >> 4 {
        4 => {
            let a = ip.get(12..16)?;
            Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])))
        }
        6 => {
            let a: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_frame(flags: u8, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([198, 18, 0, 1], [198, 19, 0, 2], 64)
            .tcp(40000, 80, 1, 1024);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v[14 + 20 + 13] = flags;
        v
    }

    #[test]
    fn parses_tcp_flags_and_payload() {
        let f = tcp_frame(TcpFlags::SYN, b"hello");
        let Frame::Ip(p) = parse(LinkType::Ethernet, &f, f.len() as u32).unwrap() else {
            panic!("not ip")
        };
        assert_eq!(p.proto, Proto::Tcp);
        assert_eq!(p.dst_port, 80);
        assert!(p.tcp_flags.has(TcpFlags::SYN));
        assert_eq!(p.payload, b"hello");
        assert_eq!(source_of(LinkType::Ethernet, &f), Some(p.src));
    }

    #[test]
    fn every_prefix_of_a_frame_is_handled_without_panic() {
        let f = tcp_frame(TcpFlags::ACK, b"GET / HTTP/1.1\r\n\r\n");
        for n in 0..f.len() {
            let r = parse(LinkType::Ethernet, &f[..n], f.len() as u32);
            let _ = source_of(LinkType::Ethernet, &f[..n]);
            // Claimed wire length == captured length: truncation is malformed.
            let strict = parse(LinkType::Ethernet, &f[..n], n as u32);
            if n >= 14 + 20 {
                assert!(r.is_ok(), "snaplen cut at {n} should still give IP fields");
            }
            if n > 14 && n < f.len() {
                assert!(
                    strict.is_err(),
                    "cut at {n} without snaplen must be malformed"
                );
            }
        }
    }

    #[test]
    fn vlan_and_qinq_frames_reach_ip() {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .double_vlan(
                etherparse::VlanId::try_new(10).unwrap(),
                etherparse::VlanId::try_new(20).unwrap(),
            )
            .ipv4([198, 18, 0, 7], [198, 19, 0, 2], 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut v, b"ping")
            .unwrap();
        let Frame::Ip(p) = parse(LinkType::Ethernet, &v, v.len() as u32).unwrap() else {
            panic!()
        };
        assert!(p.is_icmp_echo_request());
        assert_eq!(source_of(LinkType::Ethernet, &v), Some(p.src));
    }

    #[test]
    fn any_depth_of_vlan_tags_reaches_ip() {
        let mut ip = Vec::new();
        PacketBuilder::ipv4([198, 18, 0, 8], [198, 19, 0, 2], 64)
            .tcp(40000, 80, 1, 1024)
            .write(&mut ip, b"")
            .unwrap();
        for tags in [4usize, 6, 40] {
            let mut f = vec![2u8; 12];
            for i in 0..tags {
                // 802.1ad outer, 802.1Q inner, VLAN id = i.
                f.extend_from_slice(if i == 0 { &[0x88, 0xa8] } else { &[0x81, 0x00] });
                f.extend_from_slice(&(i as u16).to_be_bytes());
            }
            f.extend_from_slice(&[0x08, 0x00]);
            f.extend_from_slice(&ip);
            let Ok(Frame::Ip(p)) = parse(LinkType::Ethernet, &f, f.len() as u32) else {
                panic!("{tags} tags: not parsed as IP")
            };
            assert_eq!((p.proto, p.dst_port), (Proto::Tcp, 80));
            assert_eq!(source_of(LinkType::Ethernet, &f), Some(p.src));
        }
        // Tags that run off the end of the frame: malformed, not non-IP.
        let mut f = vec![2u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0, 1, 0x81, 0x00]);
        assert!(matches!(
            parse(LinkType::Ethernet, &f, f.len() as u32),
            Err(Malformed::Link)
        ));
    }

    #[test]
    fn ipv4_header_longer_than_its_total_length_is_malformed() {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([198, 18, 0, 9], [198, 19, 0, 2], 64)
            .udp(1, 53)
            .write(&mut v, b"q")
            .unwrap();
        // IHL 5 (20 bytes), total length 16.
        v[14 + 2..14 + 4].copy_from_slice(&16u16.to_be_bytes());
        assert_eq!(
            parse(LinkType::Ethernet, &v, v.len() as u32).err(),
            Some(Malformed::Ipv4)
        );
    }

    #[test]
    fn sll2_and_raw_ip() {
        let mut ip = Vec::new();
        PacketBuilder::ipv6([0x20; 16], [0x21; 16], 64)
            .udp(5353, 53)
            .write(&mut ip, b"q")
            .unwrap();
        let Frame::Ip(p) = parse(LinkType::RawIp, &ip, ip.len() as u32).unwrap() else {
            panic!()
        };
        assert_eq!(p.proto, Proto::Udp);
        let mut sll2 = vec![
            0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        sll2.extend_from_slice(&ip);
        let Frame::Ip(q) = parse(LinkType::LinuxSll2, &sll2, sll2.len() as u32).unwrap() else {
            panic!()
        };
        assert_eq!(q.src, p.src);
        assert_eq!(source_of(LinkType::LinuxSll2, &sll2), Some(p.src));
    }

    #[test]
    fn arp_is_non_ip() {
        let mut f = vec![0xff; 12];
        f.extend_from_slice(&[0x08, 0x06]);
        f.extend_from_slice(&[0; 28]);
        assert!(matches!(
            parse(LinkType::Ethernet, &f, 42),
            Ok(Frame::NonIp)
        ));
        assert_eq!(source_of(LinkType::Ethernet, &f), None);
    }
}
