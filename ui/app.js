// app.js - the sluice dashboard: sign-in, hash routes and the views.
//
// Routes (location.hash):
//   #/jobs[?status=S&cursor=N]                 the tenant's jobs, newest first, paged
//   #/jobs/{id}                                one job: progress, throughput, steps, failures
//   #/jobs/{id}/items[?status=&code=&step=&cursor=]  the job's items, paged and filtered
//   #/jobs/{id}/items/{index}                  one item: input, result, error, event timeline
//   #/docs                                     pick a collection
//   #/docs/{collection}[?after=R]              its documents, paged
//   #/docs/{collection}/{ref}                  one document
//
// Everything shown comes from /v1 with the user's key: list pages are keyset pages of
// the API (never all items), and counts come from the server's job monitor. Each view
// gets an AbortSignal that fires when the user navigates away, which stops its fetches,
// its event stream and its timers.

import {
  ApiError, call, clearKey, followEvents, getKey, localPath, setKey, setUnauthorizedHandler,
} from './api.js';
import {
  TERMINAL, ago, countsText, defs, duration, fill, h, jsonBlock, num, pct, progressBar, rate,
  statusBadge, throughputChart, time,
} from './dom.js';

const JOB_STATUSES = ['NotStarted', 'Running', 'Canceling', 'Succeeded', 'Failed', 'Canceled'];
const ITEM_STATUSES = ['Pending', 'Processing', 'Succeeded', 'Failed', 'Skipped', 'Canceled'];
const LIST_POLL_MS = 2000;
const FAILURE_SAMPLE = 100;

const main = document.getElementById('main');
const flash = document.getElementById('flash');
let view = null; // {abort: AbortController}
let signInNote = null; // {text, error}: why the user is back at the sign-in form

// ---- small helpers ----------------------------------------------------------------

function enc(s) {
  return encodeURIComponent(s);
}

function jobHref(id) {
  return `#/jobs/${enc(id)}`;
}

function itemHref(id, index) {
  return `#/jobs/${enc(id)}/items/${index}`;
}

function docHref(collection, ref) {
  return ref === undefined ? `#/docs/${enc(collection)}` : `#/docs/${enc(collection)}/${enc(ref)}`;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

function plural(n, word) {
  return `${num(n)} ${word}${n === 1 ? '' : 's'}`;
}

function errorText(e) {
  if (e instanceof ApiError) {
    if (e.status === 0) return `Cannot reach the server: ${e.message}.`;
    return `${e.code}: ${e.message}${e.target ? ` (${e.target})` : ''}`;
  }
  return String(e && e.message ? e.message : e);
}

function errorBox(e) {
  return h('div', { class: 'error', role: 'alert' }, errorText(e));
}

function say(text) {
  flash.textContent = text;
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

// Waits while the tab is hidden: live views stop asking the server meanwhile.
function whenVisible(signal) {
  if (!document.hidden) return Promise.resolve();
  return new Promise((resolve) => {
    const go = () => { document.removeEventListener('visibilitychange', go); resolve(); };
    document.addEventListener('visibilitychange', go);
    signal.addEventListener('abort', go, { once: true });
  });
}

function isAbort(e) {
  return e && e.name === 'AbortError';
}

function title(text, ...extra) {
  document.title = `${text} · sluice`;
  return h('h1', { tabindex: '-1' }, text, ...extra);
}

function crumbs(...parts) {
  const items = parts.map((p, i) =>
    h('li', null, i < parts.length - 1 ? h('a', { href: p[1] }, p[0]) : h('span', { 'aria-current': 'page' }, p[0])));
  return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('ol', null, items));
}

// Pager for keyset pages: "First page" when not on it, "Next page" when nextLink.
function pager(isFirst, firstHref, nextHref) {
  if (isFirst && !nextHref) return null;
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    isFirst ? null : h('a', { href: firstHref }, '« First page'),
    nextHref ? h('a', { href: nextHref, rel: 'next' }, 'Next page ›') : null);
}

function doneOf(c) {
  return c.total - c.pending - c.processing;
}

// Items/s: the server's current window rate while the job runs; once it ended, the
// average over the run (the last window says little about a finished job).
function jobRate(j) {
  if (TERMINAL.has(j.status)) {
    if (!j.startedAt || !j.completedAt) return null;
    const ms = Date.parse(j.completedAt) - Date.parse(j.startedAt);
    return ms > 0 ? (1000 * doneOf(j.counts)) / ms : null;
  }
  return j.throughput ? j.throughput.itemsPerSecond : null;
}

function eta(j) {
  if (TERMINAL.has(j.status)) return '—';
  if (j.status === 'NotStarted') return 'queued';
  if (!j.estimatedCompletionAt) return '—';
  return `in ${duration(Date.parse(j.estimatedCompletionAt) - Date.now())}`;
}

// ---- sign-in ----------------------------------------------------------------------

function renderSignIn() {
  document.title = 'Sign in · sluice';
  const input = h('input', {
    id: 'key', name: 'key', type: 'password', required: true, autocomplete: 'off', spellcheck: 'false',
    'aria-describedby': 'key-help',
  });
  const note = signInNote && !signInNote.error ? h('p', { class: 'note', role: 'status' }, signInNote.text) : null;
  const msg = h('div', { id: 'signin-error', class: 'error', role: 'alert', hidden: !(signInNote && signInNote.error) },
    signInNote && signInNote.error ? signInNote.text : '');
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'signin', novalidate: true },
    h('h1', { tabindex: '-1' }, 'Sign in'), note,
    h('p', { id: 'key-help' },
      'Enter an API key (created with ', h('code', null, 'sluice keys create --tenant NAME'),
      '). It stays in this browser tab only and is sent with each request to this server.'),
    h('label', { for: 'key' }, 'API key'), input, button, msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    if (!key) {
      fill(msg, 'Enter an API key.');
      msg.hidden = false;
      input.focus();
      return;
    }
    button.disabled = true;
    fill(msg);
    msg.hidden = true;
    try {
      await call('/v1/jobs?limit=1', { key });
      setKey(key);
      signInNote = null;
      signedIn();
      route();
    } catch (e) {
      let text;
      if (e.status === 401) text = `This API key was refused: ${e.message}. Check the key and try again.`;
      else if (e.status === 429) text = `Too many attempts: ${e.message}.`;
      else text = `Could not sign in. ${errorText(e)}`;
      fill(msg, text);
      msg.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      input.select();
    } finally {
      button.disabled = false;
    }
  });
  fill(main, form);
  input.focus();
}

function signedIn() {
  const key = getKey();
  const who = document.getElementById('who');
  const out = document.getElementById('signout');
  if (key) {
    fill(who, 'Key ', h('code', null, key.slice(0, 12) + '…'));
    out.hidden = false;
  } else {
    fill(who);
    out.hidden = true;
  }
  document.getElementById('nav').hidden = !key;
}

function signOut(text, error) {
  clearKey();
  signInNote = text ? { text, error: !!error } : null;
  signedIn();
  route();
}

// ---- jobs list ----------------------------------------------------------------------

function jobRow(j) {
  const tr = h('tr', { 'data-job': j.id, 'data-status': j.status });
  updateJobRow(tr, j);
  return tr;
}

function updateJobRow(tr, j) {
  tr.setAttribute('data-status', j.status);
  fill(tr,
    h('th', { scope: 'row' }, h('a', { href: jobHref(j.id) }, h('code', null, j.id))),
    h('td', null, statusBadge(j.status),
      // only a phase that says more than the status (Throttled, or one added later)
      j.phase && !['Queued', 'Processing', 'Canceling', 'Completed'].includes(j.phase)
        ? h('span', { class: 'phase' }, j.phase) : null),
    h('td', null, j.workflow),
    h('td', null, j.clientReference || '—'),
    h('td', { class: 'col-progress' }, progressBar(j.counts)),
    h('td', { class: 'num' }, rate(jobRate(j))),
    h('td', null, eta(j)),
    h('td', null, time(j.createdAt, ago(j.createdAt))));
}

async function viewJobs(params, signal) {
  const status = params.get('status') || '';
  const cursor = params.get('cursor') || '';
  const select = h('select', { id: 'status-filter' },
    h('option', { value: '' }, 'All'),
    JOB_STATUSES.map((s) => h('option', { value: s, selected: s === status }, s)));
  select.addEventListener('change', () => { location.hash = `#/jobs${query({ status: select.value })}`; });
  const tbody = h('tbody');
  const table = h('table', { class: 'jobs' },
    h('caption', { class: 'sr-only' }, 'Jobs, newest first'),
    h('thead', null, h('tr', null,
      ['Job', 'Status', 'Workflow', 'Client reference', 'Progress', 'Items/s', 'ETA', 'Age'].map((c) =>
        h('th', { scope: 'col', class: c === 'Items/s' ? 'num' : null }, c)))),
    tbody);
  const note = h('p', { class: 'muted live' });
  const pagerSlot = h('div');
  const errSlot = h('div');
  fill(main,
    title('Jobs'),
    h('div', { class: 'toolbar' },
      h('label', { for: 'status-filter' }, 'Status '), select, note),
    errSlot,
    h('div', { class: 'table-wrap' }, table),
    pagerSlot);

  const rows = new Map();
  for (;;) {
    try {
      const page = await call(`/v1/jobs${query({ status, cursor, limit: 25 })}`, { signal });
      fill(errSlot);
      const seen = new Set();
      page.value.forEach((j, i) => {
        seen.add(j.id);
        let tr = rows.get(j.id);
        if (tr) updateJobRow(tr, j);
        else rows.set(j.id, (tr = jobRow(j)));
        if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
      });
      for (const [id, tr] of rows) if (!seen.has(id)) { tr.remove(); rows.delete(id); }
      if (!page.value.length) {
        fill(tbody, h('tr', null, h('td', { colspan: 8, class: 'empty' },
          status ? `No ${status} jobs.` : 'No jobs yet. Submit one with POST /v1/jobs (see the README).')));
        rows.clear();
      }
      const next = page.nextLink
        ? `#/jobs${query({ status, cursor: new URL(page.nextLink).searchParams.get('cursor') })}` : null;
      fill(pagerSlot, pager(!cursor, `#/jobs${query({ status })}`, next));
      fill(note, `Updated ${new Date().toLocaleTimeString()}; refreshes every ${LIST_POLL_MS / 1000} s.`);
    } catch (e) {
      if (isAbort(e)) return;
      fill(errSlot, errorBox(e));
      if (e.status === 401) return;
      if (e.retryAfter) await sleep(1000 * e.retryAfter, signal);
    }
    await sleep(LIST_POLL_MS, signal);
    await whenVisible(signal);
    if (signal.aborted) return;
  }
}

// ---- one job ------------------------------------------------------------------------

// Snapshots per job while this tab is open: {t (ms), done} pairs feed the chart.
const snapshots = new Map();

function addSnapshot(j) {
  let s = snapshots.get(j.id);
  if (!s) {
    s = [];
    snapshots.set(j.id, s);
    // the first point: nothing done when the job started, so the first rate shown is
    // the average since the start
    if (j.startedAt) s.push({ t: Date.parse(j.startedAt), done: 0 });
    s.endedBeforeView = TERMINAL.has(j.status);
  }
  const terminal = TERMINAL.has(j.status);
  const t = terminal && j.completedAt ? Date.parse(j.completedAt) : Date.now();
  const done = doneOf(j.counts);
  const last = s[s.length - 1];
  if (last && last.final) return s;
  // rates over less than a second are mostly noise (an event right after the first GET)
  if (last && !terminal && t - last.t < 800) return s;
  if (last && t <= last.t) {
    if (terminal) Object.assign(last, { done, final: true });
    return s;
  }
  s.push({ t, done, final: terminal });
  if (s.length > 600) s.splice(0, s.length - 600);
  return s;
}

function rateSamples(s) {
  const out = [];
  for (let i = 1; i < s.length; i++) {
    const dt = s[i].t - s[i - 1].t;
    if (dt > 0) out.push({ t: s[i].t, r: (1000 * (s[i].done - s[i - 1].done)) / dt });
  }
  if (out.length === 1) out.unshift({ t: s[0].t, r: out[0].r });
  return out;
}

function stepsFunnel(j) {
  if (!j.steps || !j.steps.length) return h('p', { class: 'muted' }, 'This workflow reports no per-step counts.');
  const total = Math.max(1, j.counts.total);
  return h('table', { class: 'funnel' },
    h('caption', { class: 'sr-only' }, 'Items through each step'),
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, 'Step'),
      h('th', { scope: 'col', class: 'num' }, 'Passed'),
      h('th', { scope: 'col', class: 'num' }, 'Failed'),
      h('th', { scope: 'col', class: 'num' }, 'Skipped'),
      h('th', { scope: 'col', class: 'col-progress' }, 'Share of all items'))),
    h('tbody', null, j.steps.map((s) => {
      const bar = h('div', { class: 'bar', 'aria-hidden': 'true' });
      for (const [k, cls] of [['passed', 'succeeded'], ['failed', 'failed'], ['skipped', 'skipped']]) {
        if (!s[k]) continue;
        const seg = h('span', { class: `seg ${cls}` });
        seg.style.width = `${(100 * s[k]) / total}%`;
        bar.append(seg);
      }
      const reached = s.passed + s.failed + s.skipped;
      return h('tr', { 'data-step': s.name },
        h('th', { scope: 'row' }, s.name),
        h('td', { class: 'num' }, num(s.passed)),
        h('td', { class: 'num' }, s.failed
          ? h('a', { href: `#/jobs/${enc(j.id)}/items${query({ status: 'Failed', step: s.name })}` }, num(s.failed))
          : '0'),
        h('td', { class: 'num' }, num(s.skipped)),
        h('td', { class: 'col-progress' }, h('div', { class: 'progress' }, bar,
          h('span', { class: 'bar-text' }, `${pct(reached, j.counts.total)} reached this step`))));
    })));
}

// throughput.throttledBy is {limit, scope, key, reason, itemsPerSecond, at} (a plain
// string is accepted too). Reasons: rate, concurrency, upstream (a Retry-After).
function throttleText(j) {
  const t = j.throughput || {};
  const by = t.throttledBy;
  if (by && typeof by === 'object') {
    const why = { rate: 'rate limit', concurrency: 'concurrency limit', upstream: 'upstream asked to wait (Retry-After)' }[by.reason] || by.reason;
    return [
      `Throttled by limit ${by.limit || '?'}`,
      by.scope || by.key ? ` (${[by.scope, by.key].filter(Boolean).join(': ')})` : '',
      why ? `: ${why}` : '',
      by.itemsPerSecond ? `, at most ${rate(by.itemsPerSecond)} items/s` : '',
      by.at ? `, last held back ${ago(by.at)}` : '',
    ].join('');
  }
  if (by) return `Throttled by ${by}`;
  if (j.phase === 'Throttled') return 'Throttled';
  if (TERMINAL.has(j.status)) return '—';
  if ('throttledBy' in t || 'phase' in j) return 'Not throttled';
  return 'Not reported by this server';
}

// Failed items grouped by error code, from the first page(s) of failures: the API has
// no per-code totals, so the groups say how many of the items looked at carry the code.
function failuresSection(job, signal) {
  const box = h('div', { 'aria-live': 'polite' });
  const state = { seen: 0, groups: new Map(), next: null, loadedFor: -1, busy: false, again: false, at: 0 };

  async function load(more) {
    if (state.busy) {
      if (!more) state.again = true; // the counts moved meanwhile: look again after this
      return;
    }
    state.busy = true;
    state.at = Date.now();
    try {
      const path = more && state.next
        ? localPath(state.next)
        : `/v1/jobs/${enc(job.id)}/items${query({ status: 'Failed', limit: FAILURE_SAMPLE })}`;
      const page = await call(path, { signal });
      if (!more) { state.groups.clear(); state.seen = 0; }
      for (const it of page.value) {
        const code = (it.error && it.error.code) || 'Unknown';
        let g = state.groups.get(code);
        if (!g) state.groups.set(code, (g = { n: 0, examples: [] }));
        g.n++;
        if (g.examples.length < 3) g.examples.push(it);
      }
      state.seen += page.value.length;
      state.next = page.nextLink || null;
      render();
    } catch (e) {
      if (!isAbort(e)) fill(box, errorBox(e));
    } finally {
      state.busy = false;
      if (state.again && !signal.aborted) {
        state.again = false;
        load(false);
      }
    }
  }

  function render() {
    const groups = [...state.groups.entries()].sort((a, b) => b[1].n - a[1].n);
    if (!groups.length) {
      fill(box, h('p', { class: 'muted' }, 'No failed items.'));
      return;
    }
    fill(box,
      h('p', { class: 'muted' }, state.next
        ? `Error codes among the first ${num(state.seen)} of ${num(job.counts.failed)} failed items.`
        : TERMINAL.has(job.status) && state.seen === job.counts.failed
          ? `Error codes of all ${num(state.seen)} failed items.`
          : `Error codes of the ${num(state.seen)} items that had failed at the last look (refreshed every few seconds).`),
      h('div', { class: 'groups' }, groups.map(([code, g]) => h('section', { class: 'group', 'data-code': code },
        h('h3', null, h('code', null, code), ' ',
          h('span', { class: 'count' }, state.next ? `${num(g.n)} of ${num(state.seen)} seen` : plural(g.n, 'item'))),
        h('ul', { class: 'examples' }, g.examples.map((it) => h('li', null,
          h('a', { href: itemHref(job.id, it.index) }, `Item ${it.index}`),
          it.ref ? [' ', h('code', null, it.ref)] : null,
          it.failedStep ? h('span', { class: 'muted' }, ` at ${it.failedStep}`) : null,
          h('div', { class: 'msg' }, it.error ? it.error.message : '')))),
        h('a', { href: `#/jobs/${enc(job.id)}/items${query({ status: 'Failed', code })}` },
          `All failed items with ${code} ›`)))),
      state.next ? h('button', { type: 'button', class: 'secondary', onclick: () => load(true) },
        `Look at ${FAILURE_SAMPLE} more failures`) : null);
  }

  // Reloads the sample when the failed count moved: at once when the job ended, at
  // most every 5 s while it runs.
  function update(j) {
    const ended = TERMINAL.has(j.status) && !TERMINAL.has(job.status);
    job = j;
    const failed = j.counts.failed;
    if (failed === state.loadedFor) {
      if (ended && !state.busy) render();
      return;
    }
    if (!TERMINAL.has(j.status) && Date.now() - state.at < 5000) return;
    state.loadedFor = failed;
    if (!failed) {
      state.groups.clear();
      state.seen = 0;
      state.next = null;
      render();
      return;
    }
    load(false);
  }
  return { box, update };
}

async function viewJob(id, signal) {
  const head = h('div', { class: 'job-head' });
  const actions = h('div', { class: 'actions' });
  const actionMsg = h('p', { class: 'action-msg', role: 'status' });
  const progress = h('div', { id: 'job-progress' });
  const counts = h('div');
  const details = h('div');
  const tput = h('div');
  const chart = h('div', { class: 'chart-box' });
  const steps = h('div');
  const errSlot = h('div');
  const liveNote = h('p', { class: 'muted live' });
  const failures = failuresSection({ id, counts: { failed: 0 } }, signal);
  fill(main,
    crumbs(['Jobs', '#/jobs'], [id, jobHref(id)]),
    head, actions, actionMsg, errSlot,
    h('section', { 'aria-labelledby': 'h-progress' }, h('h2', { id: 'h-progress' }, 'Progress'), progress, counts, liveNote),
    h('div', { class: 'cols' },
      h('section', { 'aria-labelledby': 'h-tput' }, h('h2', { id: 'h-tput' }, 'Throughput'), tput, chart),
      h('section', { 'aria-labelledby': 'h-details' }, h('h2', { id: 'h-details' }, 'Details'), details)),
    h('section', { 'aria-labelledby': 'h-steps' }, h('h2', { id: 'h-steps' }, 'Steps'), steps),
    h('section', { 'aria-labelledby': 'h-fail' }, h('h2', { id: 'h-fail' }, 'Failed items by error code'), failures.box),
    h('p', null, h('a', { href: `#/jobs/${enc(id)}/items` }, 'Browse all items of this job ›')));

  let job = null;
  let confirming = false;

  function renderActions() {
    const j = job;
    const btns = [];
    if (!TERMINAL.has(j.status) && j.status !== 'Canceling') {
      if (confirming) {
        btns.push(h('span', { class: 'confirm' }, 'Cancel this job? Items not yet processed will not run. ',
          h('button', { type: 'button', class: 'danger', id: 'confirm-cancel', onclick: doCancel }, 'Yes, cancel the job'),
          ' ',
          h('button', { type: 'button', class: 'secondary', onclick: () => { confirming = false; renderActions(); } }, 'Keep it running')));
      } else {
        btns.push(h('button', { type: 'button', class: 'danger', id: 'cancel', onclick: () => {
          confirming = true; renderActions(); document.getElementById('confirm-cancel').focus();
        } }, 'Cancel job…'));
      }
    }
    if (TERMINAL.has(j.status) && j.counts.failed > 0) {
      btns.push(h('button', { type: 'button', id: 'retry', onclick: doRetry },
        `Retry ${plural(j.counts.failed, 'failed item')}`));
    }
    btns.push(h('button', { type: 'button', class: 'secondary', id: 'download', onclick: doDownload },
      TERMINAL.has(j.status) ? 'Download results (NDJSON)' : 'Download results so far (NDJSON)'));
    fill(actions, btns);
  }

  async function doCancel() {
    confirming = false;
    fill(actionMsg, 'Canceling…');
    try {
      show(await call(`/v1/jobs/${enc(id)}:cancel`, { method: 'POST', signal }));
      fill(actionMsg, 'Cancel requested: items already in flight finish, the rest are canceled.');
    } catch (e) {
      if (!isAbort(e)) fill(actionMsg, errorBox(e));
    }
  }

  async function doRetry() {
    fill(actionMsg, 'Starting a retry job…');
    try {
      const nj = await call(`/v1/jobs/${enc(id)}:retry`, { method: 'POST', signal });
      say(`Retry job ${nj.id} started with ${num(nj.counts.total)} items.`);
      location.hash = jobHref(nj.id);
    } catch (e) {
      if (!isAbort(e)) fill(actionMsg, errorBox(e));
    }
  }

  async function doDownload() {
    fill(actionMsg, 'Downloading results…');
    try {
      // the results need the key, so a plain link cannot fetch them: fetch, then save
      // the blob (held in memory: fine for the sizes a browser tab copes with)
      const r = await call(`/v1/jobs/${enc(id)}/results`, { raw: true, signal });
      const blob = await r.blob();
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: `${id}-results.ndjson` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      fill(actionMsg, `Saved ${id}-results.ndjson (${num(blob.size)} bytes).`);
    } catch (e) {
      if (!isAbort(e)) fill(actionMsg, errorBox(e));
    }
  }

  function show(j) {
    const first = !job;
    job = j;
    const c = j.counts;
    fill(head,
      title(`Job ${j.id}`),
      h('p', { class: 'job-status' }, statusBadge(j.status),
        j.outcome ? h('span', { class: 'outcome' }, j.outcome) : null,
        j.phase ? h('span', { class: 'phase' }, `phase ${j.phase}`) : null,
        j.error ? h('span', { class: 'job-error' }, `${j.error.code}: ${j.error.message}`) : null));
    if (first) head.querySelector('h1').focus();
    head.setAttribute('data-status', j.status);
    renderActions();
    fill(progress, progressBar(c, { big: true }));
    fill(counts, defs([
      ['Total', num(c.total)], ['Pending', num(c.pending)], ['Processing', num(c.processing)],
      ['Succeeded', num(c.succeeded)], ['Failed', num(c.failed)], ['Skipped', num(c.skipped)],
      ['Canceled', num(c.canceled)]], 'counts'));
    const t = j.throughput || {};
    fill(tput, defs([
      [TERMINAL.has(j.status) ? 'Average rate' : 'Rate now', `${rate(jobRate(j))} items/s`],
      ['ETA', eta(j)],
      j.phase ? ['Phase', j.phase] : null,
      ['Throttling', throttleText(j)],
      t.limitItemsPerMinute ? ['Limit', `${num(t.limitItemsPerMinute)} items/min`] : null,
    ]));
    drawChart(addSnapshot(j));
    fill(details, defs([
      ['Workflow', j.workflowVersion ? `${j.workflow} (version ${j.workflowVersion})` : j.workflow],
      ['Client reference', j.clientReference || '—'],
      ['Priority', String(j.priority ?? 0)],
      j.parentJob ? ['Retry of', h('a', { href: jobHref(j.parentJob) }, h('code', null, j.parentJob))] : null,
      ['Created', time(j.createdAt)],
      ['Started', time(j.startedAt)],
      ['Last progress', time(j.lastProgressAt)],
      ['Completed', time(j.completedAt)],
      j.expiresAt ? ['Kept until', time(j.expiresAt)] : null,
    ]));
    fill(steps, stepsFunnel(j));
    failures.update(j);
  }

  function drawChart(snaps) {
    fill(chart, h('h3', { class: 'sr-only' }, 'Throughput over time'),
      snaps.endedBeforeView
        ? h('p', { class: 'muted small' }, 'The chart draws the updates this page receives while a job runs; this job had already ended.')
        : [throughputChart(rateSamples(snaps)),
          h('p', { class: 'muted small' }, 'Items finished per second, measured from the updates this page received.')]);
  }

  async function refresh() {
    show(await call(`/v1/jobs/${enc(id)}`, { signal }));
  }

  try {
    await refresh();
  } catch (e) {
    if (isAbort(e)) return;
    fill(main, crumbs(['Jobs', '#/jobs'], [id, jobHref(id)]), title(`Job ${id}`), errorBox(e));
    return;
  }

  // Live: the event stream while the job runs (reconnecting after the server's 5-minute
  // limit); a plain poll every 2 s if the stream cannot be read.
  // The stream is quiet while nothing changes: a stalled job still gets a point (the
  // same count, so 0 items/s) every 2 s, so a stall shows in the chart.
  const tick = setInterval(() => {
    if (!job || TERMINAL.has(job.status) || document.hidden) return;
    const s = snapshots.get(job.id);
    if (s && s.length && Date.now() - s[s.length - 1].t >= 2000) drawChart(addSnapshot(job));
  }, 500);
  signal.addEventListener('abort', () => clearInterval(tick), { once: true });
  let streamFailures = 0;
  while (!signal.aborted && !TERMINAL.has(job.status)) {
    fill(liveNote, 'Live: updates as the server reports progress.');
    try {
      if (streamFailures < 3) {
        const opened = Date.now();
        await followEvents(`/v1/jobs/${enc(id)}/events`, (type, data) => {
          if (type === 'progress' || type.startsWith('job.')) show(data);
        }, signal);
        streamFailures = 0;
        // a stream cut short (a proxy, a restart) is not a reason to hammer the server
        if (Date.now() - opened < 2000) await sleep(2000, signal);
      } else {
        await sleep(2000, signal);
        await whenVisible(signal);
      }
      if (!signal.aborted) await refresh();
      fill(errSlot);
    } catch (e) {
      if (isAbort(e)) return;
      fill(errSlot, errorBox(e));
      if (e.status === 401 || e.status === 404) return;
      streamFailures++;
      await sleep(e.retryAfter ? 1000 * e.retryAfter : 2000, signal);
    }
  }
  clearInterval(tick);
  if (job && TERMINAL.has(job.status)) fill(liveNote, `Finished ${ago(job.completedAt)}.`);
}

// ---- a job's items --------------------------------------------------------------------

async function viewItems(id, params, signal) {
  const f = {
    status: params.get('status') || '',
    code: params.get('code') || '',
    step: params.get('step') || '',
    ref: params.get('ref') || '',
  };
  const cursor = params.get('cursor') || '';
  const statusSel = h('select', { id: 'f-status', name: 'status' }, h('option', { value: '' }, 'All'),
    ITEM_STATUSES.map((s) => h('option', { value: s, selected: s === f.status }, s)));
  const code = h('input', { id: 'f-code', name: 'code', value: f.code, size: 18 });
  const step = h('input', { id: 'f-step', name: 'step', value: f.step, size: 12 });
  const ref = h('input', { id: 'f-ref', name: 'ref', value: f.ref, size: 14 });
  const form = h('form', { class: 'toolbar filters' },
    h('label', { for: 'f-status' }, 'Status'), statusSel,
    h('label', { for: 'f-code' }, 'Error code'), code,
    h('label', { for: 'f-step' }, 'Step'), step,
    h('label', { for: 'f-ref' }, 'Ref'), ref,
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = `#/jobs/${enc(id)}/items${query({ status: statusSel.value, code: code.value.trim(), step: step.value.trim(), ref: ref.value.trim() })}`;
  });
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  fill(main, crumbs(['Jobs', '#/jobs'], [id, jobHref(id)], ['Items', `#/jobs/${enc(id)}/items`]),
    title('Items'), form, body);
  try {
    const page = await call(`/v1/jobs/${enc(id)}/items${query({ ...f, cursor, limit: 50 })}`, { signal });
    const rows = page.value.map((it) => h('tr', { 'data-index': it.index },
      h('th', { scope: 'row', class: 'num' }, h('a', { href: itemHref(id, it.index) }, String(it.index))),
      h('td', null, h('code', null, it.ref)),
      h('td', null, statusBadge(it.status)),
      h('td', { class: 'num' }, num(it.attempts)),
      h('td', null, it.failedStep || '—'),
      h('td', null, it.error ? h('code', null, it.error.code) : '—'),
      h('td', { class: 'msg' }, it.error ? it.error.message : '')));
    const next = page.nextLink
      ? `#/jobs/${enc(id)}/items${query({ ...f, cursor: new URL(page.nextLink).searchParams.get('cursor') })}` : null;
    fill(body,
      rows.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'items' },
        h('thead', null, h('tr', null, ['Index', 'Ref', 'Status', 'Attempts', 'Failed step', 'Error', 'Message']
          .map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, rows))) : h('p', { class: 'empty' }, 'No items match.'),
      pager(!cursor, `#/jobs/${enc(id)}/items${query(f)}`, next));
  } catch (e) {
    if (!isAbort(e)) fill(body, errorBox(e));
  }
}

// ---- one item ----------------------------------------------------------------------------

// Documents an item touched: result.steps.<name> = {collection, ref, op}, and for the
// built-in one-step workflows C.upsert / C.patch / C.delete the item's own ref.
function itemDocs(it, workflow) {
  const out = [];
  const steps = it.result && it.result.steps;
  if (steps && typeof steps === 'object') {
    for (const [name, v] of Object.entries(steps)) {
      if (v && typeof v === 'object' && typeof v.collection === 'string' && typeof v.ref === 'string')
        out.push({ step: name, collection: v.collection, ref: v.ref, op: v.op });
    }
  }
  const m = /^([A-Za-z0-9_-]+)\.(upsert|patch|delete)$/.exec(workflow || '');
  if (!out.length && m && it.status === 'Succeeded') out.push({ step: m[2], collection: m[1], ref: it.ref, op: m[2] });
  return out;
}

function eventEntry(ev, t0) {
  const at = Date.parse(ev.at);
  const what = ev.stage === 'step'
    ? [h('strong', null, ev.step), ev.type ? h('span', { class: 'muted' }, ` (${ev.type})`) : null]
    : [h('strong', null, ev.stage), ev.step ? h('span', { class: 'muted' }, ` (${ev.step})`) : null];
  const outcome = ev.outcome || ev.level;
  const facts = [
    ev.attempt ? `attempt ${ev.attempt}` : null,
    ev.durationMs !== undefined ? `${num(ev.durationMs)} ms` : null,
  ].filter(Boolean).join(' · ');
  return h('li', { class: `event lvl-${ev.level || 'info'}`, 'data-stage': ev.stage },
    h('div', { class: 'when' }, time(ev.at, Number.isFinite(at) && Number.isFinite(t0) ? `+${num(at - t0)} ms` : ev.at)),
    h('div', { class: 'what' },
      what, ' ', outcome ? h('span', { class: `badge out-${outcome}` }, outcome) : null,
      facts ? h('span', { class: 'muted' }, ` ${facts}`) : null,
      ev.code || ev.message ? h('div', null, ev.code ? h('code', null, ev.code) : null, ev.message ? ` ${ev.message}` : '') : null,
      ev.method || ev.url ? h('div', { class: 'http' },
        h('code', null, `${ev.method || ''} ${ev.url || ''}`),
        ev.status !== undefined ? [' → ', h('strong', null, `HTTP ${ev.status}`)] : null,
        ev.latencyMs !== undefined ? h('span', { class: 'muted' }, ` in ${num(ev.latencyMs)} ms`) : null,
        ev.attempts > 1 ? h('span', { class: 'muted' },
          ` (last of ${ev.attempts} tries${ev.totalMs !== undefined ? `, ${num(ev.totalMs)} ms in all` : ''})`) : null) : null,
      Array.isArray(ev.violations) && ev.violations.length ? h('ul', { class: 'violations' },
        ev.violations.map((v) => h('li', null, h('code', null, v.pointer || '/'), ` ${v.message || v.keyword || ''}`))) : null));
}

async function viewItem(id, index, signal) {
  const nav = crumbs(['Jobs', '#/jobs'], [id, jobHref(id)], ['Items', `#/jobs/${enc(id)}/items`], [`Item ${index}`, itemHref(id, index)]);
  fill(main, nav, title(`Item ${index}`), h('p', { class: 'muted' }, 'Loading…'));
  let it;
  let job = null;
  try {
    [it, job] = await Promise.all([
      call(`/v1/jobs/${enc(id)}/items/${enc(index)}`, { signal }),
      call(`/v1/jobs/${enc(id)}`, { signal }).catch(() => null),
    ]);
  } catch (e) {
    if (!isAbort(e)) fill(main, nav, title(`Item ${index}`), errorBox(e));
    return;
  }
  const docs = itemDocs(it, job && job.workflow);
  for (const d of docs) rememberCollection(d.collection);
  const events = it.events || [];
  const t0 = events.length ? Date.parse(events[0].at) : NaN;
  fill(main, nav,
    title(`Item ${it.index}`, ' ', h('code', { class: 'ref' }, it.ref)),
    h('p', null, statusBadge(it.status)),
    it.error ? h('section', { class: 'item-error', 'aria-labelledby': 'h-err' },
      h('h2', { id: 'h-err' }, 'Error'),
      defs([
        ['Code', h('code', { id: 'item-error-code' }, it.error.code)],
        ['Message', h('span', { id: 'item-error-message' }, it.error.message)],
        it.error.target ? ['Target', h('code', null, it.error.target)] : null,
        it.failedStep ? ['Failed at step', it.failedStep] : null,
      ])) : null,
    defs([
      ['Job', h('a', { href: jobHref(id) }, h('code', null, id))],
      ['Ref', h('code', null, it.ref)],
      ['Attempts', num(it.attempts)],
      it.parentIndex !== undefined ? ['Retry of item', String(it.parentIndex)] : null,
      ['Created', time(it.createdAt)],
      ['Updated', time(it.updatedAt)],
    ]),
    docs.length ? h('section', { 'aria-labelledby': 'h-docs' }, h('h2', { id: 'h-docs' }, 'Documents'),
      h('ul', null, docs.map((d) => h('li', null, `${d.op || 'wrote'} `,
        h('a', { href: docHref(d.collection, d.ref) }, `${d.collection}/${d.ref}`),
        h('span', { class: 'muted' }, ` (step ${d.step})`))))) : null,
    h('div', { class: 'cols' },
      h('section', { 'aria-labelledby': 'h-in' }, h('h2', { id: 'h-in' }, 'Input'), jsonBlock(it.data)),
      h('section', { 'aria-labelledby': 'h-out' }, h('h2', { id: 'h-out' }, 'Result'), jsonBlock(it.result))),
    h('section', { 'aria-labelledby': 'h-ev' }, h('h2', { id: 'h-ev' }, 'Events'),
      events.length ? h('ol', { class: 'timeline' }, events.map((ev) => eventEntry(ev, t0)))
        : h('p', { class: 'muted' }, 'No events yet.')));
}

// ---- documents ----------------------------------------------------------------------------

const COLLECTIONS = 'sluice.collections';

function knownCollections() {
  try {
    return JSON.parse(sessionStorage.getItem(COLLECTIONS) || '[]');
  } catch (_) {
    return [];
  }
}

function rememberCollection(c) {
  const list = [c, ...knownCollections().filter((x) => x !== c)].slice(0, 12);
  sessionStorage.setItem(COLLECTIONS, JSON.stringify(list));
}

function collectionForm(current) {
  const input = h('input', { id: 'collection', name: 'collection', value: current || '', required: true,
    pattern: '[A-Za-z0-9_\\-]{1,64}', 'aria-describedby': 'coll-help' });
  const form = h('form', { class: 'toolbar' },
    h('label', { for: 'collection' }, 'Collection'), input,
    h('button', { type: 'submit' }, 'Open'),
    h('span', { id: 'coll-help', class: 'muted small' },
      'The API does not list collections: type a name (the C of a C.upsert workflow, or an upsert step\'s collection).'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (input.value.trim()) location.hash = docHref(input.value.trim());
  });
  return form;
}

function viewDocsHome() {
  const known = knownCollections();
  fill(main, title('Documents'), collectionForm(''),
    known.length ? h('section', null, h('h2', null, 'Opened in this tab'),
      h('ul', null, known.map((c) => h('li', null, h('a', { href: docHref(c) }, c))))) : null);
}

async function viewCollection(collection, params, signal) {
  const after = params.get('after') || '';
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  fill(main, crumbs(['Documents', '#/docs'], [collection, docHref(collection)]),
    title(`Collection ${collection}`), collectionForm(collection), body);
  try {
    const page = await call(`/v1/collections/${enc(collection)}${query({ after, limit: 50 })}`, { signal });
    rememberCollection(collection);
    const next = page.nextLink
      ? `${docHref(collection)}${query({ after: new URL(page.nextLink).searchParams.get('after') })}` : null;
    fill(body,
      page.value.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'docs' },
        h('thead', null, h('tr', null, ['Ref', 'Version', 'Updated', 'Last written by'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, page.value.map((d) => h('tr', null,
          h('th', { scope: 'row' }, h('a', { href: docHref(collection, d.ref) }, h('code', null, d.ref))),
          h('td', { class: 'num' }, num(d.version)),
          h('td', null, time(d.updatedAt, ago(d.updatedAt))),
          h('td', null, d.lastJob ? [h('a', { href: jobHref(d.lastJob) }, h('code', null, d.lastJob)),
            d.lastItem !== undefined && d.lastItem !== null ? [' · ', h('a', { href: itemHref(d.lastJob, d.lastItem) }, `item ${d.lastItem}`)] : null] : '—'))))))
        : h('p', { class: 'empty' }, after ? 'No more documents.' : `No documents in ${collection}.`),
      pager(!after, docHref(collection), next));
  } catch (e) {
    if (!isAbort(e)) fill(body, errorBox(e));
  }
}

async function viewDoc(collection, ref, signal) {
  const nav = crumbs(['Documents', '#/docs'], [collection, docHref(collection)], [ref, docHref(collection, ref)]);
  fill(main, nav, title(ref), h('p', { class: 'muted' }, 'Loading…'));
  try {
    const d = await call(`/v1/collections/${enc(collection)}/${enc(ref)}`, { signal });
    rememberCollection(collection);
    fill(main, nav, title(`${collection}/${d.ref}`),
      defs([
        ['Version', num(d.version)],
        ['Updated', time(d.updatedAt)],
        d.lastJob ? ['Last written by', [h('a', { href: jobHref(d.lastJob) }, h('code', null, d.lastJob)),
          d.lastItem !== undefined && d.lastItem !== null ? [' · ', h('a', { href: itemHref(d.lastJob, d.lastItem) }, `item ${d.lastItem}`)] : null]] : null,
      ]),
      h('h2', null, 'Data'), jsonBlock(d.data));
  } catch (e) {
    if (!isAbort(e)) fill(main, nav, title(ref), errorBox(e));
  }
}

// ---- router ----------------------------------------------------------------------------------

function route() {
  if (view) view.abort();
  view = new AbortController();
  const signal = view.signal;
  say('');
  if (!getKey()) {
    renderSignIn();
    return;
  }
  const raw = location.hash.replace(/^#/, '') || '/jobs';
  const [path, qs] = raw.split('?');
  const params = new URLSearchParams(qs || '');
  const seg = path.split('/').filter(Boolean).map((s) => {
    try { return decodeURIComponent(s); } catch (_) { return s; }
  });
  let p;
  if (seg[0] === 'jobs' && seg.length === 1) p = viewJobs(params, signal);
  else if (seg[0] === 'jobs' && seg.length === 2) p = viewJob(seg[1], signal);
  else if (seg[0] === 'jobs' && seg[2] === 'items' && seg.length === 3) p = viewItems(seg[1], params, signal);
  else if (seg[0] === 'jobs' && seg[2] === 'items' && seg.length === 4) p = viewItem(seg[1], seg[3], signal);
  else if (seg[0] === 'docs' && seg.length === 1) p = viewDocsHome();
  else if (seg[0] === 'docs' && seg.length === 2) p = viewCollection(seg[1], params, signal);
  else if (seg[0] === 'docs' && seg.length === 3) p = viewDoc(seg[1], seg[2], signal);
  else fill(main, title('Not found'), h('p', null, 'No such page. ', h('a', { href: '#/jobs' }, 'Go to the jobs')));
  document.querySelectorAll('#nav a').forEach((a) => {
    const on = a.getAttribute('href').split('/')[1] === seg[0];
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  });
  const h1 = main.querySelector('h1');
  if (h1) h1.focus({ preventScroll: true });
  Promise.resolve(p).catch((e) => {
    if (!isAbort(e)) fill(main, errorBox(e));
  });
}

setUnauthorizedHandler((e) => {
  signOut(`The server no longer accepts this API key (${e.message}). Sign in again.`, true);
});
document.getElementById('signout').addEventListener('click', () => signOut('Signed out.'));
document.getElementById('skip').addEventListener('click', (ev) => {
  ev.preventDefault();
  main.focus();
});
window.addEventListener('hashchange', route);
signedIn();
route();
