// The viewer dialog: one picture enlarged with its caption, licence, score and whether it is a strong match,
// "More like this", "Why this picture?" (how much each word of the prompt adds to the score), and "Copy credit"
// (a ready-made credit line: credit.js).
import { Request } from '../protocol.js';
import { state } from './state.js';
import { ui, el } from './ui.js';
import { pictureOf, captionOf, thumbUrl } from './results.js';
import { creditLine } from './credit.js';
import { showViewerPin } from './board.js';

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
  const strong = state.shown.find((r) => r.id === id)?.strong;
  const strength = strong === true ? ' · a strong match' : strong === false ? ' · a weaker match' : '';
  ui.viewerScore.textContent = `match ${score.toFixed(3)} (cosine similarity)${strength}`;
  // Your own photos need no credit; gallery pictures carry theirs.
  ui.viewerCreditLine.textContent = picture.mine ? '' : creditLine({ ...picture, caption: captionOf(id) });
  ui.viewerCredit.hidden = Boolean(picture.mine);
  ui.viewerCredit.textContent = 'Copy credit';
  ui.viewerWhy.hidden = state.like !== null || !state.query.trim() || state.server; // the vectors stay on a search server
  ui.why.hidden = true;
  showViewerPin(id); // the board's pin button (board.js)
  ui.viewer.showModal();
}

/** Wires the viewer's buttons: `searchWorker` answers "why", `moreLike(id)` searches by the picture. */
export function initViewer(searchWorker, { moreLike }) {
  ui.viewerLike.addEventListener('click', () => state.viewing !== null && moreLike(state.viewing));
  ui.viewerCredit.addEventListener('click', async () => {
    const line = ui.viewerCreditLine.textContent;
    try {
      await navigator.clipboard.writeText(line);
      ui.viewerCredit.textContent = 'Credit copied';
    } catch {
      // No clipboard permission (e.g. an insecure origin): show the line so it can be copied by hand.
      window.prompt('Copy this credit line:', line);
    }
  });
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
