// The user's indexed photos kept on this device (IndexedDB `imgpick-mine`, version 2). Built for 100,000 photos:
// - `chunks`: up to CHUNK photos per record, `{ id, modelId, dim, photos: [{ key, name, path, size,
//   lastModified }], codes: Int8Array (photos × dim), scales: Float32Array }` — the int8 rows the engine keeps
//   (Engine.quantize), so a restore is a few hundred bulk `add_quantized` calls instead of 100,000 records read
//   and added one by one. Chunk ids give the photos' order, so their ids are stable across reloads.
// - `thumbs`: one small JPEG Blob per photo, keyed by the photo's key; read only for the photos on screen.
// - `folders`: folders picked with the File System Access API, `{ id, name, handle }`, so an interrupted add can
//   continue after a reload (Chromium; the handle needs the user's permission again).
// - `photos`: version 1's one record per photo (f32 vector + thumbnail); read once to migrate, then emptied.
// The photos themselves are never stored, only their vectors and thumbnails; nothing here is sent anywhere.

const DB_NAME = 'imgpick-mine';
const VERSION = 2;
/** Photos per chunk record: ~0.6 MB each at 512 dimensions (codes + names). */
export const CHUNK = 1024;

function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains('photos')) db.createObjectStore('photos', { keyPath: 'key' }); // version 1's
      db.createObjectStore('chunks', { keyPath: 'id' });
      db.createObjectStore('thumbs');
      db.createObjectStore('folders', { keyPath: 'id' });
    };
    req.onsuccess = () => {
      // Another tab with a newer version asks this one to let go.
      req.result.onversionchange = () => { req.result.close(); dbPromise = null; };
      resolve(req.result);
    };
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error('the photo index is open in an older tab: close it and reload'));
  });
}
let dbPromise = null;
const db = () => (dbPromise ??= openDb().catch((e) => { dbPromise = null; throw e; }));

// Runs fn(stores) in one transaction over `names`; resolves with fn's result (a request's result, if it is one)
// when the transaction commits.
async function transaction(names, mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction(names, mode);
    const stores = Object.fromEntries([names].flat().map((n) => [n, tx.objectStore(n)]));
    const out = fn(stores);
    tx.oncomplete = () => resolve(out instanceof IDBRequest ? out.result : out);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error('transaction aborted'));
  });
}

/** Calls `visit(chunk)` for every chunk record in id order, one at a time (a cursor: 100,000 photos never sit in
 *  memory twice). */
export async function eachChunk(visit) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const req = d.transaction('chunks').objectStore('chunks').openCursor();
    req.onsuccess = () => {
      const cursor = req.result;
      if (!cursor) { resolve(); return; }
      try { visit(cursor.value); } catch (e) { reject(e); return; }
      cursor.continue();
    };
    req.onerror = () => reject(req.error);
  });
}

/** How many chunk records there are (a restore makes room for that many full chunks first). */
export const chunkCount = () => transaction('chunks', 'readonly', (s) => s.chunks.count());

/** Writes a chunk record and the thumbnails of its new photos (`thumbs`: [[key, Blob]]) in one transaction, so a
 *  reload never finds a photo without its thumbnail. */
export const putChunk = (chunk, thumbs = []) => transaction(['chunks', 'thumbs'], 'readwrite', (s) => {
  s.chunks.put(chunk);
  for (const [key, blob] of thumbs) if (blob) s.thumbs.put(blob, key);
});

/** Deletes chunk records by id and the thumbnails of `keys`. */
export const deleteChunks = (ids, keys) => transaction(['chunks', 'thumbs'], 'readwrite', (s) => {
  for (const id of ids) s.chunks.delete(id);
  for (const key of keys) s.thumbs.delete(key);
});

/** The thumbnails of `keys` (Blob or null each, in order). */
export const thumbsOf = (keys) => transaction('thumbs', 'readonly', (s) => {
  const out = new Array(keys.length).fill(null);
  keys.forEach((key, i) => { s.thumbs.get(key).onsuccess = (e) => { out[i] = e.target.result || null; }; });
  return out;
});

/** Version 1's records (one per photo), oldest first; [] once migrated. */
export const legacyRecords = () => transaction('photos', 'readonly', (s) => s.photos.getAll())
  .then((all) => all.sort((a, b) => a.seq - b.seq));
export const clearLegacy = () => transaction('photos', 'readwrite', (s) => s.photos.clear());

/** Forgets every photo (chunks, thumbnails, version 1's records) and every remembered folder. */
export const clearAll = () => transaction(['chunks', 'thumbs', 'photos', 'folders'], 'readwrite', (s) => {
  for (const store of Object.values(s)) store.clear();
});

/** Folders picked with the File System Access API: `{ id, name, handle }`. */
export const folders = () => transaction('folders', 'readonly', (s) => s.folders.getAll());
export const putFolder = (folder) => transaction('folders', 'readwrite', (s) => s.folders.put(folder));
export const deleteFolder = (id) => transaction('folders', 'readwrite', (s) => s.folders.delete(id));
