// imgpick's page, its entry module: the loading and error states, the search box and what it searches, and the
// wiring of the other parts (page/: results, viewer, URL, keyboard, "My photos"). All model work happens in the
// search worker (worker/search-worker.js); this thread only renders.
import { Request, Event } from './protocol.js';
import { state, SCOPES } from './page/state.js';
import { ui } from './page/ui.js';
import { mb } from './page/format.js';
import { readUrl, urlFor, writeUrl } from './page/url.js';
import { startSearchWorker } from './page/search-client.js';
import { renderResults, captionOf } from './page/results.js';
import { openViewer, initViewer } from './page/viewer.js';
import { initKeyboard } from './page/keyboard.js';
import * as myPhotos from './page/my-photos.js';
import { initEmptyState, showGallerySummary } from './page/empty-state.js';
import { engineParams, describeFilters, hasFilters } from './page/refine.js';
import { initRefineBar, showRefinement, mark } from './page/refine-bar.js';
import { initPassage, readPassageLink, searchPassage, showMode } from './page/passage.js';
import { initBoard, onBoardReady } from './page/board.js';

const K = 30;              // results shown
const DEBOUNCE_MS = 90;    // typing pause before searching

document.documentElement.dataset.state = 'loading'; // tests and tools wait on this: loading | ready | error

// ---- loading / error states ------------------------------------------------------------------------------

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

function onReady({ items, count, partitioned, server, modelId, bytes, timings, restored, canEmbed }) {
  state.items = items;
  state.server = Boolean(server);
  state.count = count;
  state.partitioned = partitioned;
  state.ready = true;
  state.canEmbed = canEmbed;
  myPhotos.showRestored(restored);
  ui.loading.hidden = true;
  ui.refine.hidden = false;
  ui.modelInfo.textContent = `${count.toLocaleString('en')} pictures · model ${String(modelId || '').slice(0, 8)} · ${mb(bytes)} loaded in ${Math.round(timings.downloadMs + timings.initMs)} ms`;
  document.documentElement.dataset.state = 'ready';
  window.imgpickReady = { ...timings, at: performance.now(), bytes }; // read by scripts/bench/page.mjs
  updateResults();
}

const searchWorker = startSearchWorker({
  [Event.progress]: showProgress,
  [Event.ready]: (ready) => { onReady(ready); showGallerySummary(ready.summary, ready.count); onBoardReady(ready); },
  [Event.fatal]: ({ message }) => showError(message),
  [Event.myPhotosProgress]: myPhotos.showProgress,
  [Event.myPhotosDone]: myPhotos.showDone,
  [Event.myPhotosNote]: ({ message }) => myPhotos.note(message),
}, showError);

// ---- searching -------------------------------------------------------------------------------------------

let latest = 0; // only the newest request's answer is rendered
const resultActions = { open: openViewer, moreLike, mark };

/** Searches for the current `state` (the prompt, or "more like" a picture) and shows the answer. */
async function updateResults() {
  if (!state.ready) return;
  const ticket = ++latest;
  showRefinement();
  if (state.passage !== null) return searchPassage(searchWorker.ask, () => ticket === latest, resultActions);
  const { query, like } = state;
  if (like !== null && like >= state.count && !state.myPhotos.has(like)) { state.like = null; writeUrl(false); }
  ui.likeBanner.hidden = state.like === null;
  if (state.like !== null) ui.likeCaption.textContent = captionOf(state.like);
  if (state.like === null && !query.trim()) return showEmpty();
  const t0 = performance.now();
  // A partitioned gallery: its lists arrive one by one, and the running results are shown as they come.
  const searching = `Searching ${state.count.toLocaleString('en')} pictures…`;
  if (state.partitioned && (state.like !== null || state.scope !== 'mine')) ui.status.textContent = searching;
  const onProgress = (p) => {
    if (ticket !== latest) return;
    keepItems(p.items);
    renderResults(p.results, resultActions);
    ui.status.textContent = `${searching} ${p.lists.done} of ${p.lists.total} lists (${p.searched.toLocaleString('en')} scored)`;
  };
  const refine = engineParams(state.refine); // marks, filters, grouping, variety (page/refine.js)
  const answer = state.like !== null
    ? await searchWorker.ask(Request.similar, { id: state.like, k: K, refine }, onProgress)
    : await searchWorker.ask(Request.search, { query, k: K, scope: state.scope, refine }, onProgress);
  if (ticket !== latest) return;
  keepItems(answer.items);
  await myPhotos.describe([...(answer.results || []).map((r) => r.id), state.like]); // my photos' names, thumbnails
  if (ticket !== latest) return;
  if (state.like !== null) ui.likeCaption.textContent = captionOf(state.like);
  if (answer.error) {
    renderResults([], resultActions);
    ui.status.textContent = `Could not search: ${answer.error}`;
    return;
  }
  renderResults(answer.results, resultActions);
  const total = performance.now() - t0;
  const filters = describeFilters(state.refine);
  const grouped = answer.results.reduce((n, r) => n + (r.similar?.length || 0), 0);
  const refinedNote = (filters ? ` · ${filters}` : '') + (grouped ? ` · ${grouped} near-duplicate${grouped === 1 ? '' : 's'} grouped` : '')
    + (state.refineProblems?.length ? ` · ignored from the link: ${state.refineProblems.join('; ')}` : '');
  if (!answer.results.length && hasFilters(state.refine)) {
    // A flat gallery published before sizes were recorded has none: say so rather than "nothing fits".
    const unsized = (state.refine.orient || state.refine.min) && !state.partitioned && !state.server && state.items.length
      && !state.items.some((it) => it?.width);
    ui.status.textContent = unsized
      ? 'This gallery does not record its pictures\' sizes (it was published before they were), so shape and size filters match nothing: republish it with `trainer publish`, or loosen the filter.'
      : `No picture ${state.partitioned ? 'among the best 100 found' : 'in the gallery'} fits: ${filters}. Loosen a filter.`;
    ui.results.dataset.search = location.search;
    ui.results.dataset.query = state.like !== null ? `like:${state.like}` : query;
    return;
  }
  const what = state.like !== null ? `like “${captionOf(state.like)}”` : `for “${query}”`;
  const where = state.like !== null ? '' : { all: '', mine: ' in my photos', gallery: ' in the demo gallery' }[state.scope];
  ui.status.textContent = !answer.results.length && state.scope === 'mine' && !state.myPhotos.size
    ? 'You have not added any photos yet: use “Add photos…” above, or search everything.'
    : `${answer.results.length} pictures ${what}${where}, best first · ${answer.ms.toFixed(1)} ms ${state.server ? 'on the server' : 'in the model'}, ${total.toFixed(1)} ms in all`
      + (answer.lists ? ` · ${answer.searched.toLocaleString('en')} of ${state.count.toLocaleString('en')} scored (${answer.lists.total} of ${state.partitioned.lists} lists)` : '')
      + refinedNote;
  document.title = `${state.like !== null ? captionOf(state.like) : query} — imgpick`;
  ui.results.dataset.search = location.search; // the link this answer is for (tests wait on it)
  ui.results.dataset.query = state.like !== null ? `like:${state.like}` : query;
  ui.results.dataset.scope = state.like !== null ? 'all' : state.scope;
  ui.results.dataset.workerMs = String(answer.ms);
}

/** A partitioned gallery's items arrive with the answers that name them: kept by id for rendering. */
function keepItems(items) {
  for (const item of items || []) state.items[item.id] = item;
}

function showEmpty() {
  renderResults([], resultActions);
  document.title = 'imgpick — find the picture for your words';
  ui.status.textContent = '';
  ui.empty.hidden = false;
  ui.results.dataset.query = '';
}

let typingTimer = 0;
ui.input.addEventListener('input', () => {
  state.query = ui.input.value;
  state.like = null;
  state.refine = { ...state.refine, up: [], down: [] }; // marks judge one search's results
  if (state.passage !== null) { showMode(null); state.passageLink = ''; } // typing a prompt leaves passage mode
  writeUrl(false);
  clearTimeout(typingTimer);
  typingTimer = setTimeout(updateResults, DEBOUNCE_MS);
});
ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  clearTimeout(typingTimer);
  writeUrl(true);
  updateResults().then(() => ui.results.querySelector('button.thumb')?.focus());
});
window.addEventListener('popstate', async () => { readUrl(); await readPassageLink(); updateResults(); });

// The empty state: what the gallery holds and prompts that work on it (page/empty-state.js).
initEmptyState({
  onPick: (example) => { ui.input.value = example; state.query = example; state.like = null; state.refine = { ...state.refine, up: [], down: [] }; writeUrl(true); updateResults(); },
});

function moreLike(id) {
  state.like = id;
  state.refine = { ...state.refine, up: [], down: [] };
  writeUrl(true);
  if (ui.viewer.open) ui.viewer.close();
  updateResults();
  window.scrollTo({ top: 0 });
}
ui.likeClear.addEventListener('click', () => { state.like = null; writeUrl(true); updateResults(); ui.input.focus(); });

ui.scope.addEventListener('change', (e) => {
  if (!SCOPES.includes(e.target.value)) return;
  state.scope = e.target.value;
  writeUrl(true);
  updateResults();
});

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

initViewer(searchWorker, { moreLike });
initRefineBar({ onChange: () => { writeUrl(false); updateResults(); } });
initPassage({ onChange: updateResults, writeUrl });
initBoard(searchWorker); // the board of picks: pins, its panel, a shared board's link (page/board.js)
initKeyboard();
myPhotos.initMyPhotos(searchWorker, { onChange: updateResults });

// A small hook for tools (scripts/bench/page.mjs, tests/e2e): query the worker directly and time the round trip.
window.imgpick = {
  async search(query, k = K) {
    const t = performance.now();
    const answer = await searchWorker.ask(Request.search, { query, k });
    return { workerMs: answer.ms, roundTripMs: performance.now() - t, count: answer.results?.length ?? 0, error: answer.error,
      searched: answer.searched, fetched: answer.fetched, split: answer.split }; // partitioned: scored, bytes, ms
  },
  // Resource timing entries of the worker's downloads (the main thread has its own).
  workerResources: async () => (await searchWorker.ask(Request.resources)).entries,
  // My photos: counters (embedded in this page session, restored from IndexedDB) and the embedding-worker count.
  mineStats: async () => { const { type, seq, ...stats } = await searchWorker.ask(Request.myPhotosStats); return stats; },
  setEmbedWorkers: async (count) => (await searchWorker.ask(Request.embedWorkers, { count })).count,
  // The writer's workflow (scripts/bench/workflow.mjs): a refined search (`refine`: URL parameters, e.g.
  // 'up=3&collapse=1&vary=1') or "more like" (`like`), and a passage; each with the worker's time.
  async refined(query, refine, { k = K, like = null } = {}) {
    const t = performance.now();
    const answer = like !== null ? await searchWorker.ask(Request.similar, { id: like, k, refine })
      : await searchWorker.ask(Request.search, { query, k, scope: 'all', refine });
    return { workerMs: answer.ms, roundTripMs: performance.now() - t, error: answer.error, results: answer.results };
  },
  async passage(text, refine = 'collapse=1', { kIdea = 4, kWhole = 12 } = {}) {
    const t = performance.now();
    const answer = await searchWorker.ask(Request.passage, { text, kIdea, kWhole, scope: 'all', refine });
    return { workerMs: answer.ms, roundTripMs: performance.now() - t, error: answer.error, ideas: answer.ideas?.length, sentences: answer.sentences };
  },
};

// Offline revisits (see sw.js). Service workers need a secure context; localhost counts.
if ('serviceWorker' in navigator && window.isSecureContext) {
  navigator.serviceWorker.register(new URL('./sw.js', import.meta.url)).catch(() => {});
}

readUrl();
readPassageLink().then(() => { if (state.passage !== null) updateResults(); });
