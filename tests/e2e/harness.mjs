// Shared by the browser tests and the page benchmark: start the `web` server on a free port, launch
// Debian's Chromium through playwright-core, and run the native trainer for reference rankings.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(ROOT, 'tests/node_modules/'));
const { chromium } = require('playwright-core');

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];
export const ARTIFACTS = path.join(ROOT, 'tests/artifacts');
// What scripts/test-e2e.sh prepared: a static folder with a gallery published from assets/photos.
export const E2E_DIR = process.env.IMGPICK_E2E_DIR || path.join(ROOT, 'target/e2e');
export const E2E_STATIC = path.join(E2E_DIR, 'static');        // the page, with the test gallery
export const E2E_CORRUPT = path.join(E2E_DIR, 'static-corrupt'); // the same page, gallery.bin damaged
export const E2E_NOPKG = path.join(E2E_DIR, 'static-nopkg');     // the same page, no wasm package
export const E2E_MODEL = path.join(E2E_STATIC, 'model');
export const E2E_GALLERY = path.join(E2E_STATIC, 'gallery');
// The same photos published with `--plain` (one view, no hubness): how the page embeds the user's own photos.
export const E2E_PLAIN_GALLERY = path.join(E2E_DIR, 'plain-gallery');
export const PHOTOS = path.join(ROOT, 'assets/photos');          // the 15 asset photos the test gallery holds
// Downloaded only when the user adds photos ("My photos"), never on the first load.
export const LAZY_MODEL_FILES = ['image_encoder.safetensors', 'image_head.safetensors'];
export const WEB_BIN = process.env.IMGPICK_WEB_BIN || path.join(ROOT, 'target/debug/web');
export const TRAINER_BIN = process.env.IMGPICK_TRAINER_BIN || path.join(ROOT, 'target/release/trainer');

/** Starts `web` serving `staticDir` on 127.0.0.1 with a free port; resolves to { url, stop, logs }. */
export function startServer(staticDir, extraArgs = []) {
  const child = spawn(WEB_BIN, ['--port', '0', '--host', '127.0.0.1', '--static-dir', staticDir, ...extraArgs],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'web=warn' } });
  let logs = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill(); reject(new Error(`web did not start in 60 s:\n${logs}`)); }, 60_000);
    const onData = (chunk) => {
      logs += chunk;
      const m = /at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(logs);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1],
          logs: () => logs,
          stop: () => new Promise((done) => { child.once('exit', done); child.kill('SIGINT'); }),
        });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`web exited with ${code}:\n${logs}`)); });
    child.once('error', (e) => { clearTimeout(timer); reject(new Error(`cannot run ${WEB_BIN}: ${e.message} (cargo build -p web)`)); });
  });
}

/** Chromium with a fresh profile; `close()` removes the profile. */
export async function launchBrowser() {
  const profile = mkdtempSync(path.join(tmpdir(), 'imgpick-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1100, height: 760 },
  });
  return {
    context,
    close: async () => { await context.close(); rmSync(profile, { recursive: true, force: true }); },
  };
}

/** A new page of `context` at `url`: { page, problems } (uncaught page errors); CSP reports go to `cspViolations`. */
export async function openPage(context, url, cspViolations) {
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text()); });
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(url);
  return { page, problems };
}

/** The native ranking for `prompt` (the same Rust code, run by the trainer CLI): [{file, score}].
 *  IMGPICK_E2E_REFERENCE=api asks the server's /api/search instead (debugging without a trainer build). */
export async function nativeSearch(serverUrl, modelDir, galleryDir, prompt, k = 10) {
  if (process.env.IMGPICK_E2E_REFERENCE === 'api') {
    const res = await fetch(`${serverUrl}api/search?q=${encodeURIComponent(prompt)}&k=${k}`);
    const body = await res.json();
    if (!res.ok) throw new Error(`/api/search: ${body.error}`);
    return body.results.map((r) => ({ file: r.file, score: r.score }));
  }
  return trainerSearch(modelDir, galleryDir, prompt, k);
}

export function trainerSearch(modelDir, galleryDir, prompt, k = 10) {
  const out = execFileSync(TRAINER_BIN, ['search', '--model', modelDir, '--gallery', galleryDir, '-k', String(k), '--json', prompt],
    { encoding: 'utf8', env: { ...process.env, RUST_LOG: 'error' } });
  return JSON.parse(out);
}

/** Waits until the page has loaded its engine (or failed): resolves to 'ready' | 'error'. */
export async function pageState(page, timeout = 60_000) {
  await page.waitForFunction(() => ['ready', 'error'].includes(document.documentElement.dataset.state), null, { timeout });
  return page.evaluate(() => document.documentElement.dataset.state);
}

/** The rendered results once they answer `query` (the text prompt, or `like:ID`): [{file, score, id}]. */
export async function resultsFor(page, query, timeout = 20_000) {
  await page.waitForFunction((q) => document.getElementById('results').dataset.query === q, query, { timeout });
  return page.$$eval('#results > li.result', (lis) => lis.map((li) => ({
    file: li.dataset.file, score: Number(li.dataset.score), id: Number(li.dataset.id),
  })));
}

export function artifact(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}
