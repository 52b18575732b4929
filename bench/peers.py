#!/usr/bin/env python3
"""make bench-peers: sluice beside graphile-worker, the fastest popular job queue on
this machine, in one window, and the ratios.

Order: graphile W1 and W2, then sluice W1 and W2 on SQLite and on PostgreSQL (fsync
on), then graphile again; each sluice figure is set against the mean of the two
graphile runs around it, because speed here drifts by 30% over tens of minutes.
graphile-worker runs at its best tuned setting from ../shared/bench/peers (README):
concurrency 50, localQueue 2000, completeJobBatchDelay 50, on a fresh PostgreSQL 15
with fsync on (bench/peers/run_one.sh). sluice's PostgreSQL runs need the cluster of
scripts/pg-test.sh ($SLUICE_TEST_PG_URL; `make bench-peers` starts one with fsync on).
Also printed: the server's bytes written and CPU per 1,000 items (SQLite) and the
database's and the node's CPU per 1,000 items (PostgreSQL).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402  (bench/run.py: one_run, pg_run, ensure_items)

PEERS = os.path.join(bench.ROOT, "bench", "peers")
GRAPHILE = {"w1": ["conc=50", "lq=2000", "cjbd=50", "gpool=10"],
            "w2": ["conc=50", "lq=2000", "cjbd=50", "pool=20"]}
WORKFLOW = {"w1": "noop", "w2": "products.upsert"}


def graphile(workload, n):
    """items/s of one graphile-worker run (bench/peers/run_one.sh prints one JSON line)."""
    out = subprocess.run(["./run_one.sh", "peer=graphile", "workload=" + workload, "n=%d" % n]
                         + GRAPHILE[workload], cwd=PEERS, capture_output=True, text=True,
                         timeout=1200)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit("graphile-worker run failed (%d): %s%s" % (out.returncode, out.stdout,
                                                                    out.stderr))
    return json.loads(lines[-1])["items_per_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(bench.ROOT, "build/rel/sluice"))
    ap.add_argument("--sizes", default="20000,200000",
                    help="item counts; graphile runs at the first only (200,000 takes it minutes)")
    ap.add_argument("--runs", type=int, default=3, help="sluice runs per figure (median)")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    n0 = sizes[0]
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print("sluice beside graphile-worker, %s, load average %s" %
          (time.strftime("%Y-%m-%d %H:%M"), " ".join(load)), flush=True)
    before = {w: graphile(w, n0) for w in ("w1", "w2")}
    print("graphile-worker before: W1 %d items/s, W2 %d items/s (%d items)" %
          (before["w1"], before["w2"], n0), flush=True)
    rows = []
    for n in sizes:
        items = bench.ensure_items(n)
        for w in ("w1", "w2"):
            runs = [bench.one_run(a.bin, items, n, WORKFLOW[w], a.workers) for _ in range(a.runs)]
            med = lambda i: statistics.median(r[i] for r in runs)
            rows.append(("SQLite", w, n, med(2), "%.0f B written, %.1f ms CPU" %
                         (med(4), med(5))))
            print("  sluice SQLite %s %d: %.0f items/s" % (w.upper(), n, med(2)), flush=True)
        if os.environ.get("SLUICE_TEST_PG_URL"):
            for w in ("w1", "w2"):
                runs = [bench.pg_run(a.bin, items, n, WORKFLOW[w], a.workers, 1)
                        for _ in range(a.runs)]
                med = lambda i: statistics.median(r[i] for r in runs)
                rows.append(("PostgreSQL", w, n, med(2), "%.1f ms database CPU, %.1f ms node CPU" %
                             (med(3), med(4))))
                print("  sluice PostgreSQL %s %d: %.0f items/s" % (w.upper(), n, med(2)),
                      flush=True)
    after = {w: graphile(w, n0) for w in ("w1", "w2")}
    print("graphile-worker after: W1 %d items/s, W2 %d items/s (%d items)" %
          (after["w1"], after["w2"], n0), flush=True)
    print()
    print("%-11s %-4s %8s %10s %14s %8s   %s" % ("sluice on", "work", "items", "items/s",
                                                "graphile mean", "ratio", "per 1,000 items"))
    for store, w, n, ips, per in rows:
        peer = (before[w] + after[w]) / 2
        print("%-11s %-4s %8d %10.0f %14.0f %7.1fx   %s" % (store, w.upper(), n, ips, peer,
                                                          ips / peer, per))
    print("(graphile-worker ran at %d items; ratios at other sizes set sluice at that size "
          "against it)" % n0)


if __name__ == "__main__":
    main()
