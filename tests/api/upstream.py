"""A scripted fake upstream for the black-box tests (Python 3 stdlib only).

The sluice `http` step calls this server; tests script how it answers and read what
it received. Behaviour is scripted per request path PREFIX through a control endpoint;
every other request is answered and logged.

Control endpoints (never logged, never scripted):

  POST /_script   {"path": "/push",                  # prefix of the request path
                   "responses": [                    # used one per matching request
                       {"status": 500},
                       {"status": 429, "headers": {"Retry-After": "1"}},
                       {"status": 200, "json": {"id": 7}},
                       {"delay_ms": 3000},           # wait, then the default echo
                       {"drop": true},               # close without answering
                       {"reset": true},              # reset (RST) without answering
                       {"status": 200, "body": "raw text"},
                       {"drip_ms": 200, "drip_bytes": 1},   # headers, then the body
                                                     # drip_bytes every drip_ms
                       {"body_bytes": 8388608},      # a JSON body of that many bytes,
                                                     # generated as it is sent
                       {"body_bytes": 1073741824, "chunked": true},  # ... chunked,
                                                     # no Content-Length
                       {"reset_after_bytes": 10}],   # headers, 10 body bytes, RST
                   "repeat_last": true,              # after the list: repeat the last
                                                     # (false: default echo)
                   "per_key": false}                 # true: a separate position in
                                                     # the list per Idempotency-Key
                  -> {"ok": true}; 400 {"error": ...} for a malformed script.
                  Scripting a path again replaces its script and restarts it. The
                  longest matching prefix wins.
  GET  /_log      -> JSON array of every request, oldest first ("?path=/push" keeps
                  those whose path starts with /push):
                  {"seq", "time" (epoch seconds, float, at arrival), "method", "path"
                   (with query), "headers" {name: value}, "idempotency_key" (or null),
                   "body" (text), "json" (parsed body or null), "response"
                   ({"status": N} or {"drop": true})}
  GET  /_stats    -> {"requests": N, "in_flight": N, "max_in_flight": N}
  POST /_reset    clears the log, every script and the statistics -> {"ok": true}

A response without "status" answers 200; without "json" or "body" it answers the
default echo {"ok": true, "path": ..., "method": ..., "body": <parsed JSON body, the
raw text if it is not JSON, or null>}. "delay_ms" applies before any answer (also
before a drop). "headers" may set Content-Type (e.g. "application/json" on a "body"
that is not JSON). A client that goes away while a body drips or streams ends it.

As a module:

    from upstream import Upstream
    up = Upstream()            # 127.0.0.1, a free port
    port = up.start()
    up.script("/push", [{"status": 500}, {"status": 200}])
    ... up.log("/push"), up.stats(), up.reset(), up.url ...
    up.stop()

As a script (SIGTERM or Ctrl-C stops it):

    python3 tests/api/upstream.py --port 8099 [--host 127.0.0.1]

prints "upstream listening on http://127.0.0.1:8099" once it accepts connections
(--port 0 picks a free port, shown in that line).
"""
import argparse
import io
import json
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

RESPONSE_KEYS = {"status", "headers", "json", "body", "delay_ms", "drop", "reset", "drip_ms",
                 "drip_bytes", "body_bytes", "chunked", "reset_after_bytes"}
MAX_BODY = 64 << 20


class ScriptError(ValueError):
    pass


def _check_script(spec):
    if not isinstance(spec, dict):
        raise ScriptError("script must be a JSON object")
    path = spec.get("path")
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("/_"):
        raise ScriptError("path must be a string starting with / (not /_)")
    responses = spec.get("responses")
    if not isinstance(responses, list) or not responses:
        raise ScriptError("responses must be a non-empty array")
    for i, r in enumerate(responses):
        if not isinstance(r, dict):
            raise ScriptError("responses[%d] must be an object" % i)
        unknown = set(r) - RESPONSE_KEYS
        if unknown:
            raise ScriptError("responses[%d]: unknown keys %s" % (i, sorted(unknown)))
        status = r.get("status", 200)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise ScriptError("responses[%d].status must be an integer 100..599" % i)
        headers = r.get("headers", {})
        if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, (str, int)) for k, v in headers.items()):
            raise ScriptError("responses[%d].headers must map names to strings" % i)
        delay = r.get("delay_ms", 0)
        if not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0:
            raise ScriptError("responses[%d].delay_ms must be a number >= 0" % i)
        if "body" in r and not isinstance(r["body"], str):
            raise ScriptError("responses[%d].body must be a string" % i)
        if "json" in r and "body" in r:
            raise ScriptError("responses[%d]: json and body are exclusive" % i)
        for key in ("drip_ms", "drip_bytes", "body_bytes", "reset_after_bytes"):
            v = r.get(key, 0)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ScriptError("responses[%d].%s must be an integer >= 0" % (i, key))
        for key in ("drop", "reset", "chunked"):
            if key in r and not isinstance(r[key], bool):
                raise ScriptError("responses[%d].%s must be true or false" % (i, key))
    for key in ("repeat_last", "per_key"):
        if key in spec and not isinstance(spec[key], bool):
            raise ScriptError("%s must be true or false" % key)
    return {
        "path": path,
        "responses": responses,
        "repeat_last": spec.get("repeat_last", True),
        "per_key": spec.get("per_key", False),
        "next": {},  # key (or None) -> index of the next response
    }


class _State:
    """Everything the handlers share; one lock guards it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.scripts = {}
        self.log = []
        self.in_flight = 0
        self.max_in_flight = 0

    def reset(self):
        with self.lock:
            self.scripts.clear()
            self.log.clear()
            self.max_in_flight = self.in_flight

    def set_script(self, spec):
        script = _check_script(spec)
        with self.lock:
            self.scripts[script["path"]] = script

    def pick(self, path, key):
        """The scripted response for a request, or None for the default echo."""
        with self.lock:
            matches = [p for p in self.scripts if path.startswith(p)]
            if not matches:
                return None
            script = self.scripts[max(matches, key=len)]
            slot = key if script["per_key"] else None
            i = script["next"].get(slot, 0)
            script["next"][slot] = i + 1
            responses = script["responses"]
            if i < len(responses):
                return responses[i]
            return responses[-1] if script["repeat_last"] else None

    def record(self, entry):
        with self.lock:
            entry["seq"] = len(self.log)
            self.log.append(entry)

    def entries(self, prefix=None):
        with self.lock:
            return [dict(e) for e in self.log if not prefix or e["path"].startswith(prefix)]

    def enter(self):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self):
        with self.lock:
            self.in_flight -= 1

    def stats(self):
        with self.lock:
            return {"requests": len(self.log), "in_flight": self.in_flight,
                    "max_in_flight": self.max_in_flight}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client can reuse connections
    server_version = "sluice-fake-upstream/1"

    def log_message(self, fmt, *args):  # quiet; the log endpoint is the record
        pass

    @property
    def state(self):
        return self.server.state

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status, body=b"", headers=None, content_type="application/json"):
        self.send_response(status)
        names = {k.lower() for k in (headers or {})}
        if content_type and "content-type" not in names:
            self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            if k.lower() != "content-length":
                self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status, obj):
        self._send(status, json.dumps(obj).encode())

    def _control(self, path, query, raw):
        if path == "/_script" and self.command == "POST":
            try:
                self.state.set_script(json.loads(raw or b"null"))
            except (ValueError, ScriptError) as e:
                return self._send_json(400, {"error": str(e)})
            return self._send_json(200, {"ok": True})
        if path == "/_log" and self.command == "GET":
            prefix = parse_qs(query).get("path", [None])[0]
            return self._send_json(200, self.state.entries(prefix))
        if path == "/_stats" and self.command == "GET":
            return self._send_json(200, self.state.stats())
        if path == "/_reset" and self.command == "POST":
            self.state.reset()
            return self._send_json(200, {"ok": True})
        return self._send_json(404, {"error": "no such control endpoint"})

    def _handle(self):
        arrived = time.time()
        split = urlsplit(self.path)
        try:
            raw = self._read_body()
        except ValueError:
            self.close_connection = True
            return self._send_json(400, {"error": "bad or too large body"})
        if split.path.startswith("/_"):
            return self._control(split.path, split.query, raw)

        text = raw.decode("utf-8", "replace")
        parsed, is_json = None, False
        if raw:
            try:
                parsed, is_json = json.loads(text), True
            except ValueError:
                pass
        key = self.headers.get("Idempotency-Key")
        entry = {
            "time": arrived, "method": self.command, "path": self.path,
            "headers": {k: v for k, v in self.headers.items()},
            "idempotency_key": key, "body": text, "json": parsed,
        }
        spec = self.state.pick(split.path, key) or {}
        self.state.enter()
        try:
            if spec.get("delay_ms"):
                time.sleep(spec["delay_ms"] / 1000.0)
            if spec.get("reset"):
                entry["response"] = {"reset": True}
                self.state.record(entry)
                return self._reset()
            if spec.get("drop"):
                entry["response"] = {"drop": True}
                self.state.record(entry)
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            status = spec.get("status", 200)
            entry["response"] = {"status": status}
            self.state.record(entry)
            if spec.get("body_bytes") or spec.get("drip_ms") or "reset_after_bytes" in spec:
                return self._send_faulty(spec, status)
            if "json" in spec:
                body = json.dumps(spec["json"]).encode()
            elif "body" in spec:
                body = spec["body"].encode()
            else:
                body = json.dumps({"ok": True, "path": split.path, "method": self.command,
                                   "body": parsed if is_json or not raw else text}
                                  ).encode()
            ctype = "application/json" if "body" not in spec else "text/plain"
            self._send(status, body, spec.get("headers"), ctype)
        finally:
            self.state.leave()

    def _reset(self):
        """Closes the connection with a TCP reset (SO_LINGER 0) instead of a FIN."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.wfile.close()
        self.rfile.close()
        self.connection.close()
        self.wfile, self.rfile = io.BytesIO(), io.BytesIO()  # for the handler's own flush

    def _send_faulty(self, spec, status):
        """The bodies that misbehave: dripped, huge, or cut by a reset."""
        n = spec.get("body_bytes", 0)
        if n:
            body = None  # generated: {"pad":"xxx...x"}, n bytes
        else:
            body = spec["body"].encode() if "body" in spec else json.dumps(
                spec.get("json", {"ok": True})).encode()
            n = len(body)
        chunked = spec.get("chunked", False)
        self.send_response(status)
        headers = dict({"Content-Type": "application/json"}, **spec.get("headers", {}))
        for k, v in headers.items():
            self.send_header(k, str(v))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(n))
        self.end_headers()
        self.close_connection = True

        def piece(off, size):
            """Bytes [off, off+size) of the body; a generated one is {"pad":"xx..x"}
            (n >= 10; shorter ones are all x), made piece by piece, never whole."""
            if body is not None:
                return body[off:off + size]
            head, tail = (b'{"pad":"', b'"}') if n >= 10 else (b"", b"")
            out = []
            for seg_start, seg in ((0, head), (n - len(tail), tail)):
                lo, hi = max(off, seg_start), min(off + size, seg_start + len(seg))
                if lo < hi:
                    out.append((seg_start, seg[lo - seg_start:hi - seg_start]))
            lo, hi = max(off, len(head)), min(off + size, n - len(tail))
            if lo < hi:
                out.append((lo, b"x" * (hi - lo)))
            return b"".join(p for _, p in sorted(out))

        step = (spec.get("drip_bytes") or 1) if spec.get("drip_ms") else 65536
        cut = spec.get("reset_after_bytes")
        off = 0
        try:
            while off < n and (cut is None or off < cut):
                size = min(step, n - off, (cut - off) if cut is not None else n)
                data = piece(off, size)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                off += len(data)
                if spec.get("drip_ms"):
                    time.sleep(spec["drip_ms"] / 1000.0)
            if cut is not None:
                return self._reset()
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client went away (a cap, a timeout): stop sending

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # a client that went away mid-answer (a killed server): not the fake's error
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    daemon_threads = True
    request_queue_size = 4096  # a batch of http steps connects all at once
    block_on_close = False  # stop() must not wait for a handler sleeping in delay_ms
    allow_reuse_address = True


class Upstream:
    """The fake upstream in a background thread: start() returns the port."""

    def __init__(self, host="127.0.0.1", port=0):
        self.host = host
        self.port = port
        self._server = None
        self._thread = None

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def start(self):
        self._server = _Server((self.host, self.port), _Handler)
        self._server.state = _State()
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self.port

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # In-process shortcuts for the control endpoints.
    def script(self, path, responses, repeat_last=True, per_key=False):
        self._server.state.set_script({"path": path, "responses": responses,
                                       "repeat_last": repeat_last, "per_key": per_key})

    def log(self, path=None):
        return self._server.state.entries(path)

    def stats(self):
        return self._server.state.stats()

    def reset(self):
        self._server.state.reset()


def main(argv=None):
    ap = argparse.ArgumentParser(description="sluice fake upstream")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    up = Upstream(args.host, args.port)
    up.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print("upstream listening on %s" % up.url, flush=True)
    while not stop.wait(0.5):
        pass
    up.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
