"""Workflows: noop, C.upsert, C.patch (RFC 7396), C.delete, same-ref ordering."""
from urllib.parse import quote

import pytest

from conftest import Client, items, list_all, results, submitted, uniq

JSON = {"Content-Type": "application/json"}


def doc(c, coll, ref):
    return c.get("/v1/collections/%s/%s" % (coll, quote(ref, safe="")))


def run(c, its, wf):
    job = submitted(c.submit(its, workflow=wf))
    return c.wait_job(job["id"])


def test_noop_touches_no_documents(tenant):
    j = run(tenant, items(20, prefix="noop-"), "noop")
    assert j["status"] == "Succeeded" and j["outcome"] == "AllSucceeded", j
    assert j["counts"]["succeeded"] == 20
    for coll in ("noop", "products"):
        assert list_all(tenant, "/v1/collections/" + coll)[0] == []


def test_upsert_creates_then_bumps_version(tenant):
    coll = "c" + uniq("up").replace("-", "_")
    its = items(10, prefix="u-")
    j1 = run(tenant, its, coll + ".upsert")
    assert j1["status"] == "Succeeded" and j1["counts"]["succeeded"] == 10, j1
    for i, it in enumerate(its):
        r = doc(tenant, coll, it["ref"])
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["ref"] == it["ref"] and d["data"] == it["data"], d
        assert d["version"] == 1, d
        assert d["lastJob"] == j1["id"] and d["lastItem"] == i, d
        assert r.headers.get("ETag") in ('"1"', 'W/"1"'), r.headers
    # item results name the document write
    res = results(tenant, j1["id"])
    assert [x["index"] for x in res] == list(range(10))
    for x in res:
        assert x["status"] == "Succeeded", x
        assert x["result"]["version"] == 1 and x["result"]["created"] is True, x
        assert x["result"]["ref"] == its[x["index"]]["ref"], x
    # a second job replaces (not merges) and bumps the version
    its2 = [{"ref": it["ref"], "data": {"replaced": True}} for it in its]
    j2 = run(tenant, its2, coll + ".upsert")
    assert j2["status"] == "Succeeded", j2
    for it in its:
        d = doc(tenant, coll, it["ref"]).json()
        assert d["data"] == {"replaced": True} and d["version"] == 2, d
        assert d["lastJob"] == j2["id"]
    res2 = results(tenant, j2["id"])
    assert all(x["result"]["version"] == 2 and x["result"]["created"] is False for x in res2), res2
    # collections are separate namespaces
    assert doc(tenant, coll + "x", its[0]["ref"]).status_code == 404


def test_patch_is_rfc7396_merge(tenant):
    base = {"a": 1, "b": {"c": 2, "d": 3, "deep": {"k": 1}}, "e": [1, 2], "keep": "yes"}
    r = tenant.put("/v1/collections/merge/m1", json=base)
    assert r.status_code == 201, r.text
    patch = {"a": None, "b": {"c": 9, "x": 1, "deep": {"k": None, "n": 2}}, "e": [3],
             "new": {"z": None, "y": 1}}
    j = run(tenant, [{"ref": "m1", "data": patch}], "merge.patch")
    assert j["status"] == "Succeeded", j
    d = doc(tenant, "merge", "m1").json()
    assert d["data"] == {"b": {"c": 9, "d": 3, "x": 1, "deep": {"n": 2}}, "e": [3], "keep": "yes",
                         "new": {"y": 1}}, d
    assert d["version"] == 2, d
    # a non-object patch replaces the whole document
    j = run(tenant, [{"ref": "m1", "data": [1, 2]}], "merge.patch")
    assert j["status"] == "Succeeded", j
    assert doc(tenant, "merge", "m1").json()["data"] == [1, 2]


def test_patch_missing_document_fails_item(tenant):
    r = tenant.put("/v1/collections/pm/exists", json={"v": 0})
    assert r.status_code == 201
    j = run(tenant, [{"ref": "exists", "data": {"v": 1}}, {"ref": "missing", "data": {"v": 1}}],
            "pm.patch")
    assert j["status"] == "Succeeded" and j["outcome"] == "PartiallySucceeded", j
    it = tenant.get("/v1/jobs/%s/items/1" % j["id"]).json()
    assert it["status"] == "Failed" and it["error"]["code"] == "DocumentNotFound", it
    # a failed patch creates nothing
    assert doc(tenant, "pm", "missing").status_code == 404


def test_delete_workflow(tenant):
    for i in range(3):
        assert tenant.put("/v1/collections/dl/d%d" % i, json={"i": i}).status_code == 201
    # data is optional for delete
    j = run(tenant, [{"ref": "d0"}, {"ref": "d1", "data": {"ignored": 1}}], "dl.delete")
    assert j["status"] == "Succeeded" and j["counts"]["succeeded"] == 2, j
    assert doc(tenant, "dl", "d0").status_code == 404
    assert doc(tenant, "dl", "d1").status_code == 404
    assert doc(tenant, "dl", "d2").status_code == 200
    assert [d["ref"] for d in list_all(tenant, "/v1/collections/dl")[0]] == ["d2"]


def test_upsert_without_data_fails_item(tenant):
    j = run(tenant, [{"ref": "nodata"}, {"ref": "hasdata", "data": {"x": 1}}], "nd.upsert")
    assert j["counts"]["failed"] == 1 and j["counts"]["succeeded"] == 1, j
    it = tenant.get("/v1/jobs/%s/items/0" % j["id"]).json()
    assert it["status"] == "Failed" and it["error"]["code"] == "InvalidData", it
    assert doc(tenant, "nd", "nodata").status_code == 404


@pytest.fixture(scope="module")
def choppy(request):
    """Small batches and two workers: same-ref items land in different claims."""
    from conftest import Server
    srv = Server(args=["--workers", "2", "--batch", "3"])
    srv.key_a = srv.create_key("acme")
    srv.start()
    yield Client(srv, srv.key_a)
    rc = srv.stop()
    assert rc == 0, srv.read_log()[-4000:]
    srv.cleanup()


@pytest.mark.parametrize("which", ["shared", "choppy"])
def test_same_ref_applied_in_input_order(request, which):
    c = request.getfixturevalue("api" if which == "shared" else "choppy")
    p = uniq("ord")
    refs = ["%s-%d" % (p, k) for k in range(5)]
    its = [{"ref": refs[i % 5], "data": {"seq": i}} for i in range(50)]
    j = run(c, its, "products.upsert")
    assert j["status"] == "Succeeded" and j["counts"]["succeeded"] == 50, j
    for k, ref in enumerate(refs):
        d = doc(c, "products", ref).json()
        assert d["data"] == {"seq": 45 + k}, d
        assert d["version"] == 10, d
        assert d["lastItem"] == 45 + k, d
    # per-ref versions in the results follow input order: 1, 2, ..., 10
    res = results(c, j["id"])
    for k in range(5):
        assert [x["result"]["version"] for x in res if x["index"] % 5 == k] == list(range(1, 11))


def test_same_ref_patch_chain_in_order(choppy):
    p = uniq("chain")
    its = [{"ref": p, "data": {"k%d" % i: i, "last": i}} for i in range(30)]
    its[0] = {"ref": p, "data": {"k0": 0, "last": 0}}
    j = run(choppy, [its[0]], "chain.upsert")
    assert j["status"] == "Succeeded"
    j = run(choppy, its[1:], "chain.patch")
    assert j["status"] == "Succeeded", j
    d = doc(choppy, "chain", p).json()
    expect = {"k%d" % i: i for i in range(30)}
    expect["last"] = 29
    assert d["data"] == expect and d["version"] == 30, d

