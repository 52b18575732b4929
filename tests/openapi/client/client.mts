// A small sluice client written from the documentation, the way a user of
// openapi-typescript and openapi-fetch writes one: the types come from the document
// the server serves (generated/sluice-api.d.ts, written by openapi-typescript from
// GET /openapi.json). tests/api/test_48_generated_clients.py generates them, checks
// this file with `tsc --strict` and runs it against a real server:
//   node out/client.mjs <base URL> <API key>
// Each flow asserts what the server answered; the first mismatch exits 1. The lines
// marked to expect a type error are bodies the server refuses: tsc fails if the
// generated types would accept one of them ("unused directive").
import createClient from "openapi-fetch";
import { createHmac } from "node:crypto";
import type { components, paths } from "./generated/sluice-api.js";

type Schemas = components["schemas"];
type JobMonitor = Schemas["JobMonitor"];
type LimitDefinition = Schemas["LimitDefinition"];
type WorkflowDefinition = Schemas["WorkflowDefinition"];
type HookDefinition = Schemas["HookDefinition"];

const [baseUrl, key] = process.argv.slice(2);
if (!baseUrl || !key) {
  console.error("usage: node client.mjs BASE_URL API_KEY");
  process.exit(2);
}
const api = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${key}` } });
const run = Date.now().toString(36);
let checks = 0;

function check(ok: boolean, what: string, detail?: unknown): asserts ok {
  if (!ok) throw new Error(`${what}: ${JSON.stringify(detail)}`);
  checks++;
}

// ---- compile-time checks: what the generated types must accept and refuse ---------

// A documented response header is typed (an undocumented one is `unknown`).
type Submit200Headers = paths["/v1/jobs"]["post"]["responses"][200]["headers"];
type Submit202Headers = paths["/v1/jobs"]["post"]["responses"][202]["headers"];
const operationLocationOn200: string | undefined = "" as Submit200Headers["Operation-Location"];
const operationLocationOn202: string = "" as Submit202Headers["Operation-Location"];

// Limits: the shapes the server accepts, and three it answers 422 to.
const rateLimit: LimitDefinition = { rate: 5, per: "second", burst: 5 };
const concurrencyLimit: LimitDefinition = { concurrency: 2, key: "{tenant}" };
const refusedLimits: unknown[] = [
  // @ts-expect-error rate is a number
  { rate: "fast" } satisfies LimitDefinition,
  // @ts-expect-error per is second, minute or hour (and needs a rate)
  { per: "fortnight" } satisfies LimitDefinition,
  // @ts-expect-error per needs a rate
  { concurrency: 1, per: "second" } satisfies LimitDefinition,
  // @ts-expect-error a limit needs a rate or a concurrency
  {} satisfies LimitDefinition,
];

// Defaults are optional in requests: a step without onError, a submit without priority.
const workflow: WorkflowDefinition = {
  description: "generated-client check",
  steps: [
    {
      name: "shape",
      type: "validate",
      // a JSON Schema (the validate step's subset) can be written here
      schema: {
        type: "object",
        required: ["sku", "qty"],
        properties: {
          sku: { type: "string", pattern: "^[A-Z]+-[0-9]+$" },
          qty: { type: ["integer"], minimum: 1 },
          tags: { type: "array", items: { type: "string", maxLength: 8 } },
        },
        additionalProperties: false,
      },
    },
    { type: "map", ops: [{ op: "set", path: "checked", value: true }] },
  ],
};
// @ts-expect-error steps is required
const workflowWithoutSteps: WorkflowDefinition = { description: "no steps" };
const badSchemaWorkflow: WorkflowDefinition = {
  // @ts-expect-error a validate schema keyword the server does not know
  steps: [{ type: "validate", schema: { type: "object", oneOf: [] } }],
};
// @ts-expect-error a hook needs refFrom
const hookWithoutRefFrom: HookDefinition = { workflow: "noop", secrets: ["0123456789abcdef"] };

// ---- the flows -----------------------------------------------------------------

// A submit answers a job monitor, or (validateOnly=true) a validation report.
function monitor(data: JobMonitor | Schemas["ValidationReport"] | undefined): JobMonitor {
  check(data !== undefined && !("validateOnly" in data), "a job monitor", data);
  return data;
}

async function waitDone(id: string): Promise<JobMonitor> {
  for (let i = 0; i < 120; i++) {
    const { data, error } = await api.GET("/v1/jobs/{id}", {
      params: { path: { id }, query: { wait: 5 } },
    });
    check(data !== undefined, "GET job", error);
    if (["Succeeded", "Failed", "Canceled"].includes(data.status)) return data;
  }
  throw new Error(`job ${id} did not end`);
}

async function submitJson(): Promise<void> {
  const r = await api.POST("/v1/jobs", {
    body: {
      workflow: "noop",
      clientReference: `ts-${run}`,
      items: [
        { ref: "a", data: { n: 1 } },
        { ref: "b", data: [1, 2] },
      ],
    },
  });
  check(r.response.status === 202, "submit JSON", r.error);
  const data = monitor(r.data);
  const loc = r.response.headers.get("Operation-Location");
  check(loc === `${baseUrl}/v1/jobs/${data.id}`, "Operation-Location on 202", loc);
  check(data.counts.total === 2 && data.links.self === loc, "monitor", data);
  const done = await waitDone(data.id);
  check(done.status === "Succeeded" && done.outcome === "AllSucceeded", "job ends", done);

  const items = await api.GET("/v1/jobs/{id}/items", {
    params: { path: { id: data.id }, query: { limit: 1 } },
  });
  check(items.data?.value.length === 1 && typeof items.data.nextLink === "string", "items", items.data);
  const item = await api.GET("/v1/jobs/{id}/items/{index}", {
    params: { path: { id: data.id, index: 1 } },
  });
  check(item.data?.ref === "b" && Array.isArray(item.data.events), "item", item.data);
  const results = await api.GET("/v1/jobs/{id}/results", {
    params: { path: { id: data.id } },
    parseAs: "text",
  });
  const lines = (results.data ?? "").trim().split("\n").map((l) => JSON.parse(l) as Schemas["ResultLine"]);
  check(lines.length === 2 && lines.every((l) => l.status === "Succeeded"), "results", lines);
}

async function submitWaitAnswers200(): Promise<void> {
  const r = await api.POST("/v1/jobs", {
    headers: { Prefer: "wait=30" },
    body: { workflow: "noop", priority: 5, items: [{ ref: "w" }] },
  });
  check(r.response.status === 200, "Prefer: wait", r.error);
  const data = monitor(r.data);
  const loc = r.response.headers.get("Operation-Location");
  check(loc === `${baseUrl}/v1/jobs/${data.id}`, "Operation-Location on 200", loc);
}

async function submitNdjson(): Promise<void> {
  const body = ['{"ref":"n1","data":1}', '{"ref":"n2","data":"two"}', ""].join("\n");
  const r = await api.POST("/v1/jobs", {
    params: { query: { workflow: "noop", priority: -3 } },
    headers: { "Content-Type": "application/x-ndjson" },
    body,
    bodySerializer: (b) => b as string,
  });
  check(r.response.status === 202, "NDJSON", r.error);
  const data = monitor(r.data);
  check(data.counts.total === 2 && data.priority === -3, "NDJSON monitor", data);
}

async function workflowWithSchema(): Promise<void> {
  const name = `ts-wf-${run}`;
  const put = await api.PUT("/v1/workflows/{name}", { params: { path: { name } }, body: workflow });
  check(put.response.status === 201 && put.data?.version === 1, "PUT workflow", put.error);
  const got = await api.GET("/v1/workflows/{name}", { params: { path: { name } } });
  check(JSON.stringify(got.data?.definition.steps[0]) === JSON.stringify(workflow.steps[0]), "GET workflow", got.data);

  const job = await api.POST("/v1/jobs", {
    body: {
      workflow: name,
      items: [
        { ref: "good", data: { sku: "AB-1", qty: 2, tags: ["x"] } },
        { ref: "bad", data: { sku: "nope", qty: 0 } },
      ],
    },
  });
  const id = monitor(job.data).id;
  const done = await waitDone(id);
  check(done.status === "Succeeded" && done.outcome === "PartiallySucceeded", "validated job", done);
  const failed = await api.GET("/v1/jobs/{id}/items", {
    params: { path: { id }, query: { status: "Failed" } },
  });
  const f = failed.data?.value ?? [];
  check(f.length === 1 && f[0]?.ref === "bad" && f[0].error?.code === "ValidationFailed", "failed item", f);

  const run1 = await api.POST("/v1/workflows/{name}:run", {
    params: { path: { name } },
    body: { ref: "r", data: { sku: "CD-9", qty: 1 } },
  });
  check(run1.data?.status === "Succeeded", "run", run1.error);

  for (const body of [workflowWithoutSteps, badSchemaWorkflow]) {
    const r = await api.PUT("/v1/workflows/{name}", { params: { path: { name: `${name}-bad` } }, body });
    check(r.response.status === 422 && r.error?.error.code === "InvalidField", "refused workflow", r.error);
  }
}

async function limits(): Promise<void> {
  for (const [i, body] of [rateLimit, concurrencyLimit].entries()) {
    const name = `ts-limit-${run}-${i}`;
    const r = await api.PUT("/v1/limits/{name}", { params: { path: { name } }, body });
    check(r.response.status === 201 && r.data?.scope === "tenant", "PUT limit", r.error);
    // a GET answer can be PUT back
    const back = await api.PUT("/v1/limits/{name}", { params: { path: { name } }, body: r.data });
    check(back.response.status === 200, "PUT limit back", back.error);
  }
  for (const body of refusedLimits) {
    const r = await api.PUT("/v1/limits/{name}", {
      params: { path: { name: `ts-limit-${run}-bad` } },
      body: body as LimitDefinition,
    });
    check(r.response.status === 422 && r.error?.error.code === "InvalidField", "refused limit", [body, r.error]);
  }
}

async function cancel(): Promise<void> {
  // a limit of one item an hour holds the job, so it is still running when canceled
  const limit = `ts-slow-${run}`;
  const put = await api.PUT("/v1/limits/{name}", {
    params: { path: { name: limit } },
    body: { rate: 1, per: "hour", burst: 1 },
  });
  check(put.response.status === 201, "slow limit", put.error);
  const wf = `ts-slow-${run}`;
  const w = await api.PUT("/v1/workflows/{name}", {
    params: { path: { name: wf } },
    body: { steps: [{ type: "noop" }], limits: [limit] },
  });
  check(w.response.status === 201, "slow workflow", w.error);
  const job = await api.POST("/v1/jobs", {
    body: { workflow: wf, items: [{ ref: "1" }, { ref: "2" }, { ref: "3" }] },
  });
  const id = monitor(job.data).id;
  const c = await api.POST("/v1/jobs/{id}:cancel", { params: { path: { id } } });
  check(c.response.status === 200 && c.data !== undefined, "cancel", c.error);
  const done = await waitDone(id);
  check(done.status === "Canceled" && done.counts.canceled >= 2, "canceled job", done);
  const again = await api.POST("/v1/jobs/{id}:cancel", { params: { path: { id } } });
  check(again.response.status === 200 && again.data?.status === "Canceled", "cancel a finished job", again.data);
}

async function hook(): Promise<void> {
  const secret = `whsec_${run}_0123456789abcdef`;
  const name = `ts-hook-${run}`;
  const def: HookDefinition = { workflow: "noop", secrets: [secret], refFrom: "id" };
  const put = await api.PUT("/v1/hooks/{name}", { params: { path: { name } }, body: def });
  check(put.response.status === 201 && put.data !== undefined, "PUT hook", put.error);
  const body = JSON.stringify([{ id: "h1" }, { id: "h2" }]);
  const t = Math.floor(Date.now() / 1000);
  const mac = createHmac("sha256", secret).update(`${t}.${body}`).digest("hex");
  // the sender's request: no API key, the signature instead
  const res = await fetch(put.data.eventsUrl, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Sluice-Signature": `t=${t},v1=${mac}` },
    body,
  });
  const job = (await res.json()) as JobMonitor;
  check(res.status === 202 && job.counts.total === 2, "hook event", job);
  const bad = await api.PUT("/v1/hooks/{name}", {
    params: { path: { name: `${name}-bad` } },
    body: hookWithoutRefFrom,
  });
  check(bad.response.status === 422, "refused hook", bad.error);
}

async function errors(): Promise<void> {
  const missing = await api.GET("/v1/jobs/{id}", { params: { path: { id: "job_doesnotexist" } } });
  check(missing.response.status === 404 && missing.error?.error.code === "NotFound", "404", missing.error);
  const unknown = await api.POST("/v1/jobs", { body: { workflow: `none-${run}`, items: [{ ref: "x" }] } });
  check(unknown.response.status === 422 && unknown.error?.error.code === "UnknownWorkflow", "422", unknown.error);
  const anon = createClient<paths>({ baseUrl });
  const r = await anon.GET("/v1/jobs");
  check(r.response.status === 401 && r.error?.error.code === "Unauthorized", "401", r.error);
}

try {
  await submitJson();
  await submitWaitAnswers200();
  await submitNdjson();
  await workflowWithSchema();
  await limits();
  await cancel();
  await hook();
  await errors();
} catch (e) {
  console.error("FAILED: " + (e instanceof Error ? e.message : String(e)));
  process.exit(1);
}
void operationLocationOn200;
void operationLocationOn202;
console.log(`generated client: ${checks} checks passed`);
