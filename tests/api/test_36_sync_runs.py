"""Synchronous runs (POST /v1/workflows/{name}:run) execute on run threads, not on the
HTTP threads: an upstream that never answers slows only its own callers. A tenant past
--max-runs-per-tenant gets 429 TooManyRuns with Retry-After, the server past
--run-threads + --run-queue too; a run past --run-timeout-ms answers 504 RunTimeout;
shutting down answers parked runs 503."""
import threading
import time

import requests

from conftest import Client, assert_error, uniq


def hang_step(url, timeout_ms=6000, attempts=1):
    return {"name": "push", "type": "http", "method": "POST", "url": url,
            "timeoutMs": timeout_ms, "retry": {"maxAttempts": attempts, "backoffMs": 0}}


def put_wf(client, steps):
    name = uniq("wf")
    r = client.put("/v1/workflows/" + name, json={"steps": steps})
    assert r.status_code == 201, r.text
    return name


def run_in_threads(client, wf, n, ref="r"):
    """Starts n :run calls at once; returns (threads, results list filled as they end)."""
    out = []
    lock = threading.Lock()

    def one(i):
        try:
            r = client.post("/v1/workflows/%s:run" % wf,
                            json={"ref": "%s%d" % (ref, i), "data": {}}, timeout=60)
            res = (r.status_code, r.headers.get("Retry-After"), r.json(), time.time())
        except requests.RequestException as e:  # recorded, asserted by the caller
            res = (None, None, repr(e), time.time())
        with lock:
            out.append(res)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    return ts, out


def test_hanging_runs_do_not_hold_http_threads(fresh_server, upstream):
    # 4 HTTP threads; tenant A's cap is 4 runs; 12 of A's runs hit an upstream that
    # holds every request 20 s (each call times out after 6 s)
    srv = fresh_server(args=["--outbound-allow", "127.0.0.1/32", "--http-threads", "4",
                             "--max-runs-per-tenant", "4"])
    key_b = srv.create_key("globex")
    srv.start()
    a, b = Client(srv, srv.key_a), Client(srv, key_b)
    upstream.script("/hang", [{"delay_ms": 20000}])
    wf_hang = put_wf(a, [hang_step(upstream.url + "/hang")])
    wf_ok = put_wf(b, [hang_step(upstream.url + "/ok")])
    wf_valid = put_wf(a, [{"name": "v", "type": "validate",
                           "schema": {"type": "object", "required": ["sku"]}}])

    started = time.time()
    ts, out = run_in_threads(a, wf_hang, 12)
    # A's 4 runs reach the upstream: the cap is taken; the 8 others are refused at once
    deadline = time.time() + 10
    while (upstream.stats()["in_flight"] < 4 or len(out) < 8) and time.time() < deadline:
        time.sleep(0.05)
    assert upstream.stats()["in_flight"] == 4, upstream.stats()
    refused = [o for o in out if o[0] == 429]
    assert len(refused) == 8, out
    for status, retry_after, body, _ in refused:
        assert retry_after and int(retry_after) >= 1, (status, retry_after, body)
        assert body["error"]["code"] == "TooManyRuns", body

    # while A's runs hang, everything else is answered promptly
    t0 = time.time()
    assert requests.get(srv.url + "/healthz", timeout=5).status_code == 200
    r = b.post("/v1/workflows/%s:run" % wf_ok, json={"ref": "b1", "data": {"x": 1}}, timeout=5)
    assert r.status_code == 200 and r.json()["status"] == "Succeeded", r.text
    assert r.json()["ref"] == "b1" and r.json()["events"], r.text
    r = b.post("/v1/jobs", json={"workflow": "noop", "items": [{"ref": "s1", "data": {}}]},
               timeout=5)
    assert r.status_code == 202, r.text
    # validateOnly runs nothing outbound and needs no run slot: works at A's cap
    r = a.post("/v1/workflows/%s:run?validateOnly=true" % wf_valid,
               json={"ref": "v1", "data": {"sku": "x"}}, timeout=5)
    assert r.status_code == 200, r.text
    assert r.json()["validateOnly"] is True and r.json()["status"] == "Succeeded", r.text
    r = a.post("/v1/workflows/%s:run?validateOnly=true" % wf_valid,
               json={"ref": "v2", "data": {}}, timeout=5)
    assert r.status_code == 422 and r.json()["error"]["code"] == "ValidationFailed", r.text
    others_done = time.time()
    # A's hanging runs are still out: the answers above did not wait for them
    assert len(out) == 8, out
    assert others_done - t0 < 5, others_done - t0  # generous: proves "did not block"

    for t in ts:
        t.join(60)
    hung = [o for o in out if o[0] != 429]
    assert len(hung) == 4, out
    for status, _, body, ended in hung:
        # the reply body is the one of an inline run: the failing step's error
        assert status == 422, (status, body)
        assert body["error"]["code"] == "UpstreamUnavailable", body
        assert body["error"]["target"] == "steps.push", body
        assert ended - started >= 5.5, ended - started
    # the slots are given back: A runs again
    upstream.script("/hang", [{"status": 200, "json": {"ok": 1}}])
    r = a.post("/v1/workflows/%s:run" % wf_hang, json={"ref": "again", "data": {}}, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "Succeeded", r.text


def test_total_deadline_and_server_cap(fresh_server, upstream):
    srv = fresh_server(args=["--outbound-allow", "127.0.0.1/32", "--run-timeout-ms", "1500",
                             "--run-threads", "1", "--run-queue", "0"])
    key_b = srv.create_key("globex")
    srv.start()
    a, b = Client(srv, srv.key_a), Client(srv, key_b)
    upstream.script("/hang", [{"delay_ms": 20000}])
    # 3 attempts of 6 s each: far past the 1.5 s deadline, which cuts them
    wf = put_wf(a, [hang_step(upstream.url + "/hang", timeout_ms=6000, attempts=3)])
    wf_b = put_wf(b, [hang_step(upstream.url + "/ok")])
    ts, out = run_in_threads(a, wf, 1)
    deadline = time.time() + 10
    while upstream.stats()["in_flight"] < 1 and time.time() < deadline:
        time.sleep(0.02)
    # the one run thread is busy and nothing may queue: another tenant is refused too
    r = b.post("/v1/workflows/%s:run" % wf_b, json={"ref": "b", "data": {}}, timeout=5)
    assert_error(r, 429, "TooManyRuns")
    assert int(r.headers["Retry-After"]) >= 1
    t0 = time.time()
    for t in ts:
        t.join(30)
    assert len(out) == 1, out
    status, _, body, ended = out[0]
    assert status == 504, out
    assert ended - t0 < 5, ended - t0  # generous; without the deadline: 3 x 6 s
    assert body["error"]["code"] == "RunTimeout", body
    # the deadline cut the first attempt and stopped the retries: one attempt reached
    # the upstream (whose handler still sleeps), no second one followed
    time.sleep(1.0)
    st = upstream.stats()
    assert st["in_flight"] == 1 and st["max_in_flight"] == 1, st
    # the thread is free again
    r = b.post("/v1/workflows/%s:run" % wf_b, json={"ref": "b", "data": {}}, timeout=10)
    assert r.status_code == 200, r.text


def test_shutdown_answers_parked_runs(fresh_server, upstream):
    srv = fresh_server(args=["--outbound-allow", "127.0.0.1/32", "--run-threads", "1",
                             "--run-queue", "4", "--max-runs-per-tenant", "4"])
    srv.start()
    a = Client(srv, srv.key_a)
    upstream.script("/hang", [{"delay_ms": 20000}])
    wf = put_wf(a, [hang_step(upstream.url + "/hang", timeout_ms=15000)])
    ts, out = run_in_threads(a, wf, 3)  # one running, two queued
    deadline = time.time() + 10
    while upstream.stats()["in_flight"] < 1 and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # the two others reach the queue
    rc = srv.stop()
    assert rc == 0, srv.read_log()[-4000:]
    for t in ts:
        t.join(30)
    assert len(out) == 3, out
    for status, _, body, _ in out:
        assert status == 503 and body["error"]["code"] == "ShuttingDown", out


def test_a_queued_run_ends_at_its_deadline(fresh_server, upstream):
    # one run thread, held 15 s by an upstream that never answers: a run queued behind
    # it answers 504 at its own 2 s deadline, not when the thread frees up
    srv = fresh_server(args=["--outbound-allow", "127.0.0.1/32", "--run-threads", "1",
                             "--run-timeout-ms", "2000", "--max-runs-per-tenant", "4"])
    srv.start()
    a = Client(srv, srv.key_a)
    upstream.script("/hang", [{"delay_ms": 20000}])
    wf = put_wf(a, [hang_step(upstream.url + "/hang", timeout_ms=15000)])
    t0 = time.time()
    ts, out = run_in_threads(a, wf, 2)
    for t in ts:
        t.join(30)
    assert len(out) == 2, out
    for status, _, body, at in out:
        assert status == 504 and body["error"]["code"] == "RunTimeout", out
        assert at - t0 < 10, out  # the thread was held 15 s


def test_a_limits_slot_after_the_deadline_is_not_waited_for(fresh_server, upstream):
    # a processing limit of one request an hour: the second run's slot is an hour away;
    # its deadline (2 s) ends it, and nothing is sent for it
    srv = fresh_server(args=["--outbound-allow", "127.0.0.1/32", "--run-timeout-ms", "2000",
                             "--limits", '{"slow": {"rate": 1, "per": "hour", "burst": 1}}'])
    srv.start()
    a = Client(srv, srv.key_a)
    step = dict(hang_step(upstream.url + "/ok"), limits=["slow"])
    wf = put_wf(a, [step])
    r = a.post("/v1/workflows/%s:run" % wf, json={"ref": "r1", "data": {}}, timeout=30)
    assert r.status_code == 200, r.text
    t0 = time.time()
    r = a.post("/v1/workflows/%s:run" % wf, json={"ref": "r2", "data": {}}, timeout=30)
    assert time.time() - t0 < 10, r.text
    assert r.status_code == 504 and r.json()["error"]["code"] == "RunTimeout", r.text
    assert len(upstream.log("/ok")) == 1
