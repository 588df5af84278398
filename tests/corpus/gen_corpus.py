#!/usr/bin/env python3
"""Generate the flowgate SQL-injection test corpus.

Run from the repository root (Python 3.8+, standard library only):

    python3 tests/corpus/gen_corpus.py

Writes, next to this file:
    sqli_malicious.jsonl       labelled SQL-injection requests
    sqli_malicious.meta.tsv    per-request provenance (DBMS, location, evasions, raw payload)
    benign.jsonl               labelled benign requests, including hard cases

Output is deterministic: fixed seeds, no set iteration, no clock or environment input,
so every run produces byte-identical files.  The generator then reads the files back
and validates them (JSON, unique ids, HTTP/1.1 serialisability, size < 4 KiB,
Content-Length, Host under example.test) and prints per-family counts.
"""

import json
import os
import random
import re
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from gen import common as C          # noqa: E402
from gen import malicious, benign    # noqa: E402

MAL_SEED = 0x5E1EC7      # "select"
BEN_SEED = 0xB0E1B0
MAX_BYTES = 4096
URI_RE = re.compile(r"^/[A-Za-z0-9\-._~:/?\[\]@!$&'()*+,;=%]*$")
TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]

def record(rid, label, family, req):
    return {"id": rid, "label": label, "family": family, "method": req["method"],
            "uri": req["uri"], "headers": req["headers"], "body": req["body"]}

def validate(rec):
    errs = []
    if rec["method"] not in METHODS:
        errs.append("method")
    if not URI_RE.match(rec["uri"]) or re.search(r"%(?![0-9A-Fa-f]{2})", rec["uri"]):
        errs.append("uri chars")
    hdrs = rec["headers"]
    if not hdrs or hdrs[0][0] != "Host" or not hdrs[0][1].endswith("example.test"):
        errs.append("host")
    names = [h[0].lower() for h in hdrs]
    for k, v in hdrs:
        if not TOKEN_RE.match(k):
            errs.append("header name %r" % k)
        if any((ord(c) < 0x20 and c != "\t") or ord(c) >= 0x7f for c in v):
            errs.append("header value %s" % k)
    if len(set(names)) != len(names):
        errs.append("duplicate header")
    body = rec["body"]
    if body:
        cl = [v for k, v in hdrs if k == "Content-Length"]
        ct = [v for k, v in hdrs if k == "Content-Type"]
        if cl != [str(len(body.encode("utf-8")))]:
            errs.append("content-length")
        if len(ct) != 1:
            errs.append("content-type")
        elif ct[0].startswith("application/json"):
            json.loads(body)
        elif ct[0].startswith("application/x-www-form-urlencoded"):
            if "\r" in body or "\n" in body:
                errs.append("raw newline in form body")
    if len(C.serialize(rec)) >= MAX_BYTES:
        errs.append("size")
    return errs

def write_jsonl(path, recs):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in recs:
            f.write(json.dumps(r, ensure_ascii=False, separators=(", ", ": ")) + "\n")

def check_file(path, label, ids):
    fams = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            rec = json.loads(line)
            assert list(rec) == ["id", "label", "family", "method", "uri", "headers", "body"], n
            assert rec["label"] == label, (path, n)
            assert rec["id"] not in ids, ("duplicate id", rec["id"])
            ids[rec["id"]] = True
            errs = validate(rec)
            assert not errs, (path, rec["id"], errs)
            fams[rec["family"]] = fams.get(rec["family"], 0) + 1
    return fams

def main():
    mal = malicious.generate(random.Random(MAL_SEED))
    random.Random(MAL_SEED + 1).shuffle(mal)
    mrecs, meta_lines = [], []
    for i, (req, meta) in enumerate(mal, 1):
        rid = "m%04d" % i
        mrecs.append(record(rid, "malicious", req["family"], req))
        meta_lines.append("\t".join([
            rid, meta["family"], meta["location"], meta["param"], meta["dbms"],
            meta["encoding"], meta["case"], ",".join(meta["transforms"]) or "-",
            json.dumps(meta["payload"])]))
    ben = benign.generate(random.Random(BEN_SEED))
    random.Random(BEN_SEED + 1).shuffle(ben)
    brecs = [record("b%05d" % i, "benign", req["family"], req) for i, req in enumerate(ben, 1)]

    mpath = os.path.join(HERE, "sqli_malicious.jsonl")
    bpath = os.path.join(HERE, "benign.jsonl")
    write_jsonl(mpath, mrecs)
    write_jsonl(bpath, brecs)
    with open(os.path.join(HERE, "sqli_malicious.meta.tsv"), "w", encoding="utf-8",
              newline="\n") as f:
        f.write("id\tfamily\tlocation\tparam\tdbms\tencoding\tcase\ttransforms\tpayload_json\n")
        f.write("\n".join(meta_lines) + "\n")

    ids = {}
    for path, label, minimum in ((mpath, "malicious", 400), (bpath, "benign", 3500)):
        fams = check_file(path, label, ids)
        total = sum(fams.values())
        print("%s: %d requests, %d bytes" % (os.path.basename(path), total,
                                            os.path.getsize(path)))
        for fam in sorted(fams):
            print("  %-26s %5d  (%4.1f%%)" % (fam, fams[fam], 100.0 * fams[fam] / total))
        assert total >= minimum, (path, total)
        if label == "benign":
            assert max(fams.values()) <= 0.12 * total, "one benign family dominates"
    for key in ("location", "encoding", "dbms"):
        counts = {}
        for _, meta in mal:
            counts[meta[key]] = counts.get(meta[key], 0) + 1
        print("malicious by %s: %s" % (key, ", ".join(
            "%s=%d" % (k, counts[k]) for k in sorted(counts))))
    tcounts = {}
    for _, meta in mal:
        for t in meta["transforms"] or ["(none)"]:
            tcounts[t] = tcounts.get(t, 0) + 1
    print("malicious by evasion: " + ", ".join("%s=%d" % (k, tcounts[k]) for k in sorted(tcounts)))
    print("OK")

if __name__ == "__main__":
    main()
