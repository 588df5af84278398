#!/usr/bin/env python3
"""Honest detection evaluation of flowgate's SQL-injection inspection.

Usage:
  perf/sqli-eval.py --flowgate BIN --data tune.jsonl [--data heldout.jsonl]
                    [--out DIR] [--placements get,form,json,cookie]
                    [--work DIR] [--keep-pcap] [--max-conns N]

Input: JSONL records {"id", "source", "label": "attack"|"benign",
"trivial": bool, "kind": "value"|"url"|"prose", "payload": str}, one file
per half (the corpus itself lives outside this repo, e.g. /work/eval/data;
it is third-party data and must not be copied here).

For every record and placement the script builds one realistic HTTP/1.1
request and puts it on its own TCP connection (3-way handshake, request in
MSS-sized segments, server ACK, FIN exchange) from a distinct source address
in 198.18.0.0/15 to 198.19.255.80:80, writes all connections of a half into a
classic PCAP (Ethernet/IPv4/TCP, correct lengths and checksums), runs

  BIN analyze PCAP --mode detect --alerts ALERTS.jsonl --shards 1
      --set detect.<each behavioural detector>.enabled=false

so that only payload inspection can alert, maps every EVE alert back to its
request by (src_ip, src_port) and prints, per half x source x placement:
attack detection rate on NON-TRIVIAL attack items, the trivial ones apart,
benign false-positive rate, totals, and which rule IDs fired how often.

Placements ("value" and "prose" items are a parameter value):
  get     GET /search?q=<form-urlencoded>&page=1
  form    POST /search, application/x-www-form-urlencoded body q=...&page=1
  json    POST /api/search, application/json body {"q": <json string>, "page": 1}
  cookie  GET /account with  Cookie: sid=<hex>; q=<percent-encoded>
"url" items (crawled request-targets) are used as the GET request-target
as-is (only bytes not legal in a request-target are percent-encoded) and, for
"form", their query string is the POST body; they have no json/cookie form.

Held-out discipline: per-item miss/FP lists are written to --out only for a
half whose file name starts with "tune". For any other half (held-out) only
aggregate figures are printed/written; nobody may tune on held-out items.
"""
import argparse
import collections
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

PLACEMENTS = ("get", "form", "json", "cookie")
DST_IP = "198.19.255.80"
DST_PORT = 80
SRC_NET = (198 << 24) | (18 << 16)       # 198.18.0.0/15
SRC_SPACE = (1 << 17) - 2                # 198.18.0.1 .. 198.19.255.254
MSS = 1448
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
HOST = "shop.example.com"


# --------------------------------------------------------------------------
# HTTP request construction
# --------------------------------------------------------------------------
def enc(s):
    """Text -> UTF-8 bytes (lone surrogates from odd inputs replaced)."""
    return s.encode("utf-8", "replace")


# Bytes legal in an HTTP request-target (RFC 3986 unreserved + reserved + '%').
_TARGET_OK = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                 b"-._~:/?#[]@!$&'()*+,;=%")


def target_escape(raw):
    """Percent-encode only the bytes that cannot appear in a request-target."""
    out = bytearray()
    for b in raw:
        if b in _TARGET_OK:
            out.append(b)
        else:
            out += b"%%%02X" % b
    return bytes(out)


def common_headers(extra=b""):
    return (b"Host: " + enc(HOST) + b"\r\nUser-Agent: " + enc(UA) +
            b"\r\nAccept: text/html,application/json;q=0.9,*/*;q=0.8\r\n"
            b"Accept-Language: en-US,en;q=0.5\r\n" + extra + b"Connection: close\r\n")


def build_request(rec, placement, idx):
    """One HTTP/1.1 request (bytes) for a record in a placement, or None if
    the placement does not apply to this kind of item."""
    p = rec["payload"]
    if rec["kind"] == "url":
        tgt = enc(p)
        if not tgt.startswith(b"/"):
            tgt = b"/" + tgt
        tgt = target_escape(tgt)
        if placement == "get":
            return b"GET " + tgt + b" HTTP/1.1\r\n" + common_headers() + b"\r\n"
        if placement == "form":
            path, _, qs = tgt.partition(b"?")
            return (b"POST " + path + b" HTTP/1.1\r\n" +
                    common_headers(b"Content-Type: application/x-www-form-urlencoded\r\n"
                                   b"Content-Length: %d\r\n" % len(qs)) + b"\r\n" + qs)
        return None
    # "value" and "prose": the payload is the value of parameter q
    if placement == "get":
        q = enc(urllib.parse.quote_plus(enc(p), safe=""))
        return b"GET /search?q=" + q + b"&page=1 HTTP/1.1\r\n" + common_headers() + b"\r\n"
    if placement == "form":
        body = b"q=" + enc(urllib.parse.quote_plus(enc(p), safe="")) + b"&page=1"
        return (b"POST /search HTTP/1.1\r\n" +
                common_headers(b"Content-Type: application/x-www-form-urlencoded\r\n"
                               b"Content-Length: %d\r\n" % len(body)) + b"\r\n" + body)
    if placement == "json":
        body = enc(json.dumps({"q": p, "page": 1}, ensure_ascii=False))
        return (b"POST /api/search HTTP/1.1\r\n" +
                common_headers(b"Content-Type: application/json\r\n"
                               b"Content-Length: %d\r\n" % len(body)) + b"\r\n" + body)
    if placement == "cookie":
        sid = hashlib.sha1(b"%d" % idx).hexdigest()[:24].encode()
        q = enc(urllib.parse.quote(enc(p), safe=""))
        return (b"GET /account HTTP/1.1\r\n" +
                common_headers(b"Cookie: sid=" + sid + b"; q=" + q + b"\r\n") + b"\r\n")
    raise ValueError(placement)


# --------------------------------------------------------------------------
# PCAP writing (classic libpcap, microsecond timestamps, Ethernet link type)
# --------------------------------------------------------------------------
def csum(data):
    """Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip4(s):
    return struct.unpack("!I", bytes(int(x) for x in s.split(".")))[0]


MAC_CLIENT = bytes.fromhex("020000000001")
MAC_SERVER = bytes.fromhex("020000000002")
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class PcapWriter:
    def __init__(self, path):
        self.f = open(path, "wb", buffering=1 << 20)
        # magic, v2.4, thiszone, sigfigs, snaplen, linktype 1 (Ethernet)
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self.packets = 0

    def tcp(self, ts_us, src, sport, dst, dport, seq, ack, flags, payload=b"", ipid=0):
        """One Ethernet/IPv4/TCP packet with correct lengths and checksums."""
        opts = b""
        if flags & SYN:   # MSS option on SYN and SYN/ACK, like a real stack
            opts = struct.pack("!BBH", 2, 4, 1460)
        doff = (20 + len(opts)) // 4
        win = 64240
        tcph = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                           doff << 4, flags, win, 0, 0) + opts
        seg = tcph + payload
        pseudo = struct.pack("!IIBBH", src, dst, 0, 6, len(seg))
        c = csum(pseudo + seg)
        seg = seg[:16] + struct.pack("!H", c) + seg[18:]
        total = 20 + len(seg)
        iph = struct.pack("!BBHHHBBHII", 0x45, 0, total, ipid & 0xFFFF, 0x4000, 64, 6, 0, src, dst)
        iph = iph[:10] + struct.pack("!H", csum(iph)) + iph[12:]
        if src == self.server_ip:
            eth = MAC_CLIENT + MAC_SERVER + b"\x08\x00"
        else:
            eth = MAC_SERVER + MAC_CLIENT + b"\x08\x00"
        frame = eth + iph + seg
        self.f.write(struct.pack("<IIII", ts_us // 1_000_000, ts_us % 1_000_000, len(frame), len(frame)))
        self.f.write(frame)
        self.packets += 1

    def close(self):
        self.f.close()


def src_endpoint(i):
    """Connection i -> (src_ip int, src_port). Distinct addresses in
    198.18.0.0/15; after 131072 connections the addresses wrap around and
    the source-port band moves, so (ip, port) stays unique."""
    lap, k = divmod(i, SRC_SPACE)
    ip = SRC_NET + 1 + k
    port = 10000 + lap * 3000 + (i % 3000)
    if port > 65535:
        raise SystemExit("too many connections for unique (src_ip, src_port)")
    return ip, port


def write_connection(w, i, ts_us, request):
    """Handshake, request, server ACK, FIN exchange. Returns time used (us)."""
    cip, cport = src_endpoint(i)
    sip = w.server_ip
    c_isn = (i * 2654435761) & 0xFFFFFFFF
    s_isn = (i * 40503 + 12345) & 0xFFFFFFFF
    t = ts_us
    w.tcp(t, cip, cport, sip, DST_PORT, c_isn, 0, SYN, ipid=1); t += 40
    w.tcp(t, sip, DST_PORT, cip, cport, s_isn, c_isn + 1, SYN | ACK, ipid=0); t += 40
    w.tcp(t, cip, cport, sip, DST_PORT, c_isn + 1, s_isn + 1, ACK, ipid=2); t += 20
    seq = c_isn + 1
    n = 3
    for off in range(0, len(request), MSS):
        chunk = request[off:off + MSS]
        last = off + MSS >= len(request)
        w.tcp(t, cip, cport, sip, DST_PORT, seq, s_isn + 1, ACK | (PSH if last else 0), chunk, ipid=n)
        seq += len(chunk); n += 1; t += 20
    w.tcp(t, sip, DST_PORT, cip, cport, s_isn + 1, seq, ACK, ipid=1); t += 40
    w.tcp(t, cip, cport, sip, DST_PORT, seq, s_isn + 1, FIN | ACK, ipid=n); t += 40
    w.tcp(t, sip, DST_PORT, cip, cport, s_isn + 1, seq + 1, FIN | ACK, ipid=2); t += 40
    w.tcp(t, cip, cport, sip, DST_PORT, seq + 1, s_isn + 2, ACK, ipid=n + 1)
    return cip, cport


# --------------------------------------------------------------------------
# flowgate
# --------------------------------------------------------------------------
def behavioural_detectors(binary):
    """Names of [detect.<name>] sections with an `enabled` key, from the
    binary's own effective configuration (so new detectors are not missed)."""
    out = subprocess.run([binary, "config", "show"], capture_output=True, text=True, check=True).stdout
    names, cur = [], None
    for line in out.splitlines():
        m = re.match(r"^\[detect\.([A-Za-z0-9_]+)\]", line)
        if m:
            cur = m.group(1)
            continue
        if line.startswith("["):
            cur = None
        elif cur and re.match(r"^enabled\s*=", line) and cur not in names:
            names.append(cur)
    return names


def rule_names(binary):
    out = subprocess.run([binary, "rules", "list"], capture_output=True, text=True).stdout
    names = {}
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0].isdigit():
            names[int(parts[0])] = parts[1]
    return names


def run_flowgate(binary, pcap, alerts, detectors):
    if os.path.exists(alerts):
        os.unlink(alerts)     # --alerts appends
    cmd = [binary, "analyze", pcap, "--mode", "detect", "--alerts", alerts, "--shards", "1",
           "--summary", "json", "--progress", "never", "--log", "warn"]
    for d in detectors:
        cmd += ["--set", f"detect.{d}.enabled=false"]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"flowgate failed ({r.returncode}): {' '.join(cmd)}")
    try:
        summary = json.loads(r.stdout)
    except ValueError:
        summary = {}
    return cmd, time.time() - t0, summary


# --------------------------------------------------------------------------
# evaluation of one half
# --------------------------------------------------------------------------
def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def pct(a, b):
    return f"{100.0 * a / b:6.2f}%" if b else "     - "


def evaluate(args, path, detectors, rnames):
    half = os.path.splitext(os.path.basename(path))[0]
    per_item = half.startswith("tune") and "heldout" not in half
    recs = load(path)
    work = args.work or tempfile.mkdtemp(prefix="sqli-eval-")
    os.makedirs(work, exist_ok=True)

    # 1. build the PCAP(s): one connection per (record, placement)
    conns = []          # conn index -> (record index, placement)
    t0 = time.time()
    chunks, w = [], None
    ts = 1_704_067_200_000_000          # 2024-01-01T00:00:00Z; 10 ms between connections so closed flows age out (flow_timeout 2m) before the flow table fills
    i = 0
    for ri, rec in enumerate(recs):
        for pl in args.placements:
            req = build_request(rec, pl, i)
            if req is None:
                continue
            if w is None or w.packets >= args.max_packets:
                if w:
                    w.close()
                chunk_path = os.path.join(work, f"{half}-{len(chunks)}.pcap")
                w = PcapWriter(chunk_path)
                w.server_ip = ip4(DST_IP)
                chunks.append(chunk_path)
            write_connection(w, i, ts, req)
            conns.append((ri, pl))
            i += 1
            ts += 10_000
    if w:
        w.close()
    t_build = time.time() - t0
    endpoint = {}
    for ci in range(len(conns)):
        ip, port = src_endpoint(ci)
        endpoint[(ip, port)] = ci

    # 2. run flowgate on every chunk, collect alerts per connection
    fired = collections.defaultdict(set)        # conn index -> {sid}
    unmapped = 0
    t1 = time.time()
    cmds, total_pkts = [], 0
    engine_stats = collections.Counter()
    for cp in chunks:
        alerts = cp[:-5] + ".alerts.jsonl"
        cmd, _, summary = run_flowgate(args.flowgate, cp, alerts, detectors)
        cmds.append(" ".join(cmd))
        if isinstance(summary, dict):
            total_pkts += summary.get("packets", 0)
            st = summary.get("stats", {})
            for k in ("http_scans", "http_truncated", "ooo_overflow", "signature_scan_errors"):
                engine_stats[k] += st.get(k, 0)
            engine_stats["malformed"] += sum(st.get("malformed", {}).values()) if isinstance(st.get("malformed"), dict) else 0
            engine_stats["flow_evictions"] += st.get("flows_table", {}).get("evictions", 0)
        with open(alerts, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                ev = json.loads(line)
                if ev.get("event_type") != "alert":
                    continue
                key = (ip4(ev.get("src_ip", "0.0.0.0")), ev.get("src_port", -1))
                ci = endpoint.get(key)
                if ci is None:
                    unmapped += 1
                    continue
                fired[ci].add(ev["alert"]["signature_id"])
        if not args.keep_pcap:
            os.unlink(cp)
        if not per_item:
            os.unlink(alerts)   # held-out: keep nothing that maps alerts to items
    t_run = time.time() - t1

    # 3. aggregate
    # stats[(source, placement)] = Counter(n, hit, triv_n, triv_hit, ben_n, ben_fp)
    stats = collections.defaultdict(collections.Counter)
    sid_count = {"attack": collections.Counter(), "benign": collections.Counter()}
    misses, fps = [], []
    for ci, (ri, pl) in enumerate(conns):
        rec = recs[ri]
        hit = bool(fired.get(ci))
        for sid in fired.get(ci, ()):
            sid_count[rec["label"]][sid] += 1
        for key in ((rec["source"], pl), (rec["source"], "*"), ("*" + rec["label"], pl), ("*" + rec["label"], "*")):
            c = stats[key]
            if rec["label"] == "attack":
                if rec["trivial"]:
                    c["triv_n"] += 1; c["triv_hit"] += hit
                else:
                    c["n"] += 1; c["hit"] += hit
            else:
                c["ben_n"] += 1; c["ben_fp"] += hit
        if per_item:
            if rec["label"] == "attack" and not rec["trivial"] and not hit:
                misses.append({"id": rec["id"], "source": rec["source"], "placement": pl, "payload": rec["payload"]})
            if rec["label"] == "benign" and hit:
                fps.append({"id": rec["id"], "source": rec["source"], "placement": pl,
                            "rules": sorted(fired[ci]), "payload": rec["payload"]})

    # 4. report
    print(f"\n=== half: {half}  ({path})")
    print(f"    {len(recs)} records, {len(conns)} connections in {len(chunks)} pcap(s), "
          f"{total_pkts} packets analysed; build {t_build:.1f}s, flowgate {t_run:.1f}s; "
          f"{sum(1 for c in fired.values() if c)} connections alerted, {unmapped} unmapped alerts")
    print("    engine: " + ", ".join(f"{k}={v}" for k, v in sorted(engine_stats.items())) +
          (f"  (WARNING: {len(conns) - engine_stats['http_scans']} connections not scanned as HTTP)"
           if engine_stats["http_scans"] < len(conns) else ""))
    sources = sorted({k[0] for k in stats if not k[0].startswith("*")})
    pls = list(args.placements) + ["*"]
    hdr = f"    {'source':18} {'placement':9} {'attacks':>7} {'detected':>8} {'rate':>7}  {'trivial':>7} {'tr.det':>6}  {'benign':>6} {'FP':>5} {'FP rate':>7}"
    print(hdr)
    for src in sources + ["*attack", "*benign"]:
        if src in ("*attack", "*benign"):
            continue
        for pl in pls:
            c = stats.get((src, pl))
            if not c:
                continue
            print(f"    {src:18} {pl:9} {c['n']:7} {c['hit']:8} {pct(c['hit'], c['n'])}  "
                  f"{c['triv_n']:7} {c['triv_hit']:6}  {c['ben_n']:6} {c['ben_fp']:5} {pct(c['ben_fp'], c['ben_n'])}")
    print("    " + "-" * (len(hdr) - 4))
    for pl in pls:
        a, b = stats.get(("*attack", pl), collections.Counter()), stats.get(("*benign", pl), collections.Counter())
        print(f"    {'TOTAL':18} {pl:9} {a['n']:7} {a['hit']:8} {pct(a['hit'], a['n'])}  "
              f"{a['triv_n']:7} {a['triv_hit']:6}  {b['ben_n']:6} {b['ben_fp']:5} {pct(b['ben_fp'], b['ben_n'])}")
    for lab in ("attack", "benign"):
        top = sid_count[lab].most_common()
        if top:
            print(f"    rules fired on {lab} connections: " +
                  ", ".join(f"{sid} {rnames.get(sid, '?')} x{n}" for sid, n in top))

    summary = {"half": half, "records": len(recs), "connections": len(conns), "flowgate_cmds": cmds,
               "unmapped_alerts": unmapped, "engine": dict(engine_stats), "build_s": round(t_build, 2), "flowgate_s": round(t_run, 2),
               "stats": {f"{k[0]}|{k[1]}": dict(v) for k, v in sorted(stats.items())},
               "rules": {lab: {str(s): n for s, n in c.most_common()} for lab, c in sid_count.items()}}
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, f"summary-{half}.json"), "w") as f:
            json.dump(summary, f, indent=1)
        if per_item:
            with open(os.path.join(args.out, f"misses-{half}.jsonl"), "w") as f:
                for m in misses:
                    f.write(json.dumps(m, ensure_ascii=False) + "\n")
            with open(os.path.join(args.out, f"fps-{half}.jsonl"), "w") as f:
                for m in fps:
                    f.write(json.dumps(m, ensure_ascii=False) + "\n")
            print(f"    per-item lists: {len(misses)} misses, {len(fps)} FPs -> {args.out}")
        else:
            print("    held-out half: aggregate figures only, no per-item lists written")
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flowgate", required=True, help="flowgate binary")
    ap.add_argument("--data", action="append", required=True, help="JSONL half (repeatable)")
    ap.add_argument("--out", help="directory for summaries and (tune half only) misses/FPs")
    ap.add_argument("--placements", default=",".join(PLACEMENTS))
    ap.add_argument("--work", help="directory for PCAPs and alert logs (default: a temp dir)")
    ap.add_argument("--keep-pcap", action="store_true")
    ap.add_argument("--max-packets", type=int, default=2_000_000, help="packets per PCAP chunk")
    args = ap.parse_args()
    args.placements = [p.strip() for p in args.placements.split(",") if p.strip()]
    bad = [p for p in args.placements if p not in PLACEMENTS]
    if bad:
        ap.error(f"unknown placement(s): {bad}")
    detectors = behavioural_detectors(args.flowgate)
    rnames = rule_names(args.flowgate)
    print(f"flowgate: {args.flowgate}; behavioural detectors disabled: {', '.join(detectors)}")
    print("detection rate = detected / non-trivial attack items; FP rate = alerted / benign items; "
          "an item counts as detected if ANY alert maps to its connection")
    t0 = time.time()
    for path in args.data:
        evaluate(args, path, detectors, rnames)
    print(f"\ntotal wall time {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
