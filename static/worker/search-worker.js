// The search worker owns the wasm Engine: it downloads the wasm package, the model and the gallery (reporting
// progress in bytes), answers the page's queries, and holds the user's own photos (my-photos.js). The page's main
// thread never runs model code, so typing stays smooth. Messages: Request / Event in protocol.js.
import { Request, Event, checkHandlers, errorText } from '../protocol.js';
import { LoadError, fetchFile, forget, modelFile, openCache, overallProgress, parseJson, text } from './downloads.js';
import { MyPhotos, myPhotoRequests } from './my-photos.js';

let engine = null;
let myPhotos = null;

const reportProgress = (file) => postMessage({ type: Event.progress, ...overallProgress(), file });

async function load() {
  const t0 = performance.now();
  const cache = await openCache();
  const get = (file, pinnedKey = null) => fetchFile(cache, file, { pinnedKey, report: reportProgress });
  const manifestBytes = await get('model/manifest.json');
  const manifest = parseJson('model/manifest.json', manifestBytes);
  const files = manifest.files || {};
  const vocab = modelFile(manifest, files.vocab || 'vocab.txt');
  const textEncoder = modelFile(manifest, files.text_encoder || 'text_encoder.safetensors');
  // Not the image head: only embedding the user's photos needs it, so it comes with the image encoder
  // (embed-pool.js). The engine searches without it.
  const [wasmBytes, vocabBytes, encoderBytes, galleryBin, galleryJsonBytes] = await Promise.all([
    get('pkg/wasm_model_bg.wasm'),
    get(vocab.file, vocab.key),
    get(textEncoder.file, textEncoder.key),
    get('gallery/gallery.bin'),
    get('gallery/gallery.json'),
  ]);
  const tDownloaded = performance.now();
  const galleryJson = text(galleryJsonBytes);
  const gallery = parseJson('gallery/gallery.json', galleryJsonBytes);
  let wasm;
  try {
    wasm = await import('../pkg/wasm_model.js'); // imported here, so a missing package is a clear error
  } catch (e) {
    throw new LoadError('pkg/wasm_model.js', `could not be loaded (${errorText(e)}); build it with scripts/build-wasm.sh`);
  }
  let module, wasmExports;
  try {
    // Compiled once here; the embedding workers get the same compiled module (no second download or compile).
    module = await WebAssembly.compile(wasmBytes);
    wasmExports = await wasm.default({ module_or_path: module });
  } catch (e) {
    throw new LoadError('pkg/wasm_model_bg.wasm', `could not start the WebAssembly module (${e.message || e})`);
  }
  try {
    engine = new wasm.Engine(text(manifestBytes), text(vocabBytes), encoderBytes, galleryBin, galleryJson);
  } catch (e) {
    // Don't let a damaged download live on in the cache.
    await forget(cache, ['gallery/gallery.bin', 'gallery/gallery.json', 'model/manifest.json',
      vocab.key || vocab.file, textEncoder.key || textEncoder.file]);
    throw new Error(errorText(e));
  }
  const bytes = overallProgress().loaded;
  const tInit = performance.now();
  myPhotos = new MyPhotos({ engine, model: { cache, manifest, manifestText: text(manifestBytes), module },
    post: (event) => postMessage(event), wasmExports });
  const restored = await myPhotos.restore();
  postMessage({
    type: Event.ready,
    restored,
    // Both image files are downloaded on the first add; the manifest says whether there are any.
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

// The engine answers [{id, file, thumb, caption, score}] best first; the page has the items, so ids and scores suffice.
const hits = (raw) => Array.from(raw, (h) => ({ id: h.id, score: h.score }));

// A query's answer with the time the engine took: `kind` names the request, as the page's tools expect.
function timed(msg, compute) {
  const t = performance.now();
  const out = compute();
  return { kind: msg.type, ...out, ms: performance.now() - t };
}

let loading = null;

// One handler per request (protocol.js); each returns (or resolves to) the answer's fields.
const handlers = checkHandlers(Request, {
  [Request.load]() {
    loading ??= load().catch((e) => {
      loading = null; // allow "try again"
      postMessage({ type: Event.fatal, message: errorText(e) });
    });
  },
  [Request.resources]: () => ({
    entries: performance.getEntriesByType('resource')
      .map((e) => ({ name: e.name, transferSize: e.transferSize, encodedBodySize: e.encodedBodySize, decodedBodySize: e.decodedBodySize })),
  }),
  [Request.search]: (msg) => timed(msg, () => ({ results: hits(engine.search_in(msg.query, msg.k, msg.scope || 'all')) })),
  [Request.similar]: (msg) => timed(msg, () => ({ results: hits(engine.similar(msg.id, msg.k)) })),
  [Request.explain]: (msg) => timed(msg, () => {
    // {id, score, words: [{term, token, known, delta}]}; delta = score with the word − score without it.
    const ex = engine.explain(msg.query, msg.id);
    return { score: ex.score, words: ex.words.map((w) => ({ token: w.token, known: w.known, delta: w.delta })) };
  }),
  ...myPhotoRequests(() => myPhotos), // the "My photos" requests: worker/my-photos.js
}, 'search worker');
// As protocol.js says: these two work before the engine is up (the others are answered 'still loading'), and
// these three are not answered.
const WITHOUT_ENGINE = new Set([Request.load, Request.resources]);
const WITHOUT_ANSWER = new Set([Request.load, Request.addPhotos, Request.cancelAdding]);

onmessage = async ({ data: msg }) => {
  const answer = (fields) => postMessage({ type: Event.answer, seq: msg.seq, ...fields });
  if (!engine && !WITHOUT_ENGINE.has(msg.type)) { answer({ error: 'still loading' }); return; }
  const handler = handlers[msg.type];
  if (!handler) { answer({ error: `unknown request ${msg.type}` }); return; }
  try {
    const fields = await handler(msg);
    if (!WITHOUT_ANSWER.has(msg.type)) answer(fields);
  } catch (e) {
    if (WITHOUT_ANSWER.has(msg.type)) console.error(`search worker: ${msg.type} failed:`, e);
    else answer({ kind: msg.type, error: errorText(e) });
  }
};
