// A partitioned gallery in the search worker (wasm-model README "Partitioned gallery"): only the header is part
// of the first load; each query fetches the lists its plan names (a few at a time, best first, kept in the
// Cache API under names that contain the gallery id, so they never need revalidating), hands each to the
// engine, and reports the running results as lists arrive. Per-image metadata comes the same way, in blocks.
// A list or block that is missing or fails its checks fails the query with the file's name: never a ranking
// from fewer lists than planned.
import { fetchImmutable, forget, text } from './downloads.js';

const IN_FLIGHT = 6;             // lists fetched at once (HTTP/1.1 allows 6 connections per host)
const PROGRESS_EVERY_MS = 60;    // at most this often a partial result is posted
const META_BLOCKS_KEPT = 512;    // metadata blocks kept in the worker (~25 KB of JSON each)

export class Superseded extends Error {
  constructor() { super('superseded by a newer search'); this.superseded = true; }
}

export class PartitionedGallery {
  /** `engine`: a wasm Engine built with `Engine.partitioned`; `cache`: the Cache API cache (or null). */
  constructor(engine, cache) {
    this.engine = engine;
    this.cache = cache;
    this.info = engine.partition_info(); // {count, lists, probe, metaBlock, galleryId}
    this.blocks = new Map();             // block -> Promise<items[]>, oldest first
    this.latest = 0;                     // the newest query's number: older ones stop fetching
    this.fetched = { network: 0, cache: 0 }; // bytes of lists and metadata read so far, by where from
  }

  // Files live under gallery/ (paths from the engine: '<gallery id>/lists/…'); immutable: named by the gallery id.
  async fetchPart(file) {
    const path = `gallery/${file}`;
    const { bytes, fromCache } = await fetchImmutable(this.cache, path);
    this.fetched[fromCache ? 'cache' : 'network'] += bytes.length;
    return { path, bytes };
  }

  async loadList(list) {
    const file = this.engine.shard_file(list); // '<gallery id>/lists/…'
    const { path, bytes } = await this.fetchPart(file);
    try {
      this.engine.add_shard(bytes);
    } catch (e) {
      await forget(this.cache, [path]); // a damaged copy must not live on in the cache
      // The engine names the shard within the gallery's folder ('lists/…: CRC-32 mismatch'): say which file.
      const message = e.message || String(e);
      const inner = file.slice(file.indexOf('/') + 1);
      throw new Error(message.startsWith(inner) ? `${path}${message.slice(inner.length)}` : `gallery/${message}`);
    }
  }

  block(b) {
    let entry = this.blocks.get(b);
    if (!entry) {
      entry = this.fetchPart(this.engine.meta_file(b)).then(({ path, bytes }) => {
        try {
          return this.engine.meta_items(b, text(bytes));
        } catch (e) {
          forget(this.cache, [path]);
          throw new Error(`gallery/${e.message || e}`);
        }
      });
      entry.catch(() => this.blocks.delete(b));
      this.blocks.set(b, entry);
      if (this.blocks.size > META_BLOCKS_KEPT) this.blocks.delete(this.blocks.keys().next().value);
    }
    return entry;
  }

  /** The metadata items of gallery images `ids` (ids past the gallery, the user's photos, are skipped). */
  async items(ids) {
    const mine = ids.filter((id) => id < this.info.count);
    const blocks = [...new Set(mine.map((id) => this.engine.meta_block_of(id)))];
    const loaded = new Map(await Promise.all(blocks.map(async (b) => [b, await this.block(b)])));
    const first = (b) => b * this.info.metaBlock;
    return mine.map((id) => { const b = this.engine.meta_block_of(id); return loaded.get(b)[id - first(b)]; });
  }

  /** Makes sure gallery image `id`'s row is in the engine (its list, found through its metadata). */
  async ensureRow(id) {
    if (id >= this.info.count) return null;
    const [item] = await this.items([id]);
    await this.loadList(item.list);
    return item;
  }

  /** Runs a planned query to the end: `plan()` returns a wasm `Search`; `onStep({results, searched, done,
   *  total, items})` (optional) gets the running results (at most every 60 ms). Resolves to the final step. A
   *  newer query makes this one throw `Superseded`. Options (a refined plan, workflow.js): `advance(search)`
   *  instead of the engine's, `items: false` to leave the final step's items out, `finish(search)` run on the
   *  complete plan before it is freed. */
  async run(plan, onStep, { advance = (s) => this.engine.advance(s), items: withItems = true, finish = null } = {}) {
    const ticket = ++this.latest;
    const before = { ...this.fetched };
    const t0 = performance.now();
    const search = plan();
    let finished = false;
    try {
      let step = advance(search); // the lists already in memory, and the user's photos
      let lastPost = 0;
      const report = () => {
        const now = performance.now();
        if (!onStep || now - lastPost < PROGRESS_EVERY_MS) return;
        lastPost = now;
        const snapshot = step;
        this.items(snapshot.results.map((r) => r.id))
          .then((items) => { if (ticket === this.latest && !finished) onStep({ ...snapshot, items }); })
          .catch(() => {}); // the final answer reports any problem
      };
      report();
      // Best lists first, IN_FLIGHT at a time; each is scanned as soon as it is added. A list dropped from memory
      // before it was scanned (a tiny memory cap) is simply fetched again on the next round.
      for (let round = 0; !search.is_complete(); round++) {
        if (round > 3) throw new Error('the shard memory cap is too small for one query\'s lists');
        const queue = Array.from(search.pending());
        const worker = async () => {
          for (let list = queue.shift(); list !== undefined; list = queue.shift()) {
            if (ticket !== this.latest) throw new Superseded();
            await this.loadList(list);
            step = advance(search);
            report();
          }
        };
        await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, queue.length) }, worker));
        step = advance(search);
      }
      if (finish) {
        await finish(search);
        if (ticket !== this.latest) throw new Superseded();
      }
      const tLists = performance.now();
      const items = withItems ? await this.items(step.results.map((r) => r.id)) : [];
      const fetched = { network: this.fetched.network - before.network, cache: this.fetched.cache - before.cache };
      return { ...step, items, fetched, ms: { lists: tLists - t0, items: performance.now() - tLists } };
    } finally {
      finished = true;
      search.free();
    }
  }
}
