"""A back-off an upstream asks for (429/503 + Retry-After) holds that upstream only:
tenants whose items go to other hosts through the same shared limit go on, and the
wait is capped (--max-upstream-backoff) whatever the upstream asked for."""
import json
import time

import pytest

from conftest import Client, items, make_workflow, submitted, uniq, wait_until
from upstream import Upstream


def http_step(url, **kw):
    return dict({"name": "push", "type": "http", "method": "POST", "url": url,
                 "limits": ["shop"], "retry": {"maxAttempts": 2, "backoffMs": 10}}, **kw)


@pytest.fixture
def two_upstreams():
    # Two hosts: the loopback net routes all of 127.0.0.0/8 to this machine.
    good, bad = Upstream("127.0.0.1"), Upstream("127.0.0.2")
    good.start()
    bad.start()
    yield good, bad
    good.stop()
    bad.stop()


@pytest.mark.parametrize("shared", [False, True], ids=["local", "store-buckets"])
def test_a_hosts_back_off_never_holds_other_hosts_of_a_shared_limit(fresh_server, two_upstreams,
                                                                    shared):
    good, bad = two_upstreams
    srv = fresh_server(args=["--outbound-allow", "127.0.0.0/8", "--workers", "2",
                             "--limits", json.dumps({"shop": {"rate": 50, "burst": 50}}),
                             "--max-upstream-backoff", "3"],
                       env={"SLUICE_LIMITS_SHARED": "1"} if shared else None)
    srv.key_b = srv.create_key("globex")
    srv.start()
    a, b = Client(srv, srv.key_a), Client(srv, srv.key_b)
    # B's upstream asks for an hour, once; after that it answers.
    bad.script("/b", [{"status": 429, "headers": {"Retry-After": "3600"}}, {"status": 200}],
               repeat_last=True)
    wb = make_workflow(b, [http_step(bad.url + "/b/{{ref}}")])
    wa = make_workflow(a, [http_step(good.url + "/a/{{ref}}")])

    jb = submitted(b.submit(items(1, prefix=uniq("b0") + "-"), workflow=wb))["id"]
    wait_until(lambda: bad.log("/b"), timeout=30, what="B's first request")
    t429 = time.time()
    # B's next items wait for B's upstream; the monitor says which upstream holds them
    jb2 = submitted(b.submit(items(10, prefix=uniq("b") + "-"), workflow=wb))["id"]
    # A's job through the same server limit, to another host, runs at once
    ja = submitted(a.submit(items(20, prefix=uniq("a") + "-"), workflow=wa))["id"]
    mon = a.wait_job(ja, timeout=60)
    assert mon["counts"]["succeeded"] == 20, mon
    a_done = time.time()
    seen = wait_until(lambda: (lambda m: m if "throttledBy" in m["throughput"] else None)(
        b.get("/v1/jobs/" + jb2).json()), timeout=10, what="B's job throttled")
    tb = seen["throughput"]["throttledBy"]
    assert tb["limit"] == "shop" and tb["reason"] == "upstream", tb
    assert tb["host"] == "127.0.0.2", tb

    # the hour is capped at 3 s: B's items go after it, not before
    assert b.wait_job(jb2, timeout=60)["counts"]["succeeded"] == 10
    first = b.wait_job(jb, timeout=60)
    assert first["counts"]["failed"] == 1  # an hour's Retry-After is not retried
    log = bad.log("/b")
    t0 = log[0]["time"]
    later = [e["time"] - t0 for e in log[1:]]
    assert len(later) == 10, later
    assert min(later) >= 2.5, later
    # and A was not held by it: its items reached its upstream before B's wait ended
    a_times = [e["time"] for e in good.log("/a")]
    assert len(a_times) == 20
    assert max(a_times) < t0 + min(later), (max(a_times) - t0, later)
    assert a_done - t429 < 60
