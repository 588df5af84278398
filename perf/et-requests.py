#!/usr/bin/env python3
"""Writes a PCAP of HTTP requests built from Suricata rules, so the rules
have traffic that triggers them (a parity test between flowgate and
Suricata; see perf/et-open.sh).

For each sampled `alert http` rule, the request is assembled from the rule's
contents: `http.method` gives the method, `http.uri` contents are
concatenated into the target, `http.user_agent`/`http.cookie`/`http.host`/
`http.header` contents become header fields and `http.request_body`
contents the body. pcre, distance and negation are not solved for: some
requests will not trigger their rule, which still tests that neither side
alerts. Every request is its own TCP session (handshake, request, 200
response, FIN) from its own client address to 10.0.0.80:80.

With MUTATE=1 in the environment, each rule also gets a near-miss
request (its uri contents swapped in case, reordered, spaced apart,
percent-encoded, or its method lowercased), to test that neither side
loosens case, order, distance or normalization.

usage: et-requests.py OUT.pcap N SEED RULES_FILE...
"""
import os
import random
import re
import struct
import sys


def options(rule):
    body = rule[rule.index("(") + 1 : rule.rindex(")")]
    out, cur, esc = [], "", False
    for ch in body:
        if esc:
            cur += ch
            esc = False
            continue
        if ch == "\\":
            esc = True
            cur += ch
            continue
        if ch == ";":
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    kv = []
    for o in out:
        k, _, v = o.partition(":")
        kv.append((k.strip(), v.strip()))
    return kv


def content_bytes(v):
    v = v.strip()
    if v.startswith("!"):
        return None
    v = v.strip('"')
    v = re.sub(r"\\(.)", r"\1", v)
    out = b""
    for i, part in enumerate(v.split("|")):
        if i % 2:
            out += bytes.fromhex(part.replace(" ", ""))
        else:
            out += part.encode("latin-1", "replace")
    return out


def uri_escape(b):
    out = b""
    for c in b:
        if c <= 0x20 or c >= 0x7F or c in b"#":
            out += b"%%%02X" % c
        else:
            out += bytes([c])
    return out


def mutate(parts, rnd):
    parts = {k: list(v) for k, v in parts.items()}
    uri = parts.get("http.uri", [])
    kind = rnd.choice(["case", "order", "spread", "encode", "method"])
    if kind == "case" and uri:
        parts["http.uri"] = [u.swapcase() for u in uri]
    elif kind == "order" and len(uri) > 1:
        parts["http.uri"] = uri[::-1]
    elif kind == "spread" and uri:
        parts["http.uri"] = [u + b"zz" * 40 for u in uri]
    elif kind == "encode" and uri:
        parts["http.uri"] = [b"".join(b"%%%02x" % c if c not in b"/?" else bytes([c]) for c in u) for u in uri]
    else:
        m = parts.get("http.method", [b"GET"])
        parts["http.method"] = [m[0].lower()]
    return parts


def request(rule, rnd=None):
    sticky = None
    parts = {}
    for k, v in options(rule):
        if k.startswith("http.") or k in ("file.data", "file_data"):
            sticky = k
        elif k == "content":
            b = content_bytes(v)
            if b is not None:
                parts.setdefault(sticky, []).append(b)
        elif k.startswith("http_") and k != "http_method":
            pass
    if rnd is not None:
        parts = mutate(parts, rnd)
    method = (parts.get("http.method") or [b"GET"])[0]
    uri = b"".join(parts.get("http.uri", []) + parts.get("http.uri.raw", []))
    if not uri.startswith(b"/"):
        uri = b"/" + uri
    host = b"".join(parts.get("http.host", [])) or b"www.example.test"
    lines = [method + b" " + uri_escape(uri) + b" HTTP/1.1", b"Host: " + host]
    ua = b"".join(parts.get("http.user_agent", []))
    lines.append(b"User-Agent: " + (ua or b"Mozilla/5.0"))
    if parts.get("http.cookie"):
        lines.append(b"Cookie: " + b"".join(parts["http.cookie"]))
    for h in parts.get("http.header", []):
        h = h.strip(b"\r\n")
        lines.append(h if b":" in h else b"X-Gen: " + h)
    body = b"".join(parts.get("http.request_body", []))
    if body or method == b"POST":
        lines.append(b"Content-Type: application/x-www-form-urlencoded")
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def eth_ip_tcp(src, dst, sport, dport, flags, seq, ack, payload):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0, src, dst
    )
    s = sum(struct.unpack("!10H", ip))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    ip = ip[:10] + struct.pack("!H", ~s & 0xFFFF) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + tcp + payload


def main():
    out, n, seed, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    rules = []
    for f in files:
        for line in open(f, encoding="utf-8", errors="replace"):
            if line.startswith("alert http") and "to_server" in line:
                rules.append(line)
    random.seed(seed)
    random.shuffle(rules)
    rules = rules[:n]
    frames = []
    t = 1_700_000_000.0
    srv = bytes([10, 0, 0, 80])
    S, A, P, F = 0x02, 0x10, 0x08, 0x01
    rnd = random.Random(seed + 1)
    reqs = []
    for r in rules:
        try:
            reqs.append(request(r))
        except ValueError:
            continue  # not a well-formed rule
        if os.environ.get("MUTATE") == "1":
            reqs.append(request(r, rnd))
    for i, req in enumerate(reqs):
        cli = bytes([172, 16 + (i >> 16) % 16, (i >> 8) & 0xFF, i & 0xFF])
        if i >= 1 << 20:
            break
        sport = 20000 + i % 40000
        resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        c, s = 1000, 5000
        seq = [
            (cli, srv, sport, 80, S, c, 0, b""),
            (srv, cli, 80, sport, S | A, s, c + 1, b""),
            (cli, srv, sport, 80, A, c + 1, s + 1, b""),
            (cli, srv, sport, 80, P | A, c + 1, s + 1, req),
            (srv, cli, 80, sport, A, s + 1, c + 1 + len(req), b""),
            (srv, cli, 80, sport, P | A, s + 1, c + 1 + len(req), resp),
            (cli, srv, sport, 80, F | A, c + 1 + len(req), s + 1 + len(resp), b""),
            (srv, cli, 80, sport, F | A, s + 1 + len(resp), c + 2 + len(req), b""),
            (cli, srv, sport, 80, A, c + 2 + len(req), s + 2 + len(resp), b""),
        ]
        for pkt in seq:
            t += 0.0005
            frames.append((t, eth_ip_tcp(*pkt)))
        t += 0.05
    with open(out, "wb") as w:
        w.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for ts, f in frames:
            sec = int(ts)
            w.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(f), len(f)))
            w.write(f)


if __name__ == "__main__":
    main()
