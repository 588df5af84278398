#!/usr/bin/env python3
"""Builds the AFL seed corpora from the repository's own files.

Usage: fuzz/gen_seeds.py OUT_DIR   (perf/fuzz passes fuzz/target/seeds)

  packet          single frames cut out of fixtures/*.pcap and fixtures/real/*
                  (every frame of the small fixtures, a spread of the large)
  pcap            each fixture capture cut to its first few records (PCAPNG:
                  every block before the first packets kept)
  http            fuzz/seeds/http/* plus the HTTP request payloads of
                  fixtures/http_sqli.pcap, each raw and as a segmented stream
  config          deploy/flowgate.toml and fuzz/seeds/config/*
  rules_native    deploy/rules/sqli.toml whole and one file per rule
  rules_suricata  fuzz/seeds/suricata/*, whole and one file per rule
  signatures      requests of tests/corpus/*.jsonl (a spread of the benign,
                  every tenth attack), one per seed and a few back to back

Nothing here is committed: the output lives under fuzz/target.
"""

import json
import pathlib
import shutil
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
MAX_SEED = 4096  # AFL works best on small inputs


def pcap_records(raw):
    """(byte order, header, [record bytes]) of a classic PCAP, or None."""
    magic = raw[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return None
    recs, off = [], 24
    while off + 16 <= len(raw):
        incl = struct.unpack(e + "I", raw[off + 8 : off + 12])[0]
        end = off + 16 + incl
        if end > len(raw):
            break
        recs.append(raw[off:end])
        off = end
    return e, raw[:24], recs


def pcapng_blocks(raw):
    """(byte order, [(type, block bytes)]) of a PCAPNG, or None."""
    if raw[:4] != b"\x0a\x0d\x0d\x0a":
        return None
    e = "<" if raw[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    blocks, off = [], 0
    while off + 12 <= len(raw):
        btype, blen = struct.unpack(e + "II", raw[off : off + 8])
        if blen < 12 or off + blen > len(raw):
            break
        blocks.append((btype, raw[off : off + blen]))
        off += blen
    return e, blocks


def link_of(e, header):
    return struct.unpack(e + "I", header[20:24])[0]


def frames(path):
    """(linktype, frame bytes) of every packet of a capture."""
    raw = path.read_bytes()
    p = pcap_records(raw)
    if p:
        e, hdr, recs = p
        return [(link_of(e, hdr), r[16:]) for r in recs]
    ng = pcapng_blocks(raw)
    out, links = [], []
    if ng:
        e, blocks = ng
        for btype, b in blocks:
            if btype == 1:  # interface description
                links.append(struct.unpack(e + "H", b[8:10])[0])
            elif btype == 6:  # enhanced packet
                iface, _, _, caplen = struct.unpack(e + "IIII", b[8:24])
                if iface < len(links):
                    out.append((links[iface], b[28 : 28 + caplen]))
    return out


def captures():
    return sorted((ROOT / "fixtures").glob("*.pcap")) + sorted(
        (ROOT / "fixtures" / "real").glob("*.pcap*")
    )


def write(d, name, data):
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def seeds_packet(out):
    # The frame alone carries no link type: the target tries every one.
    seen = set()
    for cap in captures():
        fr = frames(cap)
        step = 1 if len(fr) <= 64 else len(fr) // 48
        for i, (_, f) in enumerate(fr[::step]):
            key = (len(f) // 16, bytes(f[12:14]), bytes(f[23:24]))
            if key in seen:
                continue
            seen.add(key)
            write(out, f"{cap.stem}-{i * step}.bin", f[:MAX_SEED])


def seeds_pcap(out):
    for cap in captures():
        raw = cap.read_bytes()
        p = pcap_records(raw)
        if p:
            _, hdr, recs = p
            write(out, cap.name, hdr + b"".join(recs[:8]))
            continue
        ng = pcapng_blocks(raw)
        if ng:
            _, blocks = ng
            kept, packets = [], 0
            for btype, b in blocks:
                if btype in (3, 6):
                    packets += 1
                    if packets > 8:
                        continue
                kept.append(b)
            write(out, cap.name, b"".join(kept))


METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ")


def stream(req, seg, ctl):
    """The http target's segmented form: 4 control bytes, then segments
    `[delta][len][bytes]` in order (delta 0)."""
    body = b""
    for i in range(0, len(req), seg):
        chunk = req[i : i + seg]
        body += bytes([0, len(chunk)]) + chunk
    return bytes(ctl) + body


def seeds_http(out):
    reqs = {p.name: p.read_bytes() for p in sorted((FUZZ / "seeds" / "http").iterdir())}
    for i, (link, f) in enumerate(frames(ROOT / "fixtures" / "http_sqli.pcap")):
        for m in METHODS:
            at = f.find(m)
            if link == 1 and 0 <= at <= 14 + 60 + 60 and f[at:].find(b" HTTP/1.") > 0:
                reqs[f"http_sqli-{i}.http"] = f[at:]
                break
    for name, req in reqs.items():
        req = req[:MAX_SEED]
        write(out, name, req)
        # Segmented streams: small limits with a SYN-started flow, large
        # limits picked up mid-stream.
        write(out, name + ".s7", stream(req, 7, (8, 4, 2, 0)))
        write(out, name + ".s40", stream(req, 40, (200, 64, 4, 1)))


def seeds_config(out):
    write(out, "flowgate.toml", (ROOT / "deploy" / "flowgate.toml").read_bytes())
    for p in sorted((FUZZ / "seeds" / "config").iterdir()):
        write(out, p.name, p.read_bytes())


def split_blocks(text, marker):
    """Header, then every block starting at a line equal to `marker`."""
    parts, cur = [], []
    for line in text.splitlines(keepends=True):
        if line.strip() == marker and cur:
            parts.append("".join(cur))
            cur = []
        cur.append(line)
    parts.append("".join(cur))
    return parts


def seeds_rules_native(out):
    text = (ROOT / "deploy" / "rules" / "sqli.toml").read_text()
    write(out, "sqli.toml", text.encode())
    for i, block in enumerate(split_blocks(text, "[[rule]]")[1:]):
        write(out, f"rule-{i}.toml", block.encode())


def seeds_rules_suricata(out):
    for p in sorted((FUZZ / "seeds" / "suricata").iterdir()):
        text = p.read_text()
        write(out, p.name, text.encode())
        rule, n = "", 0
        for line in text.splitlines(keepends=True):
            if line.startswith("#"):
                continue
            rule += line
            if not line.rstrip().endswith("\\"):
                write(out, f"{p.stem}-{n}.rules", rule.encode())
                rule, n = "", n + 1


def corpus_request(r):
    """A labelled corpus request as bytes (tests/common/corpus.rs)."""
    s = f"{r['method']} {r['uri']} HTTP/1.1\r\n"
    for k, v in r["headers"]:
        s += f"{k}: {v}\r\n"
    return (s + "\r\n" + r["body"]).encode()


def seeds_signatures(out):
    reqs = []
    for name, step in (("benign.jsonl", 40), ("sqli_malicious.jsonl", 10)):
        lines = (ROOT / "tests" / "corpus" / name).read_text().splitlines()
        reqs += [corpus_request(json.loads(l)) for l in lines[::step]]
    for i, req in enumerate(reqs):
        write(out, f"req-{i}.http", req[:MAX_SEED])
    # A connection carrying several requests.
    for i in range(0, len(reqs) - 2, 30):
        write(out, f"conn-{i}.http", b"".join(reqs[i : i + 3])[:MAX_SEED])


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else FUZZ / "target" / "seeds")
    for name, fn in [
        ("packet", seeds_packet),
        ("pcap", seeds_pcap),
        ("http", seeds_http),
        ("config", seeds_config),
        ("rules_native", seeds_rules_native),
        ("rules_suricata", seeds_rules_suricata),
        ("signatures", seeds_signatures),
    ]:
        d = out / name
        shutil.rmtree(d, ignore_errors=True)
        fn(d)
        files = list(d.iterdir())
        print(f"{name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
