"""Same-ref order across jobs, opted into by the workflow ("refOrder": "tenant"): an item
of a later job of the tenant's workflow is not processed while an earlier job's item
with the same ref is unfinished; items with other refs keep flowing. Without the option
the jobs are independent and overtake each other.

The upstream holds the earlier job's request for a while. Arrival times are compared as
lower bounds only, and "sent while the other was held" is read from the upstream's log,
whose order is the order of the answers: a request answered before the held one was
sent while it was held."""
from conftest import assert_error, make_workflow, submitted, uniq

HOLD = 0.4


def put_step(url):
    return {"name": "push", "type": "http", "method": "PUT", "url": url}


def ordered_workflow(client, upstream, **extra):
    return make_workflow(client, [put_step(upstream.url + "/xo/{{ref}}/{{data.v}}")], **extra)


def arrivals(upstream, ref):
    """[(v, arrival time)] of the PUTs of ref, in arrival order."""
    return sorted(((e["json"]["v"], e["time"]) for e in upstream.log("/xo/%s/" % ref)
                   if e["method"] == "PUT"), key=lambda a: a[1])


def answered(upstream):
    """The paths of the PUTs in the order they were answered."""
    return [e["path"] for e in upstream.log("/xo/") if e["method"] == "PUT"]


def two_jobs(client, wf, ref, other, run):
    """Job 1: ref v1. Job 2, submitted right after: ref v2 and other (ref first in even
    runs, other first in odd ones). Both waited for."""
    later = [{"ref": ref, "data": {"v": 2}}, {"ref": other, "data": {"v": 1}}]
    j1 = submitted(client.submit([{"ref": ref, "data": {"v": 1}}], workflow=wf))
    j2 = submitted(client.submit(later if run % 2 == 0 else later[::-1], workflow=wf))
    return client.wait_job(j1["id"]), client.wait_job(j2["id"])


def test_ref_order_option_is_validated_and_returned(wfc, upstream):
    steps = [put_step(upstream.url + "/xo/{{ref}}")]
    name = uniq("wf")
    r = wfc.put("/v1/workflows/" + name, json={"steps": steps, "refOrder": "global"})
    assert_error(r, 422, "InvalidField", "refOrder")
    r = wfc.put("/v1/workflows/" + name, json={"steps": steps, "refOrder": 1})
    assert_error(r, 422, "InvalidField", "refOrder")
    r = wfc.put("/v1/workflows/" + name, json={"steps": steps, "refOrder": "tenant"})
    assert r.status_code == 201, r.text
    r = wfc.get("/v1/workflows/" + name)
    assert r.status_code == 200 and r.json()["definition"]["refOrder"] == "tenant", r.text
    r = wfc.put("/v1/workflows/" + name, json={"steps": steps, "refOrder": "job"})
    assert r.status_code == 200 and r.json()["definition"]["refOrder"] == "job", r.text


def test_later_job_waits_for_the_earlier_jobs_same_ref_over_many_runs(wfc, upstream):
    wf = ordered_workflow(wfc, upstream, refOrder="tenant")
    for run in range(6):
        ref, other = uniq("same"), uniq("other")
        upstream.script("/xo/%s/1" % ref, [{"delay_ms": int(HOLD * 1000)}])
        j1, j2 = two_jobs(wfc, wf, ref, other, run)
        assert j1["status"] == "Succeeded" and j2["status"] == "Succeeded", (j1, j2)
        got = arrivals(upstream, ref)
        assert [v for v, _ in got] == [1, 2], got
        # v2 was sent only after v1's answer, which the upstream held HOLD seconds
        assert got[1][1] - got[0][1] >= HOLD - 0.01, (run, got)
        # the other ref did not wait: it was answered while v1 was held
        order = answered(upstream)
        assert order.index("/xo/%s/1" % other) < order.index("/xo/%s/1" % ref), (run, order)


def test_without_the_option_a_later_job_overtakes(wfc, upstream):
    """The same two jobs on a workflow without the option: job 2's v2 does not wait for
    job 1's held v1 (so the test above can fail)."""
    wf = ordered_workflow(wfc, upstream)
    overtook = 0
    for run in range(3):
        ref, other = uniq("same"), uniq("other")
        upstream.script("/xo/%s/1" % ref, [{"delay_ms": int(HOLD * 1000)}])
        j1, j2 = two_jobs(wfc, wf, ref, other, run)
        assert j1["status"] == "Succeeded" and j2["status"] == "Succeeded", (j1, j2)
        order = answered(upstream)
        overtook += order.index("/xo/%s/2" % ref) < order.index("/xo/%s/1" % ref)
    assert overtook > 0, "job 2's item never overtook job 1's held one"


def test_a_canceled_earlier_job_releases_the_later_one(wfc, upstream):
    """Job 1's item waits for job 0's held one and job 1 is canceled meanwhile: job 2
    waits through it for job 0 (canceling a job in the middle does not let job 2
    overtake job 0), then runs; job 1's item is never sent."""
    wf = ordered_workflow(wfc, upstream, refOrder="tenant")
    ref = uniq("cancel")
    hold = 3.0  # generous: job 1 must still wait when it is canceled
    upstream.script("/xo/%s/0" % ref, [{"delay_ms": int(hold * 1000)}])
    j0 = submitted(wfc.submit([{"ref": ref, "data": {"v": 0}}], workflow=wf))
    j1 = submitted(wfc.submit([{"ref": ref, "data": {"v": 1}}], workflow=wf))
    j2 = submitted(wfc.submit([{"ref": ref, "data": {"v": 2}}], workflow=wf))
    r = wfc.post("/v1/jobs/%s:cancel" % j1["id"])
    assert r.status_code == 200, r.text
    j1 = wfc.wait_job(j1["id"])
    assert j1["status"] == "Canceled" and j1["counts"]["canceled"] == 1, j1
    j2 = wfc.wait_job(j2["id"])
    j0 = wfc.wait_job(j0["id"])
    assert j0["status"] == "Succeeded" and j2["status"] == "Succeeded", (j0, j2)
    got = arrivals(upstream, ref)
    assert [v for v, _ in got] == [0, 2], got
    assert got[1][1] - got[0][1] >= hold - 0.01, got
