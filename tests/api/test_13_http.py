"""The http step against the scripted fake upstream: timeouts, 429 + Retry-After, 5xx
retries, dropped connections, idempotency keys, the SSRF guard, and a 20,000-item
validate -> map -> upsert -> http job."""
import json
import time

import pytest

from conftest import (Client, assert_error, free_port, item_detail, list_all, make_workflow,
                      run_job, step_counts, step_events, submitted, uniq, wait_until)


def http_step(url, **kw):
    return dict({"name": "push", "type": "http", "method": "POST", "url": url}, **kw)


def keys_by_item(log):
    out = {}
    for e in log:
        out.setdefault(e["idempotency_key"], []).append(e)
    return out


def test_idempotency_key_per_item_and_step(wfc, upstream):
    wf = make_workflow(wfc, [http_step(upstream.url + "/a/{{ref}}"),
                             http_step(upstream.url + "/b/{{ref}}", name="second")])
    j = run_job(wfc, [{"ref": "x%d" % i, "data": {"i": i}} for i in range(4)], wf)
    assert j["status"] == "Succeeded", j
    a = {e["path"]: e["idempotency_key"] for e in upstream.log("/a")}
    b = {e["path"]: e["idempotency_key"] for e in upstream.log("/b")}
    assert a == {"/a/x%d" % i: "%s:%d:push" % (j["id"], i) for i in range(4)}, a
    assert b == {"/b/x%d" % i: "%s:%d:second" % (j["id"], i) for i in range(4)}, b
    for e in upstream.log():
        assert e["headers"]["Idempotency-Key"] == e["idempotency_key"]


def test_5xx_retried_with_the_same_key_then_upstream_error(wfc, upstream):
    upstream.script("/always", [{"status": 500}])
    upstream.script("/twice", [{"status": 503}, {"status": 500}, {"status": 200}], per_key=True)
    wf = make_workflow(wfc, [http_step(upstream.url + "/{{data.p}}/{{ref}}",
                                       retry={"maxAttempts": 3, "backoffMs": 5,
                                              "maxBackoffMs": 20})])
    j = run_job(wfc, [{"ref": "r0", "data": {"p": "always"}},
                      {"ref": "r1", "data": {"p": "twice"}},
                      {"ref": "r2", "data": {"p": "always"}}], wf)
    assert step_counts(j) == {"push": (1, 2, 0)}, j
    for idx in (0, 2):
        it = item_detail(wfc, j["id"], idx)
        assert it["status"] == "Failed" and it["error"]["code"] == "UpstreamError", it
        ev = step_events(it, "push")[-1]
        assert ev["status"] == 500 and ev["attempts"] == 3, ev
    ok = item_detail(wfc, j["id"], 1)
    assert ok["status"] == "Succeeded", ok
    assert step_events(ok, "push")[-1]["attempts"] == 3
    by = keys_by_item(upstream.log())
    assert len(by) == 3, by.keys()
    for idx in range(3):
        calls = by["%s:%d:push" % (j["id"], idx)]
        assert len(calls) == 3, calls  # maxAttempts, all with the same key
        assert len({c["path"] for c in calls}) == 1
    assert [c["response"]["status"] for c in by["%s:1:push" % j["id"]]] == [503, 500, 200]


def test_4xx_not_retried(wfc, upstream):
    upstream.script("/no", [{"status": 400, "json": {"why": "bad"}}])
    wf = make_workflow(wfc, [http_step(upstream.url + "/no", retry={"maxAttempts": 5,
                                                                      "backoffMs": 1})])
    j = run_job(wfc, [{"ref": "a", "data": {}}], wf)
    it = item_detail(wfc, j["id"], 0)
    assert it["error"]["code"] == "UpstreamError", it
    assert it["result"]["steps"]["push"] == {"status": 400, "body": {"why": "bad"}, "headers": {
        "content-type": "application/json", "location": None}}, it
    assert len(upstream.log("/no")) == 1


def test_429_retry_after_is_honoured(wfc, upstream):
    upstream.script("/busy", [{"status": 429, "headers": {"Retry-After": "1"}}, {"status": 200}],
                    per_key=True)
    wf = make_workflow(wfc, [http_step(upstream.url + "/busy",
                                       retry={"maxAttempts": 3, "backoffMs": 1,
                                              "maxBackoffMs": 5})])
    j = run_job(wfc, [{"ref": "a", "data": {}}, {"ref": "b", "data": {}}], wf)
    assert j["status"] == "Succeeded" and j["counts"]["succeeded"] == 2, j
    for key, calls in keys_by_item(upstream.log("/busy")).items():
        assert [c["response"]["status"] for c in calls] == [429, 200], calls
        # the wait honoured Retry-After (lower bound only; backoff alone would be ~5 ms)
        assert calls[1]["time"] - calls[0]["time"] >= 0.9, calls
    ev = step_events(item_detail(wfc, j["id"], 0), "push")[-1]
    assert ev["status"] == 200 and ev["attempts"] == 2, ev


def test_retry_after_too_long_is_not_waited_for(wfc, upstream):
    upstream.script("/later", [{"status": 429, "headers": {"Retry-After": "3600"}}])
    wf = make_workflow(wfc, [http_step(upstream.url + "/later", retry={"maxAttempts": 5})])
    j = run_job(wfc, [{"ref": "a", "data": {}}], wf, timeout=60)
    it = item_detail(wfc, j["id"], 0)
    assert it["status"] == "Failed" and it["error"]["code"] == "UpstreamError", it
    assert len(upstream.log("/later")) == 1


def test_slow_upstream_times_out(wfc, upstream):
    upstream.script("/slow", [{"delay_ms": 2000}])
    wf = make_workflow(wfc, [http_step(upstream.url + "/slow", timeoutMs=300)])
    t0 = time.monotonic()
    j = run_job(wfc, [{"ref": "a", "data": {}}], wf, timeout=60)
    assert time.monotonic() - t0 >= 0.3
    assert step_counts(j) == {"push": (0, 1, 0)}, j
    it = item_detail(wfc, j["id"], 0)
    assert it["error"]["code"] == "UpstreamUnavailable" and it["failedStep"] == "push", it
    ev = step_events(it, "push")[-1]
    assert ev["failure"] == "timeout" and ev["level"] == "error", ev
    # (the fake upstream logs a delayed request when its delay ends)
    wait_until(lambda: upstream.log("/slow"), timeout=10, what="the slow call in the log")
    time.sleep(0.1)
    assert len(upstream.log("/slow")) == 1  # maxAttempts defaults to 1


def test_timeout_is_retried(wfc, upstream):
    upstream.script("/slowonce", [{"delay_ms": 1500}, {"status": 200}], per_key=True)
    wf = make_workflow(wfc, [http_step(upstream.url + "/slowonce", timeoutMs=200,
                                       retry={"maxAttempts": 2, "backoffMs": 1})])
    j = run_job(wfc, [{"ref": "a", "data": {}}], wf, timeout=60)
    assert j["status"] == "Succeeded", j
    # (the fake upstream logs a delayed request when its delay ends)
    wait_until(lambda: len(upstream.log("/slowonce")) == 2, timeout=10, what="both attempts")
    (calls,) = keys_by_item(upstream.log("/slowonce")).values()
    assert len(calls) == 2, calls
    assert [c["response"] for c in sorted(calls, key=lambda c: c["time"])] == [
        {"status": 200}, {"status": 200}], calls


def test_dropped_connections(wfc, upstream):
    upstream.script("/dropone", [{"drop": True}, {"status": 200}], per_key=True)
    upstream.script("/dropall", [{"drop": True}])
    wf = make_workflow(wfc, [http_step(upstream.url + "/{{data.p}}",
                                       retry={"maxAttempts": 2, "backoffMs": 1})])
    j = run_job(wfc, [{"ref": "a", "data": {"p": "dropone"}},
                      {"ref": "b", "data": {"p": "dropall"}}], wf)
    assert step_counts(j) == {"push": (1, 1, 0)}, j
    ok, bad = item_detail(wfc, j["id"], 0), item_detail(wfc, j["id"], 1)
    assert ok["status"] == "Succeeded", ok
    assert bad["error"]["code"] == "UpstreamUnavailable", bad
    assert step_events(bad, "push")[-1]["failure"] == "connection_failed", bad
    for path, want in (("/dropone", [{"drop": True}, {"status": 200}]),
                       ("/dropall", [{"drop": True}, {"drop": True}])):
        # the upstream logs a dropped call when its handler finishes, which may be
        # just after sluice saw the connection close: poll (bounded)
        calls = wait_until(lambda: (lambda l: l if len(l) >= len(want) else None)(upstream.log(path)),
                           timeout=10, what="the upstream log of " + path)
        got = [c["response"] for c in calls]
        if path == "/dropall" and len(got) == 3:
            # libcurl reconnects once by itself when a reused keep-alive connection
            # dies before any answer; that reconnect is not one of our attempts, and
            # it carries the same key like every attempt
            want = want + [{"drop": True}]
        assert got == want, calls
        assert len({c["idempotency_key"] for c in calls}) == 1, calls


def test_connection_refused(wfc):
    port = free_port()  # nothing listens there
    wf = make_workflow(wfc, [http_step("http://127.0.0.1:%d/x" % port,
                                       retry={"maxAttempts": 2, "backoffMs": 1})])
    j = run_job(wfc, [{"ref": "a", "data": {}}], wf)
    it = item_detail(wfc, j["id"], 0)
    assert it["error"]["code"] == "UpstreamUnavailable", it
    ev = step_events(it, "push")[-1]
    assert ev["failure"] == "connect_failed" and ev["attempts"] == 2, ev


def test_on_error_with_upstream_failures(wfc, upstream):
    upstream.script("/down", [{"status": 500}])
    wf = make_workflow(wfc, [http_step(upstream.url + "/down", onError="continue"),
                             http_step(upstream.url + "/down", name="opt", onError="skip"),
                             {"name": "n", "type": "noop"}])
    j = run_job(wfc, [{"ref": "a", "data": {}}], wf)
    assert j["counts"]["skipped"] == 1, j
    assert step_counts(j) == {"push": (0, 1, 0), "opt": (0, 0, 1), "n": (0, 0, 0)}, j
    it = item_detail(wfc, j["id"], 0)
    assert it["status"] == "Skipped" and it["failedStep"] == "opt", it
    assert [(w["step"], w["code"]) for w in it["warnings"]] == [("push", "UpstreamError")], it


# ---- SSRF ------------------------------------------------------------------------------------

def ssrf_urls(port):
    return ["http://127.0.0.1:%d/ssrf" % port,
            "http://169.254.169.254/latest/meta-data/",
            "http://2130706433:%d/ssrf" % port,
            "http://[::ffff:127.0.0.1]:%d/ssrf" % port,
            "http://localhost:%d/ssrf" % port]


def test_ssrf_guard_without_allowlist(tenant, upstream):
    """The shared server runs without --outbound-allow: every spelling of an internal
    address is refused before a packet is sent."""
    jobs = {}
    for url in ssrf_urls(upstream.port):
        wf = make_workflow(tenant, [http_step(url, retry={"maxAttempts": 3, "backoffMs": 1})])
        jobs[url] = submitted(tenant.submit([{"ref": "a", "data": {}}], workflow=wf))["id"]
        r = tenant.post("/v1/workflows/%s:run" % wf, json={"ref": "s", "data": {}})
        assert_error(r, 422, "TargetNotAllowed", "steps.push")
    for url, jid in jobs.items():
        j = tenant.wait_job(jid, timeout=60)
        assert j["status"] == "Failed", (url, j)
        it = item_detail(tenant, jid, 0)
        assert it["error"]["code"] == "TargetNotAllowed", (url, it)
        assert it["failedStep"] == "push", it
        ev = step_events(it, "push")[-1]
        assert ev["level"] == "error" and ev["code"] == "TargetNotAllowed", ev
    assert upstream.log() == []
    assert upstream.stats()["requests"] == 0


def test_ssrf_allowlist_lets_loopback_through(wfc, upstream):
    """wf_server runs with --outbound-allow 127.0.0.1/32: that target works; others in
    blocked ranges stay refused."""
    ok = make_workflow(wfc, [http_step("http://127.0.0.1:%d/ssrf" % upstream.port)])
    j = run_job(wfc, [{"ref": "a", "data": {}}], ok)
    assert j["status"] == "Succeeded", j
    assert len(upstream.log("/ssrf")) == 1
    bad = make_workflow(wfc, [http_step("http://169.254.169.254/latest/meta-data/")])
    r = wfc.post("/v1/workflows/%s:run" % bad, json={"ref": "s", "data": {}})
    assert_error(r, 422, "TargetNotAllowed", "steps.push")


def test_ssrf_fresh_server_default(fresh_server, upstream):
    srv = fresh_server().start()
    c = Client(srv, srv.key_a)
    wf = make_workflow(c, [http_step("http://127.0.0.1:%d/x" % upstream.port)])
    j = run_job(c, [{"ref": "a", "data": {}}], wf)
    assert item_detail(c, j["id"], 0)["error"]["code"] == "TargetNotAllowed"
    assert upstream.log() == []


# ---- a big pipeline ----------------------------------------------------------------------------

def test_20000_items_through_validate_map_upsert_http(wfc, fast_upstream):
    upstream = fast_upstream
    n = 20000
    coll = "big_" + uniq("c").replace("-", "_")
    wf = make_workflow(wfc, [
        {"name": "check", "type": "validate", "schema": {
            "type": "object", "required": ["sku", "price"],
            "properties": {"sku": {"type": "string"}, "price": {"type": "number", "minimum": 0}}}},
        {"name": "shape", "type": "map", "ops": [
            {"op": "set", "path": "title", "value": "{{data.sku}} at {{data.price}}"},
            {"op": "rename", "from": "price", "path": "cents"}]},
        {"name": "save", "type": "upsert", "collection": coll, "refFrom": "data.sku"},
        {"name": "push", "type": "http", "method": "POST", "url": upstream.url + "/bulk/{{ref}}",
         "body": {"sku": "{{data.sku}}", "cents": "{{data.cents}}"}, "timeoutMs": 30000,
         "retry": {"maxAttempts": 3, "backoffMs": 10}}])
    lines = "".join(json.dumps({"ref": "r%d" % i, "data": {
        "sku": "S%d" % i, "price": -1 if i % 100 == 0 else i}}) + "\n" for i in range(n))
    r = wfc.submit_ndjson(lines, workflow=wf)
    job = submitted(r)
    assert job["counts"]["total"] == n, job
    done = wfc.wait_job(job["id"], timeout=240)
    bad = n // 100
    good = n - bad
    assert done["status"] == "Succeeded", done
    c = done["counts"]
    if c["failed"] != bad:
        odd, _ = list_all(wfc, "/v1/jobs/%s/items" % job["id"], params={"status": "Failed", "limit": 1000})
        odd = [(i["index"], i["failedStep"], i["error"]) for i in odd if i["index"] % 100][:5]
        raise AssertionError("unexpected failures: %r (counts %r)" % (odd, c))
    assert (c["succeeded"], c["failed"], c["skipped"]) == (good, bad, 0), c
    assert step_counts(done) == {"check": (good, bad, 0), "shape": (good, 0, 0),
                                 "save": (good, 0, 0), "push": (good, 0, 0)}, done
    # the upstream saw exactly one call per valid item, each with its own key
    log = upstream.log("/bulk")
    assert len(log) == good, len(log)
    keys = [e["idempotency_key"] for e in log]
    assert len(set(keys)) == good
    want = {"%s:%d:push" % (job["id"], i) for i in range(n) if i % 100}
    assert set(keys) == want
    sample = {e["path"]: e["json"] for e in log if e["path"] in ("/bulk/r1", "/bulk/r12345")}
    assert sample == {"/bulk/r1": {"sku": "S1", "cents": 1},
                      "/bulk/r12345": {"sku": "S12345", "cents": 12345}}, sample
    # documents written under data.sku, reshaped
    docs, _ = list_all(wfc, "/v1/collections/" + coll, params={"limit": 1000})
    assert len(docs) == good, len(docs)
    refs = {d["ref"] for d in docs}
    assert "S0" not in refs and "S100" not in refs and "S99" in refs
    d = wfc.get("/v1/collections/%s/S4242" % coll).json()
    assert d["data"] == {"sku": "S4242", "title": "S4242 at 4242", "cents": 4242}, d
    # failures are where they were injected
    f, _ = list_all(wfc, "/v1/jobs/%s/items" % job["id"],
                    params={"status": "Failed", "step": "check", "code": "ValidationFailed",
                            "limit": 1000})
    assert [i["index"] for i in f] == list(range(0, n, 100)), f[:5]
