'use strict';
// Shared helpers for the peer benchmarks.
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const DATA = process.env.DATA || path.join(ROOT, 'data');
const REDIS = { host: '127.0.0.1', port: +(process.env.REDIS_PORT || 6390) };
const PG_URL = `postgres://postgres@127.0.0.1:${process.env.PG_PORT || 5433}/bench`;

// Items come from gen_products.py (deterministic, a copy of ../shared/bench's), cached
// as NDJSON under data/.
function loadItems(n) {
  const file = path.join(DATA, `items_${n}.ndjson`);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(DATA, { recursive: true });
    const out = execFileSync(process.env.PYTHON || 'python3',
      [path.join(ROOT, 'gen_products.py'), String(n)], { maxBuffer: 1 << 30 });
    fs.writeFileSync(file + '.tmp', out);
    fs.renameSync(file + '.tmp', file);
  }
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  if (lines.length !== n) throw new Error(`expected ${n} items, got ${lines.length}`);
  return lines.map((l) => JSON.parse(l));
}

function vmHWMkB(pid = 'self') {
  const m = /VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? +m[1] : 0;
}

const now = () => performance.timeOrigin + performance.now(); // ms, high resolution

function chunks(arr, size) {
  const out = [];
  for (let i = 0; i < arr.length; i += size) out.push(arr.slice(i, i + size));
  return out;
}

const PRODUCTS_DDL = `DROP TABLE IF EXISTS products;
  CREATE TABLE products (sku text PRIMARY KEY, doc jsonb NOT NULL, updated_at timestamptz NOT NULL)`;
const UPSERT_SQL = `INSERT INTO products (sku, doc, updated_at) VALUES ($1, $2::jsonb, now())
  ON CONFLICT (sku) DO UPDATE SET doc = EXCLUDED.doc, updated_at = EXCLUDED.updated_at`;

// Returns the per-item handler: W1 does nothing; W2 upserts the item, one statement each.
function makeHandler(cfg) {
  if (cfg.workload === 'w1') return { handle: async () => {}, close: async () => {} };
  const { Pool } = require('pg');
  const pool = new Pool({ connectionString: PG_URL, max: cfg.pool });
  return {
    handle: (item) => pool.query({ name: 'upsert', text: UPSERT_SQL,
      values: [item.sku, JSON.stringify(item)] }),
    close: () => pool.end(),
  };
}

module.exports = { ROOT, DATA, REDIS, PG_URL, loadItems, vmHWMkB, now, chunks,
  PRODUCTS_DDL, UPSERT_SQL, makeHandler };

// Enqueue helper: send chunks of `size`, keeping up to `inflight` requests outstanding.
async function sendChunks(items, size, inflight, fn) {
  const parts = chunks(items, size);
  let next = 0;
  const lane = async () => { while (next < parts.length) await fn(parts[next++]); };
  await Promise.all(Array.from({ length: Math.min(inflight || 1, parts.length) }, lane));
}

async function pgQuery(sql, params) {
  const { Client } = require('pg');
  const c = new Client({ connectionString: PG_URL });
  await c.connect();
  try { return await c.query(sql, params); } finally { await c.end(); }
}

async function prepareProducts(cfg) {
  if (cfg.workload === 'w2') await pgQuery(PRODUCTS_DDL);
}

async function verifyProducts(cfg) {
  if (cfg.workload !== 'w2') return {};
  const r = await pgQuery('SELECT count(*)::int AS n FROM products');
  return { products: r.rows[0].n };
}

// Poll `sql` (returning one row with column n) every few ms until n = 0.
async function pollZero(client, sql, params) {
  for (;;) {
    const r = await client.query(sql, params);
    if (r.rows[0].n === 0) return;
    await new Promise((res) => setTimeout(res, 5));
  }
}

function pkgVersion(name) {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
}

Object.assign(module.exports, { sendChunks, pgQuery, prepareProducts, verifyProducts, pollZero, pkgVersion });
