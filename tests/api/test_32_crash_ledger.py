"""Process faults, Jepsen style (test_crash.py kills one job once; this runs many jobs
through many kills): a mixed load (submitters with Idempotency-Keys, cancels,
a workflow whose http step calls the fake upstream before an upsert) while the server is
SIGKILLed at random moments and restarted on the same store, once while it is still
starting. After each restart every job acknowledged so far must be in the store, whole;
when the load ends and every job has finished, a checker compares three ledgers:

  client    every 202 (job id, Idempotency-Key, the items sent), and the cancels asked;
  upstream  every call the fake upstream received, with its Idempotency-Key and time;
  store     the jobs, item outcomes and documents the server holds after it settles.

Definitions (the printed counts):
  lost        an item of an acknowledged job that is missing, not terminal, Succeeded
              without an upstream call, or Succeeded without its document (version 1);
  unexpected  a job in the store the client was never told about, an upstream call
              that is not for an item of an acknowledged job, or a document no
              Succeeded item explains. A submit whose answer a kill cut off is retried
              with the same Idempotency-Key and body until it gets a 202, so a job it
              committed before the kill is acknowledged by the replay: there is no
              "job the client may not know" left, and unexpected must be 0;
  duplicated  an item called more than once. Allowed only for items in flight at a
              kill (some kill between its first and its last call), always with its
              one Idempotency-Key "<job>:<index>:push", and never applied twice (every
              document has version 1).
The seed is printed; SLUICE_CRASH_SEED replays a schedule (timing still varies)."""
import json
import os
import random
import subprocess
import threading
import time
import uuid

import requests

from conftest import BIN, TERMINAL, Client, counts_ok, list_all, make_workflow, results

KILLS = 5
LOAD_SECONDS = 24


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}       # job id -> {"key", "refs", "in_doubt"}
        self.cancels = set()  # job ids the client asked to cancel
        self.kills = []       # (time of the kill, time the server answered again)
        self.errors = []      # answers that break the contract (4xx, bad replays)


def submitter(srv, key, ledger, stop, rng, tag):
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + key
    n = 0
    while not stop.wait(rng.uniform(0.15, 0.5)):  # a bounded load: ~2-3 jobs/s each
        size = rng.choice((1, 4, 12, 30, 80, 200))
        refs = ["%s-%d-%d" % (tag, n, i) for i in range(size)]
        n += 1
        body = json.dumps({"workflow": ledger.workflow,
                           "items": [{"ref": r, "data": {"r": r}} for r in refs]})
        idem = uuid.uuid4().hex
        in_doubt = False
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                r = s.post(srv.url + "/v1/jobs", data=body, timeout=30,
                           headers={"Content-Type": "application/json", "Idempotency-Key": idem})
            except requests.RequestException:
                in_doubt = True  # the answer was lost: same key, same body, again
                time.sleep(0.05)
                continue
            if r.status_code == 202:
                jid = r.json()["id"]
                with ledger.lock:
                    if jid in ledger.acked:
                        ledger.errors.append("job %s acknowledged for two submits" % jid)
                    ledger.acked[jid] = {"key": idem, "refs": refs, "in_doubt": in_doubt,
                                         "replayed": r.headers.get("Idempotent-Replayed") == "true"}
                break
            if r.status_code >= 500 or r.status_code == 429:
                in_doubt = True
                time.sleep(0.05)
                continue
            with ledger.lock:
                ledger.errors.append("submit answered %d: %s" % (r.status_code, r.text[:200]))
            break
        else:
            with ledger.lock:
                ledger.errors.append("a submit got no 202 in 120 s")


def canceler(srv, key, ledger, stop, rng):
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + key
    while not stop.wait(rng.uniform(0.6, 1.4)):
        with ledger.lock:
            ids = sorted(ledger.acked)
        if not ids:
            continue
        jid = rng.choice(ids)
        try:
            r = s.post(srv.url + "/v1/jobs/%s:cancel" % jid, timeout=30)
        except requests.RequestException:
            continue  # not known to have been asked; maybe it was: only jobs asked may cancel
        finally:
            with ledger.lock:
                ledger.cancels.add(jid)
        if r.status_code != 200:
            with ledger.lock:
                ledger.errors.append("cancel answered %d: %s" % (r.status_code, r.text[:200]))


def kill_during_startup(srv, delay):
    """Starts the server and SIGKILLs it after delay seconds, likely still starting."""
    srv.log = open(os.path.join(srv.dir, "server.log"), "ab")
    srv.proc = subprocess.Popen(
        [BIN, "serve", "--listen",
         "127.0.0.1:%d" % srv.port, "--store", srv.store] + srv.args,
        stdout=srv.log, stderr=srv.log, env=srv.env)
    time.sleep(delay)
    srv.kill()


def interim_check(c, ledger):
    """After each restart: every job acknowledged so far is in the store, whole. (Jobs
    the store holds that are not acknowledged yet may be submits whose answer the kill
    cut off, still being retried: only the final check can count them.)"""
    with ledger.lock:
        acked = {jid: len(i["refs"]) for jid, i in ledger.acked.items()}
    stored = {j["id"]: j["counts"]["total"]
              for j in list_all(c, "/v1/jobs", params={"limit": 1000})[0]}
    lost = {jid: (n, stored.get(jid)) for jid, n in acked.items() if stored.get(jid) != n}
    assert not lost, "after restart %d, acknowledged jobs missing or partial: %s" % (
        len(ledger.kills), list(lost.items())[:10])


def test_sigkill_under_mixed_load_three_ledgers(fresh_server, fast_upstream):
    seed = int(os.environ.get("SLUICE_CRASH_SEED") or random.randrange(1 << 30))
    print("crash ledger seed %d (SLUICE_CRASH_SEED=%d replays the schedule)" % (seed, seed))
    rng = random.Random(seed)
    up = fast_upstream
    up.script("/push", [{"delay_ms": 25}])  # keeps items in flight when a kill comes
    srv = fresh_server(args=["--outbound-allow", "127.0.0.1/32", "--batch", "20",
                             "--max-attempts", "10", "--tenant-rate", "0"])
    srv.start()
    c = Client(srv, srv.key_a)
    coll = "ledger"
    ledger = Ledger()
    ledger.workflow = make_workflow(c, [
        {"name": "push", "type": "http", "method": "POST", "url": up.url + "/push/{{ref}}",
         "timeoutMs": 10000, "retry": {"maxAttempts": 3, "backoffMs": 20}},
        {"name": "save", "type": "upsert", "collection": coll}])

    stop = threading.Event()
    threads = [threading.Thread(target=submitter, daemon=True,
                                args=(srv, srv.key_a, ledger, stop, random.Random(seed + i),
                                      "s%d" % i)) for i in range(3)]
    threads.append(threading.Thread(target=canceler, daemon=True,
                                    args=(srv, srv.key_a, ledger, stop, random.Random(seed - 1))))
    for t in threads:
        t.start()
    t0 = time.time()
    startup_kill = rng.randrange(KILLS)
    for k in range(KILLS):
        time.sleep(rng.uniform(0.4, 2 * LOAD_SECONDS / KILLS - 0.4))
        killed_at = time.time()
        srv.kill()
        if k == startup_kill:
            kill_during_startup(srv, rng.uniform(0.0, 0.3))
        srv.start()
        ledger.kills.append((killed_at, time.time()))
        interim_check(c, ledger)
    time.sleep(max(0.0, LOAD_SECONDS - (time.time() - t0)))
    stop.set()
    for t in threads:
        t.join(150)
        assert not t.is_alive(), "a client thread is stuck"
    assert not ledger.errors, ledger.errors[:10]

    # ---- settle: every acknowledged job ends ------------------------------------------
    finals = {jid: c.wait_job(jid, timeout=180) for jid in ledger.acked}

    # ---- store ledger ----------------------------------------------------------------
    stored = {j["id"] for j in list_all(c, "/v1/jobs", params={"limit": 1000})[0]}
    docs = {d["ref"]: d for d in list_all(c, "/v1/collections/" + coll,
                                          params={"limit": 1000})[0]}
    calls = {}
    n_calls = len(up.log("/push/"))
    for e in up.log("/push/"):
        calls.setdefault(e["idempotency_key"], []).append(e)

    lost, unexpected, dup_items, dup_calls, not_in_flight = [], [], 0, 0, []
    explained_docs, statuses = set(), {}
    for jid in sorted(stored - set(ledger.acked)):
        unexpected.append("job %s in the store was never acknowledged" % jid)
    for jid, info in ledger.acked.items():
        m = finals[jid]
        cnt = counts_ok(m)
        refs = info["refs"]
        if cnt["total"] != len(refs):
            lost.append("job %s holds %d items, %d were sent" % (jid, cnt["total"], len(refs)))
            continue
        res = results(c, jid)
        if [x["index"] for x in res] != list(range(len(refs))):
            lost.append("job %s: results are not items 0..%d" % (jid, len(refs) - 1))
            continue
        if m["status"] == "Canceled" and jid not in ledger.cancels:
            unexpected.append("job %s canceled without being asked" % jid)
        for x in res:
            st = x["status"]
            statuses[st] = statuses.get(st, 0) + 1
            key = "%s:%d:push" % (jid, x["index"])
            got = calls.pop(key, [])
            if x["ref"] != refs[x["index"]]:
                lost.append("%s: ref %r, sent %r" % (key, x["ref"], refs[x["index"]]))
            if st not in TERMINAL + ("Skipped",):
                lost.append("%s is %s" % (key, st))
            if any(e["path"] != "/push/" + refs[x["index"]] for e in got):
                unexpected.append("%s: a call for another item: %s" % (key, got[0]["path"]))
            if st == "Succeeded":
                if not any(e["response"].get("status") == 200 for e in got):
                    lost.append("%s Succeeded without an upstream call" % key)
                d = docs.get(x["ref"])
                if not d or d["version"] != 1 or d["lastJob"] != jid:
                    lost.append("%s Succeeded, document %r" % (key, d))
                explained_docs.add(x["ref"])
            elif st == "Canceled":
                if jid not in ledger.cancels:
                    unexpected.append("%s canceled without being asked" % key)
            elif st == "Failed":
                lost.append("%s failed: %s" % (key, x.get("error")))
            if len(got) > 1:
                dup_items += 1
                dup_calls += len(got) - 1
                first, last = min(e["time"] for e in got), max(e["time"] for e in got)
                if not any(first - 1.0 <= k <= last + 0.5 for k, _ in ledger.kills):
                    not_in_flight.append("%s called %d times from %.3f to %.3f" % (
                        key, len(got), first, last))
    for key in calls:
        unexpected.append("upstream call %s for no acknowledged item" % key)
    for ref, d in docs.items():
        if ref not in explained_docs:
            unexpected.append("document %s (version %s) of no Succeeded item" % (ref, d["version"]))
        elif d["version"] != 1:
            lost.append("document %s applied %d times" % (ref, d["version"]))

    n_items = sum(len(i["refs"]) for i in ledger.acked.values())
    print("ledger: %d kills; %d jobs acknowledged (%d after a lost answer, %d of them "
          "replayed); %d items %s; %d upstream calls; lost=%d unexpected=%d "
          "duplicated=%d items (%d extra calls, all in flight at a kill: %s)" % (
              len(ledger.kills), len(ledger.acked),
              sum(i["in_doubt"] for i in ledger.acked.values()),
              sum(i["replayed"] for i in ledger.acked.values()), n_items,
              json.dumps(statuses, sort_keys=True), n_calls,
              len(lost), len(unexpected), dup_items, dup_calls, not not_in_flight))
    assert len(ledger.kills) == KILLS
    assert not lost, lost[:10]
    assert not unexpected, unexpected[:10]
    assert not not_in_flight, not_in_flight[:10]
    assert n_items > 0 and statuses.get("Succeeded", 0) > 0, statuses
    assert srv.proc.poll() is None
