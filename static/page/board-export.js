// The board's credit lines as a writer takes them away: Markdown (a numbered list to paste under an article) and
// CSV (title, source, licence, licence_url, link: one row per picture, for a spreadsheet or a CMS import). Built
// from credit.js's parts, so the viewer's "Copy credit" and the exports say the same thing. The formats are pure
// (tests/page/board-export.test.mjs); `download` and `copy` at the end are the browser's side.
import { creditParts, licenceInfo } from './credit.js';

/** A pin's credit in fields: `{ title, source, licence, licenceUrl, link }` (strings, '' when unknown). The
 *  user's own photos are named as such: they need no credit, but a writer's list should still show them. */
export function creditFields(pin) {
  if (pin.mine) return { title: pin.caption || pin.path || '', source: 'your own photo', licence: '', licenceUrl: '', link: '' };
  const { caption, source, licence, link } = creditParts(pin);
  const { name, url } = licence ? licenceInfo(licence) : { name: '', url: '' };
  return { title: caption, source, licence: name, licenceUrl: url, link };
}

// ---- Markdown ----------------------------------------------------------------------------------------------

// Characters that would make a caption or source into markup (emphasis, code, links, HTML, entities) are
// backslash-escaped; line breaks become spaces, so a caption cannot start a new block (a heading, a list).
const MARKDOWN_SPECIAL = /[\\`*_[\]<>|~&!#]/g;

/** `text` as literal Markdown text on one line. */
export function markdownText(text) {
  return String(text).replace(/\s+/g, ' ').trim().replace(MARKDOWN_SPECIAL, (c) => `\\${c}`);
}

/** An http(s) URL made safe as a Markdown link destination (parentheses and spaces percent-encoded), or '' for
 *  anything else (javascript:, data:, a malformed address). */
export function markdownUrl(url) {
  let parsed;
  try { parsed = new URL(url); } catch { return ''; }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return '';
  return parsed.href.replace(/[()<> ]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

const mdLink = (text, url) => {
  const safe = markdownUrl(url);
  return safe ? `[${markdownText(text)}](${safe})` : markdownText(text);
};

/** One pin's credit as a line of Markdown: `“title” — source — [licence](its page) — [picture](link)`. */
export function markdownCredit(pin) {
  const f = creditFields(pin);
  return [
    f.title && `“${markdownText(f.title)}”`,
    f.source && markdownText(f.source),
    pin.mine ? '' : f.licence ? mdLink(f.licence, f.licenceUrl) : 'licence unknown',
    f.link && mdLink('picture', f.link),
  ].filter(Boolean).join(' — ');
}

/** The whole board as a Markdown document: a heading and a numbered list, in the board's order. */
export function boardMarkdown(pins, heading = 'Picture credits') {
  const lines = pins.map((pin, i) => `${i + 1}. ${markdownCredit(pin)}`);
  return `# ${markdownText(heading)}\n\n${lines.join('\n')}\n`;
}

// ---- CSV (RFC 4180) ----------------------------------------------------------------------------------------

export const CSV_COLUMNS = ['title', 'source', 'licence', 'licence_url', 'link'];

// A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection"): such cells get a
// leading apostrophe, which spreadsheets show as text. Tab and carriage return are on OWASP's list too.
const FORMULA_START = /^[=+\-@\t\r]/;

/** One CSV field: formula-safe, always quoted, quotes doubled (RFC 4180 §2.5–2.7). */
export function csvField(value) {
  let text = String(value ?? '');
  if (FORMULA_START.test(text)) text = `'${text}`;
  return `"${text.replace(/"/g, '""')}"`;
}

/** The board as CSV: a header row, then one row per pin in the board's order; CRLF line ends (RFC 4180 §2.1). */
export function boardCsv(pins) {
  const rows = [CSV_COLUMNS, ...pins.map((pin) => {
    const f = creditFields(pin);
    return [f.title, f.source, f.licence, f.licenceUrl, f.link];
  })];
  return rows.map((row) => row.map(csvField).join(',')).join('\r\n') + '\r\n';
}

// ---- to the user -------------------------------------------------------------------------------------------

/** Downloads `text` as a file named `filename`. A CSV gets a byte-order mark: without one, Excel reads UTF-8 as
 *  a legacy code page and garbles every accent and curly quote. */
export function download(filename, text, type) {
  const bom = type === 'text/csv' ? '\ufeff' : '';
  const url = URL.createObjectURL(new Blob([bom, text], { type: `${type};charset=utf-8` }));
  const a = Object.assign(document.createElement('a'), { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000); // after the browser has started the download
}

/** Copies `text` to the clipboard; false when the browser refuses (no permission, an insecure origin). */
export async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}
