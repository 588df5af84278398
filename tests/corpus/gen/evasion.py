"""Evasion transforms (modelled on sqlmap tamper scripts) and client-side URL encoders.

Transforms rewrite only the SQL *code* of a payload body, never the inside of string
literals, so the payload stays functional for its DBMS.  Encoders turn the finished
parameter value into what actually travels on the wire.
"""

import re

KEYWORDS = (
    "union select all distinct from where and or not order group by having limit offset "
    "sleep benchmark waitfor delay if case when then else end null insert into values "
    "update set delete drop table exec execute declare concat group_concat concat_ws "
    "version database user substring substr ascii char extractvalue updatexml "
    "information_schema tables columns table_name column_name table_schema load_file "
    "outfile dumpfile cast convert like between xor rlike true pg_sleep mid length count "
    "exists floor rand exp shutdown truncate dual top as is in elt ord md5 "
    "xp_cmdshell schemata sysobjects xmltype"
).split()
KW_RE = re.compile(r"\b(" + "|".join(sorted(KEYWORDS, key=len, reverse=True)) + r")\b",
                   re.IGNORECASE)
VERSIONABLE = ["union", "select", "from", "where", "and", "or", "order", "by", "all", "limit"]

def split_code(body):
    """[(is_code, text)] separating string literals from code."""
    out, cur, quote = [], "", None
    for ch in body:
        if quote is None:
            if ch in "'\"":
                if cur:
                    out.append((True, cur))
                cur, quote = ch, ch
            else:
                cur += ch
        else:
            cur += ch
            if ch == quote:
                out.append((False, cur))
                cur, quote = "", None
    if cur:
        out.append((quote is None, cur))
    return out

def on_code(body, fn):
    return "".join(fn(t) if code else t for code, t in split_code(body))

def _space(rng, fn_repl):
    return lambda t: re.sub(" ", lambda m: fn_repl(), t)

def t_space2comment(rng, body, dbms):
    rand = rng.random() < 0.3
    return on_code(body, _space(rng, lambda: "/*%s*/" % (
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 6)))
        if rand else "")))

def t_space2blank(rng, body, dbms):
    return on_code(body, _space(rng, lambda: rng.choice(["\t", "\n", "\r", "\x0c", "\r\n"])))

def t_space2tab(rng, body, dbms):
    return on_code(body, _space(rng, lambda: "\t"))

def t_space2newline(rng, body, dbms):
    return on_code(body, _space(rng, lambda: rng.choice(["\n", "\r\n"])))

def t_space2hash(rng, body, dbms):
    return on_code(body, _space(rng, lambda: "#%s\n" % "".join(
        rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(rng.randint(3, 8)))))

def t_space2mysqldash(rng, body, dbms):
    return on_code(body, _space(rng, lambda: "-- \n"))

def t_space2dash(rng, body, dbms):
    return on_code(body, _space(rng, lambda: "--%s\n" % "".join(
        rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8)))))

def t_versioned(rng, body, dbms):
    ver = rng.choice(["", "50000", "50001", "40100", "12345"])
    def fn(t):
        return re.sub(r"\b(%s)\b" % "|".join(VERSIONABLE),
                      lambda m: "/*!%s%s*/" % (ver, m.group(1)), t, flags=re.IGNORECASE)
    return on_code(body, fn)

def t_modsecversioned(rng, body, dbms):
    return " /*!%05d%s*/" % (rng.randint(30000, 50000), body)

def t_symboliclogical(rng, body, dbms):
    def fn(t):
        t = re.sub(r"\band\b", "&&", t, flags=re.IGNORECASE)
        return re.sub(r"\bor\b", "||", t, flags=re.IGNORECASE)
    return on_code(body, fn)

def t_equaltolike(rng, body, dbms):
    return on_code(body, lambda t: re.sub(r"(?<![<>!=:])=(?!=)", " like ", t))

def t_between(rng, body, dbms):
    return on_code(body, lambda t: re.sub(r"(?<![<>])>(\d+)", r" not between 0 and \1", t))

def t_infoschemacomment(rng, body, dbms):
    return on_code(body, lambda t: re.sub(r"(?i)information_schema\.",
                                          "information_schema/**/.", t))

def t_concat2concatws(rng, body, dbms):
    return on_code(body, lambda t: re.sub(r"(?i)\bconcat\(", "concat_ws(0x00,", t))

# name: (fn, dbms allowed or None, needs, introduces control chars)
TRANSFORMS = {
    "space2comment": (t_space2comment, None, " ", False),
    "space2randomblank": (t_space2blank, None, " ", True),
    "space2tab": (t_space2tab, None, " ", False),
    "space2newline": (t_space2newline, None, " ", True),
    "space2hash": (t_space2hash, ["my"], " ", True),
    "space2mysqldash": (t_space2mysqldash, ["my"], " ", True),
    "space2dash": (t_space2dash, ["ms", "sl"], " ", True),
    "versionedkeywords": (t_versioned, ["my"], None, False),
    "modsecurityversioned": (t_modsecversioned, ["my"], " ", False),
    "symboliclogical": (t_symboliclogical, ["my"], " and | or ", False),
    "equaltolike": (t_equaltolike, None, "=", False),
    "between": (t_between, None, ">", False),
    "informationschemacomment": (t_infoschemacomment, ["my"], "information_schema.", False),
    "concat2concatws": (t_concat2concatws, ["my"], "concat(", False),
}

def applicable(name, body, dbms, allow_ctl):
    fn, dbs, needs, ctl = TRANSFORMS[name]
    if dbs is not None and dbms not in dbs:
        return False
    if ctl and not allow_ctl:
        return False
    code = "".join(t for c, t in split_code(body) if c).lower()
    if not KW_RE.search(code):  # bare breakouts / comments are left alone
        return False
    if needs is not None and not any(n in code for n in needs.split("|")):
        return False
    if name == "equaltolike" and (";" in code or re.search(r"\b(set|values|update)\b", code)):
        return False
    if name == "symboliclogical" and "between" in code:
        return False
    if name == "between" and ("between" in code or "&&" in code):
        return False
    if name in ("space2hash", "space2mysqldash") and "/*" in code:
        return False
    return True

def apply_case(rng, body, style):
    if style == "lower":
        return body
    def fn(t):
        def kw(m):
            w = m.group(0)
            if style == "upper":
                return w.upper()
            while True:
                r = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in w)
                if len(w) < 2 or (r != w.lower() and r != w.upper()):
                    return r
        return KW_RE.sub(kw, t)
    return on_code(body, fn)

# ---- wire encoders ------------------------------------------------------------

RAW_SAFE = "-_.~'()*,=!:;/@$"
UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"

def _pct(b, lower=False):
    return ("%%%02x" if lower else "%%%02X") % b

def encode_value(rng, s, style):
    data = s.encode("utf-8")
    lower = rng.random() < 0.3
    out = []
    for b in data:
        ch = chr(b)
        if style == "full":
            out.append(_pct(b, lower))
        elif style == "form":
            out.append("+" if ch == " " else (ch if ch in UNRESERVED else _pct(b)))
        elif style in ("pct", "double"):
            out.append(ch if ch in UNRESERVED else _pct(b))
        elif style in ("raw", "plus", "partial"):
            if ch == " ":
                out.append("+" if style == "plus" else "%20")
            elif ch in UNRESERVED or ch in RAW_SAFE:
                if style == "partial" and rng.random() < 0.4:
                    out.append(_pct(b, lower))
                else:
                    out.append(ch)
            else:
                out.append(_pct(b, lower))
        else:
            raise ValueError(style)
    v = "".join(out)
    if style == "double":
        v = v.replace("%", "%25")
    return v

def encode_body_raw(s):
    """curl --data style: sent as typed, only &, %, + and control chars escaped."""
    out = []
    for ch in s:
        if ch in "&%+" or ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append("".join(_pct(b) for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)

def encode_header_raw(s):
    """Header values cannot carry CR/LF/NUL; anything else goes out literally."""
    return "".join(_pct(ord(c)) if (ord(c) < 0x20 and c != "\t") or ord(c) == 0x7f else c
                   for c in s)
