//! IP fragment reassembly (RFC 791, RFC 8200 §4.5), bounded, so a datagram
//! split into fragments — a TCP segment carrying an HTTP request included —
//! is inspected like any other.
//!
//! Fragments are forwarded as they come; the one that completes a datagram
//! gets the datagram's verdict, so dropping it leaves the receiver unable
//! to reassemble. What could let the receiver see something else than we
//! did is refused: a fragment overlapping received bytes with different
//! content, and any fragment of a datagram already completed (a late copy
//! could otherwise replace the part we dropped). Both are dropped as
//! malformed (`fragment`), as is a fragment past the table's bounds (as
//! Linux does past `ipfrag_high_thresh`). Sans-I/O: handed packet time.

use crate::packet::{l3_of, LinkType, Ts};
use std::collections::HashMap;
use std::net::IpAddr;

/// Bounds of one shard's fragment table.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Datagrams being reassembled (or remembered as complete) at once.
    pub max_datagrams: usize,
    /// Fragment bytes held at once.
    pub max_bytes: usize,
    /// How long a datagram waits for its fragments, and how long a
    /// complete one is remembered (packet time).
    pub timeout_ns: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_datagrams: 4096,
            max_bytes: 16 << 20,
            timeout_ns: 30 * crate::packet::NANOS_PER_SEC,
        }
    }
}

/// Identifies a datagram: addresses, protocol and IP identification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
}

/// One fragment's fields, read from a frame already known to be a
/// fragment.
#[derive(Debug)]
struct Piece<'a> {
    key: Key,
    /// The IP header to rebuild the datagram with (IPv4: the header with
    /// options; IPv6: the fixed header).
    header: &'a [u8],
    offset: usize,
    more: bool,
    data: &'a [u8],
}

/// Reads the fragment fields of an IPv4 fragment, or of an IPv6 one whose
/// Fragment header directly follows the fixed header (other IPv6 layouts
/// are not reassembled).
fn piece_of(link: LinkType, frame: &[u8]) -> Option<Piece<'_>> {
    let (_, l3) = l3_of(link, frame).ok()??;
    match l3.first()? >> 4 {
        4 => {
            let ihl = usize::from(l3.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*l3.get(2)?, *l3.get(3)?]));
            let end = if total == 0 {
                l3.len()
            } else {
                total.min(l3.len())
            };
            let flags = u16::from_be_bytes([*l3.get(6)?, *l3.get(7)?]);
            let ip = |i: usize| -> Option<[u8; 4]> { l3.get(i..i + 4)?.try_into().ok() };
            Some(Piece {
                key: Key {
                    src: IpAddr::from(ip(12)?),
                    dst: IpAddr::from(ip(16)?),
                    proto: *l3.get(9)?,
                    id: u32::from(u16::from_be_bytes([*l3.get(4)?, *l3.get(5)?])),
                },
                header: l3.get(..ihl)?,
                offset: usize::from(flags & 0x1fff) * 8,
                more: flags & 0x2000 != 0,
                data: l3.get(ihl..end)?,
            })
        }
        6 => {
            if *l3.get(6)? != 44 {
                return None;
            }
            let plen = usize::from(u16::from_be_bytes([*l3.get(4)?, *l3.get(5)?]));
            let end = (40 + plen).min(l3.len());
            let fh = l3.get(40..48)?;
            let off = u16::from_be_bytes([fh[2], fh[3]]);
            let ip = |i: usize| -> Option<[u8; 16]> { l3.get(i..i + 16)?.try_into().ok() };
            Some(Piece {
                key: Key {
                    src: IpAddr::from(ip(8)?),
                    dst: IpAddr::from(ip(24)?),
                    proto: fh[0],
                    id: u32::from_be_bytes([fh[4], fh[5], fh[6], fh[7]]),
                },
                header: l3.get(..40)?,
                offset: usize::from(off >> 3) * 8,
                more: off & 1 != 0,
                data: l3.get(48..end)?,
            })
        }
        _ => None,
    }
}

/// What one fragment did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not a fragment we reassemble (an IPv6 layout we do not follow):
    /// decide it as it is.
    Unsupported,
    /// Held until the datagram is complete; forward it.
    Held,
    /// It completed the datagram: here it is, as a raw IP packet.
    Complete(Vec<u8>),
    /// Refused (overlap with different bytes, late, past the bounds): drop
    /// it as malformed.
    Refused(&'static str),
}

/// A datagram being reassembled, or remembered as done.
#[derive(Debug)]
enum Entry {
    Pending {
        header: Vec<u8>,
        data: Vec<u8>,
        /// Received byte ranges, sorted, merged.
        have: Vec<(usize, usize)>,
        /// The datagram's length, once the last fragment came.
        total: Option<usize>,
        since: Ts,
    },
    Done {
        since: Ts,
    },
}

/// One shard's fragment table.
#[derive(Debug, Default)]
pub struct Reassembler {
    map: HashMap<Key, Entry>,
    bytes: usize,
    limits: Limits,
    /// Datagrams reassembled.
    pub completed: u64,
    /// Datagrams dropped incomplete after the timeout.
    pub timed_out: u64,
}

/// Largest datagram payload (IPv4 total length is 16 bits).
const MAX_DATAGRAM: usize = 65_535;

impl Reassembler {
    /// An empty table with these bounds.
    pub fn new(limits: Limits) -> Reassembler {
        Reassembler {
            limits,
            ..Default::default()
        }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes one fragment (`frame` as captured, already parsed as a
    /// fragment).
    pub fn add(&mut self, link: LinkType, frame: &[u8], now: Ts) -> Outcome {
        let Some(p) = piece_of(link, frame) else {
            return Outcome::Unsupported;
        };
        let end = p.offset + p.data.len();
        if end > MAX_DATAGRAM {
            return Outcome::Refused("past 65535 bytes");
        }
        if !self.map.contains_key(&p.key) {
            if self.map.len() >= self.limits.max_datagrams {
                self.expire(now);
            }
            if self.map.len() >= self.limits.max_datagrams {
                return Outcome::Refused("fragment table full");
            }
            self.map.insert(
                p.key,
                Entry::Pending {
                    header: Vec::new(),
                    data: Vec::new(),
                    have: Vec::new(),
                    total: None,
                    since: now,
                },
            );
        }
        let Some(entry) = self.map.get_mut(&p.key) else {
            return Outcome::Refused("fragment table full");
        };
        let Entry::Pending {
            header,
            data,
            have,
            total,
            ..
        } = entry
        else {
            return Outcome::Refused("fragment of a datagram already complete");
        };
        // Overlaps must repeat what we have byte for byte.
        for &(a, b) in have.iter() {
            let (lo, hi) = (a.max(p.offset), b.min(end));
            if lo < hi && data[lo..hi] != p.data[lo - p.offset..hi - p.offset] {
                *entry = Entry::Done { since: now };
                return Outcome::Refused("overlap with different bytes");
            }
        }
        let last_conflict = match (*total, p.more) {
            (Some(t), false) => t != end,
            (Some(t), true) => end > t,
            (None, false) => have.iter().any(|&(_, b)| b > end),
            (None, true) => false,
        };
        if last_conflict {
            *entry = Entry::Done { since: now };
            return Outcome::Refused("fragments disagree on the datagram's length");
        }
        let grow = end.saturating_sub(data.len());
        if self.bytes + grow > self.limits.max_bytes {
            return Outcome::Refused("fragment table bytes exhausted");
        }
        self.bytes += grow;
        if data.len() < end {
            data.resize(end, 0);
        }
        data[p.offset..end].copy_from_slice(p.data);
        if p.offset == 0 {
            header.clear();
            header.extend_from_slice(p.header);
        }
        if !p.more {
            *total = Some(end);
        }
        have.push((p.offset, end));
        have.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(have.len());
        for &(a, b) in have.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *have = merged;
        let complete =
            matches!(*total, Some(t) if have.as_slice() == [(0, t)]) && !header.is_empty();
        if !complete {
            return Outcome::Held;
        }
        let whole = rebuild(header, data, p.key.proto);
        self.bytes -= data.len();
        *entry = Entry::Done { since: now };
        self.completed += 1;
        Outcome::Complete(whole)
    }

    /// Forgets datagrams older than the timeout (pending ones count as
    /// timed out).
    pub fn expire(&mut self, now: Ts) {
        let timeout = self.limits.timeout_ns;
        let mut freed = 0;
        let mut timed_out = 0;
        self.map.retain(|_, e| {
            let (since, held) = match e {
                Entry::Pending { since, data, .. } => (*since, Some(data.len())),
                Entry::Done { since } => (*since, None),
            };
            let keep = now.saturating_sub(since) < timeout;
            if !keep {
                if let Some(n) = held {
                    freed += n;
                    timed_out += 1;
                }
            }
            keep
        });
        self.bytes -= freed.min(self.bytes);
        self.timed_out += timed_out;
    }
}

/// The datagram as one unfragmented IP packet: the first fragment's header
/// with the lengths set and the fragment fields cleared.
fn rebuild(header: &[u8], data: &[u8], proto: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + data.len());
    out.extend_from_slice(header);
    if header.first().map(|b| b >> 4) == Some(4) {
        let total = (header.len() + data.len()).min(usize::from(u16::MAX)) as u16;
        out[2..4].copy_from_slice(&total.to_be_bytes());
        out[6..8].copy_from_slice(&0u16.to_be_bytes());
        out[10..12].copy_from_slice(&[0, 0]);
        let sum = checksum(&out[..header.len()]);
        out[10..12].copy_from_slice(&sum.to_be_bytes());
    } else {
        let plen = data.len().min(usize::from(u16::MAX)) as u16;
        out[4..6].copy_from_slice(&plen.to_be_bytes());
        out[6] = proto;
    }
    out.extend_from_slice(data);
    out
}

/// The Internet checksum of an IPv4 header.
fn checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 fragment (raw IP) of a datagram with id 7.
    fn v4(offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
        let mut h = vec![
            0x45, 0, 0, 0, 0, 7, 0, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 19, 0, 80,
        ];
        let total = (20 + data.len()) as u16;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        let fl = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&fl.to_be_bytes());
        h.extend_from_slice(data);
        h
    }

    #[test]
    fn reassembles_in_any_order_and_refuses_what_could_differ() {
        let payload: Vec<u8> = (0..48u8).collect();
        let frags = [
            v4(0, true, &payload[..16]),
            v4(16, true, &payload[16..32]),
            v4(32, false, &payload[32..]),
        ];
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let mut r = Reassembler::new(Limits::default());
            let mut got = None;
            for (n, &i) in order.iter().enumerate() {
                match r.add(LinkType::RawIp, &frags[i], 0) {
                    Outcome::Held => assert!(n < 2),
                    Outcome::Complete(w) => got = Some(w),
                    o => panic!("{o:?}"),
                }
            }
            let w = got.expect("complete");
            assert_eq!(&w[20..], &payload[..]);
            assert_eq!(u16::from_be_bytes([w[2], w[3]]), 68);
            assert_eq!(u16::from_be_bytes([w[6], w[7]]), 0, "no fragment fields");
            assert_eq!(checksum(&w[..20]), 0, "header checksum valid");
            assert_eq!(r.bytes(), 0);
            // A late copy of a fragment of the completed datagram.
            assert!(matches!(
                r.add(LinkType::RawIp, &frags[1], 1),
                Outcome::Refused(_)
            ));
        }
        // An overlap with different bytes poisons the datagram.
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.add(LinkType::RawIp, &frags[0], 0), Outcome::Held);
        let evil = v4(8, true, &[0xee; 16]);
        assert!(matches!(
            r.add(LinkType::RawIp, &evil, 0),
            Outcome::Refused(_)
        ));
        assert!(matches!(
            r.add(LinkType::RawIp, &frags[2], 0),
            Outcome::Refused(_)
        ));
        // An identical overlap is fine.
        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.add(LinkType::RawIp, &frags[0], 0), Outcome::Held);
        assert_eq!(
            r.add(LinkType::RawIp, &v4(8, true, &payload[8..24]), 0),
            Outcome::Held
        );
    }

    #[test]
    fn bounded_in_datagrams_bytes_and_time() {
        let lim = Limits {
            max_datagrams: 2,
            max_bytes: 64,
            timeout_ns: 10,
        };
        let mut r = Reassembler::new(lim);
        let mut f = v4(0, true, &[1; 40]);
        assert_eq!(r.add(LinkType::RawIp, &f, 0), Outcome::Held);
        f[5] = 8; // another id
        assert_eq!(
            r.add(LinkType::RawIp, &f, 0),
            Outcome::Refused("fragment table bytes exhausted")
        );
        f[5] = 9;
        assert!(
            matches!(r.add(LinkType::RawIp, &f, 0), Outcome::Refused(_)),
            "table full"
        );
        // After the timeout the first datagram is gone and room is back.
        assert_eq!(r.add(LinkType::RawIp, &f, 20), Outcome::Held);
        assert_eq!(r.timed_out, 2);
        assert_eq!(r.bytes(), 40);
    }
}
