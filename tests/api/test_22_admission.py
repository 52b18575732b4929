"""Admission control on submits: caps on a tenant's unfinished jobs and waiting items
answer 429 with Retry-After and store nothing; other tenants are unaffected."""
from conftest import Client, assert_error, items, job_ids, submitted, uniq


def test_open_jobs_cap(fresh_server):
    srv = fresh_server(args=["--max-open-jobs", "2", "--workers", "1", "--batch", "1"])
    key_b = srv.create_key("globex")
    srv.start()
    a, b = Client(srv, srv.key_a), Client(srv, key_b)
    first = submitted(a.submit(items(50000, prefix=uniq("cap1") + "-")))["id"]
    second = submitted(a.submit(items(50000, prefix=uniq("cap2") + "-")))["id"]
    r = a.submit(items(1, prefix=uniq("cap3") + "-"))
    err = assert_error(r, 429, "TooManyJobs")
    assert "2" in err["message"]
    assert int(r.headers["Retry-After"]) >= 1
    assert sorted(job_ids(a)) == sorted([first, second])  # nothing stored
    assert b.submit(items(1, prefix=uniq("capb") + "-")).status_code == 202
    a.post("/v1/jobs/%s:cancel" % first)
    a.wait_job(first, timeout=60)
    assert a.submit(items(1, prefix=uniq("cap4") + "-")).status_code == 202
    a.post("/v1/jobs/%s:cancel" % second)


def test_pending_items_cap(fresh_server):
    srv = fresh_server(args=["--max-pending-items", "100", "--workers", "1", "--batch", "1"])
    srv.start()
    a = Client(srv, srv.key_a)
    big = submitted(a.submit(items(20000, prefix=uniq("pend") + "-")))["id"]
    r = a.submit_ndjson(items(1, prefix=uniq("pend2") + "-"))
    assert_error(r, 429, "TooManyPendingItems")
    assert int(r.headers["Retry-After"]) >= 1
    a.post("/v1/jobs/%s:cancel" % big)
    a.wait_job(big, timeout=60)
    assert a.submit(items(1, prefix=uniq("pend3") + "-")).status_code == 202


def test_caps_off(fresh_server):
    srv = fresh_server(args=["--max-open-jobs", "0", "--max-pending-items", "0",
                             "--workers", "1", "--batch", "1"])
    srv.start()
    a = Client(srv, srv.key_a)
    ids = [submitted(a.submit(items(2000, prefix=uniq("off%d" % i) + "-")))["id"] for i in range(5)]
    for j in ids:
        a.post("/v1/jobs/%s:cancel" % j)
