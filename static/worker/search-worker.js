// The search worker owns the wasm Engine: it downloads the wasm package, the model and the gallery (reporting
// progress in bytes), answers the page's queries, and holds the user's own photos (my-photos.js). The page's main
// thread never runs model code, so typing stays smooth. Messages: Request / Event in protocol.js. A flat gallery
// is loaded whole; a partitioned one (partitioned.js) loads its header, and each query fetches its lists.
import { Request, Event, checkHandlers, errorText } from '../protocol.js';
import { LoadError, fetchFile, forget, modelFile, openCache, overallProgress, parseJson, text } from './downloads.js';
import { MyPhotos, myPhotoRequests } from './my-photos.js';
import { PartitionedGallery } from './partitioned.js';
import { ServerGallery, serverDescriptor } from './server-gallery.js';
import { workflow } from './workflow.js';

let engine = null;
let myPhotos = null;
// Tools read every download of the worker (`resources`); a partitioned gallery's queries make hundreds.
performance.setResourceTimingBufferSize?.(20_000);
let partitioned = null; // a PartitionedGallery when the gallery is partitioned
let server = null; // a ServerGallery when the gallery is searched on the server (no engine then)
// Shard bytes the engine keeps in memory (the Cache API keeps the files): bounds the page's memory after many
// queries at ~the lists of 150 cold queries of a 1 M-image gallery.
const SHARD_MEMORY = 96 << 20;

const reportProgress = (file) => postMessage({ type: Event.progress, ...overallProgress(), file });

async function load() {
  const t0 = performance.now();
  const cache = await openCache();
  const get = (file, pinnedKey = null) => fetchFile(cache, file, { pinnedKey, report: reportProgress });
  // gallery.json comes with the manifest: a gallery searched on the server needs nothing else (server-gallery.js).
  const galleryJson = get('gallery/gallery.json');
  galleryJson.catch(() => {}); // reported where it is awaited
  const manifestBytes = await get('model/manifest.json');
  const manifest = parseJson('model/manifest.json', manifestBytes);
  const serverGallery = serverDescriptor(text(await galleryJson));
  if (serverGallery) { startServer(serverGallery, manifest, t0); return; }
  const files = manifest.files || {};
  const vocab = modelFile(manifest, files.vocab || 'vocab.txt');
  const textEncoder = modelFile(manifest, files.text_encoder || 'text_encoder.safetensors');
  // The wasm module starts while the model downloads: it says which tier gallery.json describes.
  const wasmReady = startWasm(get('pkg/wasm_model_bg.wasm'));
  // A flat gallery: gallery.bin beside it. A partitioned one: its header only (named by the gallery id, so the
  // cached copy is used without asking the network); lists and metadata come with the queries.
  const galleryReady = galleryJson.then(async (jsonBytes) => {
    const json = text(jsonBytes);
    const { wasm } = await wasmReady;
    // `summary`: what the gallery holds and prompts that work on it (the page's empty state)
    const { items = [], summary = null } = parseJson('gallery/gallery.json', jsonBytes);
    if (!wasm.is_partitioned_gallery(json)) return { json, items, summary, bin: await get('gallery/gallery.bin') };
    let headerFile;
    try { headerFile = `gallery/${wasm.partitioned_header_file(json)}`; } catch (e) { throw new LoadError('gallery/gallery.json', errorText(e)); }
    return { json, items: [], summary, headerFile, header: await get(headerFile, headerFile) };
  });
  // Not the image head: only embedding the user's photos needs it, so it comes with the image encoder
  // (embed-pool.js). The engine searches without it.
  const [{ wasm, module, wasmExports }, vocabBytes, encoderBytes, gallery] = await Promise.all([
    wasmReady,
    get(vocab.file, vocab.key),
    get(textEncoder.file, textEncoder.key),
    galleryReady,
  ]);
  const tDownloaded = performance.now();
  try {
    engine = gallery.header
      ? wasm.Engine.partitioned(text(manifestBytes), text(vocabBytes), encoderBytes, gallery.json, gallery.header)
      : new wasm.Engine(text(manifestBytes), text(vocabBytes), encoderBytes, gallery.bin, gallery.json);
  } catch (e) {
    // Don't let a damaged download live on in the cache.
    await forget(cache, ['gallery/gallery.bin', 'gallery/gallery.json', 'model/manifest.json', gallery.headerFile,
      vocab.key || vocab.file, textEncoder.key || textEncoder.file].filter(Boolean));
    throw new Error(errorText(e));
  }
  if (gallery.header) {
    engine.set_shard_memory(SHARD_MEMORY);
    partitioned = new PartitionedGallery(engine, cache);
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
    items: gallery.items,
    count: engine.gallery_len(),
    partitioned: partitioned && { lists: partitioned.info.lists, probe: partitioned.info.probe },
    modelId: manifest.model_id,
    metrics: manifest.metrics || null,
    summary: gallery.summary,
    bytes,
    timings: { downloadMs: tDownloaded - t0, initMs: tInit - tDownloaded, restoreMs: performance.now() - tInit },
  });
  // One throwaway query right after "ready" warms the wasm code paths, so the first keystroke isn't the slow
  // one (and page-ready isn't delayed by it). A partitioned gallery's plan warms the text encoder.
  try { if (partitioned) engine.plan_search('a', 1, 'gallery').free(); else engine.search('a', 1); } catch { /* a real query will report any problem */ }
}

/** A gallery searched on the server: ready at once, with no engine in the page (server-gallery.js). */
function startServer(descriptor, manifest, t0) {
  const gallery = new ServerGallery(descriptor, new URL('../', import.meta.url));
  const fields = gallery.readyFields(); // throws when the server cannot search now
  server = gallery;
  const downloadMs = performance.now() - t0;
  postMessage({ type: Event.ready, ...fields, modelId: descriptor.model_id, metrics: manifest.metrics || null,
    bytes: overallProgress().loaded, timings: { downloadMs, initMs: 0, restoreMs: 0 } });
}

/** Imports and compiles the wasm package once `wasmBytes` (a promise) arrive: `{ wasm, module, wasmExports }`. */
async function startWasm(wasmBytes) {
  const bytes = await wasmBytes; // first: a package that is not built is a 404 saying how to build it
  let wasm;
  try {
    wasm = await import('../pkg/wasm_model.js'); // imported here, so a missing package is a clear error
  } catch (e) {
    throw new LoadError('pkg/wasm_model.js', `could not be loaded (${errorText(e)}); build it with scripts/build-wasm.sh`);
  }
  try {
    // Compiled once here; the embedding workers get the same compiled module (no second download or compile).
    const module = await WebAssembly.compile(bytes);
    return { wasm, module, wasmExports: await wasm.default({ module_or_path: module }) };
  } catch (e) {
    throw new LoadError('pkg/wasm_model_bg.wasm', `could not start the WebAssembly module (${e.message || e})`);
  }
}

// The engine answers [{id, file, thumb, caption, score}] best first; the page has the items, so ids and scores suffice.
// `strong`: the result reaches the model's strong-match score (text queries of a calibrated model; else absent).
const hits = (raw) => Array.from(raw, (h) => ({ id: h.id, score: h.score, strong: h.strong }));

// A query's answer with the time the engine took: `kind` names the request, as the page's tools expect.
async function timed(msg, compute) {
  const t = performance.now();
  const out = await compute();
  return { kind: msg.type, ...out, ms: performance.now() - t };
}

// A partitioned gallery's query, with `searchProgress` events as its lists arrive. The answer carries the
// metadata of the pictures it names (`items`), which the page has not loaded, and how much was searched.
async function progressive(msg, plan) {
  const post = ({ results, items, searched, done, total }) =>
    postMessage({ type: Event.searchProgress, seq: msg.seq, results, items, searched, lists: { done, total } });
  const { results, items, searched, done, total, fetched, ms } = await partitioned.run(plan, post);
  return { results: results.map((r) => ({ id: r.id, score: r.score, strong: r.strong })), items, searched, lists: { done, total }, fetched, split: ms };
}

let loading = null;
// Refined searches and passages (issue #20): requests with a `refine` field, and `passage`.
const refined = workflow(() => ({ engine, partitioned, server }));
const progressOf = (msg) => (p) => postMessage({ type: Event.searchProgress, seq: msg.seq, results: p.results, items: p.items,
  searched: p.searched, lists: { done: p.done, total: p.total } });

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
  [Request.search]: (msg) => timed(msg, () => (typeof msg.refine === 'string' ? refined.search(msg, progressOf(msg)) : server ? server.search(msg) : partitioned
    ? progressive(msg, () => engine.plan_search(msg.query, msg.k, msg.scope || 'all'))
    : { results: hits(engine.search_in(msg.query, msg.k, msg.scope || 'all')) })),
  [Request.similar]: (msg) => timed(msg, async () => {
    if (typeof msg.refine === 'string') return refined.similar(msg, progressOf(msg));
    if (server) return server.similar(msg);
    if (!partitioned) return { results: hits(engine.similar(msg.id, msg.k)) };
    const of = await partitioned.ensureRow(msg.id); // its list holds its vector
    const answer = await progressive(msg, () => engine.plan_similar(msg.id, msg.k));
    return { ...answer, items: of ? [of, ...answer.items] : answer.items };
  }),
  [Request.explain]: (msg) => timed(msg, async () => {
    if (server) return server.explain(msg);
    if (partitioned) await partitioned.ensureRow(msg.id);
    // {id, score, words: [{term, token, known, delta}]}; delta = score with the word − score without it.
    const ex = engine.explain(msg.query, msg.id);
    return { score: ex.score, words: ex.words.map((w) => ({ token: w.token, known: w.known, delta: w.delta })) };
  }),
  [Request.items]: async ({ ids }) => {
    const wanted = (Array.isArray(ids) ? ids : []).filter((id) => Number.isInteger(id) && id >= 0);
    if (server) return server.items(wanted);
    if (partitioned) return { items: await partitioned.items(wanted) };
    return { items: [] }; // a flat gallery's items are all in the page (the `ready` event)
  },
  [Request.passage]: (msg) => timed(msg, () => refined.passage(msg)),
  ...myPhotoRequests(() => myPhotos), // the "My photos" requests: worker/my-photos.js
}, 'search worker');
// As protocol.js says: these two work before the engine is up (the others are answered 'still loading'), and
// these three are not answered.
const WITHOUT_ENGINE = new Set([Request.load, Request.resources]);
const WITHOUT_ANSWER = new Set([Request.load, Request.addPhotos, Request.cancelAdding]);

onmessage = async ({ data: msg }) => {
  const answer = (fields) => postMessage({ type: Event.answer, seq: msg.seq, ...fields });
  if (!engine && !server && !WITHOUT_ENGINE.has(msg.type)) { answer({ error: 'still loading' }); return; }
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
