// The user's own photos in the search engine ("My photos", search-worker side): restored from IndexedDB on load
// (in bulk, chunk by chunk), added in batches (each file → the embedding pool → int8 row → Engine.add_quantized
// → stored), described on demand (names and thumbnails of the photos on screen), cancelled, cleared, counted.
// Built for 10k–100k photos: the engine keeps int8 rows, IndexedDB holds chunks of 1,024 photos and one small
// thumbnail per photo, and the page only ever holds the photos it shows. A photo already indexed (same path,
// size and date) is skipped, so adding a folder again after a reload continues where it stopped.
// Photos indexed with another model are dropped (their vectors would not match the new text encoder).
import { Request, Event, errorText } from '../protocol.js';
import { EmbedPool } from './embed-pool.js';
import * as store from './photo-store.js';
import { folderFiles } from './folder-files.js';

const cannotKeep = (e) => `your photos cannot be kept on this device (${errorText(e)}); they will be forgotten on reload`;

// A photo's identity for "already added": its path, size and modification time.
export const photoKey = ({ file, path }) => `${path || file.name}\u0000${file.size}\u0000${file.lastModified}`;

// New photos reach IndexedDB at most this long after they are indexed (one chunk write, not one per photo);
// a reload loses at most this much work, and adding the same files again redoes only that.
const FLUSH_MS = 2000;
// Rows kept in memory as the centres of synthetic photos (addSynthetic, for benchmarks).
const SYNTHETIC_BASES = 64;

export class MyPhotos {
  /** `engine`: the wasm Engine; `model`: `{ cache, manifest, manifestText, module }`; `post(event)` sends an event
   *  to the page; `wasmExports`: the wasm instance's exports (its memory size goes in the stats). */
  constructor({ engine, model, post, wasmExports }) {
    this.engine = engine;
    this.model = model;
    this.post = post;
    this.wasmExports = wasmExports;
    this.dim = model.manifest.embed_dim;
    this.pool = new EmbedPool(model, ({ loaded, total }) =>
      post({ type: Event.myPhotosProgress, phase: 'download', loaded, total }));
    this.photos = [];       // [{ key, name, path, size, lastModified }], index = id − firstId
    this.keys = new Set();  // their keys (photos already indexed are skipped)
    this.embedded = 0;      // photos embedded in this page session (a reload that restores must leave it at 0)
    this.restored = 0;      // photos restored from IndexedDB on load
    this.generation = 0;    // bumped by clear: late answers of an older generation are dropped
    this.storeError = null; // why nothing persists (e.g. private mode), shown once
    this.bases = [];        // [{ codes, scale }] of the first photos (synthetic photos are drawn around them)
    // The chunk being filled: { id, photos, codes: Int8Array(CHUNK × dim), scales: Float32Array(CHUNK) }, plus
    // the thumbnails not yet written ([[key, Blob]]); written at most FLUSH_MS after a change.
    this.open = this.#newChunk(0);
    this.pendingThumbs = [];
    this.flushTimer = 0;
    this.writing = Promise.resolve(); // IndexedDB writes, in order
    // The batch being added: { queue, total, done, added, failed, skipped, generation, t0, ms, decoders }, or null.
    this.batch = null;
  }

  get firstId() { return this.engine.gallery_len(); }

  #newChunk(id) {
    return { id, photos: [], codes: new Int8Array(store.CHUNK * this.dim), scales: new Float32Array(store.CHUNK) };
  }

  /** Loads the stored photos of this model into the engine: `{ count, firstId, dropped, error, folders }`
   *  (`folders`: File System Access folders whose add did not finish: `[{ id, name, handle }]`). */
  async restore() {
    const modelId = this.model.manifest.model_id;
    const out = { count: 0, firstId: this.firstId, dropped: 0, error: null, folders: [] };
    const stale = { ids: [], keys: [] };
    let last = null;
    try {
      this.engine.reserve_added((await store.chunkCount()) * store.CHUNK);
      await store.eachChunk((chunk) => {
        const n = chunk.photos?.length ?? 0;
        const ok = chunk.modelId === modelId && chunk.dim === this.dim && n > 0
          && chunk.codes?.length === n * this.dim && chunk.scales?.length === n;
        if (ok) {
          try {
            this.engine.add_quantized(chunk.codes, chunk.scales);
          } catch {
            return void drop(chunk); // a damaged record: forget it
          }
          for (const [i, p] of chunk.photos.entries()) {
            this.photos.push(p);
            this.keys.add(p.key);
            if (this.bases.length < SYNTHETIC_BASES) this.bases.push({ codes: chunk.codes.slice(i * this.dim, (i + 1) * this.dim), scale: chunk.scales[i] });
          }
          last = chunk;
        } else drop(chunk);
      });
      // Photos of version 1's one-record-per-photo store: re-stored as chunks (once).
      const legacy = await store.legacyRecords();
      if (legacy.length) await this.#migrate(legacy, last, stale);
      else if (last) this.#reopen(last);
      out.folders = (await store.folders()).filter((f) => !f.done);
    } catch (e) {
      this.storeError = out.error = cannotKeep(e);
    }
    function drop(chunk) {
      stale.ids.push(chunk.id);
      for (const p of chunk.photos || []) stale.keys.push(p.key);
      out.dropped += chunk.photos?.length ?? 0;
    }
    if (stale.ids.length) await store.deleteChunks(stale.ids, stale.keys).catch(() => {});
    this.restored = out.count = this.photos.length;
    out.dropped += stale.legacy || 0;
    return out;
  }

  // The last chunk, when not full, is filled further (chunks stay dense); else a new one follows it.
  #reopen(chunk) {
    if (chunk.photos.length >= store.CHUNK) { this.open = this.#newChunk(chunk.id + 1); return; }
    this.open = this.#newChunk(chunk.id);
    this.open.photos = [...chunk.photos];
    this.open.codes.set(chunk.codes);
    this.open.scales.set(chunk.scales);
  }

  async #migrate(records, last, stale) {
    if (last) this.#reopen(last);
    else this.open = this.#newChunk(0);
    const modelId = this.model.manifest.model_id;
    for (const r of records) {
      if (r.modelId !== modelId || this.keys.has(r.key)) { stale.legacy = (stale.legacy || 0) + 1; continue; }
      try {
        const { codes, scale } = this.engine.quantize(r.vector);
        this.#append({ key: r.key, name: r.name, path: r.path, size: r.size, lastModified: r.lastModified }, codes, scale, r.thumb);
      } catch {
        stale.legacy = (stale.legacy || 0) + 1;
      }
    }
    await this.flush();
    await store.clearLegacy();
  }

  /** Adds one quantised photo to the engine and the open chunk; returns its id. */
  #append(photo, codes, scale, thumb) {
    const id = this.engine.add_quantized(codes, Float32Array.of(scale));
    this.photos.push(photo);
    this.keys.add(photo.key);
    if (this.bases.length < SYNTHETIC_BASES) this.bases.push({ codes, scale });
    const o = this.open;
    o.codes.set(codes, o.photos.length * this.dim);
    o.scales[o.photos.length] = scale;
    o.photos.push(photo);
    if (thumb) this.pendingThumbs.push([photo.key, thumb]);
    if (o.photos.length === store.CHUNK) {
      this.#write(); // a full chunk is written now, and the next one starts
      this.open = this.#newChunk(o.id + 1);
    } else {
      this.flushTimer ||= setTimeout(() => this.flush(), FLUSH_MS);
    }
    return id;
  }

  // Queues the write of the open chunk (as it is now) and the thumbnails not yet written.
  #write() {
    clearTimeout(this.flushTimer);
    this.flushTimer = 0;
    const o = this.open;
    const thumbs = this.pendingThumbs;
    this.pendingThumbs = [];
    if (this.storeError || !o.photos.length) return this.writing;
    const n = o.photos.length;
    const record = { id: o.id, modelId: this.model.manifest.model_id, dim: this.dim, photos: [...o.photos],
      codes: o.codes.slice(0, n * this.dim), scales: o.scales.slice(0, n) };
    this.writing = this.writing.then(() => store.putChunk(record, thumbs)).catch((e) => {
      if (this.storeError) return;
      this.storeError = cannotKeep(e);
      this.post({ type: Event.myPhotosNote, message: this.storeError });
    });
    return this.writing;
  }

  /** Writes what is not stored yet; resolves when every write so far is done. */
  flush() { return this.#write(); }

  async clear() {
    this.cancel();
    this.generation++;
    this.engine.clear_added();
    this.photos = [];
    this.keys.clear();
    this.bases = [];
    this.embedded = 0;
    this.restored = 0;
    clearTimeout(this.flushTimer);
    this.flushTimer = 0;
    this.open = this.#newChunk(0);
    this.pendingThumbs = [];
    // After the writes already queued, so none of them brings a photo back.
    const cleared = this.writing.then(() => store.clearAll());
    this.writing = cleared.catch(() => {}); // later writes still run if this one failed
    this.storeError = null;
    await cleared;
  }

  stats() {
    return { count: this.photos.length, firstId: this.firstId, embedded: this.embedded, restored: this.restored,
      workers: this.pool.size, poolSize: this.pool.started, browserDecode: this.pool.decodesInBrowser, adding: Boolean(this.batch),
      wasmMemoryBytes: this.wasmExports?.memory?.buffer.byteLength ?? null };
  }

  /** Names and thumbnails of the photos with these ids (the page asks for the ones it shows):
   *  `{ photos: [{ id, name, path, thumb: Blob | null }] }`; ids that are not photos are left out. */
  async describe(ids) {
    const first = this.firstId;
    const wanted = [...new Set(ids)].filter((id) => Number.isInteger(id) && id >= first && id < first + this.photos.length);
    const photos = wanted.map((id) => ({ id, ...this.photos[id - first] }));
    let thumbs = [];
    try {
      thumbs = await store.thumbsOf(photos.map((p) => p.key));
    } catch { /* shown without thumbnails */ }
    // Thumbnails not written yet are still in memory.
    const pending = new Map(this.pendingThumbs);
    return { photos: photos.map((p, i) => ({ id: p.id, name: p.name, path: p.path, thumb: thumbs[i] || pending.get(p.key) || null })) };
  }

  /** Queues `files` (`[{ file, path }]`) for embedding, skipping photos already added or queued. `more`: the page
   *  is still sending this add's files (in slices), so the batch does not end between them. `folder`: the
   *  remembered folder they come from (marked done when the batch ends uncancelled). */
  add(files, { more = false, folder = null } = {}) {
    this.pool.keepAlive();
    this.batch ??= { queue: [], queued: new Set(), total: 0, done: 0, added: 0, failed: 0, skipped: 0,
      generation: this.generation, t0: performance.now(), ms: { read: 0, decode: 0, embed: 0, thumb: 0 },
      decoders: { browser: 0, wasm: 0 }, folders: [] };
    const batch = this.batch;
    batch.more = more;
    if (folder) batch.folders.push(folder);
    let fresh = 0;
    for (const f of files) {
      const key = photoKey(f);
      if (this.keys.has(key) || batch.queued.has(key)) { batch.skipped++; continue; }
      batch.queued.add(key);
      batch.queue.push({ ...f, key });
      fresh++;
    }
    batch.total += fresh;
    this.#report([]);
    if (!fresh) {
      // Nothing new; a batch still running ends by itself when its photos are done.
      if (!batch.queue.length && !this.pool.anyBusy() && !batch.more) this.#finish();
      return;
    }
    this.pool.start().then(() => this.#pump(), (e) => this.#fail(e));
  }

  /** A folder picked with the File System Access API (Chromium): remembered (so an add a reload interrupts can
   *  continue), its files listed here, off the page's thread, and added. */
  async addFolder(handle, id = null) {
    const folder = { id: id ?? `${handle.name}\u0000${Date.now()}`, name: handle.name, handle, done: false };
    await store.putFolder(folder).catch(() => {});
    let files;
    try {
      files = await folderFiles(handle);
    } catch (e) {
      this.post({ type: Event.myPhotosNote, message: `Could not read the folder “${handle.name}”: ${errorText(e)}` });
      return;
    }
    this.add(files, { folder });
  }

  /** Continues a remembered folder (`restored.folders`), after the page got the permission to read it again. */
  async continueFolder(id) {
    const folder = (await store.folders()).find((f) => f.id === id);
    if (!folder) throw new Error('that folder is no longer remembered: add it again');
    await this.addFolder(folder.handle, folder.id);
  }

  // The pool could not start (download or weights failed): every queued photo fails with that reason.
  #fail(e) {
    const b = this.batch;
    if (!b) return;
    const errors = b.queue.map((f) => ({ file: f.path || f.file.name, message: errorText(e) }));
    b.failed += errors.length; b.done += errors.length; b.queue = [];
    this.#report(errors);
    if (!this.pool.anyBusy() && !b.more) this.#finish();
  }

  /** Drops the photos not yet started; the batch ends when the running ones are done. */
  cancel() {
    if (!this.batch) return;
    this.batch.cancelled = true;
    this.batch.more = false; // the page stops sending too
    this.batch.total -= this.batch.queue.length;
    this.batch.queue = [];
    if (!this.pool.anyBusy()) this.#finish();
  }

  #report(errors) {
    const b = this.batch;
    if (!b) return;
    this.post({ type: Event.myPhotosProgress, phase: 'embed', done: b.done, total: b.total, added: b.added,
      failed: b.failed, skipped: b.skipped, errors, elapsedMs: performance.now() - b.t0, ...this.stats() });
  }

  #finish() {
    const b = this.batch;
    if (!b) return;
    this.batch = null;
    this.pool.stopWhenIdle();
    this.flush();
    // A folder whose files were all seen is done (a cancelled one can still be continued).
    if (!b.cancelled) for (const f of b.folders) store.putFolder({ ...f, done: true }).catch(() => {});
    // Mean time per added photo inside one embedding worker: reading the file, the browser's decode (big
    // JPEGs), the wasm encoder, the thumbnail.
    const perPhoto = Object.fromEntries(Object.entries(b.ms).map(([k, v]) => [k, b.added ? v / b.added : 0]));
    this.post({ type: Event.myPhotosDone, total: b.total, added: b.added, failed: b.failed, skipped: b.skipped,
      elapsedMs: performance.now() - b.t0, perPhoto, decoders: b.decoders, ...this.stats() });
  }

  // Hands queued photos to every free place in the embedding workers; each answer hands out the next one.
  #pump() {
    if (!this.batch) return;
    for (const slot of this.pool.freeSlots()) {
      if (!this.batch.queue.length) break;
      const photo = this.batch.queue.shift();
      const generation = this.batch.generation;
      this.pool.embed(slot, photo.file).then((result) => {
        if (generation === this.generation && this.batch) this.#accept(photo, result);
        if (this.batch && !this.batch.queue.length && !this.pool.anyBusy() && !this.batch.more) this.#finish();
        else this.#pump();
      });
    }
  }

  // One embedded photo (or the embedding worker's error) → the engine, IndexedDB (soon) and the page's count.
  #accept(photo, result) {
    const b = this.batch;
    const path = photo.path || photo.file.name;
    b.done++;
    if (!this.keys.has(photo.key)) {
      try {
        if (result.error || !result.vector) throw new Error(result.error || 'no vector');
        const { codes, scale } = this.engine.quantize(result.vector);
        this.#append({ key: photo.key, name: photo.file.name, path, size: photo.file.size, lastModified: photo.file.lastModified },
          codes, scale, result.thumb || null);
      } catch (e) {
        b.failed++;
        this.#report([{ file: path, message: errorText(e) }]);
        return;
      }
      this.embedded++;
      b.added++;
      for (const k of Object.keys(b.ms)) b.ms[k] += result.ms?.[k] || 0;
      if (result.decoder) b.decoders[result.decoder] = (b.decoders[result.decoder] || 0) + 1;
    } else {
      b.skipped++; // the same photo came twice in one batch (two adds of one folder)
    }
    this.#report([]);
  }

  /** Benchmarks and tests: `count` synthetic photos, each a stored photo's row plus noise (cosine ≈ 0.65 to it;
   *  random unit vectors when there is none), named `synthetic-N.jpg`, without thumbnails, stored like real ones.
   *  Answers `{ count }` (all my photos). */
  async addSynthetic({ count, seed = 1 }) {
    let s = seed >>> 0 || 1;
    const uniform = () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return (s >>> 0) / 4294967296; };
    const gauss = () => Math.sqrt(-2 * Math.log(uniform() + 1e-12)) * Math.cos(2 * Math.PI * uniform());
    const v = new Float32Array(this.dim);
    for (let i = 0; i < count; i++) {
      const base = this.bases.length ? this.bases[i % this.bases.length] : null;
      for (let d = 0; d < this.dim; d++) v[d] = (base ? base.codes[d] * base.scale : 0) + (base ? 0.05 : 1) * gauss();
      const { codes, scale } = this.engine.quantize(v);
      const n = this.photos.length;
      this.#append({ key: `synthetic\u0000${seed}\u0000${n}`, name: `synthetic-${n}.jpg`, path: `synthetic/${n}.jpg`,
        size: 0, lastModified: 0 }, codes, scale, null);
    }
    await this.flush();
    return { count: this.photos.length };
  }
}

/** The search worker's handlers for the "My photos" requests (protocol.js), over `current()` (the MyPhotos of
 *  the loaded engine): the search worker spreads them into its own table. */
export const myPhotoRequests = (current) => ({
  [Request.addPhotos]: (msg) => { current().add(msg.files, { more: msg.more }); },
  [Request.addFolder]: (msg) => current().addFolder(msg.handle).then(() => ({})),
  [Request.continueFolder]: (msg) => current().continueFolder(msg.id).then(() => ({})),
  [Request.cancelAdding]: () => { current().cancel(); },
  [Request.clearPhotos]: () => current().clear().then(() => ({})),
  [Request.describePhotos]: (msg) => current().describe(msg.ids || []),
  [Request.embedWorkers]: (msg) => ({ count: current().pool.resize(msg.count, msg.browserDecode) }),
  [Request.myPhotosStats]: () => current().stats(),
  [Request.addSyntheticPhotos]: (msg) => current().addSynthetic(msg),
});
