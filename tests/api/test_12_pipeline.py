"""Pipelines: step behaviour (validate, map, upsert/patch/delete with refFrom, http data
flow, noop, fail), onError fail|skip|continue, item events, per-step counts, item
filters by step/code, synchronous runs (:run, validateOnly) and POST /v1/jobs/{id}:retry."""
import json
from urllib.parse import quote

import pytest

from conftest import (SHOP_SECRET, Client, assert_error, item_detail, items, list_all,
                      make_workflow, put_workflow, results, run_job, step_counts, step_events,
                      submitted, uniq)

SCHEMA = {"type": "object", "required": ["sku", "price"],
          "properties": {"sku": {"type": "string", "minLength": 1},
                         "price": {"type": "number", "minimum": 0},
                         "qty": {"type": "integer"}},
          "additionalProperties": False}


def coll():
    return "c" + uniq("p").replace("-", "_")


def doc(c, collection, ref):
    return c.get("/v1/collections/%s/%s" % (collection, quote(ref, safe="")))


def all_items(c, job_id, **params):
    return list_all(c, "/v1/jobs/%s/items" % job_id, params=dict(params, limit=1000))[0]


# ---- validate ------------------------------------------------------------------------------

def test_validate_reports_every_violation(tenant):
    wf = make_workflow(tenant, [{"name": "check", "type": "validate", "schema": SCHEMA}])
    bad = {"price": -1, "qty": 1.5, "extra": True}  # sku missing, 3 more violations
    j = run_job(tenant, [{"ref": "ok", "data": {"sku": "A", "price": 1}},
                         {"ref": "bad", "data": bad}], wf)
    assert j["status"] == "Succeeded" and j["outcome"] == "PartiallySucceeded", j
    it = item_detail(tenant, j["id"], 1)
    assert it["status"] == "Failed" and it["failedStep"] == "check", it
    assert it["error"]["code"] == "ValidationFailed", it
    for ptr in ("/sku", "/price", "/qty", "/extra"):
        assert ptr in it["error"]["message"], it["error"]
    (ev,) = step_events(it, "check")
    assert ev["type"] == "validate" and ev["level"] == "error" and ev["code"] == "ValidationFailed"
    got = sorted((v["pointer"], v["keyword"]) for v in ev["violations"])
    assert got == [("/extra", "additionalProperties"), ("/price", "minimum"),
                   ("/qty", "type"), ("/sku", "required")], ev["violations"]
    assert all(isinstance(v["message"], str) and v["message"] for v in ev["violations"])
    ok = item_detail(tenant, j["id"], 0)
    assert ok["status"] == "Succeeded" and "failedStep" not in ok, ok
    assert step_events(ok, "check")[0]["level"] == "info"


def test_validate_non_object_data(tenant):
    wf = make_workflow(tenant, [{"name": "check", "type": "validate", "schema": SCHEMA}])
    r = tenant.post("/v1/workflows/%s:run" % wf, json={"ref": "a", "data": [1, 2]})
    err = assert_error(r, 422, "ValidationFailed", "steps.check")
    r = tenant.post("/v1/workflows/%s:run" % wf, json={"ref": "a"})  # no data at all
    assert_error(r, 422, "ValidationFailed", "steps.check")
    assert err["message"]


# ---- map -------------------------------------------------------------------------------------

def test_map_ops_and_templates(tenant):
    c = coll()
    wf = make_workflow(tenant, [
        {"name": "shape", "type": "map", "ops": [
            {"op": "set", "path": "title", "value": "{{data.name}} ({{data.attrs.color}})"},
            {"op": "set", "path": "cost.cents", "value": "{{data.price}}"},
            {"op": "set", "path": "meta", "value": {"ref": "{{ref}}", "tags": ["x", "{{data.name}}"],
                                                   "n": 3, "b": False, "z": None}},
            {"op": "copy", "from": "attrs.color", "path": "color"},
            {"op": "rename", "from": "sku", "path": "id"},
            {"op": "set", "path": "idAgain", "value": "{{data.id}}"},
            {"op": "remove", "path": "attrs"},
            {"op": "remove", "path": "not.there"}]},
        {"name": "save", "type": "upsert", "collection": c}])
    data = {"sku": "S-1", "name": "Shirt", "price": 1999, "attrs": {"color": "red"}}
    r = tenant.post("/v1/workflows/%s:run" % wf, json={"ref": "r1", "data": data})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "Succeeded" and body["ref"] == "r1", body
    expect = {"name": "Shirt", "price": 1999, "title": "Shirt (red)", "cost": {"cents": 1999},
              "meta": {"ref": "r1", "tags": ["x", "Shirt"], "n": 3, "b": False, "z": None},
              "color": "red", "id": "S-1", "idAgain": "S-1"}
    d = doc(tenant, c, "r1")
    assert d.status_code == 200, d.text
    assert d.json()["data"] == expect, d.json()
    # the same through a job
    j = run_job(tenant, [{"ref": "r2", "data": data}], wf)
    assert j["status"] == "Succeeded", j
    assert doc(tenant, c, "r2").json()["data"] == dict(expect, meta=dict(expect["meta"], ref="r2"))


def test_map_failure_is_mapfailed_and_stops_the_item(tenant):
    c = coll()
    wf = make_workflow(tenant, [
        {"name": "shape", "type": "map", "ops": [{"op": "copy", "from": "price.amount",
                                                  "path": "cents"}]},
        {"name": "save", "type": "upsert", "collection": c}])
    j = run_job(tenant, [{"ref": "a", "data": {"price": {"amount": 5}}},
                         {"ref": "b", "data": {"price": 5}},
                         {"ref": "c", "data": "not an object"}], wf)
    assert j["counts"]["succeeded"] == 1 and j["counts"]["failed"] == 2, j
    assert step_counts(j) == {"shape": (1, 2, 0), "save": (1, 0, 0)}, j
    for i in (1, 2):
        it = item_detail(tenant, j["id"], i)
        assert it["error"]["code"] == "MapFailed" and it["failedStep"] == "shape", it
        assert step_events(it, "save") == [], it  # later steps never ran
    assert doc(tenant, c, "a").json()["data"] == {"price": {"amount": 5}, "cents": 5}
    assert doc(tenant, c, "b").status_code == 404
    r = tenant.post("/v1/workflows/%s:run" % wf, json={"ref": "x", "data": {"price": 1}})
    assert_error(r, 422, "MapFailed", "steps.shape")


def test_map_template_missing_value(tenant):
    wf = make_workflow(tenant, [{"name": "shape", "type": "map", "ops": [
        {"op": "set", "path": "t", "value": "{{data.title}}!"}]}])
    r = tenant.post("/v1/workflows/%s:run" % wf, json={"ref": "x", "data": {}})
    err = assert_error(r, 422, "MapFailed", "steps.shape")
    assert "data.title" in err["message"], err


# ---- document steps --------------------------------------------------------------------------

def test_upsert_patch_delete_with_refFrom(tenant):
    c, old = coll(), coll()
    assert tenant.put("/v1/collections/%s/K1" % old, json={"stale": 1}).status_code == 201
    wf = make_workflow(tenant, [
        {"name": "save", "type": "upsert", "collection": c, "refFrom": "data.sku"},
        {"name": "mark", "type": "patch", "collection": c, "refFrom": "data.sku"},
        {"name": "drop", "type": "delete", "collection": old, "refFrom": "data.sku",
         "onError": "continue"}])
    j = run_job(tenant, [{"ref": "item-1", "data": {"sku": "K1", "v": 1}},
                         {"ref": "item-2", "data": {"sku": "K2", "v": 2}},
                         {"ref": "item-3", "data": {"sku": 33, "v": 3}},
                         {"ref": "item-4", "data": {"v": 4}}], wf)
    assert j["counts"]["succeeded"] == 3 and j["counts"]["failed"] == 1, j
    assert step_counts(j) == {"save": (3, 1, 0), "mark": (3, 0, 0), "drop": (1, 2, 0)}, j
    # documents are keyed by data.sku, not the item's ref
    assert doc(tenant, c, "K1").json()["data"] == {"sku": "K1", "v": 1}
    assert doc(tenant, c, "K2").json()["data"] == {"sku": "K2", "v": 2}
    assert doc(tenant, c, "33").json()["data"] == {"sku": 33, "v": 3}  # integer refs
    assert doc(tenant, c, "item-1").status_code == 404
    assert doc(tenant, old, "K1").status_code == 404  # deleted
    # the missing sku fails at the step that needs it
    it = item_detail(tenant, j["id"], 3)
    assert it["failedStep"] == "save" and it["status"] == "Failed", it
    # deleting a missing document: continue -> a warning, the item still succeeds
    it = item_detail(tenant, j["id"], 1)
    assert it["status"] == "Succeeded", it
    assert [(w["step"], w["code"]) for w in it["warnings"]] == [("drop", "DocumentNotFound")], it


def test_patch_of_missing_document_fails_at_its_step(tenant):
    c = coll()
    wf = make_workflow(tenant, [{"name": "touch", "type": "patch", "collection": c},
                                {"name": "after", "type": "noop"}])
    j = run_job(tenant, [{"ref": "nope", "data": {"a": 1}}], wf)
    assert j["status"] == "Failed", j
    it = item_detail(tenant, j["id"], 0)
    assert it["error"]["code"] == "DocumentNotFound" and it["failedStep"] == "touch", it
    assert step_counts(j) == {"touch": (0, 1, 0), "after": (0, 0, 0)}, j
    r = tenant.post("/v1/workflows/%s:run" % wf, json={"ref": "nope", "data": {"a": 1}})
    assert_error(r, 422, "DocumentNotFound", "steps.touch")


def test_builtin_workflows_unchanged(tenant):
    c = coll()
    j = run_job(tenant, items(5, prefix="b-"), c + ".upsert")
    assert j["status"] == "Succeeded" and j["counts"]["succeeded"] == 5, j
    assert doc(tenant, c, "b-3").json()["data"] == {"sku": "b-3", "n": 3}
    j = run_job(tenant, [{"ref": "b-3", "data": {"n": None, "x": 1}}], c + ".patch")
    assert j["status"] == "Succeeded", j
    assert doc(tenant, c, "b-3").json()["data"] == {"sku": "b-3", "x": 1}
    j = run_job(tenant, [{"ref": "b-3"}], c + ".delete")
    assert j["status"] == "Succeeded", j
    assert doc(tenant, c, "b-3").status_code == 404


# ---- onError, fail, noop -----------------------------------------------------------------------

def test_fail_step_custom_code(tenant):
    wf = make_workflow(tenant, [{"name": "n", "type": "noop"},
                                {"name": "stop", "type": "fail", "code": "Rejected",
                                 "message": "not today"}])
    j = run_job(tenant, items(3, prefix="f-"), wf)
    assert j["status"] == "Failed" and j["counts"]["failed"] == 3, j
    assert step_counts(j) == {"n": (3, 0, 0), "stop": (0, 3, 0)}, j
    it = item_detail(tenant, j["id"], 0)
    assert it["error"] == {"code": "Rejected", "message": "not today"}, it
    assert it["failedStep"] == "stop", it
    r = tenant.post("/v1/workflows/%s:run" % wf, json={"ref": "x", "data": {}})
    err = assert_error(r, 422, "Rejected", "steps.stop")
    assert err["message"] == "not today"
    # default code
    wf2 = make_workflow(tenant, [{"type": "fail"}])
    assert_error(tenant.post("/v1/workflows/%s:run" % wf2, json={"ref": "x"}), 422, "StepFailed",
                 "steps.fail")


def test_on_error_skip_and_continue(tenant):
    wf = make_workflow(tenant, [
        {"name": "check", "type": "validate", "schema": {"type": "object", "required": ["ok"]},
         "onError": "skip"},
        {"name": "warn", "type": "fail", "code": "Soft", "message": "just a warning",
         "onError": "continue"},
        {"name": "shape", "type": "map", "ops": [{"op": "set", "path": "done", "value": True}]},
        {"name": "n", "type": "noop"}])
    its = [{"ref": "r%d" % i, "data": {"ok": 1} if i % 2 else {}} for i in range(6)]
    j = run_job(tenant, its, wf)
    c = j["counts"]
    assert (c["succeeded"], c["failed"], c["skipped"]) == (3, 0, 3), j
    assert j["status"] == "Succeeded", j
    assert step_counts(j) == {"check": (3, 0, 3), "warn": (0, 3, 0), "shape": (3, 0, 0),
                              "n": (3, 0, 0)}, j
    sk = item_detail(tenant, j["id"], 0)
    assert sk["status"] == "Skipped" and sk["failedStep"] == "check", sk
    assert sk["error"]["code"] == "ValidationFailed", sk
    assert step_events(sk, "warn") == [] and step_events(sk, "shape") == [], sk
    ok = item_detail(tenant, j["id"], 1)
    assert ok["status"] == "Succeeded" and ok["error"] is None, ok
    assert ok["warnings"] == [{"step": "warn", "code": "Soft", "message": "just a warning"}], ok
    assert [e["step"] for e in step_events(ok)] == ["check", "warn", "shape", "n"], ok
    assert step_events(ok, "warn")[0]["level"] == "warn"
    skipped = all_items(tenant, j["id"], status="Skipped")
    assert [i["index"] for i in skipped] == [0, 2, 4], skipped
    # synchronous: a skip is a 200 with status Skipped; continue shows the warning
    r = tenant.post("/v1/workflows/%s:run" % wf, json={"ref": "s", "data": {}})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "Skipped" and r.json()["error"]["code"] == "ValidationFailed"
    r = tenant.post("/v1/workflows/%s:run" % wf, json={"ref": "s", "data": {"ok": 1}})
    assert r.status_code == 200 and r.json()["status"] == "Succeeded", r.text
    assert r.json()["warnings"][0]["code"] == "Soft", r.text


# ---- per-step counts and filters ------------------------------------------------------------

def test_per_step_counts_match_injected(tenant):
    wf = make_workflow(tenant, [
        {"name": "check", "type": "validate",
         "schema": {"type": "object", "properties": {"price": {"minimum": 0}}}},
        {"name": "shape", "type": "map", "onError": "skip",
         "ops": [{"op": "copy", "from": "opt", "path": "opt2"}]},
        {"name": "n", "type": "noop"}])
    its = []
    for i in range(60):
        d = {"price": -1 if i % 3 == 0 else i}
        if i % 2 == 0:
            d["opt"] = i
        its.append({"ref": "k%d" % i, "data": d})
    bad = [i for i in range(60) if i % 3 == 0]
    good = [i for i in range(60) if i % 3]
    with_opt = [i for i in good if i % 2 == 0]
    j = run_job(tenant, its, wf)
    assert step_counts(j) == {"check": (len(good), len(bad), 0),
                              "shape": (len(with_opt), 0, len(good) - len(with_opt)),
                              "n": (len(with_opt), 0, 0)}, j
    assert [s["name"] for s in j["steps"]] == ["check", "shape", "n"], j
    c = j["counts"]
    assert (c["succeeded"], c["failed"], c["skipped"]) == (20, 20, 20), c
    # the items list filters by the step and code that stopped the item
    f = all_items(tenant, j["id"], status="Failed", step="check", code="ValidationFailed")
    assert [i["index"] for i in f] == bad, f
    s = all_items(tenant, j["id"], step="shape")
    assert sorted(i["index"] for i in s) == sorted(set(good) - set(with_opt)), s
    assert all(i["status"] == "Skipped" and i["failedStep"] == "shape" for i in s), s
    assert all_items(tenant, j["id"], step="n") == []
    assert all_items(tenant, j["id"], code="MapFailed", status="Failed") == []
    m = all_items(tenant, j["id"], code="MapFailed")
    assert len(m) == 20 and all(i["error"]["code"] == "MapFailed" for i in m), m
    # filters survive paging
    vals, pages = list_all(tenant, "/v1/jobs/%s/items" % j["id"],
                           params={"status": "Failed", "step": "check", "limit": 7})
    assert [i["index"] for i in vals] == bad and len(pages) == 3, pages


# ---- http data flow, events, secrets -----------------------------------------------------------

def test_http_response_feeds_later_steps(wfc, upstream):
    c = coll()
    upstream.script("/create", [{"status": 201, "json": {"id": 4711, "tags": ["new"]},
                                 "headers": {"Location": "/things/4711"}}])
    wf = make_workflow(wfc, [
        {"name": "push", "type": "http", "method": "POST", "url": upstream.url + "/create/{{ref}}",
         "body": {"sku": "{{data.sku}}", "price": "{{data.price}}", "const": [1, None]}},
        {"name": "link", "type": "map", "ops": [
            {"op": "set", "path": "remoteId", "value": "{{steps.push.body.id}}"},
            {"op": "set", "path": "remoteStatus", "value": "{{steps.push.status}}"},
            {"op": "set", "path": "where", "value": "at {{steps.push.headers.location}}"}]},
        {"name": "save", "type": "upsert", "collection": c}])
    j = run_job(wfc, [{"ref": "p1", "data": {"sku": "P1", "price": 9.5}}], wf)
    assert j["status"] == "Succeeded", j
    d = doc(wfc, c, "p1").json()["data"]
    assert d == {"sku": "P1", "price": 9.5, "remoteId": 4711, "remoteStatus": 201,
                 "where": "at /things/4711"}, d
    (call,) = upstream.log("/create")
    assert call["method"] == "POST" and call["path"] == "/create/p1"
    assert call["json"] == {"sku": "P1", "price": 9.5, "const": [1, None]}, call
    assert call["headers"]["Content-Type"] == "application/json"
    # the response is recorded on the item
    res = results(wfc, j["id"])[0]
    push = res["result"]["steps"]["push"]
    assert push["status"] == 201 and push["body"] == {"id": 4711, "tags": ["new"]}, res
    assert push["headers"]["location"] == "/things/4711", push


def test_http_default_body_is_current_data_and_get_has_none(wfc, upstream):
    wf = make_workflow(wfc, [
        {"name": "shape", "type": "map", "ops": [{"op": "set", "path": "x", "value": "{{ref}}"}]},
        {"name": "push", "type": "http", "method": "PUT", "url": upstream.url + "/put/{{ref}}"},
        {"name": "look", "type": "http", "method": "GET",
         "url": upstream.url + "/get?q={{data.q}}&r={{ref}}"}])
    j = run_job(wfc, [{"ref": "a b/c", "data": {"q": "x&y=1"}}], wf)
    assert j["status"] == "Succeeded", j
    (put,) = upstream.log("/put")
    assert put["method"] == "PUT" and put["json"] == {"q": "x&y=1", "x": "a b/c"}, put
    assert put["path"] == "/put/a%20b%2Fc", put  # URL template values are percent-encoded
    (get,) = upstream.log("/get")
    assert get["method"] == "GET" and get["body"] == "", get
    assert get["path"] == "/get?q=x%26y%3D1&r=a%20b%2Fc", get


def test_events_per_step_and_secrets_masked(wfc, upstream):
    wf = make_workflow(wfc, [
        {"name": "check", "type": "validate", "schema": {"type": "object"}},
        {"name": "push", "type": "http", "method": "POST",
         "url": upstream.url + "/sec/{{ref}}",
         "headers": {"Authorization": "Bearer {{secrets.shop}}", "X-Ref": "{{ref}}"}},
        {"name": "n", "type": "noop"}])
    j = run_job(wfc, [{"ref": "e1", "data": {"a": 1}}], wf)
    assert j["status"] == "Succeeded", j
    it = item_detail(wfc, j["id"], 0)
    evs = step_events(it)
    assert [(e["step"], e["type"]) for e in evs] == [("check", "validate"), ("push", "http"),
                                                     ("n", "noop")], evs
    for e in evs:
        assert e["attempt"] == 1 and isinstance(e["durationMs"], int) and e["durationMs"] >= 0, e
        assert e["level"] == "info" and e["code"] and e["message"], e
        assert isinstance(e["at"], str) and e["at"].endswith("Z"), e
    h = evs[1]
    assert h["method"] == "POST" and h["status"] == 200, h
    assert isinstance(h["latencyMs"], int) and h["latencyMs"] >= 0, h
    assert h["url"] == upstream.url + "/sec/e1", h
    # the upstream received the secret, nothing the API shows contains it
    (call,) = upstream.log("/sec")
    assert call["headers"]["Authorization"] == "Bearer " + SHOP_SECRET
    assert call["path"] == "/sec/e1"
    assert call["headers"]["X-Ref"] == "e1"
    for path in ("/v1/jobs/%s" % j["id"], "/v1/jobs/%s/items/0" % j["id"],
                 "/v1/jobs/%s/items" % j["id"], "/v1/jobs/%s/results" % j["id"],
                 "/v1/workflows/" + wf):
        r = wfc.get(path)
        assert r.status_code == 200 and SHOP_SECRET not in r.text, (path, r.text)
    r = wfc.post("/v1/workflows/%s:run" % wf, json={"ref": "e2", "data": {}})
    assert r.status_code == 200, r.text
    assert SHOP_SECRET not in r.text, r.text
    assert "{{secrets.shop}}" in wfc.get("/v1/workflows/" + wf).text


def test_secrets_not_available_to_bodies_or_maps(wfc, upstream):
    """Secrets are for header templates only (and bodies marked secretBody): a URL,
    body or map that names one is refused when the workflow is defined (test_37 has
    the rest)."""
    r = put_workflow(wfc, uniq("wf"), [{"name": "shape", "type": "map", "ops": [
        {"op": "set", "path": "leak", "value": "{{secrets.shop}}"}]}])
    assert_error(r, 422, "InvalidField", "steps[0].ops[0].value")
    assert SHOP_SECRET not in r.text
    r = put_workflow(wfc, uniq("wf"), [{"name": "push", "type": "http", "url": upstream.url + "/b",
                                        "body": {"leak": "{{secrets.shop}}"}}])
    assert_error(r, 422, "InvalidField", "steps[0].body.leak")
    r = put_workflow(wfc, uniq("wf"), [{"name": "push", "type": "http",
                                        "url": upstream.url + "/b?t={{secrets.shop}}"}])
    assert_error(r, 422, "InvalidField", "steps[0].url")
    assert upstream.log("/b") == []


def test_url_template_error_fails_item(wfc, upstream):
    wf = make_workflow(wfc, [{"name": "push", "type": "http",
                              "url": upstream.url + "/t/{{data.id}}"}])
    j = run_job(wfc, [{"ref": "a", "data": {"id": 1}}, {"ref": "b", "data": {}}], wf)
    assert step_counts(j) == {"push": (1, 1, 0)}, j
    it = item_detail(wfc, j["id"], 1)
    assert it["error"]["code"] == "TemplateError" and it["failedStep"] == "push", it
    assert [e["path"] for e in upstream.log("/t")] == ["/t/1"]


def test_http_failures_filter_by_step_and_code(wfc, upstream):
    upstream.script("/f/bad", [{"status": 500}])
    upstream.script("/f/gone", [{"status": 404}])
    wf = make_workflow(wfc, [
        {"name": "check", "type": "validate", "schema": {"type": "object", "required": ["p"]}},
        {"name": "push", "type": "http", "url": upstream.url + "/f/{{data.p}}",
         "retry": {"maxAttempts": 2, "backoffMs": 1}}])
    its = [{"ref": "r0", "data": {"p": "ok"}}, {"ref": "r1", "data": {}},
           {"ref": "r2", "data": {"p": "bad"}}, {"ref": "r3", "data": {"p": "gone"}},
           {"ref": "r4", "data": {"p": "ok"}}]
    j = run_job(wfc, its, wf)
    assert step_counts(j) == {"check": (4, 1, 0), "push": (2, 2, 0)}, j
    f = all_items(wfc, j["id"], status="Failed", step="push", code="UpstreamError")
    assert [i["index"] for i in f] == [2, 3], f
    assert all(i["failedStep"] == "push" and i["error"]["code"] == "UpstreamError" for i in f)
    f = all_items(wfc, j["id"], status="Failed", step="check")
    assert [i["index"] for i in f] == [1], f
    assert all_items(wfc, j["id"], status="Failed", step="push", code="ValidationFailed") == []
    # 500 is retried, 404 is not
    assert len(upstream.log("/f/bad")) == 2 and len(upstream.log("/f/gone")) == 1
    ev = step_events(item_detail(wfc, j["id"], 3), "push")[-1]
    assert ev["status"] == 404 and ev["level"] == "error", ev


# ---- synchronous runs -----------------------------------------------------------------------

def test_run_one_item(wfc, upstream):
    c = coll()
    wf = make_workflow(wfc, [
        {"name": "check", "type": "validate", "schema": SCHEMA},
        {"name": "save", "type": "upsert", "collection": c},
        {"name": "push", "type": "http", "url": upstream.url + "/run/{{ref}}"}])
    r = wfc.post("/v1/workflows/%s:run" % wf, json={"ref": "R1", "data": {"sku": "A", "price": 2}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ref"] == "R1" and body["status"] == "Succeeded", body
    assert body["result"]["steps"]["save"]["version"] == 1, body
    assert body["result"]["steps"]["push"]["status"] == 200, body
    assert [e["step"] for e in body["events"]] == ["check", "save", "push"], body
    assert body["warnings"] == []
    assert doc(wfc, c, "R1").json()["data"] == {"sku": "A", "price": 2}
    (call,) = upstream.log("/run")
    assert call["idempotency_key"] and call["idempotency_key"].endswith(":push"), call
    # a failing step: 422 with that step's code and target
    r = wfc.post("/v1/workflows/%s:run" % wf, json={"ref": "R2", "data": {"sku": "A", "price": -2}})
    err = assert_error(r, 422, "ValidationFailed", "steps.check")
    assert "/price" in err["message"], err
    upstream.script("/run/R3", [{"status": 503}])
    r = wfc.post("/v1/workflows/%s:run" % wf, json={"ref": "R3", "data": {"sku": "B", "price": 1}})
    assert_error(r, 422, "UpstreamError", "steps.push")


def test_run_validate_only_stores_and_calls_nothing(wfc, upstream):
    c = coll()
    wf = make_workflow(wfc, [
        {"name": "check", "type": "validate", "schema": SCHEMA},
        {"name": "shape", "type": "map", "ops": [{"op": "set", "path": "x", "value": 1}]},
        {"name": "save", "type": "upsert", "collection": c},
        {"name": "push", "type": "http", "url": upstream.url + "/vo"},
        {"name": "stop", "type": "fail"}])
    r = wfc.post("/v1/workflows/%s:run" % wf, params={"validateOnly": "true"},
                 json={"ref": "V1", "data": {"sku": "A", "price": 1}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "Succeeded" and body["validateOnly"] is True, body
    assert [e["step"] for e in body["events"]] == ["check"], body
    r = wfc.post("/v1/workflows/%s:run?validateOnly=true" % wf,
                 json={"ref": "V2", "data": {"sku": "", "price": "x"}})
    err = assert_error(r, 422, "ValidationFailed", "steps.check")
    assert "/sku" in err["message"] and "/price" in err["message"], err
    assert upstream.log() == []
    assert doc(wfc, c, "V1").status_code == 404
    assert list_all(wfc, "/v1/collections/" + c)[0] == []
    assert_error(wfc.post("/v1/workflows/%s:run?validateOnly=maybe" % wf,
                          json={"ref": "V3", "data": {}}), 400, "InvalidParameter", "validateOnly")


def test_run_errors(tenant):
    assert_error(tenant.post("/v1/workflows/%s:run" % uniq("none"), json={"ref": "a"}), 404,
                 "NotFound")
    wf = make_workflow(tenant, [{"type": "noop"}])
    for body in ({"data": {}}, {"ref": ""}, {"ref": 5}, {"ref": "a", "extra": 1}, [1]):
        assert_error(tenant.post("/v1/workflows/%s:run" % wf, json=body), 422, "InvalidItem")
    r = tenant.post("/v1/workflows/%s:run" % wf, data=b"{",
                    headers={"Content-Type": "application/json"})
    assert_error(r, 400, "InvalidJson")
    # built-ins run too
    c = coll()
    r = tenant.post("/v1/workflows/%s.upsert:run" % c, json={"ref": "z", "data": {"a": 1}})
    assert r.status_code == 200 and r.json()["status"] == "Succeeded", r.text
    assert doc(tenant, c, "z").json()["data"] == {"a": 1}


# ---- POST /v1/jobs/{id}:retry ---------------------------------------------------------------

def test_retry_failed_items(wfc, upstream):
    c = coll()
    upstream.script("/rt/r3", [{"status": 500}])
    upstream.script("/rt/r7", [{"status": 502}])
    wf = make_workflow(wfc, [
        {"name": "check", "type": "validate", "schema": {"type": "object", "required": ["v"]}},
        {"name": "push", "type": "http", "url": upstream.url + "/rt/{{ref}}"},
        {"name": "save", "type": "upsert", "collection": c}])
    its = [{"ref": "r%d" % i, "data": {"v": i}} for i in range(10)]
    its[5] = {"ref": "r5", "data": {}}
    j = run_job(wfc, its, wf)
    assert j["counts"]["failed"] == 3 and j["counts"]["succeeded"] == 7, j
    upstream.reset()  # the upstream recovers
    r = wfc.post("/v1/jobs/%s:retry" % j["id"])
    assert r.status_code == 202, r.text
    child = r.json()
    assert child["parentJob"] == j["id"] and child["workflow"] == wf, child
    assert child["workflowVersion"] == 1 and child["counts"]["total"] == 3, child
    assert r.headers["Location"].endswith("/v1/jobs/" + child["id"]), r.headers
    done = wfc.wait_job(child["id"])
    kids = all_items(wfc, child["id"])
    assert [(k["index"], k["ref"], k["parentIndex"]) for k in kids] == [
        (0, "r3", 3), (1, "r5", 5), (2, "r7", 7)], kids
    assert done["counts"]["succeeded"] == 2 and done["counts"]["failed"] == 1, done
    assert step_counts(done) == {"check": (2, 1, 0), "push": (2, 0, 0), "save": (2, 0, 0)}, done
    assert sorted(e["path"] for e in upstream.log("/rt")) == ["/rt/r3", "/rt/r7"]
    assert doc(wfc, c, "r3").status_code == 200
    # items of the parent are untouched
    assert wfc.get("/v1/jobs/" + j["id"]).json()["counts"]["failed"] == 3
    # the child's failed item can be retried again; a job without failures cannot
    r = wfc.post("/v1/jobs/%s:retry" % done["id"])
    assert r.status_code == 202 and r.json()["counts"]["total"] == 1, r.text
    wfc.wait_job(r.json()["id"])  # items are copied in the background (staging)
    gk = all_items(wfc, r.json()["id"])
    assert [(k["ref"], k["parentIndex"]) for k in gk] == [("r5", 1)], gk
    ok = run_job(wfc, items(2, prefix="ok-"), "noop")
    assert_error(wfc.post("/v1/jobs/%s:retry" % ok["id"]), 422, "EmptyJob")


def test_retry_while_running_conflicts(wfc, upstream):
    upstream.script("/hold", [{"delay_ms": 1500}])
    wf = make_workflow(wfc, [{"name": "push", "type": "http", "url": upstream.url + "/hold"}])
    job = submitted(wfc.submit(items(2, prefix="h-"), workflow=wf))
    assert_error(wfc.post("/v1/jobs/%s:retry" % job["id"]), 409, "Conflict")
    done = wfc.wait_job(job["id"], timeout=60)
    assert done["status"] == "Succeeded", done
    assert_error(wfc.post("/v1/jobs/%s:retry" % job["id"]), 422, "EmptyJob")


def test_retry_unknown_or_foreign_job(wfc, wf_server):
    assert_error(wfc.post("/v1/jobs/job_doesnotexist000000000000:retry"), 404, "NotFound")
    j = run_job(wfc, [{"ref": "x"}], make_workflow(wfc, [{"type": "fail"}]))
    other = Client(wf_server, wf_server.create_key(uniq("other")))
    assert_error(other.post("/v1/jobs/%s:retry" % j["id"]), 404, "NotFound")
    r = wfc.post("/v1/jobs/%s:retry" % j["id"])
    assert r.status_code == 202, r.text
