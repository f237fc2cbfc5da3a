// The shareable URL ↔ `state`: `?q=` the prompt, `like=` a picture id for "more like this", `in=` the scope, the
// refinement (`up=`, `down=`, `orient=`, `min=`, `lic=`, `collapse=`, `vary=`: refine.js) and, in passage mode,
// the pasted text compressed in the fragment (`#text=`, which no server sees: passage.js writes `state.passageLink`).
import { state, SCOPES } from './state.js';
import { ui } from './ui.js';
import { parseBoardParam, BOARD_PARAM } from './board-link.js';
import { readRefinement, writeRefinement } from './refine.js';

/** Sets `state` (and the search box and scope radios) from the address bar. `state.refineProblems` lists the
 *  refinement values the link carried that cannot be used (shown in the status line). */
export function readUrl() {
  const p = new URLSearchParams(location.search);
  state.query = p.get('q') || '';
  const like = p.get('like');
  state.like = like !== null && /^\d+$/.test(like) ? Number(like) : null;
  const scope = p.get('in');
  state.scope = SCOPES.includes(scope) ? scope : 'all';
  const { problems, ...refine } = readRefinement(p);
  state.refine = refine;
  state.refineProblems = problems;
  const board = parseBoardParam(p.get(BOARD_PARAM)); // a shared board (board.js shows it)
  state.sharedBoard = board.ids === null ? null : board;
  ui.input.value = state.query;
  for (const r of ui.scope.querySelectorAll('input')) r.checked = r.value === state.scope;
}

/** The page's URL for the current `state`. */
export function urlFor() {
  const p = new URLSearchParams();
  if (state.query && state.passage === null) p.set('q', state.query);
  if (state.like !== null) p.set('like', String(state.like));
  if (state.scope !== 'all') p.set('in', state.scope);
  writeRefinement(state.refine, p);
  // The board's ids keep their commas: `board=3,17,5` reads better than `board=3%2C17%2C5` in a shared link.
  const qs = [p.toString(), state.sharedBoard ? `${BOARD_PARAM}=${state.sharedBoard.ids.join(',')}` : ''].filter(Boolean).join('&');
  const fragment = state.passage !== null && state.passageLink ? `#text=${state.passageLink}` : '';
  return `${location.pathname}${qs ? `?${qs}` : ''}${fragment}`;
}

/** Puts the current `state` in the address bar: a new history entry when `push`, else replacing this one. */
export function writeUrl(push) {
  const url = urlFor();
  if (url === `${location.pathname}${location.search}${location.hash}`) return;
  history[push ? 'pushState' : 'replaceState'](null, '', url);
}
