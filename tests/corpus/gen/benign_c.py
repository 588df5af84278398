"""Benign traffic, part 3: account/contact forms, reports, GraphQL, wiki paths, infra
requests, JSON free text.  FAMILIES_B lists every part-2/3 family with its count."""

from . import common as C
from . import benign_data as D
from .benign import html_get, api_get, json_req, form_post, free_text, person, email_for
from .benign_b import f_product, f_static, f_rest, f_pagination, f_tracking, f_oauth, f_base64

def phone(rng):
    return rng.choice(["+1 (555) %03d-%04d", "+44 20 7946 %03d%d", "(555) %03d-%04d", "555.%03d.%04d"]) % (
        rng.randint(100, 999), rng.randint(0, 9999) if rng.random() < 0.5 else rng.randint(0, 9))

def f_contact(rng):
    first, last = person(rng)
    kind = rng.randrange(5)
    if kind == 0:
        return form_post(rng, "www.example.test", "/newsletter/subscribe", [
            ("email", email_for(rng, first, last)), ("lists[]", "weekly"), ("consent", "yes")])
    if kind == 1:
        return form_post(rng, "shop.example.test", "/checkout/shipping", [
            ("full_name", first + " " + last), ("address1", "%d %s" % (rng.randint(1, 999), rng.choice(
                ["Main St., Apt #4B", "O'Connell Street", "Rue de l'Église", "5th Ave, Suite 300"]))),
            ("city", rng.choice(["Springfield", "Dublin", "Paris"])), ("phone", phone(rng)),
            ("delivery_notes", rng.choice(["Leave at back door; dog is friendly", "Call on arrival",
                                           "", "Ring twice -- bell is broken", "Gate code #1234"]))])
    if kind == 2:
        return json_req(rng, "PUT", "api.example.test", "/api/v1/me/profile", {
            "phone": phone(rng), "birthDate": "19%02d-%02d-%02d" % (rng.randint(50, 99), rng.randint(1, 12),
                                                                   rng.randint(1, 28)),
            "website": "https://%s.example.test/~%s" % (last.lower().replace("'", ""), first.lower())})
    if kind == 3:
        return form_post(rng, "portal.example.test", "/support/ticket", [
            ("name", first + " " + last), ("email", email_for(rng, first, last)), ("phone", phone(rng)),
            ("category", rng.choice(["billing", "technical", "other"])), ("description", free_text(rng, 1, 3))])
    return form_post(rng, "www.example.test", "/events/rsvp", [
        ("event_id", str(rng.randint(1, 500))), ("name", first + " " + last),
        ("guests", str(rng.randint(0, 4))), ("dietary", rng.choice(["none", "vegan", "no nuts/peanuts",
                                                                     "gluten-free (coeliac)"]))])

def f_reports(rng):
    y = rng.choice([2023, 2024])
    m = rng.randint(1, 12)
    kind = rng.randrange(5)
    if kind == 0:
        return html_get(rng, "intranet.example.test", "/reports/sales?" + C.query_string([
            ("from", "%d-%02d-01" % (y, m)), ("to", "%d-%02d-28" % (y, m)),
            ("group_by", rng.choice(["day", "week", "month", "region"])), ("tz", "Europe/Berlin")]))
    if kind == 1:
        return api_get(rng, "api.example.test", "/api/v1/events?start=%d-%02d-05T10:00:00Z&end=%d-%02d-06T10:00:00Z" % (
            y, m, y, m))
    if kind == 2:
        return html_get(rng, "portal.example.test", "/calendar?date=%02d%%2F%02d%%2F%d&view=%s" % (
            m, rng.randint(1, 28), y, rng.choice(["month", "week", "agenda"])))
    if kind == 3:
        return api_get(rng, "api.example.test", "/api/v1/metrics?since=%d&range=%s&order_by=created_at" % (
            rng.randint(1704067200, 1717000000), rng.choice(["last_30_days", "Q1-2024", "ytd"])))
    return html_get(rng, "intranet.example.test", "/reports/export.csv?period=%d-Q%d&include_deleted=false" % (
        y, rng.randint(1, 4)))

GQL = [
    ("GetProduct", "query GetProduct($id: ID!) { product(id: $id) { id name price { amount currency } "
     "reviews(first: 5, orderBy: {field: CREATED_AT, direction: DESC}) { edges { node { rating body } } } } }",
     lambda r: {"id": str(r.randint(1, 99999))}),
    ("Search", "query Search($q: String!) { search(query: $q) { __typename ... on Product { id name } "
     "... on Article { id title } } }", lambda r: {"q": r.choice(D.SQL_WORD_SEARCHES)}),
    ("UpdateUser", "mutation UpdateUser($input: UpdateUserInput!) { updateUser(input: $input) { user { id } "
     "errors { field message } } }", lambda r: {"input": {"id": str(r.randint(1, 999)), "bio": r.choice(D.SENTENCES)}}),
    ("Orders", "query Orders($where: orders_bool_exp) { orders(where: $where, order_by: {created_at: desc}, "
     "limit: 20) { id total status } }", lambda r: {"where": {"status": {"_eq": r.choice(["open", "paid"])}}}),
    ("DeleteUsers", "mutation DeleteUsers($id: Int!) { delete_users(where: {id: {_eq: $id}}) { affected_rows } }",
     lambda r: {"id": r.randint(1, 9999)}),
    ("InsertOrder", "mutation InsertOrder($o: orders_insert_input!) { insert_orders_one(object: $o) { id } }",
     lambda r: {"o": {"customer_id": r.randint(1, 999), "note": r.choice(D.SENTENCES)}}),
    ("Intro", "query IntrospectionQuery { __schema { queryType { name } types { name kind } } }", lambda r: {}),
]

def f_graphql(rng):
    name, q, vars_fn = rng.choice(GQL)
    obj = {"operationName": name, "query": q, "variables": vars_fn(rng)}
    if rng.random() < 0.2:
        return api_get(rng, "api.example.test", "/graphql?query=" + C.enc_component(q) + "&operationName=" + name)
    return json_req(rng, "POST", "api.example.test", "/graphql", obj)

WIKI = ["O'Reilly_Media", "Rock_and_roll", "Union_(American_Civil_War)", "Select_(SQL)", "Null_(SQL)",
        "SQL_injection", "D'Artagnan", "Guns_N'_Roses", "Sleep_apnea", "Order_of_operations",
        "Sleep_(system_call)", "Drop_(liquid)", "Table_(information)", "Union_Square,_San_Francisco",
        "Where's_Waldo%3F", "Mañana", "Zürich", "Insert_key", "Delete_key", "Or_(logic)",
        "Don't_Stop_Believin'", "Ben_%26_Jerry's", "C_Sharp_(programming_language)", "1%2B1", "Waitfor",
        "Bobby_Tables", "Exec_(system_call)", "Benchmark_(computing)", "Ch%C3%A2teau_d'If", "Truncate"]

def f_wiki(rng):
    page = rng.choice(WIKI)
    page = C.quote(page, safe="%'(),_:") if rng.random() < 0.5 else C.quote(page, safe="%(),_:")
    kind = rng.randrange(4)
    if kind == 0:
        return html_get(rng, "wiki.example.test", "/wiki/" + page)
    if kind == 1:
        return html_get(rng, "wiki.example.test", "/w/index.php?title=%s&action=%s" % (page, rng.choice(
            ["history", "edit", "info", "raw"])))
    if kind == 2:
        return html_get(rng, "wiki.example.test", "/w/index.php?title=%s&diff=%d&oldid=%d" % (
            page, rng.randint(10 ** 8, 10 ** 9), rng.randint(10 ** 8, 10 ** 9)))
    return api_get(rng, "wiki.example.test", "/w/api.php?action=query&prop=extracts&format=json&titles=" + page,
                   browser=True)

def f_infra(rng):
    kind = rng.randrange(7)
    host = rng.choice(C.HOSTS)
    if kind == 0:
        h = [["Host", host], ["User-Agent", rng.choice(["kube-probe/1.29", "ELB-HealthChecker/2.0",
                                                        "Prometheus/2.51.0", "Consul Health Check"])]]
        return C.finish("GET", rng.choice(["/healthz", "/readyz", "/metrics", "/status", "/ping"]), h)
    if kind == 1:
        return html_get(rng, host, rng.choice(["/robots.txt", "/sitemap.xml", "/sitemap_index.xml?page=2",
                                               "/.well-known/security.txt", "/ads.txt", "/humans.txt"]), referer=None)
    if kind == 2:
        return C.finish("HEAD", rng.choice(["/", "/index.html", "/downloads/app-1.4.2.dmg"]),
                        C.tool_headers(rng, host, "*/*"))
    if kind == 3:
        h = C.browser_headers(rng, "api.example.test", "any", cookie=False)
        h += [["Origin", "https://www.example.test"], ["Access-Control-Request-Method", rng.choice(
            ["POST", "PUT", "DELETE"])], ["Access-Control-Request-Headers", "authorization,content-type"]]
        return C.finish("OPTIONS", "/api/v1/%s/%d" % (rng.choice(["orders", "items"]), rng.randint(1, 999)), h)
    if kind == 4:
        h = C.browser_headers(rng, host, "any")
        h += [["Upgrade", "websocket"], ["Sec-WebSocket-Version", "13"],
              ["Sec-WebSocket-Key", C.rand_str(rng, 22, C.B64) + "=="]]
        h = [x for x in h if x[0] != "Connection"] + [["Connection", "Upgrade"]]
        return C.finish("GET", "/ws?v=%d&token=%s" % (rng.randint(1, 3), C.rand_hex(rng, 24)), h)
    if kind == 5:
        return api_get(rng, "accounts.example.test", "/.well-known/openid-configuration", browser=False)
    return html_get(rng, host, rng.choice(["/", "/index.html", "/about", "/about-us", "/careers", "/faq",
                                           "/privacy-policy", "/terms"]))

def f_json_text(rng):
    kind = rng.randrange(4)
    if kind == 0:
        return json_req(rng, "POST", "api.example.test", "/api/v1/tasks", {
            "title": rng.choice(["Drop off dry cleaning", "Update insurance", "Select venue", "Union meeting",
                                 "Order more chairs", "Delete old backups", "Sleep study appointment"]),
            "notes": free_text(rng, 1, 2), "due": "2024-%02d-%02d" % (rng.randint(1, 12), rng.randint(1, 28))})
    if kind == 1:
        return json_req(rng, "POST", "api.example.test", "/api/v1/chat/%d/messages" % rng.randint(1, 9999), {
            "text": free_text(rng, 1, 2), "clientMsgId": C.rand_hex(rng, 16)}, browser=True)
    if kind == 2:
        return json_req(rng, "PATCH", "api.example.test", "/api/v1/notes/%d" % rng.randint(1, 9999), {
            "content": free_text(rng, 1, 3), "pinned": rng.random() < 0.3})
    return json_req(rng, "POST", "api.example.test", "/api/v1/feedback", {
        "rating": rng.randint(1, 10), "comment": free_text(rng, 1, 2), "page": "/checkout",
        "meta": {"ua": "web", "lang": rng.choice(["en", "de", "fr"])}})

FAMILIES_B = [
    ("product_browse", f_product, 260), ("static_assets", f_static, 280), ("rest_api_json", f_rest, 300),
    ("pagination_sort_filter", f_pagination, 250), ("tracking_params", f_tracking, 200),
    ("oauth_sso", f_oauth, 160), ("base64_blobs", f_base64, 120), ("contact_account_forms", f_contact, 170),
    ("reports_dates", f_reports, 120), ("graphql", f_graphql, 150), ("wiki_paths", f_wiki, 150),
    ("infra_misc", f_infra, 120), ("json_text_api", f_json_text, 150),
]
