"""HTTP/1.1 framing (RFC 9112): a request whose length is ambiguous is answered 400 with
Connection: close and nothing after it on that connection is served (no request
smuggling); Host is required once in HTTP/1.1; an oversized header block gets 431 and
an oversized request target 414, at once, with a status line (not a hang)."""
import json
import re
import socket
import time

import pytest

from conftest import Client, assert_alive


def exchange(srv, data, timeout=10):
    """Sends data on a fresh connection, then reads until the server closes it.
    Returns (everything read, seconds until EOF)."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    t0 = time.time()
    buf = b""
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before reading everything we send
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
    except socket.timeout:
        raise AssertionError("the connection stayed open %ss after: %r" % (timeout, buf[:300]))
    finally:
        s.close()
    return buf, time.time() - t0


def responses(buf):
    """Splits buf into [(status, head bytes, body bytes)] by each head's Content-Length
    (all replies here have one); a trailing remnant that is not a response head is
    returned as a response with status None so that the test sees it."""
    out = []
    while buf:
        head, sep, rest = buf.partition(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3}) ", head)
        if not sep or not m:
            out.append((None, buf, b""))
            break
        n = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
        size = int(n.group(1)) if n else len(rest)
        out.append((int(m.group(1)), head, rest[:size]))
        buf = rest[size:]
    return out


def statuses(buf):
    return [st for st, _, _ in responses(buf)]


def only_response(buf, status, code=None):
    assert statuses(buf) == [status], buf[:600]
    _, head, body = responses(buf)[0]
    assert re.search(rb"\r\nConnection: close\r\n", head, re.I), head
    if code:
        j = json.loads(body)
        assert j["error"]["code"] == code, j
        return j["error"]
    return None


@pytest.fixture(scope="module")
def srv():
    from conftest import Server
    s = Server(args=["--auth-fail-rate", "0"])
    s.key_a = s.create_key("acme")
    s.start()
    yield s
    rc = s.stop()
    assert rc == 0, s.read_log()[-3000:]
    s.cleanup()


SMUGGLED = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


def test_content_length_with_chunked_is_400_and_nothing_after_it_is_served(srv):
    body = b"0\r\n\r\n" + SMUGGLED
    req = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" % len(body)) + body
    buf, took = exchange(srv, req)
    only_response(buf, 400, "InvalidRequest")
    assert b"sluice_" not in buf  # no metrics text: the smuggled request was not served
    assert took < 5  # closed at once, not after an idle timeout
    # the same on a path no route has (a 404 must not leave the connection open)
    buf, _ = exchange(srv, req.replace(b"GET /healthz", b"GET /nope", 1))
    only_response(buf, 400, "InvalidRequest")
    assert b"sluice_" not in buf


def test_two_content_lengths_are_400_and_close(srv):
    req = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"
           + SMUGGLED)
    buf, _ = exchange(srv, req)
    only_response(buf, 400, "InvalidRequest")
    # also on an authenticated POST, where a body is expected
    req = (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + srv.key_a.encode()
           + b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
           b"Content-Length: 40\r\n\r\n{}" + SMUGGLED)
    buf, _ = exchange(srv, req)
    only_response(buf, 400, "InvalidRequest")


def test_bad_content_length_and_transfer_coding_close(srv):
    buf, _ = exchange(srv, b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, "
                           b"chunked\r\n\r\n" + SMUGGLED)
    only_response(buf, 400, "InvalidRequest")
    # libmicrohttpd refuses an unparsable Content-Length itself (its HTML 400, whose
    # head 0.9.75 writes twice) and closes: what matters is that nothing is served
    buf, _ = exchange(srv, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n"
                      + SMUGGLED)
    assert buf.startswith(b"HTTP/1.1 400 "), buf[:300]
    assert b" 200 OK" not in buf and b"sluice_" not in buf, buf


def test_repeated_transfer_encoding_and_one_on_http_1_0_close(srv):
    # two fields: MHD frames by the first, a proxy joining them ("chunked, gzip") would not
    buf, _ = exchange(srv, b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                           b"Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n" + SMUGGLED)
    only_response(buf, 400, "InvalidRequest")
    assert b"sluice_" not in buf
    # RFC 9112 6.1: a Transfer-Encoding on an HTTP/1.0 request cannot be trusted
    buf, _ = exchange(srv, b"POST /healthz HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"0\r\n\r\n" + SMUGGLED)
    only_response(buf, 400, "InvalidRequest")
    assert b"sluice_" not in buf


def test_a_good_request_keeps_the_connection(srv):
    """The control: two pipelined valid requests are both answered."""
    buf, _ = exchange(srv, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                           b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses(buf) == [200, 200], buf[:600]


def test_host_is_required_once_in_http_1_1(srv):
    buf, _ = exchange(srv, b"GET /healthz HTTP/1.1\r\n\r\n" + SMUGGLED)
    err = only_response(buf, 400, "InvalidRequest")
    assert err["target"] == "Host"
    buf, _ = exchange(srv, b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + SMUGGLED)
    err = only_response(buf, 400, "InvalidRequest")
    assert err["target"] == "Host"
    # HTTP/1.0 predates Host (RFC 9112 3.2 requires it of 1.1 only)
    buf, _ = exchange(srv, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert statuses(buf) == [200], buf[:300]


def test_header_block_over_the_limit_is_431(srv):
    # 20 KB: over the 16 KiB default, read and answered with the JSON error body
    fields = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(20))
    buf, took = exchange(srv, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    only_response(buf, 431, "HeadersTooLarge")
    assert took < 5
    # 200 KB: refused before it is read in full (MHD's own 431), at once, not a hang
    fields = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(200))
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sent = 0
        try:
            for i in range(0, len(fields), 4096):
                s.sendall(fields[i:i + 4096])
                sent += 4096
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                buf += c
        except ConnectionResetError:
            pass
    finally:
        s.close()
    assert statuses(buf) == [431], buf[:300]
    # many small fields are the same bytes
    fields = b"".join(b"X%d: 1\r\n" % i for i in range(4000))
    buf, _ = exchange(srv, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert statuses(buf) == [431], buf[:300]
    assert_alive(Client(srv, srv.key_a))


def test_header_limit_is_configurable(fresh_server):
    s = fresh_server(args=["--max-header-bytes", "2048"])
    s.start()
    fields = b"X-Pad: " + b"a" * 3000 + b"\r\n"
    buf, _ = exchange(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    only_response(buf, 431, "HeadersTooLarge")
    buf, _ = exchange(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: "
                         + b"a" * 1500 + b"\r\n\r\n")
    assert statuses(buf) == [200], buf[:300]


def test_long_request_target_is_414(srv):
    buf, took = exchange(srv, b"GET /healthz?x=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    only_response(buf, 414, "UriTooLong")
    assert took < 5
    # 10,000 query parameters (about 70 KB): 414 at once, not a dropped connection
    q = b"&".join(b"p%d=1" % i for i in range(10000))
    buf, took = exchange(srv, b"GET /v1/jobs?" + q + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(buf) == [414], buf[:300]
    assert took < 5
    # 300 short parameters fit in 8 KiB but are over the 256 default
    q = b"&".join(b"p%d=1" % i for i in range(300))
    buf, _ = exchange(srv, b"GET /healthz?" + q + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    only_response(buf, 414, "UriTooLong")
    # a target just under the limits is served
    buf, _ = exchange(srv, b"GET /healthz?x=" + b"a" * 7000 + b" HTTP/1.1\r\nHost: x\r\n"
                           b"Connection: close\r\n\r\n")
    assert statuses(buf) == [200], buf[:300]
    assert_alive(Client(srv, srv.key_a))
