"""Self-test of the scripted fake upstream (tests/api/upstream.py); no sluice binary.

Talks to it with the stdlib only, so a broken fake fails here and not as a puzzling
black-box failure later.
"""
import http.client
import json
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from upstream import Upstream  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def up():
    u = Upstream()
    u.start()
    yield u
    u.stop()


def call(up, method, path, body=None, headers=None, timeout=10):
    """One request on a fresh connection: (status, headers dict, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", up.port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        hdrs = dict(headers or {})
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def call_json(up, method, path, body=None, headers=None):
    status, hdrs, raw = call(up, method, path, body, headers)
    return status, hdrs, json.loads(raw) if raw else None


def test_01_default_echo(up):
    status, hdrs, body = call_json(up, "POST", "/anything?x=1", {"a": [1, 2]})
    assert status == 200
    assert hdrs["Content-Type"] == "application/json"
    assert body == {"ok": True, "path": "/anything", "method": "POST", "body": {"a": [1, 2]}}
    status, _, body = call_json(up, "GET", "/other")
    assert status == 200 and body["body"] is None and body["method"] == "GET"
    status, _, body = call_json(up, "PUT", "/raw", b"not json", {"Content-Type": "text/plain"})
    assert body["body"] == "not json"


def test_02_log_records_calls(up):
    before = time.time()
    call(up, "POST", "/push/1", {"n": 1}, {"Idempotency-Key": "key-1", "X-Other": "v"})
    call(up, "GET", "/push/2", None, {"Idempotency-Key": "key-2"})
    call(up, "GET", "/elsewhere")
    status, _, log = call_json(up, "GET", "/_log")
    assert status == 200 and isinstance(log, list) and len(log) == 3  # control calls not logged
    first = log[0]
    assert first["seq"] == 0
    assert first["method"] == "POST" and first["path"] == "/push/1"
    assert first["idempotency_key"] == "key-1"
    assert first["headers"]["Idempotency-Key"] == "key-1"
    assert first["headers"]["X-Other"] == "v"
    assert first["json"] == {"n": 1} and json.loads(first["body"]) == {"n": 1}
    assert before - 1 <= first["time"] <= time.time() + 1
    assert first["response"] == {"status": 200}
    assert [e["path"] for e in call_json(up, "GET", "/_log?path=/push")[2]] == ["/push/1", "/push/2"]
    assert len(up.log("/elsewhere")) == 1
    assert call_json(up, "GET", "/_stats")[2]["requests"] == 3

    assert call_json(up, "POST", "/_reset")[0] == 200
    assert call_json(up, "GET", "/_log")[2] == []


def test_03_script_sequence_repeat_last(up):
    script = {"path": "/push", "responses": [
        {"status": 500},
        {"status": 429, "headers": {"Retry-After": "1"}},
        {"status": 201, "json": {"id": 7}},
    ], "repeat_last": True}
    assert call_json(up, "POST", "/_script", script)[0] == 200
    s1, _, _ = call(up, "POST", "/push/a", {"x": 1})
    s2, h2, _ = call(up, "POST", "/push/b", {"x": 2})  # prefix: same script, next response
    s3, _, b3 = call_json(up, "POST", "/push", {"x": 3})
    s4, _, b4 = call_json(up, "POST", "/push", {"x": 4})
    assert (s1, s2, s3, s4) == (500, 429, 201, 201)
    assert h2["Retry-After"] == "1"
    assert b3 == {"id": 7} and b4 == {"id": 7}
    assert call(up, "GET", "/pull")[0] == 200  # other paths keep the default
    log = up.log("/push")
    assert [e["response"]["status"] for e in log] == [500, 429, 201, 201]


def test_04_script_exhausted_falls_back_to_echo(up):
    up.script("/once", [{"status": 503}], repeat_last=False)
    assert call(up, "GET", "/once")[0] == 503
    status, _, body = call_json(up, "GET", "/once")
    assert status == 200 and body["ok"] is True
    # scripting again restarts the sequence
    up.script("/once", [{"status": 502}], repeat_last=False)
    assert call(up, "GET", "/once")[0] == 502


def test_05_script_per_key(up):
    up.script("/items", [{"status": 500}, {"status": 500}, {"status": 200}], per_key=True)
    seq = [(k, call(up, "POST", "/items", {}, {"Idempotency-Key": k})[0])
           for k in ("a", "b", "a", "a", "b", "b", "a")]
    assert seq == [("a", 500), ("b", 500), ("a", 500), ("a", 200), ("b", 500), ("b", 200),
                   ("a", 200)]


def test_06_longest_prefix_wins(up):
    up.script("/v1", [{"status": 500}])
    up.script("/v1/special", [{"status": 418}])
    assert call(up, "GET", "/v1/special/x")[0] == 418
    assert call(up, "GET", "/v1/other")[0] == 500


def test_07_delay_and_raw_body(up):
    up.script("/slow", [{"delay_ms": 300}])
    t0 = time.monotonic()
    status, _, body = call_json(up, "GET", "/slow")
    assert time.monotonic() - t0 >= 0.29
    assert status == 200 and body["path"] == "/slow"
    up.script("/text", [{"status": 200, "body": "plain", "headers": {"X-A": "b"}}])
    status, hdrs, raw = call(up, "GET", "/text")
    assert raw == b"plain" and hdrs["X-A"] == "b" and hdrs["Content-Type"] == "text/plain"


def test_08_drop_closes_without_answer(up):
    up.script("/drop", [{"drop": True}, {"status": 200}])
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        call(up, "GET", "/drop", headers={"Idempotency-Key": "d1"})
    assert call(up, "GET", "/drop")[0] == 200
    log = up.log("/drop")
    assert log[0]["response"] == {"drop": True} and log[0]["idempotency_key"] == "d1"
    assert log[1]["response"] == {"status": 200}


def test_09_keep_alive_and_concurrency_stats(up):
    conn = http.client.HTTPConnection("127.0.0.1", up.port, timeout=10)
    for i in range(3):  # three requests on one connection
        conn.request("GET", "/ka/%d" % i)
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
    conn.close()
    assert len(up.log("/ka")) == 3
    stats = up.stats()
    assert stats["in_flight"] == 0 and stats["max_in_flight"] >= 1


def test_09b_faulty_bodies(up):
    up.script("/reset", [{"reset": True}])
    with pytest.raises(ConnectionResetError):
        call(up, "GET", "/reset")
    assert up.log("/reset")[0]["response"] == {"reset": True}
    up.script("/cut", [{"body_bytes": 100, "reset_after_bytes": 5}])
    with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
        call(up, "GET", "/cut")
    for n in (3, 10, 11, 200000):  # generated bodies: exact size, JSON from 10 bytes on
        up.script("/big", [{"body_bytes": n}])
        status, hdrs, body = call(up, "GET", "/big")
        assert status == 200 and len(body) == n == int(hdrs["Content-Length"])
        if n >= 10:
            assert json.loads(body) == {"pad": "x" * (n - 10)}
    up.script("/chunked", [{"body_bytes": 100000, "chunked": True}])
    status, hdrs, body = call(up, "GET", "/chunked")
    assert hdrs.get("Transfer-Encoding") == "chunked" and len(json.loads(body)["pad"]) == 99990
    up.script("/drip", [{"drip_ms": 100, "drip_bytes": 2, "body": "abcdef",
                         "headers": {"Content-Type": "text/plain"}}])
    t0 = time.monotonic()
    status, hdrs, body = call(up, "GET", "/drip")
    assert body == b"abcdef" and hdrs["Content-Type"] == "text/plain"
    assert time.monotonic() - t0 >= 0.18  # three pieces, 100 ms apart


@pytest.mark.parametrize("bad", [
    {"responses": [{"status": 200}]},
    {"path": "nopath", "responses": [{"status": 200}]},
    {"path": "/_log", "responses": [{"status": 200}]},
    {"path": "/x", "responses": []},
    {"path": "/x", "responses": [{"status": 99}]},
    {"path": "/x", "responses": [{"statuz": 200}]},
    {"path": "/x", "responses": [{"delay_ms": -1}]},
    {"path": "/x", "responses": [{"json": {}, "body": ""}]},
    {"path": "/x", "responses": [{}], "repeat_last": "yes"},
    {"path": "/x", "responses": [{"body_bytes": -1}]},
    {"path": "/x", "responses": [{"reset": 1}]},
    "not an object",
])
def test_10_bad_script_rejected(up, bad):
    status, _, body = call_json(up, "POST", "/_script", bad)
    assert status == 400 and body["error"]
    assert up.log() == []


def test_11_runs_as_a_script():
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "upstream.py"), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("upstream listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])

        class Remote:  # what call() needs
            pass

        r = Remote()
        r.port = port
        assert call_json(r, "POST", "/_script", {"path": "/p", "responses": [{"status": 500}]})[0] == 200
        assert call(r, "POST", "/p", {"a": 1}, {"Idempotency-Key": "k"})[0] == 500
        log = call_json(r, "GET", "/_log")[2]
        assert len(log) == 1 and log[0]["idempotency_key"] == "k"
    finally:
        proc.terminate()  # by PID; the script stops on SIGTERM
        assert proc.wait(timeout=10) == 0
