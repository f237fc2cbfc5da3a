// The pool of embedding workers (embed-worker.js) that turn the user's photos into vectors. Started on the first
// photo added, not before: it first downloads the two files only embedding needs, then hands every worker the
// compiled wasm module and the weights, so the workers download nothing themselves. Stopped a minute after the
// last photo, since idle workers hold tens of MB each (weights + wasm heap).
import { EmbedRequest, EmbedEvent, errorText } from '../protocol.js';
import { fetchFile, forget, modelFile, progressOf } from './downloads.js';

const IDLE_MS = 60_000;
// Photos in flight per worker: the next one is handed over while one is in the encoder, so a big JPEG's browser
// decode (on the browser's threads, photo-decode.js) overlaps the wasm work instead of waiting for it.
const DEPTH = 2;

export class EmbedPool {
  /** `model`: `{ cache, manifest, manifestText, module }` from the search worker's load; `onDownload({ loaded,
   *  total })` reports the image model's download. */
  constructor(model, onDownload) {
    this.model = model;
    this.onDownload = onDownload;
    this.size = Math.max(1, Math.min(4, navigator.hardwareConcurrency || 2)); // workers to start
    this.slots = [];        // [{ worker, jobs }] of the started pool
    this.starting = null;   // Promise of the started pool
    this.files = null;      // { imageEncoder, imageHead, keys }: the bytes, and their Cache API keys
    this.idleTimer = 0;
    this.browserDecode = 'auto';
    this.jobs = 0;          // the last job number handed out
  }

  /** How many workers to run (1–8), and whether big JPEGs go to the browser's decoder (photo-decode.js): true,
   *  false or 'auto' (the default); a running pool stops, and the next add starts the new setting. */
  resize(count, browserDecode = 'auto') {
    this.size = Math.max(1, Math.min(8, count | 0));
    this.browserDecode = [true, false].includes(browserDecode) ? browserDecode : 'auto';
    this.stop();
    return this.size;
  }

  // 'auto': the wasm decoder. It decodes a large JPEG at 1/2–1/8 of its size in the IDCT, as `trainer publish`
  // does (the same vector), in less worker time than the browser's path spends after its own decode (12-MP JPEG
  // on the 2-core VM: ~105 ms in wasm vs ~90 ms browser decode + ~115 ms in the worker; docs/benchmarks.md).
  get decodesInBrowser() {
    return this.browserDecode === true;
  }

  // The two files only embedding photos needs, image_encoder.safetensors (the stock backbone) and
  // image_head.safetensors (the trained projection and fine-tuned layers): downloaded in parallel the first
  // time photos are added, with one progress bar; cached by content hash afterwards.
  async imageModel() {
    if (this.files) return this.files;
    const { manifest, cache } = this.model;
    const names = manifest.files || {};
    if (!names.image_encoder) {
      throw new Error('this model has no image encoder, so it cannot index your photos '
        + '(add it with `trainer export-image-encoder --model static/model`)');
    }
    if (!names.image_head) throw new Error('this model has no image head (image_head.safetensors), so it cannot index your photos');
    const parts = [modelFile(manifest, names.image_encoder), modelFile(manifest, names.image_head)];
    const report = () => this.onDownload(progressOf(parts.map((p) => p.file)));
    const [imageEncoder, imageHead] = await Promise.all(parts.map(({ file, key }) => fetchFile(cache, file, { pinnedKey: key, report })));
    this.files = { imageEncoder, imageHead, keys: parts.map(({ file, key }) => key || file) };
    return this.files;
  }

  /** Starts the pool (once; again after a failure or `stop`); resolves when every worker is ready. */
  start() {
    this.starting ??= this.#start().catch((e) => { this.starting = null; throw e; });
    return this.starting;
  }

  async #start() {
    const files = await this.imageModel();
    const slots = Array.from({ length: this.size }, () => ({
      worker: new Worker(new URL('./embed-worker.js', import.meta.url), { type: 'module' }),
      jobs: new Map(), // job → resolve, for the photos handed to this worker and not answered yet
    }));
    await Promise.all(slots.map(({ worker }) => new Promise((resolve, reject) => {
      worker.onmessage = ({ data }) => data.type === EmbedEvent.started ? resolve()
        : reject(new Error(data.error || 'the embedding worker failed to start'));
      worker.onerror = (e) => reject(new Error(`the embedding worker failed to start (${e.message || 'script error'})`));
      // The bytes are copied, not transferred: every worker needs them.
      worker.postMessage({ type: EmbedRequest.init, module: this.model.module, manifestJson: this.model.manifestText,
        imageEncoder: files.imageEncoder, imageHead: files.imageHead, browserDecode: this.decodesInBrowser });
    }))).catch(async (e) => {
      for (const { worker } of slots) worker.terminate();
      // The workers check both files against the manifest's SHA-256: a damaged copy must not live on in the
      // cache (the next add downloads them again).
      if (/SHA-256|safetensors/.test(errorText(e))) {
        this.files = null;
        await forget(this.model.cache, files.keys);
      }
      throw e;
    });
    for (const slot of slots) {
      slot.worker.onmessage = ({ data }) => {
        const resolve = slot.jobs.get(data.job);
        slot.jobs.delete(data.job);
        resolve?.(data);
      };
    }
    this.slots = slots;
  }

  stop() {
    clearTimeout(this.idleTimer);
    for (const { worker } of this.slots) worker.terminate();
    this.slots = [];
    this.starting = null;
  }

  /** Stops the pool after a minute unless `keepAlive` comes first. */
  stopWhenIdle() {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.stop(), IDLE_MS);
  }

  keepAlive() { clearTimeout(this.idleTimer); }

  get started() { return this.slots.length; }
  /** The workers that can take another photo now (one slot per free place; the least loaded first). */
  freeSlots() {
    const free = [];
    for (let depth = 0; depth < DEPTH; depth++) free.push(...this.slots.filter((s) => s.jobs.size <= depth));
    return free;
  }
  anyBusy() { return this.slots.some((s) => s.jobs.size > 0); }

  /** Embeds `file` on `slot`: resolves with the worker's `embedded` event (`{ vector, thumb, decoder, ms }` or
   *  `{ error }`). */
  embed(slot, file) {
    const job = ++this.jobs;
    return new Promise((resolve) => {
      slot.jobs.set(job, resolve);
      slot.worker.postMessage({ type: EmbedRequest.embed, job, file });
    });
  }
}
