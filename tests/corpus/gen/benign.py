"""Benign traffic, part 1: request helpers plus search / free-text / name / login
families (the hard cases).  Part 2 lives in benign_b.py; generate() combines both."""

import json

from . import common as C
from . import benign_data as D

# ---- request helpers -------------------------------------------------------------

def q_encoder(rng):
    """How the value gets into the URL: HTML form GET, JS encodeURIComponent, or typed."""
    return C.weighted(rng, [(60, C.enc_form), (30, C.enc_component),
                            (10, lambda s: C.quote(s, safe="-_.~/:,@!$'()*"))])

def google_ref(rng, text):
    return "https://www.google.com/search?q=" + C.enc_form(text) + rng.choice(
        ["", "&sca_esv=%s" % C.rand_hex(rng, 16), "&client=firefox-b-d", "&hl=en&source=hp"])

def internal_ref(rng, host):
    return "https://%s%s" % (host, rng.choice(["/", "/index.html", "/products", "/blog/",
                                               "/account", "/search?q=" + C.rand_str(rng, 5)]))

def html_get(rng, host, uri, referer="auto", method="GET"):
    if referer == "auto":
        referer = internal_ref(rng, host) if rng.random() < 0.5 else None
    return C.finish(method, uri, C.browser_headers(rng, host, "html", referer=referer))

def api_headers(rng, host, browser=None, auth=True):
    browser = rng.random() < 0.6 if browser is None else browser
    if browser:
        h = C.browser_headers(rng, host, "json", referer="https://%s/app" % host.replace("api.", "www."))
        if rng.random() < 0.5:
            h.append(["X-Requested-With", "XMLHttpRequest"])
    else:
        h = C.tool_headers(rng, host)
    if auth and rng.random() < 0.6:
        h.append(["Authorization", "Bearer " + jwt(rng)])
    return h

def api_get(rng, host, uri, browser=None):
    return C.finish("GET", uri, api_headers(rng, host, browser))

def json_req(rng, method, host, path, obj, browser=None):
    h = api_headers(rng, host, browser)
    if method in ("POST", "PUT", "PATCH") and rng.random() < 0.3:
        h.append(["Origin", "https://" + host.replace("api.", "www.")])
    body = C.json_body(obj, rng) if obj is not None else ""
    return C.finish(method, path, h, body, "application/json" + rng.choice(["", "; charset=utf-8"])
                    if body else None)

def form_post(rng, host, path, pairs, referer=True):
    h = C.browser_headers(rng, host, "html",
                          referer=("https://%s%s" % (host, path)) if referer else None)
    h.append(["Origin", "https://" + host])
    return C.finish("POST", path, h, C.form_body(pairs), "application/x-www-form-urlencoded")

def b64url(rng, raw_len):
    import base64
    raw = bytes(rng.randrange(256) for _ in range(raw_len))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")

def jwt(rng):
    import base64
    def enc(o):
        return base64.urlsafe_b64encode(json.dumps(o, separators=(",", ":")).encode()).decode().rstrip("=")
    head = enc({"alg": rng.choice(["RS256", "HS256", "ES256"]), "typ": "JWT"})
    body = enc({"sub": str(rng.randint(10000, 99999)), "iat": rng.randint(1714000000, 1717000000),
                "exp": rng.randint(1717000000, 1718000000), "scope": rng.choice(["read", "read write",
                                                                               "openid profile email"])})
    return head + "." + body + "." + b64url(rng, rng.choice([32, 64]))

def phrase(rng, base):
    mod = rng.choice(D.QUERY_MODIFIERS)
    if rng.random() < 0.1:
        base = base.capitalize()
    elif rng.random() < 0.05:
        base = base.upper()
    return base + mod

# ---- searches --------------------------------------------------------------------

def search_request(rng, text):
    """One search for text on one of many realistic search endpoints."""
    enc = q_encoder(rng)
    kind = rng.randrange(11)
    ref = google_ref(rng, text) if rng.random() < 0.2 else "auto"
    if kind == 0:
        uri = "/search?q=" + enc(text) + rng.choice(["", "&page=2", "&category=all", "&sort=relevance"])
        return html_get(rng, "shop.example.test", uri, ref)
    if kind == 1:
        return html_get(rng, "www.example.test", "/search?query=" + enc(text), ref)
    if kind == 2:
        return html_get(rng, "blog.example.test", "/?s=" + enc(text), ref)
    if kind == 3:
        return html_get(rng, "forum.example.test", "/search.php?keywords=" + enc(text) +
                        "&terms=all&author=&sc=1&sf=all&sr=posts&sk=t&sd=d&st=0&ch=300&t=0&submit=Search")
    if kind == 4:
        return api_get(rng, "api.example.test", "/api/v1/search?q=" + enc(text) + "&limit=%d" %
                       rng.choice([10, 20, 50]))
    if kind == 5:
        cut = max(2, rng.randint(len(text) // 2, len(text)))
        return api_get(rng, "www.example.test", "/api/suggest?term=" + C.enc_component(text[:cut]) +
                       "&_=%d" % rng.randint(1716000000000, 1717000000000), browser=True)
    if kind == 6:
        return html_get(rng, "wiki.example.test", "/w/index.php?search=" + C.enc_form(text) +
                        "&title=Special%3ASearch&ns0=1&fulltext=1")
    if kind == 7:
        return json_req(rng, "POST", "api.example.test", "/api/search",
                        {"query": text, "page": rng.randint(1, 3), "filters": {"inStock": rng.random() < 0.5}})
    if kind == 8:
        return form_post(rng, "shop.example.test", "/search.php", [("searchFor", text), ("goButton", "go")])
    if kind == 9:
        return html_get(rng, "news.example.test", "/search?q=" + enc(text) + "&sort=date&from=2024-01-01")
    return html_get(rng, "www.example.test", "/results?search_query=" + C.enc_form(text), ref)

def f_search_sql_words(rng):
    return search_request(rng, phrase(rng, rng.choice(D.SQL_WORD_SEARCHES)))

def f_search_general(rng):
    t = phrase(rng, rng.choice(D.GENERAL_SEARCHES))
    if rng.random() < 0.2:
        t += " " + rng.choice(["under $50", "size 10", "black", "2-pack", "(refurbished)", "for men"])
    return search_request(rng, t)

def f_programming(rng):
    t = rng.choice(D.PROG_QUESTIONS) + rng.choice(["", "", " stackoverflow", " example", " tutorial",
                                                   " not working", " python3", " 2024"])
    if rng.random() < 0.4:
        enc = q_encoder(rng)
        return html_get(rng, "forum.example.test", "/questions/tagged/%s?tab=%s&q=%s" % (
            rng.choice(["sql", "python", "java", "bash", "css"]), rng.choice(["newest", "votes"]), enc(t)))
    return search_request(rng, t)

def f_math(rng):
    t = rng.choice(D.MATH_SEARCHES) + rng.choice(["", "", "", " calculator", " explained", " answer"])
    if rng.random() < 0.2:
        return api_get(rng, "api.example.test", "/api/calc?expr=" + C.enc_component(t), browser=True)
    return search_request(rng, t)

# ---- names, free text, logins -------------------------------------------------------

def person(rng):
    last = rng.choice(D.NAMES_APOS) if rng.random() < 0.7 else rng.choice(D.LAST_NAMES)
    return rng.choice(D.FIRST_NAMES), last

def email_for(rng, first, last):
    local = (first + "." + last).lower().replace("'", rng.choice(["", "'"])).replace(" ", "")
    local = local.encode("ascii", "ignore").decode()
    return local + "@" + rng.choice(["example.test", "mail.example.test", "corp.example.test"])

def f_names(rng):
    first, last = person(rng)
    kind = rng.randrange(8)
    if kind == 0:
        return html_get(rng, "intranet.example.test", "/directory?last_name=%s&first_name=%s" % (
            q_encoder(rng)(last), C.enc_form(first)))
    if kind == 1:
        return search_request(rng, rng.choice(D.POSSESSIVE_SEARCHES + [first + " " + last, last]))
    if kind == 2:
        return form_post(rng, "accounts.example.test", "/signup", [
            ("first_name", first), ("last_name", last), ("email", email_for(rng, first, last)),
            ("password", password(rng)), ("terms", "on")])
    if kind == 3:
        return json_req(rng, "POST", "api.example.test", "/api/v1/customers", {
            "firstName": first, "lastName": last, "email": email_for(rng, first, last),
            "address": {"line1": "%d %s" % (rng.randint(1, 200), rng.choice(
                ["O'Connell Street", "St. Mary's Road", "King's Parade", "Main St., Apt #4B"])),
                "city": "Dublin", "postcode": "D01 F5P2"}})
    if kind == 4:
        return json_req(rng, "PUT", "api.example.test", "/api/v1/users/%d" % rng.randint(1, 99999),
                        {"displayName": first + " " + last, "bio": rng.choice(D.SENTENCES)})
    if kind == 5:
        return api_get(rng, "api.example.test", "/api/v1/contacts?name=" + C.enc_component(last) +
                       "&fields=id,name,email")
    if kind == 6:
        return html_get(rng, "blog.example.test", "/authors/" + C.enc_path(
            (first + "-" + last).lower()) + "/" + rng.choice(["", "posts", "?page=2"]))
    return search_request(rng, last + rng.choice([" books", " family history", " pub", " law firm"]))

def free_text(rng, n_min=1, n_max=4):
    parts = [rng.choice(D.RARE_SENTENCES if rng.random() < 0.02 else D.SENTENCES)
             for _ in range(rng.randint(n_min, n_max))]
    if rng.random() < 0.15:
        parts.append(rng.choice(["-- " + rng.choice(D.FIRST_NAMES), "#happycustomer", "Regards, " +
                                 " ".join(person(rng))]))
    return " ".join(parts) if rng.random() < 0.7 else "\n".join(parts)

def f_comments(rng):
    first, last = person(rng)
    text = free_text(rng)
    kind = rng.randrange(5)
    if kind == 0:
        return form_post(rng, "blog.example.test", "/comments/post", [
            ("post_id", str(rng.randint(1, 5000))), ("author", first), ("email", email_for(rng, first, last)),
            ("body", text)])
    if kind == 1:
        return form_post(rng, "shop.example.test", "/reviews/submit", [
            ("product_id", str(rng.randint(1, 99999))), ("rating", str(rng.randint(1, 5))),
            ("title", rng.choice(D.SENTENCES).split(".")[0].split("?")[0].split(";")[0]), ("review", text)])
    if kind == 2:
        return form_post(rng, "www.example.test", "/contact", [
            ("name", first + " " + last), ("email", email_for(rng, first, last)),
            ("subject", rng.choice(["Order question", "Re: delivery", "Feedback", "Return"])), ("message", text)])
    if kind == 3:
        return form_post(rng, "forum.example.test", "/posting.php?mode=reply&t=%d" % rng.randint(1, 90000), [
            ("subject", "Re: " + rng.choice(D.SQL_WORD_SEARCHES)), ("message", text),
            ("post", "Submit"), ("form_token", C.rand_hex(rng, 40))])
    return json_req(rng, "POST", "api.example.test", "/api/v1/%ss/%d/comments" % (
        rng.choice(D.COMMENT_TOPICS), rng.randint(1, 9999)), {"body": text, "notify": rng.random() < 0.5})

PW_WORDS = ["Summer", "Winter", "Dragon", "Sunshine", "Football", "Monkey", "Purple", "Coffee", "Tiger"]
PW_SYMBOLS = "!@#$%^&*()-_=+[]{};:'\",.<>/?\\|`~"

def password(rng):
    kind = rng.randrange(4)
    if kind == 0:
        return rng.choice(PW_WORDS) + str(rng.randint(1, 2024)) + rng.choice("!@#$%&*?.")
    if kind == 1:
        return "-".join(rng.choice(["correct", "horse", "battery", "staple", "purple", "lamp", "river",
                                    "orange", "table", "select", "drop", "union"]) for _ in range(4))
    alphabet = C.ALNUM + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + PW_SYMBOLS
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(12, 24)))

def f_login(rng):
    first, last = person(rng)
    user = rng.choice([email_for(rng, first, last), (first[0] + last).lower().replace("'", ""),
                       first.lower() + str(rng.randint(1, 99))])
    pw = password(rng)
    kind = rng.randrange(4)
    if kind == 0:
        return form_post(rng, "accounts.example.test", "/login", [("username", user), ("password", pw)])
    if kind == 1:
        return form_post(rng, "www.example.test", "/wp-login.php", [
            ("log", user), ("pwd", pw), ("wp-submit", "Log In"),
            ("redirect_to", "https://www.example.test/wp-admin/"), ("testcookie", "1")])
    if kind == 2:
        return json_req(rng, "POST", "api.example.test", "/api/v1/auth/login",
                        {"email": user, "password": pw, "rememberMe": rng.random() < 0.5}, browser=True)
    return form_post(rng, "accounts.example.test", "/account/password", [
        ("csrf_token", C.rand_str(rng, 32, C.B64URL)), ("current_password", password(rng)),
        ("new_password", pw), ("confirm_password", pw)])

def f_i18n(rng):
    word = rng.choice(D.CITIES_UTF8 + D.UTF8_WORDS)
    kind = rng.randrange(5)
    if kind == 0:
        return search_request(rng, word + rng.choice(["", " hotels", " weather", " map"]))
    if kind == 1:
        return html_get(rng, "www.example.test", "/%s/%s/%s" % (
            rng.choice(["de", "fr", "ja", "es"]), C.quote(rng.choice(["städte", "villes", "都市", "ciudades"])),
            C.quote(word.lower().replace(" ", "-"))))
    if kind == 2:
        return json_req(rng, "POST", "api.example.test", "/api/v1/addresses", {
            "city": word, "street": "Bahnhofstraße %d" % rng.randint(1, 99), "country": rng.choice(
                ["CH", "DE", "JP", "BR", "PL"])})
    if kind == 3:
        return api_get(rng, "api.example.test", "/api/v1/geocode?address=" + C.enc_component(word) +
                       "&lang=" + rng.choice(["de", "ja", "pt-BR", "uk"]))
    return form_post(rng, "shop.example.test", "/checkout/address", [
        ("name", rng.choice(["José Müller", "Zoë Ångström", "田中 太郎", "Łukasz Żak"])), ("city", word),
        ("zip", str(rng.randint(10000, 99999)))])

FAMILIES_A = [
    ("search_sql_words", f_search_sql_words, 380), ("search_general", f_search_general, 230),
    ("programming_questions", f_programming, 230), ("math_search", f_math, 160),
    ("names_apostrophe", f_names, 260), ("comment_posts", f_comments, 300),
    ("login_passwords", f_login, 200), ("i18n_utf8", f_i18n, 200),
]

def generate(rng):
    from .benign_c import FAMILIES_B
    out, seen = [], {}
    for family, fn, count in FAMILIES_A + FAMILIES_B:
        made = tries = 0
        while made < count:
            tries += 1
            assert tries < count * 20, "family %s cannot produce enough unique requests" % family
            req = fn(rng)
            key = json.dumps([req["method"], req["uri"], req["body"]])
            if key in seen:
                continue
            seen[key] = True
            req["family"] = family
            out.append(req)
            made += 1
    return out
