"""Build malicious (SQL injection) requests: pick an endpoint and injectable parameter,
render a payload template, apply evasion transforms, encode it the way a client would
send it and place it in the query string, a form body, a JSON body or a header."""

import json

from . import common as C
from . import evasion as E
from .render import render
from .payloads_a import TAUTOLOGY, UNION, STACKED, COMMENT
from .payloads_b import TIME, BOOLEAN, ERROR, INFO, OOB

FAMILIES = [  # family, templates, target count
    ("tautology", TAUTOLOGY, 90), ("union", UNION, 90), ("stacked", STACKED, 70),
    ("time_blind", TIME, 90), ("boolean_blind", BOOLEAN, 85), ("error_based", ERROR, 80),
    ("info_schema", INFO, 70), ("comment_terminator", COMMENT, 70),
    ("out_of_band", OOB, 55),
]

TERMS = ["shoes", "laptop", "red dress", "coffee", "phone case", "garden hose", "tent",
         "usb c cable", "books", "watch", "headphones", "desk lamp", "yoga mat"]
USERS = ["admin", "admin", "administrator", "root", "jdoe", "alice", "m.ross", "test",
         "guest", "sa", "webmaster", "support"]
VALUES = {
    "int": lambda r: str(r.randint(1, 99999)), "small": lambda r: str(r.randint(1, 60)),
    "term": lambda r: r.choice(TERMS), "user": lambda r: r.choice(USERS),
    "sortcol": lambda r: r.choice(["price", "name", "created_at", "id", "title", "rating"]),
    "lang": lambda r: r.choice(["en", "de", "fr", "es"]), "year": lambda r: str(r.randint(2015, 2024)),
    "month": lambda r: str(r.randint(1, 12)), "date": lambda r: "2024-%02d-%02d" % (r.randint(1, 12), r.randint(1, 28)),
    "slug": lambda r: r.choice(["about-us", "Main_Page", "shipping", "faq", "privacy"]),
    "city": lambda r: r.choice(["Berlin", "Austin", "Lyon", "Osaka"]),
    "dept": lambda r: r.choice(["sales", "hr", "it", "finance"]),
    "status": lambda r: r.choice(["shipped", "pending", "open"]),
    "ip": lambda r: "203.0.113.%d" % r.randint(1, 254),
}
# host, path, [(param, valuekind or fixed "=text", ctx or None)]
QUERY_EP = [
    ("shop.example.test", "/product.php", [("id", "int", "num")]),
    ("shop.example.test", "/products/view", [("id", "int", "num"), ("ref", "=home", None)]),
    ("shop.example.test", "/catalog/item.asp", [("ItemID", "int", "num"), ("lang", "lang", None)]),
    ("www.example.test", "/index.php", [("option", "=com_content", None), ("view", "=article", None),
                                        ("id", "int", "num"), ("Itemid", "small", "num")]),
    ("news.example.test", "/news", [("cat", "small", "num"), ("page", "small", None)]),
    ("news.example.test", "/news.php", [("id", "int", "num")]),
    ("shop.example.test", "/search", [("q", "term", "like"), ("page", "small", None)]),
    ("www.example.test", "/search.aspx", [("query", "term", "like")]),
    ("api.example.test", "/api/v1/items", [("sort", "sortcol", "sort"), ("order", "=asc", None),
                                           ("limit", "=20", None)]),
    ("api.example.test", "/api/v2/orders", [("status", "status", "str"), ("customer_id", "int", "num")]),
    ("portal.example.test", "/profile", [("user", "user", "str")]),
    ("forum.example.test", "/viewtopic.php", [("t", "int", "num"), ("start", "=15", None)]),
    ("forum.example.test", "/memberlist.php", [("mode", "=viewprofile", None), ("u", "int", "num")]),
    ("shop.example.test", "/category.php", [("cat_id", "small", "num"), ("sort", "sortcol", "sort")]),
    ("www.example.test", "/download.php", [("file_id", "int", "num")]),
    ("www.example.test", "/artists.php", [("artist", "small", "num")]),
    ("shop.example.test", "/listproducts.php", [("cat", "small", "num")]),
    ("www.example.test", "/page", [("name", "slug", "str"), ("lang", "lang", "str")]),
    ("intranet.example.test", "/employees/search", [("dept", "dept", "str"), ("last_name", "=smith", "like")]),
    ("intranet.example.test", "/reports/view.jsp", [("report_id", "int", "num"), ("from", "date", "str"),
                                                    ("to", "date", None)]),
    ("api.example.test", "/api/v1/users", [("filter", "user", "str"), ("fields", "=id,name", None)]),
    ("blog.example.test", "/post.php", [("p", "int", "num"), ("preview", "=true", None)]),
    ("blog.example.test", "/archive", [("year", "year", "num"), ("month", "month", "num")]),
    ("shop.example.test", "/cart/add", [("product_id", "int", "num"), ("qty", "=1", "num")]),
    ("portal.example.test", "/account/orders", [("order_id", "int", "num")]),
    ("www.example.test", "/events", [("city", "city", "str"), ("date", "date", None)]),
    ("wiki.example.test", "/index.php", [("title", "slug", "str"), ("action", "=history", None),
                                         ("oldid", "int", "num")]),
    ("api.example.test", "/v1/reviews", [("product", "int", "num"), ("rating", "=5", "num")]),
]
FORM_EP = [
    ("accounts.example.test", "/login", [("username", "user", "str"), ("password", "=Winter2024!", "str")]),
    ("www.example.test", "/admin/login.php", [("user", "user", "str"), ("pass", "=letmein", "str"),
                                              ("submit", "=Login", None)]),
    ("accounts.example.test", "/account/signin", [("email", "=jdoe@example.test", "str"),
                                                  ("password", "=hunter2", "str"), ("remember", "=1", None)]),
    ("www.example.test", "/userinfo.php", [("uname", "user", "str"), ("pass", "=test", "str")]),
    ("www.example.test", "/contact", [("name", "=John Smith", "str"), ("email", "=john@example.test", "str"),
                                      ("message", "=Hello, is this in stock?", None)]),
    ("shop.example.test", "/search.php", [("searchFor", "term", "like"), ("goButton", "=go", None)]),
    ("shop.example.test", "/checkout/coupon", [("code", "=SAVE10", "str"), ("cart_id", "int", "num")]),
    ("blog.example.test", "/comments/post", [("post_id", "int", "num"), ("author", "=Jane", None),
                                             ("body", "=Nice article, thanks!", None)]),
    ("accounts.example.test", "/password/reset", [("email", "=alice@example.test", "str")]),
]
JSON_EP = [
    ("api.example.test", "POST", "/api/v1/login", lambda p, r: {"username": p, "password": "S3cret!x"}, "str"),
    ("api.example.test", "POST", "/api/v1/search", lambda p, r: {"query": p, "page": 1, "pageSize": 20}, "like"),
    ("api.example.test", "PUT", "/api/v1/users/%d", lambda p, r: {"email": "jdoe@example.test", "displayName": p}, "str"),
    ("api.example.test", "POST", "/api/v2/orders/lookup", lambda p, r: {"orderId": p}, "num"),
    ("api.example.test", "POST", "/graphql", lambda p, r: {
        "query": "query Product($id: ID!) { product(id: $id) { name price } }",
        "variables": {"id": p}}, "num"),
    ("api.example.test", "POST", "/api/v1/reports", lambda p, r: {
        "filter": {"status": p, "from": "2024-01-01"}, "sort": "created_at"}, "str"),
]
HEADER_SLOTS = [("Cookie", "user_id", "num"), ("Cookie", "lang", "str"), ("Cookie", "cart_id", "num"),
                ("User-Agent", None, "str"), ("X-Forwarded-For", None, "str"), ("Referer", None, "str")]

def _val(rng, kind):
    return kind[1:] if kind.startswith("=") else VALUES[kind](rng)

def _fits(tctx, ctx):
    if ctx == "sort":
        return tctx == "s"
    if ctx == "num":
        return tctx in ("a", "n")
    return tctx in ("a", "q", "qc", "L")

def build_payload(rng, templates, ctx, value, location, meta):
    cands = [t for t in templates if _fits(t[0], ctx)]
    tctx, dbms, tpl = rng.choice(cands)
    p = render(rng, tpl, dbms, ctx, value, location)
    body = p["body"]
    applied = []
    for _ in range(C.weighted(rng, [(40, 0), (40, 1), (15, 2), (5, 3)])):
        spaced = any(a.startswith("space2") for a in applied)
        ok = [n for n in E.TRANSFORMS if n not in applied and
              not (spaced and n.startswith("space2")) and
              E.applicable(n, body, p["dbms"], location not in ("header",))]
        if not ok:
            break
        name = rng.choice(ok)
        body = E.TRANSFORMS[name][0](rng, body, p["dbms"])
        applied.append(name)
    case = C.weighted(rng, [(40, "lower"), (45, "upper"), (15, "randomcase")])
    body = E.apply_case(rng, body, case)
    payload = p["prefix"] + body + p["term"]
    meta.update(dbms=p["dbms"], transforms=applied + p["tags"], case=case, template=tpl,
                payload=payload)
    return payload

def one(rng, family, templates, location):
    meta = {"family": family, "location": location}
    host_kind = "html"
    if location == "query":
        while True:
            host, path, params = rng.choice(QUERY_EP)
            inj = rng.choice([p for p in params if p[2]])
            if family == "comment_terminator" and inj[2] == "num" and rng.random() < 0.7:
                continue  # quote/comment breakouts mostly target string parameters
            if any(_fits(t[0], inj[2]) for t in templates):
                break
        style = C.weighted(rng, [(28, "form"), (22, "pct"), (18, "raw"), (12, "plus"),
                                 (7, "full"), (6, "partial"), (7, "double")])
        parts = []
        for name, kind, ctx in params:
            v = _val(rng, kind)
            if name == inj[0]:
                v = build_payload(rng, templates, ctx, v, location, meta)
                parts.append(name + "=" + E.encode_value(rng, v, style))
            else:
                parts.append(name + "=" + C.enc_form(v))
        meta.update(param=inj[0], encoding=style)
        uri = path + "?" + "&".join(parts)
        method, body, ctype = "GET", "", None
        if path.startswith("/api") or path.startswith("/v1"):
            host_kind = "json"
    elif location == "form":
        host, path, params = rng.choice(FORM_EP)
        inj = rng.choice([p for p in params if p[2]])
        style = C.weighted(rng, [(70, "form"), (20, "raw"), (10, "pct")])
        parts = []
        for name, kind, ctx in params:
            v = _val(rng, kind)
            if name == inj[0]:
                v = build_payload(rng, templates, ctx, v, location, meta)
                ev = (C.enc_form(v) if style == "form" else E.encode_body_raw(v)
                      if style == "raw" else E.encode_value(rng, v, "pct"))
            else:
                ev = C.enc_form(v)
            parts.append(name + "=" + ev)
        meta.update(param=inj[0], encoding=style)
        uri, method, body = path, "POST", "&".join(parts)
        ctype = "application/x-www-form-urlencoded"
    elif location == "json":
        host, method, path, mk, ctx = rng.choice(JSON_EP)
        if "%d" in path:
            path = path % rng.randint(1, 9999)
        v = build_payload(rng, templates, ctx, _val(rng, {"num": "int", "like": "term"}.get(ctx, "user")),
                          location, meta)
        body = C.json_body(mk(v, rng), rng)
        meta.update(param="json", encoding="json")
        uri, ctype, host_kind = path, "application/json", "json"
    else:
        host, path = rng.choice([("www.example.test", "/"), ("shop.example.test", "/index.php"),
                                 ("news.example.test", "/news"), ("portal.example.test", "/dashboard")])
        hname, cname, ctx = rng.choice(HEADER_SLOTS)
        base = {"User-Agent": "Mozilla/5.0", "X-Forwarded-For": _val(rng, "ip"),
                "Referer": "https://www.example.test/"}.get(hname) or _val(
                    rng, "int" if ctx == "num" else "lang")
        v = build_payload(rng, templates, ctx, base, location, meta)
        style = "pct" if hname == "Cookie" and rng.random() < 0.5 else "raw"
        if hname == "Cookie":
            ev = E.encode_value(rng, v, "pct") if style == "pct" else \
                E.encode_header_raw(v).replace(";", "%3B")
            hval = "%s=%s; PHPSESSID=%s" % (cname, ev, C.rand_str(rng, 26))
        else:
            hval = E.encode_header_raw(v)
        meta.update(param=cname or hname, encoding=style)
        uri, method, body, ctype = path, "GET", "", None
    if location == "header":
        headers = C.browser_headers(rng, host, host_kind, cookie=hname != "Cookie",
                                    ua=hval if hname == "User-Agent" else None)
        if hname == "Cookie":
            headers.append(["Cookie", hval])
        elif hname != "User-Agent":
            headers = [h for h in headers if h[0] != hname] + [[hname, hval]]
    elif rng.random() < 0.75:
        ref = "https://%s%s" % (host, rng.choice(["/", path])) if rng.random() < 0.5 else None
        headers = C.browser_headers(rng, host, host_kind, referer=ref)
    else:
        headers = C.tool_headers(rng, host, "application/json" if host_kind == "json" else "*/*")
    return C.finish(method, uri, headers, body, ctype), meta

def generate(rng):
    out = []
    seen_keys = {}
    for family, templates, count in FAMILIES:
        made = 0
        while made < count:
            if family == "comment_terminator":
                loc = C.weighted(rng, [(42, "query"), (45, "form"), (7, "json"), (6, "header")])
            else:
                loc = C.weighted(rng, [(68, "query"), (22, "form"), (5, "json"), (5, "header")])
            req, meta = one(rng, family, templates, loc)
            key = json.dumps([meta["payload"], meta["encoding"], meta["location"]])
            if key in seen_keys:
                continue
            seen_keys[key] = True
            req["family"] = family
            out.append((req, meta))
            made += 1
    return out
