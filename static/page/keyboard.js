// Keyboard use: "/" focuses the search box, arrow keys move from the box into the results and across the grid.
import { ui } from './ui.js';

export function initKeyboard() {
  document.addEventListener('keydown', (e) => {
    if (e.key === '/' && document.activeElement !== ui.input && !ui.viewer.open) {
      e.preventDefault();
      ui.input.focus();
      ui.input.select();
    }
  });
  ui.input.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown') { e.preventDefault(); ui.results.querySelector('button.thumb')?.focus(); }
  });
  ui.results.addEventListener('keydown', (e) => {
    const thumbs = [...ui.results.querySelectorAll('button.thumb')];
    const at = thumbs.indexOf(document.activeElement);
    if (at < 0) return;
    // Columns in the current layout: count the thumbs on the first row.
    const top0 = thumbs[0].getBoundingClientRect().top;
    const cols = Math.max(1, thumbs.filter((t) => Math.abs(t.getBoundingClientRect().top - top0) < 4).length);
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols }[e.key];
    if (!step) return;
    e.preventDefault();
    const next = at + step;
    if (next < 0) ui.input.focus();
    else thumbs[Math.min(next, thumbs.length - 1)].focus();
  });
}
