#!/usr/bin/env python3
"""Rewrites every TCP ACK number in a PCAP to acknowledge exactly what the
other side has sent so far (its last sequence number + payload + SYN/FIN),
in both directions. flowgate-pcapgen's synthetic sessions carry arbitrary
ACK numbers, and Suricata's stream engine then drops their data (see
"ET Open web rules vs Suricata 7" in perf/RESULTS.md); with consistent
ACKs it follows them. Packets are otherwise unchanged (TCP checksums are
not recomputed: run Suricata with -k none). Streams; works on large files.

usage: pcap-consistent-acks.py IN.pcap OUT.pcap (Ethernet, IPv4, classic PCAP)
"""
import struct, sys

src, dst = open(sys.argv[1], "rb"), open(sys.argv[2], "wb")
gh = src.read(24)
magic, = struct.unpack("<I", gh[:4])
assert magic in (0xA1B2C3D4, 0xA1B23C4D), hex(magic)
link, = struct.unpack("<I", gh[20:24])
assert link == 1, "Ethernet only"
dst.write(gh)
nxt = {}  # (src, sport, dst, dport) -> next sequence number that side sends
rec = struct.Struct("<IIII")
while True:
    h = src.read(16)
    if len(h) < 16:
        break
    ts1, ts2, cl, ol = rec.unpack(h)
    p = bytearray(src.read(cl))
    if p[12:14] == b"\x08\x00" and p[23] == 6:
        ihl = (p[14] & 15) * 4
        t = 14 + ihl
        tot, = struct.unpack("!H", p[16:18])
        a, b = bytes(p[26:30]), bytes(p[30:34])
        sp, dp, seq = struct.unpack("!HHI", p[t : t + 8])
        fl = p[t + 13]
        doff = (p[t + 12] >> 4) * 4
        plen = tot - ihl - doff
        nxt[(a, sp, b, dp)] = (seq + plen + (fl & 1) + ((fl >> 1) & 1)) & 0xFFFFFFFF
        peer = nxt.get((b, dp, a, sp))
        if fl & 0x10 and peer is not None:
            p[t + 8 : t + 12] = struct.pack("!I", peer)
        if fl & 0x04:  # RST: forget the flow (a SYN starts it afresh anyway)
            nxt.pop((a, sp, b, dp), None)
    dst.write(rec.pack(ts1, ts2, len(p), ol) + p)
dst.close()
