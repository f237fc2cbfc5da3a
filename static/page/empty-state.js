// The empty state (before any search): what the gallery holds, counted by theme from its captions, and prompts
// that work on it — both from gallery.json's `summary`, which `trainer publish` computes (its example prompts are
// those whose top results are strong matches). A gallery without a summary gets a few general prompts.
import { ui, el } from './ui.js';

/** Shown until the gallery's summary arrives, and for galleries without one. */
const GENERAL_PROMPTS = ['a dog playing outside', 'a cat', 'fish in water', 'a rocket launch', 'a cup of coffee',
  'snow -people', 'a man riding a motorcycle', 'stars in the night sky'];

let pick = () => {};

/** Shows the general prompts; `onPick(prompt)` searches for one when clicked. */
export function initEmptyState({ onPick }) {
  pick = onPick;
  showPrompts(GENERAL_PROMPTS, false);
}

/** What the gallery holds (`summary`: gallery.json's, or null) and its example prompts; `count`: its pictures. */
export function showGallerySummary(summary, count) {
  ui.gallerySummary.replaceChildren(...describe(summary?.themes || [], count));
  ui.gallerySummary.hidden = !count;
  const examples = (summary?.examples || []).map((x) => x.prompt).filter((p) => typeof p === 'string' && p.trim());
  if (examples.length) showPrompts(examples, true);
}

/** "776 pictures: 293 of nature and landscapes, 218 of animals, …" as nodes (a picture can count in two themes). */
function describe(themes, count) {
  if (!count) return [];
  const total = el('strong', { text: `${count.toLocaleString('en')} pictures` });
  const named = themes.filter((t) => t && typeof t.theme === 'string' && Number.isFinite(t.count) && t.count > 0);
  if (!named.length) return ['This gallery holds ', total, '.'];
  const parts = named.map((t) => `${t.count.toLocaleString('en')} with ${t.theme}`);
  return ['This gallery holds ', total, ` — by their captions, ${parts.join(', ')}.`];
}

function showPrompts(prompts, fromGallery) {
  ui.examplesIntro.textContent = fromGallery
    ? 'Type what you are looking for, or try one of these — they find strong matches here:'
    : 'Type what you are looking for, or try one of these:';
  ui.examples.dataset.source = fromGallery ? 'gallery' : 'general';
  ui.examples.replaceChildren(...prompts.map((prompt) => el('li', {}, el('button', {
    type: 'button', class: 'example', text: prompt, onclick: () => pick(prompt),
  }))));
}
