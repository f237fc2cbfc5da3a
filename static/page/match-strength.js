// Strong and weaker matches. A calibrated model (manifest `retrieval.strong_match`, `trainer calibrate`) marks each
// result of a text query `strong` or not: results scoring at least the threshold are strong. They come first
// (they score higher); a "Weaker matches" divider goes before the first weaker one, which are dimmed, and a note
// says so when no result is strong. Results without the mark ("more like this", an uncalibrated model) get none.

/** `{ marked, strong, weaker }` of `results` ([{ id, score, strong? }] best first). */
export function strengthCounts(results) {
  const marked = results.length > 0 && results.every((r) => typeof r.strong === 'boolean');
  const strong = marked ? results.filter((r) => r.strong).length : 0;
  return { marked, strong, weaker: marked ? results.length - strong : 0 };
}

/** What the note above the results says (empty: no note). */
export function fitNote({ marked, strong, weaker }, query) {
  if (!marked) return '';
  if (!strong) {
    return `Nothing here fits “${query}” well: these ${weaker} pictures are the closest, and none is a strong match. `
      + 'Try other words, or fewer of them.';
  }
  return '';
}

/** Marks the rendered results in `list` (its `li.result` children, in `results`' order) strong or weaker, puts
 *  the divider before the first weaker one and fills `note` for `query`. */
export function showStrength(list, note, results, query) {
  const counts = strengthCounts(results);
  const items = [...list.querySelectorAll(':scope > li.result')];
  list.dataset.strong = counts.marked ? String(counts.strong) : '';
  items.forEach((li, i) => {
    const r = results[i];
    if (!counts.marked || !r) { delete li.dataset.strength; return; }
    li.dataset.strength = r.strong ? 'strong' : 'weaker';
    li.classList.toggle('weaker', !r.strong);
  });
  const firstWeaker = counts.marked && counts.strong > 0 ? items[counts.strong] : null;
  if (firstWeaker) firstWeaker.before(divider(list.ownerDocument, counts));
  const text = fitNote(counts, query);
  note.textContent = text;
  note.hidden = !text;
  return counts;
}

/** The row between the strong and the weaker matches (spans the grid). */
function divider(doc, { strong, weaker }) {
  const li = doc.createElement('li');
  li.className = 'weak-divider';
  li.setAttribute('role', 'separator');
  const title = doc.createElement('strong');
  title.textContent = 'Weaker matches';
  li.append(title, ` · ${weaker} more, below the strong-match score (${strong} above it)`);
  return li;
}
