"""Retention: finished jobs show expiresAt and are removed after --retention-seconds."""
import datetime
import time

from conftest import Client, items, submitted, uniq, wait_until


def ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")


def test_finished_job_expires_and_is_removed(fresh_server):
    srv = fresh_server(args=["--retention-seconds", "2"])
    srv.start()
    c = Client(srv, srv.key_a)
    j = submitted(c.submit(items(5, prefix=uniq("ret") + "-")))
    assert j.get("expiresAt") is None  # not finished
    done = c.wait_job(j["id"])
    assert done["status"] == "Succeeded"
    assert done["expiresAt"], done
    delta = ts(done["expiresAt"]) - ts(done["completedAt"])
    assert delta == datetime.timedelta(seconds=2), done
    assert c.get("/v1/jobs/%s/items/0" % j["id"]).status_code == 200

    wait_until(lambda: c.get("/v1/jobs/" + j["id"]).status_code == 404, timeout=30,
               interval=0.2, what="the expired job to be removed")
    assert c.get("/v1/jobs/%s/items" % j["id"]).status_code == 404
    assert c.get("/v1/jobs/%s/items/0" % j["id"]).status_code == 404
    assert j["id"] not in [x["id"] for x in c.get("/v1/jobs").json()["value"]]


def test_running_job_is_never_removed(fresh_server):
    # one item per claim, each outcome fsynced: a job of many items runs for a while
    srv = fresh_server(args=["--retention-seconds", "1", "--workers", "1", "--batch", "1"])
    srv.start()
    c = Client(srv, srv.key_a)
    j = submitted(c.submit(items(50000, prefix=uniq("long") + "-")))
    start = time.time()
    seen_running_late = False
    while time.time() - start < 6:
        r = c.get("/v1/jobs/" + j["id"])
        if r.status_code == 404:
            break
        assert r.status_code == 200, r.text
        m = r.json()
        if m["status"] in ("Succeeded", "Failed", "Canceled"):
            break
        assert "expiresAt" not in m or m["expiresAt"] is None, m
        if time.time() - start > 3:
            seen_running_late = True
        time.sleep(0.2)
    assert seen_running_late, "the job finished too early to tell"
    assert c.get("/v1/jobs/%s/items/0" % j["id"]).status_code == 200
    assert c.post("/v1/jobs/%s:cancel" % j["id"]).status_code == 200
