"""POST /v1/jobs/{id}:retry answers at once with the new job staging (NotStarted,
phase Staging, counts of all its items); a background task copies the failed items in
batches of 5000 off the HTTP threads. A crash mid-way resumes at the next start, and
every item is processed exactly once."""
import os
import shutil
import signal
import tempfile

import requests

from conftest import Client, list_all, submitted, wait_until

N = 50000
BATCH = 5000  # STAGER_BATCH (src/engine/stager.h)


def failing_workflow(c):
    """Every item fails its validate step (the data has no "sku")."""
    name = "must-sku"
    r = c.put("/v1/workflows/" + name, json={"steps": [
        {"name": "check", "type": "validate", "schema": {"type": "object", "required": ["sku"]}}]})
    assert r.status_code == 201, r.text
    return name


def failed_job(c, n):
    wf = failing_workflow(c)
    body = {"workflow": wf, "items": [{"ref": "r%d" % i, "data": {"i": i}} for i in range(n)]}
    j = submitted(c.post("/v1/jobs", json=body, timeout=120))
    done = c.wait_job(j["id"], timeout=300)
    assert done["status"] == "Failed" and done["counts"]["failed"] == n, done
    return done


def item_pages(c, job_id):
    return list_all(c, "/v1/jobs/%s/items" % job_id, params={"limit": 1000})[0]


def check_counts(job, total):
    c = job["counts"]
    assert c["total"] == total, job
    assert sum(c[k] for k in ("pending", "processing", "succeeded", "failed", "skipped",
                              "canceled")) == total, job


def test_retry_answers_before_staging_and_processes_each_item_once(fresh_server):
    srv = fresh_server().start()
    c = Client(srv, srv.key_a)
    parent = failed_job(c, N)
    other = submitted(c.post("/v1/jobs", json={"workflow": "noop", "items": [
        {"ref": "x", "data": {}}]}))

    r = c.post("/v1/jobs/%s:retry" % parent["id"], timeout=30)
    assert r.status_code == 202, r.text
    child = r.json()
    # the reply is the job row only: staging, all its items counted as pending
    assert child["status"] == "NotStarted" and child["phase"] == "Staging", child
    assert child["parentJob"] == parent["id"], child
    check_counts(child, N)
    assert child["counts"]["pending"] == N, child
    # while it stages and runs, other requests are served
    assert requests.get(srv.url + "/healthz", timeout=5).status_code == 200
    assert c.get("/v1/jobs/" + other["id"], timeout=5).status_code == 200
    # every monitor read is consistent: all items counted, whatever the phase
    seen = set()

    def finished():
        j = c.get("/v1/jobs/" + child["id"], timeout=30).json()
        check_counts(j, N)
        seen.add(j["phase"])
        return j if j["status"] in ("Succeeded", "Failed", "Canceled") else None

    done = wait_until(finished, timeout=600, interval=0.05, what="the retry to finish")
    assert done["counts"]["failed"] == N, done  # the same workflow version fails them again
    its = item_pages(c, child["id"])
    assert [it["index"] for it in its] == list(range(N))
    assert [it["parentIndex"] for it in its] == list(range(N))
    assert all(it["status"] == "Failed" for it in its)
    # the parent is untouched; its retry shows in the job list now
    assert c.get("/v1/jobs/" + parent["id"]).json()["counts"]["failed"] == N
    listed = [j["id"] for j in c.get("/v1/jobs", params={"limit": 10}).json()["value"]]
    assert child["id"] in listed, listed


def test_staging_resumes_after_a_crash(fresh_server):
    path = os.path.join(tempfile.mkdtemp(prefix="sluice-faults-"), "faults")
    srv = fresh_server(env={"SLUICE_FAULTS": "@" + path})
    with open(path, "w") as f:
        f.write("")
    try:
        srv.start()
        c = Client(srv, srv.key_a)
        parent = failed_job(c, N)
        # the stager's 4th call from now on fails: one to three batches get staged
        with open(path, "w") as f:
            f.write("job_retry_stage:4:io:0")
        n_lines = srv.read_log().count("injecting storage faults")
        srv.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: srv.read_log().count("injecting storage faults") > n_lines,
                   timeout=30, what="the fault rules to load")
        r = c.post("/v1/jobs/%s:retry" % parent["id"], timeout=30)
        assert r.status_code == 202, r.text
        child = r.json()
        wait_until(lambda: "injected storage fault" in srv.read_log(), timeout=30,
                   what="the stager to hit the fault")
        j = c.get("/v1/jobs/" + child["id"]).json()
        assert j["status"] == "NotStarted" and j["phase"] == "Staging", j
        check_counts(j, N)
        staged = item_pages(c, child["id"])
        assert 0 < len(staged) < N and len(staged) % BATCH == 0, len(staged)
        assert [it["status"] for it in staged] == ["Pending"] * len(staged)
        # not in the job list, not claimable while staging
        listed = [x["id"] for x in c.get("/v1/jobs", params={"limit": 10}).json()["value"]]
        assert child["id"] not in listed
        # writers wait for the staging to end
        for method, route in (("POST", "/v1/jobs/%s:cancel"), ("DELETE", "/v1/jobs/%s"),
                              ("POST", "/v1/jobs/%s:retry")):
            r = c.request(method, route % child["id"])
            assert r.status_code == 409 and r.json()["error"]["code"] == "Conflict", r.text

        srv.kill()  # crash mid-staging
        with open(path, "w") as f:
            f.write("")
        srv.start()
        done = c.wait_job(child["id"], timeout=600)
        check_counts(done, N)
        assert done["counts"]["failed"] == N, done
        its = item_pages(c, child["id"])
        assert [it["parentIndex"] for it in its] == list(range(N))  # none lost, none twice
    finally:
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
