"""Webhooks: PUT/GET/LIST/DELETE /v1/hooks and the public events endpoint (HMAC
signature instead of an API key, tolerance window, replay by event id, secret rotation,
items from a path, tenant ownership of names)."""
import json
import time

import pytest
import requests

from conftest import (Client, assert_error, hook_sign, list_all, make_workflow, submitted,
                      uniq, wait_until)

S1 = "whsec_" + "a1" * 12 + "K1x9"
S2 = "whsec_" + "b2" * 12 + "K2y8"


def coll():
    return "h" + uniq("c").replace("-", "_")


def put_hook(c, name, **definition):
    return c.put("/v1/hooks/" + name, json=definition)


def make_hook(c, **definition):
    name = uniq("hook")
    definition.setdefault("secrets", [S1])
    definition.setdefault("refFrom", "id")
    r = put_hook(c, name, **definition)
    assert r.status_code == 201, r.text
    return name


def send(server, name, payload, secret=S1, t=None, event_id=None, headers=None, sig=None,
         raw=None):
    """POSTs an event without an API key; returns the response."""
    body = raw if raw is not None else json.dumps(payload).encode()
    h = {"Content-Type": "application/json"}
    if sig is None and secret is not None:
        sig = hook_sign(secret, body, t)
    if sig is not None:
        h["Sluice-Signature"] = sig
    if event_id is not None:
        h["Webhook-Id"] = event_id
    h.update(headers or {})
    return requests.post(server.url + "/v1/hooks/%s/events" % name, data=body, headers=h,
                         timeout=60)


def test_event_with_valid_signature_creates_a_job(server, tenant):
    c = coll()
    name = make_hook(tenant, workflow=c + ".upsert")
    r = send(server, name, {"id": "o-1", "total": 12})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["workflow"] == c + ".upsert" and job["counts"]["total"] == 1, job
    assert r.headers["Location"].endswith("/v1/jobs/" + job["id"])
    done = tenant.wait_job(job["id"])
    assert done["status"] == "Succeeded", done
    d = tenant.get("/v1/collections/%s/o-1" % c)
    assert d.status_code == 200 and d.json()["data"] == {"id": "o-1", "total": 12}, d.text
    # the job belongs to the hook's tenant
    other = Client(server, server.create_key(uniq("other")))
    assert_error(other.get("/v1/jobs/" + job["id"]), 404, "NotFound")


def test_event_runs_a_stored_workflow(tenant):
    c = coll()
    wf = make_workflow(tenant, [
        {"name": "check", "type": "validate", "schema": {"type": "object", "required": ["id"]}},
        {"name": "shape", "type": "map", "ops": [{"op": "set", "path": "via", "value": "hook"}]},
        {"name": "save", "type": "upsert", "collection": c}])
    name = make_hook(tenant, workflow=wf)
    r = send(tenant.server, name, {"id": 77, "x": 1})
    assert r.status_code == 202, r.text
    done = tenant.wait_job(r.json()["id"])
    assert done["status"] == "Succeeded" and done["workflowVersion"] == 1, done
    assert tenant.get("/v1/collections/%s/77" % c).json()["data"] == {"id": 77, "x": 1, "via": "hook"}


@pytest.mark.parametrize("case", ["wrong secret", "stale", "future", "missing", "malformed",
                                  "other body", "no v1"])
def test_bad_signature_is_401(tenant, case):
    name = make_hook(tenant, workflow="noop", toleranceSeconds=60)
    payload = {"id": "x"}
    body = json.dumps(payload).encode()
    now = int(time.time())
    sig = {"wrong secret": hook_sign("whsec_not-the-right-one-at-all", body),
           "stale": hook_sign(S1, body, now - 600),
           "future": hook_sign(S1, body, now + 600),
           "missing": None,
           "malformed": "t=abc,v1=zz",
           "other body": hook_sign(S1, b'{"id":"y"}'),
           "no v1": "t=%d" % now}[case]
    r = send(tenant.server, name, payload, secret=None, sig=sig)
    assert_error(r, 401, "Unauthorized")
    assert list_all(tenant, "/v1/jobs")[0] == []  # no work


def test_signature_header_forms(tenant):
    name = make_hook(tenant, workflow="noop")
    bad_v1 = "v1=" + "0" * 64
    forms = ("{v1} , {t}",            # any order, whitespace
             "{t},%s,{v1}" % bad_v1,  # any v1 may match
             "{t},v0=abc,{v1}")       # unknown schemes ignored
    for i, form in enumerate(forms):
        # a body per form: the same body again would be a replay of the first event
        body = json.dumps({"id": "f%d" % i}).encode()
        t, v1 = hook_sign(S1, body).split(",")
        sig = form.format(t=t, v1=v1)
        r = send(tenant.server, name, None, secret=None, sig=sig, raw=body)
        assert r.status_code == 202, (sig, r.text)


def test_custom_signature_header(tenant):
    name = make_hook(tenant, workflow="noop", signatureHeader="X-Shop-Signature")
    body = json.dumps({"id": "c1"}).encode()
    sig = hook_sign(S1, body)
    r = send(tenant.server, name, None, secret=None, sig=sig, raw=body)  # default header
    assert_error(r, 401, "Unauthorized")
    r = send(tenant.server, name, None, secret=None, raw=body, headers={"X-Shop-Signature": sig})
    assert r.status_code == 202, r.text


def test_api_key_is_not_a_signature(server, tenant):
    name = make_hook(tenant, workflow="noop")
    r = requests.post(server.url + "/v1/hooks/%s/events" % name, json={"id": "k"},
                      headers={"Authorization": "Bearer " + tenant.key}, timeout=30)
    assert_error(r, 401, "Unauthorized")


def test_replayed_event_returns_original_job(tenant):
    c = coll()
    name = make_hook(tenant, workflow=c + ".upsert")
    r1 = send(tenant.server, name, {"id": "r-1", "v": 1}, event_id="evt_001")
    assert r1.status_code == 202, r1.text
    job = r1.json()
    tenant.wait_job(job["id"])
    # the same event again (re-signed later, as a sender's retry would be)
    r2 = send(tenant.server, name, {"id": "r-1", "v": 1}, event_id="evt_001",
              t=int(time.time()) + 1)
    assert r2.status_code == 200, r2.text
    assert r2.json()["id"] == job["id"], r2.json()
    assert r2.headers.get("Idempotent-Replayed") == "true", r2.headers
    assert [j["id"] for j in list_all(tenant, "/v1/jobs")[0]] == [job["id"]]
    d = tenant.get("/v1/collections/%s/r-1" % c).json()
    assert d["version"] == 1 and d["lastJob"] == job["id"], d  # no new work
    # another event id is new work
    r3 = send(tenant.server, name, {"id": "r-1", "v": 2}, event_id="evt_002")
    assert r3.status_code == 202 and r3.json()["id"] != job["id"], r3.text
    tenant.wait_job(r3.json()["id"])
    assert tenant.get("/v1/collections/%s/r-1" % c).json()["version"] == 2


def test_replay_by_event_id_in_payload(tenant):
    name = make_hook(tenant, workflow="noop", eventIdFrom="event.id",
                     items={"from": "path", "path": "event.lines"}, refFrom="sku")
    payload = {"event": {"id": "E-9", "lines": [{"sku": "a"}, {"sku": "b"}, {"sku": 3}]}}
    r1 = send(tenant.server, name, payload)
    assert r1.status_code == 202, r1.text
    assert r1.json()["counts"]["total"] == 3
    r2 = send(tenant.server, name, payload)
    assert r2.status_code == 200 and r2.json()["id"] == r1.json()["id"], r2.text
    done = tenant.wait_job(r1.json()["id"])
    its = list_all(tenant, "/v1/jobs/%s/items" % done["id"])[0]
    assert [i["ref"] for i in its] == ["a", "b", "3"], its
    # replay keys are per hook: another hook with the same event id makes its own job
    name2 = make_hook(tenant, workflow="noop", eventIdFrom="event.id",
                      items={"from": "path", "path": "event.lines"}, refFrom="sku")
    r3 = send(tenant.server, name2, payload)
    assert r3.status_code == 202 and r3.json()["id"] != r1.json()["id"], r3.text


def test_secret_rotation(tenant):
    name = make_hook(tenant, workflow="noop", secrets=[S1])
    assert send(tenant.server, name, {"id": "1"}, secret=S1).status_code == 202
    assert_error(send(tenant.server, name, {"id": "2"}, secret=S2), 401, "Unauthorized")
    r = put_hook(tenant, name, workflow="noop", secrets=[S1, S2], refFrom="id")
    assert r.status_code == 200, r.text
    assert send(tenant.server, name, {"id": "3"}, secret=S1).status_code == 202
    assert send(tenant.server, name, {"id": "4"}, secret=S2).status_code == 202
    r = put_hook(tenant, name, workflow="noop", secrets=[S2], refFrom="id")
    assert r.status_code == 200, r.text
    assert_error(send(tenant.server, name, {"id": "5"}, secret=S1), 401, "Unauthorized")
    assert send(tenant.server, name, {"id": "6"}, secret=S2).status_code == 202


def test_get_masks_secrets(tenant):
    plain = "plain-secret-0123456789"
    name = make_hook(tenant, workflow="noop", secrets=[S1, S2, plain])
    for r in (tenant.get("/v1/hooks/" + name), tenant.get("/v1/hooks")):
        assert r.status_code == 200, r.text
        for s in (S1, S2, plain):
            assert s not in r.text, r.text
    h = tenant.get("/v1/hooks/" + name).json()
    assert h["name"] == name, h
    assert h["eventsUrl"] == tenant.server.url + "/v1/hooks/%s/events" % name, h
    assert h["definition"]["secrets"] == ["whsec_****K1x9", "whsec_****K2y8", "****6789"], h
    assert h["definition"]["workflow"] == "noop" and h["definition"]["refFrom"] == "id", h
    # the answer to PUT is masked too
    r = put_hook(tenant, name, workflow="noop", secrets=[S1], refFrom="id")
    assert r.status_code == 200 and S1 not in r.text, r.text


def test_name_is_owned_by_one_tenant(server, tenant):
    other = Client(server, server.create_key(uniq("other")))
    name = make_hook(tenant, workflow="noop")
    r = put_hook(other, name, workflow="noop", secrets=[S2], refFrom="id")
    assert_error(r, 409, "Conflict", "name")
    assert_error(other.get("/v1/hooks/" + name), 404, "NotFound")
    assert_error(other.delete("/v1/hooks/" + name), 404, "NotFound")
    assert name not in [h["name"] for h in list_all(other, "/v1/hooks")[0]]
    # the owner's hook still answers with the owner's secret
    assert send(server, name, {"id": "x"}, secret=S1).status_code == 202
    assert_error(send(server, name, {"id": "y"}, secret=S2), 401, "Unauthorized")


def test_list_get_delete(tenant):
    names = sorted(make_hook(tenant, workflow="noop") for _ in range(3))
    vals, pages = list_all(tenant, "/v1/hooks", params={"limit": 2})
    assert [h["name"] for h in vals] == names and len(pages) == 2, vals
    r = tenant.delete("/v1/hooks/" + names[0])
    assert r.status_code == 204, r.text
    assert_error(tenant.get("/v1/hooks/" + names[0]), 404, "NotFound")
    assert_error(tenant.delete("/v1/hooks/" + names[0]), 404, "NotFound")
    assert_error(send(tenant.server, names[0], {"id": "z"}), 404, "NotFound")
    assert_error(send(tenant.server, uniq("never"), {"id": "z"}), 404, "NotFound")


def test_needs_api_key_to_manage(server):
    anon = Client(server, None)
    assert_error(anon.put("/v1/hooks/x", json={"workflow": "noop", "secrets": [S1],
                                              "refFrom": "id"}), 401, "Unauthorized")
    assert_error(anon.get("/v1/hooks"), 401, "Unauthorized")


BAD_HOOKS = [
    ({"secrets": [S1], "refFrom": "id"}, "workflow"),
    ({"workflow": "noop", "refFrom": "id"}, "secrets"),
    ({"workflow": "noop", "secrets": [], "refFrom": "id"}, "secrets"),
    ({"workflow": "noop", "secrets": [S1, "short"], "refFrom": "id"}, "secrets[1]"),
    ({"workflow": "noop", "secrets": [S1] * 6, "refFrom": "id"}, "secrets"),
    ({"workflow": "noop", "secrets": [S1]}, "refFrom"),
    ({"workflow": "noop", "secrets": [S1], "refFrom": "id", "toleranceSeconds": 0},
     "toleranceSeconds"),
    ({"workflow": "noop", "secrets": [S1], "refFrom": "id", "items": {"from": "query"}},
     "items.from"),
    ({"workflow": "noop", "secrets": [S1], "refFrom": "id", "extra": 1}, "extra"),
]


@pytest.mark.parametrize("definition,target", BAD_HOOKS, ids=[t for _, t in BAD_HOOKS])
def test_invalid_hook_definitions(tenant, definition, target):
    name = uniq("bad")
    assert_error(put_hook(tenant, name, **definition), 422, "InvalidField", target)
    assert_error(tenant.get("/v1/hooks/" + name), 404, "NotFound")


def test_hook_needs_an_existing_workflow(tenant):
    r = put_hook(tenant, uniq("h"), workflow=uniq("nowf"), secrets=[S1], refFrom="id")
    assert_error(r, 422, "UnknownWorkflow", "workflow")
    for bad in (b"{", b""):
        r = tenant.put("/v1/hooks/" + uniq("h"), data=bad,
                       headers={"Content-Type": "application/json"})
        assert_error(r, 400, "InvalidJson")
    assert_error(put_hook(tenant, "bad name!", workflow="noop", secrets=[S1], refFrom="id"),
                 400, "InvalidParameter", "name")


def test_event_payload_errors(tenant):
    name = make_hook(tenant, workflow="noop", items={"from": "path", "path": "lines"},
                     refFrom="sku")
    assert_error(send(tenant.server, name, {"lines": []}), 422, "EmptyJob")
    assert_error(send(tenant.server, name, {"nolines": 1}), 422, "InvalidField")
    assert_error(send(tenant.server, name, {"lines": [{"sku": "a"}, {"x": 1}]}), 422, "InvalidItem",
                 "items[1].ref")
    assert_error(send(tenant.server, name, {"nolines": 1}), 422, "InvalidField", "lines")
    assert_error(send(tenant.server, name, None, raw=b'{"lines": [', secret=S1), 400,
                 "InvalidJson")
    assert list_all(tenant, "/v1/jobs")[0] == []


def test_array_body_is_the_items(tenant):
    # "items": {"from": "body"} is documented as "the items array itself": a provider
    # that posts a batch gets one job with an item per element (it used to be 422).
    name = make_hook(tenant, workflow="noop", items={"from": "body"}, refFrom="sku")
    r = send(tenant.server, name, [{"sku": "a", "q": 1}, {"sku": "b"}, {"sku": 3}])
    assert r.status_code == 202, r.text
    job = tenant.wait_job(r.json()["id"])
    assert job["counts"]["total"] == 3 and job["counts"]["succeeded"] == 3, job
    refs = [i["ref"] for i in tenant.get("/v1/jobs/%s/items" % job["id"]).json()["value"]]
    assert refs == ["a", "b", "3"]
    # the default (no "items") is the same; an object body stays one item
    plain = make_hook(tenant, workflow="noop", refFrom="sku")
    assert send(tenant.server, plain, [{"sku": "x"}, {"sku": "y"}]).json()["counts"]["total"] == 2
    assert send(tenant.server, plain, {"sku": "z"}).json()["counts"]["total"] == 1
    # a bad element is named in the error's target
    assert_error(send(tenant.server, name, [{"sku": "a"}, {"nosku": 1}]), 422, "InvalidItem",
                 "items[1].ref")
    assert_error(send(tenant.server, name, []), 422, "EmptyJob")


def test_deleted_workflow_fails_events(tenant):
    wf = make_workflow(tenant, [{"type": "noop"}])
    name = make_hook(tenant, workflow=wf)
    assert send(tenant.server, name, {"id": "1"}).status_code == 202
    assert tenant.delete("/v1/workflows/" + wf).status_code == 204
    assert_error(send(tenant.server, name, {"id": "2"}), 422, "UnknownWorkflow")
