"""GET /openapi.json and the document itself: served as built, valid OpenAPI 3.1 by an
independent validator, every route and every error code of the source present.

What the server really answers is checked against the document all through the suite
(openapi_check.py) and reported by test_zz_openapi_drift.py."""
import json
import os
import re
import shutil
import subprocess

import pytest
import requests
from jsonschema import Draft202012Validator

import openapi_check
from conftest import ROOT, items, make_workflow, run_job

DOC = os.path.join(ROOT, "docs", "openapi.json")
NPM_DIR = os.path.join(ROOT, "tests", "openapi")
ERRORS_H = os.path.join(ROOT, "src", "util", "errors.h")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


@pytest.fixture(scope="module")
def doc():
    return openapi_check.load_doc()


# identity: the strong tag names the document's own bytes; a gzip answer carries its weak
# form (test_47_gzip_responses.py)
IDENTITY = {"Accept-Encoding": "identity"}


def test_01_served_without_key_as_built(server):
    r = requests.get(server.url + "/openapi.json", headers=IDENTITY, timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"] == "application/json"
    with open(DOC, "rb") as f:
        assert r.content == f.read(), "the binary serves another document than docs/openapi.json"
    etag = r.headers["ETag"]
    assert re.match(r'^"[0-9a-f]{32}"$', etag), etag
    assert r.json()["openapi"].startswith("3.1.")


def test_02_etag_revalidation(server):
    etag = requests.get(server.url + "/openapi.json", headers=IDENTITY, timeout=30).headers["ETag"]
    for inm in (etag, "W/" + etag, '"other", ' + etag, "*"):
        r = requests.get(server.url + "/openapi.json", headers=dict(IDENTITY, **{"If-None-Match": inm}),
                         timeout=30)
        assert r.status_code == 304, (inm, r.status_code)
        assert r.content == b"" and r.headers["ETag"] == etag
    r = requests.get(server.url + "/openapi.json", headers=dict(IDENTITY, **{"If-None-Match": '"stale"'}),
                     timeout=30)
    assert r.status_code == 200 and r.headers["ETag"] == etag


def _npm_ci():
    """Installs the validator from tests/openapi/package-lock.json when node_modules is
    missing or older than the lock file."""
    npm = shutil.which("npm")
    assert npm and shutil.which("node"), "node and npm are needed: scripts/deps.sh test installs them"
    lock = os.path.join(NPM_DIR, "package-lock.json")
    stamp = os.path.join(NPM_DIR, "node_modules", ".package-lock.json")
    if os.path.exists(stamp) and os.path.getmtime(stamp) >= os.path.getmtime(lock):
        return
    out = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NPM_DIR,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, "npm ci failed:\n" + out.stdout + out.stderr


def test_03_valid_openapi_3_1_by_independent_validator():
    # @seriousme/openapi-schema-validator checks the document against the OpenAPI
    # Initiative's own 3.1 schema (with Ajv) and resolves every $ref.
    _npm_ci()
    out = subprocess.run(["node", os.path.join(NPM_DIR, "validate.mjs"), DOC], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, "docs/openapi.json is not valid OpenAPI 3.1:\n" + out.stdout + out.stderr
    assert out.stdout.strip() == "valid: OpenAPI 3.1", out.stdout


def _schemas(node, where="#"):
    """Every Schema Object of the document (components, parameters, media types, headers)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "schema" and isinstance(v, dict):
                yield where + "/" + k, v
            elif k in ("schema", "x-item-schema"):
                yield where + "/" + k, v
            elif k == "schemas" and where == "#/components":
                for name, s in v.items():
                    yield where + "/schemas/" + name, s
            else:
                yield from _schemas(v, where + "/" + str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _schemas(v, "%s/%d" % (where, i))


def test_04_every_schema_is_valid_json_schema_2020_12(doc):
    # The OpenAPI schema above does not look inside Schema Objects; the 2020-12
    # meta-schema does (a misspelt type, a non-array required ...).
    bad = []
    n = 0
    for where, s in _schemas(doc):
        n += 1
        try:
            Draft202012Validator.check_schema(s)
        except Exception as e:  # SchemaError
            bad.append("%s: %s" % (where, str(e).split("\n")[0]))
    assert n > 50, n
    assert not bad, "\n".join(bad)


def test_05_every_route_has_its_operation_and_no_other(doc):
    routes = openapi_check.parse_routes()
    missing, auth_wrong = [], []
    for method, pattern, needs_auth in routes:
        op = doc["paths"].get(pattern, {}).get(method.lower())
        if op is None:
            missing.append("%s %s" % (method, pattern))
            continue
        documented_auth = op.get("security", doc.get("security")) != []
        if documented_auth != needs_auth:
            auth_wrong.append("%s %s: ROUTE_AUTH %s, document says %s" % (
                method, pattern, needs_auth, documented_auth))
    assert not missing, "routes in src/api/routes.c without an operation in docs/openapi.json:\n" + \
        "\n".join(missing)
    assert not auth_wrong, "\n".join(auth_wrong)
    table = {(m.lower(), p) for m, p, _ in routes}
    extra = ["%s %s" % (m.upper(), p) for p, item in doc["paths"].items() for m in item
             if m in METHODS and (m, p) not in table]
    assert not extra, "operations in the document that no route serves:\n" + "\n".join(extra)


def test_06_path_parameters_declared(doc):
    ck = openapi_check.CHECKER or openapi_check.Checker(doc)
    bad = []
    for path, item in doc["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for m, op in item.items():
            if m not in METHODS:
                continue
            params = [ck.deref(p) for p in op.get("parameters", []) + item.get("parameters", [])]
            declared = {p["name"] for p in params if p["in"] == "path"}
            if declared != names:
                bad.append("%s %s: path parameters %s, declared %s" % (m, path, names, declared))
    assert not bad, "\n".join(bad)


def test_07_error_codes_are_the_table_of_errors_h(doc):
    with open(ERRORS_H, encoding="utf-8") as f:
        text = re.sub(r"\\\n\s*", " ", f.read())
    rows = re.findall(r'X\((\w+),\s*(\d+),\s*"(\w+)",\s*"((?:[^"\\]|\\.)*)"\)', text)
    assert len(rows) > 20, rows
    documented = {c["const"]: c["description"] for c in doc["components"]["schemas"]["ErrorCode"]["oneOf"]}
    want = {code: "HTTP %s: %s" % (status, msg.replace('\\"', '"')) for _, status, code, msg in rows}
    assert documented == want, "ErrorCode in docs/openapi.json differs from src/util/errors.h:\n" + \
        json.dumps({"missing or different": {k: v for k, v in want.items() if documented.get(k) != v},
                    "not in errors.h": sorted(set(documented) - set(want))}, indent=1)


def test_08_error_responses_use_the_one_error_body(doc):
    ck = openapi_check.CHECKER or openapi_check.Checker(doc)
    bad = []
    for path, item in doc["paths"].items():
        for m, op in item.items():
            if m not in METHODS:
                continue
            for status, resp in op["responses"].items():
                if int(status) < 400:
                    continue
                resp = ck.deref(resp)
                schema = resp.get("content", {}).get("application/json", {}).get("schema", {})
                if schema.get("$ref") not in ("#/components/schemas/Error", "#/components/schemas/StepError"):
                    bad.append("%s %s %s" % (m.upper(), path, status))
    assert not bad, "error responses without the Error body:\n" + "\n".join(bad)


def test_09_event_stream_read_to_its_end_is_checked_too(api):
    # The SSE tests read their streams incrementally (stream=True), which the checker
    # cannot see. A finished job's stream ends by itself after its last event: read
    # whole, every event's data is checked against x-sse-events.
    wf = make_workflow(api, [{"name": "check", "type": "fail", "code": "Nope", "message": "no"}],
                       prefix="sse")
    job = run_job(api, items(3), wf)
    assert job["status"] == "Failed", job
    r = api.get("/v1/jobs/%s/events" % job["id"], timeout=60)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/event-stream"
    names = re.findall(r"^event: (\S+)$", r.text, re.M)
    assert names == ["items.failed", "job.failed"], r.text[:500]


def test_fuzz_route_table_matches_routes_c():
    """tests/fuzz/fuzz_request.c keeps its own copy of the route table (routes.c names
    every handler and cannot be linked there): the two must list the same routes."""
    import os
    import re
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    pat = r'\{"(GET|POST|PUT|PATCH|DELETE)", "([^"]+)"'
    table = re.findall(pat, open(os.path.join(root, "src", "api", "routes.c")).read())
    fuzz = re.findall(pat, open(os.path.join(root, "tests", "fuzz", "fuzz_request.c")).read())
    assert fuzz == table
