// Passage mode (issue #20) in the real page: a paragraph pasted into the search box gets pictures per idea, each
// naming its sentences, and the best for the whole passage; the link carries the text compressed in its
// fragment (never in the query a server sees) and reproduces the answer, on the flat gallery and its
// partitioned copy, as /api/search answers it; 👍/👎 refine the whole passage's pictures and stay in the link. Hostile passages — 20
// paragraphs, emoji only, HTML with script, 1 MB — get a clear message and never freeze the page. With the default
// gallery published in static/gallery, it photographs a passage's suggestions there (tests/artifacts/65-*.jpg;
// IMGPICK_UPDATE_DOCS_SCREENSHOT=1 copies it to docs/screenshots/passage.jpg for the README).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, E2E_MODEL, startServer, artifact } from './harness.mjs';
import { startWorkflowSuite, stopWorkflowSuite, openReady, grid } from './workflow-helpers.mjs';
import { fitPassage } from '../../static/page/passage-text.js';

let suite, sites, flat, part;
before(async () => {
  suite = await startWorkflowSuite();
  ({ sites, flat, part } = suite);
});
after(() => stopWorkflowSuite(suite));

const PASSAGE = 'A black cat sleeps in the dark. Its eyes shine green.\n\n'
  + 'Later a rocket launches into the sky. Far away, galaxies glow in the night.\n\n'
  + 'At home, a cup of coffee waits on a saucer.';

const open = (server, search = '') => openReady(suite, `${server.url}${search}`);

/** Pastes `text` into the search box as a user would (a paste event with the clipboard's text). */
const paste = (page, text) => page.evaluate((t) => {
  const input = document.getElementById('q');
  input.focus();
  const data = new DataTransfer();
  data.setData('text/plain', t);
  input.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
}, text);

/** Waits for the passage's answer (done or error) for a text of `length` characters: what the page shows. */
async function answer(page, length) {
  await page.waitForFunction((n) => document.getElementById('results').dataset.query === `passage:${n}`
    && document.getElementById('results').dataset.search === location.search
    && ['done', 'error'].includes(document.getElementById('passage').dataset.state), length, { timeout: 60_000 });
  return page.evaluate(() => ({
    state: document.getElementById('passage').dataset.state,
    ideas: [...document.querySelectorAll('#passage-ideas .idea')].map((s) => ({
      which: s.querySelector('.idea-which').textContent, text: s.querySelector('.idea-text').textContent,
      first: Number(s.dataset.first), last: Number(s.dataset.last),
      ids: [...s.querySelectorAll('li.result')].map((li) => Number(li.dataset.id)),
    })),
    note: document.getElementById('passage-note').textContent,
    status: document.getElementById('status').textContent,
  }));
}

test('a pasted paragraph: pictures per idea naming its sentences, the best for the whole, and a link that reproduces them', async () => {
  const { page, problems } = await open(flat);
  await paste(page, PASSAGE);
  const a = await answer(page, PASSAGE.length);
  assert.equal(a.state, 'done', a.status);
  assert.ok(await page.isVisible('#passage-text'));
  assert.equal(await page.inputValue('#passage-text'), PASSAGE);
  assert.ok(a.ideas.length >= 3 && a.ideas.length <= 5, `${a.ideas.length} ideas from 5 sentences in 3 paragraphs`);
  const sentences = ['A black cat sleeps in the dark.', 'Its eyes shine green.', 'Later a rocket launches into the sky.',
    'Far away, galaxies glow in the night.', 'At home, a cup of coffee waits on a saucer.'];
  for (const idea of a.ideas) {
    // each names its sentences: their numbers and their text
    assert.equal(idea.which, idea.first === idea.last ? `Sentence ${idea.first + 1}` : `Sentences ${idea.first + 1}–${idea.last + 1}`);
    assert.equal(idea.text, sentences.slice(idea.first, idea.last + 1).join(' '));
    assert.ok(idea.ids.length <= 4);
  }
  assert.ok(a.ideas.slice(0, 3).every((i) => i.ids.length === 4), 'four pictures per idea while the 16-picture gallery has them');
  assert.deepEqual([a.ideas[0].first, a.ideas.at(-1).last], [0, 4], 'every sentence belongs to an idea');
  const all = a.ideas.flatMap((i) => i.ids);
  assert.equal(new Set(all).size, all.length, 'each picture is suggested for one idea only');
  const cat = sites.gallery.items.findIndex((i) => i.caption === 'a black cat');
  assert.ok(a.ideas[0].ids.slice(0, 2).includes(cat), `the black cat for "${a.ideas[0].text}"`);
  const whole = await grid(page);
  assert.equal(whole.length, 12);
  assert.match(a.status, /ideas? from 5 sentences.*12 for the whole passage/);
  // The link: the text in the fragment, compressed; nothing of it in the query.
  const url = new URL(page.url());
  assert.equal(url.search, '');
  assert.match(url.hash, /^#text=[A-Za-z0-9_-]+$/);
  assert.ok(!url.hash.includes('cat'), 'compressed, not plain text');
  await page.screenshot({ path: artifact('63-passage.png'), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();

  // /api/search answers the same passage the same way (POSTed, with the page's default grouping).
  const res = await fetch(`${flat.url}api/search`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text: PASSAGE, k: 12, k_idea: 4, collapse: true }) });
  const api = await res.json();
  assert.ok(res.ok, api.error);
  assert.deepEqual(api.ideas.map((i) => i.results.map((h) => h.id)), a.ideas.map((i) => i.ids), '/api/search: the same pictures per idea');
  assert.deepEqual(api.results.map((h) => h.id), whole.map((r) => r.id), '/api/search: the same pictures for the whole');

  for (const server of [flat, part]) {
    const { page: again } = await open(server, url.hash);
    const b = await answer(again, PASSAGE.length);
    assert.deepEqual(b.ideas, a.ideas, `the link reproduces the ideas and their pictures (${server === flat ? 'flat' : 'partitioned'})`);
    const w = await grid(again);
    assert.deepEqual(w.map((r) => r.id), whole.map((r) => r.id));
    w.forEach((r, i) => assert.ok(Math.abs(r.score - whole[i].score) < 1e-5));
    await again.close();
  }
});

test('passage: "From my text…" opens the editor; 👍/👎 refine the whole passage and stay in the link; typing a prompt leaves', async () => {
  const { page } = await open(flat, '?q=a+cat');
  await page.click('#passage-toggle');
  assert.ok(await page.isVisible('#passage-text'));
  await page.fill('#passage-text', PASSAGE);
  await page.click('#passage-go');
  await answer(page, PASSAGE.length);
  const whole = await grid(page);
  const liked = whole[6].id;
  await page.click(`#results > li.result[data-id="${liked}"] button[data-mark="up"]`);
  await page.waitForFunction((id) => new URLSearchParams(location.search).get('up') === String(id), liked);
  await page.waitForSelector(`#results > li.result[data-id="${liked}"] button[data-mark="up"][aria-pressed="true"]`);
  const marked = await grid(page);
  assert.ok(marked.findIndex((r) => r.id === liked) < 6, `the liked picture moved up: ${JSON.stringify(marked.map((r) => r.id))}`);
  assert.ok(new URL(page.url()).hash.startsWith('#text='), 'the text stays in the link with the marks');
  assert.equal(await page.$$eval('.idea li.result button[data-mark]', (b) => b.length), 0, 'marks apply to the whole passage only');
  const link = new URL(page.url());
  await page.fill('#q', 'a guitar');
  await page.waitForFunction(() => document.getElementById('results').dataset.query === 'a guitar');
  assert.ok(await page.isHidden('#passage'));
  assert.equal(new URL(page.url()).hash, '');
  await page.close();
  const { page: again } = await open(flat, `${link.search}${link.hash}`);
  await answer(again, PASSAGE.length);
  assert.deepEqual((await grid(again)).map((r) => r.id), marked.map((r) => r.id), 'the marked passage from its link');
  await again.close();
});

/** Runs `text` through the search box's paste and measures the longest gap between animation frames meanwhile. */
async function pasteMeasured(page, text) {
  await page.evaluate(() => {
    window.__gaps = { max: 0, last: performance.now(), on: true };
    const tick = (t) => { const g = window.__gaps; g.max = Math.max(g.max, t - g.last); g.last = t; if (g.on) requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  });
  await paste(page, text);
  const a = await answer(page, fitPassage(text).text.length); // a text over the engine's limit is cut on paste
  const maxGap = await page.evaluate(() => { window.__gaps.on = false; return window.__gaps.max; });
  return { ...a, maxGap };
}

test('hostile passages: 20 paragraphs, emoji only, HTML with script, 1 MB — a clear message each, never a freeze', async () => {
  const { page, problems } = await open(flat);
  // 20 paragraphs of 3 sentences: all 60 searched.
  const paragraphs = Array.from({ length: 20 }, (_, i) => `Paragraph ${i + 1} tells of a dog in a park. It runs after a ball. Then it rests in the sun.`).join('\n\n');
  const p20 = await pasteMeasured(page, paragraphs);
  assert.equal(p20.state, 'done', p20.status);
  assert.match(p20.status, /from 60 sentences/);
  assert.ok(p20.ideas.length >= 20, `${p20.ideas.length} ideas: a paragraph break always starts one`);
  assert.ok(p20.ideas.every((i) => i.ids.length <= 4));

  // Emoji only: nothing to search, said plainly.
  const emoji = '🐶🐱 🚀✨\n\n🎉🎉🎉 😀!!';
  const e = await pasteMeasured(page, emoji);
  assert.equal(e.state, 'error');
  assert.match(e.status, /no words to search for: only emoji, symbols, punctuation or markup/);
  assert.equal((await grid(page)).length, 0);

  // HTML: the markup is not run and not shown; its words are searched.
  const html = '<p>A <b>black cat</b> sleeps.</p>\n<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">\n<p>A rocket &amp; the sky.</p> 🐶.';
  const h = await pasteMeasured(page, html);
  assert.equal(h.state, 'done', h.status);
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'nothing in the passage ran');
  assert.equal(await page.$$eval('#passage-ideas img[src="x"], #passage-ideas script, #passage-ideas b', (n) => n.length), 0);
  for (const idea of h.ideas) assert.ok(!/[<>]/.test(idea.text), idea.text);
  assert.ok(h.ideas.some((i) => i.text.includes('A black cat sleeps.')), JSON.stringify(h.ideas.map((i) => i.text)));
  assert.match(h.note, /1 sentence without words .* was skipped/);

  // 1 MB: cut to what the engine reads (at a paragraph end), said in a note; the page keeps drawing frames.
  const para = 'The old dog walked along the quiet beach at dawn. Gulls circled above the waves. A boat waited by the pier.\n\n';
  const mb = para.repeat(Math.ceil(1_000_000 / para.length));
  const big = await pasteMeasured(page, mb);
  assert.equal(big.state, 'done', big.status);
  const kept = /Your text is 1\.0 MB; its first ([\d,]+) bytes \(to a paragraph or sentence end\) were read, and are what the box holds/.exec(big.note);
  assert.ok(kept, big.note);
  assert.ok(Number(kept[1].replace(/,/g, '')) <= 100_000 && Number(kept[1].replace(/,/g, '')) > 80_000, kept[1]);
  assert.match(big.note, /Of that part's [\d,]+ sentences, the first 120 were searched/);
  assert.ok(big.maxGap < 500, `the page kept drawing: longest frame gap ${big.maxGap.toFixed(0)} ms`);
  assert.equal(await page.inputValue('#passage-text'), fitPassage(mb).text, 'the box holds what was read');
  const hash = new URL(page.url()).hash;
  assert.ok(hash.length > 6 && hash.length < 60_000, `the link carries the searched part, compressed (${hash.length} characters)`);
  await page.screenshot({ path: artifact('64-passage-1mb.png') });
  // Still answering: a prompt right after.
  await page.fill('#q', 'a rocket');
  await page.waitForFunction(() => document.getElementById('results').dataset.query === 'a rocket', null, { timeout: 10_000 });
  console.log(`passage frame gaps: 20 paragraphs ${p20.maxGap.toFixed(0)} ms, emoji ${e.maxGap.toFixed(0)} ms, HTML ${h.maxGap.toFixed(0)} ms, 1 MB ${big.maxGap.toFixed(0)} ms`);
  assert.deepEqual(problems, []);
  await page.close();

  // A damaged link says so instead of searching nonsense.
  const { page: damaged } = await open(flat, '#text=AAAA$$');
  await damaged.waitForFunction(() => /damaged/.test(document.getElementById('passage-note').textContent));
  await damaged.close();
});

// ---- the README's screenshot: a passage's suggestions on the default gallery (static/gallery), when published ----
const DEFAULT_STATIC = path.join(ROOT, 'static');
const defaultGallery = (() => {
  try { return JSON.parse(readFileSync(path.join(DEFAULT_STATIC, 'gallery/gallery.json'), 'utf8')); } catch { return null; }
})();
const noDefault = defaultGallery?.model_id !== JSON.parse(readFileSync(path.join(E2E_MODEL, 'manifest.json'), 'utf8')).model_id
  ? 'skipped: no default gallery for this model in static/gallery (make demo publishes it)' : false;
const TRAVEL = 'The bus left us at the edge of the desert. For hours we walked over the sand under a hard blue sky.\n\n'
  + 'Then the land turned green: a field of flowers, and a bird flying low over it.\n\n'
  + 'At night a farmer played the guitar while his sheep slept.';

test('screenshot of a passage\'s suggestions on the default gallery', { skip: noDefault }, async () => {
  const demo = await startServer(DEFAULT_STATIC);
  try {
    const { page, problems } = await open(demo);
    await page.setViewportSize({ width: 1100, height: 1500 });
    await paste(page, TRAVEL);
    const a = await answer(page, TRAVEL.length);
    assert.equal(a.state, 'done', a.status);
    assert.ok(a.ideas.length >= 3 && a.ideas.every((i) => i.ids.length === 4), JSON.stringify(a.ideas));
    await page.evaluate(() => Promise.all([...document.images].map((img) => img.decode().catch(() => {}))));
    await page.evaluate(() => window.scrollTo(0, 0));
    const file = artifact('65-passage-default.jpg');
    await page.screenshot({ path: file, type: 'jpeg', quality: 78 });
    if (process.env.IMGPICK_UPDATE_DOCS_SCREENSHOT) {
      mkdirSync(path.join(ROOT, 'docs/screenshots'), { recursive: true });
      copyFileSync(file, path.join(ROOT, 'docs/screenshots/passage.jpg'));
    }
    assert.deepEqual(problems, []);
    await page.close();
  } finally {
    await demo.stop();
  }
});
