"""Single documents: /v1/collections/{C}/{ref}."""
from urllib.parse import quote

import pytest

from conftest import ISO_RE, assert_error, list_all, uniq

JSON = {"Content-Type": "application/json"}


def path(coll, ref):
    return "/v1/collections/%s/%s" % (coll, quote(ref, safe=""))


def put(c, coll, ref, body, **headers):
    if isinstance(body, str):
        body = body.encode("utf-8")
    return c.put(path(coll, ref), data=body, headers=dict(JSON, **headers))


def test_document_lifecycle(tenant):
    c = tenant
    r = put(c, "books", "b1", '{"title":"Dune","tags":["sf"],"meta":{"pages":412}}')
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["ref"] == "b1" and d["version"] == 1, d
    assert d["data"] == {"title": "Dune", "tags": ["sf"], "meta": {"pages": 412}}
    assert ISO_RE.match(d["updatedAt"]), d
    assert d["lastJob"] is None and d["lastItem"] is None, d
    assert r.headers["ETag"] == '"1"', r.headers

    r = c.get(path("books", "b1"))
    assert r.status_code == 200 and r.headers["ETag"] == '"1"', r.headers
    assert r.json()["data"]["title"] == "Dune"

    # replace
    r = put(c, "books", "b1", '{"title":"Dune Messiah"}')
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["data"] == {"title": "Dune Messiah"}
    assert r.headers["ETag"] == '"2"'

    # If-Match
    assert_error(put(c, "books", "b1", '{"x":1}', **{"If-Match": '"1"'}), 412, "PreconditionFailed")
    assert c.get(path("books", "b1")).json()["version"] == 2
    r = put(c, "books", "b1", '{"title":"Children of Dune","meta":{"pages":444,"isbn":"x"}}',
            **{"If-Match": '"2"'})
    assert r.status_code == 200 and r.json()["version"] == 3, r.text

    # PATCH merges (RFC 7396)
    r = c.patch(path("books", "b1"), data='{"meta":{"isbn":null,"year":1976},"title":null}',
                headers=JSON)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"meta": {"pages": 444, "year": 1976}}, r.json()
    assert r.json()["version"] == 4 and r.headers["ETag"] == '"4"'
    assert_error(c.patch(path("books", "b1"), data='{"a":1}',
                         headers=dict(JSON, **{"If-Match": '"3"'})), 412, "PreconditionFailed")
    r = c.patch(path("books", "b1"), data='{"a":1}', headers=dict(JSON, **{"If-Match": '"4"'}))
    assert r.status_code == 200 and r.json()["version"] == 5

    # DELETE
    assert_error(c.delete(path("books", "b1"), headers={"If-Match": '"4"'}), 412,
                 "PreconditionFailed")
    r = c.delete(path("books", "b1"))
    assert r.status_code == 204 and r.content == b"", r.text
    assert_error(c.get(path("books", "b1")), 404, "DocumentNotFound")
    assert_error(c.delete(path("books", "b1")), 404, "DocumentNotFound")
    assert_error(c.patch(path("books", "b1"), data='{"a":1}', headers=JSON), 404,
                 "DocumentNotFound")
    assert "b1" not in [d["ref"] for d in list_all(c, "/v1/collections/books")[0]]


def test_if_match_weak_and_bare_forms(tenant):
    r = put(tenant, "etag", "e", '{"v":1}')
    assert r.status_code == 201
    assert put(tenant, "etag", "e", '{"v":2}', **{"If-Match": 'W/"1"'}).status_code == 200
    assert put(tenant, "etag", "e", '{"v":3}', **{"If-Match": "2"}).status_code == 200
    assert_error(put(tenant, "etag", "e", '{"v":4}', **{"If-Match": "abc"}), 400,
                 "InvalidParameter")


def test_if_match_on_missing_document(tenant):
    r = put(tenant, "etag", "never", '{"v":1}', **{"If-Match": '"1"'})
    assert r.status_code in (404, 412), r.text
    assert tenant.get(path("etag", "never")).status_code == 404


def test_patch_and_delete_missing_404(tenant):
    assert_error(tenant.patch(path("ghosts", "g"), data='{"a":1}', headers=JSON), 404,
                 "DocumentNotFound")
    assert_error(tenant.delete(path("ghosts", "g")), 404, "DocumentNotFound")
    assert_error(tenant.get(path("ghosts", "g")), 404, "DocumentNotFound")
    assert tenant.get(path("ghosts", "g")).status_code == 404


@pytest.mark.parametrize("body", ['{"a":', "not json", '{"a":1} x', "", '{"a":"\\ud800"}',
                                  b'{"a":"\xff"}'])
def test_invalid_json_body_400(tenant, body):
    r = put(tenant, "bad", "doc", body)
    assert_error(r, 400, "InvalidJson")
    assert tenant.get(path("bad", "doc")).status_code == 404
    assert put(tenant, "bad", "doc2", '{"ok":1}').status_code == 201
    data = body.encode() if isinstance(body, str) else body
    assert_error(tenant.patch(path("bad", "doc2"), data=data, headers=JSON), 400, "InvalidJson")
    assert tenant.get(path("bad", "doc2")).json()["version"] == 1


@pytest.mark.parametrize("coll", ["bad.name", "bad%20name", "x" * 65, "caf%C3%A9", "a%2Fb"])
def test_invalid_collection_400(tenant, coll):
    for r in (tenant.get("/v1/collections/%s/r" % coll),
              tenant.put("/v1/collections/%s/r" % coll, data="{}", headers=JSON),
              tenant.patch("/v1/collections/%s/r" % coll, data="{}", headers=JSON),
              tenant.delete("/v1/collections/%s/r" % coll),
              tenant.get("/v1/collections/%s" % coll)):
        assert_error(r, 400, "InvalidParameter")


def test_ref_too_long_400(tenant):
    assert_error(tenant.get(path("c", "r" * 257)), 400, "InvalidParameter")
    assert put(tenant, "c", "r" * 256, "{}").status_code == 201


@pytest.mark.parametrize("ref", ["with space", "a/b/c", "100%", "q?x=1&y", "hash#tag",
                                 "plus+sign", "caf\u00e9", "%2F"])
def test_refs_are_percent_encoded(tenant, ref):
    r = put(tenant, "enc", ref, '{"ref":"%s"}' % ref.replace("\\", "\\\\"))
    assert r.status_code == 201, r.text
    assert r.json()["ref"] == ref
    g = tenant.get(path("enc", ref))
    assert g.status_code == 200 and g.json()["ref"] == ref, g.text
    assert ref in [d["ref"] for d in list_all(tenant, "/v1/collections/enc")[0]]
    assert tenant.delete(path("enc", ref)).status_code == 204


def test_plus_in_path_is_not_a_space(tenant):
    assert put(tenant, "plus", "a+b", "{}").status_code == 201
    assert tenant.get(path("plus", "a b")).status_code == 404
    assert tenant.get("/v1/collections/plus/a+b").status_code == 200


def test_document_list_paging(tenant):
    refs = sorted(["k%02d" % i for i in range(7)] + ["a b", "a/b", "z\u00e9"])
    for ref in reversed(refs):
        assert put(tenant, "listed", ref, '{"r":1}').status_code == 201
    r = tenant.get("/v1/collections/listed")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"value"}
    listed = [d["ref"] for d in body["value"]]
    assert sorted(listed) == refs and len(set(listed)) == len(refs)
    for d in body["value"]:
        assert {"ref", "data", "version", "updatedAt", "lastJob", "lastItem"} <= set(d), d
    got, pages = list_all(tenant, "/v1/collections/listed", params={"limit": 3})
    assert [d["ref"] for d in got] == listed
    assert [len(p["value"]) for p in pages] == [3, 3, 3, 1]
    assert "nextLink" not in pages[-1]
    # after= starts after the given ref
    r = tenant.get("/v1/collections/listed", params={"after": listed[4], "limit": 2})
    assert [d["ref"] for d in r.json()["value"]] == listed[5:7]
    assert_error(tenant.get("/v1/collections/listed", params={"limit": 0}), 400, "InvalidParameter")
    # an unknown collection is an empty list
    r = tenant.get("/v1/collections/" + uniq("empty").replace("-", "_"))
    assert r.status_code == 200 and r.json() == {"value": []}


def test_document_written_by_job_and_request_share_versions(tenant):
    from conftest import submitted
    j = submitted(tenant.submit([{"ref": "shared", "data": {"v": 1}}], workflow="mix.upsert"))
    tenant.wait_job(j["id"])
    d = tenant.get(path("mix", "shared")).json()
    assert d["version"] == 1 and d["lastJob"] == j["id"] and d["lastItem"] == 0, d
    r = tenant.patch(path("mix", "shared"), data='{"w":2}', headers=JSON)
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    assert r.json()["lastJob"] is None and r.json()["lastItem"] is None, r.json()
    j = submitted(tenant.submit([{"ref": "shared", "data": {"x": 3}}], workflow="mix.patch"))
    assert tenant.wait_job(j["id"])["status"] == "Succeeded"
    d = tenant.get(path("mix", "shared")).json()
    assert d["data"] == {"v": 1, "w": 2, "x": 3} and d["version"] == 3, d


def test_recreate_after_delete(tenant):
    assert put(tenant, "re", "d", '{"life":1}').status_code == 201
    assert tenant.delete(path("re", "d")).status_code == 204
    r = put(tenant, "re", "d", '{"life":2}')
    assert r.status_code == 201, r.text
    assert r.json()["data"] == {"life": 2}
    # an ETag from the document's previous life must not match the new one
    assert r.json()["version"] > 1, r.json()
    assert_error(put(tenant, "re", "d", '{"life":3}', **{"If-Match": '"1"'}), 412,
                 "PreconditionFailed")


def test_json_null_document(tenant):
    r = put(tenant, "nulls", "n", "null")
    if r.status_code == 201:
        g = tenant.get(path("nulls", "n"))
        assert g.status_code == 200 and g.json()["data"] is None, g.text
        assert "n" in [d["ref"] for d in list_all(tenant, "/v1/collections/nulls")[0]]
    else:
        assert 400 <= r.status_code < 500 and "error" in r.json(), r.text
        assert tenant.get(path("nulls", "n")).status_code == 404


def test_concurrent_if_match_updates_are_serialized(tenant):
    import threading
    assert put(tenant, "occ", "counter", '{"n":0}').status_code == 201
    wins = []
    errors = []

    def worker():
        from conftest import Client
        c = Client(tenant.server, tenant.key)
        for _ in range(15):
            g = c.get(path("occ", "counter"))
            etag, n = g.headers["ETag"], g.json()["data"]["n"]
            r = put(c, "occ", "counter", '{"n":%d}' % (n + 1), **{"If-Match": etag})
            if r.status_code == 200:
                wins.append(n + 1)
            elif r.status_code != 412:
                errors.append((r.status_code, r.text))
    ts = [threading.Thread(target=worker) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors[:3]
    d = tenant.get(path("occ", "counter")).json()
    # every successful conditional write saw the previous one: no lost update
    assert sorted(wins) == list(range(1, len(wins) + 1)), sorted(wins)
    assert d["data"]["n"] == len(wins) and d["version"] == 1 + len(wins), (d, len(wins))


def test_concurrent_patches_lose_nothing(tenant):
    import threading
    assert put(tenant, "cp", "doc", "{}").status_code == 201
    errors = []

    def worker(k):
        from conftest import Client
        c = Client(tenant.server, tenant.key)
        for i in range(10):
            r = c.patch(path("cp", "doc"), data=('{"k%d_%d":1}' % (k, i)).encode(), headers=JSON)
            if r.status_code != 200:
                errors.append((r.status_code, r.text))
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors[:3]
    d = tenant.get(path("cp", "doc")).json()
    assert len(d["data"]) == 60, sorted(d["data"])
    assert d["version"] == 61
