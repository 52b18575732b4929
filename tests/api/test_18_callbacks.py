"""Completion callbacks: stored with the job, queued in the transaction that ends it,
delivered at least once from the outbox, signed, retried, logged, and owed across a
restart."""
import hashlib
import hmac
import json
import signal

import pytest

from conftest import (Client, assert_error, items, submitted, uniq, wait_until)

ALLOW = ["--outbound-allow", "127.0.0.1/32", "--callback-backoff-ms", "100"]


def cb_server(fresh_server, extra=(), allow=True):
    srv = fresh_server(args=(ALLOW if allow else ["--callback-backoff-ms", "100"]) + list(extra))
    srv.start()
    return srv, Client(srv, srv.key_a)


def deliveries(c, job_id):
    r = c.get("/v1/jobs/%s/callbacks" % job_id)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"value"}, body
    return body["value"]


def wait_state(c, job_id, state, timeout=20):
    def ok():
        v = deliveries(c, job_id)
        return v if v and v[0]["state"] == state else None
    return wait_until(ok, timeout=timeout, interval=0.05, what="delivery %s" % state)[0]


def verify(secret, req):
    sig = dict(p.split("=", 1) for p in req["headers"]["Sluice-Signature"].split(","))
    mac = hmac.new(secret.encode(), sig["t"].encode() + b"." + req["body"].encode(),
                   hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, sig["v1"])


def test_01_delivered_on_completion_signed(fresh_server, upstream):
    srv, c = cb_server(fresh_server)
    url = upstream.url + "/hook/done"
    j = submitted(c.submit(items(3), callback={"url": url}))
    done = c.wait_job(j["id"])
    assert done["status"] == "Succeeded"
    d = wait_state(c, j["id"], "Delivered")
    assert d["event"] == "job.completed" and d["url"] == url and d["attemptCount"] == 1, d
    assert d["id"].startswith("dlv_") and d["nextAttemptAt"] is None, d
    (a,) = d["attempts"]
    assert a["attempt"] == 1 and a["status"] == 200 and "error" not in a, a
    assert isinstance(a["latencyMs"], int) and a["at"], a

    (req,) = upstream.log("/hook/done")
    assert req["method"] == "POST"
    h = req["headers"]
    assert h["Sluice-Event"] == "job.completed"
    assert h["Sluice-Delivery"] == d["id"] and req["idempotency_key"] == d["id"]
    body = json.loads(req["body"])
    assert body["event"] == "job.completed" and body["deliveryId"] == d["id"]
    assert body["job"]["id"] == j["id"] and body["job"]["status"] == "Succeeded"
    assert body["job"]["counts"]["succeeded"] == 3
    assert body["job"]["links"]["self"] == srv.url + "/v1/jobs/" + j["id"]

    r = c.get("/v1/callbacks/secret")
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]
    assert verify(secret, req)
    assert not verify(secret + "x", req)
    # another tenant has another key: it cannot sign for this one
    other = Client(srv, srv.create_key("globex"))
    assert other.get("/v1/callbacks/secret").json()["secret"] != secret
    # and sees no such job
    assert_error(other.get("/v1/jobs/%s/callbacks" % j["id"]), 404, "NotFound")


def test_02_no_callback_no_delivery_and_404(fresh_server, upstream):
    _, c = cb_server(fresh_server)
    j = submitted(c.submit(items(1)))
    c.wait_job(j["id"])
    assert deliveries(c, j["id"]) == []
    assert_error(c.get("/v1/jobs/job_nope/callbacks"), 404, "NotFound")


def test_03_events_filter(fresh_server, upstream):
    _, c = cb_server(fresh_server)
    # the job succeeds, but only job.failed is subscribed: nothing is owed
    only_failed = submitted(c.submit(items(2), callback={"url": upstream.url + "/a",
                                                         "events": ["job.failed"]}))
    assert c.wait_job(only_failed["id"])["status"] == "Succeeded"
    # a canceled job with job.canceled subscribed (NDJSON, query parameters)
    r = c.submit_ndjson(items(3), callbackUrl=upstream.url + "/b", callbackEvents="job.canceled")
    j = submitted(r)
    c.post("/v1/jobs/%s:cancel" % j["id"])
    final = c.wait_job(j["id"])
    if final["status"] == "Canceled":
        d = wait_state(c, j["id"], "Delivered")
        assert d["event"] == "job.canceled"
        assert json.loads(upstream.log("/b")[0]["body"])["job"]["status"] == "Canceled"
    else:  # it finished before the cancel: job.completed is not subscribed
        assert deliveries(c, j["id"]) == []
    assert deliveries(c, only_failed["id"]) == []
    assert upstream.log("/a") == []


def test_04_target_down_for_a_while(fresh_server, upstream):
    _, c = cb_server(fresh_server)
    upstream.script("/flaky", [{"status": 500}, {"status": 503}, {"status": 429}, {"status": 200}])
    j = submitted(c.submit(items(1), callback={"url": upstream.url + "/flaky"}))
    c.wait_job(j["id"])
    d = wait_state(c, j["id"], "Delivered", timeout=30)
    att = d["attempts"]
    assert [a["attempt"] for a in att] == [1, 2, 3, 4], att
    assert [a["status"] for a in att] == [500, 503, 429, 200], att
    assert all(a["error"]["code"] == "UpstreamError" for a in att[:3]), att
    assert att[0]["error"]["message"] == "HTTP 500", att[0]
    assert "error" not in att[3]
    reqs = upstream.log("/flaky")
    assert len(reqs) == 4
    assert len({r["idempotency_key"] for r in reqs}) == 1  # the same key on every attempt


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_05_owed_across_restart(fresh_server, upstream, sig):
    srv, c = cb_server(fresh_server)
    upstream.script("/later", [{"status": 503}])  # down until rescripted
    j = submitted(c.submit(items(2), callback={"url": upstream.url + "/later"}))
    c.wait_job(j["id"])
    wait_until(lambda: len(upstream.log("/later")) >= 1, timeout=20, what="a first attempt")
    if sig == signal.SIGKILL:
        srv.kill()
    else:
        assert srv.stop(sig) == 0
    upstream.script("/later", [{"status": 204}])
    srv.start()
    d = wait_state(c, j["id"], "Delivered", timeout=30)
    assert d["attempts"][-1]["status"] == 204
    assert all(a["status"] == 503 for a in d["attempts"][:-1]), d
    assert upstream.log("/later")[-1]["headers"]["Sluice-Delivery"] == d["id"]


def test_06_target_not_allowed(fresh_server, upstream):
    # no --outbound-allow: loopback is refused by the SSRF guard, as for http steps
    _, c = cb_server(fresh_server, allow=False)
    j = submitted(c.submit(items(1), callback={"url": upstream.url + "/x"}))
    c.wait_job(j["id"])
    d = wait_state(c, j["id"], "Abandoned")
    (a,) = d["attempts"]
    assert a["status"] == 0 and a["error"]["code"] == "TargetNotAllowed", a
    assert upstream.log("/x") == []


BAD = [
    ({"callback": "http://x.example/"}, "callback"),
    ({"callback": {}}, "callback.url"),
    ({"callback": {"url": 5}}, "callback.url"),
    ({"callback": {"url": "ftp://x.example/"}}, "callback.url"),
    ({"callback": {"url": "http://"}}, "callback.url"),
    ({"callback": {"url": "http://x.example/a b"}}, "callback.url"),
    ({"callback": {"url": "http://x.example/", "events": []}}, "callback.events"),
    ({"callback": {"url": "http://x.example/", "events": "job.failed"}}, "callback.events"),
    ({"callback": {"url": "http://x.example/", "events": ["job.started"]}}, "callback.events[0]"),
    ({"callback": {"url": "http://x.example/", "secret": "s"}}, "callback.secret"),
]


@pytest.mark.parametrize("extra,target", BAD)
def test_07_validation_json(api, extra, target):
    r = api.submit(items(1), **extra)
    assert_error(r, 422, "InvalidField", target)


def test_08_validation_ndjson_and_duplicate(api):
    assert_error(api.submit_ndjson(items(1), callbackUrl="gopher://x"), 422, "InvalidField",
                 "callbackUrl")
    assert_error(api.submit_ndjson(items(1), callbackUrl="http://x.example/",
                                   callbackEvents="job.completed,nope"),
                 422, "InvalidField", "callbackEvents")
    assert_error(api.submit_ndjson(items(1), callbackEvents="job.failed"), 422, "InvalidField",
                 "callbackUrl")
    body = ('{"workflow":"noop","callback":{"url":"http://x.example/"},'
            '"callback":{"url":"http://x.example/"},"items":[{"ref":"a"}]}')
    r = api.post("/v1/jobs", data=body, headers={"Content-Type": "application/json"})
    assert_error(r, 422, "InvalidField", "callback")
    # a valid one is accepted (the shared server cannot reach it: it is only stored)
    j = submitted(api.submit(items(1), callback={"url": "https://hooks.example/x",
                                                 "events": ["job.failed", "job.canceled"]}))
    assert api.wait_job(j["id"])["status"] == "Succeeded"
    assert deliveries(api, j["id"]) == []


def test_09_unreachable_target_stays_pending(fresh_server):
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, c = cb_server(fresh_server)
    j = submitted(c.submit(items(1), callback={"url": "http://127.0.0.1:%d/cb" % port}))
    c.wait_job(j["id"])

    def two_attempts():
        v = deliveries(c, j["id"])
        return v and v[0]["attemptCount"] >= 2 and v[0]
    d = wait_until(two_attempts, timeout=20, interval=0.05, what="two attempts")
    assert d["state"] == "Pending" and d["nextAttemptAt"], d
    assert all(a["error"]["code"] == "UpstreamUnavailable" and a["status"] == 0
               for a in d["attempts"]), d
