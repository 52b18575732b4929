// dashboard.test.mjs - drives the /ui/ dashboard in headless Chromium against a real
// sluice server. tests/api/test_ui_dashboard.py starts the server and runs this file:
//
//   SLUICE_URL=http://127.0.0.1:PORT SLUICE_KEY=... SLUICE_KEY_OTHER=... \
//   SCREENSHOT=build/ui/dashboard.png node tests/ui/dashboard.test.mjs
//
// The server must let http steps call loopback (--outbound-allow 127.0.0.1/32): the
// test's job pushes each item to a gate, a small upstream in this process that answers
// a set number of requests and then holds the rest until the test opens it. That makes
// "the job is part way" a state the test waits for, not a moment it must catch: no
// assertion depends on timing, and every wait is a bounded wait for a condition.
//
// Prints "ok - <step>" per step; on a failure, the step, the error, the page's console
// and a screenshot (next to SCREENSHOT, as *-failure.png), and exits 1.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.SLUICE_URL;
const KEY = process.env.SLUICE_KEY;
const KEY_OTHER = process.env.SLUICE_KEY_OTHER;
const SHOT = process.env.SCREENSHOT || 'build/ui/dashboard.png';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LONG = 240_000; // upper bound for waits on the server (a sanitizer build on 2 busy cores)
const N = 20_000;

if (!BASE || !KEY || !KEY_OTHER) {
  console.error('set SLUICE_URL, SLUICE_KEY and SLUICE_KEY_OTHER');
  process.exit(2);
}

// ---- the gate: a loopback upstream for the job's http step ------------------------------

const gate = {
  budget: 0, // requests still answered at once; Infinity = open
  held: [],
  answered: 0,
  open() {
    this.budget = Infinity;
    for (const fn of this.held.splice(0)) fn();
  },
  close(budget) {
    this.budget = budget;
  },
};
// Items whose index ends in 777 get a 422: they fail at the push step (UpstreamError).
const upstream = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const answer = () => {
      gate.answered++;
      const idx = Number((req.url.match(/\/push\/r(\d+)/) || [])[1]);
      const bad = idx % 1000 === 777;
      res.writeHead(bad ? 422 : 200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(bad ? { error: 'sku rejected by the shop' } : { ok: true, id: idx }));
    };
    if (gate.budget > 0) {
      gate.budget--;
      answer();
    } else {
      gate.held.push(answer);
    }
  });
});
upstream.keepAliveTimeout = 60_000;

// ---- API calls the test makes itself (the dashboard makes its own) ----------------------

async function api(method, p, { body, type = 'application/json', key = KEY } = {}) {
  const r = await fetch(BASE + p, {
    method,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': type },
    body,
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

function ndjson(n, from = 0) {
  let s = '';
  for (let i = from; i < from + n; i++) {
    s += JSON.stringify({ ref: `r${i}`, data: { sku: `S${i}`, price: i % 500 === 0 ? -1 : i, title: `Product ${i}` } }) + '\n';
  }
  return s;
}

// ---- steps --------------------------------------------------------------------------------

const consoleLines = [];
let page;
let browser;
let current = 'start';

async function step(name, fn) {
  current = name;
  await fn();
  console.log(`ok - ${name}`);
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

// Waits for cond() to hold, checking every 50 ms, for at most LONG.
async function until(cond, what) {
  const end = Date.now() + LONG;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function barOf(locator) {
  const bar = locator.locator('[role=progressbar]').first();
  return {
    done: Number(await bar.getAttribute('data-done')),
    total: Number(await bar.getAttribute('data-total')),
    text: await bar.getAttribute('aria-valuetext'),
  };
}

async function main() {
  await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const gateUrl = `http://127.0.0.1:${upstream.address().port}`;
  const wf = `uidemo-${Date.now().toString(36)}`;
  await api('PUT', `/v1/workflows/${wf}`, {
    body: JSON.stringify({
      steps: [
        { name: 'check', type: 'validate', schema: { type: 'object', required: ['sku', 'price'],
          properties: { price: { type: 'integer', minimum: 0 } } } },
        { name: 'save', type: 'upsert', collection: 'uidemo', refFrom: 'data.sku' },
        { name: 'push', type: 'http', method: 'POST', url: `${gateUrl}/push/{{ref}}`, timeoutMs: 300000,
          retry: { maxAttempts: 1 } },
      ],
    }),
  });

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(60_000);
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));

  await step('a wrong key shows a clear message', async () => {
    await page.goto(`${BASE}/ui/`);
    await page.getByLabel('API key').fill('slk_wrong_0123456789');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const msg = page.locator('#signin-error');
    await msg.waitFor({ state: 'visible' });
    const text = await msg.textContent();
    assert(/refused/.test(text) && /invalid or revoked API key/.test(text), `message: ${text}`);
    assert(await page.locator('#nav').isHidden(), 'navigation hidden before sign-in');
    assert((await page.locator('#key').getAttribute('aria-invalid')) === 'true', 'field marked invalid');
  });

  await step('sign in with a good key', async () => {
    await page.getByLabel('API key').fill(KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('table.jobs').waitFor();
    assert(await page.locator('#nav').isVisible(), 'navigation shown');
    const stored = await page.evaluate(() => [sessionStorage.getItem('sluice.apiKey'), localStorage.length]);
    assert(stored[0] === KEY && stored[1] === 0, 'key in sessionStorage only');
  });

  // Answer 8,000 pushes, then hold the rest: the job stops part way, deterministically.
  gate.close(8000);
  let job;
  await step('submit a 20,000-item job; the list shows it part way', async () => {
    job = await api('POST', `/v1/jobs?workflow=${wf}&clientReference=ui-test`, {
      body: ndjson(N), type: 'application/x-ndjson',
    });
    assert(job.counts.total === N, 'total');
    const row = page.locator(`tr[data-job="${job.id}"]`);
    await row.waitFor({ timeout: LONG });
    // the list refreshes by itself: wait for a row showing progress that is not done
    await page.waitForFunction((id) => {
      const bar = document.querySelector(`tr[data-job="${id}"] [role=progressbar]`);
      return bar && Number(bar.dataset.done) > 0 && Number(bar.dataset.done) < Number(bar.dataset.total);
    }, job.id, { timeout: LONG });
    const b = await barOf(row);
    assert(b.total === N && b.done > 0 && b.done < N, `list bar ${JSON.stringify(b)}`);
    assert((await row.getAttribute('data-status')) === 'Running', 'running');
    assert(/of 20,000 done/.test(await row.locator('.bar-text').textContent()), 'bar text');
  });

  let partial;
  await step('the job page shows the same progress, live', async () => {
    await page.locator(`tr[data-job="${job.id}"] th a`).click();
    await page.locator('.job-head[data-status]').waitFor();
    const b = await barOf(page.locator('#job-progress'));
    partial = b.done;
    assert(b.done > 0 && b.done < N, `job bar ${JSON.stringify(b)}`);
    assert(await page.locator('#cancel').isVisible(), 'cancel button while running');
    await until(() => gate.held.length > 0, 'the gate to hold requests');
    // while the job is held the chart keeps drawing (0 items/s): wait for a few points
    await page.waitForFunction(() => {
      const line = document.querySelector('.chart .line');
      return line && line.getAttribute('points').trim().split(' ').length >= 4;
    }, null, { timeout: LONG });
  });

  await step('open the gate: the progress bar advances to done', async () => {
    gate.open();
    await page.locator('.job-head[data-status="Succeeded"]').waitFor({ timeout: LONG });
    const b = await barOf(page.locator('#job-progress'));
    assert(b.done === N && b.total === N && partial < b.done, `final bar ${JSON.stringify(b)} after ${partial}`);
    const text = await page.locator('#job-progress .bar-text').textContent();
    assert(/20,000 of 20,000 done \(100%\)/.test(text) && /60 failed/.test(text), `text: ${text}`);
    // per-step funnel from the monitor
    for (const s of ['check', 'save', 'push']) await page.locator(`tr[data-step="${s}"]`).waitFor();
    const check = await page.locator('tr[data-step="check"] td').first().textContent();
    assert(check === '19,960', `check passed: ${check}`);
    // failures grouped by code (once the page has looked at all of them)
    await page.getByText('Error codes of all 60 failed items.').waitFor();
    assert(/40 items/.test(await page.locator('section.group[data-code="ValidationFailed"] .count').textContent()), 'validation count');
    assert(/20 items/.test(await page.locator('section.group[data-code="UpstreamError"] .count').textContent()), 'upstream count');
    await page.locator('.chart').waitFor();
    fs.mkdirSync(path.dirname(SHOT), { recursive: true });
    await page.screenshot({ path: SHOT, fullPage: true });
  });

  await step('download the results', async () => {
    const [dl] = await Promise.all([page.waitForEvent('download'), page.locator('#download').click()]);
    const file = await dl.path();
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    assert(lines.length === N, `result lines: ${lines.length}`);
    assert(dl.suggestedFilename() === `${job.id}-results.ndjson`, dl.suggestedFilename());
  });

  await step('open a failed item and read its error', async () => {
    await page.locator('section.group[data-code="ValidationFailed"] ul.examples a').first().click();
    await page.locator('#item-error-code').waitFor();
    assert((await page.locator('#item-error-code').textContent()) === 'ValidationFailed', 'code');
    const msg = await page.locator('#item-error-message').textContent();
    assert(/must be >= 0/.test(msg), `message: ${msg}`);
    const ev = page.locator('ol.timeline li[data-stage="step"]');
    assert((await ev.count()) === 1 && /check/.test(await ev.first().textContent()), 'check step event');
    // the upstream failure shows the HTTP exchange in the timeline
    await page.goBack();
    await page.locator('section.group[data-code="UpstreamError"] ul.examples a').first().click();
    await page.locator('#item-error-code').waitFor();
    assert((await page.locator('#item-error-code').textContent()) === 'UpstreamError', 'upstream code');
    const push = page.locator('ol.timeline li[data-stage="step"]').last();
    const pushText = await push.textContent();
    assert(/push/.test(pushText) && /HTTP 422/.test(pushText) && /POST http:\/\/127\.0\.0\.1/.test(pushText), pushText);
  });

  await step('an item links to the document it wrote', async () => {
    await page.evaluate((id) => { location.hash = `#/jobs/${id}/items/1`; }, job.id);
    await page.getByRole('link', { name: 'uidemo/S1' }).click();
    await page.getByRole('heading', { name: 'uidemo/S1' }).waitFor();
    assert(/"title": "Product 1"/.test(await page.locator('pre.json').textContent()), 'document data');
    await page.getByRole('link', { name: 'uidemo', exact: true }).click();
    await page.locator('table.docs tbody tr').first().waitFor();
    assert((await page.locator('table.docs tbody tr').count()) === 50, 'one page of 50 documents');
    assert(await page.locator('.pager a[rel=next]').isVisible(), 'next page link');
  });

  await step('cancel a running job', async () => {
    gate.close(0);
    const j2 = await api('POST', `/v1/jobs?workflow=${wf}&clientReference=ui-cancel`, {
      body: ndjson(3000, N), type: 'application/x-ndjson',
    });
    await page.evaluate((id) => { location.hash = `#/jobs/${id}`; }, j2.id);
    await page.locator('#cancel').click();
    await page.locator('#confirm-cancel').click();
    await page.locator('.job-head[data-status="Canceling"], .job-head[data-status="Canceled"]').waitFor({ timeout: LONG });
    gate.open(); // the items in flight finish; the job ends Canceled
    await page.locator('.job-head[data-status="Canceled"]').waitFor({ timeout: LONG });
    const b = await barOf(page.locator('#job-progress'));
    assert(/canceled/.test(b.text), `bar: ${b.text}`);
    const mon = await api('GET', `/v1/jobs/${j2.id}`);
    assert(mon.status === 'Canceled' && mon.counts.canceled > 0, JSON.stringify(mon.counts));
    // the list's status filter finds it
    await page.getByRole('link', { name: 'Jobs', exact: true }).first().click();
    await page.locator('table.jobs tbody tr[data-job]').first().waitFor();
    await page.locator('#status-filter').selectOption('Canceled');
    await page.waitForFunction((id) => {
      const rows = document.querySelectorAll('table.jobs tbody tr[data-job]');
      return location.hash === '#/jobs?status=Canceled' && rows.length === 1 && rows[0].dataset.job === id;
    }, j2.id);
  });

  await step('phase and throttling are shown when the monitor has them', async () => {
    // the monitor of main's processing limits ({"phase", "throughput": {"throttledBy": {...}}}),
    // routed to the page, as this branch's server does not report them yet
    const mon = await api('GET', `/v1/jobs/${job.id}`);
    const fake = { ...mon, id: 'job_fake', status: 'Running', phase: 'Throttled', completedAt: null,
      counts: { ...mon.counts, pending: 5000, succeeded: mon.counts.succeeded - 5000 },
      throughput: { itemsPerSecond: 12.5, throttledBy: { limit: 'shop-api', scope: 'tenant', key: 'shop-123',
        reason: 'rate', itemsPerSecond: 2.5, at: new Date().toISOString() } } };
    await page.route('**/v1/jobs/job_fake', (r) => r.fulfill({ json: fake }));
    await page.route('**/v1/jobs/job_fake/events', (r) => r.fulfill({
      contentType: 'text/event-stream', body: `event: progress\ndata: ${JSON.stringify(fake)}\n\n` }));
    await page.evaluate(() => { location.hash = '#/jobs/job_fake'; });
    await page.getByText('Throttled by limit shop-api (tenant: shop-123): rate limit, at most 2.5 items/s').waitFor();
    assert(/phase Throttled/.test(await page.locator('.job-head').textContent()), 'phase in the header');
    await page.evaluate(() => { location.hash = '#/jobs'; });
    await page.unroute('**/v1/jobs/job_fake');
    await page.unroute('**/v1/jobs/job_fake/events');
  });

  await step('another tenant sees none of these jobs', async () => {
    await page.locator('#signout').click();
    await page.getByLabel('API key').fill(KEY_OTHER);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('td.empty').waitFor();
    assert((await page.locator(`tr[data-job="${job.id}"]`).count()) === 0, 'isolated');
    await page.evaluate((id) => { location.hash = `#/jobs/${id}`; }, job.id);
    await page.locator('[role=alert]').waitFor();
    assert(/NotFound/.test(await page.locator('[role=alert]').textContent()), 'job of another tenant: 404');
  });

  await step('no script errors and no CSP violations', async () => {
    const bad = consoleLines.filter((l) =>
      /^(pageerror|error)/.test(l) && !/Failed to load resource: the server responded with a status of (401|404)/.test(l));
    assert(bad.length === 0, bad.join('\n'));
  });
}

try {
  await main();
  console.log('dashboard: all steps passed');
  await browser.close();
  upstream.close();
  process.exit(0);
} catch (e) {
  console.log(`not ok - ${current}\n${e.stack || e}`);
  console.log('page console:\n  ' + consoleLines.slice(-40).join('\n  '));
  if (page) {
    const fail = SHOT.replace(/\.png$/, '') + '-failure.png';
    try {
      fs.mkdirSync(path.dirname(fail), { recursive: true });
      await page.screenshot({ path: fail, fullPage: true });
      console.log(`screenshot of the failure: ${fail} (at ${page.url()})`);
    } catch (_) { /* the page may be gone */ }
  }
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
