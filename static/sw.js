// Service worker: makes revisits work offline. Network first (so a republished page is used at once), the
// last good copy when the network fails. The model, wasm and gallery files are cached by the search worker itself
// (worker/downloads.js; keyed by content hash where known), so they are left alone here. Nothing is precached:
// every file the page and its workers load (app.js, page/, worker/, protocol.js, pkg/…) is kept as it is fetched.
const CACHE = 'imgpick-shell-v1';
const OWNED_BY_WORKER = /^\/(pkg\/wasm_model_bg\.wasm|model\/|gallery\/gallery\.(bin|json)|gallery\/[0-9a-f]{32}\/)/;

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== self.location.origin || url.pathname.startsWith('/api/')
    || OWNED_BY_WORKER.test(url.pathname)) return;
  event.respondWith((async () => {
    // Pages are cached without their query: one copy of index.html serves every shared link.
    const key = req.mode === 'navigate' ? new URL('./', self.location).href : req;
    try {
      const res = await fetch(req);
      if (res.ok) {
        const copy = res.clone();
        event.waitUntil(caches.open(CACHE).then((c) => c.put(key, copy)).catch(() => {}));
      }
      return res;
    } catch (offline) {
      const hit = await caches.match(key, { ignoreSearch: req.mode === 'navigate' });
      if (hit) return hit;
      throw offline;
    }
  })());
});
