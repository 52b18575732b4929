"""Envelope errors: a refused submit stores nothing. Each test uses a brand-new tenant
so "nothing stored" is checked exactly: its job list stays empty."""
import json
import re

import pytest
import requests

from conftest import (Client, Server, assert_error, items, job_ids, list_all, raw_http,
                      raw_error, submitted, uniq)

JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def nothing_stored(c, collection=None):
    assert job_ids(c) == [], "a refused submit left a job behind"
    if collection:
        docs, _ = list_all(c, "/v1/collections/" + collection)
        assert docs == [], docs


def post_json(c, body, **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return c.post("/v1/jobs", data=data, headers=JSON, **kw)


def check_position(msg):
    assert re.search(r"line \d+", msg), msg
    assert re.search(r"(byte|column) \d+", msg), msg


# ---- malformed bodies ----------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    b'{"workflow":"noop","items":[{"ref":"a"},]}',
    b'{"workflow":"noop","items":[{"ref":"a"}',
    b'{"workflow":"noop" "items":[]}',
    b'{"workflow":"noop","items":[{"ref":"a","data":{"x":tru}}]}',
    b'not json',
    b'{"workflow":"noop","items":[{"ref":"a"}]} trailing',
    b'{"workflow":"noop","items":[{"ref":"a","data":01}]}',
    b'',
])
def test_malformed_json_400(tenant, body):
    r = post_json(tenant, body)
    err = assert_error(r, 400, "InvalidJson")
    if body:
        check_position(err["message"])
    nothing_stored(tenant)


def test_malformed_json_position_is_right(tenant):
    body = b'{"workflow":"noop",\n"items":[\n{"ref":"a"},\n{"ref":"b" x}]}'
    err = assert_error(post_json(tenant, body), 400, "InvalidJson")
    assert "line 4" in err["message"], err
    nothing_stored(tenant)


@pytest.mark.parametrize("body", [
    b'{"ref":"a"}\n{"ref":"b"\n',
    b'{"ref":"a"}\n{"ref":"b"} {"ref":"c"}\n',
    b'{"ref":"a"}\nnope\n',
    b'{"ref":"a"}\r{"ref":"b"}\n',
    b'{"ref":"a",\n"data":1}\n',
    b'{"ref":"a"}\n{"ref":"b","data":{"x":1}',
])
def test_malformed_ndjson_400(tenant, body):
    r = tenant.post("/v1/jobs", params={"workflow": "noop"}, data=body, headers=NDJSON)
    err = assert_error(r, 400, "InvalidNdjson")
    check_position(err["message"])
    nothing_stored(tenant)


def test_ndjson_line_not_an_object_422(tenant):
    r = tenant.post("/v1/jobs", params={"workflow": "noop"}, data=b'{"ref":"a"}\n[{"ref":"b"}]\n',
                    headers=NDJSON)
    assert_error(r, 422, "InvalidItem", target="items[1]")
    nothing_stored(tenant)


def test_malformed_ndjson_is_400_invalid_ndjson(tenant):
    body = b'{"ref":"a","data":{}}\n{"ref":"b","data":{]}\n'
    err = assert_error(tenant.post("/v1/jobs", params={"workflow": "noop"}, data=body,
                                   headers=NDJSON), 400, "InvalidNdjson")
    assert "line 2" in err["message"], err
    nothing_stored(tenant)


# ---- invalid items ---------------------------------------------------------------------------

def _with_bad_item(bad, at=3):
    its = items(6)
    its[at] = bad
    return {"workflow": "products.upsert", "items": its}


@pytest.mark.parametrize("bad", [
    {"data": {"x": 1}},               # missing ref
    {"ref": 17, "data": {}},           # non-string ref
    {"ref": None, "data": {}},
    {"ref": ["a"], "data": {}},
    {"ref": "", "data": {}},           # empty ref
    {"ref": "r" * 257, "data": {}},    # 257 bytes
    {"ref": "\u00e9" * 129, "data": {}},  # 258 bytes of UTF-8
])
def test_invalid_ref_422(tenant, bad):
    r = post_json(tenant, _with_bad_item(bad))
    assert_error(r, 422, "InvalidItem", target="items[3].ref")
    nothing_stored(tenant, "products")


@pytest.mark.parametrize("bad", [
    {"ref": "r" * 257, "data": {}},
    {"data": {}},
    {"ref": 5},
])
def test_invalid_ref_ndjson_422(tenant, bad):
    lines = items(5)
    lines[3] = bad
    r = tenant.submit_ndjson(lines, workflow="products.upsert")
    assert_error(r, 422, "InvalidItem", target="items[3].ref")
    nothing_stored(tenant, "products")


@pytest.mark.parametrize("bad", [[1, 2], "item", 3, None, True])
def test_item_not_object_422(tenant, bad):
    r = post_json(tenant, _with_bad_item(bad, at=2))
    assert_error(r, 422, "InvalidItem", target="items[2]")
    nothing_stored(tenant)


def test_unknown_item_key_422(tenant):
    r = post_json(tenant, _with_bad_item({"ref": "x", "data": {}, "extra": 1}, at=1))
    err = assert_error(r, 422, "InvalidItem")
    assert err["target"].startswith("items[1]"), err
    nothing_stored(tenant)


def test_late_error_after_many_items_stores_nothing(tenant):
    # enough items that the server has staged batches in the store before the error
    its = items(12000, prefix="late-")
    its[11000] = {"ref": 1}
    r = post_json(tenant, {"workflow": "products.upsert", "items": its})
    assert_error(r, 422, "InvalidItem", target="items[11000].ref")
    nothing_stored(tenant, "products")
    assert tenant.get("/v1/collections/products/late-0").status_code == 404


# ---- envelope fields -------------------------------------------------------------------------

@pytest.mark.parametrize("wf", ["nope", "products.explode", "products", ".upsert", "bad name.upsert",
                                "a.b.upsert", "NOOP", "x" * 65 + ".upsert", ""])
def test_unknown_workflow_422(tenant, wf):
    r = post_json(tenant, {"workflow": wf, "items": items(2)})
    assert_error(r, 422, "UnknownWorkflow", target="workflow")
    nothing_stored(tenant)


def test_unknown_workflow_ndjson_422(tenant):
    r = tenant.submit_ndjson(items(2), workflow="products.frobnicate")
    assert_error(r, 422, "UnknownWorkflow", target="workflow")
    nothing_stored(tenant)


def test_ndjson_without_workflow_422(tenant):
    r = tenant.post("/v1/jobs", data=b'{"ref":"a"}\n', headers=NDJSON)
    assert_error(r, 422, "InvalidField", target="workflow")
    nothing_stored(tenant)


def test_json_without_workflow_422(tenant):
    r = post_json(tenant, {"items": items(2)})
    assert_error(r, 422, "InvalidField", target="workflow")
    nothing_stored(tenant)


def test_missing_items_422(tenant):
    r = post_json(tenant, {"workflow": "noop"})
    assert_error(r, 422, "InvalidField", target="items")
    nothing_stored(tenant)


@pytest.mark.parametrize("body,target", [
    ({"workflow": 7, "items": []}, "workflow"),
    ({"workflow": None, "items": []}, "workflow"),
    ({"workflow": ["noop"], "items": []}, "workflow"),
    ({"workflow": "noop", "items": {"ref": "a"}}, "items"),
    ({"workflow": "noop", "items": "a"}, "items"),
    ({"workflow": "noop", "items": None}, "items"),
    ({"workflow": "noop", "clientReference": 5, "items": [{"ref": "a"}]}, "clientReference"),
])
def test_wrong_types_422(tenant, body, target):
    r = post_json(tenant, body)
    assert_error(r, 422, "InvalidField", target=target)
    nothing_stored(tenant)


@pytest.mark.parametrize("body", [b'[]', b'"noop"', b'42', b'null', b'[{"ref":"a"}]'])
def test_body_not_an_object(tenant, body):
    r = post_json(tenant, body)
    assert r.status_code in (400, 422), r.text
    assert_error(r, r.status_code, r.json()["error"]["code"])
    nothing_stored(tenant)


def test_unknown_envelope_field_422(tenant):
    r = post_json(tenant, {"workflow": "noop", "colour": "red", "items": items(2)})
    assert_error(r, 422, "InvalidField", target="colour")
    nothing_stored(tenant)


def test_duplicate_envelope_field_422(tenant):
    r = post_json(tenant, b'{"workflow":"noop","items":[{"ref":"a"}],"items":[{"ref":"b"}]}')
    assert r.status_code == 422, r.text
    nothing_stored(tenant)


@pytest.mark.parametrize("ref", ["", "c" * 257])
def test_bad_client_reference_422(tenant, ref):
    r = post_json(tenant, {"workflow": "noop", "clientReference": ref, "items": items(1)})
    assert_error(r, 422, "InvalidField", target="clientReference")
    r = tenant.submit_ndjson(items(1), workflow="noop", clientReference=ref)
    assert_error(r, 422, "InvalidField", target="clientReference")
    nothing_stored(tenant)


def test_empty_items_422(tenant):
    r = post_json(tenant, {"workflow": "noop", "items": []})
    assert_error(r, 422, "EmptyJob")
    nothing_stored(tenant)


@pytest.mark.parametrize("body", [b"", b"\n\n", b"\r\n  \r\n"])
def test_empty_ndjson_422(tenant, body):
    r = tenant.post("/v1/jobs", params={"workflow": "noop"}, data=body, headers=NDJSON)
    assert_error(r, 422, "EmptyJob")
    nothing_stored(tenant)


@pytest.mark.parametrize("ct", ["text/plain", "application/xml", "application/jsonx",
                                "multipart/form-data; boundary=x", None])
def test_wrong_content_type_415(tenant, ct):
    headers = {"Content-Type": ct} if ct else {}
    body = json.dumps({"workflow": "noop", "items": items(1)}).encode()
    if ct is None:
        r = tenant.s.post(tenant.url("/v1/jobs"), data=body, headers=headers, timeout=30)
        # requests sends no Content-Type for bytes bodies
        assert "Content-Type" not in r.request.headers
    else:
        r = tenant.post("/v1/jobs", data=body, headers=headers)
    assert_error(r, 415, "UnsupportedMediaType")
    nothing_stored(tenant)


# ---- size limits (a server of their own) ----------------------------------------------------

@pytest.fixture(scope="module")
def limited():
    srv = Server(args=["--max-items", "10", "--max-item-bytes", "1024", "--max-body-bytes", "4096"])
    srv.key_a = srv.create_key("acme")
    srv.start()
    yield srv
    rc = srv.stop()
    assert rc == 0, srv.read_log()[-4000:]
    srv.cleanup()


@pytest.fixture
def lim(limited):
    return Client(limited, limited.key_a)


def test_limits_allow_up_to_the_limit(lim):
    job = submitted(lim.submit(items(10)))
    assert job["counts"]["total"] == 10
    big = [{"ref": "big", "data": {"s": "x" * 900}}]
    assert len(json.dumps(big[0])) <= 1024
    submitted(lim.submit(big))
    lim.wait_job(job["id"])


def test_too_many_items_413(lim):
    before = job_ids(lim)
    assert_error(lim.submit(items(11)), 413, "TooManyItems")
    assert_error(lim.submit_ndjson(items(11)), 413, "TooManyItems")
    assert job_ids(lim) == before


def test_item_too_large_413(lim):
    before = job_ids(lim)
    its = items(3)
    its[1] = {"ref": "huge", "data": {"s": "x" * 2000}}
    err = assert_error(lim.submit(its), 413, "ItemTooLarge")
    assert err.get("target", "items[1]") == "items[1]", err
    assert_error(lim.submit_ndjson(its), 413, "ItemTooLarge")
    assert job_ids(lim) == before


def test_body_too_large_413_declared(limited, lim):
    before = job_ids(lim)
    its = [{"ref": "r%d" % i, "data": {"s": "x" * 800}} for i in range(6)]
    body = json.dumps({"workflow": "noop", "items": its}).encode()
    assert len(body) > 4096
    # headers only: the server refuses on the declared length without reading the body
    head = ("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % ("Authorization: Bearer %s\r\n" % lim.key, len(body)))
    raw_error(raw_http(limited, head.encode()), 413, "PayloadTooLarge")
    assert job_ids(lim) == before


def test_body_too_large_413_chunked(lim):
    before = job_ids(lim)
    its = [{"ref": "r%d" % i, "data": {"s": "x" * 800}} for i in range(6)]
    body = json.dumps({"workflow": "noop", "items": its}).encode()

    def gen():
        for i in range(0, len(body), 500):
            yield body[i:i + 500]
    r = lim.post("/v1/jobs", data=gen(), headers=JSON)
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert_error(r, 413, "PayloadTooLarge")
    assert job_ids(lim) == before
    # and the limited server still works
    submitted(lim.submit(items(2)))


# ---- field order and odd-but-valid envelopes -------------------------------------------------

def test_items_before_workflow_accepted(tenant):
    body = b'{"items":[{"ref":"a","data":{"x":1}},{"ref":"b"}],"clientReference":"late",' \
           b'"workflow":"noop"}'
    job = submitted(post_json(tenant, body))
    assert job["counts"]["total"] == 2 and job["workflow"] == "noop", job
    assert job["clientReference"] == "late"
    assert tenant.wait_job(job["id"])["status"] == "Succeeded"


def test_items_before_unknown_workflow_stores_nothing(tenant):
    its = items(6000, prefix="early-")
    body = json.dumps({"items": its, "workflow": "products.nope"})
    assert body.index('"items"') < body.index('"workflow"')
    assert_error(post_json(tenant, body), 422, "UnknownWorkflow", target="workflow")
    nothing_stored(tenant, "products")


def test_items_without_workflow_after_many_items(tenant):
    body = json.dumps({"items": items(6000, prefix="nowf-")})
    assert_error(post_json(tenant, body), 422, "InvalidField", target="workflow")
    nothing_stored(tenant, "products")


def test_ref_with_nul_422(tenant):
    r = post_json(tenant, b'{"workflow":"noop","items":[{"ref":"a\\u0000b"}]}')
    assert_error(r, 422, "InvalidItem", target="items[0].ref")
    nothing_stored(tenant)


def test_duplicate_item_key_422(tenant):
    r = post_json(tenant, b'{"workflow":"noop","items":[{"ref":"a","ref":"b"}]}')
    err = assert_error(r, 422, "InvalidItem")
    assert err["target"].startswith("items[0]"), err
    nothing_stored(tenant)


def test_ndjson_content_type_with_charset(tenant):
    r = tenant.post("/v1/jobs", params={"workflow": "noop"}, data=b'{"ref":"a"}\n',
                    headers={"Content-Type": "application/x-ndjson; charset=utf-8"})
    assert submitted(r)["counts"]["total"] == 1


def test_whitespace_everywhere_json(tenant):
    body = b' \n\t{ "workflow" : "noop" ,\r\n "items" : [ { "ref" : "a" , "data" : [ 1 , 2 ] } ] }\n '
    job = submitted(post_json(tenant, body))
    assert job["counts"]["total"] == 1
    r = tenant.get("/v1/jobs/%s/items/0" % job["id"])
    assert r.json()["data"] == [1, 2]


def test_document_size_limits(limited, lim):
    ok = b'{"s":"' + b"x" * 900 + b'"}'
    assert lim.put("/v1/collections/sz/ok", data=ok, headers=JSON).status_code == 201
    big = b'{"s":"' + b"x" * 2000 + b'"}'
    assert_error(lim.put("/v1/collections/sz/big", data=big, headers=JSON), 413, "ItemTooLarge")
    assert_error(lim.patch("/v1/collections/sz/ok", data=big, headers=JSON), 413, "ItemTooLarge")
    assert lim.get("/v1/collections/sz/big").status_code == 404
    assert lim.get("/v1/collections/sz/ok").json()["version"] == 1
