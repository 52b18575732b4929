"""Job control: cancel, list (newest first, paging, status filter), delete."""
import re
import time

import pytest

from conftest import (Client, Server, TERMINAL, assert_error, counts_ok, get_abs, items,
                      job_ids, list_all, submitted, uniq, wait_until)


@pytest.fixture(scope="module")
def slow():
    """One worker taking ten items per claim: a big job stays running for a while."""
    srv = Server(args=["--workers", "1", "--batch", "10"])
    srv.key_a = srv.create_key("acme")
    srv.start()
    yield Client(srv, srv.key_a)
    rc = srv.stop()
    assert rc == 0, srv.read_log()[-4000:]
    srv.cleanup()


def test_cancel_running_job_then_delete(slow):
    c = slow
    n = 200000
    job = submitted(c.submit(items(n, prefix=uniq("cx") + "-")))
    jid = job["id"]

    def progressed():
        r = c.get("/v1/jobs/" + jid)
        assert r.status_code == 200, r.text
        m = r.json()
        return (m, r) if m["counts"]["succeeded"] > 0 else None
    m, r = wait_until(progressed, timeout=60, what="first items done")
    assert m["status"] == "Running", m
    counts_ok(m)
    assert 0 <= m["percentComplete"] < 100, m
    ra = r.headers.get("Retry-After")
    assert ra and re.fullmatch(r"\d+", ra) and int(ra) >= 1, r.headers

    # while running, status filters give only items of that status
    for st in ("Pending", "Processing", "Succeeded"):
        r = c.get("/v1/jobs/%s/items" % jid, params={"status": st, "limit": 20})
        assert r.status_code == 200, r.text
        assert all(it["status"] == st for it in r.json()["value"]), (st, r.json()["value"][:3])
    r = c.get("/v1/jobs/%s/items" % jid, params={"status": "Pending", "limit": 5})
    assert len(r.json()["value"]) == 5
    r = c.get("/v1/jobs/%s/items/%d" % (jid, n - 1))
    assert r.json()["status"] == "Pending", r.json()

    # a job that is not finished cannot be deleted
    assert_error(c.delete("/v1/jobs/" + jid), 409, "Conflict")

    r = c.post("/v1/jobs/%s:cancel" % jid)
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["id"] == jid and m["status"] in ("Canceling", "Canceled"), m
    counts_ok(m)

    done = c.wait_job(jid, timeout=60)
    assert done["status"] == "Canceled", done
    c_ = counts_ok(done)
    assert c_["canceled"] > 0 and c_["succeeded"] > 0, c_
    assert c_["succeeded"] + c_["failed"] + c_["skipped"] + c_["canceled"] == n, c_
    assert c_["pending"] == 0 and c_["processing"] == 0, c_
    assert "outcome" not in done, done
    # a generic poller learns why the job stopped (azure-core's LRO poller reads it)
    assert done["error"]["code"] == "Canceled", done
    assert "%d of its %d items" % (c_["canceled"], n) in done["error"]["message"], done
    assert done["percentComplete"] == 100, done
    # the item lists agree with the counts
    ok, _ = list_all(c, "/v1/jobs/%s/items" % jid, params={"status": "Succeeded", "limit": 1000})
    assert len(ok) == c_["succeeded"] and all(it["status"] == "Succeeded" for it in ok)
    assert [it["index"] for it in ok] == sorted(it["index"] for it in ok)
    assert list_all(c, "/v1/jobs/%s/items" % jid, params={"status": "Pending"})[0] == []
    assert list_all(c, "/v1/jobs/%s/items" % jid, params={"status": "Processing"})[0] == []
    assert done["completedAt"] is not None
    r = c.get("/v1/jobs/" + jid)
    assert "Retry-After" not in r.headers, r.headers

    # canceled items are listed as such
    r = c.get("/v1/jobs/%s/items" % jid, params={"status": "Canceled", "limit": 5})
    assert r.status_code == 200
    page = r.json()["value"]
    assert len(page) == 5 and all(it["status"] == "Canceled" for it in page), page
    last = c.get("/v1/jobs/%s/items/%d" % (jid, n - 1)).json()
    assert last["status"] == "Canceled", last

    # the worker is free again: a new job on the same server runs to the end
    j2 = submitted(c.submit(items(3)))
    assert c.wait_job(j2["id"])["status"] == "Succeeded"

    # cancel on a terminal job: 200, unchanged
    r = c.post("/v1/jobs/%s:cancel" % jid)
    assert r.status_code == 200, r.text
    again = r.json()
    assert again["status"] == "Canceled" and again["counts"] == done["counts"], again
    assert again["completedAt"] == done["completedAt"]

    # delete: 204, then 404 everywhere
    r = c.delete("/v1/jobs/" + jid)
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert_error(c.get("/v1/jobs/" + jid), 404, "NotFound")
    assert_error(c.get("/v1/jobs/%s/items" % jid), 404, "NotFound")
    assert_error(c.get("/v1/jobs/%s/items/0" % jid), 404, "NotFound")
    assert_error(c.get("/v1/jobs/%s/results" % jid), 404, "NotFound")
    assert_error(c.post("/v1/jobs/%s:cancel" % jid), 404, "NotFound")
    assert_error(c.delete("/v1/jobs/" + jid), 404, "NotFound")
    assert jid not in job_ids(c)


def test_cancel_succeeded_job_is_unchanged(api):
    job = submitted(api.submit(items(3)))
    done = api.wait_job(job["id"])
    r = api.post("/v1/jobs/%s:cancel" % job["id"])
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["status"] == "Succeeded" and m["outcome"] == "AllSucceeded", m
    assert m["counts"] == done["counts"] and m["completedAt"] == done["completedAt"]
    assert m["counts"]["canceled"] == 0


def test_cancel_unknown_job_404(api):
    assert_error(api.post("/v1/jobs/job_nosuchjob0000:cancel"), 404, "NotFound")


def test_delete_finished_jobs(api):
    ok = submitted(api.submit(items(2)))
    bad = submitted(api.submit(items(2, prefix=uniq("delf") + "-"), workflow="products.patch"))
    assert api.wait_job(ok["id"])["status"] == "Succeeded"
    assert api.wait_job(bad["id"])["status"] == "Failed"
    for j in (ok, bad):
        assert api.delete("/v1/jobs/" + j["id"]).status_code == 204
        assert_error(api.get("/v1/jobs/" + j["id"]), 404, "NotFound")


def test_delete_unknown_job_404(api):
    assert_error(api.delete("/v1/jobs/job_nosuchjob0000"), 404, "NotFound")


def test_job_list_newest_first_with_paging(tenant):
    ids = []
    for i in range(5):
        ids.append(submitted(tenant.submit(items(1), clientReference="list-%d" % i))["id"])
    for jid in ids:
        tenant.wait_job(jid)
    newest_first = list(reversed(ids))
    r = tenant.get("/v1/jobs")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"value"}, body.keys()
    assert [j["id"] for j in body["value"]] == newest_first
    assert body["value"][0]["clientReference"] == "list-4"
    for j in body["value"]:
        assert j["status"] == "Succeeded" and "links" in j and "counts" in j, j

    got, pages = list_all(tenant, "/v1/jobs", params={"limit": 2})
    assert [j["id"] for j in got] == newest_first
    assert [len(p["value"]) for p in pages] == [2, 2, 1]
    assert "nextLink" not in pages[-1]

    got, pages = list_all(tenant, "/v1/jobs", params={"limit": 5})
    assert len(pages) == 1 and "nextLink" not in pages[0]


def test_job_list_status_filter(tenant):
    ok = submitted(tenant.submit(items(2)))["id"]
    bad = submitted(tenant.submit(items(2), workflow="products.patch"))["id"]
    tenant.wait_job(ok)
    tenant.wait_job(bad)
    assert job_ids(tenant, status="Succeeded") == [ok]
    assert job_ids(tenant, status="Failed") == [bad]
    assert job_ids(tenant, status="Canceled") == []
    assert job_ids(tenant, status="Running") == []
    got, pages = list_all(tenant, "/v1/jobs", params={"status": "Failed", "limit": 1})
    assert [j["id"] for j in got] == [bad] and len(pages) == 1
    for _ in range(2):
        submitted(tenant.submit(items(1), workflow="products.patch"))
    wait_until(lambda: all(j["status"] in TERMINAL for j in list_all(tenant, "/v1/jobs")[0]),
               what="jobs done")
    got, pages = list_all(tenant, "/v1/jobs", params={"status": "Failed", "limit": 1})
    assert len(got) == 3 and len(pages) == 3 and got[-1]["id"] == bad
    assert all(j["status"] == "Failed" for j in got)
    assert all("status=Failed" in p["nextLink"] for p in pages[:-1])


@pytest.mark.parametrize("params", [{"status": "Bogus"}, {"status": "succeeded"}, {"limit": 0},
                                    {"limit": "x"}, {"limit": 1001}, {"cursor": "abc"},
                                    {"cursor": -5}])
def test_job_list_bad_params_400(api, params):
    assert_error(api.get("/v1/jobs", params=params), 400, "InvalidParameter")
