"""Crash safety: SIGKILL mid-job, restart on the same store, every item applied exactly
once. Graceful shutdown: SIGTERM mid-job exits 0 quickly and the job resumes."""
import signal
import time

import pytest

from conftest import TERMINAL, Client, counts_ok, list_all, results, submitted

N = 20000
COLL = "products"


def big_items(n, prefix="CR-"):
    return [{"ref": "%s%06d" % (prefix, i), "data": {"sku": "%s%06d" % (prefix, i), "i": i,
                                                     "title": "product %d" % i}}
            for i in range(n)]


def until_midway(c, jid, timeout=120, in_flight=True):
    """Polls tightly until 0 < done < total (and, with in_flight, some items are claimed
    under a lease right now); returns the monitor seen."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = c.get("/v1/jobs/" + jid).json()
        cnt = m["counts"]
        done = cnt["succeeded"] + cnt["failed"] + cnt["skipped"] + cnt["canceled"]
        if 0 < done < cnt["total"] and (cnt["processing"] > 0 or not in_flight):
            return m
        assert m["status"] not in TERMINAL, \
            "the job finished before it could be interrupted (make it slower): %s" % m
        time.sleep(0.005)
    raise AssertionError("job %s made no progress in %ss" % (jid, timeout))


def check_exactly_once(c, jid, n, version):
    m = c.wait_job(jid, timeout=180)
    cnt = counts_ok(m)
    assert m["status"] == "Succeeded" and m.get("outcome") == "AllSucceeded", m
    assert cnt["succeeded"] == n and cnt["failed"] == 0 and cnt["canceled"] == 0, cnt
    res = results(c, jid)
    assert len(res) == n, len(res)
    idx = [x["index"] for x in res]
    assert idx == list(range(n)), "results are not indexes 0..%d once each" % (n - 1)
    bad = [x for x in res if x["status"] != "Succeeded"]
    assert not bad, bad[:5]
    bad = [x for x in res if x["result"]["version"] != version]
    assert not bad, ("item results with the wrong version", bad[:5])
    docs, pages = list_all(c, "/v1/collections/" + COLL, params={"limit": 1000})
    assert len(docs) == n, len(docs)
    assert len({d["ref"] for d in docs}) == n
    wrong = [(d["ref"], d["version"]) for d in docs if d["version"] != version]
    assert not wrong, ("documents applied more or less than once", len(wrong), wrong[:10])
    return m


def crash_and_recover(make, pre_create):
    srv = make(args=["--lease-ms", "2000", "--batch", "50"])
    srv.start()
    c = Client(srv, srv.key_a)
    its = big_items(N)
    version = 1
    if pre_create:
        j0 = submitted(c.submit(its, workflow=COLL + ".upsert"))
        m0 = c.wait_job(j0["id"], timeout=180)
        assert m0["status"] == "Succeeded" and m0["counts"]["succeeded"] == N, m0
        version = 2
        its = [{"ref": it["ref"], "data": dict(it["data"], round=2)} for it in its]
    job = submitted(c.submit(its, workflow=COLL + ".upsert"))
    jid = job["id"]
    until_midway(c, jid)
    srv.kill()
    srv.start()  # same store, same port
    m = check_exactly_once(c, jid, N, version)
    docs, _ = list_all(c, "/v1/collections/" + COLL, params={"limit": 1000})
    sample = {d["ref"]: d for d in docs[:50]}
    for it in its[:50]:
        assert sample[it["ref"]]["data"] == it["data"], sample[it["ref"]]
    return m


def test_crash_mid_job_every_item_once(fresh_server):
    crash_and_recover(fresh_server, pre_create=False)


def test_crash_mid_job_existing_documents_version_2(fresh_server):
    crash_and_recover(fresh_server, pre_create=True)


def test_sigterm_mid_job_exits_0_and_resumes(fresh_server):
    srv = fresh_server(args=["--lease-ms", "2000", "--batch", "20", "--workers", "2"])
    srv.start()
    c = Client(srv, srv.key_a)
    n = 5000
    job = submitted(c.submit(big_items(n, prefix="TERM-"), workflow=COLL + ".upsert"))
    until_midway(c, job["id"])
    rc = srv.stop(signal.SIGTERM, timeout=15)
    assert rc == 0, "SIGTERM exit status %s:\n%s" % (rc, srv.read_log()[-3000:])
    assert "shutting down" in srv.read_log()
    srv.start()
    check_exactly_once(c, job["id"], n, 1)


def test_sigterm_idle_server_exits_0(fresh_server):
    srv = fresh_server()
    srv.start()
    assert srv.stop(signal.SIGTERM, timeout=15) == 0
    srv.start()
    c = Client(srv, srv.key_a)
    assert c.get("/v1/jobs").status_code == 200
    assert srv.stop(signal.SIGINT, timeout=15) == 0


def test_restart_keeps_jobs_and_documents(fresh_server):
    srv = fresh_server()
    srv.start()
    c = Client(srv, srv.key_a)
    job = submitted(c.submit(big_items(10, prefix="KEEP-"), workflow=COLL + ".upsert",
                             clientReference="keep"))
    m1 = c.wait_job(job["id"])
    assert srv.stop() == 0
    srv.start()
    m2 = c.get("/v1/jobs/" + job["id"]).json()
    for k in ("id", "status", "outcome", "counts", "createdAt", "completedAt", "clientReference"):
        assert m1[k] == m2[k], (k, m1[k], m2[k])
    assert len(list_all(c, "/v1/collections/" + COLL)[0]) == 10


def test_expired_leases_are_fenced(fresh_server):
    """Workers are stalled past their 100 ms lease (an outside transaction holds the SQLite
    write lock - on PostgreSQL an exclusive lock on the items table - for 400 ms at a
    time), so batches are retaken by the other worker while the first still holds
    outcomes: the lease token must fence the late writer, and every item is still
    applied exactly once."""
    srv = fresh_server(args=["--lease-ms", "100", "--batch", "200", "--workers", "2"])
    srv.start()
    c = Client(srv, srv.key_a)
    n = 8000
    job = submitted(c.submit(big_items(n, prefix="FENCE-"), workflow=COLL + ".upsert"))
    if srv.store.startswith("sqlite:"):
        import sqlite3
        db = sqlite3.connect(srv.store.split(":", 1)[1], timeout=30, isolation_level=None)

        def stall():
            db.execute("BEGIN IMMEDIATE")
            time.sleep(0.4)
            db.execute("COMMIT")
    else:
        from conftest import psql
        db = None

        def stall():
            psql(srv.store.rsplit("/", 1)[1], "BEGIN; LOCK TABLE items IN EXCLUSIVE MODE; "
                 "SELECT pg_sleep(0.4); COMMIT")
    try:
        for _ in range(4):
            m = c.get("/v1/jobs/" + job["id"]).json()
            if m["status"] in TERMINAL:
                break
            stall()
            time.sleep(0.05)
    finally:
        if db:
            db.close()
    m = c.wait_job(job["id"], timeout=180)
    cnt = counts_ok(m)
    assert cnt["succeeded"] + cnt["failed"] == n, cnt
    res = results(c, job["id"])
    assert [x["index"] for x in res] == list(range(n))
    docs = {d["ref"]: d for d in list_all(c, "/v1/collections/" + COLL, params={"limit": 1000})[0]}
    for x in res:
        d = docs.get(x["ref"])
        if x["status"] == "Succeeded":
            assert d is not None and d["version"] == 1 and d["lastItem"] == x["index"], (x, d)
        else:  # only abandoned after too many attempts; then nothing was written
            assert x["error"]["code"] == "MaxAttemptsExceeded" and d is None, (x, d)
