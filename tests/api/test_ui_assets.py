"""The dashboard's static files under /ui/ (src/api/ui.c): served from the binary with
no key, the right Content-Type, ETag and 304, no-cache, a strict CSP, 404 for names
that are not files of ui/. The browser test is test_ui_dashboard.py."""
import os
import re

import requests

from conftest import ROOT, raw_http

UI = os.path.join(ROOT, "ui")
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}


def ui_files():
    return sorted(f for f in os.listdir(UI) if os.path.isfile(os.path.join(UI, f)))


def get(server, path, **kw):
    """GET without gzip: the tags checked here are the files' own (strong) ones; a gzip
    answer carries their weak form (test_47_gzip_responses.py)."""
    kw["headers"] = dict({"Accept-Encoding": "identity"}, **kw.get("headers", {}))
    kw.setdefault("timeout", 30)
    kw.setdefault("allow_redirects", False)
    return requests.get(server.url + path, **kw)


def test_index_needs_no_key_and_is_the_file(server):
    r = get(server, "/ui/")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    with open(os.path.join(UI, "index.html"), "rb") as f:
        assert r.content == f.read()


def test_every_file_is_served_byte_for_byte_with_its_type(server):
    for name in ui_files():
        r = get(server, "/ui/" + name)
        assert r.status_code == 200, (name, r.text)
        with open(os.path.join(UI, name), "rb") as f:
            assert r.content == f.read(), name
        assert r.headers["Content-Type"] == TYPES[os.path.splitext(name)[1]], name


def test_headers_cache_and_security(server):
    r = get(server, "/ui/app.js")
    h = r.headers
    assert h["Cache-Control"] == "no-cache"
    assert re.fullmatch(r'"[0-9a-f]{20}"', h["ETag"]), h["ETag"]
    csp = h["Content-Security-Policy"]
    for d in ("default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
              "frame-ancestors 'none'", "base-uri 'none'"):
        assert d in csp, csp
    assert "unsafe" not in csp and "*" not in csp, csp
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "no-referrer"


def test_etag_and_304(server):
    r = get(server, "/ui/app.css")
    etag = r.headers["ETag"]
    # same file, same tag; another file, another tag
    assert get(server, "/ui/app.css").headers["ETag"] == etag
    assert get(server, "/ui/app.js").headers["ETag"] != etag
    for inm in (etag, "W/" + etag, '"nope", ' + etag, "*"):
        r2 = get(server, "/ui/app.css", headers={"If-None-Match": inm})
        assert r2.status_code == 304, (inm, r2.status_code)
        assert r2.content == b""
        assert r2.headers["ETag"] == etag
        assert r2.headers["Cache-Control"] == "no-cache"
    r3 = get(server, "/ui/app.css", headers={"If-None-Match": '"other"'})
    assert r3.status_code == 200 and r3.content


def test_unknown_names_are_404_in_the_error_shape(server):
    for path in ("/ui/nope.js", "/ui/index.htm", "/ui/.gitignore", "/ui/..%2FMakefile",
                 "/ui/%2e%2e", "/ui/app.js%00", "/ui/app.js/x"):
        r = get(server, path)
        assert r.status_code in (400, 404), (path, r.status_code)
        err = r.json()["error"]
        assert err["code"] in ("NotFound", "InvalidParameter") and err["message"], (path, err)
    # a raw request, so nothing normalises the dots first
    st, _, body = raw_http(server, b"GET /ui/../Makefile HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert st == 404 and b"SANITIZER" not in body


def test_ui_without_slash_redirects(server):
    r = get(server, "/ui")
    assert r.status_code == 301 and r.headers["Location"] == "/ui/"


def test_only_get(server):
    r = requests.post(server.url + "/ui/app.js", timeout=30)
    assert r.status_code == 405


def test_the_html_has_no_inline_code_the_csp_would_block():
    for name in ui_files():
        if not name.endswith(".html"):
            continue
        with open(os.path.join(UI, name), encoding="utf-8") as f:
            html = f.read()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), name
        assert not re.search(r"<style\b", html), name
        assert not re.search(r"\sstyle=", html), name
        assert not re.search(r"\son[a-z]+=", html), name
        assert "http://" not in html and "https://" not in html, "no CDN: " + name


def test_the_scripts_never_write_html():
    # data from the API reaches the page as text only (dom.js h()/fill())
    for name in ui_files():
        if name.endswith(".js"):
            with open(os.path.join(UI, name), encoding="utf-8") as f:
                src = f.read()
            for bad in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
                assert bad not in src, (name, bad)
