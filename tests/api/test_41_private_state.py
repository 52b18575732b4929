"""What the server keeps is its own: store files readable by their owner only, no
database password in any log line or CLI message, and job list cursors that tell a
tenant nothing about the other tenants' jobs."""
import os
import re
import stat
import subprocess
import tempfile

import pytest

from conftest import (BIN, STORE_KIND, Client, Server, assert_error, free_port, items, submitted,
                      uniq)


@pytest.mark.skipif(STORE_KIND != "sqlite", reason="the SQLite files of a new store")
def test_sqlite_files_and_data_dir_are_private():
    top = tempfile.mkdtemp(prefix="sluice-perm-")
    srv = Server(tmpdir=top)
    # a data directory sluice makes itself, two levels deep
    srv.store = "sqlite:" + os.path.join(top, "made", "here", "sluice.db")
    srv.key_a = srv.create_key("acme")
    srv.start()
    try:
        a = Client(srv, srv.key_a)
        submitted(a.submit(items(50), workflow="noop"))
        db = srv.store.split(":", 1)[1]
        files = [db, db + "-wal", db + "-shm"]
        assert all(os.path.exists(f) for f in files), os.listdir(os.path.dirname(db))
        for f in files:
            mode = stat.S_IMODE(os.stat(f).st_mode)
            assert mode == 0o600, (f, oct(mode))
        for d in (os.path.join(top, "made"), os.path.join(top, "made", "here")):
            mode = stat.S_IMODE(os.stat(d).st_mode)
            assert mode == 0o700, (d, oct(mode))
    finally:
        assert srv.stop() == 0
        srv.cleanup()


@pytest.mark.parametrize("url", [
    "postgres://sluice:Pa55%20w0rd-{tag}@127.0.0.1:{port}/db?connect_timeout=1",
    "postgresql://sluice@127.0.0.1:{port}/db?connect_timeout=1&password=Pa55w0rd-{tag}",
    # libpq takes the userinfo up to the first '@' before a '/', '?' and '#' included
    "postgres://sluice:Pa55?w#0rd-{tag}@127.0.0.1:{port}/db?connect_timeout=1",
    # and decodes parameter names
    "postgresql://sluice@127.0.0.1:{port}/db?connect_timeout=1&pass%77ord=Pa55w0rd-{tag}",
])
def test_a_postgres_password_is_never_logged(url):
    # nothing listens on the port: the server and the CLI fail, and say why without it
    tag = uniq("pw")
    url = url.format(tag=tag, port=free_port())
    out = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:%d" % free_port(), "--store", url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    cli = subprocess.run([BIN, "keys", "list", "--store", url], capture_output=True, text=True,
                         timeout=60)
    assert cli.returncode != 0
    for text in (out.stdout + out.stderr, cli.stdout + cli.stderr):
        assert "cannot" in text, text
        assert tag not in text, text
        assert "Pa55" not in text, text
        assert "***" in text, text  # the URL is shown, with the password masked


def test_job_cursors_are_opaque_and_the_tenants_own(fresh_server):
    srv = fresh_server()
    srv.key_b = srv.create_key("globex")
    srv.start()
    a, b = Client(srv, srv.key_a), Client(srv, srv.key_b)
    mine = []
    for i in range(4):
        mine.append(submitted(a.submit(items(1, prefix=uniq("c")), workflow="noop"))["id"])
        for _ in range(3):  # other tenants' jobs between A's
            submitted(b.submit(items(1, prefix=uniq("o")), workflow="noop"))
    # page through A's jobs one at a time
    seen, cursors, r = [], [], a.get("/v1/jobs", params={"limit": 1})
    while True:
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [j["id"] for j in page["value"]]
        if not page.get("nextLink"):
            break
        cur = re.search(r"[?&]cursor=([^&]+)", page["nextLink"]).group(1)
        cursors.append(cur)
        r = a.get(page["nextLink"].split(srv.url, 1)[1])
    assert seen == list(reversed(mine))
    assert len(cursors) == 3 and len(set(cursors)) == 3
    for cur in cursors:
        # one sealed block, not a number that grows with the server's job count
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cur), cur
        # another tenant cannot use it, and an edited one is refused
        assert_error(b.get("/v1/jobs", params={"cursor": cur}), 400, "InvalidParameter", "cursor")
        edited = cur[:5] + ("A" if cur[5] != "A" else "B") + cur[6:]
        assert_error(a.get("/v1/jobs", params={"cursor": edited}), 400, "InvalidParameter",
                     "cursor")
    for bad in ["12", "-1", "", "x" * 22, cursors[0] + "A"]:
        assert_error(a.get("/v1/jobs", params={"cursor": bad}), 400, "InvalidParameter", "cursor")
    # a cursor holds across a restart (the key is in the store)
    srv.stop()
    srv.start()
    r = a.get("/v1/jobs", params={"limit": 1, "cursor": cursors[0]})
    assert r.status_code == 200, r.text
    assert [j["id"] for j in r.json()["value"]] == [mine[2]]
