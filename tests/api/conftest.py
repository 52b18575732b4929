"""Black-box harness: starts the real sluice binary on loopback and talks HTTP to it.

SLUICE_BIN names the binary (make api sets it; default build/rel/sluice). Each Server
gets its own temp dir, store and free port; tests stop it by PID only.

SLUICE_TEST_STORE picks the backend: "sqlite" (default: a file in the temp dir) or
"postgres": a fresh database per Server on the cluster SLUICE_TEST_PG_URL names
(scripts/pg-test.sh starts a throwaway one and sets it).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

import openapi_check

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("SLUICE_BIN", os.path.join(ROOT, "build", "rel", "sluice"))


STORE_KIND = os.environ.get("SLUICE_TEST_STORE", "sqlite")
PG_URL = os.environ.get("SLUICE_TEST_PG_URL", "")


def psql(db, sql, timeout=60):
    """Runs sql on database db of the test cluster; returns stdout (unaligned, no headers)."""
    psql_bin = os.path.join(os.environ.get("SLUICE_TEST_PG_BIN", "/usr/bin"), "psql")
    out = subprocess.run([psql_bin, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                          PG_URL + db, "-c", sql], capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


def new_store(dirpath):
    """A store URL for a new server: a SQLite file in dirpath, or a fresh PostgreSQL
    database on the test cluster."""
    if STORE_KIND == "postgres":
        assert PG_URL, "SLUICE_TEST_STORE=postgres needs SLUICE_TEST_PG_URL (scripts/pg-test.sh)"
        name = "sluice_%s" % uuid.uuid4().hex[:16]
        psql("postgres", "CREATE DATABASE %s" % name)
        return PG_URL + name
    return "sqlite:" + os.path.join(dirpath, "sluice.db")


def store_rows(store, table):
    """Rows in one table of a store (read-only), or None if no such table."""
    if store.startswith("sqlite:"):
        import sqlite3
        db = sqlite3.connect("file:%s?mode=ro" % store.split(":", 1)[1], uri=True, timeout=30)
        try:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                              (table,)).fetchone():
                return None
            return db.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
        finally:
            db.close()
    db = store.rsplit("/", 1)[1]
    if not psql(db, "SELECT to_regclass('%s')" % table).strip():
        return None
    return int(psql(db, "SELECT count(*) FROM %s" % table).strip())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmpdir=None, args=(), env=None):
        self.dir = tmpdir or tempfile.mkdtemp(prefix="sluice-test-")
        self.store = new_store(self.dir)
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
        openapi_check.PORTS.add(self.port)  # its responses are checked against the document
        self.log = open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:%d" % self.port, "--store", self.store]
            + self.args, stdout=self.log, stderr=self.log, env=self.env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.expected_exit = self.proc  # the test meant it (or will say so)
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

    def cleanup(self):
        """Removes the temp dir (store and log); call only after a clean stop."""
        if not os.environ.get("SLUICE_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)
            if self.store.startswith("postgres"):
                psql("postgres", "DROP DATABASE IF EXISTS %s WITH (FORCE)"
                     % self.store.rsplit("/", 1)[1])

    def kill(self):
        self.expected_exit = self.proc
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


_SHARED = {}


@pytest.fixture(scope="session")
def server():
    # test_01 and others send dozens of wrong keys from 127.0.0.1 within a minute: the
    # failed-authentication limit (20/min per address, test_19) is off for this server
    srv = Server(args=["--auth-fail-rate", "0"])
    srv.key_a = srv.create_key("acme")
    srv.key_b = srv.create_key("globex")
    srv.start()
    _SHARED["server"] = srv
    yield srv
    _SHARED.pop("server", None)
    rc = srv.stop()
    assert rc == 0, "server exited with %s:\n%s" % (rc, srv.read_log()[-4000:])
    srv.cleanup()


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
    bad = []
    for srv in started:
        # a server that died by itself (a crash, a sanitizer report) fails the test even
        # when the test did not notice; SIGKILLs and refused starts were meant
        if (srv.proc and srv.proc.poll() is not None and srv.proc.returncode != 0
                and srv.proc is not getattr(srv, "expected_exit", None)):
            bad.append("server %s died with %s:\n%s" % (srv.dir, srv.proc.returncode,
                                                          srv.read_log()[-4000:]))
            continue
        if srv.proc and srv.proc.poll() is None:
            rc = srv.stop()
            if rc != 0:
                bad.append("server %s exited with %s:\n%s" % (srv.dir, rc, srv.read_log()[-4000:]))
                continue
        if srv.proc is None or srv.proc.returncode == 0:
            srv.cleanup()
    assert not bad, "\n".join(bad)


# ---- shared helpers (added for the black-box suite) -------------------------------------

import re
import uuid

TERMINAL = ("Succeeded", "Failed", "Canceled")
JOB_STATUSES = ("NotStarted", "Running", "Canceling", "Succeeded", "Failed", "Canceled")
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def uniq(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def wait_until(fn, timeout=60, interval=0.02, what="condition"):
    """Polls fn() until it returns a truthy value (returned) or timeout (AssertionError)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


def get_abs(client, url, **kw):
    """GET an absolute URL (a nextLink) with the client's session and key."""
    kw.setdefault("timeout", 60)
    return client.s.get(url, **kw)


def list_all(client, path, params=None, max_pages=1000):
    """Follows nextLink to the end; returns (all values, pages)."""
    r = client.get(path, params=params)
    assert r.status_code == 200, r.text
    pages = [r.json()]
    for _ in range(max_pages):
        body = pages[-1]
        assert set(body) <= {"value", "nextLink"}, body.keys()
        assert isinstance(body["value"], list)
        if "nextLink" not in body:
            break
        assert body["nextLink"].startswith(client.server.url + "/"), body["nextLink"]
        r = get_abs(client, body["nextLink"])
        assert r.status_code == 200, r.text
        pages.append(r.json())
    else:
        raise AssertionError("more than %d pages" % max_pages)
    return [v for p in pages for v in p["value"]], pages


def results(client, job_id):
    r = client.get("/v1/jobs/%s/results" % job_id)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/x-ndjson"), r.headers
    text = r.text
    assert text == "" or text.endswith("\n"), text[-200:]
    return [json.loads(l) for l in text.split("\n") if l]


def job_ids(client, **params):
    vals, _ = list_all(client, "/v1/jobs", params=dict(params, limit=1000))
    return [j["id"] for j in vals]


def submitted(r):
    """Asserts a 202 submit answer and returns the job monitor."""
    assert r.status_code == 202, (r.status_code, r.text)
    return r.json()


def counts_ok(job):
    c = job["counts"]
    assert set(c) == {"total", "pending", "processing", "succeeded", "failed", "skipped",
                      "canceled"}, c
    for k, v in c.items():
        assert isinstance(v, int) and v >= 0, c
    assert (c["pending"] + c["processing"] + c["succeeded"] + c["failed"] + c["skipped"]
            + c["canceled"]) == c["total"], c
    return c


def assert_alive(client):
    """After hostile input: health is fine and a normal submit is accepted and runs."""
    assert requests.get(client.server.url + "/healthz", timeout=10).status_code == 200
    j = submitted(client.submit(items(2, prefix=uniq("alive") + "-")))
    done = client.wait_job(j["id"])
    assert done["status"] == "Succeeded", done


def sluice(*args, env=None, timeout=120, input=None):
    """Runs the sluice binary (CLI) and returns the CompletedProcess."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=timeout,
                          env=e, input=input)


def raw_http(server, data, timeout=15, read=True, shutdown=False):
    """Sends raw bytes on a new connection and parses one HTTP response.
    Returns (status, headers dict lowercased, body bytes)."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    try:
        s.sendall(data)
        if shutdown:
            s.shutdown(socket.SHUT_WR)
        if not read:
            return None
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("connection closed before a full response head: %r" % buf)
            buf += chunk
        head, body = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "-1"))
        if n >= 0:
            while len(body) < n:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
            body = body[:n]
        return status, headers, body
    finally:
        s.close()


def raw_error(status_headers_body, status, code):
    st, _, body = status_headers_body
    assert st == status, (st, body)
    j = json.loads(body)
    assert set(j) == {"error"} and j["error"]["code"] == code and j["error"]["message"], j
    return j["error"]


def auth_header(key):
    return "Authorization: Bearer %s\r\n" % key


@pytest.fixture
def tenant(server):
    """A client for a brand-new tenant on the shared server: its job list starts empty."""
    return Client(server, server.create_key(uniq("tenant")))


def read_log_lines(server):
    return [l for l in server.read_log().splitlines() if l.strip()]


@pytest.fixture(autouse=True)
def _shared_server_watch():
    """If the shared server died during a test, that test fails (with the log tail) and
    the server is restarted on the same store, so one crash does not fail every later test."""
    yield
    srv = _SHARED.get("server")
    if not (srv and srv.proc):
        return
    if srv.proc.poll() is None:
        try:
            requests.get(srv.url + "/healthz", timeout=10)
        except requests.RequestException:
            try:  # it is dying (a sanitizer report takes a moment): let it finish
                srv.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                srv.proc.kill()
                srv.proc.wait()
    if srv.proc.poll() is not None:
        rc = srv.proc.returncode
        srv.log.close()
        tail = srv.read_log()[-3000:]
        # keep the crash's log apart, so later log checks see only the new process
        log = os.path.join(srv.dir, "server.log")
        os.rename(log, "%s.crash-%d" % (log, int(time.time() * 1000)))
        srv.start()
        pytest.fail("the shared server died during this test (exit status %s); restarted it. "
                    "Log tail:\n%s" % (rc, tail), pytrace=False)


def pytest_configure(config):
    # Every response from a sluice server is checked against docs/openapi.json as the
    # suite runs (tests/api/openapi_check.py); test_zz_openapi_drift.py reports it.
    openapi_check.install()
    # A failed HTTP call otherwise prints pages of requests/urllib3 source; keep it short
    # unless --tb was given explicitly.
    if getattr(config.option, "tbstyle", "auto") == "auto":
        config.option.tbstyle = "short"


def pytest_collection_modifyitems(config, items):
    # The drift report must see every other test's responses: it runs last.
    items.sort(key=lambda it: it.nodeid.split("::")[0].endswith("test_zz_openapi_drift.py"))


# ---- workflow / http-step / webhook helpers (tests 11-14) --------------------------------

import hashlib
import hmac
import sys as _sys

_sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from upstream import Upstream  # noqa: E402

# The secret every wf_server knows as {{secrets.shop}} (SLUICE_SECRET_shop), usable by
# the wfc tenants ("wft-...") and acme (SLUICE_SECRET_shop_TENANTS).
SHOP_SECRET = "shop-s3cr3t-Zq81xK"


def put_workflow(client, name, steps, **extra):
    """PUT /v1/workflows/{name} with these steps; returns the response."""
    return client.put("/v1/workflows/" + name, json=dict(extra, steps=steps))


def make_workflow(client, steps, prefix="wf", **extra):
    """Stores a new workflow under a fresh name and returns the name."""
    name = uniq(prefix)
    r = put_workflow(client, name, steps, **extra)
    assert r.status_code == 201, (r.status_code, r.text)
    return name


def run_job(client, items_, workflow, timeout=120):
    """Submits items to workflow and waits for the job; returns the final monitor."""
    j = submitted(client.submit(items_, workflow=workflow))
    return client.wait_job(j["id"], timeout=timeout)


def item_detail(client, job_id, index):
    r = client.get("/v1/jobs/%s/items/%d" % (job_id, index))
    assert r.status_code == 200, r.text
    return r.json()


def step_events(item, step=None):
    """The "step" events of an item detail (optionally of one step), in order."""
    return [e for e in item["events"] if e.get("stage") == "step"
            and (step is None or e.get("step") == step)]


def step_counts(job):
    """{"name": (passed, failed, skipped)} from a job monitor's "steps"."""
    assert "steps" in job, job
    return {s["name"]: (s["passed"], s["failed"], s["skipped"]) for s in job["steps"]}


def hook_sign(secret, body, t=None):
    """A Sluice-Signature value: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>."""
    t = int(time.time()) if t is None else t
    if isinstance(body, str):
        body = body.encode()
    mac = hmac.new(secret.encode(), b"%d." % t + body, hashlib.sha256).hexdigest()
    return "t=%d,v1=%s" % (t, mac)


@pytest.fixture
def upstream():
    """The scripted fake upstream (tests/api/upstream.py), stopped at the end."""
    up = Upstream()
    up.start()
    yield up
    up.stop()


@pytest.fixture(scope="session")
def wf_server():
    """A server whose http steps may call loopback (--outbound-allow 127.0.0.1/32) and
    that lets acme and the wfc tenants use {{secrets.shop}} = SHOP_SECRET."""
    srv = Server(args=["--outbound-allow", "127.0.0.1/32"],
                 env={"SLUICE_SECRET_shop": SHOP_SECRET,
                      "SLUICE_SECRET_shop_TENANTS": "acme,wft-*"})
    srv.key_a = srv.create_key("acme")
    srv.start()
    yield srv
    rc = srv.stop()
    assert rc == 0, "wf_server exited with %s:\n%s" % (rc, srv.read_log()[-4000:])
    srv.cleanup()


@pytest.fixture
def wfc(wf_server):
    """A client of a brand-new tenant on wf_server."""
    return Client(wf_server, wf_server.create_key(uniq("wft")))


import upstream as _upstream_mod  # noqa: E402


class _WideBacklogServer(_upstream_mod._Server):
    # socketserver listens with a backlog of 5; hundreds of concurrent connects from the
    # outbound engine would then sit in SYN retransmits (seconds each)
    request_queue_size = 4096


class FastUpstream(Upstream):
    """The fake upstream with a wide listen backlog, for many concurrent connections."""

    def start(self):
        import threading
        self._server = _WideBacklogServer((self.host, self.port), _upstream_mod._Handler)
        self._server.state = _upstream_mod._State()
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self.port


@pytest.fixture
def fast_upstream():
    up = FastUpstream()
    up.start()
    yield up
    up.stop()
