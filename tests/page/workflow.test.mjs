// The writer's workflow's pure page modules (issue #20), without a browser: a share link's refinement read and
// written back (the engine's parameter names), marks toggled, and a passage's cut, detection and compressed
// fragment. The browser test (tests/e2e/workflow.test.mjs) checks what the page does with them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const STATIC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../static');
const load = (file) => import(pathToFileURL(path.join(STATIC, file)).href);

test('refine: a link\'s parameters round-trip, the engine gets every one explicitly, bad values are named', async () => {
  const { readRefinement, writeRefinement, engineParams, plainRefinement, describeFilters } = await load('page/refine.js');
  const link = new URLSearchParams('q=a+dog&up=3.17.3&down=5&orient=landscape&min=1024&lic=pd&vary=1');
  const { problems, ...r } = readRefinement(link);
  assert.deepEqual(problems, []);
  assert.deepEqual(r, { up: [3, 17], down: [5], orient: 'landscape', min: 1024, lic: 'pd', collapse: true, vary: true });
  assert.equal(writeRefinement(r, new URLSearchParams()).toString(), 'up=3.17&down=5&orient=landscape&min=1024&lic=pd&vary=1');
  assert.equal(engineParams(r), 'up=3.17&down=5&orient=landscape&min=1024&lic=pd&vary=1&collapse=1');
  assert.equal(engineParams(plainRefinement()), 'collapse=1', 'the page groups near-duplicates unless told not to');
  const off = readRefinement(new URLSearchParams('collapse=0'));
  assert.equal(off.collapse, false);
  assert.equal(writeRefinement(off, new URLSearchParams()).toString(), 'collapse=0');
  assert.equal(writeRefinement(plainRefinement(), new URLSearchParams()).toString(), '', 'a plain link carries nothing');
  assert.equal(describeFilters(r), 'landscape · both sides ≥ 1,024 px · public domain / CC0 · more varied');
  // commas (as the API writes them) are read too
  assert.deepEqual(readRefinement(new URLSearchParams('up=4,9')).up, [4, 9]);

  const bad = readRefinement(new URLSearchParams('up=3.x&orient=wide&min=0&lic=free&vary=maybe&down=2&up=2'));
  assert.equal(bad.problems.length, 5, bad.problems.join('\n'));
  for (const needle of ['picture ids', 'landscape, portrait or square', '1 to 100,000', 'pd (public domain', 'use 1 or 0']) {
    assert.ok(bad.problems.some((p) => p.includes(needle)), `${needle}: ${bad.problems.join(' | ')}`);
  }
  assert.deepEqual([bad.orient, bad.min, bad.lic, bad.vary], ['', null, '', false], 'refused values are left out');
  const both = readRefinement(new URLSearchParams('up=2&down=2.4'));
  assert.deepEqual([both.up, both.down], [[2], [4]]);
  assert.match(both.problems[0], /both liked and disliked/);
  const many = readRefinement(new URLSearchParams(`up=${Array.from({ length: 60 }, (_, i) => i).join('.')}`));
  assert.equal(many.up.length, 50);
  assert.match(many.problems[0], /only the first 50/);
});

test('refine: marks toggle, move between 👍 and 👎, stop at 50, and are described with their weights', async () => {
  const { toggleMark, plainRefinement, describeMarks, ROCCHIO } = await load('page/refine.js');
  let r = plainRefinement();
  assert.equal(describeMarks(r), '');
  r = toggleMark(r, 7, 'up').refinement;
  r = toggleMark(r, 9, 'down').refinement;
  assert.deepEqual([r.up, r.down], [[7], [9]]);
  r = toggleMark(r, 9, 'up').refinement; // 👍 on a disliked picture: it is liked now
  assert.deepEqual([r.up, r.down], [[7, 9], []]);
  r = toggleMark(r, 7, 'up').refinement; // again: unmarked
  assert.deepEqual(r.up, [9]);
  r = toggleMark(r, 3, 'down').refinement;
  const text = describeMarks(r);
  assert.ok(text.includes(`+${ROCCHIO.beta}`) && text.includes(`−${ROCCHIO.gamma}`) && text.includes('left out'), text);
  let full = { ...plainRefinement(), up: Array.from({ length: 50 }, (_, i) => i) };
  const { refinement, refused } = toggleMark(full, 99, 'up');
  assert.equal(refinement, full);
  assert.match(refused, /at most 50/);
  full = toggleMark(full, 99, 'down').refinement;
  assert.deepEqual(full.down, [99], 'the other kind still takes marks');
});

test('passage text: what counts as a passage, the cut at a paragraph or sentence end, never inside a character', async () => {
  const { looksLikePassage, fitPassage, MAX_PASSAGE_BYTES } = await load('page/passage-text.js');
  assert.equal(looksLikePassage('a dog on the beach'), false);
  assert.equal(looksLikePassage('beach -people'), false);
  assert.equal(looksLikePassage('The dog ran. Then it slept.'), true);
  assert.equal(looksLikePassage('first line\nsecond line'), true);
  assert.equal(looksLikePassage('word '.repeat(40)), true);
  assert.equal(looksLikePassage('   '), false);

  const short = 'A cat. A dog.';
  assert.deepEqual(fitPassage(short), { text: short, bytes: 13, kept: 13, truncated: false });
  const paragraph = 'The dog ran on the beach. 🐶 It was happy!\n\n';
  const big = paragraph.repeat(30_000); // ~1.4 MB
  const fit = fitPassage(big);
  assert.equal(fit.truncated, true);
  assert.equal(fit.bytes, new TextEncoder().encode(big).length);
  assert.ok(fit.kept <= MAX_PASSAGE_BYTES && fit.kept > 0.8 * MAX_PASSAGE_BYTES, String(fit.kept));
  assert.ok(fit.text.endsWith('It was happy!'), `cut at a paragraph end: …${fit.text.slice(-20)}`);
  assert.ok(big.startsWith(fit.text));
  // One long "sentence" of 4-byte characters: the cut keeps whole characters.
  const emoji = '🐶'.repeat(40_000);
  const e = fitPassage(emoji);
  assert.ok(e.kept <= MAX_PASSAGE_BYTES && e.kept % 4 === 0 && !e.text.includes('\uFFFD'));
  // Without any break: the cut is at the byte limit, on a character boundary.
  const ascii = fitPassage('x'.repeat(200_000));
  assert.equal(ascii.kept, MAX_PASSAGE_BYTES);
});

test('passage text: the link fragment compresses and restores the text; a damaged one is refused by name', async () => {
  const { encodeFragment, decodeFragment, fitPassage } = await load('page/passage-text.js');
  const text = 'Ein Hund läuft am Strand. 🐶\n\n<p>Markup & “quotes”</p> — and a 3.5 km walk.';
  const encoded = await encodeFragment(text);
  assert.match(encoded, /^[A-Za-z0-9_-]+$/, 'base64url: nothing a URL escapes');
  assert.equal(await decodeFragment(encoded), text);
  const long = fitPassage('The dog ran on the beach. It was happy!\n\n'.repeat(5_000)).text;
  const packed = await encodeFragment(long);
  assert.ok(packed.length < long.length / 20, `repetitive prose compresses well: ${packed.length} for ${long.length}`);
  assert.equal(await decodeFragment(packed), long);
  await assert.rejects(decodeFragment('not base64!'), /damaged \(it is not base64url\)/);
  await assert.rejects(decodeFragment(encoded.slice(0, 5) + 'QUFBQUFB'), /damaged/);
});
