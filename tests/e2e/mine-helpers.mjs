// Shared by the "My photos" browser tests (mine.test.mjs, mine-scale.test.mjs): the section's state, waiting for
// an add to end, files on disk, and what IndexedDB holds.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** The "My photos" section's data attributes (count, state, embedded, restored, last, …). */
export const mineState = (page) => page.evaluate(() => ({ ...document.getElementById('mine').dataset }));

/** Waits until an add has ended (the section is idle and has a summary). */
export async function waitIdle(page, timeout = 240_000) {
  await page.waitForFunction(() => document.getElementById('mine').dataset.state === 'idle'
    && document.getElementById('mine').dataset.last, null, { timeout, polling: 200 });
}

/** Writes `files` (`[{ name, buffer }]`) into `dir` and returns their paths: the page then gets them by path, as
 *  a user's files come (Playwright given buffers builds the files inside the page instead: one unattributed
 *  main-thread task of 0.3–0.8 s, which the Long Animation Frames API shows ends right before the input's
 *  change event). */
export function onDisk(dir, files) {
  mkdirSync(dir, { recursive: true });
  return files.map(({ name, buffer }) => { writeFileSync(path.join(dir, name), buffer); return path.join(dir, name); });
}

/** What IndexedDB holds for "My photos": `{ photos, thumbs, chunks, legacy }` (worker/photo-store.js). */
export const stored = (page) => page.evaluate(() => new Promise((resolve, reject) => {
  const r = indexedDB.open('imgpick-mine');
  r.onsuccess = () => {
    const db = r.result;
    const names = ['chunks', 'thumbs', 'photos'].filter((n) => db.objectStoreNames.contains(n));
    if (!names.includes('chunks')) { db.close(); resolve({ photos: 0, thumbs: 0, chunks: 0, legacy: 0 }); return; }
    const tx = db.transaction(names);
    const chunks = tx.objectStore('chunks').getAll();
    const thumbs = tx.objectStore('thumbs').count();
    const legacy = names.includes('photos') ? tx.objectStore('photos').count() : null;
    tx.oncomplete = () => {
      db.close();
      resolve({ photos: chunks.result.reduce((n, c) => n + c.photos.length, 0), thumbs: thumbs.result,
        chunks: chunks.result.length, legacy: legacy ? legacy.result : 0 });
    };
    tx.onerror = () => reject(tx.error);
  };
  r.onerror = () => reject(r.error);
}));
