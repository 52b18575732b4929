"""Checks HTTP responses of the real server against docs/openapi.json.

conftest.py installs a hook on requests.Session.send: every response the black-box
suite gets from a sluice server is matched to its route (parsed from src/api/routes.c,
matched the way src/http/server.c matches) and checked at once against the document:
the status must be documented for that operation, the Content-Type must be one of the
documented media types, required headers must be there and documented headers must fit
their schemas, and the body must validate against the response schema (JSON Schema
2020-12, Debian's python3-jsonschema): a JSON body as a whole, an NDJSON body line by
line (the media type's x-item-schema), a Server-Sent Events body event by event (its
x-sse-events). Problems are collected, not raised, so the suite runs as usual;
test_zz_openapi_drift.py, which runs last, fails listing them all.

Bodies of streamed responses (stream=True, as the SSE tests read them) are not read, so
only their status, Content-Type and headers are checked.
"""
import json
import os
import re
import threading
from collections import OrderedDict
from urllib.parse import urlsplit

import jsonschema
from jsonschema import Draft202012Validator

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOC_PATH = os.path.join(ROOT, "docs", "openapi.json")
ROUTES_C = os.path.join(ROOT, "src", "api", "routes.c")

NDJSON_LINES_CHECKED = 2000  # per response: enough for shape, bounded for 20,000-item jobs


def load_doc():
    with open(DOC_PATH, encoding="utf-8") as f:
        return json.load(f)


def parse_routes(path=ROUTES_C):
    """[(method, pattern, needs_auth)] in table order, from src/api/routes.c."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    rows = re.findall(r'\{\s*"([A-Z]+)",\s*"([^"]+)",\s*(\w+),\s*([^,]+),', text)
    assert rows, "no routes found in " + path
    return [(m, p, "ROUTE_AUTH" in flags) for m, p, _, flags in rows]


def pattern_regex(pattern):
    """The server's matcher (src/http/server.c match()): {name} takes one segment, up to
    '/' or up to the literal character that follows it in the pattern."""
    out, i = "^", 0
    while i < len(pattern):
        if pattern[i] == "{":
            close = pattern.index("}", i)
            stop = pattern[close + 1] if close + 1 < len(pattern) else ""
            out += "([^/%s]+)" % re.escape(stop) if stop and stop != "/" else "([^/]+)"
            i = close + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + "$")


def _date_time(v):
    return not isinstance(v, str) or bool(
        re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", v))


def _uri(v):
    if not isinstance(v, str):
        return True
    u = urlsplit(v)
    return bool(u.scheme and (u.netloc or u.path))


FORMATS = jsonschema.FormatChecker(formats=())
FORMATS.checks("date-time")(_date_time)
FORMATS.checks("uri")(_uri)


class Checker:
    def __init__(self, doc=None, routes=None):
        self.doc = doc or load_doc()
        self.routes = [(m, p, a, pattern_regex(p)) for m, p, a in (routes or parse_routes())]
        self.resolver = jsonschema.RefResolver.from_schema(self.doc)
        self._validators = {}
        self.lock = threading.Lock()
        self.problems = OrderedDict()  # key -> [count, first example]
        self.seen = {}                 # (method, pattern, status) -> count
        self.responses = 0

    # ---- document lookups -----------------------------------------------------------
    def deref(self, obj):
        while isinstance(obj, dict) and "$ref" in obj and len(obj) == 1:
            ref = obj["$ref"]
            assert ref.startswith("#/"), ref
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            obj = node
        return obj

    def validator(self, schema):
        key = json.dumps(schema, sort_keys=True)
        v = self._validators.get(key)
        if v is None:
            v = Draft202012Validator(schema, resolver=self.resolver, format_checker=FORMATS)
            self._validators[key] = v
        return v

    def schema_errors(self, schema, value, limit=3):
        errs = sorted(self.validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
        out = []
        for e in errs[:limit]:
            # array positions as "*": the same mismatch in every element is one problem
            where = "/".join("*" if isinstance(p, int) else str(p) for p in e.absolute_path) or "(root)"
            out.append("%s: %s" % (where, _short(e.message, 300)))
        return out

    def match_route(self, method, path):
        """(pattern, needs_auth) of the route the server picks; (None, path_matched)."""
        path_matched = False
        for m, p, auth, rx in self.routes:
            if rx.match(path):
                path_matched = True
                if m == method:
                    return p, auth
        return None, path_matched

    # ---- checking one response ------------------------------------------------------------
    def note(self, key, example):
        with self.lock:
            if key in self.problems:
                self.problems[key][0] += 1
            else:
                self.problems[key] = [1, example]

    def check(self, method, url, status, headers, body, test=""):
        """Checks one response; body is bytes, or None when it was not read."""
        path = urlsplit(url).path
        pattern, extra = self.match_route(method, path)
        with self.lock:
            self.responses += 1
            self.seen[(method, pattern or "(no route)", status)] = \
                self.seen.get((method, pattern or "(no route)", status), 0) + 1
        ex = "%s %s -> %d (%s)" % (method, _short(url, 160), status, test or "?")
        if pattern is None:
            # No route: the server itself answers 404 (no such path) or 405 (another
            # method), or 400/413 before routing; always the one error body.
            want = 405 if extra else 404
            if status not in (want, 400, 413):
                self.note(("(no route)", method, path, status, "unexpected status"), ex)
            self._check_json(("(no route)", method, status), {"$ref": "#/components/schemas/Error"},
                             headers, body, ex)
            return
        op = self.doc.get("paths", {}).get(pattern, {}).get(method.lower())
        if op is None:
            self.note((method, pattern, None, "route in src/api/routes.c has no operation in the document"), ex)
            return
        resp = op.get("responses", {}).get(str(status))
        if resp is None:
            resp = op.get("responses", {}).get("%dXX" % (status // 100))
        if resp is None:
            self.note((method, pattern, status, "status not documented for this operation"),
                      ex + " body: " + _short(_text(body), 300))
            return
        resp = self.deref(resp)
        key = (method, pattern, status)
        # headers: required ones present, documented ones well-formed
        for name, h in (resp.get("headers") or {}).items():
            h = self.deref(h)
            value = headers.get(name)
            if value is None:
                if h.get("required"):
                    self.note(key + ("required header %s missing" % name,), ex)
                continue
            sch = h.get("schema") or {}
            v = value
            if sch.get("type") == "integer":
                try:
                    v = int(value)
                except ValueError:
                    pass
            for e in self.schema_errors(sch, v):
                self.note(key + ("header %s: %s" % (name, e),), ex + " %s: %s" % (name, value))
        content = resp.get("content") or {}
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not content:
            if body:
                self.note(key + ("a body where the document has none",), ex)
            return
        media = content.get(ctype)
        if media is None:
            self.note(key + ("Content-Type %r not documented (%s)" % (ctype, ", ".join(content)),), ex)
            return
        if body is None:
            return
        if "x-sse-events" in media:  # Server-Sent Events read to their end
            self._check_sse(key, media["x-sse-events"], _text(body), ex)
            return
        if "x-item-schema" in media:  # NDJSON: one value per line
            text = _text(body)
            lines = [l for l in text.split("\n") if l]
            if text and not text.endswith("\n"):
                self.note(key + ("NDJSON body does not end with a newline",), ex)
            for n, line in enumerate(lines[:NDJSON_LINES_CHECKED]):
                try:
                    value = json.loads(line)
                except ValueError:
                    self.note(key + ("NDJSON line is not JSON",), ex + " line %d" % n)
                    continue
                for e in self.schema_errors(media["x-item-schema"], value):
                    self.note(key + (e,), ex + " line %d: %s" % (n, _short(line, 300)))
            return
        if ctype == "application/json" or ctype.endswith("+json"):
            self._check_json(key, media.get("schema", {}), headers, body, ex)

    def _check_sse(self, key, events, text, ex):
        for block in text.split("\n\n"):
            if not block.strip():
                continue
            fields = {}
            for line in block.split("\n"):
                name, _, value = line.partition(": ")
                fields[name] = value
            name = fields.get("event", "message")
            if name not in events:
                self.note(key + ("event %r not documented" % name,), ex)
                continue
            if not re.match(r"^-?\d+$", fields.get("id", "")):
                self.note(key + ("event %s without a numeric id" % name,), ex)
            try:
                value = json.loads(fields.get("data", ""))
            except ValueError:
                self.note(key + ("event %s: data is not JSON" % name,), ex)
                continue
            for e in self.schema_errors(events[name], value):
                self.note(key + ("event %s: %s" % (name, e),), ex + " data: " + _short(fields["data"], 300))

    def _check_json(self, key, schema, headers, body, ex):
        if body is None:
            return
        try:
            value = json.loads(body)
        except ValueError:
            self.note(key + ("body is not JSON",), ex + " body: " + _short(_text(body), 200))
            return
        for e in self.schema_errors(schema, value):
            self.note(key + (e,), ex + " body: " + _short(_text(body), 400))

    # ---- the report ------------------------------------------------------------------------
    def coverage(self):
        """Lines "METHOD PATH STATUS  seen N" for every documented response, N = 0 when
        the suite never saw it, then the responses seen that the document lacks."""
        out = []
        for path, item in self.doc.get("paths", {}).items():
            for m, op in item.items():
                if not isinstance(op, dict) or "responses" not in op:
                    continue
                for status in op["responses"]:
                    n = self.seen.get((m.upper(), path, int(status)), 0)
                    out.append("%-7s %-40s %s  seen %d" % (m.upper(), path, status, n))
        return out

    def report(self):
        lines = []
        for key, (count, example) in self.problems.items():
            what = " ".join(str(k) for k in key if k is not None)
            lines.append("%s  [%d response%s; first: %s]" % (what, count, "" if count == 1 else "s", example))
        return lines


def _text(body):
    if body is None:
        return ""
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)


def _short(s, n):
    s = str(s)
    return s if len(s) <= n else s[:n] + "..."


# ---- recording from requests --------------------------------------------------------------

CHECKER = None
PORTS = set()  # ports of the sluice servers the suite started (conftest's Server.start)


def install():
    """Wraps requests.Session.send once: responses from a port in PORTS are checked."""
    global CHECKER
    import requests

    if CHECKER is not None:
        return CHECKER
    CHECKER = Checker()
    orig = requests.Session.send

    def send(self, request, **kw):
        r = orig(self, request, **kw)
        try:
            u = urlsplit(request.url)
            if u.hostname in ("127.0.0.1", "localhost") and u.port in PORTS:
                streamed = kw.get("stream", False)
                body = None if streamed else r.content
                CHECKER.check(request.method, request.url, r.status_code, r.headers, body,
                              os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0])
        except Exception as e:  # a checker bug must not break the suite's own test
            CHECKER.note(("checker error", repr(e)), request.url)
        return r

    requests.Session.send = send
    return CHECKER
