// How a shared board's pictures are found in a server gallery (worker/server-gallery.js `items`, fetch stubbed):
// one `like=ID&k=1` request per id, its `like_item` is the picture; an unknown id (404) is left out; other
// failures are errors with the server's reason; and a board lookup never cancels the search being typed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const STATIC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../static');
const { ServerGallery, SERVER_FORMAT } = await import(pathToFileURL(path.join(STATIC, 'worker/server-gallery.js')).href);

const DESCRIPTOR = { format: SERVER_FORMAT, format_version: 1, model_id: 'ab'.repeat(16), count: 40, search: 'api/search' };
const SITE = 'http://127.0.0.1:8080/';
const item = (id) => ({ id, score: 1, file: `img${id}.jpg`, thumb: `thumbs/${id}.jpg`, caption: `caption ${id}`, source: 'test', licence: 'CC0-1.0', url: null });

async function withFetch(respond, fn) {
  const asked = [];
  const real = globalThis.fetch;
  globalThis.fetch = async (url, init) => {
    asked.push(String(url));
    const { status = 200, body, delayMs = 0 } = respond(new URL(String(url)));
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, delayMs);
      init?.signal?.addEventListener('abort', () => { clearTimeout(timer); reject(new DOMException('aborted', 'AbortError')); });
    });
    return new Response(JSON.stringify(body), { status });
  };
  try { await fn(); } finally { globalThis.fetch = real; }
  return asked;
}

test('server gallery items: one like=ID&k=1 per id, in the order asked; an unknown id is left out', async () => {
  const gallery = new ServerGallery(DESCRIPTOR, new URL(SITE));
  let answer;
  const asked = await withFetch((url) => {
    const id = Number(url.searchParams.get('like'));
    if (id >= 40) return { status: 404, body: { error: `no picture ${id}` } };
    return { body: { results: [item(id + 1)], like_item: item(id) }, delayMs: (7 - id) * 3 }; // later ids answer first
  }, async () => { answer = await gallery.items([5, 2, 99, 0, 7, 3]); });
  assert.deepEqual(answer.items.map((i) => i.id), [5, 2, 0, 7, 3]);
  assert.deepEqual(answer.items[0], { id: 5, file: 'img5.jpg', thumb: 'thumbs/5.jpg', caption: 'caption 5', source: 'test', licence: 'CC0-1.0', url: null });
  assert.equal(asked.length, 6);
  for (const url of asked) {
    const u = new URL(url);
    assert.equal(u.pathname, '/api/search');
    assert.equal(u.searchParams.get('k'), '1');
    assert.equal(u.searchParams.has('q'), false);
  }
});

test('server gallery items: a failing server is an error with its reason', async () => {
  const gallery = new ServerGallery(DESCRIPTOR, new URL(SITE));
  await withFetch(() => ({ status: 503, body: { error: 'the database is not answering' } }), async () => {
    await assert.rejects(gallery.items([1]), /the database is not answering/);
  });
  await withFetch(() => ({ status: 500, body: null }), async () => {
    await assert.rejects(gallery.items([1]), /the search server answered 500/);
  });
});

test('server gallery items: looking a board up does not cancel the search in flight', async () => {
  const gallery = new ServerGallery(DESCRIPTOR, new URL(SITE));
  let search;
  await withFetch((url) => (url.searchParams.has('q')
    ? { body: { results: [item(4)] }, delayMs: 40 }
    : { body: { results: [], like_item: item(Number(url.searchParams.get('like'))) } }), async () => {
    const searching = gallery.search({ query: 'a cat', k: 10, scope: 'all' });
    const board = await gallery.items([1, 2]);
    assert.equal(board.items.length, 2);
    search = await searching;
  });
  assert.deepEqual(search.results, [{ id: 4, score: 1 }]);
});
