// The board of picks (issue #20), one idea: a writer's collection of pictures, kept on this device. Pin a result
// (its 📌 button, or the viewer's) and it joins the board, a panel beside the results listing each pin's
// thumbnail, caption and credit; pins are reordered by drag and drop or by their ↑ / ↓ buttons (Alt+↑ / Alt+↓
// from anywhere in a pin), removed one by one, or all after a confirmation. The board is shared as a link
// (`?board=3,17,5`, board-link.js; opening one shows it read-only with "Add to my board") and its credits are
// exported as Markdown or CSV (board-export.js). IndexedDB keeps it (board-store.js); when that fails the
// panel says so and the board lives on in this page. Each pin keeps its picture's caption, thumbnail and credit,
// so a republished gallery cannot lose it: a pin whose picture is no longer where it was is marked instead.
import { Request } from '../protocol.js';
import { state } from './state.js';
import { el } from './ui.js';
import { pictureOf, thumbUrl, resultButtons } from './results.js';
import { creditLine } from './credit.js';
import { describe as describePhotos } from './my-photos.js';
import { writeUrl } from './url.js';
import { BoardStore } from './board-store.js';
import { boardCsv, boardMarkdown, copy, download } from './board-export.js';
import { boardParam, shareable, BOARD_PARAM } from './board-link.js';

const PIN_DRAG_TYPE = 'application/x-imgpick-pin'; // not 'Files': the photo drop (file-drop.js) ignores it

const store = new BoardStore();
const sync = 'BroadcastChannel' in globalThis ? new BroadcastChannel('imgpick-board') : null; // other tabs
let pins = [];
let galleryKey = '';     // `${model id}:${count}`: which gallery the pins' ids refer to
let readOk = false;      // the stored board has been read: only then may a save replace it
let searchWorker = null;
let shared = null;       // the board of a `?board=` link: { ids, error, items: Map id → item, looking }
let dragKey = null;

const $ = (id) => document.getElementById(id);
const panel = $('board');
const toggleButton = $('board-toggle');
const parts = {};        // the panel's elements, made once (initBoard)
const TOGGLE_TITLE = toggleButton.title;

// ---- pins -------------------------------------------------------------------------------------------------

/** The key a picture's pin has: the gallery file or the photo's path (ids can change when a gallery is
 *  republished; files do not). */
const keyOf = (picture) => `${picture.mine ? 'mine' : 'gallery'}:${picture.file}`;
const pinNamed = (key) => pins.find((p) => p.key === key);
const pinFor = (id) => { const picture = pictureOf(id); return picture ? pinNamed(keyOf(picture)) : undefined; };
const captionOfPin = (pin) => pin.caption || pin.path || pin.file || `picture ${pin.id}`;

/** A pin of picture `id` as it is now: what shows and credits it without the gallery. */
function pinOf(id) {
  const p = pictureOf(id);
  if (!p) return null;
  if (p.mine) return { key: keyOf(p), id, mine: true, path: p.file, caption: p.caption || '' };
  return { key: keyOf(p), id, mine: false, file: p.file, thumb: p.thumb || '', caption: p.caption || '',
    source: p.source || '', licence: p.licence || '', url: p.url || '', gallery: galleryKey, changed: false };
}

/** Pins picture `id`, or unpins it when it is on the board (a marked pin is pinned afresh). */
export function togglePin(id) {
  const fresh = pinOf(id);
  if (!fresh) return;
  const at = pins.findIndex((p) => p.key === fresh.key);
  if (at >= 0 && !pins[at].changed) {
    pins.splice(at, 1);
    announce(`Removed “${captionOfPin(fresh)}” from your board`);
  } else {
    if (at >= 0) pins[at] = fresh; else pins.push(fresh);
    announce(`Pinned “${captionOfPin(fresh)}”: ${pins.length} on your board`);
  }
  changed();
}

function move(key, to) {
  const from = pins.findIndex((p) => p.key === key);
  if (from < 0 || to < 0 || to >= pins.length || to === from) return;
  const [pin] = pins.splice(from, 1);
  pins.splice(to, 0, pin);
  announce(`Moved “${captionOfPin(pin)}” to position ${to + 1} of ${pins.length}`);
  changed();
}

function remove(key) {
  const at = pins.findIndex((p) => p.key === key);
  if (at < 0) return;
  const [pin] = pins.splice(at, 1);
  announce(`Removed “${captionOfPin(pin)}” from your board`);
  changed();
  // Focus stays in the list: on the pin that took this one's place, else the previous one, else the panel.
  const next = parts.list.children[Math.min(at, pins.length - 1)];
  (next?.querySelector('button[data-action="remove"]') || parts.title).focus();
}

function changed() {
  render();
  persist();
}

// ---- keeping it (board-store.js) ---------------------------------------------------------------------------

let saving = Promise.resolve();
const KEPT_IN_PAGE = 'Your board is kept in this page until you close it: export its credits or copy its link to keep it.';

/** Saves the board as it is now, after any save still running. A board never read from the store (reading
 *  failed) is read first and merged, so a store that comes back is never overwritten by a partial board. */
function persist() {
  saving = saving.then(async () => {
    if (!readOk) {
      try {
        merge((await store.load()).pins);
        readOk = true;
        render();
      } catch (e) {
        warn(`${e.message}. ${KEPT_IN_PAGE}`);
        return;
      }
    }
    try {
      await store.save(pins);
      warn('');
      sync?.postMessage('saved');
    } catch (e) {
      warn(`${e.message}. ${KEPT_IN_PAGE}`);
    }
  });
  return saving;
}

/** Stored pins first (in their order), then this page's pins that the store did not have. */
function merge(stored) {
  const known = new Set(stored.map((p) => p.key));
  pins = [...stored, ...pins.filter((p) => !known.has(p.key))];
}

async function loadStored() {
  try {
    const { pins: stored, dropped } = await store.load();
    merge(stored);
    readOk = true;
    warn(dropped ? `${dropped} saved ${dropped === 1 ? 'pin' : 'pins'} could not be read and ${dropped === 1 ? 'was' : 'were'} left out.` : '');
  } catch (e) {
    warn(`${e.message}. Pins you add now last until you close this page.`);
  }
  render();
}

// ---- a republished gallery ----------------------------------------------------------------------------------

/** The gallery items of `ids` (a Map): a flat gallery's page has them all; a partitioned or server gallery's come
 *  from the search worker, and are kept in `state.items` as the results' are. */
async function itemsOf(ids) {
  if (!state.partitioned && !state.server) return new Map(ids.filter((id) => state.items[id]).map((id) => [id, state.items[id]]));
  const answer = await searchWorker.ask(Request.items, { ids });
  if (answer.error) throw new Error(answer.error);
  for (const item of answer.items) state.items[item.id] = item;
  return new Map(answer.items.map((item) => [item.id, item]));
}

/** Checks the pins made on another gallery (or, in a flat gallery, all: that is free): a pin whose id still names
 *  its file is current; else, in a flat gallery, the file is looked for under another id; else it is marked. */
async function checkGallery() {
  const flat = !state.partitioned && !state.server;
  const toCheck = pins.filter((p) => !p.mine && (flat || p.gallery !== galleryKey));
  if (!toCheck.length) return;
  let found;
  try { found = await itemsOf(toCheck.map((p) => p.id)); } catch { return; } // unchecked: nothing is marked
  let byFile = null;
  let edits = 0;
  for (const pin of toCheck) {
    let item = found.get(pin.id);
    if (item?.file !== pin.file && flat) {
      byFile ??= new Map(state.items.filter(Boolean).map((it) => [it.file, it]));
      item = byFile.get(pin.file);
    }
    const now = item?.file === pin.file ? { id: item.id, gallery: galleryKey, changed: false } : { changed: true };
    if (Object.entries(now).some(([k, v]) => pin[k] !== v)) { Object.assign(pin, now); edits++; }
  }
  if (edits) changed();
}

// ---- a shared board (?board=) ------------------------------------------------------------------------------

async function showShared() {
  shared = state.sharedBoard ? { ...state.sharedBoard, items: new Map(), looking: true } : null;
  renderShared();
  if (!shared) return;
  openPanel(true);
  const asked = shared;
  try {
    asked.items = await itemsOf(asked.ids.filter((id) => id < state.count));
  } catch (e) {
    asked.error = `the shared pictures could not be looked up: ${e.message}`;
  }
  asked.looking = false;
  if (shared === asked) renderShared();
}

function closeShared() {
  state.sharedBoard = null;
  writeUrl(true);
  shared = null;
  renderShared();
  toggleButton.focus();
}

// ---- rendering ---------------------------------------------------------------------------------------------

function thumbOf(pin) {
  let src = '';
  if (pin.mine) {
    const photo = state.myPhotos.get(pin.id);
    src = photo && photo.path === pin.path ? photo.thumbUrl : '';
  } else if (pin.thumb) {
    src = thumbUrl(pin);
  }
  const img = el('img', { class: 'pin-thumb', alt: '', src, draggable: false, decoding: 'async' });
  if (!src) img.classList.add('no-thumb');
  img.onerror = () => img.classList.add('no-thumb');
  return img;
}

const button = (text, label, action, props = {}) =>
  el('button', { type: 'button', class: 'ghost small', text, 'aria-label': label, 'data-action': action, ...props });

function pinRow(pin, at) {
  const caption = captionOfPin(pin);
  const note = pin.mine ? 'Your own photo: it stays on this device and is not in shared links.'
    : pin.changed ? 'The gallery has changed since you pinned this: the picture is no longer where it was, so it is left out of links. Its credit is kept.' : '';
  return el('li', { class: pin.changed ? 'pin changed' : 'pin', draggable: true, 'data-key': pin.key, 'data-id': String(pin.id) },
    thumbOf(pin),
    el('div', { class: 'pin-body' },
      el('p', { class: 'caption', text: caption }),
      pin.mine ? '' : el('p', { class: 'credit', text: creditLine(pin) }),
      note ? el('p', { class: 'pin-note', text: note }) : ''),
    el('div', { class: 'pin-actions' },
      button('↑', `Move “${caption}” up`, 'up', { disabled: at === 0, onclick: () => moveAndFocus(pin.key, at - 1, 'up') }),
      button('↓', `Move “${caption}” down`, 'down', { disabled: at === pins.length - 1, onclick: () => moveAndFocus(pin.key, at + 1, 'down') }),
      button('✕', `Remove “${caption}” from the board`, 'remove', { onclick: () => remove(pin.key) })));
}

/** Moves a pin with its button and keeps the focus on that pin (its other button once this one is disabled). */
function moveAndFocus(key, to, action) {
  move(key, to);
  const row = parts.list.querySelector(`li[data-key="${CSS.escape(key)}"]`);
  const same = row?.querySelector(`button[data-action="${action}"]`);
  (same && !same.disabled ? same : row?.querySelector('button:not(:disabled)'))?.focus();
}

function render() {
  const n = pins.length;
  parts.list.replaceChildren(...pins.map(pinRow));
  parts.empty.hidden = n > 0;
  parts.count.textContent = n ? `${n} ${n === 1 ? 'picture' : 'pictures'}` : '';
  toggleButton.textContent = n ? `Board (${n})` : 'Board';
  panel.dataset.count = String(n);
  const linkable = pins.filter(shareable).length;
  for (const b of parts.exports) b.disabled = !n;
  parts.clear.disabled = !n;
  parts.share.disabled = !linkable;
  const mine = pins.filter((p) => p.mine).length;
  const marked = pins.filter((p) => !p.mine && p.changed).length;
  parts.shareNote.textContent = [
    mine && `Your own photos (${mine}) are not in the link: they never leave this device.`,
    marked && `${marked} marked ${marked === 1 ? 'pin is' : 'pins are'} not in the link.`,
  ].filter(Boolean).join(' ');
  parts.shareNote.hidden = !parts.shareNote.textContent;
  if (!n) cancelClear();
  syncPinButtons();
  renderShared();
}

function renderShared() {
  parts.shared.hidden = !shared;
  if (!shared) return;
  const { ids, items, looking, error } = shared;
  parts.sharedTitle.textContent = `A shared board: ${ids.length} ${ids.length === 1 ? 'picture' : 'pictures'}`;
  parts.sharedNote.textContent = looking ? 'Looking the pictures up…' : error || '';
  parts.sharedNote.hidden = !parts.sharedNote.textContent;
  parts.sharedList.replaceChildren(...(looking ? [] : ids).map((id) => {
    const item = items.get(id);
    if (!item) return el('li', { class: 'pin missing', 'data-id': String(id) }, el('p', { class: 'pin-note', text: `Picture ${id} is not in this gallery (the link may come from another version of it).` }));
    const on = Boolean(pinFor(id));
    const caption = item.caption || item.file;
    return el('li', { class: 'pin', 'data-id': String(id) },
      thumbOf({ thumb: item.thumb }),
      el('div', { class: 'pin-body' }, el('p', { class: 'caption', text: caption }), el('p', { class: 'credit', text: creditLine(item) })),
      el('div', { class: 'pin-actions' }, button(on ? 'On your board' : 'Add', `Add “${caption}” to my board`, 'add',
        { disabled: on, onclick: () => togglePin(id) })));
  }));
  const addable = looking ? [] : ids.filter((id) => items.has(id) && !pinFor(id));
  parts.addAll.disabled = !addable.length;
}

/** The pin buttons on screen (results and viewer) say whether their picture is on the board. */
function syncPinButtons() {
  for (const b of document.querySelectorAll('button[data-pin-for]')) {
    const pinned = Boolean(pinFor(Number(b.dataset.pinFor)));
    b.setAttribute('aria-pressed', String(pinned));
    b.textContent = pinned ? '📌 Pinned' : '📌 Pin';
  }
}

/** A pin button for result `id` (results.js puts one on each result). */
export function pinButton(id) {
  const caption = pictureOf(id)?.caption || `picture ${id}`;
  const b = el('button', { type: 'button', class: 'ghost small pin-button', 'data-pin-for': String(id),
    'aria-label': `Pin “${caption}” to the board`, title: 'Keep it on your board (the Board button above)', onclick: () => togglePin(id) });
  const pinned = Boolean(pinFor(id));
  b.setAttribute('aria-pressed', String(pinned));
  b.textContent = pinned ? '📌 Pinned' : '📌 Pin';
  return b;
}

/** The viewer's pin button now stands for picture `id` (viewer.js calls this as it opens a picture). */
export function showViewerPin(id) {
  const b = $('viewer-pin');
  b.dataset.pinFor = String(id);
  b.setAttribute('aria-label', `Pin “${pictureOf(id)?.caption || `picture ${id}`}” to the board`);
  syncPinButtons();
}

let announceTimer = 0;
function announce(text) {
  parts.live.textContent = text;
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => { parts.live.textContent = ''; }, 4000);
}

/** A problem keeping the board (or none, with ''): said in the panel, and flagged on the Board button. */
function warn(text) {
  parts.warning.textContent = text;
  parts.warning.hidden = !text;
  toggleButton.classList.toggle('warn', Boolean(text));
  toggleButton.title = text || TOGGLE_TITLE;
}

function openPanel(open) {
  panel.hidden = !open;
  toggleButton.setAttribute('aria-expanded', String(open));
  document.body.classList.toggle('board-open', open);
}

// ---- exports, link, clear ------------------------------------------------------------------------------------

async function exportAs(format, how) {
  const text = format === 'csv' ? boardCsv(pins) : boardMarkdown(pins);
  const type = format === 'csv' ? 'text/csv' : 'text/markdown';
  if (how === 'download') { download(`imgpick-credits.${format === 'csv' ? 'csv' : 'md'}`, text, type); announce('Downloaded'); return; }
  if (await copy(text)) announce(`Credits copied as ${format === 'csv' ? 'CSV' : 'Markdown'}`);
  else window.prompt('Copy these credits:', text); // no clipboard permission: shown to copy by hand
}

async function copyLink() {
  const link = new URL(`${location.pathname}?${BOARD_PARAM}=${boardParam(pins)}`, location.href).href;
  if (await copy(link)) announce('Board link copied');
  else window.prompt('Copy this link to your board:', link);
}

function askClear() {
  parts.confirm.hidden = false;
  parts.confirmText.textContent = `Remove all ${pins.length} pictures from your board? This cannot be undone.`;
  parts.confirmYes.focus();
}
function cancelClear() { parts.confirm.hidden = true; }

// ---- wiring ------------------------------------------------------------------------------------------------

function onDrag(list) {
  const rowAt = (e) => e.target.closest?.('li.pin');
  const clearMarks = () => list.querySelectorAll('.drop-before, .drop-after, .dragging').forEach((r) => r.classList.remove('drop-before', 'drop-after', 'dragging'));
  const after = (e, row) => { const r = row.getBoundingClientRect(); return e.clientY > r.top + r.height / 2; };
  list.addEventListener('dragstart', (e) => {
    const row = rowAt(e);
    if (!row) return;
    dragKey = row.dataset.key;
    e.dataTransfer.setData(PIN_DRAG_TYPE, dragKey);
    e.dataTransfer.effectAllowed = 'move';
    row.classList.add('dragging');
  });
  list.addEventListener('dragover', (e) => {
    const row = rowAt(e);
    if (!dragKey || !row) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'move';
    list.querySelectorAll('.drop-before, .drop-after').forEach((r) => r.classList.remove('drop-before', 'drop-after'));
    row.classList.add(after(e, row) ? 'drop-after' : 'drop-before');
  });
  list.addEventListener('drop', (e) => {
    const row = rowAt(e);
    if (!dragKey || !row) return;
    e.preventDefault();
    const from = pins.findIndex((p) => p.key === dragKey);
    let to = pins.findIndex((p) => p.key === row.dataset.key) + (after(e, row) ? 1 : 0);
    if (to > from) to--; // the dragged pin leaves its place first
    const key = dragKey;
    dragKey = null;
    clearMarks();
    move(key, to);
  });
  list.addEventListener('dragend', () => { dragKey = null; clearMarks(); });
  // Alt+↑ / Alt+↓ anywhere in a pin moves it, as its buttons do.
  list.addEventListener('keydown', (e) => {
    const row = rowAt(e);
    const step = { ArrowUp: -1, ArrowDown: 1 }[e.key];
    if (!row || !step || !e.altKey) return;
    e.preventDefault();
    const at = pins.findIndex((p) => p.key === row.dataset.key);
    moveAndFocus(row.dataset.key, at + step, step < 0 ? 'up' : 'down');
  });
}

function build() {
  const head = el('div', { class: 'board-head' },
    parts.title = el('h2', { id: 'board-title', text: 'Your board', tabIndex: -1 }),
    parts.count = el('span', { class: 'board-count' }),
    el('button', { type: 'button', class: 'ghost small board-close', text: '✕', 'aria-label': 'Close the board', onclick: () => { openPanel(false); toggleButton.focus(); } }));
  parts.warning = el('p', { class: 'board-warning', role: 'alert', hidden: true });
  parts.live = el('p', { class: 'visually-hidden', 'aria-live': 'polite' });
  parts.shared = el('section', { class: 'board-shared', id: 'board-shared', 'aria-labelledby': 'board-shared-title', hidden: true },
    parts.sharedTitle = el('h3', { id: 'board-shared-title' }),
    el('p', { class: 'board-hint', text: 'Someone shared these pictures with you. Add them to your own board to keep them, reorder them and export their credits.' }),
    parts.sharedNote = el('p', { class: 'board-hint', role: 'status' }),
    parts.sharedList = el('ol', { class: 'pins', id: 'board-shared-list' }),
    el('div', { class: 'board-actions' },
      parts.addAll = el('button', { type: 'button', class: 'small', text: 'Add all to my board', onclick: addAllShared }),
      el('button', { type: 'button', class: 'ghost small', text: 'Close the shared board', onclick: closeShared })));
  parts.list = el('ol', { class: 'pins', id: 'board-list', 'aria-labelledby': 'board-title' });
  onDrag(parts.list);
  parts.empty = el('p', { class: 'board-hint', text: 'Pin pictures with their 📌 button to collect them here. Your board is kept on this device; reorder it by dragging or with ↑ ↓, share it as a link, export its credits.' });
  const exportButton = (text, format, how) => el('button', { type: 'button', class: 'ghost small', text, 'data-export': `${format}-${how}`, onclick: () => exportAs(format, how) });
  parts.exports = [exportButton('Copy Markdown', 'md', 'copy'), exportButton('Download .md', 'md', 'download'),
    exportButton('Copy CSV', 'csv', 'copy'), exportButton('Download .csv', 'csv', 'download')];
  parts.share = el('button', { type: 'button', class: 'small', id: 'board-share', text: 'Copy board link', onclick: copyLink });
  parts.shareNote = el('p', { class: 'board-hint', id: 'board-share-note', hidden: true });
  parts.clear = el('button', { type: 'button', class: 'ghost small', id: 'board-clear', text: 'Clear board…', onclick: askClear });
  parts.confirm = el('div', { class: 'board-confirm', role: 'group', 'aria-label': 'Clear the board?', hidden: true },
    parts.confirmText = el('p'),
    parts.confirmYes = el('button', { type: 'button', class: 'small danger', text: 'Clear the board', onclick: () => {
      pins = []; cancelClear(); announce('Your board is empty'); changed(); parts.title.focus();
    } }),
    el('button', { type: 'button', class: 'ghost small', text: 'Keep it', onclick: () => { cancelClear(); parts.clear.focus(); } }));
  panel.replaceChildren(head, parts.warning, parts.live, parts.shared, parts.list, parts.empty,
    el('div', { class: 'board-actions' }, parts.share, parts.clear), parts.shareNote, parts.confirm,
    el('div', { class: 'board-actions board-export', role: 'group', 'aria-label': 'Export the credits' },
      el('span', { class: 'board-hint', text: 'Credits:' }), ...parts.exports));
}

function addAllShared() {
  if (!shared) return;
  const before = pins.length;
  for (const id of shared.ids) if (shared.items.has(id) && !pinFor(id)) pins.push(pinOf(id));
  announce(`Added ${pins.length - before} to your board`);
  changed();
}

/** Builds the board's panel and reads the stored board (shown before the gallery is ready: pins need none). */
export function initBoard(worker) {
  searchWorker = worker;
  build();
  resultButtons.push((id) => pinButton(id)); // a 📌 on every result (results.js's hook)
  toggleButton.addEventListener('click', () => {
    const opening = panel.hidden;
    openPanel(opening);
    if (opening) parts.title.focus(); // a screen reader hears where it is; Tab goes on into the board
  });
  panel.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || !parts.confirm.hidden) { if (e.key === 'Escape') { cancelClear(); parts.clear.focus(); } return; }
    openPanel(false);
    toggleButton.focus();
  });
  $('viewer-pin').addEventListener('click', (e) => { const id = Number(e.currentTarget.dataset.pinFor); if (Number.isInteger(id)) togglePin(id); });
  if (sync) sync.onmessage = () => store.load().then(({ pins: stored }) => { pins = stored; readOk = true; render(); }, () => {});
  // Back / forward: a board link's view follows the address bar (url.js has read it).
  window.addEventListener('popstate', () => {
    const same = shared && state.sharedBoard && shared.ids.join() === state.sharedBoard.ids.join();
    if (state.ready && !same) showShared();
  });
  render();
  saving = saving.then(loadStored);
}

/** The gallery is up (the search worker's `ready`): its identity, then the pins checked and a shared board shown. */
export async function onBoardReady({ modelId, count }) {
  galleryKey = `${modelId}:${count}`;
  showShared();
  await saving; // the stored board has been read (or failed to be)
  await describePhotos(pins.filter((p) => p.mine).map((p) => p.id)).catch(() => {}); // their thumbnails
  render();
  await checkGallery();
}
