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
};

const state = {
  items: [],        // gallery.json items; index = gallery row id
  ready: false,
  query: '',        // text in the box
  like: null,       // item id for "more like this", or null
  shown: [],        // [{id, score}] currently rendered
  viewing: null,    // item id open in the viewer
};
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

function onReady({ items, modelId, bytes, timings }) {
  state.items = items;
  state.ready = true;
  ui.loading.hidden = true;
  ui.modelInfo.textContent = `${items.length} pictures · model ${String(modelId || '').slice(0, 8)} · ${mb(bytes)} loaded in ${Math.round(timings.downloadMs + timings.initMs)} ms`;
  document.documentElement.dataset.state = 'ready';
  window.imgpickReady = { ...timings, at: performance.now(), bytes }; // read by scripts/bench-page.mjs
  run();
}

// ---- URL <-> state ---------------------------------------------------------------------------------------

function readUrl() {
  const p = new URLSearchParams(location.search);
  state.query = p.get('q') || '';
  const like = p.get('like');
  state.like = like !== null && /^\d+$/.test(like) ? Number(like) : null;
  ui.input.value = state.query;
}

function urlFor() {
  const p = new URLSearchParams();
  if (state.query) p.set('q', state.query);
  if (state.like !== null) p.set('like', String(state.like));
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
  if (like !== null && !state.items[like]) { state.like = null; writeUrl(false); }
  ui.likeBanner.hidden = state.like === null;
  if (state.like !== null) ui.likeCaption.textContent = captionOf(state.like);
  if (state.like === null && !query.trim()) return showEmpty();
  const t0 = performance.now();
  const answer = state.like !== null
    ? await ask({ type: 'similar', id: state.like, k: K })
    : await ask({ type: 'search', query, k: K });
  if (mine !== latest) return;
  if (answer.error) {
    render([]);
    ui.status.textContent = `Could not search: ${answer.error}`;
    return;
  }
  render(answer.results);
  const total = performance.now() - t0;
  const what = state.like !== null ? `like “${captionOf(state.like)}”` : `for “${query}”`;
  ui.status.textContent = `${answer.results.length} pictures ${what}, best first · ${answer.ms.toFixed(1)} ms in the model, ${total.toFixed(1)} ms in all`;
  document.title = `${state.like !== null ? captionOf(state.like) : query} — imgpick`;
  ui.results.dataset.query = state.like !== null ? `like:${state.like}` : query;
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

const captionOf = (id) => state.items[id]?.caption || state.items[id]?.file || `picture ${id}`;
const thumbUrl = (item) => `gallery/${item.thumb}`;

function render(results) {
  state.shown = results;
  ui.empty.hidden = true;
  const top = results.length ? results[0].score : 1;
  const frag = document.createDocumentFragment();
  results.forEach(({ id, score }, rank) => {
    const item = state.items[id] || { file: `#${id}`, thumb: '', caption: '' };
    const caption = captionOf(id);
    const bar = el('span', { class: 'bar-fill' });
    // Bars are relative to the best match; CSSOM styles are allowed by the CSP (no inline style attributes).
    bar.style.width = `${Math.max(2, Math.min(100, (score / (top || 1)) * 100)).toFixed(1)}%`;
    const li = el('li', { class: 'result', 'data-id': String(id), 'data-file': item.file, 'data-score': String(score),
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
  const item = state.items[id];
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

// A small hook for tools (scripts/bench-page.mjs): query the worker directly and time the round trip.
window.imgpick = {
  async search(query, k = K) {
    const t = performance.now();
    const answer = await ask({ type: 'search', query, k });
    return { workerMs: answer.ms, roundTripMs: performance.now() - t, count: answer.results?.length ?? 0, error: answer.error };
  },
  // Resource timing entries of the worker's downloads (the main thread has its own).
  workerResources: async () => (await ask({ type: 'resources' })).entries,
};

// Offline revisits (see sw.js). Service workers need a secure context; localhost counts.
if ('serviceWorker' in navigator && window.isSecureContext) {
  navigator.serviceWorker.register(new URL('./sw.js', import.meta.url)).catch(() => {});
}

readUrl();
