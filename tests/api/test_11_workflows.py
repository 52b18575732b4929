"""Workflow definitions: PUT/GET/LIST/DELETE /v1/workflows, validation on write with
precise targets, tenant scoping, versions (a job keeps the version it started with)."""
import pytest

from conftest import (Client, assert_error, get_abs, items, list_all, make_workflow,
                      put_workflow, run_job, submitted, uniq)

NOOP = {"type": "noop"}


def test_put_creates_then_versions(tenant):
    name = uniq("wf")
    r = put_workflow(tenant, name, [NOOP], description="first")
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == tenant.server.url + "/v1/workflows/" + name
    body = r.json()
    assert body["name"] == name and body["version"] == 1, body
    assert body["definition"] == {"description": "first", "steps": [NOOP]}, body
    assert isinstance(body["createdAt"], str) and body["createdAt"].endswith("Z"), body

    steps2 = [{"name": "n1", "type": "noop"}, {"name": "n2", "type": "noop"}]
    r = put_workflow(tenant, name, steps2)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["definition"] == {"steps": steps2}

    r = tenant.get("/v1/workflows/" + name)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["definition"]["steps"] == steps2
    r = tenant.get("/v1/workflows/" + name, params={"version": 1})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1 and r.json()["definition"]["steps"] == [NOOP]
    assert_error(tenant.get("/v1/workflows/" + name, params={"version": 3}), 404, "NotFound")


def test_get_and_delete_unknown(tenant):
    assert_error(tenant.get("/v1/workflows/" + uniq("none")), 404, "NotFound", "name")
    assert_error(tenant.delete("/v1/workflows/" + uniq("none")), 404, "NotFound", "name")
    # built-ins are not stored definitions
    assert_error(tenant.get("/v1/workflows/noop"), 404, "NotFound")


def test_delete_removes_name(tenant):
    name = make_workflow(tenant, [NOOP])
    r = tenant.delete("/v1/workflows/" + name)
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert_error(tenant.get("/v1/workflows/" + name), 404, "NotFound")
    assert name not in [w["name"] for w in list_all(tenant, "/v1/workflows")[0]]
    assert_error(tenant.delete("/v1/workflows/" + name), 404, "NotFound")
    # a deleted workflow no longer takes jobs
    r = tenant.submit(items(1), workflow=name)
    assert_error(r, 422, "UnknownWorkflow")
    # the name can be used again; versions are never reused
    r = put_workflow(tenant, name, [NOOP])
    assert r.status_code in (200, 201), r.text
    assert r.json()["version"] == 2, r.json()
    assert tenant.get("/v1/workflows/" + name).json()["version"] == 2


def test_recreate_after_delete_answers_201(tenant):
    """PUT of a name that does not exist (any more) creates it: 201 Created."""
    name = make_workflow(tenant, [NOOP])
    assert tenant.delete("/v1/workflows/" + name).status_code == 204
    r = put_workflow(tenant, name, [NOOP])
    assert r.status_code == 201, (r.status_code, r.text)


def test_list_pages_with_nextlink(tenant):
    names = sorted(uniq("ls%d" % i) for i in range(5))
    for n in names:
        assert put_workflow(tenant, n, [NOOP]).status_code == 201
    put_workflow(tenant, names[0], [NOOP, {"name": "second", "type": "noop"}])  # version 2
    r = tenant.get("/v1/workflows", params={"limit": 2})
    assert r.status_code == 200, r.text
    first = r.json()
    assert len(first["value"]) == 2 and "nextLink" in first, first
    vals, pages = list_all(tenant, "/v1/workflows", params={"limit": 2})
    assert len(pages) == 3, pages
    got = [w["name"] for w in vals]
    assert sorted(got) == names and len(set(got)) == 5, got
    assert got == sorted(got), got  # listed by name
    by = {w["name"]: w for w in vals}
    assert by[names[0]]["version"] == 2 and len(by[names[0]]["definition"]["steps"]) == 2
    assert all(by[n]["version"] == 1 for n in names[1:])
    r = get_abs(tenant, first["nextLink"])
    assert r.status_code == 200 and [w["name"] for w in r.json()["value"]] == names[2:4]
    assert_error(tenant.get("/v1/workflows", params={"limit": 0}), 400, "InvalidParameter")


def test_tenant_scoped(server, tenant):
    other = Client(server, server.create_key(uniq("other")))
    name = make_workflow(tenant, [NOOP], description="mine")
    assert_error(other.get("/v1/workflows/" + name), 404, "NotFound")
    assert_error(other.delete("/v1/workflows/" + name), 404, "NotFound")
    assert list_all(other, "/v1/workflows")[0] == []
    assert_error(other.submit(items(1), workflow=name), 422, "UnknownWorkflow")
    # the other tenant has its own namespace: same name, independent versions
    r = put_workflow(other, name, [NOOP, {"name": "b", "type": "noop"}], description="theirs")
    assert r.status_code == 201 and r.json()["version"] == 1, r.text
    assert tenant.get("/v1/workflows/" + name).json()["definition"]["description"] == "mine"
    assert other.get("/v1/workflows/" + name).json()["definition"]["description"] == "theirs"
    assert tenant.delete("/v1/workflows/" + name).status_code == 204
    assert other.get("/v1/workflows/" + name).status_code == 200


def test_needs_api_key(server):
    anon = Client(server, None)
    assert_error(anon.get("/v1/workflows"), 401, "Unauthorized")
    assert_error(anon.put("/v1/workflows/x", json={"steps": [NOOP]}), 401, "Unauthorized")
    assert_error(anon.post("/v1/workflows/x:run", json={"ref": "a"}), 401, "Unauthorized")


@pytest.mark.parametrize("name", ["noop", "products.upsert", "a.patch", "c.delete", "bad name",
                                  "x" * 129, "sl/ash"])
def test_reserved_or_bad_names(tenant, name):
    r = tenant.put("/v1/workflows/" + name.replace("/", "%2F"), json={"steps": [NOOP]})
    assert_error(r, 400, "InvalidParameter", "name")


HTTP = {"type": "http", "url": "http://example.com/x"}

BAD = [
    # (definition, target)
    ({"steps": [NOOP, {"type": "http", "url": "ftp://x/"}]}, "steps[1].url"),
    ({"steps": [{"type": "http"}]}, "steps[0].url"),
    ({"steps": [{"type": "http", "url": "http://x/{{ref"}]}, "steps[0].url"),
    ({"steps": [{"type": "http", "url": "http://x/{{data..a}}"}]}, "steps[0].url"),
    ({"steps": [dict(HTTP, method="TRACE")]}, "steps[0].method"),
    ({"steps": [dict(HTTP, headers=[])]}, "steps[0].headers"),
    ({"steps": [dict(HTTP, headers={"X-A": 1})]}, "steps[0].headers.X-A"),
    ({"steps": [dict(HTTP, headers={"X-A": "a\r\nX-B: b"})]}, "steps[0].headers.X-A"),
    ({"steps": [dict(HTTP, headers={"Idempotency-Key": "mine"})]},
     "steps[0].headers.Idempotency-Key"),
    ({"steps": [dict(HTTP, headers={"Authorization": "Bearer {{secrets.}}"})]},
     "steps[0].headers.Authorization"),
    ({"steps": [dict(HTTP, timeoutMs=5)]}, "steps[0].timeoutMs"),
    ({"steps": [dict(HTTP, timeoutMs="1000")]}, "steps[0].timeoutMs"),
    ({"steps": [dict(HTTP, retry={"maxAttempts": 0})]}, "steps[0].retry.maxAttempts"),
    ({"steps": [dict(HTTP, retry={"maxAttempts": 21})]}, "steps[0].retry.maxAttempts"),
    ({"steps": [dict(HTTP, retry={"backoffMs": -1})]}, "steps[0].retry.backoffMs"),
    ({"steps": [dict(HTTP, retry={"jitter": True})]}, "steps[0].retry.jitter"),
    ({"steps": [dict(HTTP, retry=3)]}, "steps[0].retry"),
    ({"steps": [dict(HTTP, bodyy="{{data}}")]}, "steps[0].bodyy"),
    ({"steps": [dict(HTTP, onError="ignore")]}, "steps[0].onError"),
    ({"steps": [{"type": "noop", "url": "http://x/"}]}, "steps[0].url"),
    ({"steps": [{"type": "nope"}]}, "steps[0].type"),
    ({"steps": [{"name": "x"}]}, "steps[0].type"),
    ({"steps": [{"type": 7}]}, "steps[0].type"),
    ({"steps": [{"name": "a b", "type": "noop"}]}, "steps[0].name"),
    ({"steps": [{"name": "x" * 65, "type": "noop"}]}, "steps[0].name"),
    ({"steps": [NOOP, NOOP]}, "steps[1].name"),
    ({"steps": [{"name": "s", "type": "noop"}, {"name": "t", "type": "noop"},
                {"name": "s", "type": "fail"}]}, "steps[2].name"),
    ({"steps": [NOOP, 5]}, "steps[1]"),
    ({"steps": [{"type": "validate"}]}, "steps[0].schema"),
    ({"steps": [NOOP, {"type": "validate", "schema": {"type": "object", "properties": {
        "price": {"minimun": 0}}}}]}, "steps[1].schema.properties.price.minimun"),
    ({"steps": [{"type": "validate", "schema": {"type": "objec"}}]}, "steps[0].schema.type"),
    ({"steps": [{"type": "validate", "schema": {"properties": {"a": {"minimum": "x"}}}}]},
     "steps[0].schema.properties.a.minimum"),
    ({"steps": [{"type": "map"}]}, "steps[0].ops"),
    ({"steps": [{"type": "map", "ops": [{"op": "move", "path": "a"}]}]}, "steps[0].ops[0].op"),
    ({"steps": [{"type": "map", "ops": [{"op": "set", "path": "a", "value": 1},
                                        {"op": "set", "path": "b", "value": "{{data.}}"}]}]},
     "steps[0].ops[1].value"),
    ({"steps": [{"type": "map", "ops": [{"op": "set", "path": "a..b", "value": 1}]}]},
     "steps[0].ops[0].path"),
    ({"steps": [{"type": "map", "ops": [{"op": "copy", "path": "a"}]}]}, "steps[0].ops[0].from"),
    ({"steps": [{"type": "map", "ops": [{"op": "set", "path": "a", "value": 1, "from": "b"}]}]},
     "steps[0].ops[0].from"),
    ({"steps": [{"type": "upsert"}]}, "steps[0].collection"),
    ({"steps": [{"type": "upsert", "collection": "a/b"}]}, "steps[0].collection"),
    ({"steps": [{"type": "delete", "collection": "c", "refFrom": "data..sku"}]},
     "steps[0].refFrom"),
    ({"steps": [{"type": "patch", "collection": "c", "refFrom": 5}]}, "steps[0].refFrom"),
    ({"steps": [{"type": "fail", "code": "bad code"}]}, "steps[0].code"),
    ({"steps": []}, "steps"),
    ({"steps": "x"}, "steps"),
    ({}, "steps"),
    ({"steps": [NOOP] * 33}, "steps"),
    ({"steps": [NOOP], "extra": 1}, "extra"),
    ({"steps": [NOOP], "description": 5}, "description"),
]


@pytest.mark.parametrize("definition,target", BAD, ids=[t for _, t in BAD])
def test_invalid_definition_names_the_field(tenant, definition, target):
    name = uniq("bad")
    r = tenant.put("/v1/workflows/" + name, json=definition)
    assert_error(r, 422, "InvalidField", target)
    assert_error(tenant.get("/v1/workflows/" + name), 404, "NotFound")  # nothing stored


def test_invalid_body_template_names_the_string(tenant):
    """A bad template deep inside an http body is reported at its own location."""
    r = put_workflow(tenant, uniq("bad"), [dict(HTTP, body={"a": ["ok", "{{data"]})])
    assert_error(r, 422, "InvalidField", "steps[0].body.a[1]")


def test_invalid_put_keeps_previous_version(tenant):
    name = make_workflow(tenant, [NOOP])
    r = put_workflow(tenant, name, [NOOP, {"type": "http", "url": "nope"}])
    assert_error(r, 422, "InvalidField", "steps[1].url")
    got = tenant.get("/v1/workflows/" + name).json()
    assert got["version"] == 1 and got["definition"]["steps"] == [NOOP], got


@pytest.mark.parametrize("body", [b"{", b"", b"[1,", b'{"steps":[],"steps":[]}'])
def test_invalid_json_body(tenant, body):
    r = tenant.put("/v1/workflows/" + uniq("bad"), data=body,
                   headers={"Content-Type": "application/json"})
    assert_error(r, 400, "InvalidJson")


def test_non_object_definition(tenant):
    for body in (b"[]", b'"steps"', b"5", b"null"):
        r = tenant.put("/v1/workflows/" + uniq("bad"), data=body,
                       headers={"Content-Type": "application/json"})
        assert_error(r, 422, "InvalidField")


def test_every_step_type_accepted(tenant):
    steps = [
        {"name": "check", "type": "validate", "schema": {
            "type": "object", "required": ["sku", "price"],
            "properties": {"sku": {"type": "string", "minLength": 1, "pattern": "^[A-Z]"},
                           "price": {"type": "number", "minimum": 0},
                           "tags": {"type": "array", "items": {"type": "string"}},
                           "kind": {"enum": ["a", "b"]}},
            "additionalProperties": True}},
        {"name": "shape", "type": "map", "ops": [
            {"op": "set", "path": "title", "value": "{{data.sku}} ({{ref}})"},
            {"op": "copy", "from": "price", "path": "cost.amount"},
            {"op": "rename", "from": "tags", "path": "labels"},
            {"op": "remove", "path": "kind"}]},
        {"name": "save", "type": "upsert", "collection": "products", "refFrom": "data.sku",
         "onError": "skip"},
        {"name": "touch", "type": "patch", "collection": "products"},
        {"name": "drop", "type": "delete", "collection": "old", "onError": "continue"},
        {"name": "push", "type": "http", "method": "PUT",
         "url": "https://shop.example/items/{{ref}}?v={{data.price}}",
         "headers": {"Authorization": "Bearer {{secrets.shop_token}}", "X-Job": "{{job}}"},
         "body": {"id": "{{ref}}", "p": "{{data.price}}", "const": [1, True, None]},
         "timeoutMs": 5000, "retry": {"maxAttempts": 5, "backoffMs": 100, "maxBackoffMs": 1000}},
        {"name": "get", "type": "http", "method": "GET", "url": "http://shop.example/{{ref}}"},
        {"name": "n", "type": "noop"},
        {"name": "f", "type": "fail", "code": "Rejected", "message": "no", "onError": "continue"},
    ]
    r = put_workflow(tenant, uniq("all"), steps, description="every type")
    assert r.status_code == 201, r.text
    assert r.json()["definition"]["steps"] == steps
    # secrets stay references in the stored definition
    assert "{{secrets.shop_token}}" in r.text


def test_job_records_workflow_version(tenant):
    name = make_workflow(tenant, [NOOP])
    j1 = run_job(tenant, items(3, prefix=uniq("v1") + "-"), name)
    assert j1["status"] == "Succeeded" and j1["workflowVersion"] == 1, j1
    put_workflow(tenant, name, [{"type": "fail", "code": "Nope"}])
    j2 = run_job(tenant, items(3, prefix=uniq("v2") + "-"), name)
    assert j2["status"] == "Failed" and j2["workflowVersion"] == 2, j2
    assert tenant.get("/v1/jobs/" + j1["id"]).json()["workflowVersion"] == 1
    # built-ins have no version
    jb = run_job(tenant, items(1, prefix=uniq("b") + "-"), "noop")
    assert "workflowVersion" not in jb, jb


def test_editing_never_changes_a_submitted_job(wfc, upstream):
    """PUT v1 (a slow http step), submit, PUT v2 that fails everything: the job still
    runs v1 and succeeds."""
    upstream.script("/slow", [{"delay_ms": 700}])
    name = make_workflow(wfc, [
        {"name": "push", "type": "http", "url": upstream.url + "/slow/{{ref}}"},
        {"name": "n", "type": "noop"}])
    job = submitted(wfc.submit(items(5, prefix=uniq("e") + "-"), workflow=name))
    assert job["workflowVersion"] == 1, job
    r = put_workflow(wfc, name, [{"name": "push", "type": "fail", "code": "Broken"}])
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    done = wfc.wait_job(job["id"], timeout=60)
    assert done["status"] == "Succeeded" and done["outcome"] == "AllSucceeded", done
    assert done["workflowVersion"] == 1, done
    assert {s["name"] for s in done["steps"]} == {"push", "n"}, done
    assert len(upstream.log("/slow")) == 5
    # a new job takes v2
    j2 = run_job(wfc, items(2, prefix=uniq("e2") + "-"), name)
    assert j2["workflowVersion"] == 2 and j2["status"] == "Failed", j2
    assert j2["error"]["code"] in ("AllItemsFailed", "Broken"), j2


def test_deleting_never_breaks_a_submitted_job(wfc, upstream):
    upstream.script("/slow", [{"delay_ms": 500}])
    name = make_workflow(wfc, [{"name": "push", "type": "http", "url": upstream.url + "/slow"}])
    job = submitted(wfc.submit(items(3, prefix=uniq("d") + "-"), workflow=name))
    assert wfc.delete("/v1/workflows/" + name).status_code == 204
    done = wfc.wait_job(job["id"], timeout=60)
    assert done["status"] == "Succeeded" and done["counts"]["succeeded"] == 3, done
