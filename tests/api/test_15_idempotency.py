"""Idempotent submits: Idempotency-Key and Operation-Id on POST /v1/jobs and :retry."""
import json
import threading

import requests

from conftest import assert_error, items, job_ids, list_all, submitted, uniq


def post_json(c, body, key=None, op=None, data=None):
    h = {"Content-Type": "application/json"}
    if key is not None:
        h["Idempotency-Key"] = key
    if op is not None:
        h["Operation-Id"] = op
    return c.post("/v1/jobs", data=data if data is not None else json.dumps(body), headers=h)


def jobs_with_reference(c, ref):
    vals, _ = list_all(c, "/v1/jobs", params={"limit": 1000})
    return [j for j in vals if j.get("clientReference") == ref]


def test_replay_returns_the_first_job(api):
    key, ref = uniq("key"), uniq("ref")
    body = {"workflow": "noop", "clientReference": ref, "items": items(3)}
    first = submitted(post_json(api, body, key))
    assert "Idempotent-Replayed" not in first
    r = post_json(api, body, key)
    again = submitted(r)
    assert r.headers.get("Idempotent-Replayed") == "true", r.headers
    assert r.headers["Location"].endswith("/v1/jobs/" + first["id"]), r.headers
    assert again["id"] == first["id"]
    assert again["counts"]["total"] == 3
    assert len(jobs_with_reference(api, ref)) == 1


def test_same_key_in_parallel_creates_one_job(api):
    key, ref = uniq("par"), uniq("par-ref")
    # big enough that the first upload is still in flight when the others arrive
    data = json.dumps({"workflow": "noop", "clientReference": ref,
                       "items": items(20000, prefix=uniq("p") + "-")})
    out = [None] * 10

    def send(i):
        s = requests.Session()
        s.headers["Authorization"] = "Bearer " + api.key
        out[i] = s.post(api.url("/v1/jobs"), data=data, timeout=120,
                        headers={"Content-Type": "application/json", "Idempotency-Key": key})

    ts = [threading.Thread(target=send, args=(i,)) for i in range(10)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    jobs = jobs_with_reference(api, ref)
    assert len(jobs) == 1, [j["id"] for j in jobs]
    jid = jobs[0]["id"]
    accepted = 0
    for r in out:
        if r.status_code == 202:
            accepted += 1
            assert r.json()["id"] == jid, r.text
        else:
            assert_error(r, 409, "Conflict", "Idempotency-Key")
    assert accepted >= 1
    assert sum(1 for r in out if r.headers.get("Idempotent-Replayed") == "true") == accepted - 1
    done = api.wait_job(jid)
    assert done["counts"]["total"] == 20000


def test_same_key_other_body_is_refused(api):
    key, ref = uniq("k"), uniq("ref")
    submitted(post_json(api, {"workflow": "noop", "clientReference": ref, "items": items(2)}, key))
    r = post_json(api, {"workflow": "noop", "clientReference": ref, "items": items(3)}, key)
    assert_error(r, 422, "IdempotencyKeyReused", "Idempotency-Key")
    assert len(jobs_with_reference(api, ref)) == 1
    # the same JSON with other whitespace is another body: the hash is of the bytes
    r = post_json(api, None, key, data=json.dumps(
        {"workflow": "noop", "clientReference": ref, "items": items(2)}, indent=1))
    assert_error(r, 422, "IdempotencyKeyReused", "Idempotency-Key")


def test_ndjson_query_is_part_of_the_request(api):
    key = uniq("nd")
    lines = "".join(json.dumps(i) + "\n" for i in items(2))
    h = {"Content-Type": "application/x-ndjson", "Idempotency-Key": key}
    first = submitted(api.post("/v1/jobs", params={"workflow": "noop"}, data=lines, headers=h))
    r = api.post("/v1/jobs", params={"workflow": "noop"}, data=lines, headers=h)
    assert submitted(r)["id"] == first["id"]
    assert r.headers.get("Idempotent-Replayed") == "true"
    r = api.post("/v1/jobs", params={"workflow": "noop", "clientReference": "x"}, data=lines,
                 headers=h)
    assert_error(r, 422, "IdempotencyKeyReused")


def test_keys_are_per_tenant(api, api_b):
    key = uniq("shared")
    body = {"workflow": "noop", "items": items(1)}
    a = submitted(post_json(api, body, key))
    r = post_json(api_b, body, key)
    b = submitted(r)
    assert "Idempotent-Replayed" not in r.headers
    assert a["id"] != b["id"]
    assert api_b.get("/v1/jobs/" + a["id"]).status_code == 404


def test_operation_id_names_the_job(api, api_b):
    op = uniq("Op.order") + "_1"
    body = {"workflow": "noop", "items": items(2)}
    j = submitted(post_json(api, body, op=op))
    assert j["id"] == op
    r = api.get("/v1/jobs/" + op)
    assert r.status_code == 200 and r.json()["id"] == op
    r = post_json(api, body, op=op)
    assert submitted(r)["id"] == op
    assert r.headers.get("Idempotent-Replayed") == "true"
    assert_error(post_json(api, {"workflow": "noop", "items": items(5)}, op=op), 422,
                 "IdempotencyKeyReused", "Operation-Id")
    # another tenant cannot take the id
    assert_error(post_json(api_b, body, op=op), 409, "Conflict", "Operation-Id")
    assert api_b.get("/v1/jobs/" + op).status_code == 404
    assert op in job_ids(api)
    done = api.wait_job(op)
    assert done["status"] == "Succeeded"
    # 64 characters is the longest id
    long_op = (uniq("L") + "x" * 64)[:64]
    assert submitted(post_json(api, body, op=long_op))["id"] == long_op


def test_bad_headers(api):
    body = {"workflow": "noop", "items": items(1)}
    for op in ["has space", "x" * 65, "semi;colon", "slash/y"]:
        assert_error(post_json(api, body, op=op), 400, "InvalidRequest", "Operation-Id")
    assert_error(post_json(api, body, key="k" * 256), 400, "InvalidRequest", "Idempotency-Key")


def test_replay_after_the_job_finished(api):
    key = uniq("done")
    body = {"workflow": "noop", "items": items(4)}
    j = submitted(post_json(api, body, key))
    done = api.wait_job(j["id"])
    assert done["status"] == "Succeeded"
    r = post_json(api, body, key)
    again = submitted(r)
    assert r.headers.get("Idempotent-Replayed") == "true"
    assert again["id"] == j["id"] and again["status"] == "Succeeded", again
    assert "Retry-After" not in r.headers


def failed_job(api):
    coll = uniq("idemcoll")
    j = submitted(api.submit(items(3), workflow=coll + ".patch"))  # missing documents: all fail
    done = api.wait_job(j["id"])
    assert done["counts"]["failed"] == 3, done
    return j["id"]


def test_retry_with_key(api):
    parent, other = failed_job(api), failed_job(api)
    key = uniq("retry")
    h = {"Idempotency-Key": key}
    r = api.post("/v1/jobs/%s:retry" % parent, headers=h)
    first = submitted(r)
    assert first["parentJob"] == parent
    assert "Idempotent-Replayed" not in r.headers
    r = api.post("/v1/jobs/%s:retry" % parent, headers=h)
    assert submitted(r)["id"] == first["id"]
    assert r.headers.get("Idempotent-Replayed") == "true"
    # the key covers the retry of that job: elsewhere it is refused
    assert_error(api.post("/v1/jobs/%s:retry" % other, headers=h), 422, "IdempotencyKeyReused",
                 "Idempotency-Key")
    assert_error(post_json(api, {"workflow": "noop", "items": items(1)}, key), 422,
                 "IdempotencyKeyReused")
    # without a key, every retry is a new job
    a = submitted(api.post("/v1/jobs/%s:retry" % parent))
    assert a["id"] != first["id"]
    # Operation-Id names the retry job
    op = uniq("retry-op")
    assert submitted(api.post("/v1/jobs/%s:retry" % other, headers={"Operation-Id": op}))["id"] == op
