// The results grid: what a picture id refers to (a gallery picture or one of the user's photos, in one shape)
// and the rendered list, best match first, with score bars relative to the best.
import { state } from './state.js';
import { ui, el } from './ui.js';
import { showStrength } from './match-strength.js';

/** Picture `id` as the page shows it: a gallery.json item, or one of the user's photos in the same shape. */
export function pictureOf(id) {
  const m = state.myPhotos.get(id);
  if (m) return { file: m.path, caption: m.name, thumbUrl: m.thumbUrl, licence: 'Your photo', source: 'only on this device', mine: true };
  return state.items[id];
}
export const captionOf = (id) => pictureOf(id)?.caption || pictureOf(id)?.file || `picture ${id}`;
export const thumbUrl = (picture) => picture.mine ? (picture.thumbUrl || '') : `gallery/${picture.thumb}`;

/** A link to the picture's source when it has a web address, else its licence and source as text. */
export function licenceNode(picture) {
  const label = [picture.licence || 'licence unknown', picture.source].filter(Boolean).join(' · ');
  if (picture.url && /^https?:\/\//.test(picture.url)) {
    return el('a', { href: picture.url, text: label, rel: 'noopener noreferrer', target: '_blank' });
  }
  return el('span', { text: label });
}

/** The hook for per-result buttons: each entry is `(id, picture, context) => Element | null`, called for every
 *  rendered result (`context`: `{ rank, score }`). Modules push their button makers here (the board of picks adds
 *  its pin). */
export const resultButtons = [];

/** Shows `results` ([{id, score}] best first); `open(id, score)` and `moreLike(id)` are the buttons' actions. */
export function renderResults(results, { open, moreLike }) {
  state.shown = results;
  ui.empty.hidden = true;
  const top = results.length ? results[0].score : 1;
  const frag = document.createDocumentFragment();
  results.forEach(({ id, score }, rank) => {
    const picture = pictureOf(id) || { file: `#${id}`, thumb: '', caption: '' };
    const caption = captionOf(id);
    const bar = el('span', { class: 'bar-fill' });
    // Bars are relative to the best match; CSSOM styles are allowed by the CSP (no inline style attributes).
    bar.style.width = `${Math.max(2, Math.min(100, (score / (top || 1)) * 100)).toFixed(1)}%`;
    const li = el('li', { class: picture.mine ? 'result mine-photo' : 'result', 'data-mine': picture.mine ? '1' : '0', 'data-id': String(id),
      'data-file': picture.file, 'data-score': String(score), 'data-rank': String(rank + 1) },
      el('button', { type: 'button', class: 'thumb', 'aria-label': `Enlarge: ${caption}`, onclick: () => open(id, score) },
        el('img', { src: thumbUrl(picture), alt: caption, loading: rank < 12 ? 'eager' : 'lazy', decoding: 'async' })),
      el('div', { class: 'bar', title: `cosine similarity ${score.toFixed(3)}` }, bar),
      el('p', { class: 'caption', text: caption }),
      el('p', { class: 'meta' }, licenceNode(picture)),
      el('button', { type: 'button', class: 'ghost small', text: 'More like this', onclick: () => moreLike(id) }),
      ...resultButtons.map((make) => make(id, picture, { rank, score })).filter(Boolean),
    );
    frag.append(li);
  });
  ui.results.replaceChildren(frag);
  showStrength(ui.results, ui.fitNote, results, state.query); // strong matches, then weaker ones (match-strength.js)
}
