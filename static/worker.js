// The worker owns the wasm Engine: it downloads the wasm package, the model and the gallery (reporting
// progress in bytes), keeps them in the Cache API for fast and offline revisits, and answers queries.
// The page's main thread never runs model code, so typing stays smooth.
const CACHE = 'imgpick-v1';
let engine = null;
let wasm = null; // the wasm-bindgen module, imported on load so a missing package is a clear error
let wasmExports = null; // its instance's exports (memory size for the benchmark)

// ---- downloads -------------------------------------------------------------------------------------------

const progress = new Map(); // url -> { loaded, total }
function reportProgress(file) {
  let loaded = 0, total = 0, known = true;
  for (const p of progress.values()) {
    loaded += p.loaded;
    if (p.total) total += p.total; else known = false;
  }
  postMessage({ type: 'progress', loaded, total: known ? total : null, file });
}

async function openCache() {
  try { return await caches.open(CACHE); } catch { return null; } // e.g. opaque origins, private modes
}

// Reads a response body chunk by chunk so the page can show bytes as they arrive.
async function readBody(url, res, report = reportProgress) {
  const total = Number(res.headers.get('content-length')) || 0;
  // A compressed response's Content-Length counts compressed bytes; the stream yields decompressed ones.
  const exact = total && !res.headers.get('content-encoding');
  const entry = { loaded: 0, total: exact ? total : 0 };
  progress.set(url, entry);
  if (!res.body) {
    const buf = new Uint8Array(await res.arrayBuffer());
    entry.loaded = buf.length; entry.total = buf.length; report(url);
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
    if (now - last > 50) { last = now; report(url); }
  }
  entry.total = entry.loaded;
  report(url);
  const out = new Uint8Array(entry.loaded);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

// What produces each file, for "not found" messages.
function howToMake(url) {
  if (url.startsWith('pkg/')) return 'the wasm package is not built: run scripts/build-wasm.sh';
  if (url.startsWith('model/')) return 'no model in static/model: export one with `trainer export`';
  return 'no gallery in static/gallery: publish one with `make demo` or `trainer publish`';
}

class LoadError extends Error {
  constructor(file, message) { super(`${file}: ${message}`); this.file = file; }
}

// Network first, revalidating with the server (ETag -> 304, so a revisit transfers almost nothing);
// when the network is down, the copy in the Cache API. `pinnedKey` marks a file whose content hash is known
// (from the model manifest): its cached copy is used without asking the network at all.
async function fetchFile(cache, url, pinnedKey = null, report = reportProgress) {
  if (pinnedKey && cache) {
    const hit = await cache.match(pinnedKey);
    if (hit) return readBody(url, hit, report);
  }
  let res;
  try {
    res = await fetch(url, { cache: 'no-cache' });
  } catch (networkError) {
    const hit = cache && await cache.match(url);
    if (hit) return readBody(url, hit, report);
    throw new LoadError(url, `could not be downloaded (${networkError.message}); are you offline?`);
  }
  if (!res.ok) {
    throw new LoadError(url, `the server answered ${res.status} ${res.statusText || ''}`.trim() +
      (res.status === 404 ? ` (${howToMake(url)})` : ''));
  }
  const bytes = await readBody(url, res, report);
  if (cache) {
    const copy = new Response(bytes, { headers: { 'content-type': res.headers.get('content-type') || '' } });
    cache.put(pinnedKey || url, copy).catch(() => {}); // a full disk only costs the offline copy
  }
  return bytes;
}

const text = (bytes) => new TextDecoder().decode(bytes);
function parseJson(url, bytes) {
  try { return JSON.parse(text(bytes)); } catch (e) { throw new LoadError(url, `is not valid JSON (${e.message})`); }
}

// What the lazy image-model download needs from load(): set once the engine is up.
let model = null; // { cache, manifest, manifestText, modelFile, module }

async function load() {
  const t0 = performance.now();
  const cache = await openCache();
  const manifestBytes = await fetchFile(cache, 'model/manifest.json');
  const manifest = parseJson('model/manifest.json', manifestBytes);
  const files = manifest.files || {};
  const sha = manifest.files_sha256 || {};
  const modelFile = (name) => {
    if (typeof name !== 'string' || !/^[\w.-]+$/.test(name)) {
      throw new LoadError('model/manifest.json', `names a model file ${JSON.stringify(name)} that is not a plain file name`);
    }
    // Keyed by content hash: a retrained model gets a new key, an unchanged one never re-downloads.
    return [`model/${name}`, sha[name] ? `model/${name}?sha256=${sha[name]}` : null];
  };
  const [vocabUrl, vocabKey] = modelFile(files.vocab || 'vocab.txt');
  const [encUrl, encKey] = modelFile(files.text_encoder || 'text_encoder.safetensors');
  // Not the image head: only embedding the user's photos needs it, so it comes with the image encoder
  // (imageModel() below). The engine searches without it.
  const [wasmBytes, vocab, encoder, galleryBin, galleryJsonBytes] = await Promise.all([
    fetchFile(cache, 'pkg/wasm_model_bg.wasm'),
    fetchFile(cache, vocabUrl, vocabKey),
    fetchFile(cache, encUrl, encKey),
    fetchFile(cache, 'gallery/gallery.bin'),
    fetchFile(cache, 'gallery/gallery.json'),
  ]);
  const tDownloaded = performance.now();
  const galleryJson = text(galleryJsonBytes);
  const gallery = parseJson('gallery/gallery.json', galleryJsonBytes);
  try {
    wasm = await import('./pkg/wasm_model.js');
  } catch (e) {
    throw new LoadError('pkg/wasm_model.js', `could not be loaded (${errorText(e)}); build it with scripts/build-wasm.sh`);
  }
  let module;
  try {
    // Compiled once here; the embedding workers get the same compiled module (no second download or compile).
    module = await WebAssembly.compile(wasmBytes);
    wasmExports = await wasm.default({ module_or_path: module });
  } catch (e) {
    throw new LoadError('pkg/wasm_model_bg.wasm', `could not start the WebAssembly module (${e.message || e})`);
  }
  try {
    engine = new wasm.Engine(text(manifestBytes), text(vocab), encoder, galleryBin, galleryJson);
  } catch (e) {
    // Don't let a damaged download live on in the cache.
    if (cache) await Promise.all(['gallery/gallery.bin', 'gallery/gallery.json', 'model/manifest.json', vocabKey || vocabUrl, encKey || encUrl]
      .map((k) => cache.delete(k)));
    throw new Error(errorText(e));
  }
  const bytes = [...progress.values()].reduce((s, p) => s + p.loaded, 0);
  model = { cache, manifest, manifestText: text(manifestBytes), modelFile, module };
  const tInit = performance.now();
  const mine = await restoreMine(manifest.model_id);
  postMessage({
    type: 'ready',
    mine,
    // Both image files are downloaded on the first "add"; the manifest says whether there are any.
    canEmbed: Boolean(files.image_encoder && files.image_head),
    items: gallery.items || [],
    modelId: manifest.model_id,
    metrics: manifest.metrics || null,
    bytes,
    timings: { downloadMs: tDownloaded - t0, initMs: tInit - tDownloaded, restoreMs: performance.now() - tInit },
  });
  // One throwaway query right after "ready" warms the wasm code paths, so the first keystroke isn't the slow
  // one (and page-ready isn't delayed by it).
  try { engine.search('a', 1); } catch { /* a real query will report any problem */ }
}

// ---- queries ---------------------------------------------------------------------------------------------

const errorText = (e) => (e && e.message) ? e.message : String(e);

// The engine answers [{id, file, thumb, caption, score}] best first; the page has the items, so ids and scores suffice.
const hits = (raw) => Array.from(raw, (h) => ({ id: h.id, score: h.score }));

function answer(msg) {
  const t = performance.now();
  switch (msg.type) {
    case 'search': return { results: hits(engine.search_in(msg.query, msg.k, msg.scope || 'all')), ms: performance.now() - t };
    case 'similar': return { results: hits(engine.similar(msg.id, msg.k)), ms: performance.now() - t };
    case 'explain': {
      // {id, score, words: [{term, token, known, delta}]}; delta = score with the word − score without it.
      const ex = engine.explain(msg.query, msg.id);
      return { score: ex.score, words: ex.words.map((w) => ({ token: w.token, known: w.known, delta: w.delta })),
        ms: performance.now() - t };
    }
    default: throw new Error(`unknown request ${msg.type}`);
  }
}

let loading = null;
onmessage = async ({ data: msg }) => {
  if (msg.type === 'load') {
    loading ??= load().catch((e) => {
      loading = null; // allow "try again"
      postMessage({ type: 'fatal', message: errorText(e) });
    });
    return;
  }
  if (msg.type === 'resources') {
    const entries = performance.getEntriesByType('resource')
      .map((e) => ({ name: e.name, transferSize: e.transferSize, encodedBodySize: e.encodedBodySize, decodedBodySize: e.decodedBodySize }));
    postMessage({ type: 'answer', seq: msg.seq, entries });
    return;
  }
  if (!engine) { postMessage({ type: 'answer', seq: msg.seq, error: 'still loading' }); return; }
  if (msg.type === 'add') { addPhotos(msg.files); return; }
  if (msg.type === 'cancel') { cancelAdding(); return; }
  if (msg.type === 'clear') {
    clearMine().then(() => postMessage({ type: 'answer', seq: msg.seq }),
      (e) => postMessage({ type: 'answer', seq: msg.seq, error: errorText(e) }));
    return;
  }
  if (msg.type === 'embed-workers') { embedWorkers = Math.max(1, Math.min(8, msg.count | 0)); stopPool();
    postMessage({ type: 'answer', seq: msg.seq, count: embedWorkers }); return; }
  if (msg.type === 'mine-stats') { postMessage({ type: 'answer', seq: msg.seq, ...mineStats() }); return; }
  try {
    postMessage({ type: 'answer', seq: msg.seq, kind: msg.type, ...answer(msg) });
  } catch (e) {
    postMessage({ type: 'answer', seq: msg.seq, kind: msg.type, error: errorText(e) });
  }
};

// ---- the user's own photos -------------------------------------------------------------------------------
// Photos are embedded by embedding workers (embed-worker.js; started on the first "add", each with the wasm
// ImageEmbedder) and joined to the Engine here with add_vector. Vectors, thumbnails and names persist in
// IndexedDB, keyed by model id: a reload restores them without re-embedding; photos indexed with another model
// are dropped (their vectors would not match the new text encoder) and the page says so. The photos themselves
// are never stored, and nothing is sent anywhere.

const DB_NAME = 'imgpick-mine';
const STORE = 'photos';
let embedWorkers = Math.max(1, Math.min(4, navigator.hardwareConcurrency || 2));
const mine = {
  keys: new Set(),   // record keys of the photos in the engine (duplicates are skipped)
  seq: 0,            // next record's order (restores keep the order, so ids stay stable across reloads)
  embedded: 0,       // photos embedded in this page session (a reload that restores must leave it at 0)
  restored: 0,       // photos restored from IndexedDB on load
  generation: 0,     // bumped by "clear": late answers of an older generation are dropped
  dbError: null,     // why nothing persists (e.g. private mode), shown once
};

function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'key' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error('the photo index is open in an older tab'));
  });
}
let dbPromise = null;
const db = () => (dbPromise ??= openDb());

// Runs fn(store) in one transaction; resolves with fn's request result (if any) when the transaction commits.
async function withStore(mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction(STORE, mode);
    const req = fn(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(req?.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error('transaction aborted'));
  });
}

const itemOf = (id, r) => ({ id, name: r.name, path: r.path, thumb: r.thumb || null });

// Loads the stored photos of this model into the engine: { items: [{id, name, path, thumb}], dropped, error }.
async function restoreMine(modelId) {
  const out = { items: [], dropped: 0, error: null };
  let records;
  try {
    records = await withStore('readonly', (s) => s.getAll());
  } catch (e) {
    mine.dbError = out.error = `your photos cannot be kept on this device (${errorText(e)}); they will be forgotten on reload`;
    return out;
  }
  const stale = records.filter((r) => r.modelId !== modelId).map((r) => r.key);
  const current = records.filter((r) => r.modelId === modelId).sort((a, b) => a.seq - b.seq);
  for (const r of current) {
    try {
      const id = engine.add_vector(r.name, r.key, r.vector);
      mine.keys.add(r.key);
      out.items.push(itemOf(id, r));
    } catch (e) {
      stale.push(r.key); // a damaged record: forget it
    }
    mine.seq = Math.max(mine.seq, r.seq + 1);
  }
  mine.restored = out.items.length;
  out.dropped = stale.length;
  if (stale.length) await withStore('readwrite', (s) => { for (const k of stale) s.delete(k); }).catch(() => {});
  return out;
}

async function clearMine() {
  cancelAdding();
  mine.generation++;
  engine.clear_added();
  mine.keys.clear();
  mine.embedded = 0;
  mine.restored = 0;
  await withStore('readwrite', (s) => s.clear());
}

function mineStats() {
  return { count: engine ? engine.added_len() : 0, embedded: mine.embedded, restored: mine.restored,
    workers: embedWorkers, poolSize: poolWorkers.length, adding: Boolean(run),
    wasmMemoryBytes: wasmExports?.memory?.buffer.byteLength ?? null };
}

// ---- the embedding pool ----------------------------------------------------------------------------------

let poolWorkers = [];   // [{ worker, busy }]
let poolReady = null;   // Promise of the started pool
let imageModelFiles = null; // { imageEncoder, imageHead, keys }: the bytes, and their Cache API keys

// The two files only embedding photos needs, image_encoder.safetensors (the stock backbone) and
// image_head.safetensors (the trained projection and fine-tuned layers): downloaded in parallel the first time
// photos are added, with one progress bar; cached by content hash afterwards.
async function imageModel() {
  if (imageModelFiles) return imageModelFiles;
  const files = model.manifest.files || {};
  if (!files.image_encoder) {
    throw new Error('this model has no image encoder, so it cannot index your photos '
      + '(add it with `trainer export-image-encoder --model static/model`)');
  }
  if (!files.image_head) throw new Error('this model has no image head (image_head.safetensors), so it cannot index your photos');
  const parts = [model.modelFile(files.image_encoder), model.modelFile(files.image_head)];
  const report = () => {
    const ps = parts.map(([url]) => progress.get(url));
    const loaded = ps.reduce((sum, p) => sum + (p?.loaded || 0), 0);
    const total = ps.every((p) => p?.total) ? ps.reduce((sum, p) => sum + p.total, 0) : null;
    postMessage({ type: 'mine-progress', phase: 'download', loaded, total });
  };
  const [imageEncoder, imageHead] = await Promise.all(parts.map(([url, key]) => fetchFile(model.cache, url, key, report)));
  imageModelFiles = { imageEncoder, imageHead, keys: parts.map(([url, key]) => key || url) };
  return imageModelFiles;
}

function startPool() {
  poolReady ??= (async () => {
    const files = await imageModel();
    const workers = Array.from({ length: embedWorkers }, () => {
      const w = new Worker(new URL('./embed-worker.js', import.meta.url), { type: 'module' });
      return { worker: w, busy: false };
    });
    await Promise.all(workers.map(({ worker }) => new Promise((resolve, reject) => {
      worker.onmessage = ({ data }) => data.type === 'ready' ? resolve()
        : reject(new Error(data.error || 'the embedding worker failed to start'));
      worker.onerror = (e) => reject(new Error(`the embedding worker failed to start (${e.message || 'script error'})`));
      // The bytes are copied, not transferred: every worker needs them.
      worker.postMessage({ type: 'init', module: model.module, manifestJson: model.manifestText,
        imageEncoder: files.imageEncoder, imageHead: files.imageHead });
    }))).catch(async (e) => {
      for (const { worker } of workers) worker.terminate();
      // The workers check both files against the manifest's SHA-256: a damaged copy must not live on in the
      // cache (the next "add" downloads them again).
      if (/SHA-256|safetensors/.test(errorText(e))) {
        imageModelFiles = null;
        if (model.cache) await Promise.all(files.keys.map((k) => model.cache.delete(k).catch(() => {})));
      }
      throw e;
    });
    poolWorkers = workers;
    return workers;
  })().catch((e) => { poolReady = null; throw e; });
  return poolReady;
}

function stopPool() {
  clearTimeout(idleTimer);
  for (const { worker } of poolWorkers) worker.terminate();
  poolWorkers = [];
  poolReady = null;
}
// Idle embedding workers hold tens of MB each (weights + wasm heap): stop them a minute after the last photo.
const POOL_IDLE_MS = 60_000;
let idleTimer = 0;

// ---- adding ----------------------------------------------------------------------------------------------

let run = null; // the add in progress: { queue, total, done, added, failed, skipped, generation }

const keyOf = (f) => `${f.path || f.file.name}\u0000${f.file.size}\u0000${f.file.lastModified}`;

function addPhotos(files) {
  clearTimeout(idleTimer);
  const fresh = [];
  let skipped = 0;
  for (const f of files) {
    const key = keyOf(f);
    if (mine.keys.has(key) || fresh.some((x) => x.key === key)) skipped++;
    else fresh.push({ ...f, key });
  }
  if (!run) {
    run = { queue: [], total: 0, done: 0, added: 0, failed: 0, skipped: 0, generation: mine.generation, t0: performance.now(),
      ms: { read: 0, embed: 0, thumb: 0 } };
  }
  run.queue.push(...fresh);
  run.total += fresh.length;
  run.skipped += skipped;
  report([], []);
  if (!fresh.length) { finish(); return; }
  startPool().then(pump, (e) => {
    const errors = run.queue.map((f) => ({ file: f.path || f.file.name, message: errorText(e) }));
    run.failed += errors.length; run.done += errors.length; run.queue = [];
    report([], errors);
    finish();
  });
}

function cancelAdding() {
  if (!run) return;
  run.total -= run.queue.length;
  run.queue = [];
  if (!poolWorkers.some((w) => w.busy)) finish();
}

function report(items, errors) {
  if (!run) return;
  postMessage({ type: 'mine-progress', phase: 'embed', done: run.done, total: run.total, added: run.added,
    failed: run.failed, skipped: run.skipped, items, errors, elapsedMs: performance.now() - run.t0, ...mineStats() });
}

function finish() {
  if (!run) return;
  const r = run;
  run = null;
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => { if (!run) stopPool(); }, POOL_IDLE_MS);
  // Mean time per added photo inside one embedding worker: reading the file, the wasm encoder, the thumbnail.
  const perPhoto = Object.fromEntries(Object.entries(r.ms).map(([k, v]) => [k, r.added ? v / r.added : 0]));
  postMessage({ type: 'mine-done', total: r.total, added: r.added, failed: r.failed, skipped: r.skipped,
    elapsedMs: performance.now() - r.t0, perPhoto, ...mineStats() });
}

function pump() {
  if (!run) return;
  for (const slot of poolWorkers) {
    if (slot.busy || !run.queue.length) continue;
    const job = run.queue.shift();
    slot.busy = true;
    const generation = run.generation;
    slot.worker.onmessage = ({ data }) => {
      slot.busy = false;
      if (generation === mine.generation && run) accept(job, data);
      if (run && !run.queue.length && !poolWorkers.some((w) => w.busy)) finish();
      else pump();
    };
    slot.worker.postMessage({ type: 'embed', job: job.key, file: job.file });
  }
}

function accept(job, data) {
  const name = job.path || job.file.name;
  run.done++;
  if (data.error || !data.vector) {
    run.failed++;
    report([], [{ file: name, message: data.error || 'no vector' }]);
    return;
  }
  let id;
  try {
    id = engine.add_vector(job.file.name, job.key, data.vector);
  } catch (e) {
    run.failed++;
    report([], [{ file: name, message: errorText(e) }]);
    return;
  }
  mine.embedded++;
  mine.keys.add(job.key);
  run.added++;
  for (const k of Object.keys(run.ms)) run.ms[k] += data.ms?.[k] || 0;
  const record = { key: job.key, modelId: model.manifest.model_id, name: job.file.name, path: name,
    size: job.file.size, lastModified: job.file.lastModified, seq: mine.seq++, vector: data.vector,
    thumb: data.thumb || null, addedAt: Date.now() };
  const errors = [];
  if (!mine.dbError) {
    withStore('readwrite', (s) => s.put(record)).catch((e) => {
      mine.dbError = `your photos cannot be kept on this device (${errorText(e)}); they will be forgotten on reload`;
      postMessage({ type: 'mine-note', message: mine.dbError });
    });
  }
  report([itemOf(id, record)], errors);
}
