"""Storage faults injected at the store wrappers (SLUICE_FAULTS, src/store/fault.h):
submits answer 503 with Retry-After and leave nothing behind, workers back off and
retry claims and completions, a document is applied once whatever failed around it,
and the retention sweep resumes where it stopped. Every test checks in the server log
that its faults really fired, so none passes because a fault missed."""
import json
import os
import signal
import sqlite3
import time

from conftest import (Client, assert_error, items, job_ids, list_all, make_workflow, submitted,
                      uniq, wait_until)


def fault_lines(srv, msg="injected storage fault", op=None):
    out = []
    for line in srv.read_log().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("msg") == msg and (op is None or e.get("op") == op):
            out.append(e)
    return out


def set_faults(srv, path, rules):
    """Replaces the server's fault rules (SLUICE_FAULTS=@path) and waits until it has
    read them."""
    msgs = ("injecting storage faults (test hook SLUICE_FAULTS)",
            "storage faults cleared (test hook SLUICE_FAULTS)")
    before = sum(len(fault_lines(srv, m)) for m in msgs)
    with open(path, "w") as f:
        f.write(rules)
    srv.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: sum(len(fault_lines(srv, m)) for m in msgs) > before, timeout=30,
               interval=0.05, what="the server to read its fault rules")


def db_count(srv, sql, *args):
    if not srv.store.startswith("sqlite:"):  # a PostgreSQL store (SLUICE_TEST_STORE)
        from conftest import psql
        assert not args
        return int(psql(srv.store.rsplit("/", 1)[1], sql).strip())
    db = sqlite3.connect(srv.store.split(":", 1)[1], timeout=30)
    try:
        return db.execute(sql, args).fetchone()[0]
    finally:
        db.close()


def faulty_server(fresh_server, tmp_path, rules="", args=()):
    path = str(tmp_path / "faults")
    with open(path, "w") as f:
        f.write(rules)
    srv = fresh_server(args=list(args), env={"SLUICE_FAULTS": "@" + path})
    srv.start()
    return srv, path


def test_submit_faults_answer_503_and_store_nothing(fresh_server, tmp_path):
    # the first job_begin, the second batch of items and the first commit fail
    srv, _ = faulty_server(fresh_server, tmp_path,
                           "job_begin:1:busy,job_add_items:2:io,job_commit:1:full,ping:1:io:2")
    c = Client(srv, srv.key_a)
    small, big = items(10, prefix="S-"), items(12000, prefix="B-")  # big: 3 batches of 5000
    key = {"Idempotency-Key": uniq("key")}

    r = c.submit(small)
    assert_error(r, 503, "StoreBusy")
    assert r.headers.get("Retry-After") == "1", r.headers
    r = c.submit(big)
    assert_error(r, 503, "StoreUnavailable")
    assert r.headers.get("Retry-After"), r.headers
    r = c.post("/v1/jobs", data=json.dumps({"workflow": "noop", "items": small}),
               headers=dict(key, **{"Content-Type": "application/json"}))
    assert_error(r, 503, "StoreFull")
    assert r.headers.get("Retry-After"), r.headers
    assert len(fault_lines(srv)) == 3

    # nothing is visible, and the staged rows of the cut-off submits are gone
    assert job_ids(c) == []
    wait_until(lambda: db_count(srv, "SELECT count(*) FROM items") == 0, timeout=30,
               what="the staged items to be deleted")
    assert db_count(srv, "SELECT count(*) FROM jobs") == 0

    # readiness follows the store; liveness does not
    assert c.get("/readyz").status_code == 503
    assert c.get("/healthz").status_code == 200
    assert c.get("/readyz").status_code == 503
    assert c.get("/readyz").status_code == 200

    # the faults are spent: the same requests succeed, and the key was never taken
    r = c.post("/v1/jobs", data=json.dumps({"workflow": "noop", "items": small}),
               headers=dict(key, **{"Content-Type": "application/json"}))
    a = submitted(r)
    assert "Idempotent-Replayed" not in r.headers
    b = submitted(c.submit(big))
    for job, n in ((a, 10), (b, 12000)):
        done = c.wait_job(job["id"], timeout=120)
        assert done["status"] == "Succeeded" and done["counts"]["succeeded"] == n, done
    assert sorted(job_ids(c)) == sorted([a["id"], b["id"]])
    assert db_count(srv, "SELECT count(*) FROM items") == 12010


def test_claim_and_complete_faults_back_off_and_apply_once(fresh_server, tmp_path, upstream):
    srv, path = faulty_server(fresh_server, tmp_path, args=[
        "--outbound-allow", "127.0.0.1/32", "--batch", "20", "--lease-ms", "1500"])
    c = Client(srv, srv.key_a)
    coll = "f_" + uniq("c").replace("-", "_")
    wf = make_workflow(c, [
        {"name": "save", "type": "upsert", "collection": coll},
        {"name": "push", "type": "http", "method": "POST", "url": upstream.url + "/push/{{ref}}",
         "timeoutMs": 10000}])

    # 1. claims fail: the job waits, nothing is sent
    set_faults(srv, path, "claim:1:io:0")
    first = submitted(c.submit(items(100, prefix="A-"), workflow=wf))
    wait_until(lambda: len(fault_lines(srv, "claim failed")) >= 4, timeout=30,
               what="failing claims")
    m = c.get("/v1/jobs/" + first["id"]).json()
    assert m["status"] == "NotStarted" and m["counts"]["pending"] == 100, m
    assert upstream.log() == []

    # 2. claims work again; loading the workflow fails twice and each batch's first
    # completions fail: batches are handed back or completed again, never failed
    set_faults(srv, path, "workflow_get:1:io:2,complete:1:busy:3")
    done = c.wait_job(first["id"], timeout=120)
    assert done["status"] == "Succeeded" and done["counts"]["succeeded"] == 100, done
    assert len(fault_lines(srv, op="workflow_get")) == 2
    assert len(fault_lines(srv, op="complete")) == 3
    # a completion that failed was tried again in place: each item was sent once
    keys = [e["idempotency_key"] for e in upstream.log("/push/A-")]
    assert sorted(keys) == sorted("%s:%d:push" % (first["id"], i) for i in range(100)), keys

    # 3. completions fail for longer than the lease: batches are handed back and run
    # again (same Idempotency-Keys), and still every document is written once
    released = len(fault_lines(srv, "processing a batch failed; releasing it"))
    set_faults(srv, path, "complete:1:io:0")
    second = submitted(c.submit(items(60, prefix="B-"), workflow=wf))
    wait_until(lambda: len(fault_lines(srv, "processing a batch failed; releasing it"))
               >= released + 4,
               timeout=60, what="batches handed back after their lease")
    set_faults(srv, path, "")
    done = c.wait_job(second["id"], timeout=120)
    assert done["status"] == "Succeeded" and done["counts"]["succeeded"] == 60, done
    calls = {}
    for e in upstream.log("/push/B-"):
        calls.setdefault(e["path"], set()).add(e["idempotency_key"])
    assert len(calls) == 60
    assert all(len(k) == 1 for k in calls.values()), calls  # one key per item
    assert max(len([e for e in upstream.log("/push/B-") if e["path"] == p]) for p in calls) > 1

    docs, _ = list_all(c, "/v1/collections/" + coll, params={"limit": 1000})
    assert len(docs) == 160
    assert {d["version"] for d in docs} == {1}, [d for d in docs if d["version"] != 1][:5]


def test_retention_faults_keep_jobs_and_the_sweep_resumes(fresh_server, tmp_path, upstream):
    srv, path = faulty_server(fresh_server, tmp_path, "retention_sweep:1:io:0", args=[
        "--retention-seconds", "1", "--outbound-allow", "127.0.0.1/32"])
    c = Client(srv, srv.key_a)
    old = submitted(c.submit(items(5000, prefix="OLD-")))
    assert c.wait_job(old["id"], timeout=120)["status"] == "Succeeded"
    upstream.script("/hold", [{"delay_ms": 6000}])  # keeps the second job running
    wf = make_workflow(c, [{"name": "hold", "type": "http", "method": "POST",
                            "url": upstream.url + "/hold", "timeoutMs": 20000}])
    running = submitted(c.submit(items(1, prefix="RUN-"), workflow=wf))
    wait_until(lambda: len(fault_lines(srv, "retention sweep failed; retrying later")) >= 3,
               timeout=30, what="failing sweeps")
    # expired, but the sweep could not run: still there, whole
    m = c.get("/v1/jobs/" + old["id"])
    assert m.status_code == 200 and m.json()["counts"]["succeeded"] == 5000, m.text

    # the sweep works again, but fails in the middle of the 5000-item job (2000 rows a
    # transaction): the job is hidden at the first pass, and later passes finish it
    set_faults(srv, path, "retention_sweep:2:io:2")
    wait_until(lambda: c.get("/v1/jobs/" + old["id"]).status_code == 404, timeout=30,
               what="the expired job to go")
    m = c.get("/v1/jobs/" + running["id"])  # not finished: kept
    assert m.status_code == 200 and m.json()["status"] in ("NotStarted", "Running"), m.text
    wait_until(lambda: db_count(srv, "SELECT count(*) FROM items") <= 1, timeout=30,
               what="the sweep to remove every item of the expired job")
    assert len(fault_lines(srv, op="retention_sweep")) >= 3 + 2
    # once it is finished and expired, it goes too
    wait_until(lambda: c.get("/v1/jobs/" + running["id"]).status_code == 404, timeout=60,
               what="the second job to finish and expire")
    wait_until(lambda: db_count(srv, "SELECT count(*) FROM jobs") == 0, timeout=30,
               what="no job row left")
    assert db_count(srv, "SELECT count(*) FROM items") == 0


def test_lost_answers_replay_and_never_apply_twice(fresh_server, tmp_path, upstream):
    """AFTER faults: the commit or the completion takes effect, then reports an error,
    as when the answer is lost. A submit retried with its Idempotency-Key gets the job
    that was stored; a completion tried again records nothing twice."""
    srv, _ = faulty_server(fresh_server, tmp_path,
                           "job_commit:1:io:1:after,complete:1:io:2:after",
                           args=["--outbound-allow", "127.0.0.1/32", "--batch", "10"])
    c = Client(srv, srv.key_a)
    coll = "l_" + uniq("c").replace("-", "_")
    wf = make_workflow(c, [
        {"name": "save", "type": "upsert", "collection": coll},
        {"name": "push", "type": "http", "method": "POST", "url": upstream.url + "/push/{{ref}}"}])
    body = json.dumps({"workflow": wf, "items": items(30, prefix="L-")})
    hdrs = {"Content-Type": "application/json", "Idempotency-Key": uniq("lost")}
    r = c.post("/v1/jobs", data=body, headers=hdrs)
    assert_error(r, 503, "StoreUnavailable")
    r = c.post("/v1/jobs", data=body, headers=hdrs)
    job = submitted(r)
    assert r.headers.get("Idempotent-Replayed") == "true", r.headers
    assert job_ids(c) == [job["id"]]  # one job, the one the lost answer was about
    done = c.wait_job(job["id"], timeout=120)
    assert done["status"] == "Succeeded" and done["counts"]["succeeded"] == 30, done
    assert {s["name"]: s["passed"] for s in done["steps"]} == {"save": 30, "push": 30}, done
    assert len(fault_lines(srv, op="complete")) == 2
    keys = [e["idempotency_key"] for e in upstream.log("/push/")]
    assert sorted(keys) == sorted("%s:%d:push" % (job["id"], i) for i in range(30)), keys
    docs, _ = list_all(c, "/v1/collections/" + coll, params={"limit": 1000})
    assert len(docs) == 30 and {d["version"] for d in docs} == {1}, docs[:3]


# every store operation but the key lookup (so requests get past authentication)
ALL_BUT_AUTH = ["ping", "key_create", "key_list", "key_revoke", "tenant_set_weight",
                "job_begin", "job_add_items", "job_commit", "job_retry", "job_retry_begin",
                "job_abort", "gc_receiving", "expire_claims", "retention_sweep", "job_get",
                "job_list", "job_cancel", "job_delete", "item_get", "item_list", "claim",
                "complete", "release", "doc_get", "doc_write", "doc_list", "stats", "tenant_load",
                "workflow_put", "workflow_get", "workflow_list", "workflow_delete", "hook_put",
                "hook_get", "hook_list", "hook_delete", "limit_put", "limit_get", "limit_list",
                "limit_delete", "delivery_claim", "delivery_record", "delivery_list",
                "setting_ensure", "callback_prefs_get", "callback_format_set",
                "callback_key_rotate"]


def test_every_route_answers_503_while_the_store_fails(fresh_server, tmp_path, upstream):
    """With every store call failing, no route reports success or blames the client: each
    answers 503 with Retry-After (liveness excepted), and all work again afterwards."""
    srv, path = faulty_server(fresh_server, tmp_path, args=["--outbound-allow", "127.0.0.1/32"])
    c = Client(srv, srv.key_a)
    wf = make_workflow(c, [{"name": "n", "type": "noop"}])
    job = submitted(c.submit(items(3, prefix="E-"), workflow=wf))
    assert c.wait_job(job["id"])["status"] == "Succeeded"
    jid = job["id"]
    hook = {"workflow": wf, "secrets": ["whsec_" + "a" * 32], "refFrom": "id"}
    calls = [
        ("POST", "/v1/jobs", {"json": {"workflow": "noop", "items": items(2, prefix="F-")}}),
        ("POST", "/v1/jobs?workflow=noop", {"data": '{"ref":"a","data":{}}\n',
                                            "headers": {"Content-Type": "application/x-ndjson"}}),
        ("GET", "/v1/jobs", {}), ("GET", "/v1/jobs/" + jid, {}),
        ("POST", "/v1/jobs/%s:cancel" % jid, {}), ("DELETE", "/v1/jobs/" + jid, {}),
        ("GET", "/v1/jobs/%s/items" % jid, {}), ("GET", "/v1/jobs/%s/items/0" % jid, {}),
        ("GET", "/v1/jobs/%s/results" % jid, {}), ("GET", "/v1/jobs/%s/events" % jid, {}),
        ("GET", "/v1/jobs/%s/callbacks" % jid, {}), ("POST", "/v1/jobs/%s:retry" % jid, {}),
        ("GET", "/v1/callbacks/secret", {}), ("POST", "/v1/callbacks/secret:rotate", {}),
        ("GET", "/v1/callbacks/settings", {}),
        ("PUT", "/v1/callbacks/settings", {"json": {"format": "standard-webhooks"}}),
        ("GET", "/v1/workflows", {}), ("GET", "/v1/workflows/" + wf, {}),
        ("PUT", "/v1/workflows/w2", {"json": {"steps": [{"name": "n", "type": "noop"}]}}),
        ("DELETE", "/v1/workflows/" + wf, {}),
        ("POST", "/v1/workflows/%s:run" % wf, {"json": {"ref": "a", "data": {}}}),
        ("GET", "/v1/limits", {}), ("GET", "/v1/limits/x", {}),
        ("PUT", "/v1/limits/x", {"json": {"rate": 5}}), ("DELETE", "/v1/limits/x", {}),
        ("GET", "/v1/hooks", {}), ("PUT", "/v1/hooks/h1", {"json": hook}),
        ("GET", "/v1/hooks/h1", {}), ("DELETE", "/v1/hooks/h1", {}),
        ("POST", "/v1/hooks/h1/events", {"json": {"id": "e1"}}),
        ("GET", "/v1/collections/c", {}), ("GET", "/v1/collections/c/a", {}),
        ("PUT", "/v1/collections/c/a", {"json": {"x": 1}}),
        ("PATCH", "/v1/collections/c/a", {"json": {"x": 2}}),
        ("DELETE", "/v1/collections/c/a", {}),
        ("GET", "/readyz", {}),
    ]
    set_faults(srv, path, ",".join("%s:1:io:0" % op for op in ALL_BUT_AUTH))
    wrong = []
    for method, p, kw in calls:
        r = c.request(method, p, timeout=30, **kw)
        if r.status_code != 503 or not r.headers.get("Retry-After") or \
                r.json()["error"]["code"] != "StoreUnavailable":
            wrong.append("%s %s -> %d %s" % (method, p, r.status_code, r.text[:120]))
    assert not wrong, wrong
    assert c.get("/healthz").status_code == 200
    assert srv.proc.poll() is None
    set_faults(srv, path, "")
    assert c.get("/v1/jobs/" + jid).json()["counts"]["succeeded"] == 3
    again = submitted(c.submit(items(2, prefix="G-")))
    assert c.wait_job(again["id"])["status"] == "Succeeded"
