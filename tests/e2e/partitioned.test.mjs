// The page on a partitioned gallery (the test photos in 4 lists, 2 probed per query; prepared by
// scripts/test-e2e.sh): the first load is the header only, each query fetches its lists and the metadata of what
// it shows, the top 10 equal `trainer search` on the same files, shared links (?q=, &like=) reproduce the
// ranking, and damaged, missing or foreign files are an error naming the file, never a ranking.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  E2E_DIR, E2E_MODEL as MODEL, startServer, launchBrowser, nativeSearch, trainerSearch, pageState, resultsFor, artifact,
  openPage as openPageIn,
} from './harness.mjs';

const STATIC = path.join(E2E_DIR, 'static-partitioned');
const BROKEN = path.join(E2E_DIR, 'static-partitioned-broken');
const OTHER_MODEL = path.join(E2E_DIR, 'static-partitioned-other-model');
const GALLERY = path.join(STATIC, 'gallery');
const PROMPTS = ['a cat', 'a fish swimming in water', 'a rocket launching into the sky', 'a dog -cat', '2:guitar + music'];

if (!existsSync(path.join(GALLERY, 'gallery.json'))) {
  throw new Error(`${GALLERY} has no gallery: run scripts/test-e2e.sh (it partitions the test gallery)`);
}
const galleryId = JSON.parse(readFileSync(path.join(GALLERY, 'gallery.json'), 'utf8')).gallery_id;

let server, broken, otherModel, browser;
const cspViolations = [];
before(async () => {
  [server, broken, otherModel, browser] = await Promise.all([startServer(STATIC), startServer(BROKEN), startServer(OTHER_MODEL), launchBrowser()]);
});
after(async () => {
  await browser?.close();
  await Promise.all([server?.stop(), broken?.stop(), otherModel?.stop()]);
});

const openPage = (url) => openPageIn(browser.context, url, cspViolations);
const files = (rows) => rows.slice(0, 10).map((r) => r.file);
const workerFiles = async (page) => (await page.evaluate(() => window.imgpick.workerResources())).map((e) => new URL(e.name).pathname);

test('partitioned: the first load is the header, and the top 10 equal `trainer search` on the same files', async () => {
  const { page, problems } = await openPage(server.url);
  assert.equal(await pageState(page), 'ready', await page.textContent('#error-message'));
  assert.match(await page.textContent('#model-info'), /^15 pictures/);
  const first = await workerFiles(page);
  assert.ok(first.includes(`/gallery/${galleryId}/index.bin`), first.join(', '));
  assert.ok(!first.some((f) => f.includes('/lists/') || f.includes('/meta/') || f.endsWith('gallery.bin')),
    `nothing but the header of the gallery on the first load: ${first.join(', ')}`);
  for (const prompt of PROMPTS) {
    await page.fill('#q', '');
    await page.type('#q', prompt, { delay: 10 });
    const shown = await resultsFor(page, prompt);
    const native = await nativeSearch(server.url, MODEL, GALLERY, prompt, 10);
    assert.deepEqual(files(shown), native.map((r) => r.file), `top-10 for ${JSON.stringify(prompt)}`);
    shown.slice(0, 10).forEach((r, i) => assert.ok(Math.abs(r.score - native[i].score) < 1e-5,
      `${prompt} #${i}: page ${r.score} vs native ${native[i].score}`));
    // Each result's match strength is the engine's (text queries of the calibrated model; the running results carry it).
    const strengths = await page.$$eval('#results > li.result', (lis) => lis.slice(0, 10).map((li) => li.dataset.strength ?? null));
    const reference = trainerSearch(MODEL, GALLERY, prompt, 10).map((r) => (typeof r.strong === 'boolean' ? (r.strong ? 'strong' : 'weaker') : null));
    assert.deepEqual(strengths, reference, `strengths for ${JSON.stringify(prompt)}`);
    // Metadata came with the answer: captions and thumbnails are shown, and the status says what was searched.
    assert.ok(await page.$eval('#results > li.result:first-child .caption', (p) => p.textContent.length > 0));
    assert.match(await page.textContent('#status'), /of 15 scored \(2 of 4 lists\)/);
  }
  const after = await workerFiles(page);
  assert.ok(after.some((f) => f.startsWith(`/gallery/${galleryId}/lists/`)), 'queries fetched lists');
  assert.ok(after.some((f) => f.startsWith(`/gallery/${galleryId}/meta/`)), 'and metadata blocks');
  await page.screenshot({ path: artifact('20-partitioned.png') });
  assert.deepEqual(problems, []);
  await page.close();
});

test('partitioned: shared links reproduce the ranking, "more like this" included', async () => {
  const prompt = PROMPTS[1];
  const { page } = await openPage(`${server.url}?q=${encodeURIComponent(prompt)}`);
  assert.equal(await pageState(page), 'ready');
  const shown = await resultsFor(page, prompt);
  assert.deepEqual(files(shown), (await nativeSearch(server.url, MODEL, GALLERY, prompt, 10)).map((r) => r.file));
  const id = shown[2].id;
  await page.close();
  // A fresh page with only the link: it finds the picture's list through its metadata, then ranks by its vector.
  const { page: liked } = await openPage(`${server.url}?like=${id}`);
  assert.equal(await pageState(liked), 'ready');
  const like = await resultsFor(liked, `like:${id}`);
  const res = await fetch(`${server.url}api/search?like=${id}&k=10`);
  const api = (await res.json()).results;
  assert.deepEqual(like.slice(0, 10).map((r) => r.id), api.map((r) => r.id), '`web` ranks like=ID the same');
  assert.ok(!like.some((r) => r.id === id), 'the picture itself is left out');
  assert.ok((await liked.textContent('#like-caption')).length > 0, 'the banner names the picture');
  await liked.close();
});

test('partitioned: damaged or missing lists and a header of another model are errors naming the file', async () => {
  const { page } = await openPage(`${broken.url}?q=${encodeURIComponent('a cat')}`);
  assert.equal(await pageState(page), 'ready', 'the header is fine: the page loads');
  await page.waitForFunction(() => /Could not search/.test(document.getElementById('status').textContent), null, { timeout: 20_000 });
  const status = await page.textContent('#status');
  assert.match(status, new RegExp(`gallery/${galleryId}/lists/000/00000\\d\\.bin: .*(CRC-32 mismatch|404)`), status);
  assert.equal(await page.$$eval('#results > li.result', (lis) => lis.length), 0, 'no ranking from fewer lists than planned');
  await page.close();

  const { page: other } = await openPage(otherModel.url);
  assert.equal(await pageState(other), 'error');
  assert.match(await other.textContent('#error-message'), /index\.bin: made for model f{32}.*republish/);
  await other.close();
});
