#!/usr/bin/env node
// Page benchmark in headless Chromium: page-ready time on localhost, query latency over 100 prompts (inside the
// worker and page <-> worker round trip), bytes downloaded on the first and the second visit. Prints a table.
//
//   node scripts/bench/page.mjs [--static static] [--prompts 100] [--runs 3]
// Needs static/pkg (scripts/build-wasm.sh), static/model, static/gallery (make demo) and target/debug/web
// (or IMGPICK_WEB_BIN). Targets (issue 5): ready <= 1 s, median query <= 3 ms on the default gallery.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, startServer, launchBrowser, pageState } from '../../tests/e2e/harness.mjs';

const { values: opts } = parseArgs({ options: {
  static: { type: 'string', default: path.join(ROOT, 'static') },
  prompts: { type: 'string', default: '100' },
  runs: { type: 'string', default: '3' },
} });
const staticDir = path.resolve(opts.static);
const nPrompts = Number(opts.prompts);

const WORDS = ['a dog running on grass', 'a cat', 'two people on a beach', 'a red car', 'a bird flying', 'snow',
  'a child playing', 'a man riding a bike', 'food on a plate', 'a flower', 'the night sky', 'a boat on the water',
  'beach -people', '2:dog + ball', 'an old building', 'a fish', 'a horse in a field', 'a rocket', 'coffee', 'a toy'];
function prompts() {
  // Real captions of the gallery plus fixed prompts, cycled to the requested count (deterministic).
  let captions = [];
  try {
    captions = JSON.parse(readFileSync(path.join(staticDir, 'gallery/gallery.json'), 'utf8')).items
      .map((i) => i.caption).filter(Boolean);
  } catch { /* the page will report the problem */ }
  const pool = [...WORDS, ...captions];
  return Array.from({ length: nPrompts }, (_, i) => pool[(i * 7) % pool.length]);
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;

// Bytes over the network for one visit: resource timing in the page and in the worker, plus the document.
async function bytesOfVisit(page) {
  const main = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    return [{ name: 'document', transferSize: nav?.transferSize ?? 0 },
      ...performance.getEntriesByType('resource').map((e) => ({ name: e.name, transferSize: e.transferSize }))];
  });
  const worker = await page.evaluate(() => window.imgpick.workerResources());
  return [...main, ...worker].reduce((s, e) => s + (e.transferSize || 0), 0);
}

async function visit(context, url) {
  const page = await context.newPage();
  const t0 = Date.now();
  await page.goto(url);
  const state = await pageState(page, 120_000);
  if (state !== 'ready') throw new Error(`the page did not load: ${await page.textContent('#error-message')}`);
  const ready = await page.evaluate(() => window.imgpickReady);
  // Thumbnails of a typical first search belong to the visit too.
  return { page, readyMs: ready.at, wallMs: Date.now() - t0, downloadMs: ready.downloadMs, initMs: ready.initMs };
}

const server = await startServer(staticDir);
const rows = [];
try {
  for (let run = 0; run < Number(opts.runs); run++) {
    const browser = await launchBrowser();
    try {
      const first = await visit(browser.context, server.url);
      const firstBytes = await bytesOfVisit(first.page);
      const lat = { worker: [], roundTrip: [] };
      for (const q of prompts()) {
        const r = await first.page.evaluate((query) => window.imgpick.search(query, 30), q);
        if (r.error) throw new Error(`query ${JSON.stringify(q)} failed: ${r.error}`);
        lat.worker.push(r.workerMs);
        lat.roundTrip.push(r.roundTripMs);
      }
      await first.page.close();
      const second = await visit(browser.context, server.url);
      const secondBytes = await bytesOfVisit(second.page);
      await second.page.close();
      rows.push({ first, second, firstBytes, secondBytes, lat });
    } finally {
      await browser.close();
    }
  }
} finally {
  await server.stop();
}

const col = (f) => median(rows.map(f));
const gallery = JSON.parse(readFileSync(path.join(staticDir, 'gallery/gallery.json'), 'utf8'));
const allWorker = rows.flatMap((r) => r.lat.worker);
const allRound = rows.flatMap((r) => r.lat.roundTrip);
const table = [
  ['metric', 'value', 'target'],
  ['gallery', `${gallery.count} images`, ''],
  ['page ready, first visit (median of runs)', `${col((r) => r.first.readyMs).toFixed(0)} ms`, '<= 1000 ms'],
  ['  of which downloads / engine init', `${col((r) => r.first.downloadMs).toFixed(0)} / ${col((r) => r.first.initMs).toFixed(0)} ms`, ''],
  ['page ready, second visit', `${col((r) => r.second.readyMs).toFixed(0)} ms`, ''],
  [`query latency in the worker, median (p95), ${allWorker.length} queries`, `${median(allWorker).toFixed(2)} ms (${pct(allWorker, 0.95).toFixed(2)})`, '<= 3 ms'],
  ['query round trip page <-> worker, median (p95)', `${median(allRound).toFixed(2)} ms (${pct(allRound, 0.95).toFixed(2)})`, ''],
  ['bytes downloaded, first visit', kb(col((r) => r.firstBytes)), ''],
  ['bytes downloaded, second visit', kb(col((r) => r.secondBytes)), ''],
];
const w = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
const line = (r) => `| ${r.map((c, i) => c.padEnd(w[i])).join(' | ')} |`;
console.log(`\nimgpick page benchmark — headless Chromium, ${rows.length} runs, ${server.url}`);
console.log(line(table[0]));
console.log(`|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`);
for (const r of table.slice(1)) console.log(line(r));
