// The user's indexed photos kept on this device: one IndexedDB record per photo, `{ key, modelId, name, path,
// size, lastModified, seq, vector, thumb, addedAt }`. The photos themselves are never stored, only their vectors
// and small thumbnails; nothing here is sent anywhere.

const DB_NAME = 'imgpick-mine';
const STORE = 'photos';

function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'key' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error('the photo index is open in an older tab'));
  });
}
let dbPromise = null;
const db = () => (dbPromise ??= openDb());

// Runs fn(store) in one transaction; resolves with fn's request result (if any) when the transaction commits.
async function withStore(mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction(STORE, mode);
    const req = fn(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(req?.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error('transaction aborted'));
  });
}

export const allRecords = () => withStore('readonly', (s) => s.getAll());
export const putRecord = (record) => withStore('readwrite', (s) => s.put(record));
export const deleteRecords = (keys) => withStore('readwrite', (s) => { for (const k of keys) s.delete(k); });
export const clearRecords = () => withStore('readwrite', (s) => s.clear());
