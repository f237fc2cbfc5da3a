// A gallery searched on the server (the database tier: `web --db`, db/README.md). Its gallery.json is a
// descriptor, `{ format: 'imgpick-server-gallery', format_version: 1, model_id, count, search: 'api/search' }`
// (wasm-model README, "Server gallery"), and each query is one request to `search`, which answers the same
// ranking the page computes for a flat gallery. Nothing else is downloaded: no wasm, no model, no vectors. The
// answers carry the metadata of the pictures they name (as a partitioned gallery's do); thumbnails stay static
// files under gallery/. The user's own photos need the in-page engine, so they are not offered here.
import { LoadError } from './downloads.js';

export const SERVER_FORMAT = 'imgpick-server-gallery';
const ITEMS_AT_ONCE = 4; // requests in flight while a shared board's pictures are looked up

/** The descriptor when `json` (gallery.json's text) describes a server gallery, else null. */
export function serverDescriptor(json) {
  let d;
  try { d = JSON.parse(json); } catch { return null; } // not ours to judge: the flat/partitioned readers report it
  if (!d || d.format !== SERVER_FORMAT) return null;
  if (d.format_version !== 1) throw new LoadError('gallery/gallery.json', `is a server gallery of format version ${d.format_version}; this page reads version 1 (reload to get the current page)`);
  if (typeof d.search !== 'string' || !/^[\w/.-]+$/.test(d.search) || d.search.startsWith('/') || d.search.includes('..')) {
    throw new LoadError('gallery/gallery.json', `names a search address ${JSON.stringify(d.search)} that is not a path on this site`);
  }
  return d;
}

/** A gallery.json item from a search answer's hit (`/api/search` answers the item's fields with its score). */
const itemOf = (h) => ({ id: h.id, file: h.file, thumb: h.thumb, caption: h.caption, source: h.source, licence: h.licence, url: h.url ?? null });
// `similar`: the near-duplicates a refined answer collapsed into this hit (ids, or hits with their items).
const similarIds = (h) => (Array.isArray(h.similar) ? h.similar.map((s) => (typeof s === 'object' ? s.id : s)) : []);
const resultOf = (h) => {
  const r = h.strong === undefined ? { id: h.id, score: h.score } : { id: h.id, score: h.score, strong: h.strong };
  if (Array.isArray(h.similar)) r.similar = similarIds(h);
  return r;
};
/** `refine` (page/refine.js `engineParams`: `up=3.17&collapse=1` …) as /api/search parameters. */
const refineParams = (refine) => Object.fromEntries(new URLSearchParams(refine || ''));

export class ServerGallery {
  /** `descriptor`: from `serverDescriptor`; `site`: the page's base URL (the descriptor's paths are relative to it). */
  constructor(descriptor, site) {
    this.descriptor = descriptor;
    this.endpoint = new URL(descriptor.search, site);
    this.inFlight = null; // the AbortController of the newest query: typing supersedes, the server stops counting it
  }

  /** The `ready` event's fields: the pictures are counted on the server, their items come with the answers.
   *  A server that could not count them (its database is down) fails the load with its reason. */
  readyFields() {
    const d = this.descriptor;
    if (!Number.isInteger(d.count)) {
      throw new Error(`the search server cannot search now: ${d.unavailable || 'it did not say how many pictures it has'}; try again in a moment`);
    }
    return { items: [], count: d.count, partitioned: null, server: true, canEmbed: false,
      restored: { count: 0, firstId: d.count, dropped: 0, error: null, folders: [] } };
  }

  /** `{ query, k, scope }` → `{ results, items }`. The user's photos are not searched here (none can be added). */
  /** `refine`: the refinement's parameters, passed on as they are (the server reads the same names; a value it
   *  refuses comes back as its error). */
  async search({ query, k, scope, refine }) {
    if (scope === 'mine') return { results: [], items: [] };
    return this.#ask({ q: query, k: String(k), ...refineParams(refine) });
  }

  /** `{ id, k, refine? }` → `{ results, items }`, `items` starting with picture `id`'s own (for the "like" banner). */
  async similar({ id, k, refine }) {
    return this.#ask({ like: String(id), k: String(k), ...refineParams(refine) });
  }

  /** The items of gallery pictures `ids` (a shared board): each is "more like" it with k = 1, whose answer carries
   *  the picture's own item; an id the server does not have (404) is left out. Not one of the searches that
   *  supersede each other: a board opening never cancels the query being typed. */
  async items(ids) {
    const one = async (id) => {
      let res;
      try {
        res = await fetch(`${this.endpoint.href}?${new URLSearchParams({ like: String(id), k: '1' })}`, { cache: 'no-store' });
      } catch (e) {
        throw new Error(`the search server could not be reached (${e.message || e}); are you offline?`);
      }
      if (res.status === 404) return null;
      const body = await res.json().catch(() => null);
      if (!res.ok) throw new Error(`${body?.error || `the search server answered ${res.status}`}`);
      return body?.like_item ? itemOf(body.like_item) : null;
    };
    const items = [];
    for (let i = 0; i < ids.length; i += ITEMS_AT_ONCE) {
      items.push(...await Promise.all(ids.slice(i, i + ITEMS_AT_ONCE).map(one)));
    }
    return { items: items.filter(Boolean) };
  }

  /** "Why this picture?" needs the picture's vector, which stays on the server (the page hides the button). */
  explain() {
    throw new Error('“Why this picture?” is not available while the gallery is searched on the server');
  }

  /** `{ text, kIdea, kWhole, refine }` → `{ ideas: [{ text, first, last, results }], whole, sentences, total,
   *  withoutWords, items }`: a passage searched on the server (POSTed as JSON: a passage outgrows a URL). */
  async passage({ text, kIdea, kWhole, refine }) {
    const body = await this.#fetchJson(this.endpoint.href, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text, k: kWhole, k_idea: kIdea, ...refineParams(refine) }) });
    if (!Array.isArray(body.ideas)) throw new Error('the search server answered something other than a passage\'s suggestions');
    const all = [...body.results, ...body.ideas.flatMap((i) => i.results)];
    const collapsed = all.flatMap((h) => (Array.isArray(h.similar) ? h.similar.filter((x) => x && typeof x === 'object') : []));
    return {
      ideas: body.ideas.map((i) => ({ text: i.text, first: i.first, last: i.last, results: i.results.map(resultOf) })),
      whole: body.results.map(resultOf), sentences: body.sentences, total: body.total, withoutWords: body.without_words,
      items: [...all, ...collapsed].map(itemOf),
    };
  }

  async #ask(params) {
    const body = await this.#fetchJson(`${this.endpoint.href}?${new URLSearchParams(params)}`, {});
    const collapsed = body.results.flatMap((h) => (Array.isArray(h.similar) ? h.similar.filter((s) => s && typeof s === 'object') : []));
    const hits = [...(body.like_item ? [body.like_item] : []), ...body.results, ...collapsed];
    return { results: body.results.map(resultOf), items: hits.map(itemOf) };
  }

  /** One request to the search server (the newest supersedes an older one): its JSON answer with `results`,
   *  or an error carrying the server's reason. */
  async #fetchJson(url, init) {
    this.inFlight?.abort();
    const controller = new AbortController();
    this.inFlight = controller;
    let res;
    try {
      res = await fetch(url, { ...init, signal: controller.signal, cache: 'no-store' });
    } catch (e) {
      if (controller.signal.aborted) throw new Error('superseded by a newer search');
      throw new Error(`the search server could not be reached (${e.message || e}); are you offline?`);
    } finally {
      if (this.inFlight === controller) this.inFlight = null;
    }
    let body = null;
    try { body = await res.json(); } catch { /* said below */ }
    if (!res.ok) {
      const wait = res.status === 503 ? ' (try again in a moment)' : '';
      throw new Error(`${body?.error || `the search server answered ${res.status}`}${wait}`);
    }
    if (!body || !Array.isArray(body.results)) throw new Error('the search server answered something other than search results');
    return body;
  }
}
