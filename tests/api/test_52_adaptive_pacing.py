"""Learned pacing (issue 14 point 2): with no limit configured in sluice, the http step
paces each upstream host by what it says of its own limit (X-RateLimit-*, the IETF
RateLimit / RateLimit-Policy fields, Shopify's call-limit header) and, where it says
nothing but 429, by AIMD. The upstreams here enforce their limits and count the 429s
they answer; the margins are wide for a busy 2-core machine, and the rates reached are
measured by the bench (W7), not here."""
import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import Client, items, make_workflow, submitted, uniq, wait_until


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # One send per response, without Nagle: a TCP stall would look like a slow
        # sluice.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        status, headers = self.server.limiter.decide(time.time())
        body = b'{"ok":true}' if status == 200 else b'{"error":"rate limited"}'
        head = "HTTP/1.1 %d %s\r\n" % (status, "OK" if status == 200 else "Too Many Requests")
        head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        for k, v in headers.items():
            head += "%s: %s\r\n" % (k, v)
        self.wfile.write(head.encode() + b"\r\n" + body)
        self.wfile.flush()


class Limited:
    """A loopback upstream on 127.0.0.1 whose limiter decides each answer."""

    def __init__(self, limiter):
        self.limiter = limiter
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.limiter = limiter
        self.origin = "127.0.0.1:%d" % self.httpd.server_address[1]  # learned per origin
        self.url = "http://" + self.origin
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.httpd.shutdown()
        self.httpd.server_close()


class FixedWindow:
    """limit requests per window-second window aligned to epoch seconds; publishes
    X-RateLimit-* (GitHub style: Reset an epoch second) or the IETF fields."""

    def __init__(self, limit, window, style):
        self.limit, self.window, self.style = limit, window, style
        self.mu = threading.Lock()
        self.start = None
        self.used = 0
        self.ok = self.n429 = 0

    def decide(self, now):
        with self.mu:
            start = math.floor(now / self.window) * self.window
            if start != self.start:
                self.start, self.used = start, 0
            allowed = self.used < self.limit
            if allowed:
                self.used += 1
                self.ok += 1
            else:
                self.n429 += 1
            remaining = self.limit - self.used
            reset = start + self.window
            if self.style == "x":
                h = {"X-RateLimit-Limit": str(self.limit),
                     "X-RateLimit-Remaining": str(remaining),
                     "X-RateLimit-Reset": str(int(reset))}
            else:
                h = {"RateLimit-Policy": '"default";q=%d;w=%d' % (self.limit, self.window),
                     "RateLimit": '"default";r=%d;t=%d' % (remaining, math.ceil(reset - now))}
            return (200 if allowed else 429), h


class LeakyBucket:
    """Shopify-like: a bucket of size calls leaking `leak` per second."""

    def __init__(self, size, leak):
        self.size, self.leak = size, leak
        self.mu = threading.Lock()
        self.level, self.t = 0.0, None
        self.ok = self.n429 = 0

    def decide(self, now):
        with self.mu:
            if self.t is not None:
                self.level = max(0.0, self.level - (now - self.t) * self.leak)
            self.t = now
            if self.level + 1 <= self.size:
                self.level += 1
                self.ok += 1
                status = 200
            else:
                self.n429 += 1
                status = 429
            used = int(math.ceil(self.level))
            return status, {"X-Shopify-Shop-Api-Call-Limit": "%d/%d" % (used, self.size)}


class HiddenRate:
    """A token bucket (rate per second, burst) that says nothing but a bare 429."""

    def __init__(self, rate, burst):
        self.rate, self.burst = rate, burst
        self.mu = threading.Lock()
        self.tokens, self.t = float(burst), None
        self.ok = self.n429 = 0

    def decide(self, now):
        with self.mu:
            if self.t is not None:
                self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
            self.t = now
            if self.tokens >= 1:
                self.tokens -= 1
                self.ok += 1
                return 200, {}
            self.n429 += 1
            return 429, {}


@pytest.fixture
def srv(fresh_server):
    s = fresh_server(args=["--outbound-allow", "127.0.0.1/32"])
    s.start()
    return s


def run(srv, upstream, n, timeout=60):
    c = Client(srv, srv.key_a)
    wf = make_workflow(c, [{"name": "push", "type": "http", "method": "POST",
                            "url": upstream.url + "/p/{{ref}}",
                            "retry": {"maxAttempts": 10, "backoffMs": 200}}])
    jid = submitted(c.submit(items(n, prefix=uniq("p") + "-"), workflow=wf))["id"]
    return c, jid


def learned_in_metrics(srv, c, source, up):
    def check():
        m = c.get("/metrics").text
        lines = [x for x in m.splitlines()
                 if x.startswith("sluice_upstream_learned_rate{") and 'host="%s"' % up.origin in x]
        return lines if any('source="%s"' % source in x for x in lines) else None
    return wait_until(check, timeout=10, what="learned %s in /metrics" % source)


def throttled_by(c, jid, source):
    def check():
        m = c.get("/v1/jobs/" + jid).json()
        tb = m["throughput"].get("throttledBy")
        if tb and tb.get("reason") == "learned" and tb.get("source") == source:
            return tb
        if m["status"] in ("Succeeded", "Failed", "Canceled", "PartiallySucceeded"):
            return {"done": True}
        return None
    return wait_until(check, timeout=20, what="throttledBy learned " + source)


def test_a_fixed_window_publishing_x_ratelimit_gets_at_most_one_429(srv):
    lim = FixedWindow(20, 1, "x")
    with Limited(lim) as up:
        c, jid = run(srv, up, 200)
        tb = throttled_by(c, jid, "x-ratelimit")
        job = c.wait_job(jid, timeout=60)
        assert job["counts"]["succeeded"] == 200, job
        assert lim.n429 <= 1, (lim.n429, lim.ok)
        learned_in_metrics(srv, c, "x-ratelimit", up)
    if "done" not in tb:
        assert tb["host"] == up.origin and tb["key"] == up.origin, tb
        assert 0 < tb["itemsPerSecond"] <= 25, tb


def test_b_ietf_ratelimit_policy_gets_at_most_one_429(srv):
    lim = FixedWindow(40, 1, "ietf")
    with Limited(lim) as up:
        c, jid = run(srv, up, 300)
        throttled_by(c, jid, "ratelimit")
        job = c.wait_job(jid, timeout=60)
        assert job["counts"]["succeeded"] == 300, job
        assert lim.n429 <= 1, (lim.n429, lim.ok)
        learned_in_metrics(srv, c, "ratelimit", up)


def test_c_shopify_leaky_bucket_gets_at_most_one_429(srv):
    lim = LeakyBucket(10, 10)
    with Limited(lim) as up:
        c, jid = run(srv, up, 150)
        job = c.wait_job(jid, timeout=60)
        assert job["counts"]["succeeded"] == 150, job
        assert lim.n429 <= 1, (lim.n429, lim.ok)
        learned_in_metrics(srv, c, "shopify", up)


def test_d_hidden_rate_answering_bare_429s_stays_under_five_percent(srv):
    lim = HiddenRate(50, 5)
    with Limited(lim) as up:
        c, jid = run(srv, up, 400)
        job = c.wait_job(jid, timeout=60)
        assert job["counts"]["succeeded"] == 400, job
        sent = lim.ok + lim.n429
        assert lim.n429 <= 0.05 * sent, (lim.n429, sent)
        lines = learned_in_metrics(srv, c, "aimd", up)
        rate = float(lines[0].rsplit(" ", 1)[1])
        assert 5 < rate < 100, lines
        m = c.get("/metrics").text
        assert 'sluice_upstream_throttled_total{host="%s"}' % up.origin in m


class Open:
    """Answers every request at once and says nothing of a limit."""

    def __init__(self):
        self.mu = threading.Lock()
        self.ok = self.n429 = 0

    def decide(self, now):
        with self.mu:
            self.ok += 1
        return 200, {}


def test_f_two_upstreams_on_one_host_learn_apart(fresh_server):
    # One host, two ports: what the strict one says of its limit (5 per second) must
    # not pace the other, which says nothing - learned state is per origin.
    s = fresh_server(args=["--outbound-allow", "127.0.0.1/32"])
    s.start()
    strict, other = FixedWindow(5, 1, "x"), Open()
    with Limited(strict) as a, Limited(other) as b:
        c, slow = run(s, a, 60)  # about 12 s at 5/s
        learned_in_metrics(s, c, "x-ratelimit", a)
        _, fast = run(s, b, 100)
        job = c.wait_job(fast, timeout=60)
        assert job["counts"]["succeeded"] == 100, job
        # paced with the strict one it would need 20 s, and end after it
        m = c.get("/v1/jobs/" + slow).json()
        assert m["status"] == "Running" and m["counts"]["succeeded"] < 60, m
        assert other.ok == 100
        m = c.get("/metrics").text
        assert 'sluice_upstream_learned_rate{host="%s",source="x-ratelimit"}' % a.origin in m, m
        assert 'host="%s",source="x-ratelimit"' % b.origin not in m
        assert c.wait_job(slow, timeout=60)["counts"]["succeeded"] == 60
        assert strict.n429 <= 1


def test_e_a_configured_limit_still_caps_what_is_learned(fresh_server):
    # the upstream allows 40/s; the operator's limit of 10/s holds
    s = fresh_server(args=["--outbound-allow", "127.0.0.1/32",
                           "--limits", json.dumps({"up": {"rate": 10, "burst": 1}})])
    s.start()
    lim = FixedWindow(40, 1, "x")
    with Limited(lim) as up:
        c = Client(s, s.key_a)
        wf = make_workflow(c, [{"name": "push", "type": "http", "method": "POST",
                                "url": up.url + "/p/{{ref}}", "limits": ["up"]}])
        t0 = time.time()
        jid = submitted(c.submit(items(30, prefix=uniq("c") + "-"), workflow=wf))["id"]
        job = c.wait_job(jid, timeout=60)
        assert job["counts"]["succeeded"] == 30
        assert time.time() - t0 >= 2.5  # 30 at 10/s, not at the learned 40/s
        assert lim.n429 == 0
