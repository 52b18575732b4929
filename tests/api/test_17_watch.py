"""Following a job without polling: long polls (?wait=N) and Server-Sent Events.
Neither may hold a server thread per waiting client."""
import json
import threading
import time

import requests

from conftest import Client, assert_error, items, submitted, uniq, wait_until


def until_running(c, jid):
    wait_until(lambda: c.get("/v1/jobs/" + jid).json()["status"] == "Running", timeout=60,
               what="the job to start")


def slow_server(fresh_server):
    # one worker, one item per claim: a job of a few thousand items runs for seconds
    srv = fresh_server(args=["--workers", "1", "--batch", "1"])
    srv.start()
    return srv, Client(srv, srv.key_a)


def test_wait_returns_when_the_status_changes(fresh_server):
    srv, c = slow_server(fresh_server)
    # 50,000 items at one item per claim run for minutes: the job stays Running through
    # the wait unless something changes it. The change here is a cancel made while the
    # wait is parked, so the test does not depend on how fast the job starts or runs.
    job = submitted(c.submit(items(50000, prefix=uniq("lp") + "-")))
    until_running(c, job["id"])
    got = {}

    def waiter():
        got["r"] = c.get("/v1/jobs/" + job["id"], params={"wait": 30}, timeout=60)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.5)
    assert t.is_alive(), "the wait answered before anything changed: %r" % got["r"].text
    c.post("/v1/jobs/%s:cancel" % job["id"])
    # A server that ignored the change would answer only when wait=30 s ran out.
    t.join(timeout=20)
    assert not t.is_alive(), "the wait did not answer when the job was canceled"
    r = got["r"]
    assert r.status_code == 200, r.text
    assert r.json()["status"] != "Running", r.json()


def test_wait_on_a_finished_job_answers_at_once(api):
    job = submitted(api.submit(items(3, prefix=uniq("lpd") + "-")))
    api.wait_job(job["id"])
    r = api.get("/v1/jobs/" + job["id"], params={"wait": 60}, timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "Succeeded", r.text
    assert "Retry-After" not in r.headers


def test_wait_times_out_with_the_current_monitor(fresh_server):
    srv = fresh_server(args=["--workers", "1", "--batch", "1"])
    srv.start()
    c = Client(srv, srv.key_a)
    job = submitted(c.submit(items(50000, prefix=uniq("lpt") + "-")))
    until_running(c, job["id"])
    t0 = time.time()
    r = c.get("/v1/jobs/" + job["id"], params={"wait": 1}, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "Running", r.text
    assert time.time() - t0 >= 0.9  # it did wait (lower bound only)
    assert r.headers.get("Retry-After") == "1"
    c.post("/v1/jobs/%s:cancel" % job["id"])


def test_wait_parameter_errors(api):
    job = submitted(api.submit(items(1, prefix=uniq("lpe") + "-")))
    for bad in ("-1", "61", "x", "1.5"):
        assert_error(api.get("/v1/jobs/" + job["id"], params={"wait": bad}), 400,
                     "InvalidParameter", "wait")
    assert_error(api.get("/v1/jobs/job_nope", params={"wait": 5}), 404, "NotFound")


def test_parked_polls_hold_no_threads(fresh_server):
    """60 parked long polls on a running job, more than any thread pool here: the
    server still answers other requests while they wait."""
    srv, c = slow_server(fresh_server)
    job = submitted(c.submit(items(100000, prefix=uniq("lpn") + "-")))
    until_running(c, job["id"])
    results = []

    def poll():
        s = requests.Session()
        s.headers["Authorization"] = "Bearer " + srv.key_a
        r = s.get(srv.url + "/v1/jobs/" + job["id"], params={"wait": 4}, timeout=60)
        results.append(r.status_code)

    threads = [threading.Thread(target=poll) for _ in range(60)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    for _ in range(5):
        assert requests.get(srv.url + "/healthz", timeout=3).status_code == 200
        assert c.get("/v1/jobs/" + job["id"], timeout=3).status_code == 200
    for t in threads:
        t.join(60)
    assert results == [200] * 60, results
    c.post("/v1/jobs/%s:cancel" % job["id"])


def read_events(resp, until=("job.succeeded", "job.failed", "job.canceled"), limit=10000):
    """Parses an SSE stream into (id, event, data) tuples, stopping after `until`."""
    out, ev = [], {}
    for raw in resp.iter_lines(decode_unicode=True):
        if raw is None:
            continue
        if raw == "":
            if ev:
                out.append((ev.get("id"), ev.get("event"), json.loads(ev.get("data", "null"))))
                if ev.get("event") in until or len(out) >= limit:
                    break
            ev = {}
            continue
        if raw.startswith(":"):
            continue
        k, _, v = raw.partition(": ")
        ev[k] = v
    return out


def test_event_stream_follows_a_job_to_the_end(fresh_server):
    srv = fresh_server(args=["--workers", "1", "--batch", "20"])
    srv.start()
    c = Client(srv, srv.key_a)
    prefix = uniq("sse") + "-"
    n = 3000
    # every 10th item patches a missing document: a steady trickle of failures
    its = [{"ref": "%s%d" % (prefix, i), "data": {"i": i}} for i in range(n)]
    seed = submitted(c.submit(its[::2], workflow="ssedocs.upsert"))
    c.wait_job(seed["id"])
    job = submitted(c.submit(its, workflow="ssedocs.patch"))
    r = c.get("/v1/jobs/%s/events" % job["id"], stream=True, timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/event-stream")
    events = read_events(r)
    r.close()
    kinds = [e[1] for e in events]
    assert kinds[-1] == "job.succeeded", kinds[-5:]
    final = events[-1][2]
    assert final["counts"]["failed"] == n // 2 and final["counts"]["succeeded"] == n // 2, final
    failed = [it for (_, k, d) in events if k == "items.failed" for it in d["items"]]
    assert sorted(x["index"] for x in failed) == list(range(1, n, 2)), len(failed)
    assert all(x["error"]["code"] == "DocumentNotFound" for x in failed)
    progress = [d for (_, k, d) in events if k == "progress"]
    assert progress and all(p["id"] == job["id"] for p in progress)
    ids = [int(e[0]) for e in events]
    assert ids == sorted(ids), ids  # the cursor only moves forward

    # Resuming after the 10th failure replays only what came later.
    resume_at = sorted(x["index"] for x in failed)[9]
    r = c.get("/v1/jobs/%s/events" % job["id"], stream=True, timeout=60,
              headers={"Last-Event-ID": str(resume_at)})
    again = read_events(r)
    r.close()
    refailed = [it["index"] for (_, k, d) in again if k == "items.failed" for it in d["items"]]
    assert refailed == [i for i in range(1, n, 2) if i > resume_at], refailed[:5]
    assert again[-1][1] == "job.succeeded"


def test_event_stream_errors(api, api_b):
    job = submitted(api.submit(items(1, prefix=uniq("sse-e") + "-")))
    assert_error(api.get("/v1/jobs/job_nope/events"), 404, "NotFound")
    assert_error(api_b.get("/v1/jobs/%s/events" % job["id"]), 404, "NotFound")


def test_shutdown_answers_parked_requests(fresh_server):
    srv, c = slow_server(fresh_server)
    job = submitted(c.submit(items(100000, prefix=uniq("lps") + "-")))
    until_running(c, job["id"])
    got = []

    def poll():
        try:
            r = requests.get(srv.url + "/v1/jobs/" + job["id"], params={"wait": 60},
                             headers={"Authorization": "Bearer " + srv.key_a}, timeout=60)
            got.append(r.status_code)
        except requests.RequestException as e:
            got.append(repr(e))

    threads = [threading.Thread(target=poll) for _ in range(5)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    t0 = time.time()
    assert srv.stop(timeout=30) == 0
    for t in threads:
        t.join(30)
    assert len(got) == 5 and all(g == 200 for g in got), got


def test_prefer_wait_on_submit(api):
    """Prefer: wait=N answers 200 with the final monitor when the job ends within N s."""
    r = api.post("/v1/jobs", data=json.dumps({"workflow": "noop", "items": items(20, prefix=uniq("pw") + "-")}),
                 headers={"Content-Type": "application/json", "Prefer": "wait=30"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "Succeeded" and r.headers.get("Preference-Applied") == "wait=30"
    assert r.headers["Location"].endswith("/v1/jobs/" + r.json()["id"])


def test_prefer_wait_times_out_with_202(fresh_server):
    srv, c = slow_server(fresh_server)
    r = c.post("/v1/jobs", data=json.dumps({"workflow": "noop",
                                            "items": items(50000, prefix=uniq("pwt") + "-")}),
               headers={"Content-Type": "application/json", "Prefer": "wait=1"}, timeout=60)
    assert r.status_code == 202, r.text
    assert r.json()["status"] in ("NotStarted", "Running") and "Preference-Applied" not in r.headers
    assert r.headers.get("Retry-After") == "1"
    c.post("/v1/jobs/%s:cancel" % r.json()["id"])
