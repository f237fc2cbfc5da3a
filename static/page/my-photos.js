// "My photos", page side: the section that adds the user's photos (file picker, folder picker, drop), shows the
// indexing progress and the files refused, offers to continue a folder whose add a reload interrupted, and
// clears them. Files are handed to the search worker (File objects or a folder handle: no copy, nothing
// uploaded); it embeds them in embedding workers, keeps int8 vectors and thumbnails in IndexedDB and reports back
// here (worker/my-photos.js). The page keeps only the photos' count and, for the ones it shows, their names
// and thumbnails (state.myPhotos, page/photo-index.js).
import { Request } from '../protocol.js';
import { state } from './state.js';
import { ui, el } from './ui.js';
import { mb, plural, seconds } from './format.js';
import { initFileDrop } from './file-drop.js';
import { PHOTO_FILE } from '../worker/folder-files.js';

let searchWorker = null;
let photosChanged = () => {};

const thousands = (n) => n.toLocaleString('en');
const photos = (n) => `${thousands(n)} ${n === 1 ? 'photo' : 'photos'}`;

function showSection() {
  const count = state.myPhotos.size;
  ui.mine.hidden = !state.canEmbed && !count;
  for (const input of [ui.mineFiles, ui.mineFolder]) input.disabled = !state.canEmbed;
  if (!state.canEmbed) ui.mineHint.textContent = 'This model has no image encoder, so it cannot index your photos.';
  ui.mineCount.textContent = count ? `${photos(count)} on this device` : 'none yet';
  ui.mineClear.hidden = !count;
  ui.mine.dataset.count = String(count);
}

/** A line under the section (or none, with no message). */
export function note(message) {
  ui.mineNote.hidden = !message;
  ui.mineNote.textContent = message || '';
}

function showRefused(errors) {
  if (!errors.length) return;
  ui.mineErrorsList.append(...errors.map(({ file, message }) =>
    el('li', { 'data-file': file }, el('strong', { text: file }), document.createTextNode(`: ${message}`))));
  const n = ui.mineErrorsList.children.length;
  ui.mineErrorsSummary.textContent = `${plural(n, 'file')} skipped (not indexed): show why`;
  ui.mineErrors.hidden = false;
}

/** Names and thumbnails of the user's photos among `ids` (picture ids; others are ignored), asked of the search
 *  worker when the page has not got them yet. Call before showing pictures: `state.myPhotos.get(id)` has them. */
export async function describe(ids) {
  const missing = state.myPhotos.missing(ids.filter((id) => id !== null && id !== undefined));
  if (!missing.length) return;
  const answer = await searchWorker.ask(Request.describePhotos, { ids: missing });
  if (answer.photos) state.myPhotos.remember(answer.photos);
}

// ---- a folder whose add did not finish (File System Access, Chromium) -----------------------------------

let resumeLine = null;

/** Offers to continue `folders` (`[{ id, name, handle }]`): reading a folder again needs the user's permission,
 *  which the browser asks for on a click. */
function offerToContinue(folders) {
  resumeLine?.remove();
  resumeLine = null;
  if (!folders.length || !state.canEmbed) return;
  resumeLine = el('p', { class: 'mine-note mine-resume', role: 'status' });
  for (const folder of folders) {
    resumeLine.append(document.createTextNode(`Adding the folder “${folder.name}” did not finish. `),
      el('button', { type: 'button', class: 'ghost small', text: 'Continue', 'data-folder': folder.id,
        onclick: () => continueFolder(folder) }));
  }
  ui.mineNote.before(resumeLine);
}

async function continueFolder(folder) {
  try {
    const permission = await folder.handle.requestPermission?.({ mode: 'read' }) ?? 'granted';
    if (permission !== 'granted') { note(`Without permission to read “${folder.name}”, it cannot be continued.`); return; }
  } catch (e) {
    note(`Cannot read “${folder.name}” again (${e.message || e}): add it again.`);
    return;
  }
  resumeLine?.remove();
  resumeLine = null;
  startProgress(`Listing “${folder.name}”…`);
  const answer = await searchWorker.ask(Request.continueFolder, { id: folder.id });
  if (answer.error) note(`Could not continue: ${answer.error}`);
}

// ---- events from the search worker --------------------------------------------------------------------

/** The search worker is ready: its `restored` photos (`{ count, firstId, dropped, error, folders }`). */
export function showRestored(restored) {
  state.myPhotos.setRange(restored.firstId, restored.count);
  if (restored.error) note(restored.error);
  else if (restored.dropped) {
    note(`${photos(restored.dropped)} ${restored.dropped === 1 ? 'was' : 'were'} indexed with another version of the model `
      + 'and have been removed from this device: add them again to search them.');
  }
  ui.mine.dataset.restored = String(restored.count);
  ui.mine.dataset.embedded = '0';
  showSection();
  offerToContinue(restored.folders || []);
}

function startProgress(text) {
  ui.mine.dataset.state = 'adding';
  ui.mineProgress.hidden = false;
  ui.mineProgressText.textContent = text;
}

/** Event.myPhotosProgress: the image model's download, then each step of the embedding. */
export function showProgress(p) {
  ui.mine.dataset.state = 'adding';
  ui.mineProgress.hidden = false;
  if (p.phase === 'download') {
    if (p.total) { ui.mineBar.max = p.total; ui.mineBar.value = p.loaded; } else ui.mineBar.removeAttribute('value');
    ui.mineProgressText.textContent = `Downloading the image model (once)… ${mb(p.loaded)}${p.total ? ` of ${mb(p.total)}` : ''}`;
    return;
  }
  state.myPhotos.setRange(p.firstId, p.count);
  showRefused(p.errors);
  ui.mineBar.max = Math.max(1, p.total);
  ui.mineBar.value = p.done;
  const rate = p.done && p.elapsedMs > 0 ? p.done / (p.elapsedMs / 1000) : 0;
  // After a reload, adding the same folder again skips what is indexed: say so, so the count makes sense.
  const already = p.skipped ? ` · ${thousands(p.skipped)} already indexed` : '';
  ui.mineProgressText.textContent = `Indexing ${thousands(p.done)} of ${thousands(p.total)}${already}`
    + (rate ? ` · ${rate.toFixed(1)} images/s · ${seconds((p.total - p.done) / rate)} left` : ' · starting…');
  ui.mine.dataset.embedded = String(p.embedded);
  ui.mine.dataset.rate = rate.toFixed(2);
  ui.mine.dataset.skipped = String(p.skipped);
  showSection();
}

/** Event.myPhotosDone: the add ended; the summary stays as a note. */
export function showDone(d) {
  state.myPhotos.setRange(d.firstId, d.count);
  ui.mineProgress.hidden = true;
  ui.mine.dataset.state = 'idle';
  ui.mine.dataset.embedded = String(d.embedded);
  const rate = d.added && d.elapsedMs > 0 ? d.added / (d.elapsedMs / 1000) : 0;
  const parts = [`${photos(d.added)} indexed${rate ? ` (${rate.toFixed(1)} images/s)` : ''}`];
  if (d.failed) parts.push(`${plural(d.failed, 'file')} skipped`);
  if (d.skipped) parts.push(`${thousands(d.skipped)} already indexed`);
  note(`${parts.join(', ')}. They stay on this device.`);
  ui.mine.dataset.last = JSON.stringify({ added: d.added, failed: d.failed, skipped: d.skipped, rate,
    perPhoto: d.perPhoto, decoders: d.decoders });
  showSection();
  if (state.query.trim() || state.like !== null) photosChanged();
}

// ---- adding ---------------------------------------------------------------------------------------------

// Files per message to the search worker. Cloning a File from a file input stats it on this thread (~0.25 ms
// each, measured): 10,000 files in one message blocked the page for 2.3 s (a long animation frame attributed to
// the input's change handler); in slices, each task stays short and the page keeps drawing.
const SLICE = 128;
let sending = null; // { stopped } while the slices of an add are being handed over

async function addFiles(list) {
  if (!state.ready || !state.canEmbed) return;
  const files = list.filter(({ file }) => !file.name.startsWith('.')); // .DS_Store and friends
  if (!files.length) return;
  startProgress(`Preparing ${thousands(files.length)} ${files.length === 1 ? 'file' : 'files'}…`);
  const run = sending = { stopped: false };
  for (let i = 0; i < files.length && !run.stopped; i += SLICE) {
    const more = i + SLICE < files.length;
    searchWorker.send(Request.addPhotos, { files: files.slice(i, i + SLICE), more });
    if (more) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  if (sending === run) sending = null;
}

// "Add a folder…" with the File System Access API where there is one: the worker lists the folder and
// remembers it, so an add a reload interrupts can be continued. Elsewhere the label opens the folder input.
async function pickFolder(e) {
  if (typeof window.showDirectoryPicker !== 'function' || !state.ready || !state.canEmbed) return;
  e.preventDefault();
  let handle;
  try {
    handle = await window.showDirectoryPicker({ id: 'imgpick-photos', mode: 'read' });
  } catch {
    return; // cancelled
  }
  startProgress(`Listing “${handle.name}”…`);
  const answer = await searchWorker.ask(Request.addFolder, { handle });
  if (answer.error) note(`Could not add the folder: ${answer.error}`);
}

let clearArmed = 0;
async function clearClicked() {
  // Two clicks: the index of a big folder takes minutes to rebuild.
  if (!clearArmed) {
    ui.mineClear.textContent = `Really remove ${photos(state.myPhotos.size)}?`;
    clearArmed = setTimeout(() => { clearArmed = 0; ui.mineClear.textContent = 'Clear my photos'; }, 4000);
    return;
  }
  clearTimeout(clearArmed);
  clearArmed = 0;
  ui.mineClear.textContent = 'Clear my photos';
  const answer = await searchWorker.ask(Request.clearPhotos);
  state.myPhotos.clear();
  ui.mineErrorsList.replaceChildren();
  ui.mineErrors.hidden = true;
  ui.mineProgress.hidden = true;
  ui.mine.dataset.state = 'idle';
  ui.mine.dataset.embedded = '0';
  offerToContinue([]);
  note(answer.error ? `Could not clear everything: ${answer.error}` : 'Your photos were removed from this page and this device.');
  showSection();
  photosChanged();
}

/** Wires the section: photos go to `worker` (the search-worker client); `onChange()` re-runs the search after
 *  photos were added or cleared. */
export function initMyPhotos(worker, { onChange }) {
  searchWorker = worker;
  photosChanged = onChange;
  ui.mineFiles.addEventListener('change', () => {
    addFiles([...ui.mineFiles.files].map((file) => ({ file, path: file.name })));
    ui.mineFiles.value = '';
  });
  ui.mineFolder.addEventListener('change', () => {
    // A folder's listing: photos only (videos and sidecar files are not worth a "skipped" line each).
    addFiles([...ui.mineFolder.files].filter((file) => PHOTO_FILE.test(file.name))
      .map((file) => ({ file, path: file.webkitRelativePath || file.name })));
    ui.mineFolder.value = '';
  });
  document.querySelector(`label[for="${ui.mineFolder.id}"]`)?.addEventListener('click', pickFolder);
  ui.mineStop.addEventListener('click', () => {
    if (sending) sending.stopped = true;
    searchWorker.send(Request.cancelAdding);
  });
  ui.mineClear.addEventListener('click', clearClicked);
  initFileDrop({ overlay: ui.dropOverlay, accepts: () => state.canEmbed, onFiles: addFiles });
  // For benchmarks and tests (scripts/bench/embed.mjs, tests/e2e/mine-scale.test.mjs).
  window.imgpickMine = {
    addSynthetic: async (count, seed = 1) => {
      const answer = await searchWorker.ask(Request.addSyntheticPhotos, { count, seed });
      const stats = await searchWorker.ask(Request.myPhotosStats);
      state.myPhotos.setRange(stats.firstId, stats.count);
      showSection();
      return answer.error ? { error: answer.error } : { count: answer.count };
    },
    setEmbedWorkers: async (count, browserDecode = 'auto') =>
      (await searchWorker.ask(Request.embedWorkers, { count, browserDecode })).count,
    search: async (query, scope = 'mine', k = 30) => {
      const t = performance.now();
      const answer = await searchWorker.ask(Request.search, { query, k, scope });
      return { workerMs: answer.ms, roundTripMs: performance.now() - t, ids: answer.results?.map((r) => r.id), error: answer.error };
    },
  };
}
