"""Amplification and size limits (issue 11, points 1 and 10): what workflow steps build
for an item is bounded by --max-item-bytes while it is built (map ops, templates, http
outputs kept), definitions are capped (ops per map, steps per workflow), documents stay
within the limit on every write path (PUT, the merged result of PATCH, patch/upsert
steps in jobs and :run), and If-None-Match: * makes a document PUT create-only,
atomically."""
import json
import threading
from urllib.parse import quote

import pytest
import requests

from conftest import (Client, Server, assert_error, item_detail, make_workflow, put_workflow,
                      run_job, step_events, uniq)

MIB = 1 << 20


@pytest.fixture(scope="module")
def srv():
    """A server of this module's own (its memory is measured), allowed to call loopback."""
    s = Server(args=["--outbound-allow", "127.0.0.1/32"])
    s.key_a = s.create_key("acme")
    s.start()
    yield s
    rc = s.stop()
    assert rc == 0, "server exited with %s:\n%s" % (rc, s.read_log()[-4000:])
    s.cleanup()


@pytest.fixture
def c(srv):
    return Client(srv, srv.create_key(uniq("amp")))


def vm_hwm_mb(s):
    with open("/proc/%d/status" % s.proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM for pid %d" % s.proc.pid)


def doubling_map(n=16):
    return {"name": "double", "type": "map",
            "ops": [{"op": "set", "path": "a", "value": "{{data.a}}{{data.a}}"}] * n}


def coll():
    return "c" + uniq("d").replace("-", "_")


def doc_url(collection, ref):
    return "/v1/collections/%s/%s" % (collection, quote(ref, safe=""))


# ---- the doubling map (first: the memory high-water mark is the process's) -------------

def test_doubling_map_fails_item_with_bounded_memory(srv, c):
    wf = make_workflow(c, [doubling_map(16)])
    hwm0 = vm_hwm_mb(srv)
    # 16 ops over 1 KB would be 64 MB per item (and twice that while rendering)
    data = {"a": "x" * 1024}
    j = run_job(c, [{"ref": "r%d" % i, "data": data} for i in range(4)], wf)
    assert j["counts"]["failed"] == 4, j
    for i in range(4):
        it = item_detail(c, j["id"], i)
        assert it["status"] == "Failed" and it["failedStep"] == "double", it
        assert it["error"]["code"] == "ItemTooLarge", it
        # 1 KiB doubled 10 times is 1 MiB: with its quotes, the 10th op passes the limit
        assert "steps.double.ops[9].value" in it["error"]["message"], it["error"]
        ev = step_events(it, "double")[-1]
        assert ev["code"] == "ItemTooLarge" and ev["target"] == "steps.double.ops[9].value", ev
        assert ev["limitBytes"] == MIB, ev
    r = c.post("/v1/workflows/%s:run" % wf, json={"ref": "sync", "data": data})
    err = assert_error(r, 422, "ItemTooLarge", "steps.double")
    assert "ops[9].value" in err["message"], err
    grew = vm_hwm_mb(srv) - hwm0
    assert grew < 64, "peak RSS grew by %d MB" % grew
    # the same map with room to spare succeeds: only the size stopped it
    ok = make_workflow(c, [doubling_map(4)])
    r = c.post("/v1/workflows/%s:run" % ok, json={"ref": "sync", "data": data})
    assert r.status_code == 200 and r.json()["status"] == "Succeeded", r.text
    assert requests.get(srv.url + "/healthz", timeout=5).status_code == 200


def test_copy_and_templates_in_http_bodies_are_bounded(srv, c, upstream):
    # a copy doubles the data each time: measured before it is made
    copies = [{"op": "copy", "from": "a", "path": "b"}, {"op": "copy", "from": "b", "path": "c"},
              {"op": "copy", "from": "c", "path": "d"}]
    wf = make_workflow(c, [{"name": "spread", "type": "map", "ops": copies}])
    r = c.post("/v1/workflows/%s:run" % wf, json={"ref": "x", "data": {"a": "y" * 300000}})
    err = assert_error(r, 422, "ItemTooLarge", "steps.spread")
    assert "steps.spread.ops[2].from" in err["message"], err
    # an http body template repeating the data: refused before anything is sent
    wf = make_workflow(c, [{"name": "push", "type": "http", "method": "POST",
                            "url": upstream.url + "/big",
                            "body": {"x": "{{data}}", "y": "{{data}}", "z": "{{data}}"}}])
    r = c.post("/v1/workflows/%s:run" % wf, json={"ref": "x", "data": {"a": "y" * 400000}})
    err = assert_error(r, 422, "ItemTooLarge", "steps.push")
    assert "steps.push.body" in err["message"], err
    assert upstream.log("/big") == []


# ---- definition-time caps -----------------------------------------------------------

def test_ops_per_map_and_steps_per_workflow_are_capped(c):
    r = put_workflow(c, uniq("ops"), [{"name": "m", "type": "map",
                                      "ops": [{"op": "remove", "path": "a"}] * 65}])
    err = assert_error(r, 422, "InvalidField", "steps[0].ops")
    assert "64" in err["message"], err
    r = put_workflow(c, uniq("ops"), [{"name": "m", "type": "map",
                                      "ops": [{"op": "remove", "path": "a"}] * 64}])
    assert r.status_code == 201, r.text
    steps = [{"name": "n%d" % i, "type": "noop"} for i in range(33)]
    err = assert_error(put_workflow(c, uniq("steps"), steps), 422, "InvalidField", "steps")
    assert "32" in err["message"], err
    assert put_workflow(c, uniq("steps"), steps[:32]).status_code == 201


# ---- documents: every write path ----------------------------------------------------

def test_put_over_the_limit_is_refused(c):
    col = coll()
    body = '{"a":"%s"}' % ("x" * (MIB - 7))  # one byte over
    assert len(body) == MIB + 1
    r = c.put(doc_url(col, "k"), data=body, headers={"Content-Type": "application/json"})
    assert_error(r, 413, "ItemTooLarge")
    assert c.get(doc_url(col, "k")).status_code == 404
    body = body[:6] + body[7:]  # exactly the limit
    r = c.put(doc_url(col, "k"), data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text


def test_two_patches_cannot_grow_a_document_past_the_limit(c):
    col = coll()
    assert c.put(doc_url(col, "k"), json={"n": 1}).status_code == 201
    r = c.patch(doc_url(col, "k"), json={"a": "x" * 600000})
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    r = c.patch(doc_url(col, "k"), json={"b": "y" * 600000})  # merged: 1.2 MB
    err = assert_error(r, 413, "ItemTooLarge")
    assert "merged document" in err["message"], err
    d = c.get(doc_url(col, "k")).json()
    assert d["version"] == 2 and set(d["data"]) == {"n", "a"}, d["version"]
    # a patch that keeps it within the limit still works
    r = c.patch(doc_url(col, "k"), json={"a": None, "b": "y" * 600000})
    assert r.status_code == 200 and r.json()["version"] == 3, r.text


def test_patch_steps_whose_merged_document_passes_the_limit_fail_the_item(c):
    col = coll()
    assert c.put(doc_url(col, "k"), json={"a": "x" * 600000}).status_code == 201
    wf = make_workflow(c, [{"name": "grow", "type": "patch", "collection": col}])
    j = run_job(c, [{"ref": "k", "data": {"b": "y" * 600000}}], wf)
    it = item_detail(c, j["id"], 0)
    assert it["status"] == "Failed" and it["error"]["code"] == "ItemTooLarge", it["error"]
    assert it["failedStep"] == "grow", it
    # synchronously: applied at once, refused the same way
    r = c.post("/v1/workflows/%s:run" % wf, json={"ref": "k", "data": {"b": "y" * 600000}})
    assert_error(r, 422, "ItemTooLarge", "steps.grow")
    d = c.get(doc_url(col, "k")).json()
    assert d["version"] == 1 and set(d["data"]) == {"a"}, d["version"]
    # an upsert whose document a map made too large fails at the upsert... or earlier:
    # the map's own bound stops it first, so nothing too large reaches the store
    wf = make_workflow(c, [{"name": "dup", "type": "map",
                            "ops": [{"op": "set", "path": "b", "value": "{{data.a}}"}]},
                           {"name": "save", "type": "upsert", "collection": col}])
    j = run_job(c, [{"ref": "k2", "data": {"a": "x" * 600000}}], wf)
    it = item_detail(c, j["id"], 0)
    assert it["error"]["code"] == "ItemTooLarge" and it["failedStep"] == "dup", it["error"]
    assert c.get(doc_url(col, "k2")).status_code == 404


# ---- http outputs kept --------------------------------------------------------------

def test_http_response_kept_over_the_limit_fails_the_item(c, upstream):
    upstream.script("/huge", [{"body_bytes": 2 * MIB}], repeat_last=True)
    upstream.script("/small", [{"status": 200, "json": {"ok": 1}}], repeat_last=True)
    wf = make_workflow(c, [{"name": "fetch", "type": "http", "method": "GET",
                            "url": upstream.url + "/huge/{{ref}}"}])
    j = run_job(c, [{"ref": "h", "data": {}}], wf)
    it = item_detail(c, j["id"], 0)
    assert it["status"] == "Failed" and it["error"]["code"] == "ItemTooLarge", it["error"]
    ev = step_events(it, "fetch")[-1]
    assert ev["target"] == "steps.fetch.response.body" and ev["status"] == 200, ev
    r = c.post("/v1/workflows/%s:run" % wf, json={"ref": "h", "data": {}})
    assert_error(r, 422, "ItemTooLarge", "steps.fetch")
    small = make_workflow(c, [{"name": "fetch", "type": "http", "method": "GET",
                               "url": upstream.url + "/small/{{ref}}"}])
    r = c.post("/v1/workflows/%s:run" % small, json={"ref": "h", "data": {}})
    assert r.status_code == 200 and r.json()["status"] == "Succeeded", r.text


# ---- If-None-Match: * ---------------------------------------------------------------

def test_if_none_match_star_is_create_only(c):
    col = coll()
    r = c.put(doc_url(col, "k"), json={"v": 1}, headers={"If-None-Match": "*"})
    assert r.status_code == 201, r.text
    r = c.put(doc_url(col, "k"), json={"v": 2}, headers={"If-None-Match": "*"})
    assert_error(r, 412, "PreconditionFailed", "If-None-Match")
    r = c.patch(doc_url(col, "k"), json={"v": 3}, headers={"If-None-Match": "*"})
    assert_error(r, 412, "PreconditionFailed", "If-None-Match")
    d = c.get(doc_url(col, "k")).json()
    assert d["version"] == 1 and d["data"] == {"v": 1}, d
    # with If-Match as well both can never hold
    r = c.put(doc_url(col, "k"), json={"v": 4}, headers={"If-None-Match": "*", "If-Match": '"1"'})
    assert_error(r, 412, "PreconditionFailed", "If-None-Match")
    # an ETag list is not supported on writes: refused rather than ignored
    r = c.put(doc_url(col, "k"), json={"v": 5}, headers={"If-None-Match": '"1"'})
    assert_error(r, 400, "InvalidParameter", "If-None-Match")
    # after a delete the ref is free again
    assert c.delete(doc_url(col, "k")).status_code == 204
    r = c.put(doc_url(col, "k"), json={"v": 6}, headers={"If-None-Match": "*"})
    assert r.status_code == 201, r.text


def test_concurrent_create_only_puts_exactly_one_wins(srv, c):
    col = coll()
    n = 30
    barrier = threading.Barrier(n)
    out = [None] * n

    def put(i):
        cl = Client(srv, c.key)
        barrier.wait(timeout=30)
        r = cl.put(doc_url(col, "same"), json={"writer": i}, headers={"If-None-Match": "*"},
                   timeout=60)
        out[i] = (r.status_code, r.json())

    threads = [threading.Thread(target=put, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert all(o is not None for o in out), out
    codes = sorted(o[0] for o in out)
    assert codes == [201] + [412] * (n - 1), codes
    winner = [o[1] for o in out if o[0] == 201][0]
    for st, body in out:
        if st == 412:
            assert body["error"]["code"] == "PreconditionFailed", body
    d = c.get(doc_url(col, "same")).json()
    assert d["version"] == 1 and d["data"] == winner["data"], (d, winner)


# ---- what is measured is what is written (a 200 kB item limit) ----------------------

SMALL = 200000


@pytest.fixture(scope="module")
def small_srv():
    """A server with --max-item-bytes 200000, allowed to call loopback."""
    s = Server(args=["--outbound-allow", "127.0.0.1/32", "--max-item-bytes", str(SMALL)])
    s.key_a = s.create_key("acme")
    s.start()
    yield s
    rc = s.stop()
    assert rc == 0, "server exited with %s:\n%s" % (rc, s.read_log()[-4000:])
    s.cleanup()


@pytest.fixture
def sc(small_srv):
    return Client(small_srv, small_srv.create_key(uniq("amps")))


def compact(v):
    return json.dumps(v, separators=(",", ":"))


def run_compact(client, items_, workflow):
    """run_job, with the items sent as compact JSON (their bytes are what is limited)."""
    r = client.post("/v1/jobs", data=compact({"workflow": workflow, "items": items_}),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 202, (r.status_code, r.text)
    return client.wait_job(r.json()["id"])


def bodies(upstream, path):
    return [e["body"] for e in upstream.log(path)]


def test_reals_are_written_as_short_as_they_are_measured(sc, upstream):
    # 0.1 is "0.1" in the item: jansson's json_dumps wrote "0.10000000000000001", five
    # times what the map's budget measured (760 kB sent for a 152 kB item)
    data = {"a": [0.1] * 38000}
    assert len(compact(data)) == 152007
    touch = {"name": "touch", "type": "map", "ops": [{"op": "set", "path": "z", "value": 1}]}
    wf = make_workflow(sc, [touch, {"name": "push", "type": "http", "method": "POST",
                                    "url": upstream.url + "/reals/{{ref}}"}])
    j = run_compact(sc, [{"ref": "r1", "data": data}], wf)
    assert j["counts"]["succeeded"] == 1, item_detail(sc, j["id"], 0)
    sent = bodies(upstream, "/reals/r1")
    assert len(sent) == 1 and len(sent[0]) <= SMALL, [len(b) for b in sent]
    assert sent[0] == compact(dict(data, z=1)), sent[0][:100]
    # the head (URL and headers) and the body are each held to the limit: a 30 kB URL
    # beside the 182 kB body is sent; a URL that would pass the limit is not
    q = "q" * 30000
    wf = make_workflow(sc, [touch, {"name": "push", "type": "http", "method": "POST",
                                    "url": upstream.url + "/reals/{{ref}}?q={{data.q}}"}])
    j = run_compact(sc, [{"ref": "r2", "data": dict(data, q=q)}], wf)
    assert j["counts"]["succeeded"] == 1, item_detail(sc, j["id"], 0)["error"]
    assert len(bodies(upstream, "/reals/r2")[0]) <= SMALL
    q = "q" * 120000
    wf = make_workflow(sc, [{"name": "push", "type": "http", "method": "POST",
                             "url": upstream.url + "/reals/{{ref}}?q={{data.q}}&r={{data.q}}"}])
    j = run_compact(sc, [{"ref": "r3", "data": {"q": q}}], wf)
    it = item_detail(sc, j["id"], 0)
    assert it["status"] == "Failed" and it["error"]["code"] == "ItemTooLarge", it["error"]
    assert it["failedStep"] == "push", it
    ev = step_events(it, "push")[-1]
    assert ev["target"] == "steps.push.url" and ev["limitBytes"] == SMALL, ev
    assert upstream.log("/reals/r3") == []
    # an upsert of in-limit data after a trivial map stores it, at its measured size
    col = coll()
    data = {"a": [0.1] * 45000}
    wf = make_workflow(sc, [touch, {"name": "save", "type": "upsert", "collection": col}])
    j = run_compact(sc, [{"ref": "u", "data": data}], wf)
    assert j["counts"]["succeeded"] == 1, item_detail(sc, j["id"], 0)["error"]
    d = sc.get(doc_url(col, "u")).json()
    assert d["data"] == dict(data, z=1), d["version"]


def test_rendered_strings_are_charged_escaped(sc, upstream):
    # "\u0001" is one byte of text and six of the body: 6 x 30 kB of text is 1 MB of JSON
    body = {k: "x{{data.s}}" for k in "abcdef"}
    wf = make_workflow(sc, [{"name": "push", "type": "http", "method": "POST",
                             "url": upstream.url + "/esc/{{ref}}", "body": body}])
    j = run_compact(sc, [{"ref": "e1", "data": {"s": "\u0001" * 30000}}], wf)
    it = item_detail(sc, j["id"], 0)
    assert it["status"] == "Failed" and it["error"]["code"] == "ItemTooLarge", it["error"]
    ev = step_events(it, "push")[-1]
    assert ev["target"] == "steps.push.body", ev
    assert upstream.log("/esc/e1") == []
    # the same through :run, and a smaller string that fits is sent whole
    r = sc.post("/v1/workflows/%s:run" % wf, json={"ref": "e2", "data": {"s": "\u0001" * 30000}})
    assert_error(r, 422, "ItemTooLarge", "steps.push")
    assert upstream.log("/esc/e2") == []
    r = sc.post("/v1/workflows/%s:run" % wf, json={"ref": "e3", "data": {"s": "\u0001" * 5000}})
    assert r.status_code == 200 and r.json()["status"] == "Succeeded", r.text
    sent = bodies(upstream, "/esc/e3")
    assert len(sent) == 1 and len(sent[0]) <= SMALL, [len(b) for b in sent]
    assert json.loads(sent[0]) == {k: "x" + "\u0001" * 5000 for k in "abcdef"}


def test_run_data_is_held_to_the_item_limit(sc, upstream):
    wf = make_workflow(sc, [{"name": "push", "type": "http", "method": "POST",
                             "url": upstream.url + "/run/{{ref}}"}])
    # {"a":"..."} is the string's length + 8: one byte over the limit
    r = sc.post("/v1/workflows/%s:run" % wf, json={"ref": "big", "data": {"a": "x" * (SMALL - 7)}})
    err = assert_error(r, 413, "ItemTooLarge", "data")
    assert str(SMALL) in err["message"], err
    assert upstream.log("/run/big") == []
    # reals count as they are written: 0.1 is three bytes
    r = sc.post("/v1/workflows/%s:run" % wf, json={"ref": "reals", "data": [0.1] * 45000})
    assert r.status_code == 200 and r.json()["status"] == "Succeeded", r.text
    sent = bodies(upstream, "/run/reals")
    assert len(sent) == 1 and sent[0] == compact([0.1] * 45000), len(sent[0])
    # exactly the limit is accepted (a noop workflow: an http step adds URL and headers)
    noop = make_workflow(sc, [{"name": "n", "type": "noop"}])
    r = sc.post("/v1/workflows/%s:run" % noop, json={"ref": "edge", "data": {"a": "x" * (SMALL - 8)}})
    assert r.status_code == 200 and r.json()["status"] == "Succeeded", r.text


def test_result_is_held_to_the_limit_when_it_is_kept(sc, upstream):
    # an http output that just fits, then a document step's small output: the result
    # ({"steps": ...}) would pass the limit, so the item fails rather than keep it
    col = coll()
    wf = make_workflow(sc, [{"name": "fetch", "type": "http", "method": "GET",
                             "url": upstream.url + "/fit/{{ref}}"},
                            {"name": "save", "type": "upsert", "collection": col}])
    n0 = 1000
    upstream.script("/fit/k0", [{"json": {"p": "x" * n0}}], repeat_last=True)
    j = run_compact(sc, [{"ref": "k0", "data": {}}], wf)
    it = item_detail(sc, j["id"], 0)
    assert it["status"] == "Succeeded", it
    size0 = len(compact(it["result"]))
    n = n0 + (SMALL - size0) + 1  # with save's output, one byte over; without, it fits
    upstream.script("/fit/k1", [{"json": {"p": "x" * n}}], repeat_last=True)
    j = run_compact(sc, [{"ref": "k1", "data": {}}], wf)
    it = item_detail(sc, j["id"], 0)
    assert it["status"] == "Failed" and it["error"]["code"] == "ItemTooLarge", it.get("error")
    assert it["failedStep"] == "save" and it["result"] is None, it["failedStep"]
    assert "steps.save" in it["error"]["message"], it["error"]
    ev = step_events(it, "save")[-1]
    assert ev["code"] == "ItemTooLarge" and ev["target"] == "steps.save", ev
    assert ev["limitBytes"] == SMALL, ev
    assert sc.get(doc_url(col, "k1")).status_code == 404  # its op is not applied
    # one byte less and it is kept, at exactly the limit
    upstream.script("/fit/k2", [{"json": {"p": "x" * (n - 1)}}], repeat_last=True)
    j = run_compact(sc, [{"ref": "k2", "data": {}}], wf)
    it = item_detail(sc, j["id"], 0)
    assert it["status"] == "Succeeded", it.get("error")
    assert len(compact(it["result"])) == SMALL
