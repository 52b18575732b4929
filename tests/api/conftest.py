"""Black-box harness: starts the real sluice binary on loopback and talks HTTP to it.

SLUICE_BIN names the binary (make api sets it; default build/rel/sluice). Each Server
gets its own temp dir, SQLite store and free port; tests stop it by PID only.
"""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("SLUICE_BIN", os.path.join(ROOT, "build", "rel", "sluice"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmpdir=None, args=(), env=None):
        self.dir = tmpdir or tempfile.mkdtemp(prefix="sluice-test-")
        self.store = "sqlite:" + os.path.join(self.dir, "sluice.db")
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.port = None
        self.log = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def create_key(self, tenant):
        out = subprocess.run([BIN, "keys", "create", "--tenant", tenant, "--store", self.store],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def start(self, port=None):
        self.port = port or self.port or free_port()
        self.log = open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:%d" % self.port, "--store", self.store]
            + self.args, stdout=self.log, stderr=self.log, env=self.env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited with %s; log:\n%s" % (self.proc.returncode, self.read_log()))
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def read_log(self):
        with open(os.path.join(self.dir, "server.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("server did not stop within %ss" % timeout)
        rc = self.proc.returncode if self.proc else 0
        if self.log:
            self.log.close()
        return rc

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()


class Client:
    """requests.Session bound to a server URL and an API key."""

    def __init__(self, server, key):
        self.server = server
        self.key = key
        self.s = requests.Session()
        if key:
            self.s.headers["Authorization"] = "Bearer " + key

    def url(self, path):
        return self.server.url + path

    def request(self, method, path, **kw):
        kw.setdefault("timeout", 60)
        return self.s.request(method, self.url(path), **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def submit(self, items, workflow="noop", **extra):
        body = dict(workflow=workflow, items=items, **extra)
        return self.post("/v1/jobs", data=json.dumps(body),
                         headers={"Content-Type": "application/json"})

    def submit_ndjson(self, lines, workflow="noop", **params):
        params = dict(params, workflow=workflow)
        data = lines if isinstance(lines, (bytes, str)) else "".join(json.dumps(l) + "\n" for l in lines)
        return self.post("/v1/jobs", params=params, data=data,
                         headers={"Content-Type": "application/x-ndjson"})

    def wait_job(self, job_id, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.get("/v1/jobs/" + job_id)
            assert r.status_code == 200, r.text
            j = r.json()
            if j["status"] in ("Succeeded", "Failed", "Canceled"):
                return j
            time.sleep(0.05)
        raise AssertionError("job %s not finished in %ss: %s" % (job_id, timeout, j))


def items(n, start=0, prefix="SKU-"):
    return [{"ref": "%s%d" % (prefix, i), "data": {"sku": "%s%d" % (prefix, i), "n": i}}
            for i in range(start, start + n)]


def assert_error(r, status, code, target=None):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"], err
    if target is not None:
        assert err.get("target") == target, err
    return err


@pytest.fixture(scope="session")
def server():
    srv = Server()
    srv.key_a = srv.create_key("acme")
    srv.key_b = srv.create_key("globex")
    srv.start()
    yield srv
    rc = srv.stop()
    assert rc == 0, "server exited with %s:\n%s" % (rc, srv.read_log()[-4000:])


@pytest.fixture
def api(server):
    return Client(server, server.key_a)


@pytest.fixture
def api_b(server):
    return Client(server, server.key_b)


@pytest.fixture
def fresh_server():
    """A server of the test's own, stopped (by PID) at the end."""
    started = []

    def make(args=(), env=None):
        srv = Server(args=args, env=env)
        srv.key_a = srv.create_key("acme")
        started.append(srv)
        return srv

    yield make
    for srv in started:
        if srv.proc and srv.proc.poll() is None:
            srv.stop()
