"""Admission control: a token bucket per tenant (--tenant-rate/--tenant-burst), the
draft-ietf-httpapi-ratelimit-headers fields, 429 + Retry-After, and failed
authentications limited per client address (--auth-fail-rate).

Timing: the server refills while the test runs, so counts are checked against
bounds that allow for the elapsed time, and waits are lower bounds only."""
import math
import re
import time

import requests

from conftest import Client, assert_error, sluice

LIMITED = ["--tenant-rate", "5", "--tenant-burst", "10"]
RL_RE = re.compile(r'^"tenant";r=(\d+);t=(\d+)$')
AUTH_RL_RE = re.compile(r'^"auth-failures";r=(\d+);t=(\d+)$')
WRONG_KEY = "slk_nothere1_" + "0" * 40


def _start(fresh_server, args=LIMITED, env=None):
    srv = fresh_server(args=args, env=env)
    srv.key_b = srv.create_key("globex")
    srv.start()
    return srv


def _until_limited(client, path="/v1/jobs", most=200):
    """Sends requests until the first non-200; returns (200 responses, that response,
    seconds the whole run took)."""
    oks = []
    t0 = time.monotonic()
    for _ in range(most):
        r = client.get(path)
        if r.status_code != 200:
            return oks, r, time.monotonic() - t0
        oks.append(r)
    raise AssertionError("no 429 after %d requests" % most)


def _retry_after(r):
    ra = r.headers.get("Retry-After")
    assert ra is not None and re.fullmatch(r"[1-9]\d*", ra), r.headers
    return int(ra)


def test_burst_then_429_with_retry_after(fresh_server):
    srv = _start(fresh_server)
    c = Client(srv, srv.key_a)
    oks, r, elapsed = _until_limited(c)
    # the burst (10), plus whatever refilled meanwhile at 5/s
    assert 10 <= len(oks) <= 10 + math.ceil(elapsed * 5) + 1, (len(oks), elapsed)
    err = assert_error(r, 429, "RateLimited")
    assert "rate limit" in err["message"], err
    ra = _retry_after(r)
    assert 1 <= ra <= 2, ra  # one token takes 200 ms: rounded up to 1 s
    assert r.headers["RateLimit-Policy"] == '"tenant";q=10;w=2', r.headers
    m = RL_RE.match(r.headers["RateLimit"])
    assert m and m.group(1) == "0", r.headers
    # the effective window of a refused request ends no later than Retry-After
    assert int(m.group(2)) <= ra
    # the request was refused before any work: nothing of it in the log as a handler error
    assert r.headers.get("X-Request-Id")


def test_headers_on_every_authenticated_response(fresh_server):
    srv = _start(fresh_server)
    c = Client(srv, srv.key_a)
    seen = []
    for path in ("/v1/jobs", "/v1/jobs/job_doesnotexist", "/v1/collections/products"):
        r = c.get(path)
        assert r.status_code in (200, 404), r.text
        assert r.headers["RateLimit-Policy"] == '"tenant";q=10;w=2', r.headers
        m = RL_RE.match(r.headers["RateLimit"])
        assert m, r.headers["RateLimit"]
        seen.append(int(m.group(1)))
        assert 0 <= int(m.group(2)) <= 2
    # each request took a token (refill may give some back, never more than taken)
    assert seen[0] <= 9 and seen[1] <= seen[0] and seen[2] <= seen[1] + 1, seen
    # operations need no key and carry no tenant limit
    h = requests.get(srv.url + "/healthz", timeout=10)
    assert h.status_code == 200 and "RateLimit" not in h.headers


def test_other_tenant_unaffected(fresh_server):
    srv = _start(fresh_server)
    a, b = Client(srv, srv.key_a), Client(srv, srv.key_b)
    _, r, _ = _until_limited(a)
    assert r.status_code == 429
    rb = b.get("/v1/jobs")
    assert rb.status_code == 200, rb.text
    m = RL_RE.match(rb.headers["RateLimit"])
    assert m and int(m.group(1)) == 9, rb.headers  # globex's own, untouched bucket
    # health stays up while a tenant is limited
    assert requests.get(srv.url + "/healthz", timeout=10).status_code == 200


def test_bucket_refills_after_retry_after(fresh_server):
    srv = _start(fresh_server)
    c = Client(srv, srv.key_a)
    _, r, _ = _until_limited(c)
    assert r.status_code == 429
    time.sleep(_retry_after(r))
    r2 = c.get("/v1/jobs")
    assert r2.status_code == 200, r2.text
    # after a full window (10 tokens at 5/s = 2 s) the whole burst is back
    time.sleep(2.2)
    oks, r3, elapsed = _until_limited(c)
    assert len(oks) >= 10, len(oks)
    assert r3.status_code == 429


def test_limited_submit_stores_nothing(fresh_server):
    srv = _start(fresh_server)
    c = Client(srv, srv.key_a)
    _until_limited(c)
    accepted = 0
    for i in range(5):  # a token may refill in between: then that submit is accepted
        r = c.submit([{"ref": "r%d" % i, "data": {}}])
        if r.status_code != 202:
            break
        accepted += 1
    assert_error(r, 429, "RateLimited")
    time.sleep(_retry_after(r))
    r = c.get("/v1/jobs")
    assert r.status_code == 200, r.text
    assert len(r.json()["value"]) == accepted, r.json()


def test_retry_after_only_on_429_and_503(fresh_server):
    srv = _start(fresh_server, args=["--tenant-rate", "100", "--tenant-burst", "100"])
    c = Client(srv, srv.key_a)
    for r, status in ((c.get("/v1/jobs/job_doesnotexist"), 404),
                      (c.post("/v1/jobs", data="{", headers={"Content-Type": "application/json"}), 400),
                      (c.submit([]), 422),
                      (c.get("/v1/nowhere"), 404),
                      (Client(srv, WRONG_KEY).get("/v1/jobs"), 401),
                      (Client(srv, None).get("/v1/jobs"), 401),
                      (c.get("/v1/jobs"), 200)):
        assert r.status_code == status, (status, r.status_code, r.text)
        assert "Retry-After" not in r.headers, (status, r.headers)


def test_failed_auth_limited_per_address(fresh_server):
    srv = _start(fresh_server, args=[])  # defaults: 20 failures per minute
    good = Client(srv, srv.key_a)
    assert good.get("/v1/jobs").status_code == 200
    bad = Client(srv, WRONG_KEY)
    fails = []
    t0 = time.monotonic()
    for i in range(60):
        r = bad.get("/v1/jobs")
        if r.status_code != 401:
            break
        assert r.headers["RateLimit-Policy"] == '"auth-failures";q=20;w=60', r.headers
        assert AUTH_RL_RE.match(r.headers["RateLimit"]), r.headers
        fails.append(r)
    elapsed = time.monotonic() - t0
    assert 20 <= len(fails) <= 20 + math.ceil(elapsed / 3) + 1, (len(fails), elapsed)
    limited = r
    err = assert_error(limited, 429, "RateLimited")
    assert "authentication" in err["message"], err
    assert _retry_after(limited) <= 3
    assert AUTH_RL_RE.match(limited.headers["RateLimit"]).group(1) == "0"
    # other wrong keys from the same address: still 429 (guessing is throttled)
    assert_error(Client(srv, "slk_other_" + "9" * 40).get("/v1/jobs"), 429, "RateLimited")
    # a valid key from the same address is served, and not charged to the address
    for _ in range(3):
        r = good.get("/v1/jobs")
        assert r.status_code == 200, r.text
        assert r.headers["RateLimit-Policy"].startswith('"tenant"'), r.headers
    # no key at all is not a guess: 401, as always
    assert_error(Client(srv, None).get("/v1/jobs"), 401, "Unauthorized")
    # the budget refills: after Retry-After one more guess gets its 401
    time.sleep(_retry_after(limited))
    assert_error(bad.get("/v1/jobs"), 401, "Unauthorized")


def test_auth_fail_rate_flag_and_off(fresh_server):
    srv = _start(fresh_server, args=["--auth-fail-rate", "3", "--tenant-rate", "0"])
    bad = Client(srv, WRONG_KEY)
    codes = [bad.get("/v1/jobs").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429], codes
    # --tenant-rate 0: no tenant limit and no tenant headers
    r = Client(srv, srv.key_a).get("/v1/jobs")
    assert r.status_code == 200 and "RateLimit" not in r.headers and \
        "RateLimit-Policy" not in r.headers, r.headers
    srv2 = _start(fresh_server, args=["--auth-fail-rate", "0"])
    bad2 = Client(srv2, WRONG_KEY)
    assert all(bad2.get("/v1/jobs").status_code == 401 for _ in range(30))


def test_environment_settings(fresh_server):
    srv = _start(fresh_server, args=[], env={"SLUICE_TENANT_RATE": "1", "SLUICE_TENANT_BURST": "3"})
    c = Client(srv, srv.key_a)
    oks, r, elapsed = _until_limited(c)
    assert 3 <= len(oks) <= 3 + math.ceil(elapsed) + 1, (len(oks), elapsed)
    assert r.headers["RateLimit-Policy"] == '"tenant";q=3;w=3', r.headers
    assert_error(r, 429, "RateLimited")


def test_serve_help_lists_the_settings():
    out = sluice("serve", "--help", timeout=30)
    assert out.returncode == 0, out.stderr
    for s in ("--tenant-rate", "SLUICE_TENANT_RATE", "--tenant-burst", "SLUICE_TENANT_BURST",
              "--auth-fail-rate", "SLUICE_AUTH_FAIL_RATE"):
        assert s in out.stdout, out.stdout
