// dom.js - small building blocks of the dashboard: an element builder that only ever
// sets text (never HTML, so data from the API cannot inject markup), number and time
// formats, the stacked progress bar and the throughput chart.

const SVG_NS = 'http://www.w3.org/2000/svg';

// h('a', {href: '#/jobs', class: 'x'}, 'text', child, [more]) -> element. Attributes
// whose value is null, undefined or false are left out; on* keys add listeners.
export function h(tag, attrs, ...children) {
  const el = tag.startsWith('svg:')
    ? document.createElementNS(SVG_NS, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// Replaces el's children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const intFmt = new Intl.NumberFormat('en');
export function num(n) {
  return n === null || n === undefined ? '—' : intFmt.format(n);
}

export function rate(r) {
  if (r === null || r === undefined || !Number.isFinite(r)) return '—';
  if (Number.isInteger(r) || r >= 10) return intFmt.format(Math.round(r));
  return r.toFixed(1);
}

export function pct(part, total) {
  if (!total) return '0%';
  const p = (100 * part) / total;
  if (p > 0 && p < 0.1) return '<0.1%';
  return `${p >= 99.95 && part < total ? '99.9' : p.toFixed(p >= 10 ? 0 : 1)}%`;
}

// "42 s", "3 min", "2 h 5 min", "4 d"
export function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return m % 60 ? `${hr} h ${m % 60} min` : `${hr} h`;
  return `${Math.floor(hr / 24)} d`;
}

export function ago(iso, now = Date.now()) {
  if (!iso) return '—';
  return `${duration(now - Date.parse(iso))} ago`;
}

// A <time> showing `text` with the full timestamp as its machine value and tooltip.
export function time(iso, text) {
  if (!iso) return '—';
  const d = new Date(iso);
  return h('time', { datetime: iso, title: d.toLocaleString() }, text || d.toLocaleString());
}

export const TERMINAL = new Set(['Succeeded', 'Failed', 'Canceled']);

export function statusBadge(status) {
  return h('span', { class: `badge st-${String(status).toLowerCase()}` }, status);
}

// The parts of a job's counts, in the order the bar draws them.
const PARTS = [
  ['succeeded', 'succeeded'],
  ['failed', 'failed'],
  ['skipped', 'skipped'],
  ['canceled', 'canceled'],
  ['processing', 'processing'],
];

export function countsText(c) {
  const done = c.total - c.pending - c.processing;
  const extra = PARTS.filter(([k]) => k !== 'succeeded' && c[k] > 0).map(
    ([k, label]) => `${num(c[k])} ${label}`,
  );
  return `${num(done)} of ${num(c.total)} done (${pct(done, c.total)})` +
    (extra.length ? ` · ${extra.join(' · ')}` : '');
}

// A stacked bar: succeeded, failed, skipped, canceled and processing in colour, pending
// as the empty rest, with the same facts as text beside it (and as aria-valuetext).
export function progressBar(c, { big = false } = {}) {
  const done = c.total - c.pending - c.processing;
  const text = countsText(c);
  const bar = h('div', {
    class: big ? 'bar big' : 'bar',
    role: 'progressbar',
    'aria-valuemin': 0,
    'aria-valuemax': c.total,
    'aria-valuenow': done,
    'aria-valuetext': text,
    'data-done': done,
    'data-total': c.total,
  });
  for (const [k] of PARTS) {
    if (!c[k]) continue;
    const seg = h('span', { class: `seg ${k}`, title: `${num(c[k])} ${k}` });
    seg.style.width = `${(100 * c[k]) / Math.max(1, c.total)}%`; // CSSOM: allowed by the CSP
    bar.append(seg);
  }
  return h('div', { class: 'progress' }, bar, h('span', { class: 'bar-text' }, text));
}

// Throughput over time as an inline SVG line chart. samples: [{t (ms), r (items/s)}].
export function throughputChart(samples, { width = 640, height = 160 } = {}) {
  const pad = { l: 48, r: 8, t: 10, b: 22 };
  const svg = h('svg:svg', {
    class: 'chart',
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    preserveAspectRatio: 'none',
  });
  if (samples.length < 2) {
    svg.setAttribute('aria-label', 'Throughput chart: not enough samples yet');
    svg.append(h('svg:text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'muted' },
      'Collecting samples…'));
    return svg;
  }
  const t0 = samples[0].t;
  const t1 = samples[samples.length - 1].t;
  const maxR = Math.max(1, ...samples.map((s) => s.r));
  const x = (t) => pad.l + ((width - pad.l - pad.r) * (t - t0)) / Math.max(1, t1 - t0);
  const y = (r) => height - pad.b - ((height - pad.t - pad.b) * r) / maxR;
  const last = samples[samples.length - 1].r;
  svg.setAttribute('aria-label',
    `Throughput over ${duration(t1 - t0)}: now ${rate(last)} items/s, peak ${rate(maxR)} items/s`);
  svg.append(
    h('svg:line', { x1: pad.l, y1: y(0), x2: width - pad.r, y2: y(0), class: 'axis' }),
    h('svg:line', { x1: pad.l, y1: y(maxR), x2: width - pad.r, y2: y(maxR), class: 'grid' }),
    h('svg:text', { x: pad.l - 6, y: y(maxR) + 4, 'text-anchor': 'end', class: 'label' }, rate(maxR)),
    h('svg:text', { x: pad.l - 6, y: y(0) + 4, 'text-anchor': 'end', class: 'label' }, '0'),
    h('svg:text', { x: pad.l, y: height - 6, class: 'label' }, `−${duration(t1 - t0)}`),
    h('svg:text', { x: width - pad.r, y: height - 6, 'text-anchor': 'end', class: 'label' }, 'now'),
  );
  const pts = samples.map((s) => `${x(s.t).toFixed(1)},${y(s.r).toFixed(1)}`);
  svg.append(
    h('svg:polygon', {
      class: 'area',
      points: `${x(t0).toFixed(1)},${y(0)} ${pts.join(' ')} ${x(t1).toFixed(1)},${y(0)}`,
    }),
    h('svg:polyline', { class: 'line', points: pts.join(' ') }),
  );
  return svg;
}

// Pretty JSON in a <pre>, as text.
export function jsonBlock(value) {
  return h('pre', { class: 'json' }, value === undefined ? '—' : JSON.stringify(value, null, 2));
}

// <dl> from [[term, definition], ...], skipping rows whose definition is null.
export function defs(rows, cls) {
  return h('dl', { class: cls || 'defs' },
    rows.filter((r) => r && r[1] !== null && r[1] !== undefined)
      .map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}
