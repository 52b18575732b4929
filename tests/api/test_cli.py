"""The sluice CLI against the real server (SLUICE_URL / SLUICE_KEY from the environment)."""
import json
import os
import re

import pytest

from conftest import BIN, ROOT, Client, items, sluice, submitted, uniq


@pytest.fixture
def cli(server, tmp_path):
    key = server.create_key(uniq("cli"))
    env = {"SLUICE_URL": server.url, "SLUICE_KEY": key}

    def run(*args, timeout=120, extra_env=None):
        return sluice(*args, env=dict(env, **(extra_env or {})), timeout=timeout)
    run.client = Client(server, key)
    run.tmp = tmp_path
    return run


def write_ndjson(path, its):
    path.write_text("".join(json.dumps(i) + "\n" for i in its))
    return str(path)


def job_id_of(out):
    lines = [l for l in out.stdout.splitlines() if l.strip()]
    assert lines, out
    jid = lines[0].strip()
    assert re.fullmatch(r"[A-Za-z0-9_\-]+", jid), out.stdout
    return jid


def test_submit_ndjson_wait_succeeds(cli):
    f = write_ndjson(cli.tmp / "items.ndjson", items(300, prefix=uniq("cn") + "-"))
    out = cli("submit", f, "--workflow", "products.upsert", "--wait")
    assert out.returncode == 0, (out.stdout, out.stderr)
    jid = job_id_of(out)
    m = cli.client.get("/v1/jobs/" + jid).json()
    assert m["status"] == "Succeeded" and m["counts"]["succeeded"] == 300, m
    # the final summary line is on stdout
    assert "Succeeded" in out.stdout.splitlines()[-1], out.stdout
    # not a terminal: plain progress lines on stderr, no carriage-return redraws
    assert "\r" not in out.stderr
    prog = [l for l in out.stderr.splitlines() if l.startswith(jid)]
    assert prog, out.stderr
    assert any(re.search(r"\d+/300", l) for l in prog), prog


def test_submit_json_array_wait(cli):
    f = cli.tmp / "items.json"
    f.write_text(json.dumps(items(40, prefix=uniq("ca") + "-")))
    out = cli("submit", str(f), "--workflow", "noop", "--wait", "--client-reference", "cli-ref")
    assert out.returncode == 0, (out.stdout, out.stderr)
    jid = job_id_of(out)
    m = cli.client.get("/v1/jobs/" + jid).json()
    assert m["status"] == "Succeeded" and m["counts"]["total"] == 40, m
    assert m["clientReference"] == "cli-ref"


def test_submit_csv_with_ref_column(cli):
    import csv
    import io
    rows = [{"sku": "%s-%d" % (uniq("csv"), i), "title": 'Mug "%d", blue\nlarge' % i, "price": str(i)}
            for i in range(30)]
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=["title", "sku", "price"])  # Python's own CSV writer
    w.writeheader()
    w.writerows(rows)
    f = cli.tmp / "items.csv"
    f.write_text(text.getvalue())
    out = cli("submit", str(f), "--workflow", "noop", "--ref-column", "sku", "--wait",
              "--client-reference", "csv-ref")
    assert out.returncode == 0, (out.stdout, out.stderr)
    jid = job_id_of(out)
    m = cli.client.get("/v1/jobs/" + jid).json()
    assert m["status"] == "Succeeded" and m["counts"]["total"] == 30, m
    assert m["clientReference"] == "csv-ref"
    it = cli.client.get("/v1/jobs/%s/items/7" % jid).json()
    assert it["ref"] == rows[7]["sku"] and it["data"] == rows[7], it
    # a missing ref column is the server's error, shown by the CLI
    bad = cli("submit", str(f), "--workflow", "noop", "--ref-column", "nope")
    assert bad.returncode == 3 and "refColumn" in bad.stderr, (bad.stdout, bad.stderr)


def test_submit_from_sample_script(cli):
    import subprocess
    import sys
    gen = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "sample-items.py"), "200"],
                         capture_output=True, text=True, timeout=60, check=True)
    f = cli.tmp / "sample.ndjson"
    f.write_text(gen.stdout)
    out = cli("submit", str(f), "--workflow", uniq("samp").replace("-", "_") + ".upsert", "--wait")
    assert out.returncode == 0, (out.stdout, out.stderr)


def test_submit_without_wait_prints_id(cli):
    f = write_ndjson(cli.tmp / "a.ndjson", items(5))
    out = cli("submit", f, "--workflow", "noop")
    assert out.returncode == 0, out.stderr
    jid = job_id_of(out)
    assert cli.client.wait_job(jid)["status"] == "Succeeded"


def test_submit_with_failures_exits_1(cli):
    f = write_ndjson(cli.tmp / "p.ndjson", items(20, prefix=uniq("missing") + "-"))
    out = cli("submit", f, "--workflow", "products.patch", "--wait")
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    jid = job_id_of(out)
    m = cli.client.get("/v1/jobs/" + jid).json()
    assert m["status"] == "Failed" and m["counts"]["failed"] == 20, m
    assert "AllItemsFailed" in out.stdout


def test_partial_failure_exits_1(cli):
    p = uniq("pp")
    assert cli.client.put("/v1/collections/products/%s-0" % p, json={}).status_code == 201
    f = write_ndjson(cli.tmp / "pp.ndjson", items(3, prefix=p + "-"))
    out = cli("submit", f, "--workflow", "products.patch", "--wait")
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)


def test_status_items_results_cancel_jobs(cli):
    p = uniq("mix")
    assert cli.client.put("/v1/collections/products/%s-1" % p, json={"a": 1}).status_code == 201
    f = write_ndjson(cli.tmp / "m.ndjson", items(4, prefix=p + "-"))
    out = cli("submit", f, "--workflow", "products.patch", "--wait")
    assert out.returncode == 1, out.stderr
    jid = job_id_of(out)

    st = cli("status", jid)
    assert st.returncode == 0, st.stderr
    assert jid in st.stdout
    assert re.search(r"status:\s+Succeeded", st.stdout), st.stdout
    assert "PartiallySucceeded" in st.stdout

    stj = cli("status", jid, "--json")
    assert stj.returncode == 0 and json.loads(stj.stdout)["id"] == jid

    it = cli("items", jid, "--status", "Failed")
    assert it.returncode == 0, it.stderr
    lines = [json.loads(l) for l in it.stdout.splitlines() if l.strip()]
    assert sorted(x["index"] for x in lines) == [0, 2, 3], lines
    assert all(x["status"] == "Failed" for x in lines)

    allit = cli("items", jid, "--limit", "1", "--all")
    assert allit.returncode == 0
    assert [json.loads(l)["index"] for l in allit.stdout.splitlines() if l.strip()] == [0, 1, 2, 3]

    res = cli("results", jid)
    assert res.returncode == 0, res.stderr
    rl = [json.loads(l) for l in res.stdout.splitlines() if l.strip()]
    assert [x["index"] for x in rl] == [0, 1, 2, 3]
    assert [x["status"] for x in rl] == ["Failed", "Succeeded", "Failed", "Failed"]

    ca = cli("cancel", jid)
    assert ca.returncode == 0, ca.stderr
    assert ca.stdout.strip() == "Succeeded"

    jobs = cli("jobs")
    assert jobs.returncode == 0, jobs.stderr
    assert jid in jobs.stdout and "STATUS" in jobs.stdout
    jj = cli("jobs", "--json", "--status", "Succeeded")
    assert jj.returncode == 0
    assert jid in [json.loads(l)["id"] for l in jj.stdout.splitlines() if l.strip()]


def test_cancel_running_job_cli(cli):
    f = write_ndjson(cli.tmp / "big.ndjson", items(100, prefix=uniq("cc") + "-"))
    out = cli("submit", f, "--workflow", "noop")
    jid = job_id_of(out)
    ca = cli("cancel", jid)
    assert ca.returncode == 0, ca.stderr
    assert ca.stdout.strip() in ("Canceling", "Canceled", "Succeeded"), ca.stdout
    m = cli.client.wait_job(jid)
    assert m["status"] in ("Canceled", "Succeeded"), m
    w = cli("watch", jid)
    assert w.returncode == (0 if m["status"] == "Succeeded" else 1), (w.stdout, w.stderr)


def test_wrong_key_exits_3(cli):
    bad = {"SLUICE_KEY": "slk_badbadba_" + "0" * 40}
    for args in (("jobs",), ("status", "job_x"), ("results", "job_x")):
        out = cli(*args, extra_env=bad)
        assert out.returncode == 3, (args, out.returncode, out.stdout, out.stderr)
        assert "Unauthorized" in out.stderr, out.stderr
        assert out.stdout == "", out.stdout
    f = write_ndjson(cli.tmp / "w.ndjson", items(2))
    out = cli("submit", f, "--workflow", "noop", "--wait", extra_env=bad)
    assert out.returncode == 3 and "Unauthorized" in out.stderr, (out.stdout, out.stderr)


def test_missing_key_exits_3(cli):
    out = cli("jobs", extra_env={"SLUICE_KEY": ""})
    assert out.returncode == 3, (out.returncode, out.stderr)
    assert "SLUICE_KEY" in out.stderr or "Unauthorized" in out.stderr


def test_unknown_job_exits_3(cli):
    out = cli("status", "job_doesnotexist")
    assert out.returncode == 3 and "NotFound" in out.stderr, (out.stdout, out.stderr)


def test_server_error_message_for_bad_submit(cli):
    f = cli.tmp / "bad.ndjson"
    f.write_text('{"ref":"a"}\n{"ref":\n')
    out = cli("submit", str(f), "--workflow", "noop")
    assert out.returncode == 3, (out.returncode, out.stderr)
    assert "InvalidNdjson" in out.stderr


def test_connection_refused_exits_3(cli):
    from conftest import free_port
    out = cli("jobs", extra_env={"SLUICE_URL": "http://127.0.0.1:%d" % free_port()})
    assert out.returncode == 3, (out.returncode, out.stderr)
    assert out.stderr.strip()


def test_usage_errors_exit_2(cli):
    assert cli("submit").returncode == 2
    assert cli("submit", "x.ndjson").returncode == 2  # --workflow is required
    assert cli("status").returncode == 2
    assert cli("jobs", "--bogus").returncode == 2


def test_url_and_key_flags_override_env(cli, server):
    key = server.create_key(uniq("flag"))
    out = sluice("jobs", "--url", server.url, "--key", key,
                 env={"SLUICE_URL": "http://127.0.0.1:1", "SLUICE_KEY": "nope"})
    assert out.returncode == 0, out.stderr


def test_submit_big_file_wait(cli):
    # large enough for curl to use Expect: 100-continue and many body chunks
    its = [{"ref": "BIG-%06d" % i, "data": {"i": i, "pad": "p" * 60}} for i in range(25000)]
    f = write_ndjson(cli.tmp / "big.ndjson", its)
    out = cli("submit", f, "--workflow", uniq("big").replace("-", "_") + ".upsert", "--wait")
    assert out.returncode == 0, (out.stdout, out.stderr)
    m = cli.client.get("/v1/jobs/" + job_id_of(out)).json()
    assert m["counts"]["total"] == 25000 and m["counts"]["succeeded"] == 25000, m


def test_submit_from_stdin(cli, server):
    data = "".join(json.dumps(i) + "\n" for i in items(7))
    out = sluice("submit", "-", "--workflow", "noop", "--wait",
                 env={"SLUICE_URL": server.url, "SLUICE_KEY": cli.client.key}, input=data)
    assert out.returncode == 0, (out.stdout, out.stderr)
    m = cli.client.get("/v1/jobs/" + job_id_of(out)).json()
    assert m["counts"]["total"] == 7
