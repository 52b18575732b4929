"""Accept-Encoding on responses: large text answers (item pages, the results stream, the
OpenAPI document) come gzip-encoded to a client that accepts gzip, and as they are to one
that does not. The compressed bytes are read raw and decoded here with Python's gzip
module, so what is checked is the encoding itself, not a client's transparent decoding."""
import gzip
import json

import pytest
import requests

from conftest import items, submitted, uniq


def raw_get(client, path, accept, **kw):
    """GET path sending exactly this Accept-Encoding (None: the header is absent); returns
    (response, the body bytes as they crossed the wire)."""
    headers = {"Accept-Encoding": accept} if accept is not None else {}
    s = requests.Session()
    if accept is None:
        s.headers.pop("Accept-Encoding", None)
    s.headers["Authorization"] = "Bearer " + client.key
    r = s.get(client.url(path), headers=headers, stream=True, timeout=60, **kw)
    body = r.raw.read(decode_content=False)
    r.close()
    return r, body


@pytest.fixture(scope="module")
def big_job(server):
    from conftest import Client
    c = Client(server, server.create_key(uniq("gzr")))
    job = submitted(c.submit(items(400, prefix=uniq("gz") + "-")))
    assert c.wait_job(job["id"])["status"] == "Succeeded"
    return c, job["id"]


def test_item_page_is_gzip_when_accepted(big_job):
    c, jid = big_job
    path = "/v1/jobs/%s/items?limit=400" % jid
    plain_r, plain = raw_get(c, path, None)
    assert plain_r.status_code == 200 and "Content-Encoding" not in plain_r.headers
    r, body = raw_get(c, path, "gzip")
    assert r.status_code == 200, body[:200]
    assert r.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in r.headers.get("Vary", "")
    assert int(r.headers["Content-Length"]) == len(body)
    decoded = gzip.decompress(body)
    assert json.loads(decoded) == json.loads(plain)
    assert len(json.loads(decoded)["value"]) == 400
    assert len(body) * 4 < len(plain), (len(body), len(plain))  # JSON pages compress well


def test_results_stream_is_gzip_when_accepted(big_job):
    c, jid = big_job
    _, plain = raw_get(c, "/v1/jobs/%s/results" % jid, None)
    r, body = raw_get(c, "/v1/jobs/%s/results" % jid, "br;q=1, gzip;q=0.5")
    assert r.status_code == 200
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    lines = gzip.decompress(body).decode().splitlines()
    assert lines == plain.decode().splitlines()
    assert len(lines) == 400 and all(json.loads(l)["ref"] for l in lines)


@pytest.mark.parametrize("accept", ["identity", "gzip;q=0", "br", "deflate", "*;q=0",
                                    "gzip;q=0.000, *", "", "x-gzipper"])
def test_no_gzip_unless_accepted(big_job, accept):
    c, jid = big_job
    r, body = raw_get(c, "/v1/jobs/%s/items?limit=400" % jid, accept)
    assert r.status_code == 200
    assert "Content-Encoding" not in r.headers, (accept, r.headers)
    assert len(json.loads(body)["value"]) == 400


@pytest.mark.parametrize("accept", ["gzip", "GZIP", "x-gzip", "*", "deflate, gzip;q=0.1",
                                    "identity;q=0.5, *;q=0.2", "gzip ; q=1.0"])
def test_gzip_spellings(big_job, accept):
    c, jid = big_job
    r, body = raw_get(c, "/v1/jobs/%s/items?limit=400" % jid, accept)
    assert r.headers.get("Content-Encoding") == "gzip", (accept, r.headers)
    assert len(json.loads(gzip.decompress(body))["value"]) == 400


def test_small_answers_stay_plain(tenant):
    r, body = raw_get(tenant, "/v1/jobs?limit=1", "gzip")  # a new tenant: {"value": []}
    assert r.status_code == 200 and len(body) < 1024
    assert "Content-Encoding" not in r.headers
    assert json.loads(body) == {"value": []}


def test_openapi_gzip_etag_is_weak_and_revalidates(server):
    s = requests.Session()
    plain = s.get(server.url + "/openapi.json", headers={"Accept-Encoding": "identity"}, timeout=30)
    strong = plain.headers["ETag"]
    assert strong.startswith('"'), strong
    r = s.get(server.url + "/openapi.json", headers={"Accept-Encoding": "gzip"}, stream=True,
              timeout=30)
    body = r.raw.read(decode_content=False)
    assert r.headers["Content-Encoding"] == "gzip"
    # another representation of the same resource: same opaque tag, compared weakly only
    assert r.headers["ETag"] == "W/" + strong
    assert gzip.decompress(body) == plain.content
    for inm in (r.headers["ETag"], strong):
        again = s.get(server.url + "/openapi.json", timeout=30,
                      headers={"Accept-Encoding": "gzip", "If-None-Match": inm})
        assert again.status_code == 304, (inm, again.status_code)


def test_event_stream_is_never_compressed(big_job):
    c, jid = big_job
    r = c.get("/v1/jobs/%s/events" % jid, stream=True, headers={"Accept-Encoding": "gzip"},
              timeout=60)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")
    assert "Content-Encoding" not in r.headers
    first = r.raw.read(20, decode_content=False)
    r.close()
    assert first.startswith(b"id:") or first.startswith(b"event:") or first.startswith(b":"), first


def test_errors_keep_working_with_gzip(big_job):
    c, jid = big_job
    r, body = raw_get(c, "/v1/jobs/nope", "gzip")
    assert r.status_code == 404 and json.loads(body)["error"]["code"] == "NotFound"


def test_dashboard_asset_tag_is_one_per_client(server):
    """A 304 carries the tag its 200 would have: the weak one for a client that accepts
    gzip (the asset is large enough to be compressed), the strong one for any other."""
    s = requests.Session()
    for accept, weak in (("gzip", True), ("identity", False)):
        r = s.get(server.url + "/ui/app.js", headers={"Accept-Encoding": accept}, timeout=30)
        assert r.status_code == 200 and len(r.content) >= 1024
        tag = r.headers["ETag"]
        assert tag.startswith("W/") == weak, (accept, tag)
        assert (r.headers.get("Content-Encoding") == "gzip") == weak
        again = s.get(server.url + "/ui/app.js", timeout=30,
                      headers={"Accept-Encoding": accept, "If-None-Match": tag})
        assert again.status_code == 304 and again.headers["ETag"] == tag, (accept, again.headers)
