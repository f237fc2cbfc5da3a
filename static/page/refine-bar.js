// The refinement controls (issue #20): the filter bar (shape, minimum size, licence, near-duplicate grouping,
// "more varied") and the marks bar (how 👍/👎 move the search, the marked pictures, "Clear marks"). Both read
// and write `state.refine` (refine.js); `onChange()` searches again and updates the link.
import { state } from './state.js';
import { ui, el } from './ui.js';
import { ORIENTATIONS, LICENCE_NEEDS, MIN_SIDES, describeMarks, toggleMark } from './refine.js';
import { captionOf, pictureOf, thumbUrl } from './results.js';

let changed = () => {};

/** Fills the selects and wires the controls; `onChange()` runs after every change. */
export function initRefineBar({ onChange }) {
  changed = onChange;
  const options = (select, entries) => select.append(...entries.map(([value, label]) => el('option', { value, text: label })));
  options(ui.refineOrient, Object.entries(ORIENTATIONS).map(([v, l]) => [v, l.toLowerCase()]));
  options(ui.refineMin, MIN_SIDES.map((n) => [String(n), `≥ ${n.toLocaleString('en')} px`]));
  options(ui.refineLic, Object.entries(LICENCE_NEEDS));
  const set = (fields) => { state.refine = { ...state.refine, ...fields }; changed(); };
  ui.refineOrient.addEventListener('change', () => set({ orient: ui.refineOrient.value }));
  ui.refineMin.addEventListener('change', () => set({ min: ui.refineMin.value ? Number(ui.refineMin.value) : null }));
  ui.refineLic.addEventListener('change', () => set({ lic: ui.refineLic.value }));
  ui.refineCollapse.addEventListener('change', () => set({ collapse: ui.refineCollapse.checked }));
  ui.refineVary.addEventListener('change', () => set({ vary: ui.refineVary.checked }));
  ui.marksClear.addEventListener('click', () => set({ up: [], down: [] }));
}

/** Shows `state.refine` in the controls (after a link is read, or the state changed). A size the link carried
 *  that is not offered gets its own option. */
export function showRefinement() {
  const r = state.refine;
  ui.refineOrient.value = r.orient;
  if (r.min && ![...ui.refineMin.options].some((o) => o.value === String(r.min))) {
    ui.refineMin.append(el('option', { value: String(r.min), text: `≥ ${r.min.toLocaleString('en')} px` }));
  }
  ui.refineMin.value = r.min ? String(r.min) : '';
  ui.refineLic.value = r.lic;
  ui.refineCollapse.checked = r.collapse;
  ui.refineVary.checked = r.vary;
  showMarks();
}

/** 👍/👎 on picture `id` (from a result's buttons): toggles the mark and searches again. */
export function mark(id, kind) {
  const { refinement, refused } = toggleMark(state.refine, id, kind);
  if (refused) { ui.marksText.textContent = refused; ui.marks.hidden = false; return; }
  state.refine = refinement;
  changed();
}

/** The marks bar: what the marks do, and each marked picture (click to unmark: a 👎 one is not in the results). */
function showMarks() {
  const r = state.refine;
  const text = describeMarks(r);
  ui.marks.hidden = !text;
  ui.marksText.textContent = text;
  ui.marksList.replaceChildren(...[...r.up.map((id) => [id, 'up']), ...r.down.map((id) => [id, 'down'])].map(([id, kind]) => {
    const picture = pictureOf(id);
    return el('li', { 'data-id': String(id), 'data-mark': kind },
      el('button', { type: 'button', class: 'ghost small mark-chip', title: `Unmark ${captionOf(id)}`, onclick: () => mark(id, kind) },
        picture && thumbUrl(picture) ? el('img', { src: thumbUrl(picture), alt: '' }) : '',
        el('span', { text: `${kind === 'up' ? '👍' : '👎'} ${captionOf(id)}` })));
  }));
}
