// The results grid: what a picture id refers to (a gallery picture or one of the user's photos, in one shape)
// and the rendered list, best match first, with score bars relative to the best, 👍/👎 marks, and a "+N similar"
// badge on a result whose near-duplicates were collapsed into it.
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
 *  rendered result (`context`: `{ rank, score, marks }`, `marks` false where 👍/👎 do not apply, e.g. a passage's
 *  per-idea suggestions). Modules push their button makers here (the board of picks adds its pin). */
export const resultButtons = [];

/** One result's element (`actions`: `{ open, moreLike, mark? }`; `mark(id, 'up' | 'down')` adds the 👍/👎 pair). */
export function resultItem({ id, score, similar = [] }, rank, top, actions) {
  const picture = pictureOf(id) || { file: `#${id}`, thumb: '', caption: '' };
  const caption = captionOf(id);
  const bar = el('span', { class: 'bar-fill' });
  // Bars are relative to the best match; CSSOM styles are allowed by the CSP (no inline style attributes).
  bar.style.width = `${Math.max(2, Math.min(100, (score / (top || 1)) * 100)).toFixed(1)}%`;
  const buttons = el('div', { class: 'result-actions' },
    el('button', { type: 'button', class: 'ghost small', text: 'More like this', onclick: () => actions.moreLike(id) }));
  if (actions.mark) {
    const liked = state.refine.up.includes(id);
    const disliked = state.refine.down.includes(id);
    buttons.append(
      el('button', { type: 'button', class: `ghost small mark${liked ? ' on' : ''}`, 'data-mark': 'up', 'aria-pressed': String(liked),
        title: liked ? 'Liked: click to unmark' : 'More like this one, in this search', 'aria-label': `Like: ${caption}`, text: '👍',
        onclick: () => actions.mark(id, 'up') }),
      el('button', { type: 'button', class: `ghost small mark${disliked ? ' on' : ''}`, 'data-mark': 'down', 'aria-pressed': String(disliked),
        title: 'Less like this one (it is left out)', 'aria-label': `Dislike: ${caption}`, text: '👎',
        onclick: () => actions.mark(id, 'down') }));
  }
  for (const make of resultButtons) {
    const b = make(id, picture, { rank, score, marks: Boolean(actions.mark) });
    if (b) buttons.append(b);
  }
  const li = el('li', { class: picture.mine ? 'result mine-photo' : 'result', 'data-mine': picture.mine ? '1' : '0', 'data-id': String(id),
    'data-file': picture.file, 'data-score': String(score), 'data-rank': String(rank + 1), 'data-similar': similar.join('.') },
    el('button', { type: 'button', class: 'thumb', 'aria-label': `Enlarge: ${caption}`, onclick: () => actions.open(id, score) },
      el('img', { src: thumbUrl(picture), alt: caption, loading: rank < 12 ? 'eager' : 'lazy', decoding: 'async' })),
    el('div', { class: 'bar', title: `cosine similarity ${score.toFixed(3)}` }, bar),
    el('p', { class: 'caption', text: caption }),
    el('p', { class: 'meta' }, licenceNode(picture)),
    buttons,
  );
  if (similar.length) li.append(similarBadge(li, similar, actions));
  return li;
}

/** "+N similar": shows (or hides again) the near-duplicates collapsed into a result, right after it. */
function similarBadge(li, similar, actions) {
  const badge = el('button', { type: 'button', class: 'similar-badge small', 'aria-expanded': 'false',
    title: 'Near-duplicates of this picture (as close as the gallery’s closest pairs), grouped into it',
    text: `+${similar.length} similar` });
  let shown = [];
  badge.addEventListener('click', () => {
    const open = badge.getAttribute('aria-expanded') === 'true';
    shown.forEach((n) => n.remove());
    shown = [];
    badge.setAttribute('aria-expanded', String(!open));
    if (open) return;
    shown = similar.map((sid) => {
      const picture = pictureOf(sid) || { file: `#${sid}`, thumb: '' };
      return el('li', { class: 'similar-member', 'data-id': String(sid), 'data-file': picture.file },
        el('button', { type: 'button', class: 'thumb', 'aria-label': `Enlarge: ${captionOf(sid)}`, onclick: () => actions.open(sid, Number(li.dataset.score)) },
          el('img', { src: thumbUrl(picture), alt: captionOf(sid), decoding: 'async' })),
        el('p', { class: 'caption', text: captionOf(sid) }),
        el('p', { class: 'meta', text: `near-duplicate of #${li.dataset.rank}` }));
    });
    li.after(...shown);
  });
  return badge;
}

/** Shows `results` ([{id, score, strong?, similar?}] best first) in the main grid; `actions`: `{ open(id, score),
 *  moreLike(id), mark?(id, kind) }`. */
export function renderResults(results, actions) {
  state.shown = results;
  ui.empty.hidden = true;
  const top = results.length ? results[0].score : 1;
  const frag = document.createDocumentFragment();
  results.forEach((r, rank) => frag.append(resultItem(r, rank, top, actions)));
  ui.results.replaceChildren(frag);
  showStrength(ui.results, ui.fitNote, results, state.query); // strong matches, then weaker ones (match-strength.js)
}
