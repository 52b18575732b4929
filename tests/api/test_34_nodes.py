"""Several nodes on one PostgreSQL database (SLUICE_TEST_STORE=postgres only).

Three `sluice serve` nodes share one store; a job goes through a workflow with an http
step to the fake upstream and an upsert. One node is SIGKILLed mid-job, another is
SIGSTOPped past its lease and then continued. Afterwards every item is terminal and
applied once, counts agree with item states, the upstream saw repeated calls only for
items that were in flight at the faults (always with the item's own Idempotency-Key),
and the paused node's late completions were refused. Also: the database restarted
(`pg_ctl restart -m immediate`) during a job.

SLUICE_NODES_ITEMS sets the size of the fault job (default 50,000; `make test` runs a
smaller one to stay within its time budget)."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import (STORE_KIND, Client, FastUpstream, Server, counts_ok, list_all,
                      make_workflow, psql, results, submitted, uniq, wait_until)

pytestmark = pytest.mark.skipif(STORE_KIND != "postgres", reason="needs SLUICE_TEST_STORE=postgres")

N = int(os.environ.get("SLUICE_NODES_ITEMS", "50000"))
LEASE_MS = 6000
NODE_ARGS = ["--outbound-allow", "127.0.0.1/32", "--lease-ms", str(LEASE_MS), "--batch", "100",
             "--workers", "2"]


@pytest.fixture
def cluster():
    """Makes nodes on one fresh database; stops them all, then drops the database."""
    nodes = []
    import tempfile
    mk = lambda: Server(tmpdir=tempfile.mkdtemp(prefix="sluice-nodes-"), args=NODE_ARGS)
    first = mk()

    def make(n):
        for i in range(n):
            srv = first if not nodes else mk()
            if srv is not first:
                psql("postgres", "DROP DATABASE %s" % srv.store.rsplit("/", 1)[1])
                srv.store = first.store
            nodes.append(srv)
        return nodes

    yield make
    bad = []
    for srv in nodes:
        if srv.proc and srv.proc.poll() is None:
            os.kill(srv.proc.pid, signal.SIGCONT)
            rc = srv.stop()
            if rc != 0:
                bad.append("node %s exited with %s:\n%s" % (srv.port, rc, srv.read_log()[-3000:]))
    if not bad:
        for srv in nodes[1:]:
            if not os.environ.get("SLUICE_KEEP_TMP"):
                import shutil
                shutil.rmtree(srv.dir, ignore_errors=True)
        first.cleanup()
    assert not bad, "\n".join(bad)


def node_id(srv):
    for line in srv.read_log().splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if obj.get("msg") == "listening" and obj.get("node"):
            return obj["node"]
    raise AssertionError("no node id in the log of %s" % srv.port)


def claimed_items(store, node):
    """Indexes of the items in the claims a node holds now."""
    db = store.rsplit("/", 1)[1]
    out = psql(db, "SELECT lo, hi FROM claims WHERE node = '%s'" % node)
    held = set()
    for line in out.split():
        lo, hi = (int(x) for x in line.split("|"))
        held.update(range(lo, hi))
    return held


def done_count(c, jid):
    cnt = c.get("/v1/jobs/" + jid).json()["counts"]
    return cnt["succeeded"] + cnt["failed"] + cnt["skipped"]


class QuietUpstream(FastUpstream):
    """Connections of the killed node are reset mid-request: no tracebacks for those."""

    def start(self):
        port = super().start()
        self._server.handle_error = lambda request, client_address: None
        return port


def test_three_nodes_sigkill_and_sigstop(cluster):
    up = QuietUpstream()
    up.start()
    try:
        a, b, c3 = cluster(3)
        key = a.create_key("acme")
        for srv in (a, b, c3):
            srv.start()
        ids = {srv.port: node_id(srv) for srv in (a, b, c3)}
        assert len(set(ids.values())) == 3, ids
        ca = Client(a, key)
        coll = "nodes_" + uniq("c").replace("-", "_")
        wf = make_workflow(ca, [
            {"name": "push", "type": "http", "method": "POST", "url": up.url + "/n/{{ref}}",
             "body": {"ref": "{{ref}}"}, "timeoutMs": 30000,
             "retry": {"maxAttempts": 5, "backoffMs": 50}},
            {"name": "save", "type": "upsert", "collection": coll}])
        lines = "".join(json.dumps({"ref": "r%d" % i, "data": {"i": i}}) + "\n" for i in range(N))
        t0 = time.time()
        job = submitted(Client(b, key).submit_ndjson(lines, workflow=wf))  # any node accepts
        jid = job["id"]
        accept_s = time.time() - t0
        # every node works on it
        wait_until(lambda: done_count(ca, jid) >= N // 10, timeout=300, interval=0.05,
                   what="10% done")
        # SIGKILL mid-job, while it holds a claim: stopped first, so that the claim seen
        # is still the one it holds when it dies (a loaded machine may catch it between
        # two claims)
        in_flight = set()
        for _ in range(500):
            os.kill(b.proc.pid, signal.SIGSTOP)
            in_flight = claimed_items(a.store, ids[b.port])
            if in_flight:
                break
            os.kill(b.proc.pid, signal.SIGCONT)
            time.sleep(0.01)
        b.kill()
        assert in_flight, "the killed node held no claim (nothing in flight)"
        mark = done_count(ca, jid)
        wait_until(lambda: done_count(ca, jid) >= mark + N // 10, timeout=300, interval=0.05,
                   what="progress after the kill")
        os.kill(c3.proc.pid, signal.SIGSTOP)  # paused past its lease
        paused = claimed_items(a.store, ids[c3.port])
        time.sleep(LEASE_MS / 1000.0 + 2)
        os.kill(c3.proc.pid, signal.SIGCONT)
        in_flight |= paused
        final = ca.wait_job(jid, timeout=900)
        elapsed = time.time() - t0

        # every item terminal, none lost, counts agree with the item states
        cnt = counts_ok(final)
        assert final["status"] == "Succeeded" and final.get("outcome") == "AllSucceeded", final
        assert cnt["succeeded"] == N and cnt["total"] == N, cnt
        res = results(ca, jid)
        assert [x["index"] for x in res] == list(range(N))
        assert all(x["status"] == "Succeeded" for x in res)
        # no document version applied twice
        docs, _ = list_all(ca, "/v1/collections/" + coll, params={"limit": 1000})
        assert len(docs) == N, len(docs)
        twice = [(d["ref"], d["version"]) for d in docs if d["version"] != 1]
        assert not twice, twice[:10]
        # upstream: one key per item, calls repeated only for items in flight at a fault
        by_key = {}
        for e in up.log("/n/"):
            by_key.setdefault(e["idempotency_key"], []).append(e["path"])
        want = {"%s:%d:push" % (jid, i): "/n/r%d" % i for i in range(N)}
        assert set(by_key) == set(want), (len(by_key), len(want))
        repeated = set()
        for k, paths in by_key.items():
            assert set(paths) == {want[k]}, (k, paths)  # the item's own key, every time
            if len(paths) > 1:
                repeated.add(int(k.split(":")[1]))
        odd = sorted(repeated - in_flight)
        if odd:
            from conftest import item_detail
            detail = [(i, [(e.get("code"), e.get("message")) for e in item_detail(ca, jid, i)
                           ["events"] if e.get("level") != "info"]) for i in odd[:3]]
            raise AssertionError("%d items called again that were not in flight at a fault: "
                                 "%r ...; their events: %r" % (len(odd), odd[:10], detail))
        # the paused node's late completions were refused: its lease was taken over (token
        # fence), or its transaction was ended while it was stopped (idle timeout)
        if paused:
            wait_until(lambda: any(m in c3.read_log() for m in (
                "lease lost", "completing a batch failed", "claim failed")), timeout=60,
                what="the paused node to find its leases lost")
        print("nodes: %d items, accept %.2f s, done in %.1f s, %d in flight at the faults, "
              "%d repeated upstream calls" % (N, accept_s, elapsed, len(in_flight), len(repeated)))
    finally:
        up.stop()


def test_database_restart_mid_job(cluster):
    """pg_ctl restart -m immediate during a job: nodes reconnect, nothing is lost."""
    pg_bin, pg_data = os.environ.get("SLUICE_TEST_PG_BIN"), os.environ.get("SLUICE_TEST_PG_DATA")
    if not (pg_bin and pg_data):
        pytest.skip("needs the cluster of scripts/pg-test.sh")
    a, b = cluster(2)
    key = a.create_key("acme")
    a.start()
    b.start()
    ca = Client(a, key)
    n = 20000
    coll = "restart_" + uniq("c").replace("-", "_")
    job = submitted(ca.submit([{"ref": "r%d" % i, "data": {"i": i}} for i in range(n)],
                              workflow=coll + ".upsert"))
    jid = job["id"]
    wait_until(lambda: done_count(ca, jid) > 0, timeout=120, interval=0.02, what="progress")
    run = os.environ.get("SLUICE_TEST_PG_RUN", "").split()
    # -l: the restarted server must not inherit our pipes
    log = os.path.join(os.path.dirname(pg_data), "server.log")
    out = subprocess.run(run + [os.path.join(pg_bin, "pg_ctl"), "-D", pg_data, "-l", log, "-m",
                                "immediate", "-w", "-t", "60", "restart"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
                         cwd="/tmp")
    assert out.returncode == 0, "pg_ctl restart failed"
    final = ca.wait_job(jid, timeout=300)
    cnt = counts_ok(final)
    assert final["status"] == "Succeeded" and cnt["succeeded"] == n, final
    res = results(ca, jid)
    assert [x["index"] for x in res] == list(range(n))
    docs, _ = list_all(ca, "/v1/collections/" + coll, params={"limit": 1000})
    assert len(docs) == n
    assert all(d["version"] == 1 for d in docs), [d for d in docs if d["version"] != 1][:5]
    for srv in (a, b):
        assert requests_ok(srv)


def requests_ok(srv):
    import requests
    return requests.get(srv.url + "/healthz", timeout=10).status_code == 200


def max_in_window(times, window=1.0):
    times = sorted(times)
    best, lo = 0, 0
    for hi in range(len(times)):
        while times[hi] - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_limits_hold_across_nodes(cluster, upstream):
    """A rate of 10 requests/s and a concurrency cap of 2 are the cluster's, not each
    node's: three nodes with jobs of two tenants submitted through each of them."""
    limits = {"mkt": {"key": "{host}", "rate": 10, "burst": 1}, "two": {"concurrency": 2}}
    nodes = cluster(3)
    for srv in nodes:
        srv.args += ["--limits", json.dumps(limits)]
    key_a, key_b = nodes[0].create_key("acme"), nodes[0].create_key("globex")
    for srv in nodes:
        srv.start()
    upstream.script("/slow", [{"delay_ms": 150}], repeat_last=True)
    steps = [{"name": "push", "type": "http", "method": "POST", "limits": ["mkt"],
              "url": upstream.url + "/push/{{ref}}"},
             {"name": "hold", "type": "http", "method": "POST", "limits": ["two"],
              "url": upstream.url + "/slow/{{ref}}"}]
    wf_a = make_workflow(Client(nodes[0], key_a), steps)
    wf_b = make_workflow(Client(nodes[0], key_b), steps)
    jobs = []
    for i, srv in enumerate(nodes):
        for key, wf in ((key_a, wf_a), (key_b, wf_b)):
            c = Client(srv, key)
            its = [{"ref": "%s-%d-%d" % (uniq("x"), i, k), "data": {}} for k in range(8)]
            jobs.append((c, submitted(c.submit(its, workflow=wf))["id"]))
    for c, jid in jobs:
        final = c.wait_job(jid, timeout=300)
        assert final["status"] == "Succeeded" and final["counts"]["succeeded"] == 8, final
    push = upstream.log("/push")
    assert len(push) == 48
    # arrival stamps of a loaded machine: a little slack over rate + burst - 1
    assert max_in_window([e["time"] for e in push]) <= 12, sorted(e["time"] for e in push)
    assert upstream.stats()["max_in_flight"] <= 2
