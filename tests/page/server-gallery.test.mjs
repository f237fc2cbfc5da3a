// worker/server-gallery.js without a browser: which gallery.json is a server gallery, what a search asks of
// the server (fetch stubbed), how its answers become the page's results and items, and its errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const STATIC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../static');
const { ServerGallery, serverDescriptor, SERVER_FORMAT } = await import(pathToFileURL(path.join(STATIC, 'worker/server-gallery.js')).href);

const DESCRIPTOR = { format: SERVER_FORMAT, format_version: 1, model_id: 'ab'.repeat(16), count: 40, search: 'api/search' };
const SITE = 'http://127.0.0.1:8080/';
const hit = (id, score, extra = {}) => ({ id, score, file: `img${id}.jpg`, thumb: `thumbs/${id}.jpg`, caption: `caption ${id}`,
  source: 'test', licence: 'CC0', url: null, ...extra });

/** Runs `fn` with fetch answering `respond(url)` (`{ status, body }`), and returns the URLs asked. */
async function withFetch(respond, fn) {
  const asked = [];
  const real = globalThis.fetch;
  globalThis.fetch = async (url, init) => {
    asked.push(String(url));
    if (init?.signal?.aborted) throw new DOMException('aborted', 'AbortError');
    const { status = 200, body, delayMs = 0 } = respond(String(url));
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, delayMs);
      init?.signal?.addEventListener('abort', () => { clearTimeout(timer); reject(new DOMException('aborted', 'AbortError')); });
    });
    return new Response(typeof body === 'string' ? body : JSON.stringify(body), { status });
  };
  try { await fn(); } finally { globalThis.fetch = real; }
  return asked;
}

test('serverDescriptor: only a server gallery of version 1 with a search path on this site', () => {
  assert.deepEqual(serverDescriptor(JSON.stringify(DESCRIPTOR)), DESCRIPTOR);
  for (const other of ['{"format":"imgpick-gallery","items":[]}', 'not json', '[]', 'null']) assert.equal(serverDescriptor(other), null, other);
  assert.throws(() => serverDescriptor(JSON.stringify({ ...DESCRIPTOR, format_version: 2 })), /version 2/);
  for (const search of ['https://evil.example/api', '/api/search', '../api/search', 42]) {
    assert.throws(() => serverDescriptor(JSON.stringify({ ...DESCRIPTOR, search })), /not a path on this site/, String(search));
  }
});

test('readyFields: counted on the server, no photos; a server that cannot count fails the load with its reason', () => {
  const ready = new ServerGallery(DESCRIPTOR, SITE).readyFields();
  assert.equal(ready.count, 40);
  assert.equal(ready.server, true);
  assert.equal(ready.canEmbed, false);
  assert.deepEqual(ready.items, []);
  assert.equal(ready.restored.firstId, 40);
  const down = new ServerGallery({ ...DESCRIPTOR, count: null, unavailable: 'the database is unavailable: connection refused' }, SITE);
  assert.throws(() => down.readyFields(), /cannot search now: the database is unavailable: connection refused/);
});

test('search and similar: one request each; results and items from the answer; "like" brings its own item', async () => {
  const gallery = new ServerGallery(DESCRIPTOR, SITE);
  let search, similar, mine;
  const asked = await withFetch((url) => (url.includes('like=')
    ? { body: { results: [hit(3, 0.8), hit(9, 0.7)], like_item: hit(5, 1) } }
    : { body: { results: [hit(7, 0.61, { strong: true }), hit(2, 0.4, { strong: false })] } }), async () => {
    search = await gallery.search({ query: 'a dog; DROP TABLE x -- & k=1000', k: 30, scope: 'all' });
    similar = await gallery.similar({ id: 5, k: 30 });
    mine = await gallery.search({ query: 'a dog', k: 30, scope: 'mine' });
  });
  assert.equal(asked.length, 2, 'the "mine" scope asks nothing: there are no photos in server mode');
  const first = new URL(asked[0]);
  assert.equal(first.pathname, '/api/search');
  assert.equal(first.searchParams.get('q'), 'a dog; DROP TABLE x -- & k=1000', 'the prompt travels as one parameter');
  assert.equal(first.searchParams.get('k'), '30');
  assert.deepEqual(search.results, [{ id: 7, score: 0.61, strong: true }, { id: 2, score: 0.4, strong: false }]);
  assert.deepEqual(search.items.map((i) => i.id), [7, 2]);
  assert.equal(search.items[0].thumb, 'thumbs/7.jpg');
  assert.equal(new URL(asked[1]).searchParams.get('like'), '5');
  assert.deepEqual(similar.results.map((r) => r.id), [3, 9]);
  assert.deepEqual(similar.items.map((i) => i.id), [5, 3, 9]);
  assert.deepEqual(mine, { results: [], items: [] });
});

test('errors carry the server\'s reason; a newer search supersedes an older one', async () => {
  const gallery = new ServerGallery(DESCRIPTOR, SITE);
  await withFetch(() => ({ status: 503, body: { error: 'the database is unavailable: connection refused' } }), async () => {
    await assert.rejects(gallery.search({ query: 'cat', k: 10, scope: 'all' }), /database is unavailable: connection refused \(try again in a moment\)/);
  });
  await withFetch(() => ({ status: 400, body: { error: 'q is 1000001 bytes; at most 1000 are accepted' } }), async () => {
    await assert.rejects(gallery.search({ query: 'x', k: 10, scope: 'all' }), /^Error: q is 1000001 bytes/);
  });
  await withFetch(() => ({ status: 502, body: '<html>bad gateway</html>' }), async () => {
    await assert.rejects(gallery.search({ query: 'x', k: 10, scope: 'all' }), /answered 502/);
  });
  await withFetch((url) => ({ body: { results: [hit(1, 0.5)] }, delayMs: url.includes('slow') ? 200 : 0 }), async () => {
    const older = gallery.search({ query: 'slow', k: 10, scope: 'all' });
    const newer = gallery.search({ query: 'fast', k: 10, scope: 'all' });
    await assert.rejects(older, /superseded/);
    assert.deepEqual((await newer).results, [{ id: 1, score: 0.5 }]);
  });
  assert.throws(() => gallery.explain({ query: 'cat', id: 1 }), /not available while the gallery is searched on the server/);
});
