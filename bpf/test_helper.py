#!/usr/bin/env python3
"""Helpers for bpf/test_run.sh: build test frames and xdp_md contexts, format
map keys/values as bpftool byte lists, parse bpftool JSON, and hold an AF_XDP
socket bound while a command runs.

Only the Python standard library is used (ctypes for bind(2) on AF_XDP).
"""
import argparse
import ctypes
import ctypes.util
import ipaddress
import json
import mmap
import os
import socket
import struct
import subprocess
import sys
import time

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD

DST_MAC = bytes.fromhex("020000000002")
SRC_MAC = bytes.fromhex("020000000001")


def csum16(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def l2(ethertype: int, vlans) -> bytes:
    """Ethernet header; vlans is a list of (tpid, vid), outermost first."""
    hdr = DST_MAC + SRC_MAC
    for tpid, vid in vlans:
        hdr += struct.pack("!H", tpid) + struct.pack("!H", vid & 0x0FFF)
    return hdr + struct.pack("!H", ethertype)


def ipv4_udp(src: str, dst: str) -> bytes:
    payload = b"flowgate-xdp-test"
    udp = struct.pack("!HHHH", 40000, 53, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, 17, 0,
                     ipaddress.IPv4Address(src).packed,
                     ipaddress.IPv4Address(dst).packed)
    ip = ip[:10] + struct.pack("!H", csum16(ip)) + ip[12:]
    return ip + udp


def ipv6_udp(src: str, dst: str) -> bytes:
    payload = b"flowgate-xdp-test"
    udp = struct.pack("!HHHH", 40000, 53, 8 + len(payload), 0) + payload
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 64,
                     ipaddress.IPv6Address(src).packed,
                     ipaddress.IPv6Address(dst).packed)
    return ip + udp


def tcp_seg(flags: int) -> bytes:
    # sport 40000, dport 80, seq 1, ack 0, doff 5, flags, window 64240;
    # checksum left 0 (the program does not check it).
    return struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, flags, 64240, 0, 0)


def ipv4_tcp(src: str, dst: str, flags: int, frag_off: int = 0) -> bytes:
    tcp = tcp_seg(flags)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, frag_off, 64, 6, 0,
                     ipaddress.IPv4Address(src).packed,
                     ipaddress.IPv4Address(dst).packed)
    ip = ip[:10] + struct.pack("!H", csum16(ip)) + ip[12:]
    return ip + tcp


def ipv6_tcp(src: str, dst: str, flags: int) -> bytes:
    tcp = tcp_seg(flags)
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64,
                     ipaddress.IPv6Address(src).packed,
                     ipaddress.IPv6Address(dst).packed)
    return ip + tcp


def arp_request(sender_ip: str, target_ip: str) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, SRC_MAC,
                       ipaddress.IPv4Address(sender_ip).packed, b"\0" * 6,
                       ipaddress.IPv4Address(target_ip).packed)


def parse_vlans(specs):
    out = []
    for s in specs or []:
        tpid, vid = s.split(":")
        out.append((int(tpid, 0), int(vid, 0)))
    return out


def cmd_frame(a):
    vlans = parse_vlans(a.vlan)
    if a.kind == "ipv4":
        f = l2(ETH_P_IP, vlans) + ipv4_udp(a.src, a.dst or "198.19.0.1")
    elif a.kind == "ipv6":
        f = l2(ETH_P_IPV6, vlans) + ipv6_udp(a.src, a.dst or "2001:db8:ffff::1")
    elif a.kind == "tcp4":
        f = l2(ETH_P_IP, vlans) + ipv4_tcp(a.src, a.dst or "198.19.0.1",
                                           int(a.flags, 0), int(a.frag_off, 0))
    elif a.kind == "tcp6":
        f = l2(ETH_P_IPV6, vlans) + ipv6_tcp(a.src, a.dst or "2001:db8:ffff::1",
                                             int(a.flags, 0))
    elif a.kind == "arp":
        f = l2(ETH_P_ARP, vlans) + arp_request(a.src, a.dst or "198.19.0.1")
    elif a.kind == "raw":
        f = bytes(range(256))[: a.len]
    else:
        raise SystemExit("unknown frame kind " + a.kind)
    if a.pad_to and len(f) < a.pad_to:
        f += b"\0" * (a.pad_to - len(f))
    if a.truncate is not None:
        f = f[: a.truncate]
    with open(a.out, "wb") as fh:
        fh.write(f)


def cmd_ctx(a):
    # struct xdp_md { data, data_end, data_meta, ingress_ifindex,
    #                 rx_queue_index, egress_ifindex } (all __u32)
    with open(a.out, "wb") as fh:
        fh.write(struct.pack("=6I", 0, a.data_end, 0, a.ifindex, a.queue, 0))


def bytelist(b: bytes) -> str:
    return " ".join(str(x) for x in b)


def cmd_bytes(a):
    if a.type == "u32":
        b = struct.pack("=I", int(a.value, 0))
    elif a.type == "u64":
        b = struct.pack("=Q", int(a.value, 0))
    elif a.type == "ip4":
        b = ipaddress.IPv4Address(a.value).packed
    elif a.type == "ip6":
        b = ipaddress.IPv6Address(a.value).packed
    elif a.type == "guard":
        # struct fg_guard: until, window, dropped, passed_total (u64),
        # limit, passed (u32). VALUE is UNTIL:LIMIT.
        until, limit = a.value.split(":")
        b = struct.pack("=QQQQII", int(until), 0, 0, 0, int(limit), 0)
    elif a.type == "seen":
        # struct fg_syn_key: src, dst as 16 bytes (IPv4 mapped). VALUE is SRC>DST.
        def v6(x):
            ip = ipaddress.ip_address(x)
            if ip.version == 4:
                return b"\0" * 10 + b"\xff\xff" + ip.packed
            return ip.packed
        src, dst = a.value.split(">")
        b = v6(src) + v6(dst)
    elif a.type == "lpm4":
        n = ipaddress.IPv4Network(a.value, strict=False)
        b = struct.pack("=I", n.prefixlen) + n.network_address.packed
    elif a.type == "lpm6":
        n = ipaddress.IPv6Network(a.value, strict=False)
        b = struct.pack("=I", n.prefixlen) + n.network_address.packed
    else:
        raise SystemExit("unknown byte type " + a.type)
    print(bytelist(b))


def cmd_now(a):
    # Same clock as bpf_ktime_get_ns().
    ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    print(ns + int(float(a.offset_s) * 1e9))


def cmd_retval(a):
    d = json.load(sys.stdin)
    if "retval" not in d:
        print("ERR:" + d.get("error", "no retval"))
        return
    print(d["retval"])


def _percpu_total(entry) -> int:
    vals = entry["formatted"]["values"] if "formatted" in entry else entry["values"]
    total = 0
    for v in vals:
        x = v["value"]
        if isinstance(x, list):  # raw bytes ["0x01", ...], native endian
            x = int.from_bytes(bytes(int(c, 16) for c in x), sys.byteorder)
        total += int(x)
    return total


def _key_index(entry) -> int:
    if "formatted" in entry:
        return int(entry["formatted"]["key"])
    return int.from_bytes(bytes(int(c, 16) for c in entry["key"]), sys.byteorder)


def cmd_percpu_sum(a):
    """stdin: `bpftool -j map lookup` of one per-CPU entry -> sum over CPUs."""
    print(_percpu_total(json.load(sys.stdin)))


def cmd_percpu_all(a):
    """stdin: `bpftool -j map dump` of a per-CPU array -> per-index sums,
    space separated, index order."""
    d = json.load(sys.stdin)
    sums = {}
    for e in d:
        sums[_key_index(e)] = _percpu_total(e)
    print(" ".join(str(sums.get(i, 0)) for i in range(max(sums) + 1 if sums else 0)))


# ---- AF_XDP ----------------------------------------------------------------

AF_XDP = 44
SOL_XDP = 283
XDP_RX_RING = 2
XDP_UMEM_REG = 4
XDP_UMEM_FILL_RING = 5
XDP_UMEM_COMPLETION_RING = 6
XDP_COPY = 1 << 1
FRAME = 2048
NFRAMES = 64


def cmd_xsk_hold(a):
    """Create an AF_XDP socket (copy mode) bound to IFNAME/QUEUE, store it in
    the pinned XSKMAP at KEY (via bpftool, which inherits the fd), run the
    command, then close the socket (which removes it from the map)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    ifindex = socket.if_nametoindex(a.ifname)
    s = socket.socket(AF_XDP, socket.SOCK_RAW, 0)
    umem = mmap.mmap(-1, FRAME * NFRAMES)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(umem))
    # struct xdp_umem_reg (v1 layout): addr, len, chunk_size, headroom
    s.setsockopt(SOL_XDP, XDP_UMEM_REG, struct.pack("=QQII", addr, FRAME * NFRAMES, FRAME, 0))
    for opt in (XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_RX_RING):
        s.setsockopt(SOL_XDP, opt, struct.pack("=i", NFRAMES))
    # struct sockaddr_xdp { u16 family, u16 flags, u32 ifindex, u32 queue_id, u32 shared_umem_fd }
    sa = struct.pack("=HHIII", AF_XDP, XDP_COPY, ifindex, a.queue, 0)
    if libc.bind(s.fileno(), ctypes.c_char_p(sa), len(sa)) != 0:
        e = ctypes.get_errno()
        raise SystemExit("xsk bind(%s q%d): %s" % (a.ifname, a.queue, os.strerror(e)))
    fd = s.fileno()
    upd = ["bpftool", "map", "update", "pinned", a.map, "key"] + \
        [str(x) for x in struct.pack("=I", a.key)] + ["value"] + \
        [str(x) for x in struct.pack("=I", fd)]
    subprocess.run(upd, check=True, pass_fds=(fd,))
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    rc = subprocess.run(cmd).returncode
    s.close()
    del umem
    sys.exit(rc)


def main():
    p = argparse.ArgumentParser()
    sp = p.add_subparsers(dest="cmd_name", required=True)

    f = sp.add_parser("frame")
    f.add_argument("kind", choices=["ipv4", "ipv6", "tcp4", "tcp6", "arp", "raw"])
    f.add_argument("--flags", default="0x02", help="TCP flags byte (tcp4/tcp6)")
    f.add_argument("--frag-off", default="0", help="IPv4 flags+fragment offset field (tcp4)")
    f.add_argument("out")
    f.add_argument("--src", default="198.18.0.1")
    f.add_argument("--dst")
    f.add_argument("--vlan", action="append", help="TPID:VID, outermost first")
    f.add_argument("--truncate", type=int)
    f.add_argument("--pad-to", type=int, default=60)
    f.add_argument("--len", type=int, default=60)
    f.set_defaults(fn=cmd_frame)

    c = sp.add_parser("ctx")
    c.add_argument("out")
    c.add_argument("--data-end", type=int, required=True)
    c.add_argument("--ifindex", type=int, default=0)
    c.add_argument("--queue", type=int, default=0)
    c.set_defaults(fn=cmd_ctx)

    b = sp.add_parser("bytes")
    b.add_argument("type", choices=["u32", "u64", "ip4", "ip6", "lpm4", "lpm6", "guard", "seen"])
    b.add_argument("value")
    b.set_defaults(fn=cmd_bytes)

    n = sp.add_parser("now")
    n.add_argument("offset_s", nargs="?", default="0")
    n.set_defaults(fn=cmd_now)

    r = sp.add_parser("retval")
    r.set_defaults(fn=cmd_retval)

    s = sp.add_parser("percpu-sum")
    s.set_defaults(fn=cmd_percpu_sum)

    s = sp.add_parser("percpu-all")
    s.set_defaults(fn=cmd_percpu_all)

    x = sp.add_parser("xsk-hold")
    x.add_argument("--ifname", required=True)
    x.add_argument("--queue", type=int, required=True)
    x.add_argument("--map", required=True)
    x.add_argument("--key", type=int, required=True)
    x.add_argument("cmd", nargs=argparse.REMAINDER)
    x.set_defaults(fn=cmd_xsk_hold)

    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
