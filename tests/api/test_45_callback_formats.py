"""Callback signature formats: Standard Webhooks (verified by the standardwebhooks npm
package) and the Stripe-compatible scheme (verified by stripe's constructEvent), chosen per
callback or by the tenant's default; secret rotation with two signatures during the overlap
and one after it. Every verification runs the provider's own library in
tests/webhooks/verify.mjs, on what a real receiver on loopback got."""
import json
import os
import subprocess

from conftest import Client, assert_error, items, submitted, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
NPM_DIR = os.path.join(HERE, "..", "webhooks")
ALLOW = ["--outbound-allow", "127.0.0.1/32", "--callback-backoff-ms", "100"]
STD, STRIPE = "standard-webhooks", "stripe"


def verify(checks):
    """Runs the providers' libraries on [(format, secret, request)]: a list of results
    {"ok", "event"} or {"ok": False, "error"}, in order."""
    assert os.path.isdir(os.path.join(NPM_DIR, "node_modules", "standardwebhooks")), \
        "run make test-deps (npm ci in tests/webhooks)"
    data = [{"format": f, "secret": s, "body": r["body"], "headers": r["headers"]}
            for f, s, r in checks]
    out = subprocess.run(["node", os.path.join(NPM_DIR, "verify.mjs")], input=json.dumps(data),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert len(res) == len(checks), res
    return res


def oks(checks):
    return [r["ok"] for r in verify(checks)]


def tampered(req):
    body = json.loads(req["body"])
    body["job"]["counts"]["succeeded"] += 1
    return dict(req, body=json.dumps(body, separators=(",", ":")))


def cb_server(fresh_server):
    srv = fresh_server(args=ALLOW)
    srv.start()
    return srv, Client(srv, srv.key_a)


def delivered(c, upstream, path, n=1, **callback):
    """Submits a job whose callback goes to path, waits for n requests there (after the
    first one: retries) and returns (delivery, requests)."""
    j = submitted(c.submit(items(2), callback=dict(callback, url=upstream.url + path)))
    c.wait_job(j["id"])

    def done():
        v = c.get("/v1/jobs/%s/callbacks" % j["id"]).json()["value"]
        return v and v[0]["state"] == "Delivered" and v[0]
    d = wait_until(done, timeout=30, interval=0.05, what="delivered")
    reqs = upstream.log(path)
    assert len(reqs) == n, reqs
    return d, reqs


def secrets(c):
    r = c.get("/v1/callbacks/secret")
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    return r.json()


def is_standard(req, d):
    h = req["headers"]
    assert "Sluice-Signature" not in h, h
    assert h["webhook-id"] == d["id"] and int(h["webhook-timestamp"]) > 0, h
    return h["webhook-signature"].split(" ")


def test_01_standard_webhooks_verified_by_its_library(fresh_server, upstream):
    srv, c = cb_server(fresh_server)
    d, (req,) = delivered(c, upstream, "/std", format=STD)
    sigs = is_standard(req, d)
    assert len(sigs) == 1 and sigs[0].startswith("v1,"), sigs
    assert req["headers"]["Sluice-Event"] == "job.completed"
    s = secrets(c)
    assert s["standardWebhooksSecret"].startswith("whsec_") and "previous" not in s, s
    other = Client(srv, srv.create_key("globex"))
    res = verify([(STD, s["standardWebhooksSecret"], req),
                  (STD, s["standardWebhooksSecret"], tampered(req)),
                  (STD, secrets(other)["standardWebhooksSecret"], req),
                  (STRIPE, s["secret"], req)])  # not this format: no Sluice-Signature
    assert res[0] == {"ok": True, "event": "job.completed"}, res
    assert [r["ok"] for r in res[1:]] == [False, False, False], res
    # neither secret is ever written to the log
    log = srv.read_log()
    assert s["standardWebhooksSecret"] not in log and s["secret"] not in log


def test_02_stripe_format_verified_by_construct_event(fresh_server, upstream):
    _, c = cb_server(fresh_server)
    d1, (default,) = delivered(c, upstream, "/default")  # today's scheme stays the default
    d2, (explicit,) = delivered(c, upstream, "/explicit", format=STRIPE)
    s = secrets(c)
    assert s["secret"].startswith("cbsec_") and s["header"] == "Sluice-Signature", s
    for req in (default, explicit):
        assert "webhook-signature" not in req["headers"], req["headers"]
        assert req["headers"]["Sluice-Signature"].count("v1=") == 1, req["headers"]
    res = verify([(STRIPE, s["secret"], default), (STRIPE, s["secret"], explicit),
                  (STRIPE, s["secret"], tampered(default)),
                  (STRIPE, s["secret"] + "x", explicit)])
    assert [r["ok"] for r in res] == [True, True, False, False], res
    assert res[0]["event"] == "job.completed", res


def test_03_tenant_default_and_per_callback_override(fresh_server, upstream):
    srv, c = cb_server(fresh_server)
    assert c.get("/v1/callbacks/settings").json() == {"format": STRIPE}
    r = c.put("/v1/callbacks/settings", json={"format": STD})
    assert r.status_code == 200 and r.json() == {"format": STD}, r.text
    assert c.get("/v1/callbacks/settings").json() == {"format": STD}
    other = Client(srv, srv.create_key("globex"))
    assert other.get("/v1/callbacks/settings").json() == {"format": STRIPE}

    d1, (by_default,) = delivered(c, upstream, "/tenant-default")
    d2, (override,) = delivered(c, upstream, "/override", format=STRIPE)
    j = submitted(c.submit_ndjson(items(1), callbackUrl=upstream.url + "/nd",
                                  callbackFormat=STRIPE))
    c.wait_job(j["id"])
    (nd,) = wait_until(lambda: upstream.log("/nd"), timeout=30, what="the NDJSON callback")
    is_standard(by_default, d1)
    assert "Sluice-Signature" in override["headers"] and "webhook-id" not in override["headers"]
    assert "Sluice-Signature" in nd["headers"] and "webhook-id" not in nd["headers"]
    s = secrets(c)
    assert oks([(STD, s["standardWebhooksSecret"], by_default), (STRIPE, s["secret"], override),
                (STRIPE, s["secret"], nd)]) == [True, True, True]
    # the default can go back; callbacks that named a format keep it either way
    assert c.put("/v1/callbacks/settings", json={"format": STRIPE}).json() == {"format": STRIPE}
    d3, (back,) = delivered(c, upstream, "/back")
    assert "Sluice-Signature" in back["headers"]
    d4, (still,) = delivered(c, upstream, "/still", format=STD)
    is_standard(still, d4)


def test_04_rotation_two_signatures_then_only_the_new(fresh_server, upstream):
    srv, c = cb_server(fresh_server)
    old = secrets(c)
    r = c.post("/v1/callbacks/secret:rotate", json={"overlapSeconds": 3600})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store", r.text
    new = r.json()
    assert new["secret"] != old["secret"], new
    assert new["standardWebhooksSecret"] != old["standardWebhooksSecret"], new
    prev = new["previous"]
    assert prev["secret"] == old["secret"], new
    assert prev["standardWebhooksSecret"] == old["standardWebhooksSecret"], new
    assert prev["expiresAt"].endswith("Z"), new
    assert secrets(c) == new  # read back, the same

    d, (std,) = delivered(c, upstream, "/during-std", format=STD)
    _, (stp,) = delivered(c, upstream, "/during-stripe")
    assert len(is_standard(std, d)) == 2  # "v1,<new> v1,<old>"
    assert stp["headers"]["Sluice-Signature"].count("v1=") == 2
    assert oks([(STD, new["standardWebhooksSecret"], std), (STD, old["standardWebhooksSecret"], std),
                (STRIPE, new["secret"], stp), (STRIPE, old["secret"], stp),
                (STD, old["standardWebhooksSecret"], tampered(std))]) == [True, True, True, True,
                                                                          False]

    # a rotation whose overlap runs out: afterwards only the newest key signs
    r = c.post("/v1/callbacks/secret:rotate", json={"overlapSeconds": 1})
    newest = r.json()
    assert newest["previous"]["secret"] == new["secret"], newest
    wait_until(lambda: "previous" not in secrets(c), timeout=30, interval=0.2,
               what="the overlap to end")
    d, (after,) = delivered(c, upstream, "/after-std", format=STD)
    _, (after_stp,) = delivered(c, upstream, "/after-stripe")
    assert len(is_standard(after, d)) == 1
    assert after_stp["headers"]["Sluice-Signature"].count("v1=") == 1
    assert oks([(STD, newest["standardWebhooksSecret"], after),
                (STD, new["standardWebhooksSecret"], after),
                (STD, old["standardWebhooksSecret"], after),
                (STRIPE, newest["secret"], after_stp), (STRIPE, new["secret"], after_stp)]) == \
        [True, False, False, True, False]

    # with no overlap the old key stops at once; keys and settings survive a restart
    c.put("/v1/callbacks/settings", json={"format": STD})
    r = c.post("/v1/callbacks/secret:rotate", json={"overlapSeconds": 0})
    last = r.json()
    assert "previous" not in last and last["secret"] != newest["secret"], last
    assert srv.stop() == 0
    srv.start()
    assert secrets(c) == last
    assert c.get("/v1/callbacks/settings").json() == {"format": STD}
    d, (restarted,) = delivered(c, upstream, "/restarted")
    assert len(is_standard(restarted, d)) == 1
    assert oks([(STD, last["standardWebhooksSecret"], restarted),
                (STD, newest["standardWebhooksSecret"], restarted)]) == [True, False]
    # another tenant's key never moved
    other = Client(srv, srv.create_key("globex"))
    assert secrets(other)["secret"] not in (old["secret"], new["secret"], newest["secret"],
                                            last["secret"])
    log = srv.read_log()
    assert all(k[f] not in log for k in (old, new, newest, last)
               for f in ("secret", "standardWebhooksSecret"))


def test_05_webhook_id_stable_across_retries(fresh_server, upstream):
    _, c = cb_server(fresh_server)
    upstream.script("/flaky", [{"status": 503}, {"status": 500}, {"status": 200}])
    d, reqs = delivered(c, upstream, "/flaky", n=3, format=STD)
    assert [a["status"] for a in d["attempts"]] == [503, 500, 200], d
    assert {r["headers"]["webhook-id"] for r in reqs} == {d["id"]}
    assert {r["idempotency_key"] for r in reqs} == {d["id"]}
    s = secrets(c)["standardWebhooksSecret"]
    # each attempt is signed anew (its own timestamp) and verifies
    assert oks([(STD, s, r) for r in reqs]) == [True, True, True]


BAD_JSON = [
    ({"url": "http://x.example/", "format": "svix"}, "callback.format"),
    ({"url": "http://x.example/", "format": 2}, "callback.format"),
    ({"url": "http://x.example/", "format": ""}, "callback.format"),
    ({"url": "http://x.example/", "format": "Stripe"}, "callback.format"),
]


def test_06_bad_format_422_with_target(api):
    for cb, target in BAD_JSON:
        assert_error(api.submit(items(1), callback=cb), 422, "InvalidField", target)
    assert_error(api.submit_ndjson(items(1), callbackUrl="http://x.example/",
                                   callbackFormat="standard_webhooks"),
                 422, "InvalidField", "callbackFormat")
    assert_error(api.submit_ndjson(items(1), callbackFormat="stripe"), 422, "InvalidField",
                 "callbackUrl")
    for body, target in [({"format": "svix"}, "format"), ({}, "format"), ({"format": 1}, "format"),
                         ({"format": "stripe", "extra": 1}, "extra"), ([], None)]:
        assert_error(api.put("/v1/callbacks/settings", json=body), 422, "InvalidField", target)
    r = api.put("/v1/callbacks/settings", data="{", headers={"Content-Type": "application/json"})
    assert_error(r, 400, "InvalidJson")
    for body, target in [({"overlapSeconds": -1}, "overlapSeconds"),
                         ({"overlapSeconds": "60"}, "overlapSeconds"),
                         ({"overlapSeconds": 10 ** 9}, "overlapSeconds"),
                         ({"overlap": 60}, "overlap")]:
        assert_error(api.post("/v1/callbacks/secret:rotate", json=body), 422, "InvalidField",
                     target)
    assert api.get("/v1/callbacks/settings").json() == {"format": STRIPE}  # nothing was set
