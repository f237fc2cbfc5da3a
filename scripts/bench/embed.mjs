#!/usr/bin/env node
// "My photos" benchmark in headless Chromium, through the real page:
// 1. images/s embedding the user's photos (file → vector + thumbnail, in the page's embedding workers) with 1 and
//    2 workers, on the asset photos and on 12-megapixel phone-sized JPEGs (decoded by the browser, and by the
//    wasm decoder, the page's default), with the time per photo in a worker and the thumbnails' size. `--static`
//    another build of the page (e.g. an older wasm package) to compare in the same spell;
// 2. at scale: 10,000 and 100,000 photos (synthetic vectors near the asset photos' ones, injected through the
//    page's test hook, no thumbnails): storage, restore time on load, wasm memory, and search latency over my
//    photos and over everything.
// Prints tables and one JSON line (scripts/bench/embed.sh joins it with the native numbers).
//
//   node scripts/bench/embed.mjs [--static static] [--copies 4] [--workers 1,2] [--big 6] [--scale 10000,100000]
//                                [--rounds 3] [--big-files a.jpg,b.jpg,…]   (real photos instead of the drawn 12-MP JPEGs)
// Needs static/pkg, static/model with image_encoder.safetensors (scripts/build-image-encoder.sh),
// static/gallery, and target/debug/web (or IMGPICK_WEB_BIN).
import { readFileSync, readdirSync, mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { tmpdir, cpus } from 'node:os';
import { ROOT, startServer, pageState, CHROMIUM, CHROMIUM_FLAGS } from '../../tests/e2e/harness.mjs';

const { chromium } = createRequire(path.join(ROOT, 'tests/node_modules/'))('playwright-core');
const { values: opts } = parseArgs({ options: {
  static: { type: 'string', default: path.join(ROOT, 'static') },
  copies: { type: 'string', default: '4' },
  workers: { type: 'string', default: '1,2' },
  big: { type: 'string', default: '6' },
  scale: { type: 'string', default: '10000,100000' },
  prompts: { type: 'string', default: '20' },
  rounds: { type: 'string', default: '1' },
  // Real phone-sized JPEGs instead of the drawn ones: comma-separated paths.
  'big-files': { type: 'string', default: '' },
} });
const PROMPTS = ['a dog playing outside', 'a cat', 'fish in water', 'a rocket launch', 'a cup of coffee', 'snow -people',
  'a man riding a motorcycle', 'stars in the night sky', 'a guitar', 'a tent in the mountains', 'sunrise over the sea',
  'a camera', 'an astronaut', 'a puppy on grass', 'children playing', 'a red car', 'a city street at night',
  'a bowl of fruit', 'a bird on a branch', 'a beach with people'].slice(0, Number(opts.prompts));

const PHOTOS = path.join(ROOT, 'assets/photos');
const asset = readdirSync(PHOTOS).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).sort()
  .map((name) => ({ name, buffer: readFileSync(path.join(PHOTOS, name)) }));
const scratch = mkdtempSync(path.join(tmpdir(), 'imgpick-bench-embed-'));
// Files on disk under distinct names (the page skips a file it already has: same path, size and date), handed to
// the page by path as a user's files are.
let batchNo = 0;
const onDisk = (tag, files, copies = 1) => {
  const dir = path.join(scratch, `${tag}-${batchNo++}`);
  mkdirSync(dir);
  return Array.from({ length: copies }, (_, c) => files.map((f) => {
    const p = path.join(dir, `${c}-${f.name}`);
    writeFileSync(p, f.buffer);
    return p;
  })).flat();
};

const server = await startServer(path.resolve(opts.static));
const profile = mkdtempSync(path.join(tmpdir(), 'imgpick-bench-embed-profile-'));
const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true,
  args: [...CHROMIUM_FLAGS, '--enable-blink-features=ForceEagerMeasureMemory'] });
const out = { chromium: {}, thumbs: null, scale: [], cores: cpus().length };
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const p95 = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(s.length * 0.95))]; };
try {
  const page = await context.newPage();
  await page.goto(server.url);
  if (await pageState(page, 300_000) !== 'ready') throw new Error(await page.textContent('#error-message'));
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
  const setWorkers = (count, browserDecode = 'auto') => page.evaluate(([c, b]) => window.imgpickMine.setEmbedWorkers(c, b), [count, browserDecode]);
  // Thumbnail bytes in IndexedDB by photo (the real photos' only; synthetic ones have none): [[key, bytes]].
  const thumbBytes = () => page.evaluate(() => new Promise((resolve) => {
    const r = indexedDB.open('imgpick-mine');
    r.onsuccess = () => {
      const out = [];
      const c = r.result.transaction('thumbs').objectStore('thumbs').openCursor();
      c.onsuccess = () => {
        if (!c.result) { r.result.close(); resolve(out); return; }
        out.push([c.result.key, c.result.value.size]);
        c.result.continue();
      };
    };
  }));

  // 12-megapixel JPEGs drawn by the browser: a phone photo's size, and with per-pixel noise its file size too
  // (~5.5 MB at quality 0.9; decoding cost grows with the coded data, not only the pixel count).
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
  }, opts['big-files'] ? 0 : Number(opts.big));
  const big = opts['big-files']
    ? opts['big-files'].split(',').map((f, i) => ({ name: `phone-${i}-${path.basename(f)}`, buffer: readFileSync(f) }))
    : bigB64.map((s, i) => ({ name: `phone-${i}.jpg`, buffer: Buffer.from(s, 'base64') }));
  const bigBytes = big.length ? Math.round(big.reduce((s, f) => s + f.buffer.length, 0) / big.length) : 0;

  // Each round runs every setting once, in turn, so a load that comes and goes on a shared machine spreads over
  // all of them; the table shows the round with the median rate.
  const runs = {};
  const keep = (n, kind, r) => ((runs[n] ??= {})[kind] ??= []).push(r);
  for (let round = 0; round < Number(opts.rounds); round++) {
    for (const n of opts.workers.split(',').map(Number)) {
      // Each setting starts its workers with one photo first, so worker start-up is not timed.
      const warm = async (browserDecode) => { await setWorkers(n, browserDecode); await add(onDisk('warm', asset.slice(0, 1))); };
      await clear();
      await warm('auto');
      const small = await add(onDisk('small', asset, Number(opts.copies)));
      keep(n, 'small', { photos: small.added, imagesPerS: small.rate, wallS: small.wallS, perPhoto: small.perPhoto, decoders: small.decoders });
      if (!big.length) continue;
      await warm(true); // big JPEGs through the browser's decoder
      const b = await add(onDisk('big', big));
      keep(n, 'big', { photos: b.added, imagesPerS: b.rate, perPhoto: b.perPhoto, decoders: b.decoders, bytes: bigBytes });
      if (!out.thumbs) {
        const thumbs = await thumbBytes();
        out.thumbs = { small: thumbs.filter(([k]) => !k.includes('phone-')).map(([, n]) => n),
          big: thumbs.filter(([k]) => k.includes('phone-')).map(([, n]) => n) };
      }
      await warm(false); // the same JPEGs through the wasm decoder
      const w = await add(onDisk('big-wasm', big));
      keep(n, 'bigWasm', { photos: w.added, imagesPerS: w.rate, perPhoto: w.perPhoto, decoders: w.decoders });
      out.autoDecodesInBrowser ??= {};
      await setWorkers(n, 'auto');
      out.autoDecodesInBrowser[n] = (await page.evaluate(() => window.imgpick.mineStats())).browserDecode;
    }
  }
  const medianRun = (list) => list && [...list].sort((a, b) => a.imagesPerS - b.imagesPerS)[Math.floor(list.length / 2)];
  for (const [n, kinds] of Object.entries(runs)) {
    out.chromium[n] = { ...medianRun(kinds.small), big: medianRun(kinds.big), bigWasm: medianRun(kinds.bigWasm),
      rates: Object.fromEntries(Object.entries(kinds).map(([k, l]) => [k, l.map((r) => Number(r.imagesPerS.toFixed(2)))])) };
  }

  // At scale: N photos = the 15 asset photos + synthetic ones around them; reloaded, then searched.
  await setWorkers(2);
  await clear();
  const estimate = () => page.evaluate(() => navigator.storage.estimate().then((e) => e.usage));
  await page.reload();
  await pageState(page, 120_000);
  const emptyUsage = await estimate();
  const emptyReady = await page.evaluate(() => ({ ...window.imgpickReady }));
  await add(onDisk('bases', asset));
  for (const N of opts.scale.split(',').map(Number).filter(Boolean)) {
    const have = Number(await page.evaluate(() => document.getElementById('mine').dataset.count));
    const t0 = Date.now();
    const injected = await page.evaluate((k) => window.imgpickMine.addSynthetic(k, 11), N - have);
    if (injected.count !== N) throw new Error(`synthetic photos: ${JSON.stringify(injected)}`);
    const injectS = (Date.now() - t0) / 1000;
    await page.reload();
    if (await pageState(page, 300_000) !== 'ready') throw new Error('reload failed');
    const loaded = await page.evaluate(async () => {
      const m = await performance.measureUserAgentSpecificMemory();
      const stats = await window.imgpick.mineStats();
      return { ready: { ...window.imgpickReady }, count: stats.count, wasm: stats.wasmMemoryBytes, jsBytes: m.bytes };
    });
    const lat = { mine: [], all: [], roundTrip: [] };
    for (let rep = 0; rep < 3; rep++) {
      for (const q of PROMPTS) {
        for (const scope of ['mine', 'all']) {
          const r = await page.evaluate(([query, s]) => window.imgpickMine.search(query, s, 30), [q, scope]);
          if (r.error) throw new Error(r.error);
          lat[scope].push(r.workerMs);
          if (scope === 'mine') lat.roundTrip.push(r.roundTripMs);
        }
      }
    }
    out.scale.push({ photos: loaded.count, injectS, storageBytes: (await estimate()) - emptyUsage,
      restoreMs: loaded.ready.restoreMs, readyMs: loaded.ready.at, emptyReadyMs: emptyReady.at, wasmBytes: loaded.wasm, jsBytes: loaded.jsBytes,
      searchMine: { median: median(lat.mine), p95: p95(lat.mine) }, searchAll: { median: median(lat.all), p95: p95(lat.all) },
      roundTripMine: median(lat.roundTrip) });
  }
  await clear();
  await page.close();
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
  await server.stop();
}

const f1 = (x) => (x == null ? '–' : x.toFixed(1));
const mean = (xs) => (xs?.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
console.log(`\n"My photos" in headless Chromium (${out.cores} cores; file → vector + thumbnail, through the page; `
  + `median of ${opts.rounds} round(s): ${JSON.stringify(Object.fromEntries(Object.entries(out.chromium).map(([n, r]) => [n, r.rates])))})\n`);
const split = (p) => p ? `${f1(p.read)} + ${f1(p.decode)} + ${f1(p.embed)} + ${f1(p.thumb)}` : '–';
console.log('| embedding workers | asset photos/s | ms per photo: read + browser decode + wasm + thumbnail | 12-MP JPEGs/s, browser decode | ms per 12-MP JPEG | 12-MP JPEGs/s, wasm decode | ms per 12-MP JPEG (wasm) |');
console.log('|---|---|---|---|---|---|---|');
for (const [n, r] of Object.entries(out.chromium)) {
  console.log(`| ${n} | ${f1(r.imagesPerS)} (${r.photos} photos) | ${split(r.perPhoto)} | ${f1(r.big?.imagesPerS)}`
    + `${r.big ? ` (${r.big.photos} × ${(r.big.bytes / 1e6).toFixed(1)} MB)` : ''} | ${split(r.big?.perPhoto)} | ${f1(r.bigWasm?.imagesPerS)} | ${split(r.bigWasm?.perPhoto)} |`);
}
if (out.thumbs) {
  console.log(`\nWhat 'auto' picks on this machine (${out.cores} cores) for big JPEGs: ${JSON.stringify(out.autoDecodesInBrowser)} (true = the browser's decoder).`);
console.log(`\nThumbnails (JPEG, longest side 320 px, quality 0.85): asset photos ${(mean(out.thumbs.small) / 1e3).toFixed(1)} kB, `
    + `12-MP JPEGs ${(mean(out.thumbs.big) / 1e3).toFixed(1)} kB on average.`);
}
if (out.scale.length) {
  const MB = (b) => `${(b / 1e6).toFixed(1)} MB`;
  console.log('\n| my photos | stored (IndexedDB, no thumbnails) | restore on load | page ready (none: ' + `${(out.scale[0].emptyReadyMs / 1000).toFixed(2)} s) | search worker wasm memory | search mine, median (p95) | search all, median (p95) |`);
  console.log('|---|---|---|---|---|---|---|');
  for (const s of out.scale) {
    console.log(`| ${s.photos.toLocaleString('en')} | ${MB(s.storageBytes)} (${(s.storageBytes / s.photos).toFixed(0)} B per photo) | ${s.restoreMs.toFixed(0)} ms | `
      + `${(s.readyMs / 1000).toFixed(2)} s | ${MB(s.wasmBytes)} | ${s.searchMine.median.toFixed(1)} ms (${s.searchMine.p95.toFixed(1)}) | ${s.searchAll.median.toFixed(1)} ms (${s.searchAll.p95.toFixed(1)}) |`);
  }
}
console.log(JSON.stringify(out));
