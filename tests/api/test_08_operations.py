"""Operations: health, readiness, Prometheus metrics, request ids, JSON logs."""
import json
import re

import requests

from conftest import items, read_log_lines, submitted, uniq, wait_until

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|\+Inf|NaN)$')


def test_healthz_and_readyz(server):
    for p in ("/healthz", "/readyz"):
        r = requests.get(server.url + p, timeout=10)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("application/json")
        assert isinstance(r.json(), dict)


def parse_metrics(text):
    samples = {}
    types = {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples, types


def test_metrics_prometheus_text(server, api):
    j = submitted(api.submit(items(7)))
    api.wait_job(j["id"])
    r = requests.get(server.url + "/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain"), r.headers
    samples, types = parse_metrics(r.text)
    for st in ("NotStarted", "Running", "Canceling", "Succeeded", "Failed", "Canceled"):
        assert 'sluice_jobs{status="%s"}' % st in samples, st
    assert samples['sluice_jobs{status="Succeeded"}'] >= 1
    assert types.get("sluice_jobs") == "gauge"
    assert any(k.startswith("sluice_items_processed_total") for k in samples)
    assert sum(v for k, v in samples.items() if k.startswith("sluice_items_processed_total")) >= 7
    assert "sluice_queue_depth" in samples and samples["sluice_queue_depth"] >= 0
    assert types.get("sluice_http_request_duration_seconds") == "histogram"
    buckets = [(k, v) for k, v in samples.items()
               if k.startswith("sluice_http_request_duration_seconds_bucket")]
    assert buckets and any('le="+Inf"' in k for k, _ in buckets)
    vals = [v for _, v in buckets]
    assert vals == sorted(vals), "histogram buckets must be cumulative"
    inf = [v for k, v in buckets if 'le="+Inf"' in k][0]
    assert samples["sluice_http_request_duration_seconds_count"] == inf
    assert inf >= 1 and samples["sluice_http_request_duration_seconds_sum"] >= 0


def test_metrics_count_requests(server):
    def count():
        s, _ = parse_metrics(requests.get(server.url + "/metrics", timeout=10).text)
        return s["sluice_http_request_duration_seconds_count"]
    before = count()
    for _ in range(3):
        requests.get(server.url + "/healthz", timeout=10)
    # the metrics request itself may or may not be counted yet; 3 healthz must be
    assert wait_until(lambda: count() >= before + 3, timeout=10, what="request count")


def test_request_id_echoed(server, api):
    rid = "test-" + uniq("rid")
    r = api.get("/v1/jobs", headers={"X-Request-Id": rid})
    assert r.headers.get("X-Request-Id") == rid
    r = requests.get(server.url + "/healthz", headers={"X-Request-Id": rid + "-h"}, timeout=10)
    assert r.headers.get("X-Request-Id") == rid + "-h"
    # errors carry it too
    r = api.get("/v1/jobs/job_missing", headers={"X-Request-Id": rid + "-e"})
    assert r.status_code == 404 and r.headers.get("X-Request-Id") == rid + "-e"


def test_request_id_generated(server, api):
    a = api.get("/v1/jobs").headers.get("X-Request-Id")
    b = api.get("/v1/jobs").headers.get("X-Request-Id")
    c = requests.get(server.url + "/nope", timeout=10).headers.get("X-Request-Id")
    for x in (a, b, c):
        assert x and len(x) >= 8, x
    assert len({a, b, c}) == 3


def test_hostile_request_id_replaced(server):
    bad = "x" * 500
    r = requests.get(server.url + "/healthz", headers={"X-Request-Id": bad}, timeout=10)
    assert r.status_code == 200
    rid = r.headers.get("X-Request-Id")
    assert rid and rid != bad and len(rid) < 100
    r = requests.get(server.url + "/healthz", headers={"X-Request-Id": 'a"b\\c{}'}, timeout=10)
    assert r.headers.get("X-Request-Id") != 'a"b\\c{}'


def test_logs_are_json_lines_with_request_id(server, api):
    rid = "log-" + uniq("rid")
    api.get("/v1/jobs/job_for_log", headers={"X-Request-Id": rid})

    def find():
        for line in read_log_lines(server):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and obj.get("requestId") == rid:
                return obj
        return None
    entry = wait_until(find, timeout=10, what="log line with requestId")
    assert entry.get("status") == 404, entry
    assert entry.get("path") == "/v1/jobs/job_for_log", entry
    assert entry.get("method") == "GET", entry
    for line in read_log_lines(server):
        obj = json.loads(line)  # every line is one JSON object
        assert isinstance(obj, dict), line
    # request lines all name their request
    reqs = [json.loads(l) for l in read_log_lines(server)]
    reqs = [o for o in reqs if o.get("msg") == "request"]
    assert reqs and all(o.get("requestId") for o in reqs)


def test_log_never_contains_api_key(server, api):
    api.get("/v1/jobs")
    assert server.key_a not in server.read_log()
    assert server.key_b not in server.read_log()


def test_unknown_routes_404(server, api):
    for p in ("/nope", "/v1", "/v1/", "/v1/nope", "/v1/jobs/x/y/z", "/v2/jobs", "/healthz/x",
              "/v1/collections", "/v1/collections/a/b/c"):
        r = api.get(p)
        assert r.status_code == 404, (p, r.status_code, r.text)
        body = r.json()
        assert set(body) == {"error"} and body["error"]["code"] == "NotFound", (p, body)


def test_wrong_methods_405(server, api):
    for m, p in (("PUT", "/v1/jobs"), ("DELETE", "/v1/jobs"), ("PATCH", "/v1/jobs/job_x"),
                 ("PUT", "/v1/jobs/job_x"), ("POST", "/v1/jobs/job_x/items"),
                 ("DELETE", "/v1/jobs/job_x/results"), ("POST", "/healthz"),
                 ("DELETE", "/metrics"), ("POST", "/v1/collections/products"),
                 ("POST", "/v1/collections/products/a")):
        r = api.request(m, p, data=b"{}", headers={"Content-Type": "application/json"})
        assert r.status_code == 405, (m, p, r.status_code, r.text)
        body = r.json()
        assert set(body) == {"error"} and body["error"]["code"] == "MethodNotAllowed", (m, p, body)
