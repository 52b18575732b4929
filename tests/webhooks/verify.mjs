// verify.mjs - verifies sluice's completion callbacks with the providers' own libraries,
// as an integrator's receiver would: standardwebhooks' Webhook.verify for the
// "standard-webhooks" format and stripe's webhooks.constructEvent for the "stripe" one
// (tests/api/test_45_callback_formats.py).
//
// stdin: a JSON array of checks {"format", "secret", "body" (the raw body, text),
// "headers" (as received)}. stdout: a JSON array of results, one per check, in order:
// {"ok": true, "event": <what the library returned, its "event" field>} or
// {"ok": false, "error": "<the library's message>"}. Exit 0 unless the input is unusable.
import { Webhook } from "standardwebhooks";
import Stripe from "stripe";

// No request is ever made: the key only satisfies the constructor.
const stripe = new Stripe("sk_test_unused_by_constructEvent");

function header(headers, name) {
  const k = Object.keys(headers).find((h) => h.toLowerCase() === name.toLowerCase());
  return k === undefined ? undefined : headers[k];
}

function verifyOne(c) {
  try {
    let ev;
    if (c.format === "standard-webhooks") {
      ev = new Webhook(c.secret).verify(c.body, c.headers);
    } else if (c.format === "stripe") {
      ev = stripe.webhooks.constructEvent(c.body, header(c.headers, "Sluice-Signature"), c.secret);
    } else {
      throw new Error("unknown format " + c.format);
    }
    return { ok: true, event: ev.event };
  } catch (e) {
    return { ok: false, error: String(e && e.message ? e.message : e) };
  }
}

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
const checks = JSON.parse(input);
if (!Array.isArray(checks)) {
  console.error("stdin must be a JSON array of checks");
  process.exit(2);
}
process.stdout.write(JSON.stringify(checks.map(verifyOne)) + "\n");
