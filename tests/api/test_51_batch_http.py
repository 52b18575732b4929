"""The http step's "batch": many items in one request, the answer split back per item.

The scripted upstream's default answer echoes the request body, so a batch's results
by position are the elements sluice sent; answers scripted with "json" test matching by
key, per-result statuses, and items sent again."""
import json

import pytest

from conftest import assert_error, item_detail, make_workflow, put_workflow, run_job, \
    step_counts, step_events, uniq

HOLD = 0.4


def batch_step(url, batch, **kw):
    return dict({"name": "push", "type": "http", "method": "POST", "url": url, "batch": batch},
                **kw)


def posts(upstream, prefix):
    return [e for e in upstream.log(prefix) if e["method"] == "POST"]


def test_position_match_envelope_keys_and_events(wfc, upstream):
    wf = make_workflow(wfc, [batch_step(upstream.url + "/bulk",
                                        {"maxItems": 100, "body": {"job": "{{job}}", "n": "{{count}}",
                                                                   "products": "{{items}}"},
                                         "results": "/body/products"},
                                        body={"sku": "{{ref}}", "price": "{{data.price}}"})])
    items = [{"ref": "P%03d" % i, "data": {"price": i + 0.5}} for i in range(250)]
    j = run_job(wfc, items, wf)
    assert j["status"] == "Succeeded" and step_counts(j) == {"push": (250, 0, 0)}, j
    sent = posts(upstream, "/bulk")
    assert sorted(len(e["json"]["products"]) for e in sent) == [50, 100, 100]
    assert all(e["json"]["job"] == j["id"] and e["json"]["n"] == len(e["json"]["products"])
               for e in sent)
    got = [p for e in sent for p in e["json"]["products"]]
    assert sorted(p["sku"] for p in got) == [i["ref"] for i in items]
    assert all(p["price"] == int(p["sku"][1:]) + 0.5 for p in got)
    keys = {e["idempotency_key"] for e in sent}
    assert len(keys) == 3 and all(k.startswith(j["id"] + ":batch-") and k.endswith(":push")
                                  for k in keys), keys
    it = item_detail(wfc, j["id"], 137)
    ev = step_events(it, "push")[-1]
    assert ev["outcome"] == "passed" and ev["status"] == 200, ev
    assert ev["batch"]["key"] in keys and ev["batch"]["items"] == 100, ev
    # the item's own result is kept for later steps, as for one request per item (and
    # so not copied into the event, as a failed item's is)
    assert it["result"]["steps"]["push"]["body"] == {"sku": "P137", "price": 137.5}, it
    assert "result" not in ev, ev


def test_default_body_is_the_array_of_data(wfc, upstream):
    wf = make_workflow(wfc, [batch_step(upstream.url + "/arr", {"maxItems": 10, "results": "/body"})])
    items = [{"ref": "a%d" % i, "data": {"i": i}} for i in range(15)]
    j = run_job(wfc, items, wf)
    assert j["status"] == "Succeeded", j
    bodies = [e["json"] for e in posts(upstream, "/arr")]
    assert sorted(map(len, bodies)) == [5, 10]
    assert sorted(x["i"] for b in bodies for x in b) == list(range(15))


def test_match_by_key_statuses_and_missing_results(wfc, upstream):
    upstream.script("/keyed", [{"json": {"results": [
        {"sku": "c", "state": "ok", "id": 3},
        {"sku": "a", "state": "created", "id": 1},
        {"sku": "b", "state": "invalid", "errors": ["price must be > 0"]}]}}])
    wf = make_workflow(wfc, [batch_step(upstream.url + "/keyed",
                                        {"maxItems": 10, "results": "/results", "match": "key",
                                         "resultKey": "/sku", "itemKey": "{{data.sku}}",
                                         "status": "/state", "success": ["ok", "created"]},
                                        onError="continue")])
    items = [{"ref": r, "data": {"sku": r}} for r in ("a", "b", "c", "d")]
    j = run_job(wfc, items, wf)
    assert step_counts(j) == {"push": (2, 2, 0)}, j
    ev = {i: step_events(item_detail(wfc, j["id"], i), "push")[-1] for i in range(4)}
    assert ev[0]["outcome"] == "passed" and ev[0]["resultStatus"] == "created", ev[0]
    assert ev[2]["outcome"] == "passed" and ev[2]["resultStatus"] == "ok", ev[2]
    kept = [item_detail(wfc, j["id"], i)["result"]["steps"]["push"]["body"]["id"] for i in (0, 2)]
    assert kept == [1, 3], kept
    assert ev[1]["outcome"] == "continued" and ev[1]["code"] == "UpstreamError", ev[1]
    assert ev[1]["resultStatus"] == "invalid" and '"invalid"' in ev[1]["message"], ev[1]
    assert ev[1]["result"]["errors"] == ["price must be > 0"]
    assert ev[3]["code"] == "UpstreamError" and "no result for this item's key d" in ev[3]["message"]
    assert len(posts(upstream, "/keyed")) == 1


def test_retry_values_resend_only_those_items_under_a_new_key(wfc, upstream):
    upstream.script("/flaky", [
        {"json": {"results": [{"s": 200}, {"s": 429}, {"s": 200}, {"s": 503}]}},
        {"json": {"results": [{"s": 200}, {"s": 429}]}},
        {"json": {"results": [{"s": 429}]}}])
    wf = make_workflow(wfc, [batch_step(upstream.url + "/flaky",
                                        {"maxItems": 10, "results": "/results", "status": "/s",
                                         "retry": [429, 503]},
                                        retry={"maxAttempts": 3, "backoffMs": 5, "maxBackoffMs": 20},
                                        onError="continue")])
    items = [{"ref": "r%d" % i, "data": {"i": i}} for i in range(4)]
    j = run_job(wfc, items, wf)
    sent = posts(upstream, "/flaky")
    assert [[x["i"] for x in e["json"]] for e in sent] == [[0, 1, 2, 3], [1, 3], [3]], sent
    assert len({e["idempotency_key"] for e in sent}) == 3
    assert step_counts(j) == {"push": (3, 1, 0)}, j
    last = item_detail(wfc, j["id"], 3)  # 503, then 429 twice: out of attempts
    retries = [e for e in last["events"] if e.get("stage") == "retry"]
    assert len(retries) == 2 and all(e["code"] == "BatchItemRetry" for e in retries), last
    assert [e["resultStatus"] for e in retries] == [503, 429], retries
    assert step_events(item_detail(wfc, j["id"], 1), "push")[-1]["outcome"] == "passed"
    fin = step_events(last, "push")[-1]
    assert fin["outcome"] == "continued" and fin["resultStatus"] == 429, fin


def test_a_failed_request_fails_its_items_only(wfc, upstream):
    upstream.script("/half/bad", [{"status": 500}])
    wf = make_workflow(wfc, [batch_step(upstream.url + "/half/{{data.to}}",
                                        {"maxItems": 50, "results": "/body"},
                                        retry={"maxAttempts": 2, "backoffMs": 5},
                                        onError="continue")])
    items = [{"ref": "h%d" % i, "data": {"to": "bad" if i % 2 else "good"}} for i in range(20)]
    j = run_job(wfc, items, wf)
    assert step_counts(j) == {"push": (10, 10, 0)}, j
    bad = posts(upstream, "/half/bad")
    assert len(bad) == 2 and bad[0]["idempotency_key"] == bad[1]["idempotency_key"]
    assert bad[0]["body"] == bad[1]["body"] and len(bad[0]["json"]) == 10
    ev = step_events(item_detail(wfc, j["id"], 1), "push")[-1]
    assert ev["code"] == "UpstreamError" and ev["status"] == 500 and ev["attempts"] == 2, ev


def test_same_ref_goes_in_a_later_request_after_the_first_ended(wfc, upstream):
    wf = make_workflow(wfc, [batch_step(upstream.url + "/waves", {"maxItems": 10, "results": "/body"})])
    upstream.script("/waves", [{"delay_ms": int(HOLD * 1000)}, {}], repeat_last=True)
    items = [{"ref": "S", "data": {"v": 1}}, {"ref": "O", "data": {"v": 1}},
             {"ref": "S", "data": {"v": 2}}]
    j = run_job(wfc, items, wf)
    assert j["status"] == "Succeeded", j
    sent = sorted(posts(upstream, "/waves"), key=lambda e: e["time"])
    assert [[x["v"] for x in e["json"]] for e in sent] == [[1, 1], [2]], sent
    assert sent[1]["time"] - sent[0]["time"] >= HOLD - 0.01


def test_max_bytes_cuts_requests(wfc, upstream):
    wf = make_workflow(wfc, [batch_step(upstream.url + "/bytes",
                                        {"maxItems": 100, "maxBytes": 1024, "results": "/body"})])
    items = [{"ref": "b%d" % i, "data": {"pad": "x" * 300}} for i in range(10)]
    j = run_job(wfc, items, wf)
    assert j["status"] == "Succeeded", j
    sent = posts(upstream, "/bytes")
    assert all(len(e["body"]) <= 1024 for e in sent), [len(e["body"]) for e in sent]
    assert sum(len(e["json"]) for e in sent) == 10 and len(sent) >= 4


def test_no_results_array_fails_the_batch(wfc, upstream):
    upstream.script("/flat", [{"json": {"accepted": True}}])
    wf = make_workflow(wfc, [batch_step(upstream.url + "/flat", {"maxItems": 5, "results": "/results"})])
    j = run_job(wfc, [{"ref": "f%d" % i, "data": {}} for i in range(3)], wf)
    assert j["status"] == "Failed", j
    it = item_detail(wfc, j["id"], 0)
    assert it["error"]["code"] == "UpstreamError" and 'results array at "/results"' in \
        it["error"]["message"], it


def test_a_later_step_reads_each_items_result(wfc, upstream):
    # the answer as an upstream may write it: indented, escaped, a member twice
    upstream.script("/pretty", [{"headers": {"Content-Type": "application/json"}, "body": (
        '{ "results" : [\n  { "sku" : "caf\\u00e9", "id" : 1, "id": 10 },\n'
        '  { "sku": "b \\"q\\"", "id" : 2e1 } ]\n}\n')}])
    wf = make_workflow(wfc, [
        batch_step(upstream.url + "/pretty", {"maxItems": 5, "results": "/results"}),
        {"name": "after", "type": "http", "method": "PUT",
         "url": upstream.url + "/after/{{ref}}", "body": {"id": "{{steps.push.body.id}}",
                                                         "sku": "{{steps.push.body.sku}}"}}])
    j = run_job(wfc, [{"ref": "x", "data": {}}, {"ref": "y", "data": {}}], wf)
    assert j["status"] == "Succeeded" and step_counts(j) == {"push": (2, 0, 0),
                                                            "after": (2, 0, 0)}, j
    got = {e["path"]: e["json"] for e in upstream.log("/after/")}
    assert got == {"/after/x": {"id": 10, "sku": "caf\u00e9"},
                   "/after/y": {"id": 20.0, "sku": 'b "q"'}}, got
    res = item_detail(wfc, j["id"], 0)["result"]["steps"]
    assert list(res) == ["push", "after"], res
    assert res["push"]["body"] == {"sku": "caf\u00e9", "id": 10}, res


def test_a_result_past_the_item_size_fails_only_its_item(wfc, upstream):
    # an answer within the 1 MiB an answer may have, with a result that makes an item's
    # result pass the 1 MiB an item may have
    upstream.script("/big", [{"json": {"r": ["x" * (1048576 - 56), {"ok": 1}]}}])
    wf = make_workflow(wfc, [batch_step(upstream.url + "/big", {"maxItems": 5, "results": "/r"},
                                        onError="continue")])
    j = run_job(wfc, [{"ref": "a", "data": {}}, {"ref": "b", "data": {}}], wf)
    it = item_detail(wfc, j["id"], 0)
    assert step_counts(j) == {"push": (1, 1, 0)}, step_events(it, "push")[-1]["message"]
    ev = step_events(it, "push")[-1]
    assert ev["code"] == "ItemTooLarge" and ev["target"] == "steps.push.response.body", ev
    assert "result" not in it or not it["result"], it
    assert item_detail(wfc, j["id"], 1)["result"]["steps"]["push"]["body"] == {"ok": 1}


@pytest.mark.parametrize("step, target", [
    (batch_step("http://127.0.0.1:9/x", {"maxItems": 5}, method="GET"), "steps[0].batch"),
    (batch_step("http://127.0.0.1:9/x", {}), "steps[0].batch.maxItems"),
    (batch_step("http://127.0.0.1:9/x", {"maxItems": 1}), "steps[0].batch.maxItems"),
    (batch_step("http://127.0.0.1:9/x", {"maxItems": 5, "body": {"a": "{{data}}"}}),
     "steps[0].batch.body"),
    (batch_step("http://127.0.0.1:9/x", {"maxItems": 5, "body": ["{{items}}", "{{items}}"]}),
     "steps[0].batch.body"),
    (batch_step("http://127.0.0.1:9/x", {"maxItems": 5, "success": ["ok"]}),
     "steps[0].batch.status"),
    (batch_step("http://127.0.0.1:9/x", {"maxItems": 5, "results": "results"}),
     "steps[0].batch.results"),
    (batch_step("http://127.0.0.1:9/x", {"maxItems": 5, "match": "key"}),
     "steps[0].batch.resultKey"),
    (batch_step("http://127.0.0.1:9/x", {"maxItems": 5, "resultKey": "/id"}),
     "steps[0].batch.resultKey"),
    (batch_step("http://127.0.0.1:9/x", {"maxItems": 5, "retry": [1.5], "status": "/s"}),
     "steps[0].batch.retry[0]"),
    (batch_step("http://127.0.0.1:9/x", {"maxItems": 5, "every": 3}), "steps[0].batch.every"),
])
def test_bad_batch_definitions(wfc, step, target):
    r = put_workflow(wfc, uniq("bad"), [step])
    assert_error(r, 422, "InvalidField", target)
