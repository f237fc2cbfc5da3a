// The user's photos as the page knows them: their count and id range (ids `firstId .. firstId + count`; the
// search worker holds everything else), plus the names and thumbnails of the photos the page has shown, asked
// for when a result list needs them and kept for the last KEEP (a thumbnail's blob: URL is revoked when it goes).
// So 100,000 indexed photos cost the page almost nothing. Read like a Map where the page reads it: `size`,
// `has(id)`, `get(id)` → `{ name, path, thumbUrl }`.

const KEEP = 600; // far more than one result list shows, so the photos on screen are never the ones let go

export class MyPhotoIndex {
  constructor() {
    this.firstId = 0;
    this.count = 0;
    this.known = new Map(); // id → { name, path, thumbUrl }, oldest first
  }

  get size() { return this.count; }

  has(id) { return Number.isInteger(id) && id >= this.firstId && id < this.firstId + this.count; }

  /** The photo's name, path and thumbnail URL, if the page has them. */
  get(id) {
    const photo = this.known.get(id);
    if (photo) { this.known.delete(id); this.known.set(id, photo); } // now the most recently used
    return photo;
  }

  /** The photos are now ids `firstId .. firstId + count` (more were added, or the index was restored). */
  setRange(firstId, count) {
    this.firstId = firstId;
    this.count = count;
  }

  /** Of `ids`, the user's photos the page has no name for yet. */
  missing(ids) { return [...new Set(ids)].filter((id) => this.has(id) && !this.known.has(id)); }

  /** Keeps `photos` (`[{ id, name, path, thumb: Blob | null }]`, the search worker's `describePhotos`). */
  remember(photos) {
    for (const { id, name, path, thumb } of photos) {
      this.#forget(id);
      this.known.set(id, { name, path: path || name, thumbUrl: thumb ? URL.createObjectURL(thumb) : '' });
    }
    for (const id of this.known.keys()) {
      if (this.known.size <= KEEP) break;
      this.#forget(id);
    }
  }

  #forget(id) {
    const old = this.known.get(id);
    if (old?.thumbUrl) URL.revokeObjectURL(old.thumbUrl);
    this.known.delete(id);
  }

  /** No photos any more. */
  clear() {
    for (const id of [...this.known.keys()]) this.#forget(id);
    this.count = 0;
  }
}
