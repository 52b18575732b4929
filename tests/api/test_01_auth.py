"""Authentication and tenant isolation."""
import requests

import pytest

from conftest import (Client, assert_error, items, job_ids, list_all, submitted, sluice, uniq)

V1_ROUTES = [
    ("GET", "/v1/jobs"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs/job_doesnotexist"),
    ("POST", "/v1/jobs/job_doesnotexist:cancel"),
    ("DELETE", "/v1/jobs/job_doesnotexist"),
    ("GET", "/v1/jobs/job_doesnotexist/items"),
    ("GET", "/v1/jobs/job_doesnotexist/items/0"),
    ("GET", "/v1/jobs/job_doesnotexist/results"),
    ("GET", "/v1/collections/products"),
    ("GET", "/v1/collections/products/SKU-1"),
    ("PUT", "/v1/collections/products/SKU-1"),
    ("PATCH", "/v1/collections/products/SKU-1"),
    ("DELETE", "/v1/collections/products/SKU-1"),
]


def _req(server, method, path, headers):
    h = dict(headers)
    kw = {}
    if method in ("POST", "PUT", "PATCH"):
        h.setdefault("Content-Type", "application/json")
        kw["data"] = '{"workflow":"noop","items":[{"ref":"a"}]}' if path == "/v1/jobs" else "{}"
    return requests.request(method, server.url + path, headers=h, timeout=30, **kw)


@pytest.mark.parametrize("method,path", V1_ROUTES)
def test_no_key_is_401(server, method, path):
    r = _req(server, method, path, {})
    assert_error(r, 401, "Unauthorized")


@pytest.mark.parametrize("method,path", V1_ROUTES)
def test_wrong_key_is_401(server, method, path):
    r = _req(server, method, path, {"Authorization": "Bearer slk_nothere1_" + "0" * 40})
    assert_error(r, 401, "Unauthorized")


@pytest.mark.parametrize("auth", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "slk_x",
                                  "Bearer " + "x" * 5000])
def test_malformed_authorization_is_401(server, auth):
    r = requests.get(server.url + "/v1/jobs", headers={"Authorization": auth}, timeout=30)
    assert_error(r, 401, "Unauthorized")


def test_wrong_key_does_not_submit(server, api):
    before = job_ids(api)
    r = Client(server, "slk_deadbeef_" + "1" * 40).submit(items(3))
    assert_error(r, 401, "Unauthorized")
    assert job_ids(api) == before


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_operations_need_no_key(server, path):
    r = requests.get(server.url + path, timeout=30)
    assert r.status_code == 200, r.text


def test_valid_key_is_accepted(api):
    r = api.get("/v1/jobs")
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["value"], list)


def test_revoked_key_is_401(server):
    key = server.create_key(uniq("revoked"))
    c = Client(server, key)
    assert c.get("/v1/jobs").status_code == 200
    job = submitted(c.submit(items(2)))
    out = sluice("keys", "revoke", key[:12], "--store", server.store, timeout=30)
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    for path in ("/v1/jobs", "/v1/jobs/" + job["id"], "/v1/collections/products"):
        assert_error(c.get(path), 401, "Unauthorized")
    assert_error(c.submit(items(1)), 401, "Unauthorized")
    # revoking an unknown key id is an error of its own (exit 1), not a success
    out = sluice("keys", "revoke", "slk_00000000", "--store", server.store, timeout=30)
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)


def test_keys_list_shows_key_id_not_secret(server):
    key = server.create_key(uniq("listed"))
    out = sluice("keys", "list", "--store", server.store, timeout=30)
    assert out.returncode == 0, out.stderr
    assert key[:12] in out.stdout
    assert key not in out.stdout, "keys list must not print the secret key"


# ---- two tenants -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def a_job(server):
    a = Client(server, server.key_a)
    j = submitted(a.submit(items(3, prefix=uniq("iso") + "-"), workflow="products.upsert"))
    done = a.wait_job(j["id"])
    assert done["status"] == "Succeeded", done
    return j["id"]


def _status_code(r):
    body = r.json()
    return r.status_code, body["error"]["code"]


@pytest.mark.parametrize("method,suffix", [
    ("GET", ""), ("GET", "/items"), ("GET", "/items/0"), ("GET", "/results"),
    ("POST", ":cancel"), ("DELETE", ""),
])
def test_other_tenant_sees_404_like_unknown(api, api_b, a_job, method, suffix):
    theirs = api_b.request(method, "/v1/jobs/" + a_job + suffix)
    unknown = api_b.request(method, "/v1/jobs/job_unknown000000000000" + suffix)
    assert theirs.status_code == 404, theirs.text
    assert_error(theirs, 404, unknown.json()["error"]["code"])
    assert _status_code(theirs) == _status_code(unknown)
    # and A still sees (and did not lose) its job
    r = api.get("/v1/jobs/" + a_job)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "Succeeded"


def test_other_tenant_job_list_and_documents(api, api_b, a_job):
    assert a_job not in job_ids(api_b)
    assert a_job in job_ids(api)
    mine = api.get("/v1/jobs/%s/items" % a_job).json()["value"]
    ref = mine[0]["ref"]
    assert api.get("/v1/collections/products/" + ref).status_code == 200
    assert_error(api_b.get("/v1/collections/products/" + ref), 404, "DocumentNotFound")
    refs_b = [d["ref"] for d in list_all(api_b, "/v1/collections/products")[0]]
    assert ref not in refs_b
    # B cannot change A's document either
    assert_error(api_b.patch("/v1/collections/products/" + ref, data='{"x":1}',
                             headers={"Content-Type": "application/json"}), 404,
                 "DocumentNotFound")
    assert_error(api_b.delete("/v1/collections/products/" + ref), 404, "DocumentNotFound")
    r = api.get("/v1/collections/products/" + ref)
    assert r.status_code == 200 and r.json()["version"] == 1, r.text
    # B writing the same ref creates B's own document, A's is untouched
    r = api_b.put("/v1/collections/products/" + ref, data='{"owner":"b"}',
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    a_doc = api.get("/v1/collections/products/" + ref).json()
    assert a_doc["version"] == 1 and a_doc["data"] != {"owner": "b"}, a_doc


@pytest.mark.parametrize("cursor", ["9223372036854775807", "9223372036854775000",
                                    "4294967295", "4294967296"])
def test_item_cursor_never_reaches_other_jobs(server, api, api_b, cursor):
    """Keyset cursors are per job: no cursor value may page into another job's items
    (another tenant's above all)."""
    secret = uniq("SECRET")
    ja = submitted(api.submit([{"ref": secret, "data": {"card": "4111"}}]))
    api.wait_job(ja["id"])
    jb = submitted(api_b.submit([{"ref": "b-own", "data": {}}]))
    api_b.wait_job(jb["id"])
    ja2 = submitted(api.submit([{"ref": secret + "-2", "data": {}}]))
    api.wait_job(ja2["id"])
    r = api_b.get("/v1/jobs/%s/items" % jb["id"], params={"cursor": cursor})
    assert r.status_code in (200, 400), r.text
    assert secret not in r.text, r.text[:500]
    if r.status_code == 200:
        assert r.json() == {"value": []}, r.json()


def _routes():
    """(method, path template, needs a key) of every route in src/api/routes.c."""
    import os
    import re
    src = open(os.path.join(os.path.dirname(__file__), "..", "..", "src", "api", "routes.c")).read()
    return [(m, p, "ROUTE_AUTH" in flags) for m, p, flags in
            re.findall(r'\{"(GET|POST|PUT|PATCH|DELETE)", "([^"]+)", \w+, ([^,]+),', src)]


def test_every_job_route_hides_other_tenants_jobs(server, api, api_b, a_job):
    """Every route that names a job, from the route table itself (so a new route is
    covered when it is added): another tenant's job id answers 404, like an unknown
    one, and changes nothing."""
    job_routes = [(m, p) for m, p, auth in _routes() if "{id}" in p]
    assert len(job_routes) >= 9, job_routes
    for method, tmpl in job_routes:
        path = tmpl.replace("{id}", a_job).replace("{index}", "0")
        kw = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
        r = api_b.request(method, path, **kw)
        if tmpl.endswith("/events"):
            r.close()
        assert r.status_code == 404, (method, tmpl, r.status_code, r.text[:200])
    r = api.get("/v1/jobs/" + a_job)
    assert r.status_code == 200 and r.json()["status"] == "Succeeded", r.text


def test_every_keyed_route_needs_a_valid_key(server):
    """No key: 401 on every route that needs a key, from the table (a wrong key is
    tested above; many here would trip the per-address limit on failed keys)."""
    import re
    routes = [(m, t) for m, t, auth in _routes() if auth]
    assert len(routes) >= 30, routes
    for method, tmpl in routes:
        path = re.sub(r"\{[a-z]+\}", "x1", tmpl)
        r = requests.request(method, server.url + path, timeout=30)
        assert r.status_code == 401, (method, tmpl, r.status_code)
        assert r.json()["error"]["code"] == "Unauthorized"


def test_other_tenants_definitions_are_invisible(api, api_b):
    wf, lim = uniq("wf"), uniq("lim")
    assert api.put("/v1/workflows/" + wf, json={"steps": [{"type": "noop"}]}).status_code == 201
    assert api.put("/v1/limits/" + lim, json={"rate": 5}).status_code == 201
    for path in ("/v1/workflows/" + wf, "/v1/limits/" + lim):
        assert api_b.get(path).status_code == 404, path
        assert api_b.delete(path).status_code == 404, path
        assert api.get(path).status_code == 200, path
    assert wf not in [w["name"] for w in api_b.get("/v1/workflows").json()["value"]]
    assert lim not in [x["name"] for x in api_b.get("/v1/limits").json()["value"]]
    r = api_b.post("/v1/workflows/%s:run" % wf, json={"ref": "x", "data": {}})
    assert r.status_code in (404, 422), r.text
