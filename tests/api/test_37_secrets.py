"""Secrets scoped to tenants, used only where meant, masked everywhere (issue 11.3).

A tenant stores its own secrets (PUT /v1/secrets/{name}, write-only); an operator
secret (SLUICE_SECRET_<NAME>) is usable only by the tenants SLUICE_SECRET_<NAME>_TENANTS
names. {{secrets.NAME}} may appear only in http header values (and a body marked
secretBody). The hunt at the end looks for every rendering of each secret in everything
sluice writes and every upstream request other than the intended header."""
import base64
import json
import re
import urllib.parse

import pytest

from conftest import (Client, Server, assert_error, free_port, item_detail, put_workflow,
                      run_job, submitted, uniq)
from upstream import Upstream

# Characters that every encoding treats differently: space, '/', '+', '"', '\', a
# non-ASCII letter, and URL punctuation.
OP_SECRET = 'op a b/c+d"e\\f\u00e9&=?#%~Zq1'
TN_SECRET = 'tn a b/c+d"e\\f\u00e9&=?#%<>Zq2'
OTHER_SECRET = "globex-own-Kx81QzW"
NOBODY_SECRET = "nobody-may-use-Lm29"

ACME, GLOBEX, OTHER = "s37acme", "s37globex", "s37other"


@pytest.fixture(scope="module")
def srv():
    s = Server(args=["--outbound-allow", "127.0.0.1/32", "--callback-backoff-ms", "100"],
               env={"SLUICE_SECRET_API_TOKEN": OP_SECRET,
                    "SLUICE_SECRET_API_TOKEN_TENANTS": ACME + ",s37glob*",
                    "SLUICE_SECRET_NOBODY": NOBODY_SECRET})
    s.keys = {t: s.create_key(t) for t in (ACME, GLOBEX, OTHER)}
    s.start()
    yield s
    rc = s.stop()
    assert rc == 0, s.read_log()[-4000:]
    s.cleanup()


@pytest.fixture(scope="module")
def up():
    u = Upstream()
    u.start()
    yield u
    u.stop()


def client(srv, tenant):
    return Client(srv, srv.keys[tenant])


def renderings(v):
    """Every rendering of v the masking promises to cover (see util/secmask.h)."""
    b = v.encode()
    out = {v, urllib.parse.quote(v, safe=""), urllib.parse.quote_plus(v, safe="")}
    out |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), x) for x in set(out)}
    for ascii_ in (True, False):
        j = json.dumps(v, ensure_ascii=ascii_)[1:-1]
        out |= {j, j.replace("/", "\\/")}
        out |= {re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), x)
                for x in (j, j.replace("/", "\\/"))}
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        out.add(enc(b).decode())
        out.add(enc(b).decode().rstrip("="))
        for k in range(3):  # whole 3-byte groups at each alignment (Basic auth's middle)
            whole = (len(b) - k) // 3 * 3
            out.add(enc(b[k:k + whole]).decode())
    return out


def leaks(text, values):
    """[(value, rendering)] of every rendering of values found in text."""
    return [(v[:2], r) for v in values for r in renderings(v) if r and r in text]


# ---- tenant secrets: CRUD, write-only, isolated -----------------------------------------

def test_01_crud_write_only(srv):
    a, g = client(srv, ACME), client(srv, GLOBEX)
    r = a.put("/v1/secrets/tok", json={"value": TN_SECRET})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"name", "createdAt", "updatedAt"} and body["name"] == "tok", body
    r = a.put("/v1/secrets/tok", json={"value": TN_SECRET})
    assert r.status_code == 200, r.text
    assert a.put("/v1/secrets/zz", json={"value": "zz-value-123"}).status_code == 201
    r = a.get("/v1/secrets/tok")
    assert r.status_code == 200 and set(r.json()) == {"name", "createdAt", "updatedAt"}, r.text
    r = a.get("/v1/secrets")
    assert r.status_code == 200, r.text
    names = [(e["name"], sorted(e)) for e in r.json()["value"]]
    assert names == [("tok", ["createdAt", "name", "updatedAt"]),
                     ("zz", ["createdAt", "name", "updatedAt"])], r.text
    r = a.get("/v1/secrets", params={"limit": 1})
    assert [e["name"] for e in r.json()["value"]] == ["tok"] and r.json().get("nextLink"), r.text
    for t in (r.text, a.get("/v1/secrets/tok").text):
        assert not leaks(t, [TN_SECRET]), t
    # another tenant does not see it
    assert_error(g.get("/v1/secrets/tok"), 404, "NotFound", "name")
    assert g.get("/v1/secrets").json()["value"] == []
    assert_error(g.delete("/v1/secrets/tok"), 404, "NotFound", "name")
    assert g.put("/v1/secrets/own", json={"value": OTHER_SECRET}).status_code == 201
    # deleting
    assert a.delete("/v1/secrets/zz").status_code == 204
    assert_error(a.get("/v1/secrets/zz"), 404, "NotFound", "name")


@pytest.mark.parametrize("body,target", [
    ({"value": "short"}, "value"),
    ({"value": 12345678}, "value"),
    ({"value": "x" * 4097}, "value"),
    ({"value": "line\nbreak-value"}, "value"),
    ({"value": "okay-value-1", "extra": 1}, "extra"),
    ({}, "value"),
])
def test_02_put_rejects_bad_values(srv, body, target):
    r = client(srv, ACME).put("/v1/secrets/bad", json=body)
    assert_error(r, 422, "InvalidField", target)


def test_03_bad_names_and_json(srv):
    a = client(srv, ACME)
    assert_error(a.put("/v1/secrets/a.b", json={"value": "okay-value-1"}), 400,
                 "InvalidParameter", "name")
    assert_error(a.put("/v1/secrets/" + "n" * 65, json={"value": "okay-value-1"}), 400,
                 "InvalidParameter", "name")
    assert_error(a.put("/v1/secrets/x", data="{"), 400, "InvalidJson")


# ---- placement: refused at definition time ------------------------------------------------

@pytest.mark.parametrize("step,target", [
    ({"type": "http", "url": "http://127.0.0.1:9/{{secrets.API_TOKEN}}"}, "steps[0].url"),
    ({"type": "http", "url": "http://{{secrets.API_TOKEN}}.localhost/"}, "steps[0].url"),
    ({"type": "http", "url": "http://127.0.0.1:9/?q={{ secrets.tok }}"}, "steps[0].url"),
    ({"type": "http", "url": "http://127.0.0.1:9/", "body": {"t": "{{secrets.tok}}"}},
     "steps[0].body.t"),
    ({"type": "http", "url": "http://127.0.0.1:9/", "body": "{{secrets.tok}}",
      "secretBody": False}, "steps[0].body"),
    ({"type": "http", "url": "http://127.0.0.1:9/", "headers": {"X": "{{secrets}}"}},
     "steps[0].headers.X"),
    ({"type": "http", "url": "http://127.0.0.1:9/", "headers": {"X": "{{secrets.a.b}}"}},
     "steps[0].headers.X"),
    ({"type": "http", "url": "http://127.0.0.1:9/", "body": ["{{secrets}}"], "secretBody": True},
     "steps[0].body[0]"),
    ({"type": "map", "ops": [{"op": "set", "path": "x", "value": "{{secrets.tok}}"}]},
     "steps[0].ops[0].value"),
    ({"type": "fail", "message": "{{secrets.tok}}"}, "steps[0].message"),
])
def test_04_definition_time_422(srv, step, target):
    r = put_workflow(client(srv, ACME), uniq("bad"), [step])
    assert_error(r, 422, "InvalidField", target)


def test_05_description_and_secret_body_flag(srv):
    a = client(srv, ACME)
    r = put_workflow(a, uniq("bad"), [{"type": "noop"}], description="{{secrets.tok}}")
    assert_error(r, 422, "InvalidField", "description")
    r = put_workflow(a, uniq("bad"), [{"type": "http", "url": "http://127.0.0.1:9/",
                                       "secretBody": "yes"}])
    assert_error(r, 422, "InvalidField", "steps[0].secretBody")
    r = put_workflow(a, uniq("ok"), [{"type": "http", "url": "http://127.0.0.1:9/",
                                      "headers": {"Authorization": "Bearer {{secrets.tok}}"},
                                      "body": {"k": "{{secrets.tok}}"}, "secretBody": True}])
    assert r.status_code == 201, r.text


# ---- who may use what ---------------------------------------------------------------------

def header_wf(c, url, name="Authorization", tpl="Bearer {{secrets.API_TOKEN}}", **step):
    wf = uniq("wf")
    r = put_workflow(c, wf, [dict({"name": "push", "type": "http", "url": url,
                                   "headers": {name: tpl}, "retry": {"maxAttempts": 1}},
                                  **step)])
    assert r.status_code == 201, r.text
    return wf


def test_06_operator_secret_allowed_and_denied(srv, up):
    for tenant in (ACME, GLOBEX):  # exact name and prefix ("s37glob*")
        c = client(srv, tenant)
        path = "/ok-" + tenant
        j = run_job(c, [{"ref": "r1", "data": {}}], header_wf(c, up.url + path))
        assert j["status"] == "Succeeded", j
        (call,) = up.log(path)
        assert call["headers"]["Authorization"] == \
            "Bearer " + OP_SECRET.encode().decode("latin-1"), call
    o = client(srv, OTHER)
    j = run_job(o, [{"ref": "r1", "data": {}}], header_wf(o, up.url + "/denied"))
    it = item_detail(o, j["id"], 0)
    assert it["error"]["code"] == "SecretNotFound", it
    assert "API_TOKEN" in it["error"]["message"] and it["failedStep"] == "push", it
    assert up.log("/denied") == []
    # an operator secret no tenant is named for is usable by none, said at start-up
    j = run_job(o, [{"ref": "r1", "data": {}}],
                header_wf(o, up.url + "/nobody", tpl="{{secrets.NOBODY}}"))
    assert item_detail(o, j["id"], 0)["error"]["code"] == "SecretNotFound"
    a = client(srv, ACME)
    j = run_job(a, [{"ref": "r1", "data": {}}],
                header_wf(a, up.url + "/nobody", tpl="{{secrets.NOBODY}}"))
    assert item_detail(a, j["id"], 0)["error"]["code"] == "SecretNotFound"
    assert up.log("/nobody") == []
    log = srv.read_log()
    assert "NOBODY" in log and "usable by no tenant" in log, log[-3000:]
    assert NOBODY_SECRET not in log and not leaks(log, [OP_SECRET])


def test_07_tenant_secret_is_the_tenants_own(srv, up):
    a, g = client(srv, ACME), client(srv, GLOBEX)
    j = run_job(a, [{"ref": "r1", "data": {}}],
                header_wf(a, up.url + "/own-a", name="X-Tok", tpl="{{secrets.tok}}"))
    assert j["status"] == "Succeeded", j
    (call,) = up.log("/own-a")
    assert call["headers"]["X-Tok"] == TN_SECRET.encode().decode("latin-1"), call
    # globex cannot reach acme's "tok"; its own "own" works only for itself
    j = run_job(g, [{"ref": "r1", "data": {}}],
                header_wf(g, up.url + "/own-g", name="X-Tok", tpl="{{secrets.tok}}"))
    it = item_detail(g, j["id"], 0)
    assert it["error"]["code"] == "SecretNotFound" and "'tok'" in it["error"]["message"], it
    j = run_job(a, [{"ref": "r1", "data": {}}],
                header_wf(a, up.url + "/own-g", name="X-Tok", tpl="{{secrets.own}}"))
    assert item_detail(a, j["id"], 0)["error"]["code"] == "SecretNotFound"
    assert up.log("/own-g") == []


def test_08_secret_body_sends_but_never_records(srv, up):
    a = client(srv, ACME)
    wf = uniq("wf")
    r = put_workflow(a, wf, [{"name": "push", "type": "http", "url": up.url + "/sb",
                              "body": {"token": "{{secrets.tok}}", "ref": "{{ref}}"},
                              "secretBody": True}])
    assert r.status_code == 201, r.text
    j = run_job(a, [{"ref": "r1", "data": {}}], wf)
    assert j["status"] == "Succeeded", j
    (call,) = up.log("/sb")
    assert call["json"] == {"token": TN_SECRET, "ref": "r1"}, call
    # the default echo answers with the body it got: the recorded output is masked
    it = item_detail(a, j["id"], 0)
    text = json.dumps(it) + a.get("/v1/jobs/%s/results" % j["id"]).text
    assert not leaks(text, [TN_SECRET]), leaks(text, [TN_SECRET])
    assert "***" in text


# ---- the hunt -----------------------------------------------------------------------------

def echo_body(values):
    """An upstream answer that quotes every rendering of the values."""
    return " | ".join(sorted(r for v in values for r in renderings(v)))


def test_09_hunt_every_rendering_everywhere(srv, up):
    a = client(srv, ACME)
    secrets_ = [OP_SECRET, TN_SECRET]
    up.reset()  # only this test's requests are hunted
    closed = free_port()  # nothing listens there: libcurl's own error text
    up.script("/h500", [{"status": 500, "body": "echo: " + echo_body(secrets_)}])
    up.script("/h200", [{"status": 200, "json": {"echo": echo_body(secrets_),
                                                 "auth": "Basic " + base64.b64encode(
                                                     ("user:" + OP_SECRET).encode()).decode()}}])
    headers = {"Authorization": "Bearer {{secrets.API_TOKEN}}", "X-Tok": "{{secrets.tok}}"}
    steps = [
        {"name": "e500", "type": "http", "url": up.url + "/h500/{{ref}}", "headers": headers,
         "retry": {"maxAttempts": 2, "backoffMs": 10}, "onError": "continue"},
        {"name": "refused", "type": "http", "url": "http://127.0.0.1:%d/x" % closed,
         "headers": headers, "retry": {"maxAttempts": 1}, "onError": "continue"},
        {"name": "nohost", "type": "http", "url": "http://nohost-s37.localhost:%d/x" % closed,
         "headers": headers, "retry": {"maxAttempts": 1}, "onError": "continue"},
        {"name": "ok", "type": "http", "url": up.url + "/h200", "headers": headers},
        {"name": "last", "type": "http", "url": up.url + "/h500/last", "headers": headers,
         "retry": {"maxAttempts": 1}},
    ]
    wf = uniq("hunt")
    r = put_workflow(a, wf, steps)
    assert r.status_code == 201, r.text
    seen = [r.text]
    j = submitted(a.submit([{"ref": "h1", "data": {"x": 1}}, {"ref": "h2", "data": {}}],
                           workflow=wf, callback={"url": up.url + "/cb"}))
    j = a.wait_job(j["id"], timeout=120)
    assert j["counts"]["failed"] == 2, j
    it = item_detail(a, j["id"], 0)
    assert it["error"]["code"] == "UpstreamError" and it["failedStep"] == "last", it
    codes = [w["code"] for w in it.get("warnings", [])]
    # a name under .localhost is refused by the outbound policy or fails in libcurl,
    # depending on how it resolves; either way nothing outside the machine is asked
    assert codes[:2] == ["UpstreamError", "UpstreamUnavailable"], it
    assert codes[2] in ("UpstreamUnavailable", "TargetNotAllowed"), it
    seen.append(json.dumps(it))
    for path in ("/v1/jobs/%s", "/v1/jobs/%s/items", "/v1/jobs/%s/items/1", "/v1/jobs/%s/results",
                 "/v1/jobs/%s/events", "/v1/jobs/%s/callbacks"):
        r = a.get(path % j["id"], headers={"Accept": "application/json"})
        assert r.status_code == 200, (path, r.text)
        seen.append(r.text)
    r = a.post("/v1/workflows/%s:run" % wf, json={"ref": "run1", "data": {}})
    assert r.status_code in (422, 502), r.text
    seen.append(r.text)
    seen += [a.get("/v1/secrets").text, a.get("/v1/workflows/" + wf).text,
             requests_text(srv, "/metrics")]
    # callbacks delivered (their bodies are upstream requests, hunted below)
    deadline = __import__("time").time() + 30
    while not up.log("/cb") and __import__("time").time() < deadline:
        __import__("time").sleep(0.1)
    assert up.log("/cb"), "no callback arrived"
    # the masking did work: the upstream's quoting came back as ***
    assert "***" in seen[1], seen[1][:2000]
    found = [(i, leaks(t, secrets_)) for i, t in enumerate(seen) if leaks(t, secrets_)]
    assert not found, found
    log = srv.read_log()
    assert not leaks(log, secrets_ + [NOBODY_SECRET, OTHER_SECRET]), leaks(log, secrets_)
    # every upstream request: the secrets only in the intended headers
    intended = {"authorization": "Bearer " + OP_SECRET, "x-tok": TN_SECRET}
    calls = up.log()
    assert any(c["path"].startswith("/h500") for c in calls)
    assert any(c["path"].startswith("/h200") for c in calls)
    for c in calls:
        for k, v in c["headers"].items():
            v = v.encode("latin-1").decode("utf-8", "replace")  # http.server's decoding
            if k.lower() in intended and c["path"].startswith(("/h500", "/h200")):
                assert v == intended[k.lower()], (k, v)
                continue
            assert not leaks(k + ": " + v, secrets_), (c["path"], k, v)
        assert not leaks(c["path"] + c["body"], secrets_), c


def requests_text(srv, path):
    import requests
    return requests.get(srv.url + path, timeout=30).text


def rewrite_definition(srv, tenant, wf, definition):
    """Replaces a stored workflow's definition in the store itself, as a definition
    written before the placement rules would be."""
    text = json.dumps(definition)
    if srv.store.startswith("sqlite:"):
        import sqlite3
        db = sqlite3.connect(srv.store.split(":", 1)[1], timeout=30)
        try:
            n = db.execute("UPDATE workflows SET definition = ? WHERE tenant = ? AND name = ?",
                           (text, tenant, wf)).rowcount
            db.commit()
        finally:
            db.close()
        assert n == 1
    else:
        from conftest import psql
        q = text.replace("'", "''")
        psql(srv.store.rsplit("/", 1)[1],
             "UPDATE workflows SET definition = '%s' WHERE tenant = '%s' AND name = '%s'"
             % (q, tenant, wf))


def test_10_old_definition_with_secret_in_url_does_not_run(srv, up):
    """A definition stored before the rules, with the secret in its URL, fails its
    items (or is refused) instead of sending or recording the secret."""
    a = client(srv, ACME)
    up.reset()
    wf = header_wf(a, up.url + "/old")
    rewrite_definition(srv, ACME, wf, {"steps": [
        {"name": "push", "type": "http", "url": up.url + "/old/{{secrets.API_TOKEN}}",
         "headers": {"X": "{{secrets}}"}}]})
    r = a.submit([{"ref": "o1", "data": {}}], workflow=wf)
    assert_error(r, 422, "WorkflowOutdated")
    seen = [r.text]
    r = a.post("/v1/workflows/%s:run" % wf, json={"ref": "o2", "data": {}})
    assert_error(r, 422, "WorkflowOutdated")
    seen.append(r.text)
    assert up.log("/old") == []
    assert not [t for t in seen if leaks(t, [OP_SECRET])]
    assert not leaks(srv.read_log(), [OP_SECRET])


# ---- documents written from upstream answers that echo a secret --------------------------

REF_SECRET = "plainref-Zq3-secret"  # URL-safe, so a ref holding it would be accepted


def coll(prefix):
    return prefix + uniq("").replace("-", "_")


def doc_texts(c, collection):
    """The collection's listing and every document in it, as text."""
    r = c.get("/v1/collections/" + collection, params={"limit": 1000})
    assert r.status_code == 200, r.text
    texts = [r.text]
    for d in r.json()["value"]:
        g = c.get("/v1/collections/%s/%s" % (collection, urllib.parse.quote(d["ref"], safe="")))
        assert g.status_code == 200, g.text
        texts.append(g.text)
    return texts


def test_11_documents_written_by_a_run_or_a_job_are_masked(srv, up):
    """An upstream answers with the secret, a map copies it into the data, upsert and
    patch write the data: the stored documents hold "***", in a synchronous :run (written
    at once) as in a job (written with the outcome)."""
    a = client(srv, ACME)
    assert a.put("/v1/secrets/tok", json={"value": TN_SECRET}).status_code in (200, 201)
    path = "/" + uniq("tok-echo")
    up.script(path, [{"status": 200, "json": {"tok": TN_SECRET}}], repeat_last=True)
    cc = coll("cc")
    wf = uniq("wf")
    r = put_workflow(a, wf, [
        {"name": "e", "type": "http", "url": up.url + path,
         "headers": {"X-Tok": "{{secrets.tok}}"}, "retry": {"maxAttempts": 1}},
        {"name": "m", "type": "map", "ops": [{"op": "set", "path": "leak",
                                              "value": "{{steps.e.body.tok}}"}]},
        {"name": "u", "type": "upsert", "collection": cc},
        {"name": "m2", "type": "map", "ops": [{"op": "set", "path": "again",
                                               "value": "x {{steps.e.body.tok}} y"}]},
        {"name": "p", "type": "patch", "collection": cc}])
    assert r.status_code == 201, r.text
    r = a.post("/v1/workflows/%s:run" % wf, json={"ref": "r1", "data": {"k": 1}})
    assert r.status_code == 200, r.text
    seen = [r.text]
    j = run_job(a, [{"ref": "j1", "data": {"k": 2}}], wf)
    assert j["status"] == "Succeeded" and j["counts"]["succeeded"] == 1, j
    seen.append(json.dumps(item_detail(a, j["id"], 0)))
    texts = doc_texts(a, cc)
    refs = sorted(d["ref"] for d in json.loads(texts[0])["value"])
    assert refs == ["j1", "r1"], texts[0]
    for t in texts[1:]:  # the masking did happen (and the data was written at all)
        assert "***" in t and '"k"' in t and '"again"' in t, t
    seen += texts
    found = [(i, leaks(t, [TN_SECRET])) for i, t in enumerate(seen) if leaks(t, [TN_SECRET])]
    assert not found, found
    assert len(up.log(path)) == 2


@pytest.mark.parametrize("echo", [
    REF_SECRET,
    "id-" + REF_SECRET + "-x",
    base64.urlsafe_b64encode(REF_SECRET.encode()).decode().rstrip("="),
], ids=["raw", "inside", "base64"])
def test_12_ref_from_revealing_a_secret_fails_the_item(srv, up, echo):
    """A refFrom value that holds a rendering of a secret the run resolved fails the item
    (masking it would write another document); nothing is written, in :run and in jobs."""
    a = client(srv, ACME)
    r = a.put("/v1/secrets/refsec", json={"value": REF_SECRET})
    assert r.status_code in (200, 201), r.text
    path = "/" + uniq("ref-echo")
    up.script(path, [{"status": 200, "json": {"tok": echo}}], repeat_last=True)
    cr = coll("cr")
    wf = uniq("wf")
    r = put_workflow(a, wf, [
        {"name": "e", "type": "http", "url": up.url + path,
         "headers": {"X-Ref": "{{secrets.refsec}}"}, "retry": {"maxAttempts": 1}},
        {"name": "m", "type": "map", "ops": [{"op": "set", "path": "leak",
                                              "value": "{{steps.e.body.tok}}"}]},
        {"name": "u", "type": "upsert", "collection": cr, "refFrom": "data.leak"}])
    assert r.status_code == 201, r.text
    r = a.post("/v1/workflows/%s:run" % wf, json={"ref": "r1", "data": {}})
    assert_error(r, 422, "InvalidData", "steps.u")
    msg = r.json()["error"]["message"]
    assert "refFrom would reveal a secret" in msg and "u" in msg, msg
    seen = [r.text]
    j = run_job(a, [{"ref": "j1", "data": {}}], wf)
    assert j["counts"]["failed"] == 1, j
    it = item_detail(a, j["id"], 0)
    assert it["error"]["code"] == "InvalidData" and it["failedStep"] == "u", it
    assert "refFrom would reveal a secret" in it["error"]["message"], it
    seen.append(json.dumps(it))
    texts = doc_texts(a, cr)
    assert json.loads(texts[0])["value"] == [], texts[0]
    seen += texts
    assert len(up.log(path)) == 2  # the upstream did answer with the secret both times
    found = [(i, leaks(t, [REF_SECRET])) for i, t in enumerate(seen) if leaks(t, [REF_SECRET])]
    assert not found, found


def test_13_ref_from_without_a_secret_still_writes(srv, up):
    """The refusal is about secrets only: the same workflow with an answer that holds
    none writes the document under the ref read from the data."""
    a = client(srv, ACME)
    assert a.put("/v1/secrets/tok", json={"value": TN_SECRET}).status_code in (200, 201)
    path = "/" + uniq("ref-plain")
    up.script(path, [{"status": 200, "json": {"tok": "not-a-secret-ref"}}], repeat_last=True)
    cr = coll("cr")
    wf = uniq("wf")
    r = put_workflow(a, wf, [
        {"name": "e", "type": "http", "url": up.url + path,
         "headers": {"X-Tok": "{{secrets.tok}}"}, "retry": {"maxAttempts": 1}},
        {"name": "m", "type": "map", "ops": [{"op": "set", "path": "leak",
                                              "value": "{{steps.e.body.tok}}"}]},
        {"name": "u", "type": "upsert", "collection": cr, "refFrom": "data.leak"}])
    assert r.status_code == 201, r.text
    r = a.post("/v1/workflows/%s:run" % wf, json={"ref": "r1", "data": {}})
    assert r.status_code == 200, r.text
    refs = [d["ref"] for d in json.loads(doc_texts(a, cr)[0])["value"]]
    assert refs == ["not-a-secret-ref"], refs


def test_14_definition_with_nul_is_refused(srv):
    """Template strings never hold a NUL (definitions are parsed without JSON_ALLOW_NUL),
    so the NUL-terminated placeholder scan (secrets_scan) sees every placeholder."""
    a = client(srv, ACME)
    body = ('{"steps":[{"type":"http","url":"http://127.0.0.1:9/",'
            '"headers":{"X":"a\\u0000{{secrets.tok}}"}}]}')
    r = a.put("/v1/workflows/" + uniq("nul"), data=body,
              headers={"Content-Type": "application/json"})
    assert_error(r, 400, "InvalidJson")


def test_15_steps_before_the_secret_is_used_are_masked_too(srv, up):
    """An upstream that already knows a secret (it got it in an earlier run) echoes it
    to a step that sends none; the document is written, or the ref checked, before the
    http step that names the secret: the run resolves the secrets its steps name up
    front, so these are masked (or refused) too, in :run and in jobs."""
    a = client(srv, ACME)
    assert a.put("/v1/secrets/tok", json={"value": TN_SECRET}).status_code in (200, 201)
    assert a.put("/v1/secrets/refsec", json={"value": REF_SECRET}).status_code in (200, 201)
    path = "/" + uniq("early-echo")
    up.script(path, [{"status": 200, "json": {"tok": TN_SECRET, "ref": REF_SECRET}}],
              repeat_last=True)
    cc, cr = coll("cc"), coll("cr")
    first = [
        {"name": "e", "type": "http", "url": up.url + path, "retry": {"maxAttempts": 1}},
        {"name": "m", "type": "map", "ops": [
            {"op": "set", "path": "leak", "value": "{{steps.e.body.tok}}"},
            {"op": "set", "path": "r", "value": "{{steps.e.body.ref}}"}]}]
    last = {"name": "late", "type": "http", "url": up.url + path + "/late",
            "headers": {"X-Tok": "{{secrets.tok}}", "X-Ref": "{{secrets.refsec}}"},
            "retry": {"maxAttempts": 1}}
    wf_doc, wf_ref = uniq("wf"), uniq("wf")
    r = put_workflow(a, wf_doc, first + [{"name": "u", "type": "upsert", "collection": cc},
                                         last])
    assert r.status_code == 201, r.text
    r = put_workflow(a, wf_ref, first + [{"name": "u", "type": "upsert", "collection": cr,
                                          "refFrom": "data.r"}, last])
    assert r.status_code == 201, r.text
    r = a.post("/v1/workflows/%s:run" % wf_doc, json={"ref": "r1", "data": {}})
    assert r.status_code == 200, r.text
    seen = [r.text]
    j = run_job(a, [{"ref": "j1", "data": {}}], wf_doc)
    assert j["counts"]["succeeded"] == 1, j
    texts = doc_texts(a, cc)
    assert len(json.loads(texts[0])["value"]) == 2, texts[0]
    assert all("***" in t for t in texts[1:]), texts
    seen += texts
    r = a.post("/v1/workflows/%s:run" % wf_ref, json={"ref": "r1", "data": {}})
    assert_error(r, 422, "InvalidData", "steps.u")
    seen.append(r.text)
    j = run_job(a, [{"ref": "j1", "data": {}}], wf_ref)
    it = item_detail(a, j["id"], 0)
    assert it["error"]["code"] == "InvalidData" and it["failedStep"] == "u", it
    texts = doc_texts(a, cr)
    assert json.loads(texts[0])["value"] == [], texts[0]
    seen += texts
    found = [(i, leaks(t, [TN_SECRET, REF_SECRET])) for i, t in enumerate(seen)
             if leaks(t, [TN_SECRET, REF_SECRET])]
    assert not found, found
