"""CSV submits (Content-Type: text/csv) on POST /v1/jobs: a header row, then one item per
record whose data maps the column names to the values (strings), ?workflow=W&refColumn=C
in the query. The bodies are written by Python's own csv module (the writer partners'
scripts use), in its Excel dialect (CRLF, minimal quoting) and others, so what sluice
reads is what a CSV library writes. Errors name the line and column in `target`; any
error rejects the whole submit and stores nothing (each test's brand-new tenant has an
empty job list to check that). Last, the map step's convert op turns the strings into
numbers and booleans, end to end through a workflow."""
import csv
import gzip
import io

import pytest

from conftest import (Client, assert_error, item_detail, job_ids, list_all, make_workflow,
                      step_counts, submitted)

CSV = {"Content-Type": "text/csv"}


def write_csv(rows, encoding="utf-8", **fmt):
    """rows (header first) as Python's csv module writes them (Excel dialect by default)."""
    out = io.StringIO(newline="")
    csv.writer(out, **fmt).writerows(rows)
    return out.getvalue().encode(encoding)


def post(c, body, ref_column="sku", workflow="noop", ct=CSV, **params):
    q = dict(params)
    if workflow is not None:
        q["workflow"] = workflow
    if ref_column is not None:
        q["refColumn"] = ref_column
    return c.post("/v1/jobs", data=body, headers=dict(ct), params=q)


def all_items(c, job_id):
    return list_all(c, "/v1/jobs/%s/items" % job_id, params={"limit": 1000})[0]


def assert_rows(c, job, rows, ref_column="sku"):
    """The job holds one item per data row, in order, with data = the row by column name."""
    header, data = rows[0], rows[1:]
    assert job["counts"]["total"] == len(data), job
    got = all_items(c, job["id"]) if len(data) <= 5000 else None
    if got is not None:
        assert [i["ref"] for i in got] == [r[header.index(ref_column)] for r in data]
    for k in sorted({0, len(data) // 2, len(data) - 1}):
        it = item_detail(c, job["id"], k)
        assert it["ref"] == data[k][header.index(ref_column)], it
        assert it["data"] == dict(zip(header, data[k])), it
        assert list(it["data"]) == header  # header order kept


def refused(c, r, status, code, target):
    err = assert_error(r, status, code, target=target)
    assert job_ids(c) == [], "a refused CSV submit stored a job"
    return err


# ---- accepted bodies ---------------------------------------------------------------------------

def test_csv_basic_excel_dialect(tenant):
    rows = [["sku", "title", "price"], ["A-1", "Shirt", "12.50"], ["B-2", "Socks", "3"]]
    body = write_csv(rows)
    assert body.endswith(b"\r\n")  # Excel dialect: CRLF
    j = submitted(post(tenant, body, clientReference="feed-1"))
    assert j["workflow"] == "noop" and j["clientReference"] == "feed-1", j
    assert_rows(tenant, j, rows)
    assert tenant.wait_job(j["id"])["status"] == "Succeeded"


def test_csv_quoting_embedded_newlines_and_quotes(tenant):
    rows = [["sku", "text", "note"],
            ["q1", 'say "hi", twice', ""],
            ["q2", "line one\nline two\r\nline three", "  spaces kept  "],
            ["q3", "caf\u00e9 \u2603 \U0001f600", '""'],
            ["q4", ",", "\t"]]
    for fmt in ({}, {"quoting": csv.QUOTE_ALL}, {"lineterminator": "\n"},
                {"quoting": csv.QUOTE_NONNUMERIC, "lineterminator": "\r"}):
        j = submitted(post(tenant, write_csv(rows, **fmt)))
        assert_rows(tenant, j, rows)


def test_csv_charset_bom_and_no_final_newline(tenant):
    rows = [["sku", "name"], ["b1", "\u00e9t\u00e9"], ["b2", "x"]]
    body = write_csv(rows, encoding="utf-8-sig")  # Python's codec writes the BOM Excel writes
    assert body.startswith(b"\xef\xbb\xbf")
    j = submitted(post(tenant, body, ct={"Content-Type": "text/csv; charset=UTF-8"}))
    assert_rows(tenant, j, rows)
    body = write_csv(rows, lineterminator="\n").rstrip(b"\n") + b"\n\n\n"  # blank lines skipped
    assert_rows(tenant, submitted(post(tenant, body, ct={
        "Content-Type": 'text/csv;charset="utf-8"; header=present'})), rows)
    assert_rows(tenant, submitted(post(tenant, write_csv(rows).rstrip(b"\r\n"))), rows)


def test_csv_20000_rows_streamed(tenant):
    rows = [["sku", "qty", "desc"]] + [["S%05d" % i, str(i % 97), 'row "%d",\nsecond line' % i]
                                       for i in range(20000)]
    body = write_csv(rows)

    def gen():  # chunks that split records, quotes and CRLF pairs anywhere
        for i in range(0, len(body), 4093):
            yield body[i:i + 4093]
    r = post(tenant, gen())
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    j = submitted(r)
    assert_rows(tenant, j, rows)
    vals, _ = list_all(tenant, "/v1/jobs/%s/items" % j["id"], params={"limit": 1000})
    assert [v["ref"] for v in vals] == [r[0] for r in rows[1:]]
    assert tenant.wait_job(j["id"])["status"] == "Succeeded"


def test_csv_gzip_body(tenant):
    rows = [["sku", "v"]] + [["g%d" % i, "value %d" % i] for i in range(500)]
    r = tenant.post("/v1/jobs", data=gzip.compress(write_csv(rows)),
                    params={"workflow": "noop", "refColumn": "sku"},
                    headers={"Content-Type": "text/csv", "Content-Encoding": "gzip"})
    assert_rows(tenant, submitted(r), rows)


def test_csv_duplicate_refs_and_idempotency(tenant):
    rows = [["sku", "n"], ["same", "1"], ["same", "2"]]  # like NDJSON: kept, in input order
    j = submitted(post(tenant, write_csv(rows)))
    assert_rows(tenant, j, rows)
    # an Idempotency-Key covers the body and the query, refColumn included
    body = write_csv([["sku", "n"], ["i1", "n1"]])
    h = {"Content-Type": "text/csv", "Idempotency-Key": "csv-idem-1"}
    q = {"workflow": "noop", "refColumn": "sku"}
    first = submitted(tenant.post("/v1/jobs", data=body, headers=h, params=q))
    again = tenant.post("/v1/jobs", data=body, headers=h, params=q)
    assert again.status_code == 202 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == first["id"]
    r = tenant.post("/v1/jobs", data=body, headers=h, params=dict(q, refColumn="n"))
    assert_error(r, 422, "IdempotencyKeyReused", target="Idempotency-Key")


def test_csv_validate_only(tenant):
    wf = make_workflow(tenant, [{"name": "check", "type": "validate", "schema": {
        "type": "object", "properties": {"qty": {"type": "string", "pattern": "^[0-9]+$"}}}}])
    body = write_csv([["sku", "qty"], ["v1", "3"], ["v2", "three"]])
    r = post(tenant, body, workflow=wf, validateOnly="true")
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["counts"] == {"total": 2, "valid": 1, "invalid": 1}, rep
    assert [i["ref"] for i in rep["invalidItems"]] == ["v2"], rep
    assert job_ids(tenant) == []


# ---- refused bodies: the line and column in the target, nothing stored ------------------------

def test_csv_query_and_media_type_errors(tenant):
    body = write_csv([["sku"], ["x"]])
    err = refused(tenant, post(tenant, body, workflow=None), 422, "InvalidField", "workflow")
    assert "CSV" in err["message"]
    err = refused(tenant, post(tenant, body, ref_column=None), 422, "InvalidField", "refColumn")
    assert "refColumn" in err["message"]
    refused(tenant, post(tenant, body, ref_column=""), 422, "InvalidField", "refColumn")
    err = refused(tenant, post(tenant, body, ref_column="SKU"), 422, "InvalidField", "refColumn")
    assert '"SKU"' in err["message"], err
    refused(tenant, post(tenant, body, workflow="nope"), 422, "UnknownWorkflow", "workflow")
    for ct in ("text/csv; charset=latin1", "text/csv; charset=\"windows-1252\"",
               "text/csv; header=absent"):
        err = refused(tenant, post(tenant, body, ct={"Content-Type": ct}), 415,
                      "UnsupportedMediaType", "Content-Type")
    assert "header" in err["message"]
    err = refused(tenant, post(tenant, body, ct={"Content-Type": "text/tab-separated-values"}),
                  415, "UnsupportedMediaType", "Content-Type")
    assert "text/csv" in err["message"], err


def test_csv_empty_body_and_header_only_are_empty_jobs(tenant):
    nd = tenant.submit_ndjson(b"")
    want = assert_error(nd, 422, "EmptyJob", target="items")
    for body in (b"", b"sku,price\r\n", b"\xef\xbb\xbf", b"\r\n\r\n"):
        err = refused(tenant, post(tenant, body), 422, "EmptyJob", "items")
        assert err == want, (err, want)


def test_csv_header_errors(tenant):
    err = refused(tenant, post(tenant, b"sku,,price\r\n1,2,3\r\n"), 400, "InvalidCsv",
                  "line 1, column 2")
    assert "empty" in err["message"], err
    err = refused(tenant, post(tenant, b"\r\nsku,price,price\r\n1,2,3\r\n"), 400, "InvalidCsv",
                  "line 2, column 3")
    assert "price" in err["message"] and "unique" in err["message"], err
    refused(tenant, post(tenant, b"sku,pr\xffice\r\n1,2\r\n"), 400, "InvalidCsv",
            "line 1, column 2")


def test_csv_record_errors_name_line_and_column(tenant):
    good = [["sku", "name", "price"], ["a", "multi\nline\nname", "1"], ["b", "x", "2"]]
    head = write_csv(good, lineterminator="\n")  # records on lines 2-4 and 5
    err = refused(tenant, post(tenant, head + b"c,y\n"), 400, "InvalidCsv", "line 6")
    assert "2 fields" in err["message"] and "line 6" in err["message"], err
    err = refused(tenant, post(tenant, head + b"c,y,3,extra\n"), 400, "InvalidCsv", "line 6")
    assert "more fields" in err["message"], err
    err = refused(tenant, post(tenant, head + b",y,3\n"), 422, "InvalidItem",
                  'line 6, column "sku"')
    assert "empty" in err["message"], err
    refused(tenant, post(tenant, head + b"%s,y,3\n" % (b"r" * 257)), 422, "InvalidItem",
            'line 6, column "sku"')
    err = refused(tenant, post(tenant, head + b"c,caf\xe9,3\n"), 400, "InvalidCsv",
                  'line 6, column "name"')
    assert "UTF-8" in err["message"], err
    refused(tenant, post(tenant, head + b'c,"a\x00b",3\n'), 400, "InvalidCsv",
            'line 6, column "name"')
    # malformed quoting: the line, and the column and byte in the message
    err = refused(tenant, post(tenant, head + b'c,y"z,3\n'), 400, "InvalidCsv", "line 6")
    assert "column 4 (byte %d)" % (len(head) + 3) in err["message"], err
    refused(tenant, post(tenant, head + b'c,"y" ,3\n'), 400, "InvalidCsv", "line 6")
    err = refused(tenant, post(tenant, head + b'c,"never closed,3\n'), 400, "InvalidCsv",
                  "line 6")
    assert "still open" in err["message"], err


def test_csv_size_limits(fresh_server):
    srv = fresh_server(["--max-item-bytes", "200", "--max-items", "3"])
    srv.start()
    c = Client(srv, srv.key_a)
    ok = write_csv([["sku", "v"]] + [["s%d" % i, "x" * 50] for i in range(3)])
    submitted(post(c, ok))
    before = job_ids(c)
    r = post(c, write_csv([["sku", "v"]] + [["s%d" % i, "x"] for i in range(4)]))
    assert_error(r, 413, "TooManyItems", target="line 5")
    r = post(c, write_csv([["sku", "v"], ["s", "x"], ["t", "y" * 300]]))
    assert_error(r, 413, "ItemTooLarge", target="line 3")
    r = post(c, write_csv([["sku", "v"], ["s", "x"], ["t", "\n".join(["y" * 60] * 100)]]))
    assert_error(r, 413, "ItemTooLarge", target="line 3")
    assert job_ids(c) == before


# ---- map conversions end to end ----------------------------------------------------------------

SCHEMA = {"type": "object", "required": ["sku", "price", "qty", "active"],
          "properties": {"sku": {"type": "string"}, "price": {"type": "number"},
                         "qty": {"type": "integer"}, "active": {"type": "boolean"},
                         "discount": {"type": ["number", "null"]}}}


def convert_workflow(c, collection="csvconv"):
    """map converts the CSV strings, validate checks the types, upsert stores the result."""
    return make_workflow(c, [
        {"name": "types", "type": "map", "ops": [
            {"op": "convert", "path": "price", "to": "number"},
            {"op": "convert", "path": "qty", "to": "integer"},
            {"op": "convert", "path": "active", "to": "boolean"},
            {"op": "convert", "path": "discount", "to": "number"}]},
        {"name": "check", "type": "validate", "schema": SCHEMA},
        {"name": "save", "type": "upsert", "collection": collection}], prefix="csvconv")


def test_csv_map_convert_then_validate(tenant):
    wf = convert_workflow(tenant)
    rows = [["sku", "price", "qty", "active", "discount"],
            ["c1", "12.50", "3", "true", ""],
            ["c2", "-0.5e1", "-7", "FALSE", "1.5"],
            ["c3", " 4 ", "0", "1", "0"]]
    j = tenant.wait_job(submitted(post(tenant, write_csv(rows), workflow=wf))["id"])
    assert j["status"] == "Succeeded" and j["outcome"] == "AllSucceeded", j
    assert step_counts(j) == {"types": (3, 0, 0), "check": (3, 0, 0), "save": (3, 0, 0)}, j
    want = [{"sku": "c1", "price": 12.5, "qty": 3, "active": True, "discount": None},
            {"sku": "c2", "price": -5.0, "qty": -7, "active": False, "discount": 1.5},
            {"sku": "c3", "price": 4, "qty": 0, "active": True, "discount": 0}]
    for k, w in enumerate(want):
        assert item_detail(tenant, j["id"], k)["data"] == dict(zip(rows[0], rows[k + 1]))
        r = tenant.get("/v1/collections/csvconv/" + w["sku"])
        assert r.status_code == 200, r.text
        got = r.json()["data"]
        assert got == w, got
        assert type(got["qty"]) is int and type(got["active"]) is bool, got


def test_csv_map_convert_failures_name_field_and_value(tenant):
    wf = convert_workflow(tenant)
    rows = [["sku", "price", "qty", "active", "discount"],
            ["ok", "1", "1", "0", ""],
            ["comma", "12,5", "1", "true", ""],
            ["float-qty", "1", "2.5", "true", ""],
            ["yes", "1", "1", "yes", ""]]
    j = tenant.wait_job(submitted(post(tenant, write_csv(rows), workflow=wf))["id"])
    assert j["outcome"] == "PartiallySucceeded" and j["counts"]["failed"] == 3, j
    msgs = {}
    for k in (1, 2, 3):
        it = item_detail(tenant, j["id"], k)
        assert it["status"] == "Failed" and it["failedStep"] == "types", it
        assert it["error"]["code"] == "MapFailed", it
        assert it["data"] == dict(zip(rows[0], rows[k + 1])), it  # the data it came with
        msgs[it["ref"]] = it["error"]["message"]
    assert 'price: "12,5" is not a number' in msgs["comma"], msgs
    assert 'qty: "2.5" is not an integer' in msgs["float-qty"], msgs
    assert 'active: "yes" is not a boolean' in msgs["yes"], msgs


@pytest.mark.parametrize("op,err", [
    ({"op": "convert", "path": "p"}, "to is required"),
    ({"op": "convert", "path": "p", "to": "float"}, "to must be"),
])
def test_map_convert_definition_errors(tenant, op, err):
    r = tenant.put("/v1/workflows/bad-convert", json={"steps": [
        {"name": "m", "type": "map", "ops": [op]}]})
    e = assert_error(r, 422, "InvalidField")
    assert err in e["message"] and e["target"].endswith("ops[0].to"), e
