"""Items that share a ref reach the upstream one after another, in input order: the next
one's request starts only after the previous one's step ended (success or final failure),
while items with other refs keep flowing. And each item's http event carries its own
request's timing, not its batch's.

The upstream holds the first request of a ref for a while: a later same-ref request that
did not wait would arrive during the hold. Arrival times are compared as lower bounds
only (a request that waited for an answer held 0.4 s arrives at least 0.4 s after that
request did)."""
import pytest

from conftest import item_detail, make_workflow, run_job, step_events, submitted, uniq

HOLD = 0.4


def put_step(url, **kw):
    return dict({"name": "push", "type": "http", "method": "PUT", "url": url}, **kw)


def arrivals(upstream, prefix):
    """[(v, arrival time)] of the PUTs under prefix, in arrival order (the log's own order
    is when each was answered)."""
    return sorted(((e["json"]["v"], e["time"]) for e in upstream.log(prefix)
                   if e["method"] == "PUT"), key=lambda a: a[1])


def group(ref, other, run):
    return [{"ref": ref, "data": {"v": 1, "run": run}},
            {"ref": other, "data": {"v": 1, "run": run}},
            {"ref": ref, "data": {"v": 2, "run": run}},
            {"ref": ref, "data": {"v": 3, "run": run}}]


def check_group(upstream, ref):
    got = arrivals(upstream, "/ord/%s/" % ref)
    assert [v for v, _ in got] == [1, 2, 3], got
    # v2 waited for v1's answer, which the upstream held HOLD seconds
    assert got[1][1] - got[0][1] >= HOLD - 0.01, got


def test_same_ref_items_of_one_job_are_sent_in_order_over_many_runs(wfc, upstream):
    wf = make_workflow(wfc, [put_step(upstream.url + "/ord/{{ref}}/{{data.v}}")])
    for run in range(6):
        ref, other = uniq("same"), uniq("other")
        upstream.script("/ord/%s/1" % ref, [{"delay_ms": int(HOLD * 1000)}])
        j = run_job(wfc, group(ref, other, run), wf)
        assert j["status"] == "Succeeded", j
        check_group(upstream, ref)
        assert len(arrivals(upstream, "/ord/%s/" % other)) == 1


def test_interleaved_refs_in_one_batch(wfc, upstream):
    """Six refs, each with three versions and a hold on its first, interleaved in one
    job (one claim): every ref keeps its order, and the holds overlap, so the refs did
    not wait for one another (six holds one after another would take 2.4 s)."""
    wf = make_workflow(wfc, [put_step(upstream.url + "/ord/{{ref}}/{{data.v}}")])
    refs = [uniq("il") for _ in range(6)]
    for ref in refs:
        upstream.script("/ord/%s/1" % ref, [{"delay_ms": int(HOLD * 1000)}])
    items = [{"ref": ref, "data": {"v": v}} for v in (1, 2, 3) for ref in refs]
    j = run_job(wfc, items, wf)
    assert j["status"] == "Succeeded", j
    for ref in refs:
        check_group(upstream, ref)
    firsts = [arrivals(upstream, "/ord/%s/" % ref)[0][1] for ref in refs]
    seconds = [arrivals(upstream, "/ord/%s/" % ref)[1][1] for ref in refs]
    # every ref's first request arrived before any ref's second: the refs ran side by side
    assert max(firsts) < min(seconds), (firsts, seconds)


def test_next_same_ref_request_waits_for_a_final_failure(wfc, upstream):
    wf = make_workflow(wfc, [put_step(upstream.url + "/ord/{{ref}}/{{data.v}}", onError="continue",
                                      retry={"maxAttempts": 3, "backoffMs": 5,
                                             "maxBackoffMs": 10})])
    ref, other = uniq("fail"), uniq("other")
    upstream.script("/ord/%s/1" % ref, [{"delay_ms": int(HOLD * 1000), "status": 500}],
                    repeat_last=True)
    j = run_job(wfc, group(ref, other, 0), wf)
    assert j["status"] == "Succeeded", j
    got = arrivals(upstream, "/ord/%s/" % ref)
    assert [v for v, _ in got] == [1, 1, 1, 2, 3], got  # v1's three attempts first
    assert got[3][1] - got[2][1] >= HOLD - 0.01, got
    first = item_detail(wfc, j["id"], 0)
    ev = step_events(first, "push")[-1]
    assert ev["status"] == 500 and ev["attempts"] == 3 and ev["outcome"] == "continued", ev


def test_each_http_event_has_its_own_timing(wfc, upstream):
    """One item's request is held, the other's is not: each event's duration is its own
    request's (durationMs agrees with the request's own totalMs), and the held one's is
    at least the hold."""
    wf = make_workflow(wfc, [put_step(upstream.url + "/time/{{ref}}")])
    held, quick = uniq("held"), uniq("quick")
    upstream.script("/time/" + held, [{"delay_ms": 600}])
    j = run_job(wfc, [{"ref": held, "data": {"v": 1}}, {"ref": quick, "data": {"v": 1}}], wf)
    assert j["status"] == "Succeeded", j
    evs = [step_events(item_detail(wfc, j["id"], i), "push")[-1] for i in (0, 1)]
    for ev in evs:
        assert abs(ev["durationMs"] - ev["totalMs"]) <= 50, ev
    assert evs[0]["durationMs"] >= 600, evs[0]
    assert evs[1]["endedAt"] < evs[0]["endedAt"], evs
