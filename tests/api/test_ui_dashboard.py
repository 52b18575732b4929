"""The web dashboard (/ui/) driven in headless Chromium: tests/ui/dashboard.test.mjs.

The Node script (playwright-core from tests/ui/node_modules, pointed at the Debian
chromium) signs in, watches a 20,000-item job advance to done, opens failed items,
downloads results, cancels a job and checks a wrong key and another tenant. This file
starts the server for it and reports its output. `make test` installs chromium and
node (scripts/deps.sh test) and runs `npm ci` in tests/ui.

The screenshot goes to build/ui/dashboard.png; set UPDATE_SCREENSHOT=1 to also
replace docs/img/dashboard.png (the one the README shows), so a normal test run
leaves the tree unchanged.
"""
import os
import shutil
import subprocess

from conftest import ROOT

UI_DIR = os.path.join(ROOT, "tests", "ui")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _ensure_tools():
    missing = [t for t in ("node", "npm") if not shutil.which(t)]
    assert not missing and os.access(CHROMIUM, os.X_OK), (
        "the dashboard test needs node, npm and %s (missing: %s); `make test-deps` installs them"
        % (CHROMIUM, ", ".join(missing) or CHROMIUM))
    if not os.path.isdir(os.path.join(UI_DIR, "node_modules", "playwright-core")):
        out = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=UI_DIR,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, "npm ci in tests/ui failed:\n" + out.stdout + out.stderr


def test_dashboard_in_headless_chromium(fresh_server):
    _ensure_tools()
    srv = fresh_server(args=["--outbound-allow", "127.0.0.1/32"])
    other = srv.create_key("other-tenant")
    srv.start()
    shot = os.path.join(ROOT, "build", "ui", "dashboard.png")
    env = dict(os.environ, SLUICE_URL=srv.url, SLUICE_KEY=srv.key_a, SLUICE_KEY_OTHER=other,
               SCREENSHOT=shot, CHROMIUM=CHROMIUM)
    out = subprocess.run(["node", os.path.join(UI_DIR, "dashboard.test.mjs")], cwd=UI_DIR,
                         env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, "dashboard test failed:\n%s\n%s\nserver log tail:\n%s" % (
        out.stdout[-6000:], out.stderr[-3000:], srv.read_log()[-3000:])
    assert os.path.getsize(shot) > 10000
    if os.environ.get("UPDATE_SCREENSHOT"):
        dest = os.path.join(ROOT, "docs", "img", "dashboard.png")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(shot, dest)
