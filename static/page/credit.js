// A ready-made credit line for a gallery picture — what it shows, who made it and where it comes from, its licence
// (with the licence's page) and the picture's own page — as a writer pastes it under a picture they use. Pure (no
// DOM), so tests/page/credit.test.mjs checks it in Node; the viewer's "Copy credit" button copies it.

/** SPDX ids the galleries use → how a credit names the licence and where it is written down. */
const LICENCES = {
  'CC0-1.0': ['CC0 1.0', 'https://creativecommons.org/publicdomain/zero/1.0/'],
  'CC-BY-2.0': ['CC BY 2.0', 'https://creativecommons.org/licenses/by/2.0/'],
  'CC-BY-3.0': ['CC BY 3.0', 'https://creativecommons.org/licenses/by/3.0/'],
  'CC-BY-4.0': ['CC BY 4.0', 'https://creativecommons.org/licenses/by/4.0/'],
  'CC-BY-SA-3.0': ['CC BY-SA 3.0', 'https://creativecommons.org/licenses/by-sa/3.0/'],
  'CC-BY-SA-4.0': ['CC BY-SA 4.0', 'https://creativecommons.org/licenses/by-sa/4.0/'],
  'GPL-2.0-or-later': ['GPL 2.0 or later', 'https://www.gnu.org/licenses/old-licenses/gpl-2.0.html'],
  'LGPL-3.0-only': ['LGPL 3.0', 'https://www.gnu.org/licenses/lgpl-3.0.html'],
  'GFDL-1.2-or-later': ['GFDL 1.2 or later', 'https://www.gnu.org/licenses/old-licenses/fdl-1.2.html'],
  MIT: ['MIT licence', 'https://opensource.org/license/mit'],
  'Public-Domain': ['public domain', ''],
};

/** The licence as a credit names it, `{ name: 'CC BY-SA 4.0', url: 'https://…' }` (the id as its name and no
 *  url when it is not in the table). */
export function licenceInfo(id) {
  const [name, url] = LICENCES[id] || [id, ''];
  return { name, url };
}

/** The licence as a credit names it: `CC BY-SA 4.0 (https://…)`, or the id as given when it is not in the table. */
export function licenceText(id) {
  const { name, url } = licenceInfo(id);
  return url ? `${name} (${url})` : name;
}

/** What a credit is made of, each trimmed (empty when the picture lacks it): the caption, the source (author and
 *  where from), the licence id, and the picture's own page (http(s) only). The board's exports
 *  (board-export.js) lay these out as Markdown and CSV. */
export function creditParts(picture) {
  return {
    caption: (picture.caption || '').trim(),
    source: (picture.source || '').trim(),
    licence: (picture.licence || '').trim(),
    link: picture.url && /^https?:\/\//.test(picture.url) ? picture.url : '',
  };
}

/** `“caption” — source — licence — link`, leaving out what the picture does not have. */
export function creditLine(picture) {
  const { caption, source, licence, link } = creditParts(picture);
  return [caption && `“${caption}”`, source, licence ? licenceText(licence) : 'licence unknown', link]
    .filter(Boolean)
    .join(' — ');
}
