// A board shared as a link: `?board=3,17,5` — the ids of gallery pictures, in the board's order. Ids are all a
// link needs: whoever opens it has the same gallery, which holds each picture's caption, thumbnail and credit.
// The user's own photos never leave their device, and a pin whose gallery was republished has no id worth
// sending, so both stay out of the link (`shareable`). Pure (tests/page/board-link.test.mjs).

export const BOARD_PARAM = 'board';
/** At most this many pictures in a link: ~1,400 characters of ids at the default gallery's sizes, well under the
 *  2,000 that some chat apps and mail clients cut links at. */
export const MAX_SHARED = 200;

/** `?board=`'s value → `{ ids, error }`: the distinct ids in order (a repeat is dropped), or an error naming
 *  what is wrong (ids are whole numbers separated by commas). An empty value is an empty board. */
export function parseBoardParam(value) {
  if (value === null || value === undefined) return { ids: null, error: null };
  const parts = String(value).split(',').map((s) => s.trim()).filter((s) => s !== '');
  const bad = parts.find((s) => !/^\d{1,9}$/.test(s));
  if (bad !== undefined) {
    return { ids: [], error: `the shared board's link is damaged: “${bad.slice(0, 24)}” is not a picture number` };
  }
  const ids = [...new Set(parts.map(Number))];
  if (ids.length > MAX_SHARED) {
    return { ids: ids.slice(0, MAX_SHARED), error: `the shared board names ${ids.length} pictures; the first ${MAX_SHARED} are shown` };
  }
  return { ids, error: null };
}

/** Pins that a link can carry: gallery pictures whose gallery has not changed since they were pinned. */
export const shareable = (pin) => !pin.mine && !pin.changed && Number.isInteger(pin.id);

/** The `board` parameter for `pins` (the shareable ones, in order, at most MAX_SHARED): '3,17,5'. */
export function boardParam(pins) {
  return pins.filter(shareable).slice(0, MAX_SHARED).map((p) => p.id).join(',');
}
