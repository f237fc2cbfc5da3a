// Browser end-to-end tests: the real page, the real wasm package and a gallery published by the trainer,
// served by the `web` crate and driven in headless Chromium. Prepared and run by scripts/test-e2e.sh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  E2E_STATIC as STATIC, E2E_CORRUPT as CORRUPT, E2E_NOPKG as NOPKG, E2E_MODEL as MODEL, E2E_GALLERY as GALLERY,
  startServer, launchBrowser, nativeSearch, pageState, resultsFor, artifact, openPage as openPageIn,
} from './harness.mjs';

const PROMPTS = ['a cat', 'a fish swimming in water', 'a rocket launching into the sky', 'a cup of coffee',
  'a dog -cat', '2:guitar + music'];

if (!existsSync(path.join(GALLERY, 'gallery.bin'))) {
  throw new Error(`${GALLERY} has no gallery: run scripts/test-e2e.sh (it publishes one from assets/photos)`);
}

let server, corruptServer, noPkgServer, browser;
const cspViolations = [];

before(async () => {
  [server, corruptServer, noPkgServer, browser] = await Promise.all([startServer(STATIC), startServer(CORRUPT),
    startServer(NOPKG), launchBrowser()]);
});
after(async () => {
  await browser?.close();
  await Promise.all([server?.stop(), corruptServer?.stop(), noPkgServer?.stop()]);
});

const openPage = (url) => openPageIn(browser.context, url, cspViolations);

const files = (rows) => rows.slice(0, 10).map((r) => r.file);

test('typing a prompt shows results, top 10 equal to `trainer search`', async () => {
  const { page, problems } = await openPage(server.url);
  assert.equal(await pageState(page), 'ready', await page.textContent('#error-message'));
  assert.ok(await page.isVisible('#empty'), 'empty state with example prompts before any search');
  await page.screenshot({ path: artifact('01-empty.png') });
  for (const prompt of PROMPTS) {
    await page.fill('#q', '');
    await page.type('#q', prompt, { delay: 15 });
    const shown = await resultsFor(page, prompt);
    assert.ok(shown.length >= 10, `${prompt}: ${shown.length} results`);
    const native = await nativeSearch(server.url, MODEL, GALLERY, prompt, 10);
    assert.deepEqual(files(shown), native.map((r) => r.file), `top-10 for ${JSON.stringify(prompt)}`);
    shown.slice(0, 10).forEach((r, i) => assert.ok(Math.abs(r.score - native[i].score) < 1e-4,
      `${prompt} #${i}: page ${r.score} vs native ${native[i].score}`));
    for (let i = 1; i < shown.length; i++) assert.ok(shown[i - 1].score >= shown[i].score, 'best first');
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('q'), prompt, 'the URL reflects the query');
  }
  await page.fill('#q', 'a cat');
  await resultsFor(page, 'a cat');
  await page.screenshot({ path: artifact('02-results.png') });
  assert.deepEqual(problems, []);
  await page.close();
});

test('a shared link reproduces the same ranking', async () => {
  for (const prompt of PROMPTS.slice(0, 3)) {
    const { page } = await openPage(`${server.url}?q=${encodeURIComponent(prompt)}`);
    assert.equal(await pageState(page), 'ready');
    assert.equal(await page.inputValue('#q'), prompt);
    const shown = await resultsFor(page, prompt);
    assert.deepEqual(files(shown), (await nativeSearch(server.url, MODEL, GALLERY, prompt, 10)).map((r) => r.file));
    await page.close();
  }
});

test('"more like this" ranks by the picture, is in the URL, and a link to it reproduces it', async () => {
  const { page } = await openPage(`${server.url}?q=${encodeURIComponent('a cat')}`);
  await pageState(page);
  const first = (await resultsFor(page, 'a cat'))[0];
  await page.click('#results > li.result:first-child button.small');
  const like = await resultsFor(page, `like:${first.id}`);
  assert.ok(like.length > 0);
  assert.ok(!like.some((r) => r.id === first.id), 'the picture itself is left out');
  assert.equal(new URL(page.url()).searchParams.get('like'), String(first.id));
  const { page: shared } = await openPage(page.url());
  await pageState(shared);
  assert.deepEqual(await resultsFor(shared, `like:${first.id}`), like);
  // The native API computes the same neighbours.
  const api = await (await fetch(`${server.url}api/search?like=${first.id}&k=10`)).json();
  assert.ok(api.results, `/api/search answered ${JSON.stringify(api)}`);
  assert.deepEqual(api.results.map((r) => r.file), files(like));
  await page.goBack();
  await resultsFor(page, 'a cat');
  await Promise.all([page.close(), shared.close()]);
});

test('enlarge a result and explain which words mattered', async () => {
  const prompt = 'a black cat sitting';
  const { page } = await openPage(`${server.url}?q=${encodeURIComponent(prompt)}`);
  await pageState(page);
  await resultsFor(page, prompt);
  await page.focus('#q');
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.evaluate(() => document.activeElement.closest('li')?.dataset.rank), '1', 'ArrowDown focuses the best result');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.evaluate(() => document.activeElement.closest('li')?.dataset.rank), '2');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#viewer[open]');
  assert.ok((await page.getAttribute('#viewer-img', 'alt')).length > 0, 'the enlarged picture has alt text');
  await page.click('#viewer-why');
  await page.waitForSelector('#why-list li .word');
  const words = await page.$$eval('#why-list .word', (ws) => ws.map((w) => w.textContent));
  assert.deepEqual([...words].map((w) => w.replace(/ \(unknown word\)$/, '')).sort(), ['a', 'black', 'cat', 'sitting']);
  await page.screenshot({ path: artifact('03-why.png') });
  await page.keyboard.press('Escape');
  assert.equal(await page.$('#viewer[open]'), null);
  await page.close();
});

test('a hostile prompt is shown as text, never run', async () => {
  const hostile = '<img src=x onerror=alert(1)>';
  let dialogs = 0;
  const { page } = await openPage(server.url);
  page.on('dialog', (d) => { dialogs++; d.dismiss(); });
  await pageState(page);
  await page.fill('#q', hostile);
  const shown = await resultsFor(page, hostile);
  assert.ok(shown.length > 0, 'the prompt still searches (its words)');
  assert.equal(await page.inputValue('#q'), hostile);
  await page.click('#results > li.result:first-child button.thumb');
  await page.waitForSelector('#viewer[open]');
  await page.click('#viewer-why');
  await page.waitForSelector('#why-list li');
  assert.equal(await page.textContent('#why-prompt'), hostile, 'the explanation names the prompt, as text');
  await page.keyboard.press('Escape');
  assert.ok((await page.textContent('#status')).includes(`for “${hostile}”`), 'the status line shows the prompt as text');
  assert.equal(await page.title(), `${hostile} — imgpick`);
  // Reload from the shared link: the prompt comes back from the URL, still as text.
  const { page: shared } = await openPage(page.url());
  shared.on('dialog', (d) => { dialogs++; d.dismiss(); });
  await pageState(shared);
  await resultsFor(shared, hostile);
  assert.equal(await shared.inputValue('#q'), hostile);
  assert.ok((await shared.textContent('#status')).includes(`for “${hostile}”`));
  for (const p of [page, shared]) {
    assert.equal(await p.$$eval('img', (imgs) => imgs.filter((i) => i.getAttribute('src') === 'x').length), 0, 'no injected <img>');
    assert.equal(await p.$$eval('[onerror]', (els) => els.length), 0);
  }
  await shared.waitForTimeout(300);
  assert.equal(dialogs, 0, 'no alert fired');
  await Promise.all([page.close(), shared.close()]);
});

test('a corrupted gallery file shows the error state with the reason', async () => {
  const { page } = await openPage(corruptServer.url);
  assert.equal(await pageState(page), 'error');
  assert.ok(await page.isVisible('#error'));
  const message = await page.textContent('#error-message');
  assert.match(message, /gallery|CRC|checksum|corrupt/i, message);
  assert.ok(await page.isHidden('#loading'));
  await page.screenshot({ path: artifact('04-error.png') });
  await page.close();
});

test('a missing wasm package shows the error state saying how to build it', async () => {
  const { page } = await openPage(noPkgServer.url);
  assert.equal(await pageState(page), 'error');
  assert.match(await page.textContent('#error-message'), /wasm_model.*404.*build-wasm\.sh/s);
  await page.close();
});

test('works on a phone-sized screen', async () => {
  const { page } = await openPage(`${server.url}?q=${encodeURIComponent('a rocket')}`);
  await page.setViewportSize({ width: 390, height: 800 });
  await pageState(page);
  await resultsFor(page, 'a rocket');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling (overflow ${overflow}px)`);
  await page.screenshot({ path: artifact('05-phone.png') });
  await page.close();
});

test('the big files are kept in the Cache API for revisits', async () => {
  const { page } = await openPage(server.url);
  await pageState(page);
  const keys = await page.evaluate(async () => (await (await caches.open('imgpick-v1')).keys()).map((r) => new URL(r.url).pathname + new URL(r.url).search));
  for (const want of ['/gallery/gallery.bin', '/pkg/wasm_model_bg.wasm', '/model/manifest.json']) {
    assert.ok(keys.includes(want), `${want} cached (have ${keys.join(', ')})`);
  }
  assert.ok(keys.some((k) => k.startsWith('/model/text_encoder') && k.includes('sha256=')), 'weights cached by content hash');
  await page.close();
});

test('a revisit works offline (service worker + Cache API)', async () => {
  const prompt = 'a rocket launching into the sky';
  const { page } = await openPage(`${server.url}?q=${encodeURIComponent(prompt)}`);
  await pageState(page);
  const online = await resultsFor(page, prompt);
  await page.evaluate(() => navigator.serviceWorker.ready);
  await page.reload(); // the first load is not yet controlled by the service worker
  await pageState(page);
  await resultsFor(page, prompt);
  await browser.context.setOffline(true);
  try {
    await page.reload();
    assert.equal(await pageState(page), 'ready', await page.textContent('#error-message'));
    assert.deepEqual(await resultsFor(page, prompt), online);
  } finally {
    await browser.context.setOffline(false);
  }
  await page.close();
});

test('the page is cross-origin isolated (precise timers in the worker)', async () => {
  const { page } = await openPage(server.url);
  await pageState(page);
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), true);
  await page.close();
});

test('no Content-Security-Policy violations', () => {
  assert.deepEqual(cspViolations, []);
});

// The README's screenshots come from the default gallery (first-impression.test.mjs), not from this test gallery.
