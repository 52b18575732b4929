#!/usr/bin/env python3
"""sluice benchmark: accept time, end-to-end time, items/s and peak RSS.

Each run starts a fresh server on a fresh SQLite store (synchronous=FULL, the
default), submits N generated products as one NDJSON request with curl, and polls
the job until it is terminal. Accept time = curl's total time for the POST (request
start to 202 received). End-to-end = request start to the moment the client sees the
job ended (polled every 10 ms, up to 100 ms in long runs), as graphile-worker's bench
sees its last job; not the job's completedAt, which is the start of the job's last
transaction and so leaves that transaction's own time out (30 ms and more on
PostgreSQL). Peak RSS = the server's VmHWM after the run. Medians of --runs runs.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, key):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + key})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def poll_every(started):
    """The next poll's wait: 10 ms, growing to 100 ms with a long job, so that the end
    is seen within 2% of the run and polling costs the server little."""
    return min(0.1, max(0.01, (time.time() - started) / 50))


def wait_terminal(url, key, job):
    """Polls the job until it ends: (its monitor, time.time() when the end was seen)."""
    started = time.time()
    while True:
        j = get(url + "/v1/jobs/" + job, key)
        if j["status"] in ("Succeeded", "Failed", "Canceled"):
            return j, time.time()
        time.sleep(poll_every(started))


def parse_ts(s):
    # "2026-11-29T22:28:49.123Z" -> epoch seconds
    import datetime
    dt = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


def start_server(binary, d, workers, extra=()):
    """A fresh server on a fresh store in d: returns (process, url, key, log file)."""
    store = "sqlite:" + os.path.join(d, "b.db")
    key = subprocess.run([binary, "keys", "create", "--tenant", "bench", "--store", store],
                         capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    log = open(os.path.join(d, "log"), "wb")
    proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:%d" % port, "--store", store,
                             "--workers", str(workers)] + list(extra), stdout=log, stderr=log)
    url = "http://127.0.0.1:%d" % port
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            break
        except Exception:
            time.sleep(0.05)
    return proc, url, key, log


def io_bytes_written(pid):
    """Bytes the process caused to be written to storage (write_bytes of /proc/PID/io:
    the store's pages, its WAL or journal, fsyncs included, sockets not)."""
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def exit_bytes_written(proc, timeout=60):
    """Waits for proc (a Popen) to exit; returns the bytes it caused to be written in
    its whole life (ru_oublock of wait4 counts write_bytes in 512-byte blocks)."""
    deadline = time.time() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return ru.ru_oublock * 512
        if time.time() > deadline:
            proc.kill()
        time.sleep(0.02)


def one_run(binary, items_file, n, workflow, workers):
    """One job of n items on a fresh server: (accept s, end-to-end s, items/s, peak MB,
    bytes written per item, server CPU ms per 1,000 items). CPU counts from just before
    the submit to the job's end; bytes from just before the submit to the server's exit,
    so the WAL pages not yet copied into the database when the job ended count too (the
    exit's checkpoint copies them; without it the figure moved by 20% with the moment
    of the last checkpoint)."""
    d = tempfile.mkdtemp(prefix="sluice-bench-")
    proc = None
    try:
        proc, url, key, log = start_server(binary, d, workers)
        w0, c0 = io_bytes_written(proc.pid), cpu_seconds(proc.pid)
        t0 = time.time()
        out = subprocess.run(["curl", "-s", "-o", os.path.join(d, "resp"), "-w", "%{http_code} %{time_total}",
                              "-H", "Authorization: Bearer " + key, "-H", "Content-Type: application/x-ndjson",
                              "--data-binary", "@" + items_file,
                              url + "/v1/jobs?workflow=" + workflow], capture_output=True, text=True, check=True)
        code, accept = out.stdout.split()
        if code != "202":
            raise SystemExit("submit failed: %s %s" % (code, open(os.path.join(d, "resp")).read()))
        job = json.load(open(os.path.join(d, "resp")))["id"]
        j, seen = wait_terminal(url, key, job)
        e2e = seen - t0
        w1, c1 = io_bytes_written(proc.pid), cpu_seconds(proc.pid)
        rss_kb = 0
        with open("/proc/%d/status" % proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    rss_kb = int(line.split()[1])
        proc.send_signal(signal.SIGTERM)
        w_exit = exit_bytes_written(proc)
        log.close()
        assert j["counts"]["succeeded"] == n, j["counts"]
        return (float(accept), e2e, n / e2e, rss_kb / 1024.0, (w_exit - w0) / n,
                (c1 - c0) * 1e6 / n)
    finally:
        if proc is not None and proc.poll() is None:  # a failed run: stop its server too
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        shutil.rmtree(d, ignore_errors=True)


PIPELINE = {"steps": [
    {"name": "check", "type": "validate",
     "schema": {"type": "object", "required": ["sku", "price"],
                "properties": {"price": {"type": "object", "required": ["amount"],
                                         "properties": {"amount": {"type": "integer", "minimum": 0}}}}}},
    {"name": "shape", "type": "map",
     "ops": [{"op": "set", "path": "label", "value": "{{data.title}} ({{data.attributes.color}})"},
             {"op": "remove", "path": "description"}]},
    {"name": "save", "type": "upsert", "collection": "products"},
    {"name": "push", "type": "http", "method": "PUT", "url": "http://127.0.0.1:%d/items/{{ref}}",
     "timeoutMs": 10000, "retry": {"maxAttempts": 3, "backoffMs": 100}}]}


def build_fast_upstream():
    exe = os.path.join(ROOT, "build", "bench", "fast_upstream")
    os.makedirs(os.path.dirname(exe), exist_ok=True)
    subprocess.run(["cc", "-O2", "-pthread", "-o", exe, os.path.join(ROOT, "bench", "fast_upstream.c"),
                    "-lmicrohttpd"], check=True)
    return exe


def pipeline_run(binary, items_file, n, workers):
    """W4: validate -> map -> upsert -> http against bench/fast_upstream.c on loopback."""
    exe = build_fast_upstream()
    up_port = free_port()
    up = subprocess.Popen([exe, str(up_port)], stdout=subprocess.PIPE)
    up.stdout.readline()  # "ready"
    d = tempfile.mkdtemp(prefix="sluice-bench-")
    try:
        proc, url, key, log = start_server(binary, d, workers, ["--outbound-allow", "127.0.0.1/32"])
        body = json.dumps(PIPELINE).replace("%d", str(up_port)).encode()
        req = urllib.request.Request(url + "/v1/workflows/bench-pipeline", data=body, method="PUT",
                                     headers={"Authorization": "Bearer " + key})
        urllib.request.urlopen(req, timeout=30).read()
        t0 = time.time()
        out = subprocess.run(["curl", "-s", "-o", os.path.join(d, "resp"), "-w", "%{http_code}",
                              "-H", "Authorization: Bearer " + key, "-H", "Content-Type: application/x-ndjson",
                              "--data-binary", "@" + items_file,
                              url + "/v1/jobs?workflow=bench-pipeline"], capture_output=True, text=True, check=True)
        if out.stdout != "202":
            raise SystemExit("submit failed: %s" % open(os.path.join(d, "resp")).read())
        job = json.load(open(os.path.join(d, "resp")))["id"]
        j, seen = wait_terminal(url, key, job)
        e2e = seen - t0
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
        assert j["counts"]["succeeded"] == n, j["counts"]
        return e2e, n / e2e
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)
        shutil.rmtree(d, ignore_errors=True)


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (from /proc)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def put_json(url, key, path, doc):
    req = urllib.request.Request(url + path, data=json.dumps(doc).encode(), method="PUT",
                                 headers={"Authorization": "Bearer " + key})
    urllib.request.urlopen(req, timeout=30).read()


def submit_and_wait(url, key, d, items_file, workflow):
    """Submits items_file to workflow; returns (monitor at the end, seconds from the
    202 to the end seen by polling (poll_every), every monitor phase seen while it ran)."""
    out = subprocess.run(["curl", "-s", "-o", os.path.join(d, "resp"), "-w", "%{http_code}",
                          "-H", "Authorization: Bearer " + key,
                          "-H", "Content-Type: application/x-ndjson", "--data-binary", "@" + items_file,
                          url + "/v1/jobs?workflow=" + workflow], capture_output=True, text=True,
                         check=True)
    if out.stdout != "202":
        raise SystemExit("submit failed: %s" % open(os.path.join(d, "resp")).read())
    t0 = time.time()
    job = json.load(open(os.path.join(d, "resp")))["id"]
    phases = set()
    while True:
        j = get(url + "/v1/jobs/" + job, key)
        phases.add(j.get("phase"))
        if j["status"] in ("Succeeded", "Failed", "Canceled"):
            return j, time.time() - t0, phases
        time.sleep(poll_every(t0))


def limited_run(binary, items_file, n, rate, workers):
    """W5: an http step limited to `rate` requests/s (burst 1) against the loopback
    upstream. Returns achieved requests/s over the job (first to last item)."""
    exe = build_fast_upstream()
    up_port = free_port()
    up = subprocess.Popen([exe, str(up_port)], stdout=subprocess.PIPE)
    up.stdout.readline()
    d = tempfile.mkdtemp(prefix="sluice-bench-")
    try:
        limits = json.dumps({"mkt": {"key": "{host}", "rate": rate, "burst": 1}})
        proc, url, key, log = start_server(binary, d, workers,
                                           ["--outbound-allow", "127.0.0.1/32", "--limits", limits])
        put_json(url, key, "/v1/workflows/limited", {"steps": [
            {"name": "push", "type": "http", "method": "PUT", "limits": ["mkt"],
             "url": "http://127.0.0.1:%d/items/{{ref}}" % up_port}]})
        j, e2e, phases = submit_and_wait(url, key, d, items_file, "limited")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
        assert j["counts"]["succeeded"] == n, j["counts"]
        assert "Throttled" in phases, phases
        # n requests at `rate` take (n - 1) / rate seconds from the first to the last
        return (n - 1) / e2e
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)
        shutil.rmtree(d, ignore_errors=True)


def build_limited_upstream():
    exe = os.path.join(ROOT, "build", "bench", "limited_upstream")
    os.makedirs(os.path.dirname(exe), exist_ok=True)
    subprocess.run(["cc", "-O2", "-pthread", "-o", exe,
                    os.path.join(ROOT, "bench", "limited_upstream.c"), "-lm"], check=True)
    return exe


def learned_run(binary, items_file, n, workers, mode, params):
    """W7: an http step with no limit configured in sluice against a loopback upstream
    that enforces its own (bench/limited_upstream.c, `mode` with `params`). Returns
    (requests let through per second from the first to the last, the share of requests
    answered 429, the source sluice's /metrics names)."""
    exe = build_limited_upstream()
    up_port = free_port()
    up = subprocess.Popen([exe, str(up_port), mode] + [str(p) for p in params],
                          stdout=subprocess.PIPE)
    up.stdout.readline()
    d = tempfile.mkdtemp(prefix="sluice-bench-")
    try:
        proc, url, key, log = start_server(binary, d, workers, ["--outbound-allow", "127.0.0.1/32"])
        put_json(url, key, "/v1/workflows/learned", {"steps": [
            {"name": "push", "type": "http", "method": "PUT",
             "url": "http://127.0.0.1:%d/items/{{ref}}" % up_port,
             "retry": {"maxAttempts": 10, "backoffMs": 200}}]})
        j, e2e, phases = submit_and_wait(url, key, d, items_file, "learned")
        req = urllib.request.Request(url + "/metrics")
        with urllib.request.urlopen(req, timeout=30) as r:
            metrics = r.read().decode()
        src = ",".join(sorted({line.split('source="')[1].split('"')[0]
                               for line in metrics.splitlines()
                               if line.startswith("sluice_upstream_learned_rate{")})) or "-"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
        assert j["counts"]["succeeded"] == n, j["counts"]
        with urllib.request.urlopen("http://127.0.0.1:%d/stats" % up_port, timeout=30) as r:
            st = json.loads(r.read())
        rate = (st["ok"] - 1) / (st["last"] - st["first"])
        return rate, st["throttled"] / (st["ok"] + st["throttled"]), st["throttled"], src
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)
        shutil.rmtree(d, ignore_errors=True)


def batch_runs(binary, items_file, n, workers, size):
    """W8: the same job through one http step per item, through one batched http step
    (`size` items per request, the upstream echoing each batch back as its results) and
    through a noop step. Returns (items/s unbatched, batched, noop)."""
    exe = build_fast_upstream()
    up_port = free_port()
    up = subprocess.Popen([exe, str(up_port)], stdout=subprocess.PIPE)
    up.stdout.readline()
    base = "http://127.0.0.1:%d" % up_port
    steps = {
        "unbatched": {"name": "push", "type": "http", "method": "PUT",
                      "url": base + "/items/{{ref}}"},
        "batched": {"name": "push", "type": "http", "method": "POST", "url": base + "/echo",
                    "batch": {"maxItems": size, "body": {"products": "{{items}}"},
                              "results": "/products"}},
        "noop": {"name": "push", "type": "noop"},
    }
    out = []
    try:
        for kind in ("unbatched", "batched", "noop"):
            d = tempfile.mkdtemp(prefix="sluice-bench-")
            try:
                proc, url, key, log = start_server(binary, d, workers,
                                                   ["--outbound-allow", "127.0.0.1/32"])
                put_json(url, key, "/v1/workflows/w8", {"steps": [steps[kind]]})
                j, e2e, _ = submit_and_wait(url, key, d, items_file, "w8")
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
                log.close()
                assert j["counts"]["succeeded"] == n, (kind, j["counts"])
                out.append(n / e2e)
            finally:
                shutil.rmtree(d, ignore_errors=True)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)
    return tuple(out)


def scheduler_cost(binary, items_file, n, rate, workers):
    """The scheduler's cost at `rate` items/s: server CPU per 1,000 items of a one-noop-
    step workflow with an item limit of `rate`/s, against the same workflow unlimited.
    Returns (achieved items/s limited, CPU ms per 1,000 items limited, unlimited)."""
    out = []
    for limited in (True, False):
        d = tempfile.mkdtemp(prefix="sluice-bench-")
        try:
            # burst: 1/100 s worth, so the achieved rate shows the pace, not the burst
            extra = (["--limits", json.dumps({"pace": {"rate": rate, "burst": max(1, rate // 100)}})]
                     if limited else [])
            proc, url, key, log = start_server(binary, d, workers, extra)
            wf = {"steps": [{"type": "noop"}]}
            if limited:
                wf["limits"] = ["pace"]
            put_json(url, key, "/v1/workflows/w", wf)
            cpu0 = cpu_seconds(proc.pid)
            j, e2e, _ = submit_and_wait(url, key, d, items_file, "w")
            cpu = cpu_seconds(proc.pid) - cpu0
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            log.close()
            assert j["counts"]["succeeded"] == n, j["counts"]
            out.append((n / e2e, cpu * 1e6 / n))
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return out[0][0], out[0][1], out[1][1]


def cluster_cpu_seconds():
    """CPU of the PostgreSQL cluster of scripts/pg-test.sh: the postmaster, its live
    children (backends, walwriter, checkpointer, ...) and the children it has reaped
    (cutime/cstime), or None when $SLUICE_TEST_PG_DATA names no running cluster."""
    try:
        with open(os.path.join(os.environ["SLUICE_TEST_PG_DATA"], "postmaster.pid")) as f:
            pm = int(f.readline())
        with open("/proc/%d/stat" % pm) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (KeyError, OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pm:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def pg_run(binary, items_file, n, workflow, workers, nodes):
    """One run on PostgreSQL: a fresh database on the cluster of scripts/pg-test.sh
    ($SLUICE_TEST_PG_URL), `nodes` servers on it, the submit to the first, every node
    working. Returns (accept s, end-to-end s, items/s, database CPU ms per 1,000
    items, nodes' CPU ms per 1,000 items), CPU from just before the submit to the job's
    end."""
    base = os.environ["SLUICE_TEST_PG_URL"]
    psql = os.path.join(os.environ.get("SLUICE_TEST_PG_BIN", "/usr/bin"), "psql")
    db = "bench_%d_%d" % (os.getpid(), int(time.time() * 1000))
    subprocess.run([psql, "-X", "-q", base + "postgres", "-c", "CREATE DATABASE " + db], check=True)
    store = base + db
    d = tempfile.mkdtemp(prefix="sluice-bench-")
    procs = []
    try:
        key = subprocess.run([binary, "keys", "create", "--tenant", "bench", "--store", store],
                             capture_output=True, text=True, check=True).stdout.strip()
        urls = []
        for i in range(nodes):
            port = free_port()
            log = open(os.path.join(d, "log%d" % i), "wb")
            procs.append((subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:%d" % port,
                                            "--store", store, "--workers", str(workers)],
                                           stdout=log, stderr=log), log))
            urls.append("http://127.0.0.1:%d" % port)
        for url in urls:
            for _ in range(400):
                try:
                    urllib.request.urlopen(url + "/healthz", timeout=1)
                    break
                except Exception:
                    time.sleep(0.05)
        url = urls[0]
        db0 = cluster_cpu_seconds()
        node0 = sum(cpu_seconds(p.pid) for p, _ in procs)
        t0 = time.time()
        out = subprocess.run(["curl", "-s", "-o", os.path.join(d, "resp"), "-w", "%{http_code} %{time_total}",
                              "-H", "Authorization: Bearer " + key, "-H", "Content-Type: application/x-ndjson",
                              "--data-binary", "@" + items_file,
                              url + "/v1/jobs?workflow=" + workflow], capture_output=True, text=True, check=True)
        code, accept = out.stdout.split()
        if code != "202":
            raise SystemExit("submit failed: %s %s" % (code, open(os.path.join(d, "resp")).read()))
        job = json.load(open(os.path.join(d, "resp")))["id"]
        j, seen = wait_terminal(url, key, job)
        e2e = seen - t0
        db1 = cluster_cpu_seconds()
        node1 = sum(cpu_seconds(p.pid) for p, _ in procs)
        assert j["counts"]["succeeded"] == n, j["counts"]
        db_ms = (db1 - db0) * 1e6 / n if db0 is not None and db1 is not None else float("nan")
        return float(accept), e2e, n / e2e, db_ms, (node1 - node0) * 1e6 / n
    finally:
        for proc, log in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, log in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run([psql, "-X", "-q", base + "postgres", "-c",
                        "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db])


def pg_main(a):
    fsync = "on" if "fsync=on" in os.environ.get("SLUICE_TEST_PG_OPTS", "") else "off"
    print("sluice bench on PostgreSQL: %d runs each, workers=%d per node, a throwaway "
          "cluster on this machine (fsync %s), %s" % (a.runs, a.workers, fsync,
                                                      time.strftime("%Y-%m-%d %H:%M")))
    print("%-18s %8s %6s %10s %12s %12s %10s %12s %12s" % (
        "workflow", "items", "nodes", "accept s", "end-to-end s", "items/s", "x 1 node",
        "DB CPU ms/1k", "node ms/1k"))
    for n in [int(x) for x in a.sizes.split(",") if x]:
        items_file = ensure_items(n)
        for wf in a.workflows.split(","):
            one = None
            for nodes in [int(x) for x in a.pg_nodes.split(",")]:
                runs = [pg_run(a.bin, items_file, n, wf, a.workers, nodes) for _ in range(a.runs)]
                med = lambda i: statistics.median(r[i] for r in runs)
                one = med(2) if one is None else one
                print("%-18s %8d %6d %10.3f %12.3f %12.0f %10.2f %12.1f %12.1f" %
                      (wf, n, nodes, med(0), med(1), med(2), med(2) / one, med(3), med(4)),
                      flush=True)


def ensure_items(n):
    outdir = os.path.join(ROOT, "bench", "out")
    os.makedirs(outdir, exist_ok=True)
    items_file = os.path.join(outdir, "items-%d.ndjson" % n)
    if not os.path.exists(items_file):
        with open(items_file, "w") as f:
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts/sample-items.py"), str(n)],
                           stdout=f, check=True)
    return items_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/rel/sluice"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="20000,200000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workflows", default="noop,products.upsert")
    ap.add_argument("--pipeline-items", type=int, default=20000,
                    help="items for the W4 pipeline run (0 = skip)")
    ap.add_argument("--limit-rates", default="50,500",
                    help="W5: http steps limited to these requests/s, 10 s of work each (\"\" = skip)")
    ap.add_argument("--scheduler-rate", type=int, default=10000,
                    help="W6: an item limit of this many items/s, 100,000 items (0 = skip)")
    ap.add_argument("--pg-nodes", default="",
                    help="PostgreSQL runs only, with these node counts (\"1,3\"); needs "
                         "SLUICE_TEST_PG_URL (bench/run starts a cluster with scripts/pg-test.sh)")
    ap.add_argument("--batch-items", type=int, default=20000,
                    help="W8: items of the batched / unbatched / noop http runs (0 = skip)")
    ap.add_argument("--batch-size", type=int, default=100, help="W8: items per batched request")
    ap.add_argument("--learned-items", type=int, default=5000,
                    help="W7: items per learned-pacing run, one per upstream kind (0 = skip)")
    ap.add_argument("--learned-modes", default="window,shopify,hidden,overload",
                    help="W7: the upstreams to run (window, shopify, hidden, overload)")
    ap.add_argument("--learned-rate", type=int, default=200,
                    help="W7: the upstreams' allowed requests/s (window quota per 1 s, the "
                         "leaky bucket's drain, the hidden token rate)")
    a = ap.parse_args()
    if a.pg_nodes:
        pg_main(a)
        return
    outdir = os.path.join(ROOT, "bench", "out")
    os.makedirs(outdir, exist_ok=True)
    print("sluice bench: %d runs each, workers=%d, SQLite synchronous=FULL, %s" %
          (a.runs, a.workers, time.strftime("%Y-%m-%d %H:%M")))
    print("%-18s %8s %10s %12s %12s %10s %12s %12s" % ("workflow", "items", "accept s", "end-to-end s",
                                                   "items/s", "peak MB", "bytes/item", "CPU ms/1k"))
    for n in [int(x) for x in a.sizes.split(",") if x]:
        items_file = os.path.join(outdir, "items-%d.ndjson" % n)
        if not os.path.exists(items_file):
            with open(items_file, "w") as f:
                subprocess.run([sys.executable, os.path.join(ROOT, "scripts/sample-items.py"), str(n)],
                               stdout=f, check=True)
        mb = os.path.getsize(items_file) / 1e6
        for wf in a.workflows.split(","):
            runs = [one_run(a.bin, items_file, n, wf, a.workers) for _ in range(a.runs)]
            med = lambda i: statistics.median(r[i] for r in runs)
            print("%-18s %8d %10.3f %12.3f %12.0f %10.1f %12.0f %12.1f   (body %.1f MB)" %
                  (wf, n, med(0), med(1), med(2), med(3), med(4), med(5), mb), flush=True)
    if a.pipeline_items:
        n = a.pipeline_items
        items_file = os.path.join(outdir, "items-%d.ndjson" % n)
        if not os.path.exists(items_file):
            with open(items_file, "w") as f:
                subprocess.run([sys.executable, os.path.join(ROOT, "scripts/sample-items.py"), str(n)],
                               stdout=f, check=True)
        runs = [pipeline_run(a.bin, items_file, n, a.workers) for _ in range(a.runs)]
        print("%-18s %8d %10s %12.3f %12.0f   (validate -> map -> upsert -> http to the "
              "loopback upstream)" % ("W4 pipeline", n, "-", statistics.median(r[0] for r in runs),
                                         statistics.median(r[1] for r in runs)), flush=True)
    for rate in [int(x) for x in a.limit_rates.split(",") if x]:
        n = rate * 10
        items_file = ensure_items(n)
        runs = [limited_run(a.bin, items_file, n, rate, a.workers) for _ in range(a.runs)]
        got = statistics.median(runs)
        print("%-18s %8d %10s %12s %12.1f   (http step limited to %d/s: achieved/configured "
              "%.3f)" % ("W5 limited", n, "-", "-", got, rate, got / rate), flush=True)
    if a.scheduler_rate:
        n = 100000
        items_file = ensure_items(n)
        runs = [scheduler_cost(a.bin, items_file, n, a.scheduler_rate, a.workers)
                for _ in range(a.runs)]
        got = statistics.median(r[0] for r in runs)
        lim_cpu = statistics.median(r[1] for r in runs)
        free_cpu = statistics.median(r[2] for r in runs)
        print("%-18s %8d %10s %12s %12.0f   (item limit %d/s: achieved/configured %.3f; server "
              "CPU %.1f ms per 1,000 items limited vs %.1f unlimited)" %
              ("W6 scheduler", n, "-", "-", got, a.scheduler_rate, got / a.scheduler_rate,
               lim_cpu, free_cpu), flush=True)
    if a.learned_items:
        n, r = a.learned_items, a.learned_rate
        items_file = ensure_items(n)
        # Shopify REST leaks 2/s from a bucket of 40; scaled up here (40 @ r/s) so a run
        # takes n / r seconds, not n / 2.
        for label, mode, params in (("published window", "window", (r,)),
                                    ("leaky bucket 40", "shopify", (40, r)),
                                    ("hidden rate", "hidden", (r, 10)),
                                    ("overload: 4 at once, each %.0f ms" % (4000.0 / r),
                                     "overload", (4, 4000.0 / r))):
            if mode not in a.learned_modes.split(","):
                continue
            runs = [learned_run(a.bin, items_file, n, a.workers, mode, params)
                    for _ in range(a.runs)]
            got = statistics.median(x[0] for x in runs)
            share = statistics.median(x[1] for x in runs)
            n429 = statistics.median(x[2] for x in runs)
            print("%-18s %8d %10s %12s %12.1f   (%s, allowed %d/s, nothing configured: "
                  "achieved/allowed %.3f, %ss %d = %.2f%%, learned from %s)" %
                  ("W7 learned", n, "-", "-", got, label, r, got / r,
                   "503" if mode == "overload" else "429", n429, 100 * share,
                   runs[-1][3]), flush=True)
    if a.batch_items:
        n = a.batch_items
        items_file = ensure_items(n)
        runs = [batch_runs(a.bin, items_file, n, a.workers, a.batch_size) for _ in range(a.runs)]
        un, ba, no = (statistics.median(r[i] for r in runs) for i in range(3))
        print("%-18s %8d %10s %12s %12.0f   (batches of %d: %.0f items/s one request per item, "
              "%.0f with a noop step; batched/unbatched %.2f, batched/noop %.2f)" %
              ("W8 batched http", n, "-", "-", ba, a.batch_size, un, no, ba / un, ba / no),
              flush=True)


if __name__ == "__main__":
    main()
