// api.js - the dashboard's only way to the server: the public /v1 API with the key the
// user typed. The key lives in sessionStorage, so it is gone when the tab closes and
// other tabs never see it. Every error becomes an ApiError carrying the API's
// {"error": {"code", "message", "target"}} body.

const KEY = 'sluice.apiKey';

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, code, message, target, retryAfter) {
    super(message);
    this.status = status; // 0 when the server did not answer
    this.code = code;
    this.target = target || null;
    this.retryAfter = retryAfter || 0; // seconds, from Retry-After on 429/503
  }
}

// Called with the ApiError when the server refuses the key (401) of a signed-in tab.
let onUnauthorized = null;
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

async function errorFrom(r) {
  let code = 'HttpError';
  let message = `${r.status} ${r.statusText}`;
  let target = null;
  try {
    const body = await r.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      target = body.error.target;
    }
  } catch (_) {
    // not the JSON error shape: keep the status line
  }
  const ra = parseInt(r.headers.get('Retry-After') || '0', 10);
  return new ApiError(r.status, code, message, target, Number.isFinite(ra) ? ra : 0);
}

// A link from the API (nextLink, links.self) as a path on this origin: the API builds
// absolute URLs from the Host it was addressed by, and the page may only fetch 'self'.
export function localPath(link) {
  const u = new URL(link, location.href);
  return u.pathname + u.search;
}

// Sends one request with the key (or `key` when given, for the sign-in check).
// Returns the parsed JSON body (null for an empty one), or the Response when `raw`.
// Throws ApiError; an AbortError passes through untouched.
export async function call(path, { method = 'GET', body, headers = {}, signal, raw, key } = {}) {
  const k = key || getKey();
  const h = { Accept: 'application/json', ...headers };
  if (k) h.Authorization = `Bearer ${k}`;
  let r;
  try {
    r = await fetch(path, { method, body, headers: h, signal, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'NetworkError', `the server did not answer (${e.message})`);
  }
  if (!r.ok) {
    const err = await errorFrom(r);
    if (r.status === 401 && !key && onUnauthorized) onUnauthorized(err);
    throw err;
  }
  if (raw) return r;
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

// Follows a job through Server-Sent Events (GET /v1/jobs/{id}/events) read with
// fetch, since EventSource cannot send an Authorization header. Last-Event-ID is set
// past any item index, so the server skips the items.failed events: the page asks for
// failures itself, a page at a time, however many there are. Calls onEvent(type, data)
// for each event and resolves when the stream ends (the job ended, or the server's
// 5-minute limit); rejects with ApiError or AbortError.
export async function followEvents(path, onEvent, signal) {
  const r = await call(path, {
    raw: true,
    signal,
    headers: { Accept: 'text/event-stream', 'Last-Event-ID': '4294967294' },
  });
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    pending += value;
    let cut;
    while ((cut = pending.search(/\r?\n\r?\n/)) >= 0) {
      const block = pending.slice(0, cut);
      pending = pending.slice(cut).replace(/^\r?\n\r?\n/, '');
      let type = 'message';
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith('event:')) type = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) onEvent(type, JSON.parse(data.join('\n')));
    }
  }
}
