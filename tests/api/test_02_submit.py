"""Accepted submits (JSON and NDJSON) and the job monitor."""
import json
import re
import time

import pytest

from conftest import (ISO_RE, JOB_STATUSES, TERMINAL, counts_ok, get_abs, items, submitted,
                      uniq)


def check_accept_headers(server, r):
    job = submitted(r)
    url = "%s/v1/jobs/%s" % (server.url, job["id"])
    assert r.headers.get("Location") == url, r.headers
    assert r.headers.get("Operation-Location") == url, r.headers
    ra = r.headers.get("Retry-After")
    assert ra is not None and re.fullmatch(r"\d+", ra) and int(ra) >= 1, ra
    assert r.headers["Content-Type"].startswith("application/json")
    return job


def check_monitor(server, job):
    assert isinstance(job["id"], str) and job["id"], job
    assert job["status"] in JOB_STATUSES, job
    assert isinstance(job["workflow"], str)
    counts_ok(job)
    pct = job["percentComplete"]
    assert isinstance(pct, (int, float)) and 0 <= pct <= 100, job
    ips = job["throughput"]["itemsPerSecond"]
    assert isinstance(ips, (int, float)) and ips >= 0, job
    for k in ("createdAt", "startedAt", "lastProgressAt", "completedAt", "estimatedCompletionAt"):
        assert k in job, (k, job)
        assert job[k] is None or ISO_RE.match(job[k]), (k, job[k])
    assert job["createdAt"] is not None
    base = "%s/v1/jobs/%s" % (server.url, job["id"])
    assert job["links"] == {
        "self": base, "items": base + "/items", "failedItems": base + "/items?status=Failed",
        "results": base + "/results", "cancel": base + ":cancel"}, job["links"]
    if job["status"] != "Succeeded":
        assert "outcome" not in job, job
    if job["status"] not in ("Failed", "Canceled"):
        assert "error" not in job, job
    if job["status"] in TERMINAL:
        assert job["completedAt"] is not None, job
        assert job["counts"]["pending"] == 0 and job["counts"]["processing"] == 0, job
        assert job["percentComplete"] == 100, job
    else:
        assert job["completedAt"] is None, job


def test_submit_json_202(server, api):
    its = items(5, prefix=uniq("sj") + "-")
    r = api.submit(its, workflow="noop", clientReference="batch-7")
    job = check_accept_headers(server, r)
    check_monitor(server, job)
    assert job["status"] in ("NotStarted", "Running", "Succeeded"), job
    assert job["workflow"] == "noop"
    assert job["clientReference"] == "batch-7"
    assert job["counts"]["total"] == 5
    # Location leads to the same job
    g = get_abs(api, r.headers["Location"])
    assert g.status_code == 200, g.text
    assert g.json()["id"] == job["id"]
    done = api.wait_job(job["id"])
    assert done["status"] == "Succeeded" and done["clientReference"] == "batch-7", done


def test_submit_json_with_charset(api):
    body = json.dumps({"workflow": "noop", "items": items(2)})
    r = api.post("/v1/jobs", data=body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert submitted(r)["counts"]["total"] == 2


def test_submit_ndjson_crlf_blank_lines_and_reference(server, api):
    p = uniq("nd")
    body = ('{"ref":"%s-0","data":{"k":0}}\r\n'
            '\r\n'
            '   \n'
            '{"ref":"%s-1","data":{"k":[1,2]}}\n'
            '\t\r\n'
            '{"ref":"%s-2","data":"str"}\r\n'
            '{"ref":"%s-3"}' % (p, p, p, p))  # no newline at the very end
    r = api.post("/v1/jobs", params={"workflow": "noop", "clientReference": "nd ref/1"},
                 data=body.encode(), headers={"Content-Type": "application/x-ndjson"})
    job = check_accept_headers(server, r)
    assert job["counts"]["total"] == 4, job
    assert job["clientReference"] == "nd ref/1"
    assert job["workflow"] == "noop"
    done = api.wait_job(job["id"])
    assert done["status"] == "Succeeded" and done["counts"]["succeeded"] == 4, done
    refs = [i["ref"] for i in api.get("/v1/jobs/%s/items" % job["id"]).json()["value"]]
    assert refs == ["%s-%d" % (p, i) for i in range(4)]
    assert api.get("/v1/jobs/%s/items/1" % job["id"]).json()["data"] == {"k": [1, 2]}
    assert api.get("/v1/jobs/%s/items/2" % job["id"]).json()["data"] == "str"


@pytest.mark.parametrize("ctype", ["application/jsonlines", "Application/JSONLines; charset=utf-8"])
def test_submit_jsonlines_is_ndjson(api, ctype):
    # Documented beside application/x-ndjson; it was answered 415 (a length check of 20
    # for a 21-character name).
    p = uniq("jl")
    body = '{"ref":"%s-0","data":{"k":0}}\n{"ref":"%s-1","data":{"k":1}}\n' % (p, p)
    r = api.post("/v1/jobs", params={"workflow": "noop"}, data=body.encode(),
                 headers={"Content-Type": ctype})
    job = submitted(r)
    assert job["counts"]["total"] == 2, job
    done = api.wait_job(job["id"])
    assert done["status"] == "Succeeded" and done["counts"]["succeeded"] == 2, done


def test_submit_unknown_media_type_names_the_accepted_ones(api):
    r = api.post("/v1/jobs", params={"workflow": "noop"}, data=b'{"ref":"a"}\n',
                 headers={"Content-Type": "application/jsonline"})
    assert r.status_code == 415, r.text
    err = r.json()["error"]
    assert err["code"] == "UnsupportedMediaType" and err["target"] == "Content-Type"
    assert "application/jsonlines" in err["message"]


def test_submit_ndjson_helper(api):
    r = api.submit_ndjson(items(3), workflow="noop")
    job = submitted(r)
    assert job["counts"]["total"] == 3
    assert job.get("clientReference") is None, job
    assert job["workflow"] == "noop"


def test_client_reference_absent_is_null(api):
    job = submitted(api.submit(items(1)))
    assert job.get("clientReference") is None, job


def test_ref_of_256_bytes_is_accepted(api):
    ref = "r" * 256
    job = submitted(api.submit([{"ref": ref, "data": {}}]))
    done = api.wait_job(job["id"])
    assert done["status"] == "Succeeded"
    assert api.get("/v1/jobs/%s/items/0" % job["id"]).json()["ref"] == ref


def test_unicode_ref_and_data_round_trip(api):
    ref = "SKU-\u00e9\u4e2d-\U0001F600 x/y"
    data = {"name": "caf\u00e9 \u2603", "emoji": "\U0001F600", "esc": "a\"b\\c\n"}
    job = submitted(api.submit([{"ref": ref, "data": data}], workflow="products.upsert"))
    assert api.wait_job(job["id"])["status"] == "Succeeded"
    it = api.get("/v1/jobs/%s/items/0" % job["id"]).json()
    assert it["ref"] == ref and it["data"] == data
    from urllib.parse import quote
    d = api.get("/v1/collections/products/" + quote(ref, safe=""))
    assert d.status_code == 200, d.text
    assert d.json()["data"] == data and d.json()["ref"] == ref


def test_monitor_while_running_and_done(server, api):
    job = submitted(api.submit(items(3000, prefix=uniq("mon") + "-")))
    seen = []
    deadline = time.time() + 120
    while True:
        r = api.get("/v1/jobs/" + job["id"])
        assert r.status_code == 200, r.text
        m = r.json()
        check_monitor(server, m)
        seen.append(m["status"])
        if m["status"] in TERMINAL:
            assert "Retry-After" not in r.headers, r.headers
            break
        ra = r.headers.get("Retry-After")
        assert ra is not None and re.fullmatch(r"\d+", ra) and int(ra) >= 1, r.headers
        assert time.time() < deadline, "job never finished: %s" % m
        time.sleep(0.01)
    assert m["status"] == "Succeeded", m
    assert m["outcome"] == "AllSucceeded", m
    assert m["counts"]["succeeded"] == 3000 and m["counts"]["failed"] == 0, m
    assert m["percentComplete"] == 100.0
    assert m["startedAt"] and m["lastProgressAt"] and m["completedAt"], m
    assert m["createdAt"] <= m["startedAt"] <= m["completedAt"], m
    assert m["startedAt"] <= m["lastProgressAt"] <= m["completedAt"], m
    if m["completedAt"] != m["startedAt"]:
        assert m["throughput"]["itemsPerSecond"] > 0, m
    # the contract: estimatedCompletionAt is null when unknown or done
    assert m["estimatedCompletionAt"] is None, m


def test_partially_succeeded_outcome(server, api):
    p = uniq("part")
    for i in range(2):
        r = api.put("/v1/collections/products/%s-%d" % (p, i), data='{"v":0}',
                    headers={"Content-Type": "application/json"})
        assert r.status_code == 201, r.text
    its = [{"ref": "%s-%d" % (p, i), "data": {"v": 1}} for i in range(4)]
    job = submitted(api.submit(its, workflow="products.patch"))
    m = api.wait_job(job["id"])
    check_monitor(server, m)
    assert m["status"] == "Succeeded", m
    assert m["outcome"] == "PartiallySucceeded", m
    assert m["counts"]["succeeded"] == 2 and m["counts"]["failed"] == 2, m


def test_all_items_failed(server, api):
    p = uniq("allfail")
    job = submitted(api.submit(items(5, prefix=p + "-"), workflow="products.patch"))
    m = api.wait_job(job["id"])
    check_monitor(server, m)
    assert m["status"] == "Failed", m
    assert "outcome" not in m, m
    assert m["error"]["code"] == "AllItemsFailed", m
    assert isinstance(m["error"]["message"], str) and m["error"]["message"], m
    assert m["counts"]["failed"] == 5 and m["counts"]["succeeded"] == 0, m
    for it in api.get("/v1/jobs/%s/items" % job["id"]).json()["value"]:
        assert it["status"] == "Failed", it
        assert it["error"]["code"] == "DocumentNotFound", it
        assert it["error"]["message"], it


@pytest.mark.parametrize("wf", ["noop", "products.upsert", "my_coll-2.patch", "X.delete"])
def test_workflow_names_accepted(api, wf):
    job = submitted(api.submit(items(1, prefix=uniq("wf") + "-"), workflow=wf))
    assert job["workflow"] == wf
    api.wait_job(job["id"])


def test_concurrent_submits(server, tenant):
    import threading
    from conftest import Client, job_ids
    ids, errors = [], []

    def worker(k):
        c = Client(server, tenant.key)
        for i in range(4):
            r = c.submit(items(300, prefix="cc%d-%d-" % (k, i)), workflow="conc.upsert")
            if r.status_code == 202:
                ids.append(r.json()["id"])
            else:
                errors.append((r.status_code, r.text))
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors[:3]
    assert len(ids) == 24 and len(set(ids)) == 24
    assert sorted(job_ids(tenant)) == sorted(ids)
    for jid in ids:
        m = tenant.wait_job(jid)
        assert m["status"] == "Succeeded" and m["counts"]["succeeded"] == 300, m
    from conftest import list_all
    docs, _ = list_all(tenant, "/v1/collections/conc", params={"limit": 1000})
    assert len(docs) == 24 * 300 and all(d["version"] == 1 for d in docs)
