"""Upstream faults against the http step: a body that drips past timeoutMs, connection
resets (before and during the body), bodies far beyond --outbound-max-body (with and
without Content-Length), and invalid JSON under a JSON Content-Type. Items fail or are
retried as their step's retry policy says, the server stays responsive while the
faults last, and nothing waits for ever."""
import requests

from conftest import (Client, item_detail, make_workflow, step_events, submitted, uniq,
                      wait_until)

MAX_BODY = 65536


def rss_mb(srv):
    with open("/proc/%d/status" % srv.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def test_upstream_faults_fail_or_retry_and_nothing_is_stuck(fresh_server, upstream):
    srv = fresh_server(args=["--outbound-allow", "127.0.0.1/32",
                             "--outbound-max-body", str(MAX_BODY)])
    srv.start()
    c = Client(srv, srv.key_a)
    drip = {"drip_ms": 100, "drip_bytes": 1, "body": '{"v":"0123456789"}'}  # ~1.8 s
    upstream.script("/slowonce", [drip, {"status": 200}], per_key=True)
    upstream.script("/slowall", [drip])
    upstream.script("/resetonce", [{"reset": True}, {"status": 200}], per_key=True)
    upstream.script("/resetall", [{"reset": True}])
    upstream.script("/cutall", [{"body_bytes": 100, "reset_after_bytes": 5}])
    upstream.script("/huge", [{"body_bytes": 8 << 20}])
    upstream.script("/endless", [{"body_bytes": 1 << 30, "chunked": True}])
    upstream.script("/badjson", [{"body": '{"id": 7,', "headers": {
        "Content-Type": "application/json"}}])
    upstream.script("/badjson500", [{"status": 500, "body": "{oops", "headers": {
        "Content-Type": "application/json"}}])
    cases = ["slowonce", "slowall", "resetonce", "resetall", "cutall", "huge", "endless",
             "badjson", "badjson500"]
    wf = make_workflow(c, [{"name": "push", "type": "http", "method": "POST",
                            "url": upstream.url + "/{{data.p}}/{{ref}}", "timeoutMs": 600,
                            "retry": {"maxAttempts": 2, "backoffMs": 10}}])
    rss0 = rss_mb(srv)
    job = submitted(c.submit([{"ref": "r%d" % i, "data": {"p": p}} for i, p in enumerate(cases)],
                             workflow=wf))
    # while the faults last: liveness answers, and another job gets done
    other = submitted(c.submit([{"ref": "n%d" % i, "data": {}} for i in range(20)]))
    for _ in range(5):
        assert requests.get(srv.url + "/healthz", timeout=10).status_code == 200
    assert c.wait_job(other["id"], timeout=120)["status"] == "Succeeded"
    done = c.wait_job(job["id"], timeout=120)
    assert done["counts"]["succeeded"] + done["counts"]["failed"] == len(cases), done

    got = {p: item_detail(c, job["id"], i) for i, p in enumerate(cases)}
    last = {p: step_events(it, "push")[-1] for p, it in got.items()}

    def failed(p, code, failure):
        it, ev = got[p], last[p]
        assert it["status"] == "Failed" and it["error"]["code"] == code, (p, it)
        assert ev.get("failure") == failure, (p, ev)
        assert ev["attempts"] == 2, (p, ev)  # the retry policy ran out

    def succeeded(p, attempts):
        it, ev = got[p], last[p]
        assert it["status"] == "Succeeded", (p, it)
        assert ev["status"] == 200 and ev["attempts"] in attempts, (p, ev)
        return it["result"]["steps"]["push"]

    succeeded("slowonce", (2,))  # a dripping body past timeoutMs is a timeout: retried
    failed("slowall", "UpstreamUnavailable", "timeout")
    # (libcurl itself connects again once when a reused connection dies before any
    # answer: that reconnect is not one of our attempts, and may get the 200)
    succeeded("resetonce", (1, 2))
    failed("resetall", "UpstreamUnavailable", "connection_failed")
    failed("cutall", "UpstreamUnavailable", "connection_failed")
    for p in ("huge", "endless"):  # cut at --outbound-max-body, kept as text
        body = succeeded(p, (1,))["body"]
        assert isinstance(body, str) and 0 < len(body) <= MAX_BODY, (p, len(body))
        assert body.startswith('{"pad":"xxx'), body[:20]
    assert succeeded("badjson", (1,))["body"] == '{"id": 7,'  # not JSON: kept as text
    failed("badjson500", "UpstreamError", None)
    assert last["badjson500"]["status"] == 500

    calls = {p: len(upstream.log("/" + p + "/")) for p in cases}
    for p in ("slowonce", "slowall", "cutall", "badjson500"):
        assert calls[p] == 2, (p, calls)
    # plus libcurl's own reconnects when a reused connection dies before any answer
    # (see above): seen up to twice per attempt on a loaded machine; still bounded
    assert 2 <= calls["resetall"] <= 6 and 2 <= calls["resetonce"] <= 4, calls
    for p in ("huge", "endless", "badjson"):
        assert calls[p] == 1, (p, calls)
    # a GiB offered was not taken in: the process grew by far less
    assert rss_mb(srv) - rss0 < 256, (rss0, rss_mb(srv))
    assert requests.get(srv.url + "/healthz", timeout=10).status_code == 200


def test_invalid_json_body_fails_a_later_step_that_reads_it(wfc, upstream):
    upstream.script("/bad", [{"body": "{not json", "headers": {"Content-Type": "application/json"}}])
    wf = make_workflow(wfc, [
        {"name": "push", "type": "http", "method": "POST", "url": upstream.url + "/bad"},
        {"name": "shape", "type": "map", "ops": [
            {"op": "set", "path": "remote", "value": "{{steps.push.body.id}}"}]}])
    j = submitted(wfc.submit([{"ref": uniq("x"), "data": {}}], workflow=wf))
    done = wfc.wait_job(j["id"], timeout=60)
    it = item_detail(wfc, j["id"], 0)
    assert done["status"] == "Failed" and it["status"] == "Failed", (done, it)
    assert it["failedStep"] == "shape", it
    assert it["error"]["code"] in ("TemplateError", "MapFailed"), it
    wait_until(lambda: len(upstream.log("/bad")) == 1, timeout=10, what="one call")
