// sign.mjs - signs webhook deliveries the way each provider does, with the provider's own
// library where it publishes one, for tests/api/test_44_hook_schemes.py.
//
//   node sign.mjs < requests.json > headers.json
//
// Input: a JSON array of {"scheme", "secret", "payload" (the raw body, a string),
// "id" (delivery id), "timestamp" (unix seconds)}. Output: a JSON array, one object of
// HTTP headers per request, as that provider sends them.
//   github             @octokit/webhooks-methods sign()
//   standard-webhooks standardwebhooks Webhook(secret).sign(id, date, payload)
//   stripe             stripe.webhooks.generateTestHeaderString({payload, secret, timestamp})
//   shopify            no signing library: the computation of Shopify's documentation,
//                      https://shopify.dev/docs/apps/build/webhooks/subscribe/https
//                      (Node example: createHmac('sha256', secret).update(body).digest('base64'))
//   woocommerce        no signing library: the computation WooCommerce documents,
//                      https://woocommerce.github.io/woocommerce-rest-api-docs/#webhooks
//                      ("a base64 encoded HMAC-SHA256 hash of the payload"; the headers are
//                      those WC_Webhook::deliver() sets in includes/class-wc-webhook.php)
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";

import { sign as githubSign } from "@octokit/webhooks-methods";
import { Webhook } from "standardwebhooks";
import Stripe from "stripe";

const stripe = new Stripe("sk_test_unused_no_network_call_is_made");

const base64Hmac = (secret, body) => createHmac("sha256", secret).update(body, "utf8").digest("base64");

const signers = {
  async github(r) {
    return {
      "X-Hub-Signature-256": await githubSign(r.secret, r.payload),
      "X-GitHub-Delivery": r.id,
      "X-GitHub-Event": "push",
    };
  },
  async "standard-webhooks"(r) {
    return {
      "webhook-id": r.id,
      "webhook-timestamp": String(r.timestamp),
      "webhook-signature": new Webhook(r.secret).sign(r.id, new Date(r.timestamp * 1000), r.payload),
    };
  },
  async stripe(r) {
    return {
      "Stripe-Signature": stripe.webhooks.generateTestHeaderString({
        payload: r.payload,
        secret: r.secret,
        timestamp: r.timestamp,
      }),
    };
  },
  async shopify(r) {
    return {
      "X-Shopify-Hmac-Sha256": base64Hmac(r.secret, r.payload),
      "X-Shopify-Webhook-Id": r.id,
      "X-Shopify-Topic": "orders/create",
    };
  },
  async woocommerce(r) {
    return {
      "X-WC-Webhook-Signature": base64Hmac(r.secret, r.payload),
      "X-WC-Webhook-Delivery-ID": r.id,
      "X-WC-Webhook-Topic": "order.created",
    };
  },
};

const requests = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const r of requests) {
  const signer = signers[r.scheme];
  if (!signer) throw new Error(`no signer for scheme ${r.scheme}`);
  out.push(await signer(r));
}
process.stdout.write(JSON.stringify(out));
