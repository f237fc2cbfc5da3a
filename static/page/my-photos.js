// "My photos", page side: the section that adds the user's photos (file picker, folder picker, drop), shows the
// indexing progress and the files refused, and clears them. The files are handed to the search worker (File
// objects: no copy, nothing uploaded); it embeds them in embedding workers, keeps the vectors and thumbnails in
// IndexedDB and reports back here (worker/my-photos.js).
import { Request } from '../protocol.js';
import { state } from './state.js';
import { ui, el } from './ui.js';
import { mb, plural, seconds } from './format.js';
import { initFileDrop } from './file-drop.js';

let searchWorker = null;
let photosChanged = () => {};

function showSection() {
  const count = state.myPhotos.size;
  ui.mine.hidden = !state.canEmbed && !count;
  for (const input of [ui.mineFiles, ui.mineFolder]) input.disabled = !state.canEmbed;
  if (!state.canEmbed) ui.mineHint.textContent = 'This model has no image encoder, so it cannot index your photos.';
  ui.mineCount.textContent = count ? plural(count, 'photo') + ' on this device' : 'none yet';
  ui.mineClear.hidden = !count;
  ui.mine.dataset.count = String(count);
}

function addToState(photos) {
  for (const { id, name, path, thumb } of photos) {
    state.myPhotos.set(id, { name, path: path || name, thumbUrl: thumb ? URL.createObjectURL(thumb) : '' });
  }
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

/** The search worker is ready: its `restored` photos (`{ items, dropped, error }`) join the page. */
export function showRestored(restored) {
  addToState(restored.items);
  if (restored.error) note(restored.error);
  else if (restored.dropped) {
    note(`${restored.dropped} of your photos were indexed with another version of the model and have been removed from `
      + 'this device: add them again to search them.');
  }
  ui.mine.dataset.restored = String(restored.items.length);
  ui.mine.dataset.embedded = '0';
  showSection();
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
  addToState(p.items);
  showRefused(p.errors);
  ui.mineBar.max = Math.max(1, p.total);
  ui.mineBar.value = p.done;
  const rate = p.done && p.elapsedMs > 0 ? p.done / (p.elapsedMs / 1000) : 0;
  ui.mineProgressText.textContent = `Indexing ${p.done} of ${p.total}`
    + (rate ? ` · ${rate.toFixed(1)} images/s · ${seconds((p.total - p.done) / rate)} left` : ' · starting…');
  ui.mine.dataset.embedded = String(p.embedded);
  ui.mine.dataset.rate = rate.toFixed(2);
  showSection();
}

/** Event.myPhotosDone: the add ended; the summary stays as a note. */
export function showDone(d) {
  ui.mineProgress.hidden = true;
  ui.mine.dataset.state = 'idle';
  ui.mine.dataset.embedded = String(d.embedded);
  const rate = d.added && d.elapsedMs > 0 ? d.added / (d.elapsedMs / 1000) : 0;
  const parts = [`${plural(d.added, 'photo')} indexed${rate ? ` (${rate.toFixed(1)} images/s)` : ''}`];
  if (d.failed) parts.push(`${plural(d.failed, 'file')} skipped`);
  if (d.skipped) parts.push(`${plural(d.skipped, 'file')} already added`);
  note(`${parts.join(', ')}. They stay on this device.`);
  ui.mine.dataset.last = JSON.stringify({ added: d.added, failed: d.failed, skipped: d.skipped, rate, perPhoto: d.perPhoto });
  showSection();
  if (state.query.trim() || state.like !== null) photosChanged();
}

function addFiles(list) {
  if (!state.ready || !state.canEmbed) return;
  const files = list.filter(({ file }) => !file.name.startsWith('.')); // .DS_Store and friends
  if (!files.length) return;
  ui.mine.dataset.state = 'adding';
  ui.mineProgress.hidden = false;
  ui.mineProgressText.textContent = `Preparing ${plural(files.length, 'file')}…`;
  searchWorker.send(Request.addPhotos, { files });
}

let clearArmed = 0;
async function clearClicked() {
  // Two clicks: the index of a big folder takes minutes to rebuild.
  if (!clearArmed) {
    ui.mineClear.textContent = `Really remove ${plural(state.myPhotos.size, 'photo')}?`;
    clearArmed = setTimeout(() => { clearArmed = 0; ui.mineClear.textContent = 'Clear my photos'; }, 4000);
    return;
  }
  clearTimeout(clearArmed);
  clearArmed = 0;
  ui.mineClear.textContent = 'Clear my photos';
  const answer = await searchWorker.ask(Request.clearPhotos);
  for (const { thumbUrl: url } of state.myPhotos.values()) if (url) URL.revokeObjectURL(url);
  state.myPhotos.clear();
  ui.mineErrorsList.replaceChildren();
  ui.mineErrors.hidden = true;
  ui.mineProgress.hidden = true;
  ui.mine.dataset.state = 'idle';
  ui.mine.dataset.embedded = '0';
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
    addFiles([...ui.mineFolder.files].map((file) => ({ file, path: file.webkitRelativePath || file.name })));
    ui.mineFolder.value = '';
  });
  ui.mineStop.addEventListener('click', () => searchWorker.send(Request.cancelAdding));
  ui.mineClear.addEventListener('click', clearClicked);
  initFileDrop({ overlay: ui.dropOverlay, accepts: () => state.canEmbed, onFiles: addFiles });
}
