#!/usr/bin/env python3
"""Build the SQLi detection evaluation corpus from public third-party repos.

Reads the bare git mirrors under /work/.mirror (and /work/eval/raw for files
obtained through the read_file index), normalizes every item into one record

    {"id", "source", "label", "trivial", "kind", "payload"}

deduplicates within label by exact payload (first source in SOURCE ORDER wins),
and splits by a fixed hash:  sha256(label + "\\0" + payload)[0] even -> tune,
odd -> heldout.  Deterministic: no randomness except seeded sampling keyed on
content hashes.
"""
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import urllib.parse
from collections import Counter, OrderedDict

# Where the sources are and where the corpus goes (no third-party data is
# kept in the repository): override with the environment.
M = os.environ.get("SQLI_EVAL_MIRROR", "/work/.mirror")
OUT = os.environ.get("SQLI_EVAL_OUT", "/work/eval/data")
RAW = os.environ.get("SQLI_EVAL_RAW", "/work/eval/raw")

REPOS = {
    "payloadbox": f"{M}/payloadbox+sql-injection-payload-list/repo",
    "patt": f"{M}/swisskyrepo+PayloadsAllTheThings/repo",
    "fuzzdb": f"{M}/fuzzdb-project+fuzzdb/repo",
    "sqlmap": f"{M}/sqlmapproject+sqlmap/repo",
    "httpparams": f"{M}/Morzeux+HttpParamsDataset/repo/.git",
    "firebricks": f"{M}/nighthawkk+FireBricks/repo/.git",
    "owasp": f"{M}/OWASP+CheatSheetSeries/repo",
}


def git(repo, *args):
    return subprocess.run(["git", "--git-dir=" + REPOS[repo], *args],
                          check=True, capture_output=True).stdout


def head(repo):
    return git(repo, "rev-parse", "HEAD").decode().strip()


def ls(repo):
    return git(repo, "ls-tree", "-r", "HEAD", "--name-only").decode().splitlines()


def show(repo, path):
    return git(repo, "show", "HEAD:" + path).decode("utf-8", "replace")


def hkey(s):
    """Stable integer key for deterministic sampling."""
    return int.from_bytes(hashlib.sha256(s.encode("utf-8", "surrogatepass")).digest()[:8], "big")


def sample(items, n, salt):
    """Deterministic sample of n items: the n smallest content hashes."""
    if len(items) <= n:
        return list(items)
    return sorted(items, key=lambda x: hkey(salt + "\0" + x))[:n]


def lines_of(text):
    out = []
    for ln in text.splitlines():
        ln = ln.rstrip("\r\n")
        if ln.strip() == "" or re.match(r"^#\s+[A-Za-z]", ln):   # blank or '# comment' line
            continue
        out.append(ln)
    return out


manifest = OrderedDict()   # source -> dict(repo, commit, paths, how)


# ---------------------------------------------------------------- attacks
def src_payloadbox():
    paths = [p for p in ls("payloadbox") if p.startswith("Intruder/") and "NoSQL" not in p]
    items = []
    for p in paths:
        items += lines_of(show("payloadbox", p))
    manifest["payloadbox"] = dict(repo="payloadbox/sql-injection-payload-list", commit=head("payloadbox"),
                                  paths="Intruder/** (excluding Intruder/detect/NoSQL/)",
                                  how="one payload per non-empty line, verbatim")
    return items


def src_patt():
    repo = "patt"
    paths = [p for p in ls(repo) if p.startswith("SQL Injection/Intruder/")]
    items = []
    for p in paths:
        items += lines_of(show(repo, p))
    # code blocks of the per-DBMS markdown pages
    mds = [p for p in ls(repo) if p.startswith("SQL Injection/") and p.endswith(".md")
           and "SQLmap" not in p]
    skip = re.compile(r"^\s*(\$|sqlmap|python|\./|#!|git |curl |wget |pip |cd |ls |cat |echo |nc |sudo |docker|java |gcc |import |from \w+ import|def |//|<\?|http[s]?://\S+$)", re.I)
    n_md = 0
    for p in mds:
        text = show(repo, p)
        inblock = False
        lang = ""
        for ln in text.splitlines():
            m = re.match(r"^\s*```\s*(\S*)", ln)
            if m:
                if not inblock:
                    inblock, lang = True, m.group(1).lower()
                else:
                    inblock = False
                continue
            if not inblock or lang not in ("", "sql", "sqlite", "mysql", "postgresql", "psql", "plsql", "tsql", "ps1", "powershell", "txt", "text"):
                continue
            s = ln.strip()
            if not s or len(s) > 1000 or skip.match(s):
                continue
            if s.startswith("--") or s.startswith("# ") or s.startswith("/*") and s.endswith("*/") and " " not in s[2:-2].strip():
                continue
            # must look like SQL / injection material: a quote, an operator or an SQL word
            if not re.search(r"['\"=()]|\b(select|union|sleep|waitfor|and|or|from|where|exec|insert|update|drop|declare|load_file|into)\b", s, re.I):
                continue
            items.append(s)
            n_md += 1
    manifest["patt"] = dict(repo="swisskyrepo/PayloadsAllTheThings", commit=head(repo),
                            paths="SQL Injection/Intruder/*; SQL Injection/*.md (except SQLmap.md) fenced code blocks",
                            how=f"Intruder: one payload per non-empty line. Markdown: each line inside ``` blocks tagged sql/none/ps1/txt, "
                                f"skipping shell/tool command lines and pure comment lines, requiring a quote/=/paren or SQL word ({n_md} md lines before dedup)")
    return items


def src_fuzzdb():
    paths = [p for p in ls("fuzzdb") if p.startswith("attack/sql-injection/") and p.endswith(".txt")]
    items = []
    for p in paths:
        items += lines_of(show("fuzzdb", p))
    manifest["fuzzdb"] = dict(repo="fuzzdb-project/fuzzdb", commit=head("fuzzdb"),
                              paths="attack/sql-injection/**/*.txt", how="one payload per non-empty line")
    return items


def src_seclists():
    items = lines_of(open(f"{RAW}/seclists_quick-SQLi.txt", encoding="utf-8").read())
    manifest["seclists"] = dict(repo="danielmiessler/SecLists", commit="f5db82f8a5760293ea37f8af1ff1b3ab98147110 (index copy via read_file)",
                                paths="Fuzzing/Databases/SQLi/quick-SQLi.txt",
                                how="whole repo snapshot is 1.3 GB (> fetch limit), so only this file was read through the file index "
                                    "(stored at /work/eval/raw/); one payload per non-empty line. Other SecLists SQLi files largely duplicate fuzzdb and sqlmap and were skipped.")
    return items


# --- sqlmap: expand payload templates with boundaries, bounded & deterministic
SQLMAP_CAP = 4200


def _x(el, tag):
    import xml.etree.ElementTree as ET  # noqa
    c = el.find(tag)
    return (c.text or "") if c is not None and c.text is not None else ""


def _ints(s):
    return set(int(x) for x in s.replace(" ", "").split(",") if x.strip().isdigit())


def src_sqlmap():
    import xml.etree.ElementTree as ET
    repo = "sqlmap"
    broot = ET.fromstring(show(repo, "data/xml/boundaries.xml"))
    bounds = []
    for b in broot.findall("boundary"):
        bounds.append(dict(clause=_ints(_x(b, "clause")), where=_ints(_x(b, "where")),
                           prefix=_x(b, "prefix"), suffix=_x(b, "suffix"), ptype=_x(b, "ptype")))
    tests = []
    for p in sorted(x for x in ls(repo) if x.startswith("data/xml/payloads/") and x.endswith(".xml")):
        r = ET.fromstring(show(repo, p))
        for t in r.findall("test"):
            req = t.find("request")
            tests.append(dict(file=p.rsplit("/", 1)[1], title=_x(t, "title"), clause=_ints(_x(t, "clause")),
                              where=_ints(_x(t, "where")), payload=_x(req, "payload"), comment=_x(req, "comment"),
                              char=_x(req, "char"), columns=_x(req, "columns"), vector=_x(t, "vector")))

    def subst(s, k):
        # fixed, plausible values; vary per item index k deterministically
        rn = [str(1000 + (k * 7919 + i * 104729) % 9000) for i in range(6)]
        words = ["qxzv", "Hbtk", "pLmw", "aRfy", "wuNs", "zzoe"]
        reps = {
            "[RANDNUM]": rn[0], "[RANDNUM1]": rn[1], "[RANDNUM2]": rn[2], "[RANDNUM3]": rn[3],
            "[RANDNUM4]": rn[4], "[RANDNUM5]": rn[5],
            "[RANDSTR]": words[k % 6], "[RANDSTR1]": words[(k + 1) % 6], "[RANDSTR2]": words[(k + 2) % 6],
            "[SLEEPTIME]": "5", "[DELAYED]": "5", "[DELIMITER_START]": "qkvjq", "[DELIMITER_STOP]": "qpzbq",
            "[INFERENCE]": f"{rn[1]}={rn[1]}", "[ORIGVALUE]": "1", "[ORIGINAL]": "1",
            "[GENERIC_SQL_COMMENT]": "-- -", "[SPACE_REPLACE]": " ", "[AT_REPLACE]": "@",
            "[DOLLAR_REPLACE]": "$", "[HASH_REPLACE]": "#", "[QUERY]": "SELECT 'qkvjq'||'qpzbq'",
            "[CHAR]": "NULL", "[COLSTART]": "1", "[COLSTOP]": "10",
        }
        for a, b in reps.items():
            s = s.replace(a, b)
        return s

    cands = []   # (test index, boundary index, string)
    k = 0
    for ti, t in enumerate(tests):
        for bi, b in enumerate(bounds):
            if not (0 in t["clause"] or 0 in b["clause"] or (t["clause"] & b["clause"])):
                continue
            wheres = sorted(t["where"] & b["where"])
            if not wheres:
                continue
            w = wheres[0]
            payload = t["payload"]
            if "[UNION]" in t["vector"] or (not payload and t["columns"]):
                ncols = 1 + (k % 6)
                ch = "NULL" if t["char"] in ("NULL", "[CHAR]", "") else subst(t["char"], k)
                cols = [ch] * ncols
                cols[k % ncols] = "CONCAT(0x716b766a71,0x4a6b4d,0x71707a6271)"
                payload = "UNION ALL SELECT " + ",".join(cols)
            s = b["prefix"] + " " + payload + t["comment"]
            if b["suffix"] and not t["comment"]:
                s += " " + b["suffix"]
            if w == 1:
                s = "1" + s
            elif w == 2:
                s = "-" + str(1000 + (k * 31) % 9000) + s
            # where 3: replace the value with the string itself
            s = subst(s, k).strip() if w == 3 else subst(s, k)
            cands.append((ti, bi, s))
            k += 1
    # bounded selection: round-robin over tests so every template appears before any gets a 2nd boundary
    by_test = {}
    for ti, bi, s in cands:
        by_test.setdefault(ti, []).append(s)
    for ti in by_test:
        by_test[ti].sort(key=lambda s: hkey("sqlmap\0" + s))
    items, rnd = [], 0
    while len(items) < SQLMAP_CAP:
        added = False
        for ti in sorted(by_test):
            if rnd < len(by_test[ti]):
                items.append(by_test[ti][rnd])
                added = True
                if len(items) >= SQLMAP_CAP:
                    break
        if not added:
            break
        rnd += 1
    manifest["sqlmap"] = dict(repo="sqlmapproject/sqlmap", commit=head(repo),
                              paths="data/xml/payloads/*.xml, data/xml/boundaries.xml",
                              how=f"{len(tests)} <test> templates x {len(bounds)} boundaries; pair when clause sets intersect (0=any) and "
                                  "<where> sets intersect; value = [orig '1' | negative int | nothing] + prefix + ' ' + payload + comment "
                                  "(+ ' ' + suffix when no comment); [UNION] expanded to 'UNION ALL SELECT' with 1-6 columns, one CONCAT(hex marker); "
                                  "placeholders replaced with fixed values (RANDNUM 1000-9999 by index, SLEEPTIME=5, DELIMITER=qkvjq/qpzbq, "
                                  "INFERENCE=N=N, GENERIC_SQL_COMMENT='-- -'). "
                                  f"{len(cands)} combinations, selected round-robin over templates (hash-ordered boundaries) up to {SQLMAP_CAP}")
    return items


HTTPPARAMS_SQLI_CAP = 7000
HTTPPARAMS_NORM_CAP = 5000


def _httpparams():
    t = show("httpparams", "payload_full.csv")
    return list(csv.DictReader(io.StringIO(t)))


def src_httpparams_sqli(rows):
    items = sorted(set(r["payload"] for r in rows if r["attack_type"] == "sqli"))
    picked = sample(items, HTTPPARAMS_SQLI_CAP, "httpparams-sqli")
    manifest["httpparams_sqli"] = dict(repo="Morzeux/HttpParamsDataset", commit=head("httpparams"), paths="payload_full.csv",
                                       how=f"rows with attack_type=sqli ({len(items)} distinct; sqlmap-generated, lowercased by the dataset author); "
                                           f"deterministic sample of {HTTPPARAMS_SQLI_CAP} by smallest sha256")
    return picked


# ---------------------------------------------------------------- benign
def src_httpparams_norm(rows):
    items = sorted(set(r["payload"] for r in rows if r["label"] == "norm"))
    picked = sample(items, HTTPPARAMS_NORM_CAP, "httpparams-norm")
    manifest["httpparams_norm"] = dict(repo="Morzeux/HttpParamsDataset", commit=head("httpparams"), paths="payload_full.csv",
                                       how=f"rows with label=norm (parameter values of CSIC-2010 normal traffic; {len(items)} distinct); "
                                           f"deterministic sample of {HTTPPARAMS_NORM_CAP} by smallest sha256; kind=value")
    return picked


def src_fwaf_good():
    items = lines_of(show("firebricks", "goodqueries.txt"))
    manifest["fwaf_good"] = dict(repo="nighthawkk/FireBricks (copy of faizann24/Fwaf goodqueries.txt head)",
                                 commit=head("firebricks"), paths="goodqueries.txt",
                                 how="faizann24/Fwaf's own goodqueries.txt is >4 MiB and absent from its snapshot (Fwaf HEAD "
                                     "9c92866c55ee361743fbf9379a33b51bdcf376b8); this fork carries a 2508-line excerpt. "
                                     "One crawled request-target per line; kind=url; all lines kept")
    return items


def src_owasp_prose():
    repo = "owasp"
    paths = sorted(p for p in ls(repo) if p.startswith("cheatsheets/") and p.endswith(".md"))
    sqlw = re.compile(r"\b(select|union|insert|update|delete|drop|table|where|from|order by|group by|join|database|query|queries|sql|or|and)\b", re.I)
    strong = re.compile(r"'|\b(select|union|insert|update|delete|drop|table|where|database|query|queries|sql)\b", re.I)
    items = []
    for p in paths:
        text = show(repo, p)
        text = re.sub(r"```.*?```", "\n", text, flags=re.S)       # drop fenced code
        for para in re.split(r"\n\s*\n", text):
            para = " ".join(l.strip() for l in para.splitlines())
            if not para or para.startswith(("|", "#", "<", "!", "[!")):
                continue
            para = re.sub(r"^[-*>\d.]+\s+", "", para)
            para = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", para)  # links -> text
            para = re.sub(r"(\*\*|__|\*|_)(\S[^*_]*?)\1", r"\2", para)
            for sent in re.split(r"(?<=[.!?])\s+(?=[A-Z])", para):
                sent = sent.strip()
                if "`" in sent or "http" in sent or "<" in sent or not (25 <= len(sent) <= 300):
                    continue  # inline code could carry literal attack strings: keep the benign label honest
                sent = sent.replace("\u2019", "'")
                if strong.search(sent):
                    items.append(sent)
    manifest["owasp_prose"] = dict(repo="OWASP/CheatSheetSeries", commit=head(repo), paths="cheatsheets/*.md",
                                   how="prose outside fenced code, markdown links/emphasis stripped, split into sentences of 25-300 chars; "
                                       "kept sentences with an apostrophe or an SQL word (select/union/insert/update/delete/drop/table/"
                                       "where/database/query/sql); sentences containing inline code, '<' or URLs dropped; kind=prose")
    return items


# ---------------------------------------------------------------- trivial
SQL_WORD = re.compile(r"^[A-Za-z_]+$")


def is_trivial(p):
    """Attack items carrying no SQL structure (defined before any detection run).

    Evaluated on the percent-decoded, stripped payload:
      * fewer than 3 characters, or pure whitespace;
      * no letter or digit at all (lone quotes, brackets, comment markers,
        e.g.  '  ")  '--  ;  \\  '-' );
      * a single bare token of letters/digits/underscore (a keyword, name or
        number with no operator or syntax, e.g.  or  admin  sleep  1 ).
    """
    s = urllib.parse.unquote(p).strip()
    if len(s) < 3:
        return True
    if not re.search(r"[A-Za-z0-9]", s):
        return True
    if re.fullmatch(r"[A-Za-z0-9_]+", s):
        return True
    return False


def main():
    rows = _httpparams()
    attacks = [
        ("fuzzdb", src_fuzzdb()),
        ("seclists", src_seclists()),
        ("patt", src_patt()),
        ("payloadbox", src_payloadbox()),
        ("sqlmap", src_sqlmap()),
        ("httpparams_sqli", src_httpparams_sqli(rows)),
    ]
    benign = [
        ("httpparams_norm", src_httpparams_norm(rows), "value"),
        ("fwaf_good", src_fwaf_good(), "url"),
        ("owasp_prose", src_owasp_prose(), "prose"),
    ]
    records, seen = [], {"attack": set(), "benign": set()}
    raw_counts, kept = Counter(), Counter()

    def add(src, label, kind, p):
        raw_counts[src] += 1
        if "\x00" in p or p.strip() == "" and label == "benign":
            return
        if p in seen[label]:
            return
        seen[label].add(p)
        h = hashlib.sha256((label + "\0" + p).encode("utf-8", "surrogatepass")).digest()
        rec = {"id": f"{src}-{h[:6].hex()}", "source": src, "label": label,
               "trivial": is_trivial(p) if label == "attack" else False,
               "kind": kind, "payload": p, "_half": "tune" if h[0] % 2 == 0 else "heldout"}
        records.append(rec)
        kept[src] += 1

    for src, items in attacks:
        for p in items:
            add(src, "attack", "value", p)
    for src, items, kind in benign:
        for p in items:
            add(src, "benign", kind, p)

    os.makedirs(OUT, exist_ok=True)
    st = Counter()
    with open(f"{OUT}/tune.jsonl", "w") as ft, open(f"{OUT}/heldout.jsonl", "w") as fh:
        for r in records:
            half = r.pop("_half")
            (ft if half == "tune" else fh).write(json.dumps(r, ensure_ascii=False) + "\n")
            st[(half, r["source"], r["label"], r["trivial"])] += 1
    with open(f"{OUT}/STATS.txt", "w") as f:
        f.write("split: sha256(label + '\\0' + payload) first byte even -> tune, odd -> heldout\n")
        f.write("dedup: exact payload within label, first source in this order wins\n\n")
        f.write(f"{'source':18} {'label':7} {'raw':>6} {'kept':>6} | {'tune':>6} {'(triv)':>6} | {'heldout':>7} {'(triv)':>6}\n")
        tot = Counter()
        for src, _ in attacks:
            lab = "attack"
            tu = st[("tune", src, lab, False)] + st[("tune", src, lab, True)]
            he = st[("heldout", src, lab, False)] + st[("heldout", src, lab, True)]
            f.write(f"{src:18} {lab:7} {raw_counts[src]:6} {kept[src]:6} | {tu:6} {st[('tune', src, lab, True)]:6} | {he:7} {st[('heldout', src, lab, True)]:6}\n")
            tot[(lab, "tune")] += tu; tot[(lab, "heldout")] += he
            tot[(lab, "tt")] += st[('tune', src, lab, True)]; tot[(lab, "ht")] += st[('heldout', src, lab, True)]
        for src, _, _ in benign:
            lab = "benign"
            tu = st[("tune", src, lab, False)]
            he = st[("heldout", src, lab, False)]
            f.write(f"{src:18} {lab:7} {raw_counts[src]:6} {kept[src]:6} | {tu:6} {'':6} | {he:7} {'':6}\n")
            tot[(lab, "tune")] += tu; tot[(lab, "heldout")] += he
        f.write(f"\nTOTAL attack: tune {tot[('attack','tune')]} (trivial {tot[('attack','tt')]}), heldout {tot[('attack','heldout')]} (trivial {tot[('attack','ht')]})\n")
        f.write(f"TOTAL benign: tune {tot[('benign','tune')]}, heldout {tot[('benign','heldout')]}\n")
    json.dump({"manifest": manifest, "raw": raw_counts, "kept": kept,
               "halves": {f"{k[0]}|{k[1]}|{k[2]}|{k[3]}": v for k, v in st.items()}},
              open(f"{OUT}/../manifest.json", "w"), indent=1)
    print(open(f"{OUT}/STATS.txt").read())


if __name__ == "__main__":
    main()
