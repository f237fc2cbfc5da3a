// A search's refinement as the page keeps it (pure; issue #20): 👍/👎 marks, layout filters (orientation, minimum
// size, licence), near-duplicate grouping and "more varied" — read from and written to a share link with the
// parameter names the engine and /api/search read (wasm-model workflow::Refinement::from_params): `up=3.17`
// (ids joined by dots, which a URL keeps unescaped), `down=5`, `orient=landscape|portrait|square`, `min=800`,
// `lic=pd|commercial|nosa`, `collapse=0` (the page groups near-duplicates unless told not to), `vary=1`.

/** Marks of each kind a query takes (workflow::feedback::MAX_MARKS). */
export const MAX_MARKS = 50;
/** Relevance feedback (workflow::feedback, Rocchio): q' = normalise(α·q + β·mean(👍) − γ·mean(👎)). */
export const ROCCHIO = Object.freeze({ alpha: 1, beta: 0.75, gamma: 0.15 });
export const ORIENTATIONS = Object.freeze({ landscape: 'Landscape', portrait: 'Portrait', square: 'Square' });
export const LICENCE_NEEDS = Object.freeze({
  pd: 'Public domain / CC0 only',
  commercial: 'Allows commercial use',
  nosa: 'Commercial use, no share-alike',
});
/** The minimum sizes offered (both sides, pixels); a link may carry any size from 1 to 100,000. */
export const MIN_SIDES = Object.freeze([640, 1024, 1600, 2400]);
const MAX_MIN_SIDE = 100_000;

/** The plain ranking's refinement (what a link without these parameters means). */
export const plainRefinement = () => ({ up: [], down: [], orient: '', min: null, lic: '', collapse: true, vary: false });

/** The refinement a link's `URLSearchParams` carries: `{ ...refinement, problems }` — a value the engine would
 *  refuse is left out, and `problems` says which and why (the page shows it). */
export function readRefinement(params) {
  const r = plainRefinement();
  const problems = [];
  const ids = (name) => {
    const raw = params.get(name);
    if (raw === null || raw === '') return [];
    const out = [];
    for (const part of raw.split(/[.,]/).map((p) => p.trim()).filter(Boolean)) {
      if (!/^\d{1,9}$/.test(part)) { problems.push(`${name}=${raw}: picture ids are whole numbers separated by dots`); return []; }
      const id = Number(part);
      if (!out.includes(id)) out.push(id);
    }
    if (out.length > MAX_MARKS) problems.push(`${name}: ${out.length} marks, only the first ${MAX_MARKS} are taken`);
    return out.slice(0, MAX_MARKS);
  };
  r.up = ids('up');
  r.down = ids('down').filter((id) => {
    if (!r.up.includes(id)) return true;
    problems.push(`picture ${id} is both liked and disliked: kept as liked`);
    return false;
  });
  const orient = params.get('orient');
  if (orient) {
    if (orient in ORIENTATIONS) r.orient = orient;
    else problems.push(`orient=${orient}: orientation is landscape, portrait or square`);
  }
  const min = params.get('min');
  if (min) {
    const n = /^\d+$/.test(min) ? Number(min) : NaN;
    if (n >= 1 && n <= MAX_MIN_SIDE) r.min = n;
    else problems.push(`min=${min}: the minimum size is a whole number of pixels from 1 to ${MAX_MIN_SIDE.toLocaleString('en')}`);
  }
  const lic = params.get('lic');
  if (lic) {
    if (lic in LICENCE_NEEDS) r.lic = lic;
    else problems.push(`lic=${lic}: the licence filter is pd (public domain / CC0), commercial or nosa`);
  }
  const flag = (name, fallback) => {
    const v = params.get(name);
    if (v === null) return fallback;
    if (['1', 'true', 'yes', ''].includes(v)) return true;
    if (['0', 'false', 'no'].includes(v)) return false;
    problems.push(`${name}=${v}: use 1 or 0`);
    return fallback;
  };
  r.collapse = flag('collapse', true);
  r.vary = flag('vary', false);
  return { ...r, problems };
}

/** Writes `r` into a link's `URLSearchParams` `p` (only what differs from the plain ranking). */
export function writeRefinement(r, p) {
  if (r.up.length) p.set('up', r.up.join('.'));
  if (r.down.length) p.set('down', r.down.join('.'));
  if (r.orient) p.set('orient', r.orient);
  if (r.min) p.set('min', String(r.min));
  if (r.lic) p.set('lic', r.lic);
  if (!r.collapse) p.set('collapse', '0');
  if (r.vary) p.set('vary', '1');
  return p;
}

/** The parameters the search worker passes to the engine (or /api/search): every one explicit, `collapse`
 *  included (the API's default is not to collapse). */
export function engineParams(r) {
  const p = writeRefinement({ ...r, collapse: true }, new URLSearchParams());
  p.set('collapse', r.collapse ? '1' : '0');
  return p.toString();
}

/** `r` with picture `id` marked `kind` ('up' | 'down'), or unmarked when it already was; a picture is liked or
 *  disliked, never both. Refuses (returns `r` and a reason) past MAX_MARKS. */
export function toggleMark(r, id, kind) {
  const other = kind === 'up' ? 'down' : 'up';
  if (r[kind].includes(id)) return { refinement: { ...r, [kind]: r[kind].filter((x) => x !== id) }, refused: null };
  if (r[kind].length >= MAX_MARKS) return { refinement: r, refused: `at most ${MAX_MARKS} pictures can be marked ${kind === 'up' ? '👍' : '👎'}; clear some first` };
  return { refinement: { ...r, [kind]: [...r[kind], id], [other]: r[other].filter((x) => x !== id) }, refused: null };
}

/** Whether `r` filters by layout. */
export const hasFilters = (r) => Boolean(r.orient || r.min || r.lic);

/** The filters and variety in words ('' for none), e.g. "landscape · both sides ≥ 1024 px · public domain / CC0 only". */
export function describeFilters(r) {
  return [
    r.orient && ORIENTATIONS[r.orient].toLowerCase(),
    r.min && `both sides ≥ ${r.min.toLocaleString('en')} px`,
    r.lic && LICENCE_NEEDS[r.lic].replace(/ only$/, '').replace(/^./, (c) => c.toLowerCase()),
    r.vary && 'more varied',
    !r.collapse && 'near-duplicates shown',
  ].filter(Boolean).join(' · ');
}

/** How the marks move the search, in words ('' without marks). */
export function describeMarks(r) {
  if (!r.up.length && !r.down.length) return '';
  const { beta, gamma } = ROCCHIO;
  const parts = [];
  if (r.up.length) parts.push(`towards the ${r.up.length} 👍 (+${beta} × their mean picture vector)`);
  if (r.down.length) parts.push(`away from the ${r.down.length} 👎 (−${gamma} × theirs; they are left out)`);
  return `Your marks move the search ${parts.join(' and ')}; the words count 1.`;
}
