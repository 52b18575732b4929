"""Fair scheduling between tenants and priority within a tenant: a tenant with many
jobs gets no more turns than a tenant with one; a tenant's higher-priority job runs
first. One worker claiming 100 items at a time makes the pace deterministic."""
import json

from conftest import Client, TERMINAL, assert_error, items, sluice, submitted, uniq


def _counts(client, ids):
    total = {"pending": 0, "succeeded": 0}
    for i in ids:
        c = client.get("/v1/jobs/" + i).json()["counts"]
        for k in total:
            total[k] += c[k]
    return total


def test_small_tenant_not_starved_by_many_jobs(fresh_server):
    srv = fresh_server(args=["--workers", "1", "--batch", "100"])
    key_b = srv.create_key("globex")
    srv.start()
    a, b = Client(srv, srv.key_a), Client(srv, key_b)
    # Tenant A: 200,000 items in 20 jobs (2,000 claims of 100).
    big = []
    for n in range(20):
        big.append(submitted(a.submit(items(10000, prefix=uniq("a%d" % n) + "-")))["id"])
    # Tenant B's small job finishes while most of A's items are still pending.
    small = submitted(b.submit(items(10, prefix=uniq("b") + "-")))["id"]
    done = b.wait_job(small, timeout=60)
    assert done["status"] == "Succeeded" and done["counts"]["succeeded"] == 10, done
    assert done["priority"] == 0, done
    c = _counts(a, big)
    assert c["pending"] > 100000, c
    # A 20-claim job of B: with turns per tenant it takes about 20 claims of A as well
    # (about 2,000 items); with turns per job it would wait for about 400 of A's claims.
    before = _counts(a, big)["succeeded"]
    mid = submitted(b.submit(items(2000, prefix=uniq("b2") + "-")))["id"]
    done = b.wait_job(mid, timeout=120)
    assert done["status"] == "Succeeded", done
    after = _counts(a, big)["succeeded"]
    assert after - before < 10000, (before, after)
    for i in big:
        a.post("/v1/jobs/%s:cancel" % i)
    for i in big:
        assert a.wait_job(i, timeout=60)["status"] in TERMINAL


def test_tenant_weight_cli(fresh_server):
    srv = fresh_server()
    r = sluice("tenants", "weight", "acme", "3", "--store", srv.store)
    assert r.returncode == 0, r.stderr
    assert "weight 3" in r.stdout
    for bad in ("0", "101", "x", "-1"):
        r = sluice("tenants", "weight", "acme", bad, "--store", srv.store)
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
    r = sluice("tenants", "weight", "acme", "--store", srv.store)
    assert r.returncode == 2
    r = sluice("tenants", "nosuch", "--store", srv.store)
    assert r.returncode == 2


def test_priority_within_tenant(fresh_server):
    srv = fresh_server(args=["--workers", "1", "--batch", "100"])
    srv.start()
    a = Client(srv, srv.key_a)
    low = submitted(a.submit(items(30000, prefix=uniq("low") + "-")))["id"]
    high = submitted(a.submit_ndjson(items(1000, prefix=uniq("high") + "-"), priority="10"))["id"]
    done = a.wait_job(high, timeout=60)
    assert done["status"] == "Succeeded" and done["priority"] == 10, done
    m = a.get("/v1/jobs/" + low).json()
    assert m["priority"] == 0
    assert m["status"] not in TERMINAL, m
    assert m["counts"]["pending"] > 10000, m["counts"]
    a.post("/v1/jobs/%s:cancel" % low)
    a.wait_job(low, timeout=60)
    # ?priority= works with a JSON body too
    r = a.post("/v1/jobs", params={"priority": "-100"},
               json={"workflow": "noop", "items": items(1, prefix=uniq("neg") + "-")})
    j = submitted(r)
    assert a.wait_job(j["id"])["priority"] == -100


def test_invalid_priority(fresh_server):
    srv = fresh_server()
    srv.start()
    a = Client(srv, srv.key_a)
    for bad in ("101", "-101", "1.5", "x", "", "10a", "1000"):
        assert_error(a.submit_ndjson(items(1, prefix=uniq("bad") + "-"), priority=bad),
                     422, "InvalidField", "priority")
        r = a.post("/v1/jobs", params={"priority": bad},
                   json={"workflow": "noop", "items": items(1, prefix=uniq("bad") + "-")})
        assert_error(r, 422, "InvalidField", "priority")


def test_priority_in_the_json_envelope(api):
    r = api.post("/v1/jobs", data=json.dumps({"workflow": "noop", "priority": 7,
                                              "items": items(2, prefix=uniq("envp") + "-")}),
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 202 and r.json()["priority"] == 7, r.text
    for bad in (101, -101, 1.5, "3", None, 1e2):
        r = api.post("/v1/jobs", data=json.dumps({"workflow": "noop", "priority": bad,
                                                  "items": items(1, prefix=uniq("envb") + "-")}),
                     headers={"Content-Type": "application/json"})
        assert_error(r, 422, "InvalidField", "priority")
