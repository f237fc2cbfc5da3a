// The pure parts of the page's "honest results" and credit line, in Node: the credit line a writer copies
// (static/page/credit.js) and the strong / weaker split and its note (static/page/match-strength.js). The
// browser tests (tests/e2e/first-impression.test.mjs) check them on the real page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const STATIC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../static');
const load = (file) => import(pathToFileURL(path.join(STATIC, file)).href);

test('a credit line names the picture, its author and source, its licence with a link, and its page', async () => {
  const { creditLine, licenceText } = await load('page/credit.js');
  const line = creditLine({ caption: 'a hawk flying with its wings spread', source: 'Jane Doe, via GCompris (Debian gcompris-qt-data)',
    licence: 'CC-BY-SA-4.0', url: 'https://commons.wikimedia.org/wiki/File:Hawk.jpg' });
  assert.equal(line, '“a hawk flying with its wings spread” — Jane Doe, via GCompris (Debian gcompris-qt-data) — '
    + 'CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/) — https://commons.wikimedia.org/wiki/File:Hawk.jpg');
  assert.equal(licenceText('Public-Domain'), 'public domain');
  assert.equal(licenceText('Some-Other-1.0'), 'Some-Other-1.0', 'an unknown id is given as it is');
  // missing parts are left out; a link that is not http(s) is not a link
  assert.equal(creditLine({ caption: '', source: 'Tux Paint', licence: 'GPL-2.0-or-later', url: 'javascript:alert(1)' }),
    'Tux Paint — GPL 2.0 or later (https://www.gnu.org/licenses/old-licenses/gpl-2.0.html)');
  assert.equal(creditLine({ caption: 'a cat' }), '“a cat” — licence unknown');
});

test('results are strong or weaker only when the model marked them, and the note speaks only when none is strong', async () => {
  const { strengthCounts, fitNote } = await load('page/match-strength.js');
  const r = (score, strong) => ({ id: 0, score, strong });
  assert.deepEqual(strengthCounts([r(0.4, true), r(0.3, false), r(0.2, false)]), { marked: true, strong: 1, weaker: 2 });
  assert.deepEqual(strengthCounts([r(0.4), r(0.3)]), { marked: false, strong: 0, weaker: 0 }, 'uncalibrated or "more like this"');
  assert.deepEqual(strengthCounts([]), { marked: false, strong: 0, weaker: 0 });
  assert.equal(fitNote({ marked: true, strong: 1, weaker: 29 }, 'a bird'), '');
  assert.equal(fitNote({ marked: false, strong: 0, weaker: 0 }, 'a bird'), '');
  const note = fitNote({ marked: true, strong: 0, weaker: 30 }, 'quantum chromodynamics');
  assert.match(note, /^Nothing here fits “quantum chromodynamics” well: these 30 pictures are the closest/);
});
