// The worker owns the wasm Engine: it downloads the wasm package, the model and the gallery (reporting
// progress in bytes), keeps them in the Cache API for fast and offline revisits, and answers queries.
// The page's main thread never runs model code, so typing stays smooth.
const CACHE = 'imgpick-v1';
let engine = null;
let wasm = null; // the wasm-bindgen module, imported on load so a missing package is a clear error

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
async function readBody(url, res) {
  const total = Number(res.headers.get('content-length')) || 0;
  // A compressed response's Content-Length counts compressed bytes; the stream yields decompressed ones.
  const exact = total && !res.headers.get('content-encoding');
  const entry = { loaded: 0, total: exact ? total : 0 };
  progress.set(url, entry);
  if (!res.body) {
    const buf = new Uint8Array(await res.arrayBuffer());
    entry.loaded = buf.length; entry.total = buf.length; reportProgress(url);
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
    if (now - last > 50) { last = now; reportProgress(url); }
  }
  entry.total = entry.loaded;
  reportProgress(url);
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
async function fetchFile(cache, url, pinnedKey = null) {
  if (pinnedKey && cache) {
    const hit = await cache.match(pinnedKey);
    if (hit) return readBody(url, hit);
  }
  let res;
  try {
    res = await fetch(url, { cache: 'no-cache' });
  } catch (networkError) {
    const hit = cache && await cache.match(url);
    if (hit) return readBody(url, hit);
    throw new LoadError(url, `could not be downloaded (${networkError.message}); are you offline?`);
  }
  if (!res.ok) {
    throw new LoadError(url, `the server answered ${res.status} ${res.statusText || ''}`.trim() +
      (res.status === 404 ? ` (${howToMake(url)})` : ''));
  }
  const bytes = await readBody(url, res);
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
  // The image head is only needed to verify the model id (it covers every model file); issue 6 will use it.
  const [headUrl, headKey] = files.image_head ? modelFile(files.image_head) : [null, null];
  const [wasmBytes, vocab, encoder, galleryBin, galleryJsonBytes, imageHead] = await Promise.all([
    fetchFile(cache, 'pkg/wasm_model_bg.wasm'),
    fetchFile(cache, vocabUrl, vocabKey),
    fetchFile(cache, encUrl, encKey),
    fetchFile(cache, 'gallery/gallery.bin'),
    fetchFile(cache, 'gallery/gallery.json'),
    headUrl ? fetchFile(cache, headUrl, headKey) : Promise.resolve(undefined),
  ]);
  const tDownloaded = performance.now();
  const galleryJson = text(galleryJsonBytes);
  const gallery = parseJson('gallery/gallery.json', galleryJsonBytes);
  try {
    wasm = await import('./pkg/wasm_model.js');
  } catch (e) {
    throw new LoadError('pkg/wasm_model.js', `could not be loaded (${errorText(e)}); build it with scripts/build-wasm.sh`);
  }
  try {
    await wasm.default({ module_or_path: wasmBytes });
  } catch (e) {
    throw new LoadError('pkg/wasm_model_bg.wasm', `could not start the WebAssembly module (${e.message || e})`);
  }
  try {
    engine = new wasm.Engine(text(manifestBytes), text(vocab), encoder, galleryBin, galleryJson, imageHead);
  } catch (e) {
    // Don't let a damaged download live on in the cache.
    if (cache) await Promise.all(['gallery/gallery.bin', 'gallery/gallery.json', 'model/manifest.json', vocabKey || vocabUrl, encKey || encUrl, headKey || headUrl].filter(Boolean)
      .map((k) => cache.delete(k)));
    throw new Error(errorText(e));
  }
  const bytes = [...progress.values()].reduce((s, p) => s + p.loaded, 0);
  postMessage({
    type: 'ready',
    items: gallery.items || [],
    modelId: manifest.model_id,
    metrics: manifest.metrics || null,
    bytes,
    timings: { downloadMs: tDownloaded - t0, initMs: performance.now() - tDownloaded },
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
    case 'search': return { results: hits(engine.search(msg.query, msg.k)), ms: performance.now() - t };
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
  try {
    postMessage({ type: 'answer', seq: msg.seq, kind: msg.type, ...answer(msg) });
  } catch (e) {
    postMessage({ type: 'answer', seq: msg.seq, kind: msg.type, error: errorText(e) });
  }
};
