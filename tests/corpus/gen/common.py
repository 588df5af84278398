"""Shared helpers for the flowgate SQLi corpus generator.

Everything here is deterministic given the random.Random instance passed in.
No sets are iterated (string hashing is randomised per process); only lists
and insertion-ordered dicts are used.
"""

import json
import random
from urllib.parse import quote, quote_plus

HOSTS = [
    "shop.example.test", "www.example.test", "api.example.test",
    "news.example.test", "forum.example.test", "blog.example.test",
    "accounts.example.test", "static.example.test", "cdn.example.test",
    "intranet.example.test", "portal.example.test", "wiki.example.test",
]

CHROME_VERSIONS = ["120.0.0.0", "122.0.0.0", "123.0.0.0", "124.0.0.0", "125.0.0.0"]
FIREFOX_VERSIONS = ["115.0", "121.0", "124.0", "125.0", "126.0"]

def user_agent(rng):
    kind = rng.choice(["chrome_win", "chrome_win", "chrome_mac", "firefox_win",
                       "firefox_linux", "safari_mac", "safari_ios", "chrome_android",
                       "edge_win"])
    cv = rng.choice(CHROME_VERSIONS)
    fv = rng.choice(FIREFOX_VERSIONS)
    if kind == "chrome_win":
        ua = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
              "(KHTML, like Gecko) Chrome/%s Safari/537.36" % cv)
    elif kind == "chrome_mac":
        ua = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
              "(KHTML, like Gecko) Chrome/%s Safari/537.36" % cv)
    elif kind == "edge_win":
        ua = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
              "(KHTML, like Gecko) Chrome/%s Safari/537.36 Edg/%s" % (cv, cv))
    elif kind == "firefox_win":
        ua = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:%s) Gecko/20100101 "
              "Firefox/%s" % (fv, fv))
    elif kind == "firefox_linux":
        ua = "Mozilla/5.0 (X11; Linux x86_64; rv:%s) Gecko/20100101 Firefox/%s" % (fv, fv)
    elif kind == "safari_mac":
        ua = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.4.1 Safari/605.1.15")
    elif kind == "safari_ios":
        ua = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) "
              "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 "
              "Mobile/15E148 Safari/604.1")
    else:
        ua = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
              "(KHTML, like Gecko) Chrome/%s Mobile Safari/537.36" % cv)
    return kind, ua

def tool_user_agent(rng):
    return rng.choice([
        "curl/8.5.0", "curl/7.88.1", "python-requests/2.31.0", "Go-http-client/1.1",
        "okhttp/4.12.0", "axios/1.6.8", "PostmanRuntime/7.37.3", "Wget/1.21.4",
        "Java/17.0.10", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    ])

ACCEPT_HTML = ("text/html,application/xhtml+xml,application/xml;q=0.9,"
               "image/avif,image/webp,image/apng,*/*;q=0.8")
ACCEPT_LANGS = ["en-US,en;q=0.9", "en-GB,en;q=0.9", "de-DE,de;q=0.9,en;q=0.8",
                "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "ja,en-US;q=0.9,en;q=0.8",
                "es-ES,es;q=0.9", "en-US,en;q=0.5", "pt-BR,pt;q=0.9,en;q=0.8"]

ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

def rand_str(rng, n, alphabet=ALNUM):
    return "".join(rng.choice(alphabet) for _ in range(n))

def rand_hex(rng, n):
    return rand_str(rng, n, "0123456789abcdef")

def cookie_header(rng, host):
    """A realistic browser Cookie header (analytics, consent, session)."""
    parts = []
    if rng.random() < 0.7:
        ts = rng.randint(1690000000, 1717000000)
        parts.append("_ga=GA1.1.%d.%d" % (rng.randint(100000000, 2147483647), ts))
    if rng.random() < 0.4:
        parts.append("_gid=GA1.2.%d.%d" % (rng.randint(100000000, 2147483647),
                                           rng.randint(1715000000, 1717000000)))
    if rng.random() < 0.25:
        parts.append("OptanonConsent=isGpcEnabled=0&datestamp=Tue+May+14+2024+"
                     "10%3A22%3A11+GMT%2B0200+(Central+European+Summer+Time)&version="
                     "202402.1.0&groups=C0001%3A1%2CC0002%3A" + rng.choice("01") +
                     "%2CC0004%3A0&hosts=&consentId=" + rand_hex(rng, 8) + "-" +
                     rand_hex(rng, 4) + "-" + rand_hex(rng, 4) + "-" + rand_hex(rng, 12))
    if rng.random() < 0.2:
        parts.append("cookieconsent_status=" + rng.choice(["dismiss", "allow", "deny"]))
    sess = rng.choice(["PHPSESSID", "JSESSIONID", "sessionid", "connect.sid",
                       "ASP.NET_SessionId", "laravel_session", "sid"])
    if sess == "connect.sid":
        parts.append("connect.sid=s%3A" + rand_str(rng, 32, B64URL) + "." +
                     rand_str(rng, 43, B64URL))
    elif sess == "JSESSIONID":
        parts.append("JSESSIONID=" + rand_hex(rng, 32).upper())
    else:
        parts.append(sess + "=" + rand_str(rng, rng.choice([26, 32, 40])))
    if rng.random() < 0.2:
        parts.append("csrftoken=" + rand_str(rng, 32, B64URL))
    if rng.random() < 0.15:
        parts.append("cart=" + quote(json.dumps([{"id": rng.randint(1, 9999),
                                                  "qty": rng.randint(1, 4)}],
                                                separators=(",", ":")), safe=""))
    if rng.random() < 0.15:
        parts.append("prefs=" + quote('{"theme":"%s","lang":"en"}' %
                                      rng.choice(["dark", "light"]), safe=""))
    if rng.random() < 0.1:
        parts.append("recently_viewed=" + "%2C".join(str(rng.randint(100, 99999))
                                                       for _ in range(rng.randint(2, 6))))
    rng.shuffle(parts)
    return "; ".join(parts)

def browser_headers(rng, host, kind="html", referer=None, cookie=True, ua=None):
    """Headers in the order a browser would send them."""
    ua_kind, ua_str = user_agent(rng) if ua is None else ("custom", ua)
    h = [["Host", host]]
    chromium = ua_kind.startswith("chrome") or ua_kind == "edge_win"
    if chromium and rng.random() < 0.7:
        h.append(["sec-ch-ua", '"Chromium";v="124", "Google Chrome";v="124", '
                  '"Not-A.Brand";v="99"'])
        h.append(["sec-ch-ua-mobile", "?1" if "android" in ua_kind else "?0"])
        h.append(["sec-ch-ua-platform", '"Android"' if "android" in ua_kind
                  else rng.choice(['"Windows"', '"macOS"'])])
    h.append(["User-Agent", ua_str])
    if kind == "html":
        h.append(["Accept", ACCEPT_HTML])
    elif kind == "json":
        h.append(["Accept", rng.choice(["application/json", "application/json, text/plain, */*",
                                        "*/*"])])
    elif kind == "image":
        h.append(["Accept", "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"])
    elif kind == "css":
        h.append(["Accept", "text/css,*/*;q=0.1"])
    else:
        h.append(["Accept", "*/*"])
    h.append(["Accept-Language", rng.choice(ACCEPT_LANGS)])
    h.append(["Accept-Encoding", rng.choice(["gzip, deflate, br", "gzip, deflate, br, zstd",
                                             "gzip, deflate"])])
    if referer:
        h.append(["Referer", referer])
    if cookie and rng.random() < 0.75:
        h.append(["Cookie", cookie_header(rng, host)])
    if rng.random() < 0.5:
        h.append(["Connection", "keep-alive"])
    return h

def tool_headers(rng, host, accept="application/json"):
    h = [["Host", host], ["User-Agent", tool_user_agent(rng)], ["Accept", accept]]
    if rng.random() < 0.5:
        h.append(["Accept-Encoding", "gzip, deflate"])
    return h

def finish(method, uri, headers, body="", content_type=None):
    """Attach Content-Type/Content-Length for bodies and return the record."""
    headers = [list(x) for x in headers]
    if body or method in ("POST", "PUT", "PATCH"):
        if content_type:
            headers.append(["Content-Type", content_type])
        headers.append(["Content-Length", str(len(body.encode("utf-8")))])
    return {"method": method, "uri": uri, "headers": headers, "body": body}

def serialize(req):
    """Wire form: method SP uri SP HTTP/1.1 CRLF headers CRLF CRLF body."""
    lines = ["%s %s HTTP/1.1" % (req["method"], req["uri"])]
    for k, v in req["headers"]:
        lines.append("%s: %s" % (k, v))
    return ("\r\n".join(lines) + "\r\n\r\n" + req["body"]).encode("utf-8")

# ---- URL encoders -------------------------------------------------------

def enc_form(s):
    """application/x-www-form-urlencoded, what browsers send for forms."""
    return quote_plus(s, safe="")

def enc_component(s):
    """JavaScript encodeURIComponent."""
    return quote(s, safe="-_.!~*'()")

def enc_path(s):
    return quote(s, safe="-_.!~*'()@:,;=+$")

def query_string(pairs, encoder=enc_form):
    return "&".join(enc_form(k).replace("%5B", "[").replace("%5D", "]") + "=" + encoder(v)
                    if v is not None else enc_form(k) for k, v in pairs)

def form_body(pairs):
    return "&".join(enc_form(k) + "=" + enc_form(v) for k, v in pairs)

def json_body(obj, rng=None):
    if rng is not None and rng.random() < 0.3:
        return json.dumps(obj, ensure_ascii=False, indent=None)
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))

def weighted(rng, items):
    """items: list of (weight, value)."""
    total = sum(w for w, _ in items)
    x = rng.random() * total
    for w, v in items:
        x -= w
        if x < 0:
            return v
    return items[-1][1]
