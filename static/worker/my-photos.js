// The user's own photos in the search engine ("My photos", search-worker side): restored from IndexedDB on load,
// added in batches (each file → the embedding pool → Engine.add_vector → stored), cancelled, cleared, counted.
// Vectors are kept keyed by model id: a reload restores them without re-embedding; photos indexed with another
// model are dropped (their vectors would not match the new text encoder) and the page says so.
import { Event, errorText } from '../protocol.js';
import { EmbedPool } from './embed-pool.js';
import * as store from './photo-store.js';

const cannotKeep = (e) => `your photos cannot be kept on this device (${errorText(e)}); they will be forgotten on reload`;

// A stored record → the photo as the page gets it (protocol.js, MyPhoto).
const pagePhoto = (id, record) => ({ id, name: record.name, path: record.path, thumb: record.thumb || null });

// A photo's identity for "already added": its path, size and modification time.
const photoKey = ({ file, path }) => `${path || file.name}\u0000${file.size}\u0000${file.lastModified}`;

export class MyPhotos {
  /** `engine`: the wasm Engine; `model`: `{ cache, manifest, manifestText, module }`; `post(event)` sends an event
   *  to the page; `wasmExports`: the wasm instance's exports (its memory size goes in the stats). */
  constructor({ engine, model, post, wasmExports }) {
    this.engine = engine;
    this.model = model;
    this.post = post;
    this.wasmExports = wasmExports;
    this.pool = new EmbedPool(model, ({ loaded, total }) =>
      post({ type: Event.myPhotosProgress, phase: 'download', loaded, total }));
    this.keys = new Set();  // record keys of the photos in the engine (duplicates are skipped)
    this.seq = 0;           // next record's order (restores keep the order, so ids stay stable across reloads)
    this.embedded = 0;      // photos embedded in this page session (a reload that restores must leave it at 0)
    this.restored = 0;      // photos restored from IndexedDB on load
    this.generation = 0;    // bumped by clear: late answers of an older generation are dropped
    this.storeError = null; // why nothing persists (e.g. private mode), shown once
    // The batch being added: { queue, total, done, added, failed, skipped, generation, t0, ms }, or null.
    this.batch = null;
  }

  /** Loads the stored photos of this model into the engine: `{ items: [MyPhoto], dropped, error }`. */
  async restore() {
    const modelId = this.model.manifest.model_id;
    const out = { items: [], dropped: 0, error: null };
    let records;
    try {
      records = await store.allRecords();
    } catch (e) {
      this.storeError = out.error = cannotKeep(e);
      return out;
    }
    const stale = records.filter((r) => r.modelId !== modelId).map((r) => r.key);
    const current = records.filter((r) => r.modelId === modelId).sort((a, b) => a.seq - b.seq);
    for (const r of current) {
      try {
        const id = this.engine.add_vector(r.name, r.key, r.vector);
        this.keys.add(r.key);
        out.items.push(pagePhoto(id, r));
      } catch {
        stale.push(r.key); // a damaged record: forget it
      }
      this.seq = Math.max(this.seq, r.seq + 1);
    }
    this.restored = out.items.length;
    out.dropped = stale.length;
    if (stale.length) await store.deleteRecords(stale).catch(() => {});
    return out;
  }

  async clear() {
    this.cancel();
    this.generation++;
    this.engine.clear_added();
    this.keys.clear();
    this.embedded = 0;
    this.restored = 0;
    await store.clearRecords();
  }

  stats() {
    return { count: this.engine.added_len(), embedded: this.embedded, restored: this.restored,
      workers: this.pool.size, poolSize: this.pool.started, adding: Boolean(this.batch),
      wasmMemoryBytes: this.wasmExports?.memory?.buffer.byteLength ?? null };
  }

  /** Queues `files` (`[{ file, path }]`) for embedding, skipping photos already added. */
  add(files) {
    this.pool.keepAlive();
    const fresh = [];
    let skipped = 0;
    for (const f of files) {
      const key = photoKey(f);
      if (this.keys.has(key) || fresh.some((x) => x.key === key)) skipped++;
      else fresh.push({ ...f, key });
    }
    this.batch ??= { queue: [], total: 0, done: 0, added: 0, failed: 0, skipped: 0, generation: this.generation,
      t0: performance.now(), ms: { read: 0, embed: 0, thumb: 0 } };
    const batch = this.batch;
    batch.queue.push(...fresh);
    batch.total += fresh.length;
    batch.skipped += skipped;
    this.#report([], []);
    if (!fresh.length) {
      // Nothing new; a batch still running ends by itself when its photos are done.
      if (!batch.queue.length && !this.pool.anyBusy()) this.#finish();
      return;
    }
    this.pool.start().then(() => this.#pump(), (e) => this.#fail(e));
  }

  // The pool could not start (download or weights failed): every queued photo fails with that reason.
  #fail(e) {
    const b = this.batch;
    if (!b) return;
    const errors = b.queue.map((f) => ({ file: f.path || f.file.name, message: errorText(e) }));
    b.failed += errors.length; b.done += errors.length; b.queue = [];
    this.#report([], errors);
    if (!this.pool.anyBusy()) this.#finish();
  }

  /** Drops the photos not yet started; the batch ends when the running ones are done. */
  cancel() {
    if (!this.batch) return;
    this.batch.total -= this.batch.queue.length;
    this.batch.queue = [];
    if (!this.pool.anyBusy()) this.#finish();
  }

  #report(items, errors) {
    const b = this.batch;
    if (!b) return;
    this.post({ type: Event.myPhotosProgress, phase: 'embed', done: b.done, total: b.total, added: b.added,
      failed: b.failed, skipped: b.skipped, items, errors, elapsedMs: performance.now() - b.t0, ...this.stats() });
  }

  #finish() {
    const b = this.batch;
    if (!b) return;
    this.batch = null;
    this.pool.stopWhenIdle();
    // Mean time per added photo inside one embedding worker: reading the file, the wasm encoder, the thumbnail.
    const perPhoto = Object.fromEntries(Object.entries(b.ms).map(([k, v]) => [k, b.added ? v / b.added : 0]));
    this.post({ type: Event.myPhotosDone, total: b.total, added: b.added, failed: b.failed, skipped: b.skipped,
      elapsedMs: performance.now() - b.t0, perPhoto, ...this.stats() });
  }

  // Hands queued photos to every free embedding worker; each answer hands out the next one.
  #pump() {
    if (!this.batch) return;
    for (const slot of this.pool.freeSlots()) {
      if (!this.batch.queue.length) break;
      const photo = this.batch.queue.shift();
      const generation = this.batch.generation;
      this.pool.embed(slot, photo.key, photo.file).then((result) => {
        if (generation === this.generation && this.batch) this.#accept(photo, result);
        if (this.batch && !this.batch.queue.length && !this.pool.anyBusy()) this.#finish();
        else this.#pump();
      });
    }
  }

  // One embedded photo (or the embedding worker's error) → the engine, IndexedDB and the page.
  #accept(photo, result) {
    const b = this.batch;
    const name = photo.path || photo.file.name;
    b.done++;
    if (result.error || !result.vector) {
      b.failed++;
      this.#report([], [{ file: name, message: result.error || 'no vector' }]);
      return;
    }
    let id;
    try {
      id = this.engine.add_vector(photo.file.name, photo.key, result.vector);
    } catch (e) {
      b.failed++;
      this.#report([], [{ file: name, message: errorText(e) }]);
      return;
    }
    this.embedded++;
    this.keys.add(photo.key);
    b.added++;
    for (const k of Object.keys(b.ms)) b.ms[k] += result.ms?.[k] || 0;
    const record = { key: photo.key, modelId: this.model.manifest.model_id, name: photo.file.name, path: name,
      size: photo.file.size, lastModified: photo.file.lastModified, seq: this.seq++, vector: result.vector,
      thumb: result.thumb || null, addedAt: Date.now() };
    if (!this.storeError) {
      store.putRecord(record).catch((e) => {
        this.storeError = cannotKeep(e);
        this.post({ type: Event.myPhotosNote, message: this.storeError });
      });
    }
    this.#report([pagePhoto(id, record)], []);
  }
}
