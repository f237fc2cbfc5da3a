// imgpick's page: the search box, the results grid, the viewer dialog and the shareable URL.
// All model work happens in worker.js; this thread only renders. User text is only ever set with
// textContent / attributes, never parsed as HTML.

const K = 30;              // results shown
const DEBOUNCE_MS = 90;    // typing pause before searching
const EXAMPLES = ['a dog playing outside', 'a cat', 'fish in water', 'a rocket launch', 'a cup of coffee',
  'snow -people', 'a man riding a motorcycle', 'stars in the night sky'];

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role') node.setAttribute(k, v);
    else node[k] = v;
  }
  node.append(...children);
  return node;
};

const ui = {
  input: $('q'), form: $('search-form'), results: $('results'), status: $('status'), empty: $('empty'),
  examples: $('examples'), loading: $('loading'), loadBar: $('load-bar'), loadText: $('load-text'),
  error: $('error'), errorMessage: $('error-message'), retry: $('retry'), copy: $('copy-link'),
  likeBanner: $('like-banner'), likeCaption: $('like-caption'), likeClear: $('like-clear'),
  viewer: $('viewer'), viewerImg: $('viewer-img'), viewerCaption: $('viewer-caption'),
  viewerLicence: $('viewer-licence'), viewerSource: $('viewer-source'), viewerScore: $('viewer-score'),
  viewerLike: $('viewer-like'), viewerWhy: $('viewer-why'), why: $('why'), whyList: $('why-list'), whyPrompt: $('why-prompt'),
  modelInfo: $('model-info'),
  mine: $('mine'), mineCount: $('mine-count'), mineFiles: $('mine-files'), mineFolder: $('mine-folder'),
  mineClear: $('mine-clear'), mineProgress: $('mine-progress'), mineBar: $('mine-bar'),
  mineProgressText: $('mine-progress-text'), mineStop: $('mine-stop'), mineNote: $('mine-note'),
  mineErrors: $('mine-errors'), mineErrorsSummary: $('mine-errors-summary'), mineErrorsList: $('mine-errors-list'),
  mineHint: $('mine-hint'), scope: $('scope'), dropOverlay: $('drop-overlay'),
};

const state = {
  items: [],        // gallery.json items; index = gallery row id
  ready: false,
  query: '',        // text in the box
  like: null,       // item id for "more like this", or null
  shown: [],        // [{id, score}] currently rendered
  viewing: null,    // item id open in the viewer
  scope: 'all',     // which pictures a search ranks: all | mine | gallery (URL parameter `in`)
  mine: new Map(),  // the user's photos: id (after the gallery's ids) -> { name, path, thumbUrl }
  canEmbed: false,  // the model ships an image encoder
};
const SCOPES = ['all', 'mine', 'gallery'];
document.documentElement.dataset.state = 'loading'; // tests and tools wait on this: loading | ready | error

// ---- the worker ------------------------------------------------------------------------------------------

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
let seq = 0;
const pending = new Map(); // seq -> resolve
function ask(msg) {
  return new Promise((resolve) => { const s = ++seq; pending.set(s, resolve); worker.postMessage({ ...msg, seq: s }); });
}
worker.onmessage = ({ data }) => {
  switch (data.type) {
    case 'progress': return showProgress(data);
    case 'ready': return onReady(data);
    case 'fatal': return showError(data.message);
    case 'mine-progress': return onMineProgress(data);
    case 'mine-done': return onMineDone(data);
    case 'mine-note': return note(data.message);
    case 'answer': {
      const resolve = pending.get(data.seq);
      pending.delete(data.seq);
      resolve?.(data);
    }
  }
};
worker.onerror = (e) => showError(`the search worker failed to start (${e.message || 'script error'})`);
worker.postMessage({ type: 'load' });

// ---- loading / error states ------------------------------------------------------------------------------

const mb = (n) => n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1e3))} kB`;
function showProgress({ loaded, total }) {
  if (total) { ui.loadBar.max = total; ui.loadBar.value = loaded; }
  else ui.loadBar.removeAttribute('value'); // indeterminate while some sizes are unknown
  ui.loadText.textContent = total ? `Loading model and pictures… ${mb(loaded)} of ${mb(total)}`
    : `Loading model and pictures… ${mb(loaded)}`;
}

function showError(message) {
  document.documentElement.dataset.state = 'error';
  ui.loading.hidden = true;
  ui.error.hidden = false;
  ui.errorMessage.textContent = message;
  ui.status.textContent = '';
}
ui.retry.addEventListener('click', () => location.reload());

function onReady({ items, modelId, bytes, timings, mine, canEmbed }) {
  state.items = items;
  state.ready = true;
  state.canEmbed = canEmbed;
  addMineItems(mine.items);
  if (mine.error) note(mine.error);
  else if (mine.dropped) {
    note(`${mine.dropped} of your photos were indexed with another version of the model and have been removed from `
      + 'this device: add them again to search them.');
  }
  ui.mine.dataset.restored = String(mine.items.length);
  ui.mine.dataset.embedded = '0';
  showMine();
  ui.loading.hidden = true;
  ui.modelInfo.textContent = `${items.length} pictures · model ${String(modelId || '').slice(0, 8)} · ${mb(bytes)} loaded in ${Math.round(timings.downloadMs + timings.initMs)} ms`;
  document.documentElement.dataset.state = 'ready';
  window.imgpickReady = { ...timings, at: performance.now(), bytes }; // read by scripts/bench/page.mjs
  run();
}

// ---- URL <-> state ---------------------------------------------------------------------------------------

function readUrl() {
  const p = new URLSearchParams(location.search);
  state.query = p.get('q') || '';
  const like = p.get('like');
  state.like = like !== null && /^\d+$/.test(like) ? Number(like) : null;
  const scope = p.get('in');
  state.scope = SCOPES.includes(scope) ? scope : 'all';
  ui.input.value = state.query;
  for (const r of ui.scope.querySelectorAll('input')) r.checked = r.value === state.scope;
}

function urlFor() {
  const p = new URLSearchParams();
  if (state.query) p.set('q', state.query);
  if (state.like !== null) p.set('like', String(state.like));
  if (state.scope !== 'all') p.set('in', state.scope);
  const qs = p.toString();
  return `${location.pathname}${qs ? `?${qs}` : ''}`;
}

function writeUrl(push) {
  const url = urlFor();
  if (url === `${location.pathname}${location.search}`) return;
  history[push ? 'pushState' : 'replaceState'](null, '', url);
}

window.addEventListener('popstate', () => { readUrl(); run(); });

// ---- searching -------------------------------------------------------------------------------------------

let latest = 0; // only the newest request's answer is rendered
async function run() {
  if (!state.ready) return;
  const mine = ++latest;
  const { query, like } = state;
  if (like !== null && !state.items[like] && !state.mine.has(like)) { state.like = null; writeUrl(false); }
  ui.likeBanner.hidden = state.like === null;
  if (state.like !== null) ui.likeCaption.textContent = captionOf(state.like);
  if (state.like === null && !query.trim()) return showEmpty();
  const t0 = performance.now();
  const answer = state.like !== null
    ? await ask({ type: 'similar', id: state.like, k: K })
    : await ask({ type: 'search', query, k: K, scope: state.scope });
  if (mine !== latest) return;
  if (answer.error) {
    render([]);
    ui.status.textContent = `Could not search: ${answer.error}`;
    return;
  }
  render(answer.results);
  const total = performance.now() - t0;
  const what = state.like !== null ? `like “${captionOf(state.like)}”` : `for “${query}”`;
  const where = state.like !== null ? '' : { all: '', mine: ' in my photos', gallery: ' in the demo gallery' }[state.scope];
  ui.status.textContent = !answer.results.length && state.scope === 'mine' && !state.mine.size
    ? 'You have not added any photos yet: use “Add photos…” above, or search everything.'
    : `${answer.results.length} pictures ${what}${where}, best first · ${answer.ms.toFixed(1)} ms in the model, ${total.toFixed(1)} ms in all`;
  document.title = `${state.like !== null ? captionOf(state.like) : query} — imgpick`;
  ui.results.dataset.query = state.like !== null ? `like:${state.like}` : query;
  ui.results.dataset.scope = state.like !== null ? 'all' : state.scope;
  ui.results.dataset.workerMs = String(answer.ms);
}

function showEmpty() {
  render([]);
  document.title = 'imgpick — find the picture for your words';
  ui.status.textContent = '';
  ui.empty.hidden = false;
  ui.results.dataset.query = '';
}

let timer = 0;
ui.input.addEventListener('input', () => {
  state.query = ui.input.value;
  state.like = null;
  writeUrl(false);
  clearTimeout(timer);
  timer = setTimeout(run, DEBOUNCE_MS);
});
ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  clearTimeout(timer);
  writeUrl(true);
  run().then(() => ui.results.querySelector('button.thumb')?.focus());
});

for (const example of EXAMPLES) {
  ui.examples.append(el('li', {}, el('button', {
    type: 'button', class: 'example', text: example,
    onclick: () => { ui.input.value = example; state.query = example; state.like = null; writeUrl(true); run(); },
  })));
}

function moreLike(id) {
  state.like = id;
  writeUrl(true);
  if (ui.viewer.open) ui.viewer.close();
  run();
  window.scrollTo({ top: 0 });
}
ui.likeClear.addEventListener('click', () => { state.like = null; writeUrl(true); run(); ui.input.focus(); });

ui.copy.addEventListener('click', async () => {
  const link = new URL(urlFor(), location.href).href;
  try {
    await navigator.clipboard.writeText(link);
    flash('Link copied');
  } catch {
    // No clipboard permission (e.g. an insecure origin): show the link so it can be copied by hand.
    window.prompt('Copy this link:', link);
  }
});
function flash(text) {
  const old = ui.copy.textContent;
  ui.copy.textContent = text;
  setTimeout(() => { ui.copy.textContent = old; }, 1500);
}

// ---- rendering -------------------------------------------------------------------------------------------

// A gallery item (gallery.json) or one of the user's photos, in the same shape.
function itemOf(id) {
  const m = state.mine.get(id);
  if (m) return { file: m.path, caption: m.name, thumbUrl: m.thumbUrl, licence: 'Your photo', source: 'only on this device', mine: true };
  return state.items[id];
}
const captionOf = (id) => itemOf(id)?.caption || itemOf(id)?.file || `picture ${id}`;
const thumbUrl = (item) => item.mine ? (item.thumbUrl || '') : `gallery/${item.thumb}`;

function render(results) {
  state.shown = results;
  ui.empty.hidden = true;
  const top = results.length ? results[0].score : 1;
  const frag = document.createDocumentFragment();
  results.forEach(({ id, score }, rank) => {
    const item = itemOf(id) || { file: `#${id}`, thumb: '', caption: '' };
    const caption = captionOf(id);
    const bar = el('span', { class: 'bar-fill' });
    // Bars are relative to the best match; CSSOM styles are allowed by the CSP (no inline style attributes).
    bar.style.width = `${Math.max(2, Math.min(100, (score / (top || 1)) * 100)).toFixed(1)}%`;
    const li = el('li', { class: item.mine ? 'result mine-photo' : 'result', 'data-mine': item.mine ? '1' : '0', 'data-id': String(id), 'data-file': item.file, 'data-score': String(score),
      'data-rank': String(rank + 1) },
      el('button', { type: 'button', class: 'thumb', 'aria-label': `Enlarge: ${caption}`, onclick: () => openViewer(id, score) },
        el('img', { src: thumbUrl(item), alt: caption, loading: rank < 12 ? 'eager' : 'lazy', decoding: 'async' })),
      el('div', { class: 'bar', title: `cosine similarity ${score.toFixed(3)}` }, bar),
      el('p', { class: 'caption', text: caption }),
      el('p', { class: 'meta' }, licenceNode(item)),
      el('button', { type: 'button', class: 'ghost small', text: 'More like this', onclick: () => moreLike(id) }),
    );
    frag.append(li);
  });
  ui.results.replaceChildren(frag);
}

function licenceNode(item) {
  const label = [item.licence || 'licence unknown', item.source].filter(Boolean).join(' · ');
  if (item.url && /^https?:\/\//.test(item.url)) {
    return el('a', { href: item.url, text: label, rel: 'noopener noreferrer', target: '_blank' });
  }
  return el('span', { text: label });
}

// ---- the viewer ------------------------------------------------------------------------------------------

function openViewer(id, score) {
  const item = itemOf(id);
  if (!item) return;
  state.viewing = id;
  ui.viewerImg.src = thumbUrl(item);
  ui.viewerImg.alt = captionOf(id);
  ui.viewerCaption.textContent = captionOf(id);
  ui.viewerLicence.textContent = item.licence || 'licence unknown';
  const source = item.source || item.file;
  ui.viewerSource.replaceChildren(item.url && /^https?:\/\//.test(item.url)
    ? el('a', { href: item.url, text: source, rel: 'noopener noreferrer', target: '_blank' }) : el('span', { text: source }));
  ui.viewerScore.textContent = `match ${score.toFixed(3)} (cosine similarity)`;
  ui.viewerWhy.hidden = state.like !== null || !state.query.trim();
  ui.why.hidden = true;
  ui.viewer.showModal();
}
ui.viewerLike.addEventListener('click', () => state.viewing !== null && moreLike(state.viewing));
ui.viewerWhy.addEventListener('click', async () => {
  const answer = await ask({ type: 'explain', query: state.query, id: state.viewing });
  ui.why.hidden = false;
  ui.whyPrompt.textContent = state.query;
  if (answer.error) { ui.whyList.replaceChildren(el('li', { text: `Could not explain: ${answer.error}` })); return; }
  const words = [...answer.words].sort((a, b) => b.delta - a.delta);
  const most = Math.max(1e-6, ...words.map((w) => Math.abs(w.delta)));
  ui.whyList.replaceChildren(...words.map(({ token, known, delta }) => {
    const fill = el('span', { class: delta >= 0 ? 'bar-fill' : 'bar-fill negative' });
    fill.style.width = `${((Math.abs(delta) / most) * 100).toFixed(1)}%`;
    return el('li', {}, el('span', { class: 'word', text: known ? token : `${token} (unknown word)` }),
      el('span', { class: 'bar' }, fill),
      el('span', { class: 'drop', text: `${delta >= 0 ? '+' : '−'}${Math.abs(delta).toFixed(3)}` }));
  }));
});

// ---- keyboard --------------------------------------------------------------------------------------------

document.addEventListener('keydown', (e) => {
  if (e.key === '/' && document.activeElement !== ui.input && !ui.viewer.open) {
    e.preventDefault();
    ui.input.focus();
    ui.input.select();
  }
});
ui.input.addEventListener('keydown', (e) => {
  if (e.key === 'ArrowDown') { e.preventDefault(); ui.results.querySelector('button.thumb')?.focus(); }
});
ui.results.addEventListener('keydown', (e) => {
  const thumbs = [...ui.results.querySelectorAll('button.thumb')];
  const at = thumbs.indexOf(document.activeElement);
  if (at < 0) return;
  // Columns in the current layout: count the thumbs on the first row.
  const top0 = thumbs[0].getBoundingClientRect().top;
  const cols = Math.max(1, thumbs.filter((t) => Math.abs(t.getBoundingClientRect().top - top0) < 4).length);
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols }[e.key];
  if (!step) return;
  e.preventDefault();
  const next = at + step;
  if (next < 0) ui.input.focus();
  else thumbs[Math.min(next, thumbs.length - 1)].focus();
});

// ---- my photos -------------------------------------------------------------------------------------------
// The files are handed to the worker (File objects: no copy, nothing uploaded); it embeds them in embedding
// workers, keeps the vectors and thumbnails in IndexedDB and reports progress here.

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function showMine() {
  ui.mine.hidden = !state.canEmbed && !state.mine.size;
  for (const input of [ui.mineFiles, ui.mineFolder]) input.disabled = !state.canEmbed;
  if (!state.canEmbed) ui.mineHint.textContent = 'This model has no image encoder, so it cannot index your photos.';
  ui.mineCount.textContent = state.mine.size ? plural(state.mine.size, 'photo') + ' on this device' : 'none yet';
  ui.mineClear.hidden = !state.mine.size;
  ui.mine.dataset.count = String(state.mine.size);
}

function addMineItems(items) {
  for (const { id, name, path, thumb } of items) {
    state.mine.set(id, { name, path: path || name, thumbUrl: thumb ? URL.createObjectURL(thumb) : '' });
  }
}

function note(message) {
  ui.mineNote.hidden = !message;
  ui.mineNote.textContent = message || '';
}

function addErrors(errors) {
  if (!errors.length) return;
  ui.mineErrorsList.append(...errors.map(({ file, message }) =>
    el('li', { 'data-file': file }, el('strong', { text: file }), document.createTextNode(`: ${message}`))));
  const n = ui.mineErrorsList.children.length;
  ui.mineErrorsSummary.textContent = `${plural(n, 'file')} skipped (not indexed): show why`;
  ui.mineErrors.hidden = false;
}

const seconds = (s) => s < 1.5 ? 'about 1 s' : s < 90 ? `about ${Math.round(s)} s` : `about ${Math.round(s / 60)} min`;

function onMineProgress(p) {
  ui.mine.dataset.state = 'adding';
  ui.mineProgress.hidden = false;
  if (p.phase === 'download') {
    if (p.total) { ui.mineBar.max = p.total; ui.mineBar.value = p.loaded; } else ui.mineBar.removeAttribute('value');
    ui.mineProgressText.textContent = `Downloading the image model (once)… ${mb(p.loaded)}${p.total ? ` of ${mb(p.total)}` : ''}`;
    return;
  }
  addMineItems(p.items);
  addErrors(p.errors);
  ui.mineBar.max = Math.max(1, p.total);
  ui.mineBar.value = p.done;
  const rate = p.done && p.elapsedMs > 0 ? p.done / (p.elapsedMs / 1000) : 0;
  ui.mineProgressText.textContent = `Indexing ${p.done} of ${p.total}`
    + (rate ? ` · ${rate.toFixed(1)} images/s · ${seconds((p.total - p.done) / rate)} left` : ' · starting…');
  ui.mine.dataset.embedded = String(p.embedded);
  ui.mine.dataset.rate = rate.toFixed(2);
  showMine();
}

function onMineDone(d) {
  ui.mineProgress.hidden = true;
  ui.mine.dataset.state = 'idle';
  ui.mine.dataset.embedded = String(d.embedded);
  const rate = d.added && d.elapsedMs > 0 ? d.added / (d.elapsedMs / 1000) : 0;
  const parts = [`${plural(d.added, 'photo')} indexed${rate ? ` (${rate.toFixed(1)} images/s)` : ''}`];
  if (d.failed) parts.push(`${plural(d.failed, 'file')} skipped`);
  if (d.skipped) parts.push(`${plural(d.skipped, 'file')} already added`);
  note(`${parts.join(', ')}. They stay on this device.`);
  ui.mine.dataset.last = JSON.stringify({ added: d.added, failed: d.failed, skipped: d.skipped, rate, perPhoto: d.perPhoto });
  showMine();
  if (state.query.trim() || state.like !== null) run();
}

function addFiles(list) {
  if (!state.ready || !state.canEmbed) return;
  const files = list.filter(({ file }) => !file.name.startsWith('.')); // .DS_Store and friends
  if (!files.length) return;
  ui.mine.dataset.state = 'adding';
  ui.mineProgress.hidden = false;
  ui.mineProgressText.textContent = `Preparing ${plural(files.length, 'file')}…`;
  worker.postMessage({ type: 'add', files });
}

ui.mineFiles.addEventListener('change', () => {
  addFiles([...ui.mineFiles.files].map((file) => ({ file, path: file.name })));
  ui.mineFiles.value = '';
});
ui.mineFolder.addEventListener('change', () => {
  addFiles([...ui.mineFolder.files].map((file) => ({ file, path: file.webkitRelativePath || file.name })));
  ui.mineFolder.value = '';
});
ui.mineStop.addEventListener('click', () => worker.postMessage({ type: 'cancel' }));

let clearArmed = 0;
ui.mineClear.addEventListener('click', async () => {
  // Two clicks: the index of a big folder takes minutes to rebuild.
  if (!clearArmed) {
    ui.mineClear.textContent = `Really remove ${plural(state.mine.size, 'photo')}?`;
    clearArmed = setTimeout(() => { clearArmed = 0; ui.mineClear.textContent = 'Clear my photos'; }, 4000);
    return;
  }
  clearTimeout(clearArmed);
  clearArmed = 0;
  ui.mineClear.textContent = 'Clear my photos';
  const answer = await ask({ type: 'clear' });
  for (const { thumbUrl: url } of state.mine.values()) if (url) URL.revokeObjectURL(url);
  state.mine.clear();
  ui.mineErrorsList.replaceChildren();
  ui.mineErrors.hidden = true;
  ui.mineProgress.hidden = true;
  ui.mine.dataset.state = 'idle';
  ui.mine.dataset.embedded = '0';
  note(answer.error ? `Could not clear everything: ${answer.error}` : 'Your photos were removed from this page and this device.');
  showMine();
  run();
});

ui.scope.addEventListener('change', (e) => {
  if (!SCOPES.includes(e.target.value)) return;
  state.scope = e.target.value;
  writeUrl(true);
  run();
});

// Drag and drop: files and whole folders (read recursively through the entries API).
async function entryFiles(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject)).catch(() => null);
    if (file) out.push({ file, path: entry.fullPath.replace(/^\//, '') });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject)).catch(() => []);
      if (!batch.length) break;
      for (const child of batch) await entryFiles(child, out);
    }
  }
}
let dragDepth = 0;
const dragsFiles = (e) => [...(e.dataTransfer?.types || [])].includes('Files');
document.addEventListener('dragenter', (e) => {
  if (!dragsFiles(e) || !state.canEmbed) return;
  dragDepth++;
  ui.dropOverlay.hidden = false;
});
document.addEventListener('dragleave', () => { if (--dragDepth <= 0) { dragDepth = 0; ui.dropOverlay.hidden = true; } });
document.addEventListener('dragover', (e) => { if (dragsFiles(e) && state.canEmbed) e.preventDefault(); });
document.addEventListener('drop', async (e) => {
  if (!dragsFiles(e)) return;
  e.preventDefault();
  dragDepth = 0;
  ui.dropOverlay.hidden = true;
  // Entries must be taken synchronously, before the first await.
  const items = [...e.dataTransfer.items].filter((i) => i.kind === 'file');
  const entries = items.map((i) => i.webkitGetAsEntry?.());
  const plain = items.map((i) => i.getAsFile());
  const out = [];
  for (let i = 0; i < items.length; i++) {
    if (entries[i]) await entryFiles(entries[i], out);
    else if (plain[i]) out.push({ file: plain[i], path: plain[i].name });
  }
  addFiles(out);
});

// A small hook for tools (scripts/bench/page.mjs): query the worker directly and time the round trip.
window.imgpick = {
  async search(query, k = K) {
    const t = performance.now();
    const answer = await ask({ type: 'search', query, k });
    return { workerMs: answer.ms, roundTripMs: performance.now() - t, count: answer.results?.length ?? 0, error: answer.error };
  },
  // Resource timing entries of the worker's downloads (the main thread has its own).
  workerResources: async () => (await ask({ type: 'resources' })).entries,
  // My photos: counters (embedded in this page session, restored from IndexedDB) and the embedding-worker count.
  mineStats: async () => { const { type, seq, ...stats } = await ask({ type: 'mine-stats' }); return stats; },
  setEmbedWorkers: async (count) => (await ask({ type: 'embed-workers', count })).count,
};

// Offline revisits (see sw.js). Service workers need a secure context; localhost counts.
if ('serviceWorker' in navigator && window.isSecureContext) {
  navigator.serviceWorker.register(new URL('./sw.js', import.meta.url)).catch(() => {});
}

readUrl();
