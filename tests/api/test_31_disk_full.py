"""A real disk-full run: the SQLite file lives on a small tmpfs, which a ballast file
fills but for a few MiB, and which the server's own writes then fill. Submits answer
503 StoreFull with Retry-After (never 202 for work that was not stored), reads keep
working, and once the ballast is removed, submits and processing go on with no
restart and nothing acknowledged is lost.

The ballast leaves less room than the WAL grows before its first checkpoint (16 MiB):
everything the server wrote then sits in the WAL, and removing the ballast frees far
more than the database file needs to absorb it. (Had the server's data filled the
whole disk instead, SQLite could only recover once as much space as the data in the
WAL is freed, because a checkpoint must first copy it into the database file.)"""
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile

import pytest
import requests

from conftest import Client, Server, list_all, wait_until

MB = 1 << 20


@pytest.fixture
def tmpfs():
    mnt = tempfile.mkdtemp(prefix="sluice-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m,mode=0700", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(mnt)
        pytest.skip("cannot mount a tmpfs for the disk-full test (needs root or "
                    "CAP_SYS_ADMIN): %s" % (r.stderr.strip() or r.returncode))
    yield mnt
    subprocess.run(["umount", "-l", mnt], capture_output=True)
    shutil.rmtree(mnt, ignore_errors=True)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def db_items(srv):
    db = sqlite3.connect(srv.store.split(":", 1)[1], timeout=30)
    try:
        return db.execute("SELECT count(*) FROM items").fetchone()[0]
    finally:
        db.close()


def job_items(n, tag):
    # random padding: the store compresses item data (a run of "x" would take no room)
    return [{"ref": "%s-%05d" % (tag, i), "data": {"i": i, "pad": os.urandom(60).hex()}}
            for i in range(n)]


def test_disk_full_answers_503_reads_work_and_it_recovers(tmpfs):
    srv = Server(args=["--lease-ms", "5000", "--batch", "200"])
    srv.store = "sqlite:" + os.path.join(tmpfs, "sluice.db")  # the log stays in srv.dir
    srv.key_a = srv.create_key("acme")
    srv.start()
    ok = False
    try:
        c = Client(srv, srv.key_a)
        ballast = os.path.join(tmpfs, "ballast")
        with open(ballast, "wb") as f:
            f.write(b"\0" * (free_bytes(tmpfs) - 5 * MB))
        acked = {}   # job id -> item count, for every 202
        refused = []  # 503 answers
        n = 0
        # fill the file system with jobs; a few more submits once it is full
        while len(refused) < 4 and n < 300:
            size = 1500 if not refused else (1500, 50, 1)[len(refused) % 3]
            its = job_items(size, "J%03d" % n)
            r = c.submit(its)
            n += 1
            if r.status_code == 202:
                acked[r.json()["id"]] = size
                continue
            assert r.status_code == 503, (r.status_code, r.text)
            err = r.json()["error"]
            assert err["code"] == "StoreFull", err
            assert r.headers.get("Retry-After"), r.headers
            refused.append(err)
        assert refused, "the tmpfs never filled up (%d jobs, %d bytes free)" % (
            len(acked), free_bytes(tmpfs))
        print("disk full after %d jobs acknowledged, %d submits refused" % (len(acked), len(refused)))
        assert len(acked) >= 3, acked
        assert srv.proc.poll() is None

        # reads keep working while the disk is full: every acknowledged job is whole
        assert requests.get(srv.url + "/healthz", timeout=10).status_code == 200
        listed = {j["id"] for j in list_all(c, "/v1/jobs", params={"limit": 1000})[0]}
        assert listed == set(acked), (len(listed), len(acked))
        for jid, size in acked.items():
            r = c.get("/v1/jobs/" + jid)
            assert r.status_code == 200, r.text
            assert r.json()["counts"]["total"] == size
        assert c.get("/v1/jobs/%s/items" % next(iter(acked)), params={"limit": 5}).status_code == 200

        # space comes back: no restart needed
        os.unlink(ballast)
        r = c.submit(job_items(100, "AFTER"))
        assert r.status_code == 202, r.text
        acked[r.json()["id"]] = 100
        for jid, size in acked.items():
            m = c.wait_job(jid, timeout=180)
            assert m["status"] == "Succeeded" and m["counts"]["succeeded"] == size, m
        # the staged rows of refused submits, which the full disk kept, are gone too
        wait_until(lambda: db_items(srv) == sum(acked.values()), timeout=60,
                   what="no staged rows of refused submits left")
        assert srv.proc.poll() is None
        log = srv.read_log()
        assert "submit refused: the store cannot write" in log and "StoreFull" in log
        rc = srv.stop()
        assert rc == 0, "exit status %s:\n%s" % (rc, log[-3000:])
        db = sqlite3.connect(srv.store.split(":", 1)[1])
        try:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            db.close()
        ok = True
    finally:
        if srv.proc and srv.proc.poll() is None:
            srv.stop()
        if ok:
            srv.cleanup()
