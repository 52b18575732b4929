"""Hostile input: every answer is a clean 4xx with the one error body, nothing is stored,
and the server keeps serving (health 200, a normal submit runs) afterwards."""
import json
import socket
import time

import pytest
import requests

from conftest import (assert_alive, assert_error, items, job_ids, raw_error, raw_http,
                      read_log_lines, submitted, uniq, wait_until)

JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def post(c, body, ndjson=False):
    if ndjson:
        return c.post("/v1/jobs", params={"workflow": "products.upsert"}, data=body,
                      headers=NDJSON)
    return c.post("/v1/jobs", data=body, headers=JSON)


def clean_4xx(r, status=None, code=None):
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    if status:
        assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] and body["error"]["message"], body
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


VALID = b'{"workflow":"products.upsert","items":[{"ref":"a","data":{"x":1}},{"ref":"b","data":{"y":[1,2,{"z":"s"}]}}]}'


@pytest.mark.parametrize("cut", [1, 10, 30, 60, len(VALID) - 1])
def test_truncated_json_body(tenant, cut):
    err = clean_4xx(post(tenant, VALID[:cut]), 400, "InvalidJson")
    assert "line" in err["message"]
    assert job_ids(tenant) == []
    assert_alive(tenant)


def test_truncated_ndjson_body(tenant):
    body = b'{"ref":"a","data":{"x":1}}\n{"ref":"b","data":{"y":'
    clean_4xx(post(tenant, body, ndjson=True), 400, "InvalidNdjson")
    assert job_ids(tenant) == []
    assert_alive(tenant)


BAD_STRINGS = [
    b'"\xc0\xaf"',            # overlong '/'
    b'"\xe0\x80\xaf"',        # overlong 3-byte
    b'"\xed\xa0\x80"',        # UTF-8 encoded surrogate
    b'"\xff"',
    b'"ab\xfe"',
    b'"\xc3"',                # truncated sequence
    b'"\x80"',                # lone continuation byte
    b'"\xf4\x90\x80\x80"',    # above U+10FFFF
    b'"\\ud800"',             # lone high surrogate escape
    b'"\\udc00"',             # lone low surrogate escape
    b'"\\ud800\\u0041"',      # high surrogate + non-surrogate
    b'"\\ud800x"',
    b'"a\x01b"',              # raw control character
    b'"\\x41"',               # invalid escape
]


@pytest.mark.parametrize("s", BAD_STRINGS)
@pytest.mark.parametrize("where", ["ref", "data", "key", "workflow"])
def test_invalid_strings_json(tenant, s, where):
    if where == "ref":
        body = b'{"workflow":"products.upsert","items":[{"ref":' + s + b',"data":{}}]}'
    elif where == "data":
        body = b'{"workflow":"products.upsert","items":[{"ref":"r","data":{"v":[' + s + b']}}]}'
    elif where == "key":
        body = b'{"workflow":"products.upsert","items":[{"ref":"r","data":{' + s + b':1}}]}'
    else:
        body = b'{"workflow":' + s + b',"items":[{"ref":"r","data":{}}]}'
    clean_4xx(post(tenant, body), 400, "InvalidJson")
    assert job_ids(tenant) == []


@pytest.mark.parametrize("s", BAD_STRINGS[:10])
def test_invalid_strings_ndjson(tenant, s):
    body = b'{"ref":"ok","data":{}}\n{"ref":"r","data":{"v":' + s + b'}}\n'
    clean_4xx(post(tenant, body, ndjson=True), 400, "InvalidNdjson")
    assert job_ids(tenant) == []


def test_invalid_strings_leave_server_alive(tenant):
    assert_alive(tenant)


def test_valid_unicode_edge_cases_accepted(tenant):
    body = ('{"workflow":"noop","items":[{"ref":"r","data":["\\ud83d\\ude00","\U0001F600",'
            '"\U0010FFFF","\u0800","\\u0000"]}]}').encode("utf-8")
    r = post(tenant, body)
    assert r.status_code == 202, r.text


@pytest.mark.parametrize("depth", [10000, 65, 200])
def test_deep_nesting_json(tenant, depth):
    data = b"[" * depth + b"]" * depth
    body = b'{"workflow":"products.upsert","items":[{"ref":"deep","data":' + data + b'}]}'
    clean_4xx(post(tenant, body), 400, "InvalidJson")
    obj = b'{"a":' * depth + b'1' + b'}' * depth
    body = b'{"workflow":"products.upsert","items":[{"ref":"deep","data":' + obj + b'}]}'
    clean_4xx(post(tenant, body), 400, "InvalidJson")
    nd = b'{"ref":"deep","data":' + data + b'}\n'
    clean_4xx(post(tenant, nd, ndjson=True), 400, "InvalidNdjson")
    assert job_ids(tenant) == []
    assert_alive(tenant)


def test_nesting_at_the_limit_accepted(tenant):
    # default --max-depth is 64, counted from the item object
    data = b"[" * 60 + b"]" * 60
    body = b'{"workflow":"noop","items":[{"ref":"ok","data":' + data + b'}]}'
    r = post(tenant, body)
    assert r.status_code == 202, r.text


def test_deep_nesting_document_put(tenant):
    r = tenant.put("/v1/collections/deep/d", data=b"[" * 10000 + b"]" * 10000, headers=JSON)
    clean_4xx(r, 400, "InvalidJson")
    assert tenant.get("/v1/collections/deep/d").status_code == 404
    assert_alive(tenant)


def test_huge_declared_content_length(server, tenant):
    head = ("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: 2147483648\r\n\r\n" % tenant.key)
    t = time.time()
    res = raw_http(server, head.encode() + b'{"workflow":"noop","items":[]}', timeout=20)
    raw_error(res, 413, "PayloadTooLarge")
    assert res[1].get("x-request-id"), res[1]
    assert time.time() - t < 20
    assert job_ids(tenant) == []
    assert_alive(tenant)


@pytest.mark.parametrize("cl", ["18446744073709551616", "99999999999999999999999", "-1", "1x",
                                "0x10"])
def test_bad_content_length_values(server, tenant, cl):
    head = ("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n"
            % (tenant.key, cl))
    st, _, body = raw_http(server, head.encode() + b"{}", timeout=20)
    assert st in (400, 413), (st, body)
    assert job_ids(tenant) == []
    assert_alive(tenant)


def test_conflicting_content_lengths(server, tenant):
    body = json.dumps({"workflow": "noop", "items": items(1)}).encode()
    head = ("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\nContent-Length: %d\r\n"
            "Connection: close\r\n\r\n" % (tenant.key, len(body), len(body) + 5))
    res = raw_http(server, head.encode() + body + b"     ", timeout=20)
    raw_error(res, 400, "InvalidRequest")
    assert job_ids(tenant) == []
    assert_alive(tenant)


def db_rows(srv, table):
    """Rows in one table of the server's store (read-only), or None if no such table."""
    from conftest import store_rows
    return store_rows(srv.store, table)


def logged(srv, rid):
    for line in read_log_lines(srv):
        obj = json.loads(line)
        if obj.get("requestId") == rid:
            return obj


@pytest.fixture
def cut_server(fresh_server):
    # a short idle timeout so the server gives up on the half-sent request quickly
    srv = fresh_server(args=["--idle-timeout", "2"])
    srv.start()
    return srv


@pytest.mark.parametrize("mode", ["json-length", "ndjson-chunked"])
def test_disconnect_mid_upload_stores_nothing(cut_server, mode):
    from conftest import Client
    srv = cut_server
    c = Client(srv, srv.key_a)
    # no keep-alive: the short idle timeout would race with connection reuse
    c.s.headers["Connection"] = "close"
    rid = "cut-" + uniq("rid")
    # enough items that the server has already staged batches in the store
    its = items(14000, prefix="cut-")
    if mode == "json-length":
        body = json.dumps({"workflow": "products.upsert", "items": its}).encode()
        head = ("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                "X-Request-Id: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (c.key, rid, len(body)))
        data = head.encode() + body[:len(body) * 3 // 4]
    else:
        body = "".join(json.dumps(i) + "\n" for i in its).encode()
        head = ("POST /v1/jobs?workflow=products.upsert HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Authorization: Bearer %s\r\nX-Request-Id: %s\r\n"
                "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
                % (c.key, rid))
        chunk = body[:len(body) * 3 // 4]
        data = head.encode() + b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    s.sendall(data)
    s.close()
    assert job_ids(c) == []
    entry = wait_until(lambda: logged(srv, rid), timeout=60, what="the cut request to end")
    assert entry.get("completed") is False and entry.get("status") != 202, entry
    assert job_ids(c) == []
    assert c.get("/v1/collections/products/cut-0").status_code == 404
    assert c.get("/v1/collections/products").json()["value"] == []
    # nothing left in the store itself: no job row, no item row
    for table in ("jobs", "items"):
        n = db_rows(srv, table)
        assert n in (None, 0), "%d rows left in %s after an aborted upload" % (n, table)
    assert_alive(c)
    assert len(job_ids(c)) == 1


def test_garbage_request_line(server, tenant):
    for junk in (b"\x00\x01\x02\r\n\r\n", b"GET\r\n\r\n", b"GARBAGE / HTTP/1.1\r\nHost: x\r\n\r\n",
                 b"GET /healthz HTTP/9.9\r\n\r\n", b"G" * 100000 + b"\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            # the server may answer and close (or reset) before we are done: what counts
            # is that it stays up
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                s.recv(65536)
            except OSError:
                pass
        finally:
            s.close()
    assert_alive(tenant)


def test_many_idle_connections_do_not_block(server, tenant):
    socks = []
    try:
        for _ in range(50):
            socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        for s in socks[:25]:
            s.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\n")  # never finishes
        assert_alive(tenant)
    finally:
        for s in socks:
            s.close()


def test_wrong_json_types_everywhere(tenant):
    cases = [
        ({"workflow": "noop", "items": {"0": {"ref": "a"}}}, "InvalidField", "items"),
        ({"workflow": "noop", "items": 7}, "InvalidField", "items"),
        ({"workflow": "noop", "items": [{"ref": "a"}, 5]}, "InvalidItem", "items[1]"),
        ({"workflow": "noop", "items": [{"ref": "a"}, "b"]}, "InvalidItem", "items[1]"),
        ({"workflow": 1, "items": [{"ref": "a"}]}, "InvalidField", "workflow"),
        ({"workflow": True, "items": [{"ref": "a"}]}, "InvalidField", "workflow"),
        ({"workflow": {"n": "noop"}, "items": [{"ref": "a"}]}, "InvalidField", "workflow"),
        ({"workflow": "noop", "items": [{"ref": {"id": 1}}]}, "InvalidItem", "items[0].ref"),
        ({"workflow": "noop", "items": [{"ref": 1.5}]}, "InvalidItem", "items[0].ref"),
        ({"workflow": "noop", "items": [{"ref": "a", "ref2": "b"}]}, "InvalidItem", None),
    ]
    for body, code, target in cases:
        r = tenant.post("/v1/jobs", data=json.dumps(body), headers=JSON)
        err = clean_4xx(r, 422, code)
        if target:
            assert err.get("target") == target, (body, err)
    assert job_ids(tenant) == []
    # data missing is allowed (delete needs none), and any JSON type is data
    for data in (None, 1, "s", [1], True):
        it = {"ref": "x"} if data is None else {"ref": "x", "data": data}
        r = tenant.post("/v1/jobs", data=json.dumps({"workflow": "products.delete", "items": [it]}),
                        headers=JSON)
        assert r.status_code == 202, r.text
    r = tenant.post("/v1/jobs", data=json.dumps({"workflow": "noop", "items": [{"ref": "x",
                                                                               "data": None}]}),
                    headers=JSON)
    assert r.status_code == 202, r.text
    assert_alive(tenant)


def test_huge_numbers_in_data(tenant):
    for num in (b"1e999", b"-1e999", b"123456789012345678901234567890"):
        body = b'{"workflow":"noop","items":[{"ref":"n","data":' + num + b'}]}'
        clean_4xx(post(tenant, body), 400, "InvalidJson")
    assert job_ids(tenant) == []
    assert_alive(tenant)


def test_long_strings_in_refs_and_keys(tenant):
    body = json.dumps({"workflow": "noop", "items": [{"ref": "r" * 100000}]})
    clean_4xx(tenant.post("/v1/jobs", data=body, headers=JSON), 422, "InvalidItem")
    body = json.dumps({"workflow": "w" * 100000, "items": [{"ref": "r"}]})
    r = tenant.post("/v1/jobs", data=body, headers=JSON)
    clean_4xx(r, 422)
    body = json.dumps({"workflow": "noop", "k" * 100000: 1, "items": [{"ref": "r"}]})
    clean_4xx(tenant.post("/v1/jobs", data=body, headers=JSON), 422)
    assert job_ids(tenant) == []
    assert_alive(tenant)


def test_path_garbage(tenant):
    for p in ("/v1/jobs/%00", "/v1/jobs/%zz", "/v1/collections/products/%", "/v1/jobs/" + "a" * 5000,
              "/v1/collections/products/%00abc"):
        r = tenant.get(p)
        assert 400 <= r.status_code < 500, (p, r.status_code)
        assert set(r.json()) == {"error"}, (p, r.text)
    assert_alive(tenant)


def test_nul_in_path_parameters(tenant):
    job = submitted(tenant.submit(items(2)))
    tenant.wait_job(job["id"])
    jid = job["id"]
    probes = [("GET", "/v1/jobs/%s/items/%%00" % jid), ("GET", "/v1/jobs/%s/items/1%%00" % jid),
              ("GET", "/v1/jobs/%00"), ("GET", "/v1/jobs/%00/items"), ("GET", "/v1/jobs/%00/results"),
              ("GET", "/v1/jobs/%00/items/0"), ("POST", "/v1/jobs/%00:cancel"),
              ("DELETE", "/v1/jobs/%00"), ("GET", "/v1/collections/%00"),
              ("GET", "/v1/collections/products/%00"), ("PUT", "/v1/collections/products/a%00b")]
    for method, p in probes:
        r = tenant.request(method, p, data=b"{}", headers=JSON)
        err = clean_4xx(r)
        assert "(null)" not in err["message"], (method, p, err)
        assert requests.get(tenant.server.url + "/healthz", timeout=10).status_code == 200, p
    assert tenant.get("/v1/jobs/" + jid).status_code == 200
    assert_alive(tenant)


@pytest.mark.parametrize("cursor", ["9223372036854775807", "9223372036854775806", "4294967296"])
def test_huge_item_cursor(tenant, cursor):
    job = submitted(tenant.submit(items(3)))
    tenant.wait_job(job["id"])
    r = tenant.get("/v1/jobs/%s/items" % job["id"], params={"cursor": cursor})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        assert r.json() == {"value": []}, r.json()
    else:
        clean_4xx(r, 400, "InvalidParameter")
    assert_alive(tenant)


def test_huge_job_cursor(tenant):
    # cursors are sealed: a number is not one
    r = tenant.get("/v1/jobs", params={"cursor": "9223372036854775807"})
    assert_error(r, 400, "InvalidParameter", "cursor")
    assert_alive(tenant)


def utf8_ok(r):
    try:
        r.content.decode("utf-8")
    except UnicodeDecodeError as e:
        raise AssertionError("response is not valid UTF-8: %s: %r" % (e, r.content[:300]))


def test_invalid_utf8_document_ref_rejected(tenant):
    # the ref arrives percent-encoded; decoded it is not UTF-8 (store strings are UTF-8)
    for ref in ("%ff", "a%c0%afb", "%ed%a0%80"):
        r = tenant.put("/v1/collections/utf/" + ref, data=b'{"v":1}', headers=JSON)
        utf8_ok(r)
        clean_4xx(r, 400, "InvalidParameter")
    r = tenant.get("/v1/collections/utf")
    utf8_ok(r)
    assert r.status_code == 200 and r.json() == {"value": []}, r.text


def test_invalid_utf8_query_parameters(tenant):
    r = tenant.post("/v1/jobs?workflow=noop&clientReference=%ff", data=b'{"ref":"a"}\n',
                    headers=NDJSON)
    utf8_ok(r)
    clean_4xx(r)
    r = tenant.get("/v1/jobs")
    utf8_ok(r)
    assert r.json() == {"value": []}, r.text
    for path in ("/v1/collections/products?after=%ff", "/v1/jobs?status=%ff"):
        r = tenant.get(path)
        utf8_ok(r)
        assert r.status_code in (200, 400), r.text


def test_client_reference_is_kept_exactly_or_refused(tenant):
    # U+0000 cannot be kept in a C string: refuse it (like a ref), never truncate silently
    r = tenant.post("/v1/jobs", data=b'{"workflow":"noop","clientReference":"a\\u0000b",'
                    b'"items":[{"ref":"a"}]}', headers=JSON)
    if r.status_code == 202:
        assert r.json()["clientReference"] == "a\u0000b", r.json()
    else:
        clean_4xx(r, 422)
    # an undecodable query value is an error, not a silently absent clientReference
    r = tenant.post("/v1/jobs?workflow=noop&clientReference=%00", data=b'{"ref":"a"}\n',
                    headers=NDJSON)
    if r.status_code == 202:
        assert r.json()["clientReference"] == "\u0000", r.json()
    else:
        clean_4xx(r)
