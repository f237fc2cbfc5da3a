// Downloads for the search worker: files fetched with byte-level progress and kept in the Cache API for fast and
// offline revisits, with errors that say which file failed and what makes it.

const CACHE = 'imgpick-v1';
// The worker's modules live in worker/; the files they fetch are named relative to the page (static/).
const SITE = new URL('../', import.meta.url);
const siteUrl = (file) => new URL(file, SITE).href;

export class LoadError extends Error {
  constructor(file, message) { super(`${file}: ${message}`); this.file = file; }
}

const progress = new Map(); // file -> { loaded, total } (total 0 while unknown)

/** The first load's progress over every file so far: `{ loaded, total }` (`total` null while some are unknown). */
export function overallProgress() {
  let loaded = 0, total = 0, known = true;
  for (const p of progress.values()) {
    loaded += p.loaded;
    if (p.total) total += p.total; else known = false;
  }
  return { loaded, total: known ? total : null };
}

/** The progress of `files` only: `{ loaded, total }` (`total` null until every size is known). */
export function progressOf(files) {
  const ps = files.map((f) => progress.get(f));
  const loaded = ps.reduce((sum, p) => sum + (p?.loaded || 0), 0);
  const total = ps.every((p) => p?.total) ? ps.reduce((sum, p) => sum + p.total, 0) : null;
  return { loaded, total };
}

export async function openCache() {
  try { return await caches.open(CACHE); } catch { return null; } // e.g. opaque origins, private modes
}

/** Removes the cached copies of `keys` (file names or content-hash keys), e.g. of a damaged download. */
export async function forget(cache, keys) {
  if (cache) await Promise.all(keys.map((k) => cache.delete(siteUrl(k)).catch(() => {})));
}

// Reads a response body chunk by chunk so the page can show bytes as they arrive; `report(file)` after each
// chunk (at most every 50 ms) and at the end.
async function readBody(file, res, report) {
  const total = Number(res.headers.get('content-length')) || 0;
  // A compressed response's Content-Length counts compressed bytes; the stream yields decompressed ones.
  const exact = total && !res.headers.get('content-encoding');
  const entry = { loaded: 0, total: exact ? total : 0 };
  progress.set(file, entry);
  if (!res.body) {
    const buf = new Uint8Array(await res.arrayBuffer());
    entry.loaded = buf.length; entry.total = buf.length; report(file);
    return buf;
  }
  const reader = res.body.getReader();
  const chunks = [];
  let last = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    entry.loaded += value.length;
    const now = performance.now();
    if (now - last > 50) { last = now; report(file); }
  }
  entry.total = entry.loaded;
  report(file);
  const out = new Uint8Array(entry.loaded);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

// What produces each file, for "not found" messages.
function howToMake(file) {
  if (file.startsWith('pkg/')) return 'the wasm package is not built: run scripts/build-wasm.sh';
  if (file.startsWith('model/')) return 'no model in static/model: export one with `trainer export`';
  if (/^gallery\/[0-9a-f]{32}\//.test(file)) return 'the partitioned gallery is incomplete on the server: publish it again';
  return 'no gallery in static/gallery: publish one with `make demo` or `trainer publish`';
}

/** The bytes of `file` (a path under static/, e.g. 'model/manifest.json'). Network first, revalidating with the
 *  server (ETag -> 304, so a revisit transfers almost nothing); when the network is down, the copy in the Cache
 *  API. `pinnedKey` marks a file whose content hash is known (from the model manifest): its cached copy is used
 *  without asking the network at all. */
export async function fetchFile(cache, file, { pinnedKey = null, report }) {
  if (pinnedKey && cache) {
    const hit = await cache.match(siteUrl(pinnedKey));
    if (hit) return readBody(file, hit, report);
  }
  let res;
  try {
    res = await fetch(siteUrl(file), { cache: 'no-cache' });
  } catch (networkError) {
    const hit = cache && await cache.match(siteUrl(file));
    if (hit) return readBody(file, hit, report);
    throw new LoadError(file, `could not be downloaded (${networkError.message}); are you offline?`);
  }
  if (!res.ok) {
    throw new LoadError(file, `the server answered ${res.status} ${res.statusText || ''}`.trim() +
      (res.status === 404 ? ` (${howToMake(file)})` : ''));
  }
  const bytes = await readBody(file, res, report);
  if (cache) {
    const copy = new Response(bytes, { headers: { 'content-type': res.headers.get('content-type') || '' } });
    cache.put(siteUrl(pinnedKey || file), copy).catch(() => {}); // a full disk only costs the offline copy
  }
  return bytes;
}

/** The bytes of an immutable `file` (its name changes when its content does: a partitioned gallery's lists and
 *  metadata, named by the gallery id): the Cache API's copy when there is one, else the network's, then kept.
 *  No progress events (these come one per query, not with the first load). Resolves to `{ bytes, fromCache }`. */
export async function fetchImmutable(cache, file) {
  const hit = cache && await cache.match(siteUrl(file));
  if (hit) return { bytes: new Uint8Array(await hit.arrayBuffer()), fromCache: true };
  let res;
  try {
    res = await fetch(siteUrl(file));
  } catch (networkError) {
    throw new LoadError(file, `could not be downloaded (${networkError.message}); are you offline?`);
  }
  if (!res.ok) {
    throw new LoadError(file, `the server answered ${res.status} ${res.statusText || ''}`.trim() + (res.status === 404 ? ` (${howToMake(file)})` : ''));
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (cache) cache.put(siteUrl(file), new Response(bytes)).catch(() => {}); // a full disk only costs the copy
  return { bytes, fromCache: false };
}

export const text = (bytes) => new TextDecoder().decode(bytes);

export function parseJson(file, bytes) {
  try { return JSON.parse(text(bytes)); } catch (e) { throw new LoadError(file, `is not valid JSON (${e.message})`); }
}

/** A model file named by the manifest: `{ file: 'model/NAME', key }`, `key` being its content-hash cache key
 *  (`model/NAME?sha256=…`: a retrained model gets a new key, an unchanged one never re-downloads), or null when
 *  the manifest has no hash for it. */
export function modelFile(manifest, name) {
  if (typeof name !== 'string' || !/^[\w.-]+$/.test(name)) {
    throw new LoadError('model/manifest.json', `names a model file ${JSON.stringify(name)} that is not a plain file name`);
  }
  const sha = (manifest.files_sha256 || {})[name];
  return { file: `model/${name}`, key: sha ? `model/${name}?sha256=${sha}` : null };
}
