"""Benign traffic, part 2: browsing, assets, APIs, tracking, auth flows, GraphQL, misc."""

import base64

from . import common as C
from . import benign_data as D
from .benign import html_get, api_get, json_req, form_post, b64url

def slug(rng, n=None):
    return "-".join(rng.choice(D.PRODUCT_WORDS) for _ in range(n or rng.randint(2, 4)))

def f_product(rng):
    kind = rng.randrange(8)
    pid = rng.randint(1, 99999)
    if kind == 0:
        return html_get(rng, "shop.example.test", "/product.php?id=%d" % pid)
    if kind == 1:
        return html_get(rng, "shop.example.test", "/p/%s-%d" % (slug(rng), pid))
    if kind == 2:
        return html_get(rng, "shop.example.test", "/products/%s%s" % (slug(rng), rng.choice(
            ["", "?variant=%d" % rng.randint(10 ** 9, 10 ** 10), "?color=oak&size=L"])))
    if kind == 3:
        return html_get(rng, "shop.example.test", "/c/%s?%s" % (rng.choice(
            ["tables", "lighting", "mens/shoes/running", "home-office", "sleep"]), C.query_string(
            [("color", rng.choice(["oak", "black", "navy"])), ("price_min", str(rng.randint(0, 50))),
             ("price_max", str(rng.randint(60, 500)))])))
    if kind == 4:
        return html_get(rng, "shop.example.test", "/dp/B0%s?th=1&psc=1" % C.rand_str(
            rng, 8, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    if kind == 5:
        return html_get(rng, "shop.example.test", "/product/%d/reviews?page=%d&sort=%s" % (
            pid, rng.randint(1, 9), rng.choice(["newest", "helpful", "rating-desc"])))
    if kind == 6:
        return form_post(rng, "shop.example.test", "/cart/add", [
            ("product_id", str(pid)), ("qty", str(rng.randint(1, 3))),
            ("options[size]", rng.choice(["S", "M", "L", "XL"])), ("options[colour]", rng.choice(["Oak", "Grey"]))])
    return html_get(rng, "news.example.test", "/news.php?id=%d&cat=%d" % (pid, rng.randint(1, 30)))

ASSETS = ["/static/js/main.%s.js", "/static/css/main.%s.css", "/_next/static/chunks/pages/_app-%s.js",
          "/assets/app-%s.js", "/build/vendor.%s.js"]
ICONS = ["union-square-hotel.jpg", "select-arrow.svg", "drop-down.css", "table-sort.min.js",
         "delete.svg", "insert-row.svg", "sleep-mode.png", "or-divider.svg", "logo.svg", "hero@2x.webp"]

def f_static(rng):
    host = rng.choice(["static.example.test", "cdn.example.test", "www.example.test"])
    kind = rng.randrange(7)
    if kind == 0:
        path = rng.choice(ASSETS) % C.rand_hex(rng, 8)
    elif kind == 1:
        path = "/wp-content/themes/%s/style.css?ver=%s" % (rng.choice(["astra", "twentytwentyfour"]),
                                                          rng.choice(["6.5.2", "4.6.1", "1.0"]))
    elif kind == 2:
        path = "/images/products/%d-%s.jpg" % (rng.randint(1, 99999), rng.choice(["large", "thumb", "zoom"]))
    elif kind == 3:
        path = "/_next/image?url=%s&w=%d&q=75" % (C.enc_component("/images/" + rng.choice(ICONS)),
                                                 rng.choice([640, 750, 1080, 1920]))
    elif kind == 4:
        path = "/img/" + rng.choice(ICONS) + rng.choice(["", "?v=%d" % rng.randint(1, 40)])
    elif kind == 5:
        path = rng.choice(["/fonts/inter-var.woff2", "/favicon.ico", "/apple-touch-icon.png",
                           "/wp-includes/js/jquery/jquery.min.js?ver=3.7.1", "/site.webmanifest"])
        path += "?v=%s" % C.rand_hex(rng, 6) if rng.random() < 0.5 else ""
    else:
        path = "/media/catalog/product/cache/%s/%s/%s/%s.jpg" % (C.rand_hex(rng, 32), rng.choice("abcdef"),
                                                                 rng.choice("0123456789"), slug(rng, 2))
    accept = "css" if ".css" in path else ("image" if any(x in path for x in (".jpg", ".png", ".svg",
                                                                             ".webp", "image?")) else "any")
    h = C.browser_headers(rng, host, accept, referer="https://www.example.test/", cookie=False)
    if rng.random() < 0.3:
        h.append(["If-None-Match", '"%s"' % C.rand_hex(rng, 16)])
    return C.finish("GET", path, h)

def f_rest(rng):
    rid = rng.randint(1, 99999)
    res = rng.choice(["orders", "items", "users", "tickets", "invoices", "projects", "tasks"])
    kind = rng.randrange(7)
    if kind == 0:
        return api_get(rng, "api.example.test", "/api/v1/%s/%d" % (res, rid))
    if kind == 1:
        return api_get(rng, "api.example.test", "/api/v2/%s?ids=%s" % (res, "%2C".join(
            str(rng.randint(1, 9999)) for _ in range(rng.randint(2, 6)))))
    if kind == 2:
        return json_req(rng, "POST", "api.example.test", "/api/v1/%s" % res, {
            "name": slug(rng).replace("-", " ").title(), "quantity": rng.randint(1, 10),
            "price": round(rng.uniform(1, 500), 2), "tags": [rng.choice(D.PRODUCT_WORDS) for _ in range(2)],
            "active": True, "parentId": None})
    if kind == 3:
        return json_req(rng, "PUT", "api.example.test", "/api/v1/%s/%d" % (res, rid), {
            "status": rng.choice(["open", "closed", "pending", "shipped"]), "updatedBy": rng.randint(1, 500)})
    if kind == 4:
        return json_req(rng, "PATCH", "api.example.test", "/api/v1/%s/%d" % (res, rid), [
            {"op": "replace", "path": "/status", "value": rng.choice(["done", "in_progress"])}])
    if kind == 5:
        return json_req(rng, "DELETE", "api.example.test", "/api/v1/%s/%d" % (res, rid), None)
    return json_req(rng, "POST", "api.example.test", "/api/v1/%s/%d/actions/%s" % (
        res, rid, rng.choice(["archive", "approve", "duplicate"])), {"reason": rng.choice(
            ["duplicate", "customer request", "n/a", "Order #%d merged" % rid])})

def f_pagination(rng):
    kind = rng.randrange(7)
    if kind == 0:
        q = [("page", str(rng.randint(1, 40))), ("sort", rng.choice(["price", "name", "rating", "date"])),
             ("order", rng.choice(["asc", "desc"]))]
        return html_get(rng, "shop.example.test", "/products?" + C.query_string(q))
    if kind == 1:
        return api_get(rng, "api.example.test", "/api/v1/articles?page[number]=%d&page[size]=%d&sort=%s" % (
            rng.randint(1, 20), rng.choice([10, 25, 50]), rng.choice(["-created_at", "title,-updated_at", "-id"])))
    if kind == 2:
        return api_get(rng, "api.example.test", "/api/v1/events?limit=%d&offset=%d" % (
            rng.choice([20, 50, 100]), rng.randint(0, 50) * 20))
    if kind == 3:
        return api_get(rng, "api.example.test", "/api/v1/issues?filter[status]=%s&filter[assignee]=me&include=%s" % (
            rng.choice(["open", "closed"]), rng.choice(["author", "comments,author", "labels"])))
    if kind == 4:  # OData: $select / $filter / $orderby with quotes and 'and'
        q = [("$select", rng.choice(["Name,Price", "Id,Title,Modified", "DisplayName,Mail"])),
             ("$filter", rng.choice(["Price gt %d and Category eq 'Books'" % rng.randint(5, 50),
                                     "startswith(Title,'Union')", "Status eq 'Active' or Status eq 'Pending'",
                                     "Modified ge 2024-01-01T00:00:00Z"])),
             ("$orderby", rng.choice(["Name desc", "Modified asc"])), ("$top", str(rng.choice([10, 25])))]
        return api_get(rng, "intranet.example.test", "/odata/v4/Products?" + "&".join(
            k + "=" + C.quote(v, safe="'(),:$") for k, v in q))
    if kind == 5:  # Lucene/Elasticsearch query_string
        q = rng.choice(["status:active AND (type:book OR type:ebook)", "title:\"union square\" AND city:NYC",
                        "tags:(sleep OR rest) -draft", "price:[10 TO 50] AND brand:acme"])
        return api_get(rng, "api.example.test", "/api/v1/search?q=" + C.enc_component(q) + "&size=20")
    return html_get(rng, "forum.example.test", "/viewforum.php?f=%d&start=%d&sk=t&sd=d" % (
        rng.randint(1, 40), rng.randint(0, 30) * 25))

def f_tracking(rng):
    path = rng.choice(["/", "/landing/spring-sale", "/products/%s" % slug(rng), "/blog/how-to-choose-a-mattress"])
    q = []
    if rng.random() < 0.8:
        q += [("utm_source", rng.choice(["newsletter", "google", "facebook", "twitter", "partner_42"])),
              ("utm_medium", rng.choice(["email", "cpc", "social", "referral"])),
              ("utm_campaign", rng.choice(["spring_sale_2024", "Union Day Promo", "drop-2024-05", "b2s"]))]
        if rng.random() < 0.4:
            q.append(("utm_content", rng.choice(["hero-button", "footer link", "select_now_cta"])))
        if rng.random() < 0.3:
            q.append(("utm_term", rng.choice(D.GENERAL_SEARCHES + D.SQL_WORD_SEARCHES[:20])))
    extra = rng.choice(["gclid", "fbclid", "msclkid", "mc_eid", "_hsenc", "ttclid", None])
    if extra:
        q.append((extra, C.rand_str(rng, rng.randint(20, 90), C.B64URL)))
    if not q:
        q.append(("ref", rng.choice(["producthunt", "hn", "twitter"])))
    if rng.random() < 0.3:
        title = rng.choice(["Union Square Hotels | Deals", "Drop-Leaf Tables & Chairs", "Sleep Better: 10 Tips"])
        return api_get(rng, "www.example.test", "/collect?v=2&tid=G-%s&cid=%d.%d&en=page_view&dl=%s&dt=%s" % (
            C.rand_str(rng, 10, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), rng.randint(10 ** 8, 10 ** 9),
            rng.randint(1715000000, 1717000000), C.enc_component("https://www.example.test" + path),
            C.enc_component(title)), browser=True)
    return html_get(rng, "www.example.test", path + "?" + C.query_string(q), referer=None)

def f_oauth(rng):
    kind = rng.randrange(5)
    if kind == 0:
        return html_get(rng, "accounts.example.test", "/oauth/callback?" + C.query_string([
            ("code", "4/0A" + C.rand_str(rng, 70, C.B64URL)), ("state", b64url(rng, 24)),
            ("scope", "email profile openid https://www.googleapis.com/auth/userinfo.email"),
            ("authuser", "0"), ("prompt", "consent")]), referer="https://accounts.google.com/")
    if kind == 1:
        return html_get(rng, "accounts.example.test", "/auth/realms/main/protocol/openid-connect/auth?" +
                        C.query_string([("response_type", "code"), ("client_id", "web-" + C.rand_hex(rng, 8)),
                                        ("redirect_uri", "https://portal.example.test/callback"),
                                        ("scope", "openid profile"), ("state", C.rand_hex(rng, 32)),
                                        ("nonce", b64url(rng, 16)), ("code_challenge", b64url(rng, 32)),
                                        ("code_challenge_method", "S256")]))
    if kind == 2:
        h = C.tool_headers(rng, "accounts.example.test")
        body = C.form_body([("grant_type", "authorization_code"), ("code", C.rand_str(rng, 40, C.B64URL)),
                            ("redirect_uri", "https://portal.example.test/callback"),
                            ("client_id", "portal"), ("code_verifier", b64url(rng, 48))])
        return C.finish("POST", "/oauth/token", h, body, "application/x-www-form-urlencoded")
    if kind == 3:
        saml = base64.b64encode(("<samlp:Response ID=\"_%s\" Version=\"2.0\">%s</samlp:Response>" % (
            C.rand_hex(rng, 32), C.rand_str(rng, rng.randint(300, 900), C.B64))).encode()).decode()
        return form_post(rng, "portal.example.test", "/saml/acs", [("SAMLResponse", saml),
                                                                  ("RelayState", "/dashboard?tab=" + slug(rng, 1))])
    return api_get(rng, "api.example.test", "/api/v1/me", browser=rng.random() < 0.5)

def f_base64(rng):
    kind = rng.randrange(4)
    blob = base64.b64encode(bytes(rng.randrange(256) for _ in range(rng.randint(30, 600)))).decode()
    if kind == 0:
        return html_get(rng, "www.example.test", "/unsubscribe?token=" + C.enc_form(blob) + "&list=weekly")
    if kind == 1:
        return json_req(rng, "POST", "api.example.test", "/api/v1/avatar", {
            "filename": "me.png", "data": "data:image/png;base64," + blob})
    if kind == 2:
        return html_get(rng, "www.example.test", "/track/open?d=" + b64url(rng, rng.randint(40, 200)) + "&sig=" +
                        C.rand_hex(rng, 40), referer=None)
    return form_post(rng, "portal.example.test", "/upload/chunk", [
        ("chunk", blob), ("index", str(rng.randint(0, 30))), ("uploadId", C.rand_hex(rng, 24))])
