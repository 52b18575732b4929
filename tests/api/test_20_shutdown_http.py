"""Graceful shutdown while http steps wait on a slow upstream: the server stops at
once instead of waiting out timeouts and retries, gives the batch back, and the next
run repeats the calls with the same Idempotency-Keys."""
import time

from conftest import Client, make_workflow, submitted, uniq


def test_sigterm_cuts_slow_http_steps_and_the_job_resumes(fresh_server, upstream):
    srv = fresh_server(args=["--outbound-allow", "127.0.0.1/32", "--workers", "1"])
    srv.start()
    c = Client(srv, srv.key_a)
    # every first call per key hangs 8 s (a stop must not wait for it), later calls answer
    upstream.script("/slow", [{"delay_ms": 8000}, {"status": 200}], per_key=True)
    wf = make_workflow(c, [{"name": "push", "type": "http", "method": "POST",
                            "url": upstream.url + "/slow/{{ref}}", "timeoutMs": 60000,
                            "retry": {"maxAttempts": 3, "backoffMs": 10}}])
    job = submitted(c.submit([{"ref": "r%d" % i, "data": {"i": i}} for i in range(5)],
                             workflow=wf))
    deadline = time.time() + 15
    while upstream.stats()["in_flight"] < 5 and time.time() < deadline:
        time.sleep(0.05)
    assert upstream.stats()["in_flight"] == 5, upstream.stats()
    t0 = time.time()
    assert srv.stop(timeout=15) == 0
    assert time.time() - t0 < 15  # bounded by the stop timeout above, not a speed claim
    srv.start()
    m = c.wait_job(job["id"], timeout=60)
    assert m["status"] == "Succeeded" and m["counts"]["succeeded"] == 5, m
    # the hanging first calls are logged when their delay ends
    deadline = time.time() + 30
    while len(upstream.log("/slow")) < 10 and time.time() < deadline:
        time.sleep(0.1)
    calls = upstream.log("/slow")
    keys = {}
    for e in calls:
        keys.setdefault(e["idempotency_key"], []).append(e)
    assert len(keys) == 5, keys.keys()
    for k, es in keys.items():
        assert k.startswith(job["id"] + ":") and k.endswith(":push"), k
        assert len(es) >= 2, (k, es)  # cut at shutdown, repeated after the restart
