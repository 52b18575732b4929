"""Fair sharing between jobs: a small job submitted while a big one runs does not wait
for the big one, and items of two tenants' jobs interleave."""
from conftest import Client, TERMINAL, items, submitted, uniq, wait_until


def test_small_job_overtakes_big_job(fresh_server):
    # One worker, 10 items per claim: the big job needs 20,000 claims (slow on purpose,
    # so "most of it still pending" holds on a loaded machine too); the small one must
    # get a turn after at most one more claim of the big job.
    srv = fresh_server(args=["--workers", "1", "--batch", "10"])
    key_b = srv.create_key("globex")
    srv.start()
    a, b = Client(srv, srv.key_a), Client(srv, key_b)
    big = submitted(a.submit(items(200000, prefix=uniq("big") + "-")))["id"]
    wait_until(lambda: a.get("/v1/jobs/" + big).json()["counts"]["succeeded"] > 0,
               timeout=60, what="the big job to start")
    small = submitted(b.submit(items(10, prefix=uniq("small") + "-")))["id"]
    done = b.wait_job(small, timeout=60)
    assert done["status"] == "Succeeded" and done["counts"]["succeeded"] == 10, done
    m = a.get("/v1/jobs/" + big).json()
    assert m["status"] not in TERMINAL, "the small job waited for the big one: %s" % m["counts"]
    assert m["counts"]["pending"] > 100000, m["counts"]
    a.post("/v1/jobs/%s:cancel" % big)
    a.wait_job(big, timeout=60)
