"""Webhook signature schemes per hook ("scheme": stripe, github, shopify, woocommerce,
standard-webhooks, hmac). The deliveries are signed by the providers' own libraries
(tests/webhooks/sign.mjs: @octokit/webhooks-methods, standardwebhooks, stripe) or, for
Shopify and WooCommerce, which publish no signing library, by the computation their
documentation gives. Per scheme: a valid delivery makes a job with the right items; a
tampered body, a wrong secret, a missing header and (timed schemes) a stale timestamp
are 401; a replayed delivery answers the first job; and a captured delivery re-sent
with a new delivery-id header makes no new job."""
import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import time

import pytest
import requests

from conftest import assert_error, hook_sign, list_all, uniq

WEBHOOKS_DIR = os.path.join(os.path.dirname(__file__), "..", "webhooks")

# Secrets as the providers hand them out (GitHub and WooCommerce take any length).
SECRETS = {
    "github": "g",
    "shopify": "shpss_" + "0f1e2d3c4b5a6978" * 2,
    "woocommerce": "wc",
    "standard-webhooks": "whsec_" + base64.b64encode(bytes(range(7, 31))).decode(),
    "stripe": "whsec_" + "Q7s9" * 8,
}
# What a tenant writes for each provider (docs/integrating.md's table).
DEFINITIONS = {
    "github": {"scheme": "github"},
    "shopify": {"scheme": "shopify"},
    "woocommerce": {"scheme": "woocommerce"},
    "standard-webhooks": {"scheme": "standard-webhooks"},
    "stripe": {"scheme": "stripe", "signatureHeader": "Stripe-Signature", "eventIdFrom": "id"},
}
SIGNATURE_HEADER = {
    "github": "X-Hub-Signature-256",
    "shopify": "X-Shopify-Hmac-Sha256",
    "woocommerce": "X-WC-Webhook-Signature",
    "standard-webhooks": "webhook-signature",
    "stripe": "Stripe-Signature",
}
# The header that names a delivery (Stripe's event id is in the signed body).
DELIVERY_ID_HEADER = {
    "github": "X-GitHub-Delivery",
    "shopify": "X-Shopify-Webhook-Id",
    "woocommerce": "X-WC-Webhook-Delivery-ID",
    "standard-webhooks": "webhook-id",
    "stripe": "Webhook-Id",
}
TIMED = {"standard-webhooks", "stripe"}
SCHEMES = sorted(DEFINITIONS)


def provider_sign(*reqs):
    """Headers for each request {scheme, secret, payload, id, timestamp}, made by
    tests/webhooks/sign.mjs with the providers' libraries."""
    assert shutil.which("node"), "node is needed: scripts/deps.sh test installs it"
    assert os.path.isdir(os.path.join(WEBHOOKS_DIR, "node_modules", "standardwebhooks")), \
        "tests/webhooks/node_modules is missing: run make test-deps"
    out = subprocess.run(["node", os.path.join(WEBHOOKS_DIR, "sign.mjs")],
                         input=json.dumps(list(reqs)), capture_output=True, text=True,
                         timeout=120, cwd=WEBHOOKS_DIR)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def make_hook(tenant, scheme, **extra):
    name = uniq("hs")
    coll = "hs" + uniq("c").replace("-", "_")
    definition = dict(DEFINITIONS[scheme], workflow=coll + ".upsert", secrets=[SECRETS[scheme]],
                      items={"from": "path", "path": "lines"}, refFrom="sku")
    definition.update(extra)
    definition = {k: v for k, v in definition.items() if v is not None}  # None: leave out
    r = tenant.put("/v1/hooks/" + name, json=definition)
    assert r.status_code == 201, r.text
    return name, coll


def payload(note="n"):
    """A delivery body: an event id (Stripe's "evt_"), two lines that become the items."""
    return json.dumps({"id": uniq("evt"), "note": note,
                       "lines": [{"sku": "A-1", "q": 1}, {"sku": "A-2", "q": 2}]})


def signed(scheme, body, secret=None, delivery=None, t=None):
    return provider_sign({"scheme": scheme, "secret": secret or SECRETS[scheme], "payload": body,
                          "id": delivery or uniq("dlv"),
                          "timestamp": int(time.time()) if t is None else t})[0]


def post(server, name, body, headers):
    h = {"Content-Type": "application/json"}
    h.update(headers)
    return requests.post(server.url + "/v1/hooks/%s/events" % name,
                         data=body.encode() if isinstance(body, str) else body, headers=h,
                         timeout=60)


def jobs_of(tenant):
    return [j["id"] for j in list_all(tenant, "/v1/jobs")[0]]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_valid_delivery_makes_a_job(tenant, scheme):
    name, coll = make_hook(tenant, scheme)
    body = payload()
    r = post(tenant.server, name, body, signed(scheme, body))
    assert r.status_code == 202, r.text
    job = tenant.wait_job(r.json()["id"])
    assert job["status"] == "Succeeded" and job["counts"]["total"] == 2, job
    its = list_all(tenant, "/v1/jobs/%s/items" % job["id"])[0]
    assert [i["ref"] for i in its] == ["A-1", "A-2"], its
    d = tenant.get("/v1/collections/%s/A-2" % coll)
    assert d.status_code == 200 and d.json()["data"] == {"sku": "A-2", "q": 2}, d.text


@pytest.mark.parametrize("scheme", SCHEMES)
def test_tampered_wrong_secret_and_missing_header_are_401(tenant, scheme):
    name, _ = make_hook(tenant, scheme)
    body = payload()
    good = signed(scheme, body)
    sig = SIGNATURE_HEADER[scheme]
    # the body changed after signing
    tampered = body.replace('"q": 2', '"q": 20')
    assert tampered != body
    err = assert_error(post(tenant.server, name, tampered, good), 401, "Unauthorized", sig)
    assert err["message"] == "no signature matches", err
    # signed with another secret (of the same form)
    other = {"github": "h", "shopify": "shpss_" + "9" * 32, "woocommerce": "wd",
             "standard-webhooks": "whsec_" + base64.b64encode(bytes(24)).decode(),
             "stripe": "whsec_" + "x" * 32}[scheme]
    assert_error(post(tenant.server, name, body, signed(scheme, body, secret=other)), 401,
                 "Unauthorized", sig)
    # no signature header: the message names it
    r = post(tenant.server, name, body, {k: v for k, v in good.items() if k != sig})
    err = assert_error(r, 401, "Unauthorized", sig)
    assert sig in err["message"] and "missing" in err["message"], err
    assert len(SECRETS[scheme]) < 8 or SECRETS[scheme] not in r.text
    # a signature header that is not in the scheme's form
    err = assert_error(post(tenant.server, name, body, dict(good, **{sig: "t=1,v9=zz"})), 401,
                       "Unauthorized", sig)
    assert err["message"].startswith("malformed signature header " + sig), err
    assert jobs_of(tenant) == []


@pytest.mark.parametrize("scheme", sorted(TIMED))
def test_stale_delivery_is_401(tenant, scheme):
    name, _ = make_hook(tenant, scheme, toleranceSeconds=60)
    body = payload()
    for t in (int(time.time()) - 600, int(time.time()) + 600):
        err = assert_error(post(tenant.server, name, body, signed(scheme, body, t=t)), 401,
                           "Unauthorized")
        assert err["message"] == "signature timestamp outside the tolerance window", err
    assert jobs_of(tenant) == []


def test_standard_webhooks_headers_are_named(tenant):
    name, _ = make_hook(tenant, "standard-webhooks")
    body = payload()
    good = signed("standard-webhooks", body)
    for header, kind in (("webhook-id", "delivery id"), ("webhook-timestamp", "timestamp")):
        r = post(tenant.server, name, body, {k: v for k, v in good.items() if k != header})
        err = assert_error(r, 401, "Unauthorized", header)
        assert err["message"] == "missing %s header %s" % (kind, header), err
    r = post(tenant.server, name, body, dict(good, **{"webhook-timestamp": "soon"}))
    assert_error(r, 401, "Unauthorized", "webhook-timestamp")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_replayed_delivery_answers_the_first_job(tenant, scheme):
    name, _ = make_hook(tenant, scheme)
    body = payload()
    delivery = uniq("dlv")
    first = signed(scheme, body, delivery=delivery)
    r1 = post(tenant.server, name, body, first)
    assert r1.status_code == 202, r1.text
    job = r1.json()["id"]
    # the same delivery again, byte for byte
    r2 = post(tenant.server, name, body, first)
    assert r2.status_code == 200 and r2.json()["id"] == job, r2.text
    assert r2.headers.get("Idempotent-Replayed") == "true", r2.headers
    # the provider's retry: same delivery id, signed again a second later
    retry = signed(scheme, body, delivery=delivery, t=int(time.time()) + 1)
    r3 = post(tenant.server, name, body, retry)
    assert r3.status_code == 200 and r3.json()["id"] == job, r3.text
    # another event is new work
    other = payload("other")
    r4 = post(tenant.server, name, other, signed(scheme, other))
    assert r4.status_code == 202 and r4.json()["id"] != job, r4.text
    assert sorted(jobs_of(tenant)) == sorted([job, r4.json()["id"]])


@pytest.mark.parametrize("scheme", SCHEMES)
def test_captured_delivery_with_a_new_delivery_id_makes_no_new_job(tenant, scheme):
    """The issue's attack: whoever captured one signed delivery re-sends it with a fresh
    delivery-id header. Where the scheme signs the id (Standard Webhooks) the signature
    fails; where it does not, the id is not the replay key, so the first job answers."""
    name, _ = make_hook(tenant, scheme)
    body = payload()
    captured = signed(scheme, body, delivery="dlv-original")
    if scheme == "stripe":
        captured["Webhook-Id"] = "dlv-original"  # today's unsigned event id header
    r1 = post(tenant.server, name, body, captured)
    assert r1.status_code == 202, r1.text
    idh = DELIVERY_ID_HEADER[scheme]
    for fresh in ("dlv-forged-1", "dlv-forged-2"):
        r = post(tenant.server, name, body, dict(captured, **{idh: fresh}))
        if scheme == "standard-webhooks":
            assert_error(r, 401, "Unauthorized", "webhook-signature")
        else:
            assert r.status_code == 200 and r.json()["id"] == r1.json()["id"], r.text
    # without the id header at all
    r = post(tenant.server, name, body, {k: v for k, v in captured.items() if k != idh})
    if scheme == "standard-webhooks":
        assert_error(r, 401, "Unauthorized", "webhook-id")
    else:
        assert r.status_code == 200 and r.json()["id"] == r1.json()["id"], r.text
    assert jobs_of(tenant) == [r1.json()["id"]]


def test_legacy_hook_refuses_the_issue_replay(tenant):
    """A hook written before schemes (no "scheme": stripe, Sluice-Signature) that sets
    eventIdHeader: a captured delivery replayed with a new Webhook-Id made a new job."""
    name = uniq("legacy")
    r = tenant.put("/v1/hooks/" + name, json={"workflow": "noop", "secrets": [SECRETS["stripe"]],
                                              "eventIdHeader": "Webhook-Id", "refFrom": "id"})
    assert r.status_code == 201, r.text
    body = json.dumps({"id": "o-1"})
    h = {"Sluice-Signature": hook_sign(SECRETS["stripe"], body), "Webhook-Id": "evt_1"}
    r1 = post(tenant.server, name, body, h)
    assert r1.status_code == 202, r1.text
    r2 = post(tenant.server, name, body, dict(h, **{"Webhook-Id": "evt_2"}))
    assert r2.status_code == 200 and r2.json()["id"] == r1.json()["id"], r2.text
    assert jobs_of(tenant) == [r1.json()["id"]]


def test_stripe_scheme_keeps_the_sluice_signature_header(tenant):
    """scheme stripe without signatureHeader reads Sluice-Signature (today's default);
    Stripe's own header is read when the definition names it."""
    name, _ = make_hook(tenant, "stripe", signatureHeader=None)
    hook = tenant.get("/v1/hooks/" + name).json()["definition"]
    assert "signatureHeader" not in hook, hook
    body = payload()
    sig = signed("stripe", body)["Stripe-Signature"]
    assert_error(post(tenant.server, name, body, {"Stripe-Signature": sig}), 401, "Unauthorized",
                 "Sluice-Signature")
    r = post(tenant.server, name, body, {"Sluice-Signature": sig})
    assert r.status_code == 202, r.text


def _hmac(algorithm, encoding, secret, message):
    mac = hmac.new(secret.encode(), message, getattr(hashlib, algorithm)).digest()
    return mac.hex() if encoding == "hex" else base64.b64encode(mac).decode()


def test_generic_hmac_with_signed_id_and_timestamp(tenant):
    secret = "generic-secret-0123456789"
    cfg = {"header": "X-Signature", "algorithm": "sha512", "encoding": "base64",
           "prefix": "v=", "signed": ["timestamp", "id", "body"], "separator": ":",
           "idHeader": "X-Event-Id", "timestampHeader": "X-Timestamp"}
    name = uniq("hm")
    r = tenant.put("/v1/hooks/" + name, json={"workflow": "noop", "scheme": "hmac",
                                              "secrets": [secret], "hmac": cfg,
                                              "toleranceSeconds": 60, "refFrom": "id"})
    assert r.status_code == 201, r.text
    assert tenant.get("/v1/hooks/" + name).json()["definition"]["hmac"] == cfg

    def deliver(body, eid, t, sign_eid=None):
        msg = b"%d:%s:%s" % (t, (sign_eid or eid).encode(), body)
        return post(tenant.server, name, body, {
            "X-Signature": "v=" + _hmac("sha512", "base64", secret, msg),
            "X-Event-Id": eid, "X-Timestamp": str(t)})

    now = int(time.time())
    body = json.dumps({"id": "g-1"}).encode()
    r1 = deliver(body, "e-1", now)
    assert r1.status_code == 202, r1.text
    # the signed id is the replay key: the same id re-signed later is the same job
    r2 = deliver(body, "e-1", now + 1)
    assert r2.status_code == 200 and r2.json()["id"] == r1.json()["id"], r2.text
    # a new id under the old signature fails; properly signed, it is a new event
    assert_error(deliver(body, "e-2", now, sign_eid="e-1"), 401, "Unauthorized", "X-Signature")
    r3 = deliver(body, "e-2", now)
    assert r3.status_code == 202 and r3.json()["id"] != r1.json()["id"], r3.text
    assert_error(deliver(body, "e-3", now - 120), 401, "Unauthorized", "X-Timestamp")
    # a signed id that cannot be a key
    r = deliver(body, "e" * 200, now)
    assert_error(r, 400, "InvalidRequest", "X-Event-Id")


def test_generic_hmac_body_only_hex(tenant):
    secret = "generic-secret-abcdefghij"
    name = uniq("hm")
    r = tenant.put("/v1/hooks/" + name, json={"workflow": "noop", "scheme": "hmac",
                                              "secrets": [secret], "refFrom": "id",
                                              "hmac": {"header": "X-Sig", "algorithm": "sha1",
                                                       "prefix": "sha1="}})
    assert r.status_code == 201, r.text
    body = json.dumps({"id": "s-1"}).encode()
    sig = "sha1=" + _hmac("sha1", "hex", secret, body)
    r1 = post(tenant.server, name, body, {"X-Sig": sig})
    assert r1.status_code == 202, r1.text
    assert post(tenant.server, name, body, {"X-Sig": sig.upper().replace("SHA1=", "sha1=")}) \
        .json()["id"] == r1.json()["id"]
    assert_error(post(tenant.server, name, body + b" ", {"X-Sig": sig}), 401, "Unauthorized")


BAD = [
    ({"scheme": "paypal"}, "scheme"),
    ({"scheme": "github", "signatureHeader": "X-Sig"}, "signatureHeader"),
    ({"scheme": "shopify", "toleranceSeconds": 60}, "toleranceSeconds"),
    ({"scheme": "woocommerce", "eventIdHeader": "X-Id"}, "eventIdHeader"),
    ({"scheme": "github", "hmac": {"header": "X"}}, "hmac"),
    ({"scheme": "hmac"}, "hmac"),
    ({"scheme": "hmac", "hmac": {"algorithm": "sha256"}}, "hmac.header"),
    ({"scheme": "hmac", "hmac": {"header": "X", "digest": "sha1"}}, "hmac.digest"),
    ({"scheme": "hmac", "hmac": {"header": "X", "algorithm": "md5"}}, "hmac.algorithm"),
    ({"scheme": "hmac", "hmac": {"header": "X", "encoding": "base32"}}, "hmac.encoding"),
    ({"scheme": "hmac", "hmac": {"header": "X", "signed": ["id"], "idHeader": "I"}},
     "hmac.signed"),
    ({"scheme": "hmac", "hmac": {"header": "X", "signed": ["id", "body"]}}, "hmac.idHeader"),
    ({"scheme": "hmac", "hmac": {"header": "X", "idHeader": "I"}}, "hmac.idHeader"),
    ({"scheme": "hmac", "hmac": {"header": "X"}, "toleranceSeconds": 5}, "toleranceSeconds"),
    ({"scheme": "hmac", "hmac": {"header": "X"}, "secrets": ["short"]}, "secrets[0]"),
    ({"scheme": "github", "secrets": [""]}, "secrets[0]"),
    ({"scheme": "standard-webhooks", "secrets": ["whsec_not-base64!"]}, "secrets[0]"),
    ({"scheme": "standard-webhooks", "secrets": ["whsec_" + base64.b64encode(b"x" * 15).decode()]},
     "secrets[0]"),
]


@pytest.mark.parametrize("extra,target", BAD, ids=["%d-%s" % (i, t) for i, (_, t) in enumerate(BAD)])
def test_definitions_that_do_not_fit_the_scheme_are_422(tenant, extra, target):
    definition = {"workflow": "noop", "secrets": ["0123456789abcdef0123"], "refFrom": "id"}
    definition.update(extra)
    name = uniq("bad")
    assert_error(tenant.put("/v1/hooks/" + name, json=definition), 422, "InvalidField", target)
    assert_error(tenant.get("/v1/hooks/" + name), 404, "NotFound")


def test_short_provider_secrets_are_masked(tenant):
    name, _ = make_hook(tenant, "github", secrets=["g", "0123456789"])
    for r in (tenant.get("/v1/hooks/" + name), tenant.get("/v1/hooks")):
        assert r.status_code == 200 and "0123456789" not in r.text, r.text
    d = tenant.get("/v1/hooks/" + name).json()["definition"]
    assert d["secrets"] == ["****", "****6789"] and d["scheme"] == "github", d
