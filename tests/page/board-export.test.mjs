// The board's credit exports in Node (static/page/board-export.js): Markdown escaped so a caption cannot become
// markup or a link, link destinations safe, CSV per RFC 4180 and safe from formula injection, the same credit
// parts as the viewer's "Copy credit" (credit.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const STATIC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../static');
const { boardMarkdown, boardCsv, markdownCredit, markdownText, markdownUrl, csvField, creditFields, CSV_COLUMNS } =
  await import(pathToFileURL(path.join(STATIC, 'page/board-export.js')).href);

const HAWK = { key: 'gallery:a/hawk.jpg', id: 3, file: 'a/hawk.jpg', caption: 'a hawk flying with its wings spread',
  source: 'Jane Doe, via GCompris (Debian gcompris-qt-data)', licence: 'CC-BY-SA-4.0',
  url: 'https://commons.wikimedia.org/wiki/File:Hawk_(1).jpg' };
const FISH = { key: 'gallery:b/fish.jpg', id: 9, file: 'b/fish.jpg', caption: 'a wrasse', source: 'S. Guerrieri', licence: 'Public-Domain', url: '' };

/** Parses RFC 4180 CSV (quoted fields, doubled quotes, CRLF rows): what a spreadsheet reads. */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let i = 0;
  let quoted = false;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 2; continue; }
      if (c === '"') { quoted = false; i++; continue; }
      field += c; i++; continue;
    }
    if (c === '"') { assert.equal(field, '', 'a quote only opens a field'); quoted = true; i++; continue; }
    if (c === ',') { row.push(field); field = ''; i++; continue; }
    if (c === '\r' && text[i + 1] === '\n') { row.push(field); rows.push(row); row = []; field = ''; i += 2; continue; }
    assert.ok(c !== '\n' && c !== '\r', `a bare line break outside quotes at ${i}`);
    field += c; i++;
  }
  assert.equal(quoted, false, 'an unterminated quoted field');
  assert.deepEqual(row, [], 'the last row ends with CRLF');
  return rows;
}

test('Markdown: a numbered list in the board\'s order, licence and picture as links', () => {
  const md = boardMarkdown([HAWK, FISH]);
  const lines = md.split('\n');
  assert.equal(lines[0], '# Picture credits');
  assert.equal(lines[1], '');
  assert.equal(lines[2], '1. “a hawk flying with its wings spread” — Jane Doe, via GCompris (Debian gcompris-qt-data) — '
    + '[CC BY-SA 4.0](https://creativecommons.org/licenses/by-sa/4.0/) — [picture](https://commons.wikimedia.org/wiki/File:Hawk_%281%29.jpg)');
  assert.equal(lines[3], '2. “a wrasse” — S. Guerrieri — public domain', 'no licence page, no picture page: plain text');
  assert.equal(lines.length, 5);
  assert.equal(lines[4], '');
});

test('Markdown: captions and sources cannot become markup, HTML or links', () => {
  const hostile = { ...HAWK, caption: '*bold* _it_ `code` [x](javascript:alert(1)) <img src=x onerror=alert(1)> &amp; ~~s~~ | ! #',
    source: 'line one\n# heading\n- item' };
  const line = markdownCredit(hostile);
  assert.ok(!line.includes('\n'), 'one line: a caption cannot open a heading or a list');
  const title = line.slice(0, line.indexOf('” — '));
  for (const special of '*_`[]<>&~|!#') {
    assert.ok(new RegExp(`(?<!\\\\)\\${special}`).test(title) === false, `every ${special} escaped in ${title}`);
  }
  assert.match(line, /\\\*bold\\\* \\_it\\_ \\`code\\` \\\[x\\\]\(javascript:alert\(1\)\) \\<img src=x onerror=alert\(1\)\\> \\&amp; \\~\\~s\\~\\~ \\\| \\! \\#/);
  assert.match(line, /line one \\# heading - item/);
  assert.equal(markdownText('a\\b'), 'a\\\\b', 'a backslash is escaped first, so it cannot escape the next');
});

test('Markdown: only http(s) links, with parentheses and spaces percent-encoded', () => {
  assert.equal(markdownUrl('javascript:alert(1)'), '');
  assert.equal(markdownUrl('data:text/html,<b>x</b>'), '');
  assert.equal(markdownUrl('not a url'), '');
  assert.equal(markdownUrl('https://example.org/a b(c)<d>'), 'https://example.org/a%20b%28c%29%3Cd%3E');
  const evil = markdownCredit({ ...FISH, url: 'javascript:alert(1)', licence: 'CC0-1.0' });
  assert.equal(evil, '“a wrasse” — S. Guerrieri — [CC0 1.0](https://creativecommons.org/publicdomain/zero/1.0/)');
  assert.equal(markdownCredit({ key: 'k', caption: 'x' }), '“x” — licence unknown');
});

test('CSV: RFC 4180 — a header, every field quoted, quotes doubled, CRLF rows; commas and line breaks survive', () => {
  const tricky = { ...HAWK, caption: 'a "quoted", comma\nand a new line', source: 'Ünïcødé — ✓' };
  const csv = boardCsv([tricky, FISH]);
  assert.ok(csv.endsWith('\r\n'));
  const rows = parseCsv(csv);
  assert.deepEqual(rows[0], CSV_COLUMNS);
  assert.deepEqual(CSV_COLUMNS, ['title', 'source', 'licence', 'licence_url', 'link']);
  assert.deepEqual(rows[1], ['a "quoted", comma\nand a new line', 'Ünïcødé — ✓', 'CC BY-SA 4.0',
    'https://creativecommons.org/licenses/by-sa/4.0/', 'https://commons.wikimedia.org/wiki/File:Hawk_(1).jpg']);
  assert.deepEqual(rows[2], ['a wrasse', 'S. Guerrieri', 'public domain', '', '']);
  assert.equal(rows.length, 3);
});

test('CSV: cells that a spreadsheet would run as a formula start with an apostrophe', () => {
  for (const start of ['=', '+', '-', '@', '\t', '\r']) {
    const cell = `${start}HYPERLINK("http://evil.example","click")`;
    assert.equal(csvField(cell), `"'${cell.replace(/"/g, '""')}"`, JSON.stringify(start));
  }
  assert.equal(csvField('a = b'), '"a = b"', 'only a leading sign counts');
  assert.equal(csvField(''), '""');
  assert.equal(csvField(null), '""');
  const rows = parseCsv(boardCsv([{ ...FISH, caption: '=1+1', source: '@SUM(A1)' }]));
  assert.deepEqual(rows[1].slice(0, 2), ["'=1+1", "'@SUM(A1)"]);
});

test('the user\'s own photos are listed as such, with no licence or link', () => {
  const mine = { key: 'mine:holiday/beach.jpg', id: 900, mine: true, path: 'holiday/beach.jpg', caption: 'beach.jpg' };
  assert.deepEqual(creditFields(mine), { title: 'beach.jpg', source: 'your own photo', licence: '', licenceUrl: '', link: '' });
  assert.equal(markdownCredit(mine), '“beach.jpg” — your own photo');
  assert.deepEqual(parseCsv(boardCsv([mine]))[1], ['beach.jpg', 'your own photo', '', '', '']);
});

test('an empty board exports a heading and a header row', () => {
  assert.equal(boardMarkdown([]), '# Picture credits\n\n\n');
  assert.equal(boardCsv([]), '"title","source","licence","licence_url","link"\r\n');
});
