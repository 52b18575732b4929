#!/usr/bin/env python3
"""Many big uploads at once (issue 7): N clients each stream an S MB NDJSON body to
POST /v1/jobs at the same moment. Reports how many were accepted (202) or told to come
back (503 ServerBusy / MemoryPressure with Retry-After; a client that gets one retries
after it until --deadline), the server's peak RSS against --max-memory-mb, and that
every accepted job holds all of its items.

Bodies are generated on the fly (items of ~1 KB), not kept on disk.

usage: bench/uploads.py [--bin build/rel/sluice] [--clients 100] [--mb 100]
                        [--max-memory-mb 1024]
"""
import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, get, start_server  # noqa: E402

PAD = "x" * 960


def body_chunks(client, mb):
    """NDJSON lines of ~1 KB, in 1 MB chunks, mb MB in all."""
    i = 0
    for _ in range(mb):
        lines = []
        for _ in range(1024):
            lines.append('{"ref": "c%d-%d", "data": {"pad": "%s"}}\n' % (client, i, PAD))
            i += 1
        yield "".join(lines).encode()


def upload(url, key, client, mb, deadline, out):
    host, port = url.split("//")[1].split(":")
    tries = 0
    while time.time() < deadline:
        tries += 1
        conn = http.client.HTTPConnection(host, int(port), timeout=600)
        try:
            conn.putrequest("POST", "/v1/jobs?workflow=noop")
            conn.putheader("Authorization", "Bearer " + key)
            conn.putheader("Content-Type", "application/x-ndjson")
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            try:
                for chunk in body_chunks(client, mb):
                    conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                conn.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused early: the answer is waiting
            r = conn.getresponse()
            body = r.read()
            if r.status == 202:
                out[client] = ("accepted", json.loads(body)["id"], tries)
                return
            if r.status in (429, 503):
                wait = int(r.getheader("Retry-After", "1"))
                out[client] = ("refused", json.loads(body)["error"]["code"], tries)
                time.sleep(wait)
                continue
            out[client] = ("error", "%d %s" % (r.status, body[:200]), tries)
            return
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            out[client] = ("error", repr(e), tries)
            time.sleep(1)
        finally:
            conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/rel/sluice"))
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--max-memory-mb", type=int, default=1024)
    ap.add_argument("--deadline", type=int, default=1800, help="seconds for all uploads")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="sluice-uploads-")
    try:
        proc, url, key, log = start_server(
            a.bin, d, 2, ["--tenant-rate", "0", "--max-memory-mb", str(a.max_memory_mb),
                          "--max-pending-items", "0", "--max-open-jobs", "0",
                          # all clients are one tenant on one address: no per-tenant
                          # share, no per-address connection cap
                          "--tenant-share", "100", "--max-connections-per-ip", "0"])
        print("sluice uploads: %d clients x %d MB at once, --max-memory-mb %d, %s" %
              (a.clients, a.mb, a.max_memory_mb, time.strftime("%Y-%m-%d %H:%M")), flush=True)
        out = {}
        peak = [0]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                with open("/proc/%d/status" % proc.pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            peak[0] = max(peak[0], int(line.split()[1]) // 1024)
                time.sleep(0.1)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.time()
        deadline = t0 + a.deadline
        threads = [threading.Thread(target=upload, args=(url, key, i, a.mb, deadline, out))
                   for i in range(a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.time() - t0
        stop.set()
        accepted = [v for v in out.values() if v[0] == "accepted"]
        errors = [v for v in out.values() if v[0] == "error"]
        retries = sum(v[2] - 1 for v in out.values())
        missing = 0
        for _, job, _ in accepted:
            j = get(url + "/v1/jobs/" + job, key)
            missing += (a.mb * 1024) - j["counts"]["total"]
        print("accepted %d of %d uploads (%d retries after 503/429), errors %d, in %.0f s "
              "(%.0f MB/s); items missing from accepted jobs: %d" %
              (len(accepted), a.clients, retries, len(errors), took,
               len(accepted) * a.mb / took, missing))
        print("peak RSS %d MB (cap %d MB)" % (peak[0], a.max_memory_mb), flush=True)
        for e in errors[:5]:
            print("  error:", e)
        proc.terminate()
        proc.wait(timeout=300)
        log.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
