#!/usr/bin/env python3
"""Load while a big job runs (issue 7): wrk drives status polls, item pages and
single-entity requests at a high rate while a 1,000,000-item upsert job is processed.

Two runs on fresh stores: the job alone, then the job under load. Reports p50/p99
latency of each kind of request (wrk --latency), the job's items/s in both runs (so
what the polling costs the processing shows) and the server's peak RSS (VmHWM).
The tenant request rate limit is off for the run (--tenant-rate 0): the point is the
server's capacity, not the limiter's refusals.

usage: bench/load.py [--bin build/rel/sluice] [--items 1000000] [--seconds 20]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, ensure_items, get, parse_ts, start_server  # noqa: E402

PUT_LUA = """
counter = 0
request = function()
  counter = counter + 1
  local body = '{"sku": "load-' .. counter .. '", "price": {"amount": ' .. counter .. '}}'
  return wrk.format("PUT", "/v1/collections/single/load-" .. (counter % 1000), nil, body)
end
"""


def peak_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def latency(out):
    """p50 and p99 in ms from wrk --latency output, and requests/s."""
    def ms(s):
        v, unit = re.match(r"([\d.]+)(us|ms|s)", s).groups()
        return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return (ms(p50.group(1)) if p50 else -1, ms(p99.group(1)) if p99 else -1,
            float(rps.group(1)) if rps else 0, int(non2xx.group(1)) if non2xx else 0)


def run(binary, items_file, n, seconds, load, conns=2):
    d = tempfile.mkdtemp(prefix="sluice-load-")
    try:
        proc, url, key, log = start_server(binary, d, 2, ["--tenant-rate", "0"])
        out = subprocess.run(["curl", "-s", "-o", os.path.join(d, "resp"), "-w", "%{http_code}",
                              "-H", "Authorization: Bearer " + key,
                              "-H", "Content-Type: application/x-ndjson",
                              "--data-binary", "@" + items_file,
                              url + "/v1/jobs?workflow=products.upsert"],
                             capture_output=True, text=True, check=True)
        if out.stdout != "202":
            raise SystemExit("submit failed: %s" % open(os.path.join(d, "resp")).read())
        t0 = time.time()
        job = json.load(open(os.path.join(d, "resp")))["id"]
        results = {}
        if load:
            lua = os.path.join(d, "put.lua")
            with open(lua, "w") as f:
                f.write(PUT_LUA)
            auth = ["-H", "Authorization: Bearer " + key]
            kinds = {
                "status poll": [url + "/v1/jobs/" + job],
                "item page": [url + "/v1/jobs/%s/items?limit=100&after=5000" % job],
                "single GET": [url + "/v1/collections/products/" + first_ref(items_file)],
                "single PUT": ["-s", lua, url],
            }
            procs = {k: subprocess.Popen(["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "--latency"]
                                         + auth + v, stdout=subprocess.PIPE, text=True)
                     for k, v in kinds.items()}
            for k, p in procs.items():
                results[k] = latency(p.communicate()[0])
        while True:
            j = get(url + "/v1/jobs/" + job, key)
            if j["status"] in ("Succeeded", "Failed", "Canceled"):
                break
            time.sleep(0.2)
        started = parse_ts(j["startedAt"])
        rate = n / (parse_ts(j["completedAt"]) - started)
        rss = peak_rss_mb(proc.pid)
        proc.terminate()
        proc.wait(timeout=120)
        log.close()
        assert j["counts"]["succeeded"] == n, j["counts"]
        return rate, rss, results, time.time() - t0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def first_ref(items_file):
    with open(items_file) as f:
        return json.loads(f.readline())["ref"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/rel/sluice"))
    ap.add_argument("--items", type=int, default=1000000)
    ap.add_argument("--seconds", type=int, default=20, help="how long wrk runs")
    ap.add_argument("--connections", type=int, default=2, help="wrk connections per kind")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: scripts/deps.sh bench installs it")
    items_file = ensure_items(a.items)
    print("sluice load: %d-item upsert job, wrk -t1 -c%d per kind for %d s, %s" %
          (a.items, a.connections, a.seconds, time.strftime("%Y-%m-%d %H:%M")), flush=True)
    alone, rss_alone, _, _ = run(a.bin, items_file, a.items, a.seconds, False)
    loaded, rss_loaded, res, _ = run(a.bin, items_file, a.items, a.seconds, True, a.connections)
    print("%-12s %10s %10s %12s %8s" % ("request", "p50 ms", "p99 ms", "requests/s", "non-2xx"))
    for k, (p50, p99, rps, bad) in res.items():
        print("%-12s %10.2f %10.2f %12.0f %8d" % (k, p50, p99, rps, bad))
    print("job items/s: %.0f alone, %.0f under load (%.2f); peak RSS %.0f MB alone, %.0f MB "
          "under load" % (alone, loaded, loaded / alone, rss_alone, rss_loaded), flush=True)


if __name__ == "__main__":
    main()
