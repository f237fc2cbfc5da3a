#!/usr/bin/env node
// The page on partitioned galleries in headless Chromium (docs/benchmarks.md "Partitioned gallery"): for each
// static folder, the first load (bytes over the wire and decoded, by file), cold queries (fresh profile, nothing
// cached: time and bytes fetched each), warm queries (the same prompt again at once: its lists in memory; and
// all cold prompts replayed after the others: lists from memory or the Cache API), and the search worker's wasm
// memory after 100 different queries. Prompts: Flickr8k val captions (every 10th) when present,
// else fixed prompts. Prints a markdown table.
//
//   node scripts/bench/partitioned.mjs --site target/h8/site-10k --site target/h8/site-100k --site target/h8/site-1m
// Each site is a static folder (index.html, pkg/, model/ … and a partitioned gallery/), served by `web`.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startServer, launchBrowser, pageState } from '../../tests/e2e/harness.mjs';

const { values: opts } = parseArgs({ options: {
  site: { type: 'string', multiple: true },
  cold: { type: 'string', default: '20' },
  queries: { type: 'string', default: '100' },
  captions: { type: 'string', default: '../shared/data/flickr8k/captions_val.json' },
} });

function prompts(n) {
  if (existsSync(opts.captions)) {
    const c = JSON.parse(readFileSync(opts.captions, 'utf8')).annotations.map((a) => a.caption);
    return Array.from({ length: n }, (_, i) => c[(i * 10 + 3) % c.length]);
  }
  const fixed = ['a dog running on grass', 'a cat', 'two people on a beach', 'a red car', 'a bird flying', 'snow'];
  return Array.from({ length: n }, (_, i) => `${fixed[i % fixed.length]} ${i}`);
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;

async function resources(page) {
  const main = await page.evaluate(() => performance.getEntriesByType('resource')
    .map((e) => ({ name: e.name, transferSize: e.transferSize, decodedBodySize: e.decodedBodySize })));
  const worker = await page.evaluate(() => window.imgpick.workerResources());
  return [...main, ...worker];
}
const sum = (rs, key) => rs.reduce((s, e) => s + (e[key] || 0), 0);

async function bench(site) {
  const server = await startServer(site);
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    await page.goto(server.url);
    if (await pageState(page, 120_000) !== 'ready') throw new Error(await page.textContent('#error-message'));
    const info = await page.textContent('#model-info');
    const first = await resources(page);
    const firstBytes = { transfer: sum(first, 'transferSize'), decoded: sum(first, 'decodedBodySize') };
    const biggest = [...first].sort((a, b) => b.decodedBodySize - a.decodedBodySize).slice(0, 5)
      .map((e) => `${new URL(e.name).pathname.split('/').slice(-1)[0]} ${mb(e.decodedBodySize)}`).join(', ');
    const qs = prompts(Number(opts.queries));
    const search = (q) => page.evaluate((p) => window.imgpick.search(p, 30), q);
    const cold = [], again = [], replay = [];
    for (const q of qs.slice(0, Number(opts.cold))) {
      const r = await search(q);
      if (r.error) throw new Error(`${q}: ${r.error}`);
      cold.push({ ms: r.roundTripMs, bytes: r.fetched.network });
      again.push((await search(q)).roundTripMs);
    }
    for (const q of qs.slice(0, Number(opts.cold))) replay.push((await search(q)).roundTripMs);
    for (const q of qs.slice(Number(opts.cold))) await search(q);
    const stats = await page.evaluate(() => window.imgpick.mineStats());
    const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize ?? 0);
    return {
      site: path.basename(site), info, firstBytes, biggest,
      coldMedian: median(cold.map((c) => c.ms)), coldP90: pct(cold.map((c) => c.ms), 0.9),
      coldBytes: median(cold.map((c) => c.bytes)), againMedian: median(again), againP90: pct(again, 0.9),
      replayMedian: median(replay), replayP90: pct(replay, 0.9),
      wasmMemory: stats.wasmMemoryBytes, heap, queries: qs.length,
    };
  } finally {
    await browser.close();
    await server.stop();
  }
}

const rows = [];
for (const site of opts.site || []) rows.push(await bench(path.resolve(site)));
console.log('| gallery | first load (wire / decoded) | cold query median / p90 (fresh profile) | bytes per cold query (median) | warm: same query again, median / p90 | warm: replayed later (memory or Cache API) | worker wasm memory after N queries | page JS heap |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.info.split(' · ')[0]} | ${mb(r.firstBytes.transfer)} / ${mb(r.firstBytes.decoded)} | ${r.coldMedian.toFixed(0)} / ${r.coldP90.toFixed(0)} ms | ${mb(r.coldBytes)} | ${r.againMedian.toFixed(1)} / ${r.againP90.toFixed(1)} ms | ${r.replayMedian.toFixed(1)} / ${r.replayP90.toFixed(1)} ms | ${mb(r.wasmMemory)} (${r.queries}) | ${mb(r.heap)} |`);
}
for (const r of rows) console.log(`\n${r.site}: largest first-load files (decoded): ${r.biggest}`);
