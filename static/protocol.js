// Every message between the page's threads, in one place: the page ↔ the search worker (worker/search-worker.js)
// and the search worker ↔ its embedding workers (worker/embed-worker.js). Each side dispatches on these names
// through a handler table checked with `checkHandlers`, so a message added here without a handler (or the other
// way round) fails at start-up instead of being silently ignored. A message's wire name is its key.

/** Requests, page → search worker: `{ type, seq?, ...fields }`. A request the page awaits (`ask`) carries a
 *  `seq`, and the worker answers it with one `answer` event of the same `seq`. Until `ready`, every request but
 *  `load` and `resources` is answered `{ error: 'still loading' }`. */
export const Request = Object.freeze({
  /** Download and start everything. No fields; no answer: `progress` events, then `ready` or `fatal`. Sent
   *  again after a `fatal`, it tries again. */
  load: 'load',
  /** `{ query, k, scope: 'all' | 'mine' | 'gallery' }` → answer `{ kind, results: [{ id, score, strong }] best first,
   *  ms }` (`strong`: whether the result reaches the model's calibrated strong-match score; absent when the
   *  model is not calibrated).
   *  A partitioned gallery's answer also has `items` (the metadata of the gallery pictures it names, which the
   *  page loads only so), `searched` (gallery pictures scored), `lists: { done, total }` and `fetched: { network,
   *  cache }` (bytes of lists and metadata this query read, by where from), and `searchProgress`
   *  events with the same `seq` come before it as lists arrive; a newer search makes an older one answer
   *  `{ error: 'superseded …' }`. A gallery searched on the server (worker/server-gallery.js) answers `items`
   *  too, and a newer search or "more like" supersedes an older one the same way. */
  search: 'search',
  /** `{ id, k }`: pictures like picture `id` → answer `{ kind, results: [{ id, score }], ms }` (partitioned: as
   *  `search`, `items` starting with picture `id`'s own). `search` and `similar` with a `refine` field (the
   *  refinement's URL parameters, page/refine.js `engineParams`: `up=3.17&down=5&orient=…&min=…&lic=…&collapse=1
   *  &vary=1`) are refined (worker/workflow.js): each result may carry `similar`, the ids of the near-duplicates
   *  collapsed into it (their items come with a partitioned or server answer); a bad parameter is the answer's
   *  `error`. */
  similar: 'similar',
  /** `{ text, kIdea, kWhole, scope, refine }`: a pasted passage → answer `{ kind, ideas: [{ text, first, last,
   *  results }], whole, sentences, total, withoutWords, truncated: { bytes, kept } | null, items?, ms }` —
   *  suggestions per idea (adjacent close sentences; `first`/`last`: its sentences, from 0) and for the passage
   *  as a whole; text over the engine's 100,000 bytes is cut at a paragraph or sentence end (`truncated`). A
   *  newer search supersedes it as it does a search. A server gallery POSTs it to /api/search. */
  passage: 'passage',
  /** `{ query, id }`: how much each word of `query` adds to picture `id`'s score → answer
   *  `{ kind, score, words: [{ token, known, delta }], ms }`. */
  explain: 'explain',
  /** No fields → answer `{ entries: [{ name, transferSize, encodedBodySize, decodedBodySize }] }`: the worker's
   *  resource timings (its downloads; for tools). */
  resources: 'resources',
  /** `{ files: [{ file: File, path }], more }`: index the user's photos (`more`: further slices of the same add
   *  follow). No answer: `myPhotosProgress` events, then `myPhotosDone`. Photos already indexed (same path, size
   *  and date) are counted as skipped. */
  addPhotos: 'addPhotos',
  /** `{ handle: FileSystemDirectoryHandle }`: index a folder picked with the File System Access API; the worker
   *  lists it and remembers it, so an add a reload interrupts can continue (`ready.restored.folders`) → answer
   *  `{}` once its files are queued; then like `addPhotos`. */
  addFolder: 'addFolder',
  /** `{ id }`: continue adding a remembered folder (the page has asked for the permission to read it) → `{}`. */
  continueFolder: 'continueFolder',
  /** No fields: drop the photos not yet started; the add in progress ends with `myPhotosDone`. No answer. */
  cancelAdding: 'cancelAdding',
  /** No fields: forget all the user's photos (page session and IndexedDB) → answer `{}` or `{ error }`. */
  clearPhotos: 'clearPhotos',
  /** `{ ids }`: the user's photos among these picture ids, for display → answer `{ photos: [MyPhoto] }`. */
  describePhotos: 'describePhotos',
  /** `{ ids }`: the gallery.json items of these gallery picture ids, for a shared board (page/board.js) → answer
   *  `{ items }` (an id the gallery does not have is left out). A flat gallery's page has them all already; a
   *  partitioned gallery reads their metadata blocks, a server gallery asks for each one. */
  items: 'items',
  /** `{ count, browserDecode? }`: how many embedding workers to run (1–8) and whether big JPEGs are decoded by the
   *  browser (true; false or 'auto': the wasm decoder, which scales large JPEGs as `trainer publish` does); for benchmarks → answer
   *  `{ count }` as applied. */
  embedWorkers: 'embedWorkers',
  /** No fields → answer `MyPhotosStats` (see `myPhotosDone`). */
  myPhotosStats: 'myPhotosStats',
  /** `{ count, seed? }`: benchmarks and tests only: add `count` synthetic photos (stored ones' vectors plus noise,
   *  no thumbnails) without embedding anything → answer `{ count }` (all the user's photos). */
  addSyntheticPhotos: 'addSyntheticPhotos',
});

/** Events, search worker → page: `{ type, ...fields }`. */
export const Event = Object.freeze({
  /** `{ loaded, total, file }`: bytes of the first load so far (`total` null while some sizes are unknown). */
  progress: 'progress',
  /** `{ items, count, partitioned, modelId, metrics, bytes, timings: { downloadMs, initMs, restoreMs }, canEmbed,
   *  restored }`: the engine is up. `items` are gallery.json's items (index = picture id; empty for a partitioned
   *  gallery, whose items come with the answers); `count`: pictures in the gallery; `partitioned`: `{ lists, probe }`
   *  or null for a flat gallery; `server`: true when the gallery is searched on the server (no engine in the
   *  page, items with the answers, no "My photos", no explain); `canEmbed`: the model can index photos;
   *  `restored: { count, firstId, dropped, error, folders: [{ id, name, handle }] }`: the user's photos brought
   *  back from IndexedDB (ids `firstId .. firstId + count`), how many were dropped (indexed with another model),
   *  why nothing persists, if so, and the picked folders whose add did not finish; `summary`: gallery.json's
   *  `summary` (`{ themes: [{ theme, count }], examples: [{ prompt, score, strong }] }`) or null. */
  ready: 'ready',
  /** `{ message }`: loading failed; the page shows its error state. */
  fatal: 'fatal',
  /** Adding photos. `{ phase: 'download', loaded, total }` while the image model downloads, then
   *  `{ phase: 'embed', done, total, added, failed, skipped, errors: [{ file, message }], elapsedMs,
   *  ...MyPhotosStats }` with the files refused since the last event (`skipped`: already indexed). */
  myPhotosProgress: 'myPhotosProgress',
  /** `{ total, added, failed, skipped, elapsedMs, perPhoto: { read, decode, embed, thumb } (ms), decoders: {
   *  browser, wasm } (photos each decoded), ...MyPhotosStats }`: the add ended. `MyPhotosStats` = `{ count,
   *  firstId, embedded, restored, workers, poolSize, browserDecode, adding, wasmMemoryBytes }` (the user's photos are ids
   *  `firstId .. firstId + count`). */
  myPhotosDone: 'myPhotosDone',
  /** `{ message }`: something the user should know about their photos (e.g. they cannot be kept). */
  myPhotosNote: 'myPhotosNote',
  /** `{ seq, results, items, searched, lists: { done, total } }`: the running results of the `search` or
   *  `similar` with this `seq` over a partitioned gallery, after some of its lists (the answer follows). */
  searchProgress: 'searchProgress',
  /** `{ seq, error?, ...answer }`: the answer to the request with this `seq`. */
  answer: 'answer',
});

/** A user's photo as the page gets it (`describePhotos`): `{ id, name, path, thumb: Blob | null }` (`id` follows
 *  the gallery's ids). */

/** Requests, search worker → one embedding worker. */
export const EmbedRequest = Object.freeze({
  /** `{ module: WebAssembly.Module, manifestJson, imageEncoder, imageHead, browserDecode }` (weights as bytes;
   *  `browserDecode`: big JPEGs to the browser's decoder, worker/photo-decode.js) → `started` or `failed`. */
  init: 'init',
  /** `{ job, file: File }` → `embedded` with the same `job`. */
  embed: 'embed',
});

/** Events, embedding worker → search worker. */
export const EmbedEvent = Object.freeze({
  /** No fields: the worker holds the image encoder and takes `embed` requests. */
  started: 'started',
  /** `{ error }`: `init` failed (e.g. a weight file does not match the manifest's SHA-256). */
  failed: 'failed',
  /** `{ job, vector: Float32Array, thumb: Blob | null, decoder: 'browser' | 'wasm', ms: { read, decode, embed, thumb } }`,
   *  or `{ job, error }`. */
  embedded: 'embedded',
});

/** The text of a thrown value, as the `error` / `message` fields carry it. */
export const errorText = (e) => (e && e.message) ? e.message : String(e);

/** Throws unless `handlers` has exactly one handler per message of `messages` (one of the tables above). */
export function checkHandlers(messages, handlers, where) {
  const names = new Set(Object.values(messages));
  const missing = [...names].filter((n) => typeof handlers[n] !== 'function');
  const unknown = Object.keys(handlers).filter((n) => !names.has(n));
  if (missing.length || unknown.length) {
    throw new Error(`${where}: no handler for ${missing.join(', ') || '-'}; handlers for unknown messages ${unknown.join(', ') || '-'}`);
  }
  return handlers;
}
