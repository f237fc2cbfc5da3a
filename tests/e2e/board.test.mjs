// The board of picks (issue #20) in Chromium: pins survive a reload (IndexedDB), reordering by buttons, keyboard
// and drag and drop survives one too, a board link opened in a fresh browser shows the same board in the same
// order (flat, partitioned and server galleries: the receiver's page has none of the pictures' metadata yet),
// the Markdown and CSV exports (read from the download and the clipboard) credit the pinned pictures in order,
// and an IndexedDB that fails (a newer version, blocked, full) is said so while the board lives on in the page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  E2E_DIR, E2E_STATIC as STATIC, E2E_GALLERY as GALLERY, startServer, launchBrowser, pageState, resultsFor, artifact,
  openPage as openPageIn,
} from './harness.mjs';

const PARTITIONED = path.join(E2E_DIR, 'static-partitioned');
const DB_URL = process.env.IMGPICK_E2E_DB_URL;
const dbSkip = DB_URL ? false : `no database: ${process.env.IMGPICK_E2E_DB_SKIPPED || 'IMGPICK_E2E_DB_URL is not set (run scripts/test-e2e.sh)'}`;
if (dbSkip) console.log(`board.test.mjs: the server-gallery case is skipped: ${dbSkip}`);
const index = JSON.parse(readFileSync(path.join(GALLERY, 'gallery.json'), 'utf8'));
const byFile = new Map(index.items.map((it) => [it.file, it]));
const PROMPT = 'a dog';

let flat, partitioned, dbServer, browser;
const cspViolations = [];
before(async () => {
  [flat, partitioned, browser] = await Promise.all([startServer(STATIC), startServer(PARTITIONED), launchBrowser()]);
  if (!dbSkip) dbServer = await startServer(path.join(E2E_DIR, 'static-db'), ['--db', DB_URL]);
});
after(async () => {
  await browser?.close();
  await Promise.all([flat?.stop(), partitioned?.stop(), dbServer?.stop()]);
  assert.deepEqual(cspViolations, []);
});

const grantClipboard = (context, url) => context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(url).origin });

async function ready(page) {
  assert.equal(await pageState(page), 'ready', await page.textContent('#error-message'));
}

/** The board's pins as shown: [{ key, id, caption }] in order, once the board holds `count`. */
async function boardPins(page, count) {
  await page.waitForFunction((n) => document.getElementById('board').dataset.count === String(n), count, { timeout: 15_000 });
  return page.$$eval('#board-list > li.pin', (lis) => lis.map((li) => ({
    key: li.dataset.key, id: Number(li.dataset.id), caption: li.querySelector('.caption').textContent, changed: li.classList.contains('changed'),
  })));
}

/** The board record IndexedDB holds now: its pins' keys in order. */
const storedKeys = (page) => page.evaluate(() => new Promise((resolve, reject) => {
  const req = indexedDB.open('imgpick-board', 1);
  req.onsuccess = () => {
    const get = req.result.transaction('boards').objectStore('boards').get('mine');
    get.onsuccess = () => { req.result.close(); resolve(get.result ? get.result.pins.map((p) => p.key) : []); };
    get.onerror = () => reject(get.error);
  };
  req.onerror = () => reject(req.error);
}));

async function waitStored(page, keys) {
  for (let i = 0; i < 50; i++) {
    if (JSON.stringify(await storedKeys(page)) === JSON.stringify(keys)) return;
    await page.waitForTimeout(100);
  }
  assert.deepEqual(await storedKeys(page), keys, 'IndexedDB holds the board as shown');
}

/** Searches `prompt` and pins the first three results: their files. */
async function pinThree(page, prompt) {
  await page.fill('#q', prompt);
  const rows = await resultsFor(page, prompt).catch(async (e) => {
    throw new Error(`no results for “${prompt}”: ${await page.textContent('#status')} (${page.url()}): ${e.message}`);
  });
  assert.ok(rows.length >= 3, `${rows.length} results`);
  for (let i = 0; i < 3; i++) await page.locator('#results > li.result button.pin-button').nth(i).click();
  assert.equal(await page.getAttribute('#results > li.result button.pin-button >> nth=0', 'aria-pressed'), 'true');
  return rows.slice(0, 3);
}

async function openBoard(page) {
  if (await page.isHidden('#board')) await page.click('#board-toggle');
  await page.waitForSelector('#board', { state: 'visible' });
}

/** Opens `link` in a browser of its own (a fresh profile: nothing stored, nothing cached) and returns the shared
 *  board it shows: [{ id, caption }]. */
async function sharedBoardIn(link, expectedCount) {
  const fresh = await launchBrowser();
  try {
    const { page, problems } = await openPageIn(fresh.context, link, cspViolations);
    await ready(page);
    await page.waitForSelector('#board-shared-list > li', { timeout: 20_000 });
    await page.waitForFunction((n) => document.querySelectorAll('#board-shared-list > li').length === n, expectedCount);
    const shown = await page.$$eval('#board-shared-list > li', (lis) => lis.map((li) => ({
      id: Number(li.dataset.id), caption: li.querySelector('.caption')?.textContent ?? null,
    })));
    assert.equal(await page.getAttribute('#board-toggle', 'aria-expanded'), 'true', 'a board link opens the board');
    // read-only: no reorder or remove there; "Add all" copies it into this browser's own board
    assert.equal(await page.locator('#board-shared-list button[data-action="remove"]').count(), 0);
    await page.click('text=Add all to my board');
    const mine = await boardPins(page, expectedCount);
    assert.deepEqual(mine.map((p) => p.id), shown.map((s) => s.id));
    assert.deepEqual(problems, []);
    return shown;
  } finally {
    await fresh.close();
  }
}

test('flat gallery: pins survive a reload, reordering (buttons, keyboard, drag and drop) too, and a board link reproduces it', async () => {
  const { page, problems } = await openPageIn(browser.context, flat.url, cspViolations);
  await ready(page);
  await grantClipboard(browser.context, flat.url);
  const picked = await pinThree(page, PROMPT);
  const [A, B, C] = picked.map((r) => `gallery:${r.file}`);
  assert.equal(await page.textContent('#board-toggle'), 'Board (3)');
  await openBoard(page);
  let pins = await boardPins(page, 3);
  assert.deepEqual(pins.map((p) => p.key), [A, B, C]);
  assert.deepEqual(pins.map((p) => p.caption), picked.map((r) => byFile.get(r.file).caption));
  await waitStored(page, [A, B, C]);

  await page.reload();
  await ready(page);
  await openBoard(page);
  assert.deepEqual((await boardPins(page, 3)).map((p) => p.key), [A, B, C], 'the same board after a reload');

  // ↓ on the first (with the keyboard: focus and Enter), the focus stays on the moved pin
  await page.focus('#board-list > li:nth-child(1) button[data-action="down"]');
  await page.keyboard.press('Enter');
  assert.deepEqual((await boardPins(page, 3)).map((p) => p.key), [B, A, C]);
  assert.equal(await page.evaluate(() => document.activeElement.closest('li')?.dataset.key), A);
  // Alt+↑ on the third
  await page.focus('#board-list > li:nth-child(3) button[data-action="remove"]');
  await page.keyboard.press('Alt+ArrowUp');
  assert.deepEqual((await boardPins(page, 3)).map((p) => p.key), [B, C, A]);
  // drag the first below the last
  const last = page.locator('#board-list > li:nth-child(3)');
  const box = await last.boundingBox();
  await page.locator('#board-list > li:nth-child(1)').dragTo(last, { targetPosition: { x: 20, y: box.height - 4 } });
  assert.deepEqual((await boardPins(page, 3)).map((p) => p.key), [C, A, B]);
  await waitStored(page, [C, A, B]);
  await page.screenshot({ path: artifact('40-board.png') });

  await page.reload();
  await ready(page);
  await openBoard(page);
  const order = await boardPins(page, 3);
  assert.deepEqual(order.map((p) => p.key), [C, A, B], 'the new order after a reload');
  assert.ok(order.every((p) => !p.changed), 'same gallery: nothing marked');

  // the link: ids in the board's order
  await page.click('#board-share');
  const link = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(new URL(link).searchParams.get('board'), order.map((p) => p.id).join(','));
  const shared = await sharedBoardIn(link, 3);
  assert.deepEqual(shared.map((s) => s.id), order.map((p) => p.id), 'the same pictures in the same order');
  assert.deepEqual(shared.map((s) => s.caption), order.map((p) => p.caption));

  // remove one, then clear with a confirmation (cancel first)
  await page.click('#board-list > li:nth-child(2) button[data-action="remove"]');
  assert.deepEqual((await boardPins(page, 2)).map((p) => p.key), [C, B]);
  await page.click('#board-clear');
  await page.click('text=Keep it');
  assert.equal((await boardPins(page, 2)).length, 2);
  await page.click('#board-clear');
  await page.click('text=Clear the board');
  await boardPins(page, 0);
  await waitStored(page, []);
  assert.deepEqual(problems, []);
  await page.close();
});

test('exports: the Markdown and CSV downloads and copies credit the pinned pictures in the board\'s order', async () => {
  const { page, problems } = await openPageIn(browser.context, flat.url, cspViolations);
  await ready(page);
  await grantClipboard(browser.context, flat.url);
  const picked = await pinThree(page, 'a bird');
  const items = picked.map((r) => byFile.get(r.file));
  await openBoard(page);

  const [mdDownload] = await Promise.all([page.waitForEvent('download'), page.click('[data-export="md-download"]')]);
  assert.equal(mdDownload.suggestedFilename(), 'imgpick-credits.md');
  const md = readFileSync(await mdDownload.path(), 'utf8');
  const lines = md.trimEnd().split('\n');
  assert.equal(lines[0], '# Picture credits');
  assert.equal(lines.length, 2 + items.length);
  items.forEach((item, i) => {
    const line = lines[2 + i];
    assert.ok(line.startsWith(`${i + 1}. “`), line);
    // the caption as written, with Markdown's specials escaped
    assert.ok(line.includes(item.caption.replace(/[\\`*_[\]<>|~&!#]/g, (c) => `\\${c}`)), `${item.caption} in ${line}`);
    if (item.url) assert.ok(line.includes('[picture](https://'), line);
    assert.ok(/\]\(https:\/\/(creativecommons|www\.gnu|opensource)/.test(line) || /— (public domain|licence unknown|[\w.-]+)( —|$)/.test(line), line);
  });
  await page.click('[data-export="md-copy"]');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), md, 'the copy is the download');

  const [csvDownload] = await Promise.all([page.waitForEvent('download'), page.click('[data-export="csv-download"]')]);
  assert.equal(csvDownload.suggestedFilename(), 'imgpick-credits.csv');
  const csvBytes = readFileSync(await csvDownload.path());
  assert.deepEqual([...csvBytes.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'a UTF-8 byte-order mark, for spreadsheets');
  const csv = csvBytes.subarray(3).toString('utf8');
  const rows = csv.trimEnd().split('\r\n');
  assert.equal(rows[0], '"title","source","licence","licence_url","link"');
  assert.equal(rows.length, 1 + items.length);
  items.forEach((item, i) => {
    const cells = JSON.parse(`[${rows[1 + i].replace(/""/g, '\\"')}]`); // quoted, no line breaks in these captions
    assert.equal(cells[0], /^[=+\-@]/.test(item.caption) ? `'${item.caption}` : item.caption);
    assert.equal(cells[1], item.source || '');
    assert.ok(cells[2], 'a licence name');
    assert.equal(cells[4], item.url && /^https?:/.test(item.url) ? item.url : '');
  });
  await page.click('[data-export="csv-copy"]');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), csv, 'the copy is the download, less the BOM');
  // the viewer's pin button says the picture is pinned, and unpins it
  await page.click('#results > li.result:first-child button.thumb');
  assert.equal(await page.getAttribute('#viewer-pin', 'aria-pressed'), 'true');
  await page.click('#viewer-pin');
  assert.equal(await page.getAttribute('#viewer-pin', 'aria-pressed'), 'false');
  await page.keyboard.press('Escape');
  assert.equal((await boardPins(page, 2)).length, 2);
  await page.click('#board-clear');
  await page.click('text=Clear the board');
  await boardPins(page, 0);
  assert.deepEqual(problems, []);
  await page.close();
});

/** Pins three results of `prompt` at `url`, copies the board link: [{ id, caption }] in order and the link. */
async function pinAndLink(url, prompt) {
  const fresh = await launchBrowser();
  try {
    await grantClipboard(fresh.context, url);
    const { page, problems } = await openPageIn(fresh.context, url, cspViolations);
    await ready(page);
    await pinThree(page, prompt);
    await openBoard(page);
    const pins = await boardPins(page, 3);
    await page.click('#board-share');
    const link = await page.evaluate(() => navigator.clipboard.readText());
    assert.deepEqual(problems, []);
    return { pins, link };
  } finally {
    await fresh.close();
  }
}

test('partitioned gallery: a board link opened in a fresh browser looks its pictures up and shows them in order', async () => {
  const { pins, link } = await pinAndLink(partitioned.url, 'a cat');
  const shared = await sharedBoardIn(link, 3);
  assert.deepEqual(shared, pins.map((p) => ({ id: p.id, caption: p.caption })));
});

test('server gallery: a board link opened in a fresh browser shows the same board', { skip: dbSkip }, async () => {
  const { pins, link } = await pinAndLink(dbServer.url, 'a cat');
  const shared = await sharedBoardIn(link, 3);
  assert.deepEqual(shared, pins.map((p) => ({ id: p.id, caption: p.caption })));
});

test('a board link with an id the gallery lacks, or a damaged one, says so', async () => {
  const { page, problems } = await openPageIn(browser.context, `${flat.url}?board=1,${index.count + 5},0`, cspViolations);
  await ready(page);
  await page.waitForFunction(() => document.querySelectorAll('#board-shared-list > li').length === 3);
  assert.match(await page.textContent(`#board-shared-list > li[data-id="${index.count + 5}"]`), /is not in this gallery/);
  await page.goto(`${flat.url}?board=1,two`);
  await ready(page);
  await page.waitForSelector('#board-shared .board-hint[role="status"]:not([hidden])');
  assert.match(await page.textContent('#board-shared'), /link is damaged: “two” is not a picture number/);
  await page.click('text=Close the shared board');
  assert.equal(new URL(page.url()).searchParams.has('board'), false, 'closing it takes it out of the address');
  assert.deepEqual(problems, []);
  await page.close();
});

/** Replaces the stored board with `pins` (as an older page, or a page on an older gallery, left it). */
const storeBoard = (page, pins) => page.evaluate((pins) => new Promise((resolve, reject) => {
  const req = indexedDB.open('imgpick-board', 1);
  req.onupgradeneeded = () => req.result.createObjectStore('boards');
  req.onsuccess = () => {
    const tx = req.result.transaction('boards', 'readwrite');
    tx.objectStore('boards').put({ format: 1, pins, saved: Date.now() }, 'mine');
    tx.oncomplete = () => { req.result.close(); resolve(); };
    tx.onerror = () => reject(tx.error);
  };
  req.onerror = () => reject(req.error);
}), pins);

const GONE = { key: 'gallery:gone/picture.jpg', id: 2, mine: false, file: 'gone/picture.jpg', thumb: 'thumbs/gone.jpg',
  caption: 'a picture no longer here', source: 'Someone', licence: 'CC0-1.0', url: 'https://example.org/p', gallery: 'old:1', changed: false };

test('a republished gallery: a pin whose picture moved follows it, one that is gone is marked, its credit kept', async () => {
  const b = await launchBrowser();
  try {
    await grantClipboard(b.context, flat.url);
    const { page, problems } = await openPageIn(b.context, flat.url, cspViolations);
    await ready(page);
    const [first, second] = index.items;
    // `first`'s pin carries `second`'s id: the gallery was republished and the picture moved
    const moved = { key: `gallery:${first.file}`, id: second.id, mine: false, file: first.file, thumb: first.thumb, caption: first.caption,
      source: first.source, licence: first.licence, url: first.url || '', gallery: 'old:1', changed: false };
    await storeBoard(page, [moved, GONE]);
    await page.reload();
    await ready(page);
    await openBoard(page);
    await page.waitForSelector('#board-list > li.changed');
    const pins = await boardPins(page, 2);
    assert.deepEqual(pins.map((p) => [p.key, p.id, p.changed]), [[moved.key, first.id, false], [GONE.key, GONE.id, true]]);
    const gone = page.locator('#board-list > li.changed');
    assert.match(await gone.textContent(), /a picture no longer here.*Someone.*CC0 1\.0.*The gallery has changed since you pinned this/s);
    assert.match(await page.textContent('#board-share-note'), /1 marked pin is not in the link/);
    await page.click('#board-share');
    assert.equal(new URL(await page.evaluate(() => navigator.clipboard.readText())).searchParams.get('board'), String(first.id));
    await page.click('[data-export="csv-copy"]');
    assert.match(await page.evaluate(() => navigator.clipboard.readText()), /"a picture no longer here","Someone","CC0 1\.0"/, 'its credit is exported');
    assert.deepEqual(problems, []);
  } finally {
    await b.close();
  }
});

test('a republished partitioned gallery: the pins of another gallery are looked up and a moved one is marked', async () => {
  const b = await launchBrowser();
  try {
    const { page, problems } = await openPageIn(b.context, partitioned.url, cspViolations);
    await ready(page);
    await storeBoard(page, [{ ...GONE, id: 0 }]);
    await page.reload();
    await ready(page);
    await openBoard(page);
    await page.waitForSelector('#board-list > li.changed', { timeout: 20_000 });
    assert.deepEqual((await boardPins(page, 1)).map((p) => p.changed), [true]);
    assert.deepEqual(problems, []);
  } finally {
    await b.close();
  }
});

test('a failing IndexedDB is said so, and the board lives on in the page', async () => {
  // 1. A real failure: the board's database exists at a newer version than this page knows.
  const one = await launchBrowser();
  try {
    const { page, problems } = await openPageIn(one.context, flat.url, cspViolations);
    await ready(page);
    await page.evaluate(() => new Promise((resolve, reject) => {
      const req = indexedDB.open('imgpick-board', 2);
      req.onupgradeneeded = () => { if (!req.result.objectStoreNames.contains('boards')) req.result.createObjectStore('boards'); };
      req.onsuccess = () => { req.result.close(); resolve(); };
      req.onerror = () => reject(req.error);
    }));
    await page.reload();
    await ready(page);
    assert.match(await page.getAttribute('#board-toggle', 'class'), /\bwarn\b/, 'the Board button shows there is a problem');
    await openBoard(page);
    await page.waitForSelector('#board .board-warning:not([hidden])');
    assert.match(await page.textContent('#board .board-warning'), /your board could not be read from this device: it was saved by a newer imgpick/);
    await pinThree(page, PROMPT);
    assert.equal((await boardPins(page, 3)).length, 3, 'pinned in the page all the same');
    assert.match(await page.textContent('#board .board-warning'), /kept in this page until you close it/);
    await page.screenshot({ path: artifact('41-board-store-failed.png') });
    assert.deepEqual(problems, []);
  } finally {
    await one.close();
  }
  // 2. Blocked (another tab holds the database), and 3. a full disk, simulated in the page.
  for (const [what, script, message] of [
    ['blocked', () => {
      const open = IDBFactory.prototype.open;
      IDBFactory.prototype.open = function (name, version) {
        if (name !== 'imgpick-board') return open.call(this, name, version);
        const req = {};
        setTimeout(() => req.onblocked?.(new Event('blocked')), 0);
        return req;
      };
    }, /could not be read from this device: the board is open in an older imgpick tab: close it and reload/],
    ['full', () => {
      const put = IDBObjectStore.prototype.put;
      IDBObjectStore.prototype.put = function (...args) {
        if (this.name === 'boards') throw new DOMException('quota', 'QuotaExceededError');
        return put.apply(this, args);
      };
    }, /could not be saved on this device: this device has no room left for it/],
  ]) {
    const b = await launchBrowser();
    try {
      await b.context.addInitScript(script);
      const { page, problems } = await openPageIn(b.context, flat.url, cspViolations);
      await ready(page);
      await pinThree(page, PROMPT);
      await openBoard(page);
      assert.equal((await boardPins(page, 3)).length, 3, `${what}: the board is kept in the page`);
      await page.waitForSelector('#board .board-warning:not([hidden])');
      assert.match(await page.textContent('#board .board-warning'), message, what);
      assert.deepEqual(problems, [], what);
    } finally {
      await b.close();
    }
  }
});
