"""Content-Encoding on POST /v1/jobs: a gzip (or deflate) body is inflated as it streams,
every size limit counts the decoded bytes, and unknown codings get 415. Each test uses a
brand-new tenant, so "nothing stored" is checked exactly: its job list stays empty."""
import gzip
import json
import socket
import zlib

import pytest

from conftest import Client, assert_error, item_detail, job_ids, list_all, submitted

JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def its(n, prefix="gz-"):
    # data with escapes, non-ASCII and nesting: what arrives must be exactly what was sent
    return [{"ref": "%s%d" % (prefix, i),
             "data": {"i": i, "s": "caf\u00e9 \"q\" \\ %d" % i, "a": [i, {"b": None}]}}
            for i in range(n)]


def ndjson(items_):
    return "".join(json.dumps(i) + "\n" for i in items_).encode()


def envelope(items_):
    return json.dumps({"workflow": "noop", "items": items_}).encode()


def post(c, body, coding, ct=NDJSON, **kw):
    headers = dict(ct)
    if coding is not None:
        headers["Content-Encoding"] = coding
    params = {"workflow": "noop"} if ct is NDJSON else None
    return c.post("/v1/jobs", data=body, headers=headers, params=params, **kw)


def assert_items(c, job, sent):
    """Every item arrived in order with its data intact."""
    assert job["counts"]["total"] == len(sent), job
    got, _ = list_all(c, "/v1/jobs/%s/items" % job["id"])
    assert [i["ref"] for i in got] == [i["ref"] for i in sent]
    for k in (0, len(sent) // 2, len(sent) - 1):
        assert item_detail(c, job["id"], k)["data"] == sent[k]["data"]
    assert c.wait_job(job["id"])["status"] == "Succeeded"


# ---- accepted codings ------------------------------------------------------------------------

def test_gzip_ndjson_submit(tenant):
    sent = its(300)
    job = submitted(post(tenant, gzip.compress(ndjson(sent)), "gzip"))
    assert_items(tenant, job, sent)


def test_gzip_envelope_submit(tenant):
    sent = its(300, prefix="env-")
    job = submitted(post(tenant, gzip.compress(envelope(sent)), "gzip", ct=JSON))
    assert job["workflow"] == "noop"
    assert_items(tenant, job, sent)


def test_gzip_chunked_upload(tenant):
    sent = its(2000, prefix="chunk-")
    body = gzip.compress(ndjson(sent))

    def gen():  # odd-sized chunks split the gzip header, blocks and trailer anywhere
        for i in range(0, len(body), 777):
            yield body[i:i + 777]
    r = post(tenant, gen(), "gzip")
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert_items(tenant, submitted(r), sent)


def test_gzip_members_concatenated(tenant):
    # what `cat a.gz b.gz` gives: gunzip reads it as one body, so does sluice
    a, b = its(5, prefix="m1-"), its(5, prefix="m2-")
    body = gzip.compress(ndjson(a)) + gzip.compress(ndjson(b))
    assert_items(tenant, submitted(post(tenant, body, "gzip")), a + b)


def test_deflate_and_names_are_case_insensitive(tenant):
    sent = its(20, prefix="defl-")
    assert_items(tenant, submitted(post(tenant, zlib.compress(ndjson(sent)), "deflate")), sent)
    sent = its(20, prefix="up-")
    assert_items(tenant, submitted(post(tenant, gzip.compress(ndjson(sent)), "GZip")), sent)


def test_identity_works(tenant):
    sent = its(20, prefix="id-")
    assert_items(tenant, submitted(post(tenant, ndjson(sent), "identity")), sent)
    sent = its(20, prefix="env-id-")
    assert_items(tenant, submitted(post(tenant, envelope(sent), "identity", ct=JSON)), sent)


# ---- refused codings and bodies ------------------------------------------------------------

@pytest.mark.parametrize("coding", ["br", "compress", "zstd", "gzip, identity", "gzip,gzip"])
def test_unknown_or_several_codings_415(tenant, coding):
    r = post(tenant, gzip.compress(ndjson(its(2))), coding)
    err = assert_error(r, 415, "UnsupportedMediaType", target="Content-Encoding")
    assert "gzip" in err["message"] and "identity" in err["message"], err
    assert job_ids(tenant) == []


def test_two_content_encoding_headers_415(tenant):
    # Two fields are one list of codings (RFC 9110 5.3): refused like "gzip, gzip", not
    # decoded by the first one only.
    body = gzip.compress(gzip.compress(ndjson(its(2))))
    head = ("POST /v1/jobs?workflow=noop HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Authorization: Bearer %s\r\nContent-Type: application/x-ndjson\r\n"
            "Content-Encoding: gzip\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n"
            "Connection: close\r\n\r\n" % (tenant.key, len(body)))
    s = socket.create_connection(("127.0.0.1", tenant.server.port), timeout=10)
    try:
        s.sendall(head.encode() + body)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except ConnectionResetError:
        pass
    finally:
        s.close()
    status_line, _, rest = buf.partition(b"\r\n")
    assert status_line.split()[1] == b"415", buf[:300]
    err = json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"]
    assert err["code"] == "UnsupportedMediaType" and err["target"] == "Content-Encoding", err
    assert job_ids(tenant) == []


@pytest.mark.parametrize("case", ["garbage", "bad-crc", "truncated", "trailing", "plain"])
def test_corrupt_gzip_400(tenant, case):
    good = gzip.compress(ndjson(its(50)))
    body = {"garbage": b"\x1f\x8b\x08\x00" + b"\xff" * 64,
            "bad-crc": good[:-8] + bytes([good[-8] ^ 0xff]) + good[-7:],
            "truncated": good[:len(good) // 2],
            "trailing": good + b"not gzip",
            "plain": ndjson(its(3))}[case]
    err = assert_error(post(tenant, body, "gzip"), 400, "InvalidRequest",
                       target="Content-Encoding")
    assert "gzip" in err["message"], err
    assert job_ids(tenant) == []
    # deflate is checked the same way
    assert_error(post(tenant, b"\x78\x9c" + b"\xff" * 16, "deflate"), 400, "InvalidRequest",
                 target="Content-Encoding")


def test_gzip_of_bad_json_is_a_json_error(tenant):
    r = post(tenant, gzip.compress(b'{"workflow":"noop","items":[{"ref":}]}'), "gzip", ct=JSON)
    assert_error(r, 400, "InvalidJson")
    assert job_ids(tenant) == []


# ---- limits count the decoded bytes (a server of its own) --------------------------------

def vm_hwm_kb(srv):
    with open("/proc/%d/status" % srv.proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for pid %d" % srv.proc.pid)


def test_limits_apply_to_decoded_bytes(fresh_server):
    limit = 16 << 20  # above the bomb's compressed size, far below its decoded one
    srv = fresh_server(["--max-body-bytes", str(limit), "--max-items", "10",
                        "--max-item-bytes", "1024"]).start()
    c = Client(srv, srv.key_a)
    submitted(post(c, gzip.compress(ndjson(its(10))), "gzip"))  # warm up
    before = job_ids(c)
    hwm = vm_hwm_kb(srv)
    # the bomb: 10 MB of gzip that inflates to 10 GB of blank lines (valid NDJSON, so
    # nothing but the size limit stops it); 100 members of 100 MiB each
    member = gzip.compress(b"\n" * (100 << 20), 9)
    bomb = member * max(1, (10 << 20) // len(member))
    assert (8 << 20) < len(bomb) < limit
    for ct in (NDJSON, JSON):
        body = bomb if ct is NDJSON else gzip.compress(b'{"items": [' + b" " * (2 * limit))
        err = assert_error(post(c, body, "gzip", ct=ct), 413, "PayloadTooLarge")
        assert str(limit) in err["message"] and "decompress" in err["message"], err
    # generous: the decoder holds one 64 KiB buffer whatever the ratio
    assert vm_hwm_kb(srv) - hwm < 64 * 1024, (hwm, vm_hwm_kb(srv))
    # the item limits count decoded bytes too
    assert_error(post(c, gzip.compress(ndjson(its(11))), "gzip"), 413, "TooManyItems")
    big = [{"ref": "big", "data": {"s": "x" * 2000}}]
    assert_error(post(c, gzip.compress(ndjson(big)), "gzip"), 413, "ItemTooLarge")
    assert job_ids(c) == before
    submitted(post(c, gzip.compress(ndjson(its(3, prefix="after-"))), "gzip"))  # still serves
