// The board kept on this device: IndexedDB `imgpick-board`, version 1, one object store `boards` holding one
// record, `mine` = `{ format: 1, pins: [Pin], saved: ms since 1970 }`. One record, rewritten whole on each
// change: a board is tens of pins (a few KB), and a single put keeps the order and the pins consistent — a reload
// never sees half a reorder. Writes run one after another, so an older board never overwrites a newer one.
// A Pin holds what shows and credits the picture without the gallery (it survives a republish):
// `{ key, id, mine, file, thumb, caption, source, licence, url, gallery, changed }` (board.js makes them).
// Failures are thrown as errors that say what happened and what it means; the caller keeps the board in memory.

const DB_NAME = 'imgpick-board';
const VERSION = 1;
const STORE = 'boards';
const KEY = 'mine';
export const FORMAT = 1;

const FIELDS = { key: 'string', id: 'number', mine: 'boolean', file: 'string', thumb: 'string', caption: 'string',
  source: 'string', licence: 'string', url: 'string', path: 'string', gallery: 'string', changed: 'boolean' };

/** A stored record → `{ pins, dropped }`: the pins that have a key and fields of the right types, and how many
 *  were unreadable; no record is an empty board. Throws for a record of a newer format (a page loaded from an
 *  old cache must not overwrite the board of a newer one). Pure. */
export function decodeBoard(record) {
  if (record && Number.isInteger(record.format) && record.format > FORMAT) {
    throw new Error(`it was saved by a newer imgpick (board format ${record.format}): reload the page to get it`);
  }
  if (!record || record.format !== FORMAT || !Array.isArray(record.pins)) {
    return { pins: [], dropped: record && Array.isArray(record.pins) ? record.pins.length : 0 };
  }
  const pins = [];
  const seen = new Set();
  for (const raw of record.pins) {
    if (!raw || typeof raw.key !== 'string' || !raw.key || seen.has(raw.key)) continue;
    const pin = {};
    for (const [name, type] of Object.entries(FIELDS)) if (typeof raw[name] === type) pin[name] = raw[name];
    seen.add(pin.key);
    pins.push(pin);
  }
  return { pins, dropped: record.pins.length - pins.length };
}

/** Why IndexedDB failed, in words for the page: `what` (e.g. 'read', 'saved') and the browser's reason. */
function storeError(what, e) {
  const name = e?.name || '';
  const why = name === 'QuotaExceededError' ? 'this device has no room left for it'
    : name === 'VersionError' ? 'it was saved by a newer imgpick: reload the page to get it'
    : name === 'InvalidStateError' || name === 'SecurityError' ? 'this browser does not allow it here (a private window?)'
      : (e?.message || String(e || 'unknown error'));
  const error = new Error(`your board could not be ${what}: ${why}`);
  error.cause = e;
  return error;
}

export class BoardStore {
  /** `factory`: the IndexedDB factory (`indexedDB`; another for tests). */
  constructor(factory = globalThis.indexedDB) {
    this.factory = factory;
    this.dbPromise = null;
    this.queue = Promise.resolve(); // writes, in order
  }

  #open() {
    this.dbPromise ??= new Promise((resolve, reject) => {
      if (!this.factory) { reject(new Error('this browser has no IndexedDB')); return; }
      let req;
      try { req = this.factory.open(DB_NAME, VERSION); } catch (e) { reject(e); return; }
      req.onupgradeneeded = () => { if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE); };
      req.onsuccess = () => {
        // A newer page in another tab asks this one to let go; the next read or write opens it again.
        req.result.onversionchange = () => { req.result.close(); this.dbPromise = null; };
        resolve(req.result);
      };
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new Error('the board is open in an older imgpick tab: close it and reload'));
    }).catch((e) => { this.dbPromise = null; throw e; });
    return this.dbPromise;
  }

  async #run(mode, fn) {
    const db = await this.#open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error('the write was aborted'));
    });
  }

  /** The stored board: `{ pins, dropped }` (decodeBoard). Throws a page-ready error when it cannot be read. */
  async load() {
    try {
      return decodeBoard(await this.#run('readonly', (s) => s.get(KEY)));
    } catch (e) {
      throw storeError('read from this device', e);
    }
  }

  /** Stores `pins` as the board (after any write still running). Throws a page-ready error when it fails. */
  save(pins) {
    const record = { format: FORMAT, pins: pins.map((p) => ({ ...p })), saved: Date.now() };
    const write = this.queue.then(() => this.#run('readwrite', (s) => s.put(record, KEY)))
      .catch((e) => { throw storeError('saved on this device', e); });
    this.queue = write.catch(() => {}); // a failed write does not stop the next one
    return write;
  }
}
