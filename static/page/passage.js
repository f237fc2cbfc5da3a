// Passage mode (issue #20): a paragraph or a whole article — pasted into the search box, typed after "From my
// text…", or carried by a link's `#text=` — gets pictures per idea (adjacent sentences that embed close together;
// each names its sentences) and the best pictures for the passage as a whole (the main grid, where 👍/👎 and
// "more varied" apply). The search worker splits, cuts and searches it (worker/workflow.js), so a 1 MB paste
// never blocks the page; the link carries the text compressed in its fragment, which no server receives.
import { Request } from '../protocol.js';
import { state } from './state.js';
import { ui, el } from './ui.js';
import { engineParams } from './refine.js';
import { decodeFragment, encodeFragment, fitPassage, looksLikePassage, MAX_PASSAGE_BYTES, MAX_SENTENCES } from './passage-text.js';
import { renderResults, resultItem } from './results.js';

/** Suggestions per idea, and for the whole passage. */
export const K_IDEA = 4;
export const K_WHOLE = 12;
const TYPING_MS = 400;

let hooks = null; // { onChange(push), writeUrl(push) }
let typing = 0;   // the pending search after typing in the text box
let cut = null;   // { bytes, kept } when the pasted text was cut to what the engine reads

const kb = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.round(n / 1000).toLocaleString('en')} kB`);

/** Wires passage mode: `onChange()` searches again (app.js `updateResults`), `writeUrl(push)` updates the link. */
export function initPassage(h) {
  hooks = h;
  ui.passageToggle.addEventListener('click', () => enter(state.query, true));
  ui.passageClose.addEventListener('click', leave);
  ui.passageGo.addEventListener('click', () => { clearTimeout(typing); setText(ui.passageText.value, true); });
  ui.passageText.addEventListener('input', () => {
    cut = null;
    clearTimeout(typing);
    typing = setTimeout(() => { if (state.passage !== null) setText(ui.passageText.value, false); }, TYPING_MS);
  });
  // A paragraph pasted into the search box is a passage, not a prompt (the box would keep only its first line).
  ui.input.addEventListener('paste', (e) => {
    const text = e.clipboardData?.getData('text/plain') ?? '';
    if (!looksLikePassage(text)) return;
    e.preventDefault();
    enter(text, true);
  });
}

/** Reads a link's `#text=` (after url.js `readUrl`): passage mode with its text, or a note when it is damaged.
 *  Resolves once `state` is set. */
export async function readPassageLink() {
  const m = /^#text=(.*)$/s.exec(location.hash);
  if (!m) { showMode(null); return; }
  try {
    const text = await decodeFragment(m[1]);
    state.passageLink = m[1];
    showMode(text);
  } catch (e) {
    showMode('');
    ui.passageNote.textContent = e.message;
  }
}

function enter(pasted, push) {
  state.refine = { ...state.refine, up: [], down: [] }; // marks judge one search's results
  // Text over what the engine reads is cut here, at a paragraph or sentence end: the box shows (and the link
  // carries) what is searched, and a 1 MB text box (~0.2 s of layout per change) never reaches the page.
  const fit = fitPassage(pasted);
  cut = fit.truncated ? { bytes: fit.bytes, kept: fit.kept } : null;
  showMode(fit.text);
  ui.passageText.focus();
  setText(fit.text, push);
}

function leave() {
  showMode(null);
  state.passageLink = '';
  hooks.writeUrl(true);
  hooks.onChange();
  ui.input.focus();
}

/** Passage mode on (`text`: a string) or off (null): the panel, the toggle, `state.passage`. */
export function showMode(text) {
  state.passage = text;
  const on = text !== null;
  ui.passage.hidden = !on;
  ui.passageToggle.setAttribute('aria-pressed', String(on));
  ui.passageToggle.hidden = on; // the panel has its own "Back to a prompt"
  if (on && ui.passageText.value !== text) ui.passageText.value = text;
  if (!on) { clearTimeout(typing); ui.passageIdeas.replaceChildren(); ui.passageWhole.hidden = true; ui.passageNote.textContent = ''; }
}

/** The text changed: the link is updated (compressed; at most what the engine reads), then it is searched. */
async function setText(text, push) {
  state.passage = text;
  state.like = null;
  const fit = fitPassage(text);
  try {
    state.passageLink = fit.text.trim() ? await encodeFragment(fit.text) : '';
  } catch {
    state.passageLink = ''; // no CompressionStream: the link carries no text
  }
  if (state.passage !== text) return; // typed on meanwhile, or left passage mode
  hooks.writeUrl(push);
  hooks.onChange();
}

/** Searches the passage in `state.passage` and shows the answer; `ask` is the search worker's, `isLatest()`
 *  says whether this is still the newest search; `actions` as for results.js (`mark` applies to the whole). */
export async function searchPassage(ask, isLatest, actions) {
  const text = state.passage;
  if (!text.trim()) {
    ui.passageIdeas.replaceChildren();
    ui.passageWhole.hidden = true;
    renderResults([], actions);
    ui.status.textContent = 'Paste or type a paragraph above: each idea gets its own pictures.';
    return;
  }
  ui.passage.dataset.state = 'searching';
  ui.passageNote.textContent = text.length > 20_000 ? `Reading ${kb(new TextEncoder().encode(text).length)} of text…` : '';
  const t0 = performance.now();
  const answer = await ask(Request.passage, { text, kIdea: K_IDEA, kWhole: K_WHOLE, scope: state.scope, refine: engineParams(state.refine) });
  if (!isLatest()) return;
  for (const item of answer.items || []) state.items[item.id] = item;
  ui.results.dataset.search = location.search;
  ui.results.dataset.query = `passage:${text.length}`;
  if (answer.error) {
    ui.passage.dataset.state = 'error';
    ui.passageIdeas.replaceChildren();
    ui.passageWhole.hidden = true;
    renderResults([], actions);
    ui.passageNote.textContent = '';
    ui.status.textContent = /no words/.test(answer.error)
      ? 'Your text has no words to search for: only emoji, symbols, punctuation or markup. Write a sentence or two.'
      : `Could not search your text: ${answer.error}`;
    return;
  }
  ui.passageIdeas.replaceChildren(...answer.ideas.map((idea, i) => ideaSection(idea, i, actions)));
  ui.passageWhole.hidden = false;
  renderResults(answer.whole, actions);
  ui.passageNote.textContent = notes({ ...answer, truncated: answer.truncated || cut });
  ui.passage.dataset.state = 'done';
  const ideas = answer.ideas.length;
  ui.status.textContent = `${ideas} idea${ideas === 1 ? '' : 's'} from ${answer.sentences} sentence${answer.sentences === 1 ? '' : 's'}, `
    + `${K_IDEA} pictures each (each picture once), and ${answer.whole.length} for the whole passage · `
    + `${answer.ms.toFixed(0)} ms in the model, ${(performance.now() - t0).toFixed(0)} ms in all`;
  document.title = `${answer.ideas[0]?.text.slice(0, 60) || 'Your text'} — imgpick`;
}

/** What was left out of the passage, in words ('' when nothing). */
function notes({ truncated, sentences, total, withoutWords }) {
  const out = [];
  if (truncated) {
    out.push(`Your text is ${kb(truncated.bytes)}; its first ${truncated.kept.toLocaleString('en')} bytes (to a paragraph or sentence end)`
      + ` were read, and are what the box holds — at most ${MAX_PASSAGE_BYTES.toLocaleString('en')} are read at once, so search the rest separately.`);
  }
  if (total > sentences) {
    out.push(`${truncated ? 'Of that part\'s' : 'Of its'} ${total.toLocaleString('en')} sentences, the first ${sentences} were searched (at most ${MAX_SENTENCES} at once).`);
  }
  if (withoutWords) out.push(`${withoutWords} sentence${withoutWords === 1 ? '' : 's'} without words (emoji, symbols or markup only) ${withoutWords === 1 ? 'was' : 'were'} skipped.`);
  return out.join(' ');
}

/** One idea: which sentences, their text, and its pictures. */
function ideaSection(idea, i, actions) {
  const which = idea.first === idea.last ? `Sentence ${idea.first + 1}` : `Sentences ${idea.first + 1}–${idea.last + 1}`;
  const quote = idea.text.length > 320 ? `${idea.text.slice(0, 317)}…` : idea.text;
  const top = idea.results.length ? idea.results[0].score : 1;
  const list = el('ol', { class: 'results idea-results', 'aria-label': `Pictures for ${which.toLowerCase()}` },
    ...idea.results.map((r, rank) => resultItem(r, rank, top, { open: actions.open, moreLike: actions.moreLike })));
  if (!idea.results.length) list.append(el('li', { class: 'idea-empty', text: 'No picture left: each is suggested for one idea only, and earlier ideas took those that fit.' }));
  return el('section', { class: 'idea', 'data-idea': String(i), 'data-first': String(idea.first), 'data-last': String(idea.last) },
    el('h3', { class: 'idea-title' }, el('span', { class: 'idea-which', text: which }), el('q', { class: 'idea-text', text: quote })),
    list);
}
