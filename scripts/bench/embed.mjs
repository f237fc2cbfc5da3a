#!/usr/bin/env node
// "My photos" benchmark in headless Chromium, through the real page: images/s embedding the user's photos
// (file → vector + thumbnail, in the page's embedding workers) with 1 and 2 workers, on the asset photos and on
// 12-megapixel phone-sized JPEGs; then the memory and storage that 1,000 added photos cost (restored from
// IndexedDB, measured with performance.measureUserAgentSpecificMemory against the same page with none).
// Prints a table and one JSON line (scripts/bench/embed.sh joins it with the native numbers).
//
//   node scripts/bench/embed.mjs [--static static] [--copies 4] [--workers 1,2] [--big 4] [--memory 1000]
// Needs static/pkg, static/model with image_encoder.safetensors (scripts/build-image-encoder.sh),
// static/gallery, and target/debug/web (or IMGPICK_WEB_BIN).
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ROOT, startServer, pageState, CHROMIUM, CHROMIUM_FLAGS } from '../../tests/e2e/harness.mjs';

const { chromium } = createRequire(path.join(ROOT, 'tests/node_modules/'))('playwright-core');
const { values: opts } = parseArgs({ options: {
  static: { type: 'string', default: path.join(ROOT, 'static') },
  copies: { type: 'string', default: '4' },
  workers: { type: 'string', default: '1,2' },
  big: { type: 'string', default: '4' },
  memory: { type: 'string', default: '1000' },
} });

const PHOTOS = path.join(ROOT, 'assets/photos');
const asset = readdirSync(PHOTOS).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).sort()
  .map((name) => ({ name, buffer: readFileSync(path.join(PHOTOS, name)) }));
// Distinct names (the page skips a file it already has: same path, size and date).
const batch = (tag, files, copies) => Array.from({ length: copies }, (_, c) => files.map((f) => ({
  name: `${tag}${c}-${f.name}`, mimeType: f.name.endsWith('.png') ? 'image/png' : 'image/jpeg', buffer: f.buffer }))).flat();

const server = await startServer(path.resolve(opts.static));
const profile = mkdtempSync(path.join(tmpdir(), 'imgpick-bench-embed-'));
const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true,
  args: [...CHROMIUM_FLAGS, '--enable-blink-features=ForceEagerMeasureMemory'] });
const out = { chromium: {}, memory: null, cores: (await import('node:os')).cpus().length };
try {
  const page = await context.newPage();
  await page.goto(server.url);
  if (await pageState(page, 120_000) !== 'ready') throw new Error(await page.textContent('#error-message'));
  if (!await page.evaluate(() => !document.getElementById('mine-files').disabled)) {
    throw new Error('the model has no image encoder: run scripts/build-image-encoder.sh');
  }
  const clear = () => page.evaluate(async () => {
    if (document.getElementById('mine').dataset.count === '0') return;
    document.getElementById('mine-clear').click(); document.getElementById('mine-clear').click();
    while (document.getElementById('mine').dataset.count !== '0') await new Promise((r) => setTimeout(r, 50));
  });
  // Adds files through the page's file input and waits until the page says it is done.
  const add = async (files) => {
    await page.evaluate(() => { delete document.getElementById('mine').dataset.last; });
    const t0 = Date.now();
    await page.setInputFiles('#mine-files', files);
    await page.waitForFunction(() => document.getElementById('mine').dataset.state === 'idle'
      && document.getElementById('mine').dataset.last, null, { timeout: 900_000, polling: 100 });
    const last = JSON.parse(await page.evaluate(() => document.getElementById('mine').dataset.last));
    if (last.failed) throw new Error(`${last.failed} files failed: ${await page.textContent('#mine-errors-list')}`);
    return { wallS: (Date.now() - t0) / 1000, ...last };
  };
  // 12-megapixel JPEGs drawn by the browser: a phone photo's size, and with per-pixel noise its file size too
  // (~5 MB at quality 0.9; decoding cost grows with the coded data, not only the pixel count).
  const bigB64 = await page.evaluate(async (n) => {
    const out = [];
    let seed = 1;
    for (let i = 0; i < n; i++) {
      const c = new OffscreenCanvas(4000, 3000), g = c.getContext('2d');
      const grad = g.createLinearGradient(0, 0, 4000, 3000);
      grad.addColorStop(0, `hsl(${i * 50}, 60%, 60%)`); grad.addColorStop(1, `hsl(${i * 50 + 150}, 50%, 25%)`);
      g.fillStyle = grad; g.fillRect(0, 0, 4000, 3000);
      for (let k = 0; k < 400; k++) { g.fillStyle = `hsla(${(k * 37) % 360}, 70%, 50%, .5)`; g.fillRect((k * 997) % 4000, (k * 613) % 3000, 180, 120); }
      const img = g.getImageData(0, 0, 4000, 3000), d = img.data;
      for (let p = 0; p < d.length; p += 4) {
        seed = (seed * 1664525 + 1013904223) >>> 0;
        const noise = (seed >>> 26) - 32;
        d[p] += noise; d[p + 1] += noise; d[p + 2] += noise;
      }
      g.putImageData(img, 0, 0);
      const b = new Uint8Array(await (await c.convertToBlob({ type: 'image/jpeg', quality: 0.9 })).arrayBuffer());
      let s = ''; for (let j = 0; j < b.length; j += 0x8000) s += String.fromCharCode(...b.subarray(j, j + 0x8000));
      out.push(btoa(s));
    }
    return out;
  }, Number(opts.big));
  const big = bigB64.map((s, i) => ({ name: `phone-${i}.jpg`, buffer: Buffer.from(s, 'base64') }));

  for (const n of opts.workers.split(',').map(Number)) {
    await page.evaluate((k) => window.imgpick.setEmbedWorkers(k), n);
    await clear();
    await add(batch(`warm${n}-`, asset.slice(0, 2), 1)); // starts the workers (and downloads the encoder once)
    await clear();
    const small = await add(batch(`w${n}-`, asset, Number(opts.copies)));
    const row = { photos: small.added, imagesPerS: small.rate, wallS: small.wallS, perPhoto: small.perPhoto };
    if (big.length) {
      await clear();
      const b = await add(batch(`big${n}-`, big, 1));
      row.big = { photos: b.added, imagesPerS: b.rate, perPhoto: b.perPhoto, bytes: Math.round(big.reduce((s, f) => s + f.buffer.length, 0) / big.length) };
    }
    out.chromium[n] = row;
  }

  // Memory for N added photos: copies of the stored records (real vectors and thumbnails), restored on reload.
  const N = Number(opts.memory);
  if (N > 0) {
    await clear();
    await add(batch('mem-', asset, 1));
    const measure = async () => {
      await page.reload();
      if (await pageState(page, 120_000) !== 'ready') throw new Error('reload failed');
      return page.evaluate(async () => {
        const m = await performance.measureUserAgentSpecificMemory();
        const est = await navigator.storage.estimate();
        const stats = await window.imgpick.mineStats();
        return { bytes: m.bytes, storage: est.usage, restoreMs: window.imgpickReady.restoreMs, wasm: stats.wasmMemoryBytes,
          count: Number(document.getElementById('mine').dataset.count) };
      });
    };
    const thumbBytes = await page.evaluate(() => new Promise((resolve) => {
      const r = indexedDB.open('imgpick-mine', 1);
      r.onsuccess = () => {
        const q = r.result.transaction('photos').objectStore('photos').getAll();
        q.onsuccess = () => { r.result.close(); resolve(q.result.map((x) => x.thumb?.size || 0)); };
      };
    }));
    await page.evaluate(async (n) => {
      const db = await new Promise((res) => { const r = indexedDB.open('imgpick-mine', 1); r.onsuccess = () => res(r.result); });
      const all = await new Promise((res) => { const q = db.transaction('photos').objectStore('photos').getAll(); q.onsuccess = () => res(q.result); });
      await new Promise((res) => {
        const tx = db.transaction('photos', 'readwrite');
        const s = tx.objectStore('photos');
        for (let i = all.length; i < n; i++) {
          const r = all[i % all.length];
          s.put({ ...r, key: `${r.key}#copy${i}`, path: `copy${i}/${r.path}`, seq: i });
        }
        tx.oncomplete = res;
      });
      db.close();
    }, N);
    const withN = await measure();
    await clear();
    const without = await measure();
    out.memory = { photos: withN.count, jsBytes: withN.bytes - without.bytes, storageBytes: withN.storage - without.storage,
      wasmBytes: withN.wasm - without.wasm, wasmTotal: withN.wasm,
      restoreMs: withN.restoreMs, thumbMeanBytes: thumbBytes.reduce((a, b) => a + b, 0) / thumbBytes.length };
  }
  await page.close();
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  await server.stop();
}

const f1 = (x) => (x == null ? '–' : x.toFixed(1));
console.log(`\n"My photos" in headless Chromium (${out.cores} cores; file → vector + thumbnail, through the page)\n`);
const split = (p) => p ? `${f1(p.embed)} + ${f1(p.thumb)}` : '–';
console.log('| embedding workers | asset photos/s | ms per photo in a worker: wasm encoder + thumbnail | 12-MP JPEGs/s | ms per 12-MP JPEG |');
console.log('|---|---|---|---|---|');
for (const [n, r] of Object.entries(out.chromium)) {
  console.log(`| ${n} | ${f1(r.imagesPerS)} (${r.photos} photos) | ${split(r.perPhoto)} | ${f1(r.big?.imagesPerS)}`
    + `${r.big ? ` (${r.big.photos} × ${(r.big.bytes / 1e6).toFixed(1)} MB)` : ''} | ${split(r.big?.perPhoto)} |`);
}
if (out.memory) {
  const m = out.memory;
  const MB = (b) => `${b >= 0 ? '+' : ''}${(b / 1e6).toFixed(1)} MB`;
  console.log(`\n${m.photos} added photos, restored from IndexedDB, vs none (reloaded page each time):\n`);
  console.log('| what | cost |\n|---|---|');
  const dim = JSON.parse(readFileSync(path.join(path.resolve(opts.static), 'model/manifest.json'), 'utf8')).embed_dim;
  console.log(`| vectors in the search worker's Engine (${m.photos} × ${dim} × f32) | ${MB(m.photos * dim * 4)} |`);
  console.log(`| search worker's wasm memory, measured | ${MB(m.wasmBytes)} (the heap of ${(m.wasmTotal / 1e6).toFixed(1)} MB had room) |`);
  console.log(`| JS heaps, page + workers (measureUserAgentSpecificMemory) | ${MB(m.jsBytes)} |`);
  console.log(`| thumbnails held as Blobs (browser-managed, mean ${(m.thumbMeanBytes / 1e3).toFixed(1)} kB) | ${MB(m.thumbMeanBytes * m.photos)} |`);
  console.log(`| IndexedDB storage (navigator.storage.estimate) | ${MB(m.storageBytes)} |`);
  console.log(`| restore time on load | ${m.restoreMs.toFixed(0)} ms |`);
}
console.log(JSON.stringify(out));
