// The viewer dialog: one picture enlarged with its caption, licence and score, "More like this", and "Why this
// picture?" (how much each word of the prompt adds to the score).
import { Request } from '../protocol.js';
import { state } from './state.js';
import { ui, el } from './ui.js';
import { pictureOf, captionOf, thumbUrl } from './results.js';

export function openViewer(id, score) {
  const picture = pictureOf(id);
  if (!picture) return;
  state.viewing = id;
  ui.viewerImg.src = thumbUrl(picture);
  ui.viewerImg.alt = captionOf(id);
  ui.viewerCaption.textContent = captionOf(id);
  ui.viewerLicence.textContent = picture.licence || 'licence unknown';
  const source = picture.source || picture.file;
  ui.viewerSource.replaceChildren(picture.url && /^https?:\/\//.test(picture.url)
    ? el('a', { href: picture.url, text: source, rel: 'noopener noreferrer', target: '_blank' }) : el('span', { text: source }));
  ui.viewerScore.textContent = `match ${score.toFixed(3)} (cosine similarity)`;
  ui.viewerWhy.hidden = state.like !== null || !state.query.trim();
  ui.why.hidden = true;
  ui.viewer.showModal();
}

/** Wires the viewer's buttons: `searchWorker` answers "why", `moreLike(id)` searches by the picture. */
export function initViewer(searchWorker, { moreLike }) {
  ui.viewerLike.addEventListener('click', () => state.viewing !== null && moreLike(state.viewing));
  ui.viewerWhy.addEventListener('click', async () => {
    const answer = await searchWorker.ask(Request.explain, { query: state.query, id: state.viewing });
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
}
