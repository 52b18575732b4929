"""A job's items: lists, filters, keyset paging, one item with events, the results stream."""
import json

import pytest

from conftest import ISO_RE, assert_error, get_abs, items, list_all, results, submitted, uniq

ITEM_KEYS = {"index", "ref", "status", "attempts", "error", "result", "createdAt", "updatedAt"}
ITEM_STATUSES = {"Pending", "Processing", "Succeeded", "Failed", "Skipped", "Canceled"}


@pytest.fixture(scope="module")
def mixed(server):
    """A finished products.patch job of 25 items: odd indexes exist (succeed), even are
    missing (fail with DocumentNotFound); refs r-0 and r-1 appear twice."""
    from conftest import Client
    c = Client(server, server.create_key(uniq("items")))
    p = uniq("mx")
    refs = ["%s-%d" % (p, i) for i in range(23)] + ["%s-0" % p, "%s-1" % p]
    for i in range(1, 23, 2):
        r = c.put("/v1/collections/products/%s-%d" % (p, i), json={"orig": i})
        assert r.status_code == 201, r.text
    its = [{"ref": ref, "data": {"i": i, "pad": " x "}} for i, ref in enumerate(refs)]
    job = submitted(c.submit(its, workflow="products.patch"))
    done = c.wait_job(job["id"])
    assert done["status"] == "Succeeded", done
    return c, done, its


def expected_failed(its):
    # even suffix numbers are missing; indexes 23 (r-0) fails, 24 (r-1) succeeds
    return [i for i, it in enumerate(its) if int(it["ref"].rsplit("-", 1)[1]) % 2 == 0]


def test_mixed_job_counts(mixed):
    c, job, its = mixed
    fails = expected_failed(its)
    assert job["counts"]["failed"] == len(fails), job
    assert job["counts"]["succeeded"] == len(its) - len(fails), job
    assert job["outcome"] == "PartiallySucceeded"


def test_items_list_shape(mixed):
    c, job, its = mixed
    r = c.get("/v1/jobs/%s/items" % job["id"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"value"}, body.keys()  # 25 < default page: no nextLink
    assert [it["index"] for it in body["value"]] == list(range(25))
    for it in body["value"]:
        assert ITEM_KEYS <= set(it), it
        assert it["ref"] == its[it["index"]]["ref"]
        assert it["status"] in ("Succeeded", "Failed"), it
        assert it["attempts"] == 1, it
        assert ISO_RE.match(it["createdAt"]) and ISO_RE.match(it["updatedAt"]), it
        if it["status"] == "Failed":
            assert it["error"]["code"] == "DocumentNotFound" and it["error"]["message"], it
        else:
            assert it["error"] is None and it["result"]["version"] >= 2, it


def test_items_status_filter(mixed):
    c, job, its = mixed
    got, _ = list_all(c, "/v1/jobs/%s/items" % job["id"], params={"status": "Failed"})
    assert [it["index"] for it in got] == expected_failed(its)
    assert all(it["status"] == "Failed" for it in got)
    ok, _ = list_all(c, "/v1/jobs/%s/items" % job["id"], params={"status": "Succeeded"})
    assert sorted([it["index"] for it in ok] + [it["index"] for it in got]) == list(range(25))
    none, _ = list_all(c, "/v1/jobs/%s/items" % job["id"], params={"status": "Pending"})
    assert none == []
    # the job's failedItems link gives the same
    r = get_abs(c, job["links"]["failedItems"])
    assert [it["index"] for it in r.json()["value"]] == expected_failed(its)


def test_items_ref_filter(mixed):
    c, job, its = mixed
    ref = its[0]["ref"]
    got, _ = list_all(c, "/v1/jobs/%s/items" % job["id"], params={"ref": ref})
    assert [it["index"] for it in got] == [0, 23]
    got, _ = list_all(c, "/v1/jobs/%s/items" % job["id"], params={"ref": "no-such-ref"})
    assert got == []


@pytest.mark.parametrize("limit", [1, 7, 10, 25, 1000])
def test_items_keyset_paging(mixed, limit):
    c, job, its = mixed
    got, pages = list_all(c, "/v1/jobs/%s/items" % job["id"], params={"limit": limit})
    assert [it["index"] for it in got] == list(range(25))
    assert all(len(p["value"]) == limit for p in pages[:-1])
    assert 1 <= len(pages[-1]["value"]) <= limit
    assert "nextLink" not in pages[-1]
    assert len(pages) == -(-25 // limit)


def test_items_paging_keeps_filters(mixed):
    c, job, its = mixed
    got, pages = list_all(c, "/v1/jobs/%s/items" % job["id"],
                          params={"status": "Failed", "limit": 2})
    assert [it["index"] for it in got] == expected_failed(its)
    assert len(pages) >= 6
    got, pages = list_all(c, "/v1/jobs/%s/items" % job["id"],
                          params={"ref": its[1]["ref"], "limit": 1})
    assert [it["index"] for it in got] == [1, 24]


def test_items_explicit_cursor(mixed):
    c, job, _ = mixed
    r = c.get("/v1/jobs/%s/items" % job["id"], params={"cursor": 20, "limit": 3})
    assert [it["index"] for it in r.json()["value"]] == [21, 22, 23]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": -1}, {"limit": "abc"},
                                    {"limit": 1001}, {"cursor": "x"}, {"status": "Bogus"},
                                    {"status": "failed"}])
def test_items_bad_params_400(mixed, params):
    c, job, _ = mixed
    r = c.get("/v1/jobs/%s/items" % job["id"], params=params)
    assert_error(r, 400, "InvalidParameter")


def test_one_item_detail(mixed):
    c, job, its = mixed
    r = c.get("/v1/jobs/%s/items/1" % job["id"])
    assert r.status_code == 200, r.text
    it = r.json()
    assert ITEM_KEYS | {"data", "events"} <= set(it), it
    assert it["index"] == 1 and it["ref"] == its[1]["ref"] and it["status"] == "Succeeded"
    assert it["data"] == its[1]["data"]
    assert it["result"]["version"] == 2 and it["result"]["ref"] == its[1]["ref"], it
    codes = [e["code"] for e in it["events"]]
    for e in it["events"]:
        # every event has these; step events add step, type, attempt, durationMs ...
        assert {"at", "stage", "level", "code", "message"} <= set(e), e
        assert ISO_RE.match(e["at"]), e
    assert codes[0] == "Accepted", codes
    assert "Claimed" in codes and "VersionWritten" in codes, codes
    assert codes.index("Claimed") < codes.index("VersionWritten"), codes

    f = c.get("/v1/jobs/%s/items/0" % job["id"]).json()
    assert f["status"] == "Failed" and f["error"]["code"] == "DocumentNotFound", f
    assert f["attempts"] == 1
    codes = [e["code"] for e in f["events"]]
    assert codes[0] == "Accepted" and "Claimed" in codes and "DocumentNotFound" in codes, codes
    err_ev = [e for e in f["events"] if e["code"] == "DocumentNotFound"][0]
    assert err_ev["level"] == "error", err_ev


def test_item_data_exactly_as_sent(api):
    raw = '{"b":1.50,"a":[1e2, "x\\u00e9", -0.0],  "z" : {"n":null}}'
    body = '{"workflow":"noop","items":[{"ref":"exact","data":%s}]}' % raw
    job = submitted(api.post("/v1/jobs", data=body.encode(),
                             headers={"Content-Type": "application/json"}))
    r = api.get("/v1/jobs/%s/items/0" % job["id"])
    assert r.status_code == 200
    assert raw in r.text, r.text
    assert r.json()["data"] == json.loads(raw)
    nd = '{"ref":"exact2","data":%s}\n' % raw
    job = submitted(api.submit_ndjson(nd.encode(), workflow="noop"))
    r = api.get("/v1/jobs/%s/items/0" % job["id"])
    assert raw in r.text, r.text


def test_item_without_data_is_null(api):
    job = submitted(api.submit([{"ref": "nodata"}]))
    it = api.get("/v1/jobs/%s/items/0" % job["id"]).json()
    assert it["data"] is None, it


@pytest.mark.parametrize("index", ["-1", "abc", "1x", "+1", "0x1", "1.5"])
def test_bad_item_index_400(mixed, index):
    c, job, _ = mixed
    r = c.get("/v1/jobs/%s/items/%s" % (job["id"], index))
    assert_error(r, 400, "InvalidParameter")


@pytest.mark.parametrize("index", ["25", "1000000", "99999999999999999"])
def test_item_index_out_of_range_404(mixed, index):
    c, job, _ = mixed
    r = c.get("/v1/jobs/%s/items/%s" % (job["id"], index))
    assert_error(r, 404, "NotFound")


def test_items_of_unknown_job_404(api):
    assert_error(api.get("/v1/jobs/job_nope/items"), 404, "NotFound")
    assert_error(api.get("/v1/jobs/job_nope/items/0"), 404, "NotFound")
    assert_error(api.get("/v1/jobs/job_nope/results"), 404, "NotFound")


def test_results_stream(mixed):
    c, job, its = mixed
    res = results(c, job["id"])
    assert [x["index"] for x in res] == list(range(25))
    fails = set(expected_failed(its))
    for x in res:
        assert x["ref"] == its[x["index"]]["ref"]
        if x["index"] in fails:
            assert x["status"] == "Failed" and x["error"]["code"] == "DocumentNotFound", x
            assert x["error"]["message"]
            assert "result" not in x or x["result"] is None, x
        else:
            assert x["status"] == "Succeeded" and x["result"]["version"] >= 2, x
            assert "error" not in x or x["error"] is None, x


def test_results_stream_many_pages(api):
    n = 2345
    job = submitted(api.submit(items(n, prefix=uniq("res") + "-")))
    api.wait_job(job["id"])
    res = results(api, job["id"])
    assert len(res) == n
    assert [x["index"] for x in res] == list(range(n))
    assert all(x["status"] == "Succeeded" for x in res)


def test_results_of_new_job_lists_every_item(api):
    # before (or while) processing, every item still has one line
    job = submitted(api.submit(items(50, prefix=uniq("early") + "-")))
    res = results(api, job["id"])
    assert [x["index"] for x in res] == list(range(50))
    for x in res:
        assert x["status"] in ITEM_STATUSES
    api.wait_job(job["id"])
