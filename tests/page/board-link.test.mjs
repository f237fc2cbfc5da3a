// A board shared as a link (static/page/board-link.js) and the stored board's decoding (board-store.js), in
// Node: `?board=` parsed and written back, damaged links refused with a reason, own photos and marked pins kept
// out of links, and stored records read defensively. The store itself (IndexedDB) is tested in Chromium
// (tests/e2e/board.test.mjs): Node has no IndexedDB and this repository installs no fake one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const STATIC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../static');
const load = (file) => import(pathToFileURL(path.join(STATIC, file)).href);
const { parseBoardParam, boardParam, shareable, MAX_SHARED, BOARD_PARAM } = await load('page/board-link.js');
const { decodeBoard, FORMAT } = await load('page/board-store.js');

const gallery = (id, extra = {}) => ({ key: `gallery:f${id}.jpg`, id, file: `f${id}.jpg`, ...extra });

test('board links: ids in order, written and read back the same, through a real URL', () => {
  const pins = [gallery(17), gallery(3), gallery(250)];
  assert.equal(boardParam(pins), '17,3,250');
  const url = new URL(`https://example.org/imgpick/?q=cats&${BOARD_PARAM}=${boardParam(pins)}`);
  assert.deepEqual(parseBoardParam(url.searchParams.get(BOARD_PARAM)), { ids: [17, 3, 250], error: null });
  // what URLSearchParams writes (commas encoded) reads the same
  const encoded = new URLSearchParams({ board: '17,3,250' }).toString();
  assert.equal(encoded, 'board=17%2C3%2C250');
  assert.deepEqual(parseBoardParam(new URLSearchParams(encoded).get('board')).ids, [17, 3, 250]);
});

test('board links: no parameter is no board; empty is an empty board; repeats and spaces are tolerated', () => {
  assert.deepEqual(parseBoardParam(null), { ids: null, error: null });
  assert.deepEqual(parseBoardParam(''), { ids: [], error: null });
  assert.deepEqual(parseBoardParam(' 5, 2,5,,7 '), { ids: [5, 2, 7], error: null });
});

test('board links: a damaged link says which part is not a picture number', () => {
  for (const bad of ['1,two,3', '1;2', '-4', '1.5', '0x10', '<script>', '9999999999']) {
    const { ids, error } = parseBoardParam(bad);
    assert.deepEqual(ids, [], bad);
    assert.match(error, /link is damaged: “.+” is not a picture number/, bad);
  }
  const long = parseBoardParam('x'.repeat(1000) + ',1');
  assert.ok(long.error.length < 120, 'the quoted part is cut short');
});

test(`board links: at most ${MAX_SHARED} pictures, the first ones, with a note`, () => {
  const ids = Array.from({ length: MAX_SHARED + 5 }, (_, i) => i);
  const parsed = parseBoardParam(ids.join(','));
  assert.equal(parsed.ids.length, MAX_SHARED);
  assert.deepEqual(parsed.ids.slice(0, 3), [0, 1, 2]);
  assert.match(parsed.error, new RegExp(`names ${MAX_SHARED + 5} pictures; the first ${MAX_SHARED} are shown`));
  assert.equal(boardParam(ids.map((i) => gallery(i))).split(',').length, MAX_SHARED);
});

test('board links leave out the user\'s own photos and pins whose gallery changed', () => {
  const mine = { key: 'mine:me.jpg', id: 900, mine: true, path: 'me.jpg' };
  const moved = gallery(8, { changed: true });
  assert.equal(shareable(mine), false);
  assert.equal(shareable(moved), false);
  assert.equal(shareable(gallery(0)), true, 'id 0 is a picture');
  assert.equal(boardParam([gallery(4), mine, moved, gallery(0)]), '4,0');
  assert.equal(boardParam([mine]), '');
});

test('stored boards: pins kept in order with known fields of the right type; bad ones counted', () => {
  const record = { format: FORMAT, saved: 1, pins: [
    gallery(1, { caption: 'a cat', future: 'kept out', licence: 42 }),
    null,
    { id: 2 },                        // no key
    gallery(3, { changed: true }),
    gallery(1, { caption: 'again' }), // a repeat of a key
  ] };
  const { pins, dropped } = decodeBoard(record);
  assert.deepEqual(pins, [{ key: 'gallery:f1.jpg', id: 1, file: 'f1.jpg', caption: 'a cat' },
    { key: 'gallery:f3.jpg', id: 3, file: 'f3.jpg', changed: true }]);
  assert.equal(dropped, 3);
});

test('stored boards: nothing stored is an empty board, a damaged record too; a newer format is refused', () => {
  assert.deepEqual(decodeBoard(undefined), { pins: [], dropped: 0 });
  assert.deepEqual(decodeBoard({ format: FORMAT, pins: 'nope' }), { pins: [], dropped: 0 });
  assert.deepEqual(decodeBoard({ format: 'one', pins: [gallery(1)] }), { pins: [], dropped: 1 });
  // a page from an old cache must not read a newer board as empty (and then overwrite it)
  assert.throws(() => decodeBoard({ format: FORMAT + 1, pins: [gallery(1)] }), /saved by a newer imgpick \(board format 2\): reload/);
});
