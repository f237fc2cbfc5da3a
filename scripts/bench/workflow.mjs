#!/usr/bin/env node
// The writer's workflow in headless Chromium (docs/benchmarks.md "Writer's workflow", issue #20): the time the
// search worker takes (its `ms`: the engine's work plus, for a partitioned gallery, reading lists already in
// memory) for a plain search, feedback re-ranking (2 👍 + 1 👎), "more varied" (MMR over the top 100),
// near-duplicate collapse, all three at once, and a passage of 10 sentences (4 ideas' pictures + the whole's,
// collapsed, as the page asks). Each operation runs over 20 prompts (passages: 20 of 10 sentences) after one
// warm-up pass over the same prompts (a partitioned gallery then has their lists in memory: the numbers are the
// work, not the network); median and p90. Target: each ≤ 50 ms median.
//
//   node scripts/bench/workflow.mjs --gallery static/gallery --gallery target/h8/g100k --gallery target/h8/site-100k/gallery
// Each gallery folder (flat or partitioned, made for static/model) is served with the page from a scratch
// folder of links. The 100k galleries: `cargo run --release -p wasm-model --example bench_partitioned -- synth`
// (docs/benchmarks.md "Partitioned gallery"). Needs static/pkg (scripts/build-wasm.sh) and target/debug/web.
import { mkdtempSync, rmSync, symlinkSync, openSync, readSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, startServer, launchBrowser, pageState } from '../../tests/e2e/harness.mjs';

const { values: opts } = parseArgs({ options: {
  gallery: { type: 'string', multiple: true },
  runs: { type: 'string', default: '20' },
} });
const RUNS = Number(opts.runs);
const PROMPTS = ['a dog running on grass', 'a cat sleeping', 'two people on a beach', 'a red car on a street', 'a bird flying over water',
  'snow on the mountains', 'a child playing with a ball', 'a man riding a bike', 'food on a plate', 'a flower in a garden',
  'the night sky', 'a boat on the water', 'an old building in a city', 'a fish in a tank', 'a horse in a field',
  'a rocket launching', 'a cup of coffee', 'a toy on the floor', 'a woman reading a book', 'a train at a station'];
const SENTENCES = PROMPTS.map((p) => `${p[0].toUpperCase()}${p.slice(1)} catches the eye.`);
/** Passage `i`: 10 sentences in 3 paragraphs (4 + 3 + 3), drawn from the prompts in turn. */
const passage = (i) => {
  const s = Array.from({ length: 10 }, (_, j) => SENTENCES[(i * 3 + j * 7) % SENTENCES.length]);
  return [s.slice(0, 4), s.slice(4, 7), s.slice(7)].map((p) => p.join(' ')).join('\n\n');
};

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];

/** A scratch site: links to the page's files, the model, and `gallery`. */
function siteFor(gallery) {
  const dir = mkdtempSync(path.join(tmpdir(), 'imgpick-bench-workflow-'));
  for (const f of ['index.html', 'style.css', 'app.js', 'protocol.js', 'page', 'worker', 'sw.js', 'pkg', 'model']) {
    symlinkSync(path.join(ROOT, 'static', f), path.join(dir, f));
  }
  symlinkSync(path.resolve(gallery), path.join(dir, 'gallery'));
  return dir;
}

async function bench(gallery) {
  const site = siteFor(gallery);
  const server = await startServer(site);
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    await page.goto(server.url);
    if (await pageState(page, 300_000) !== 'ready') throw new Error(await page.textContent('#error-message'));
    const info = (await page.textContent('#model-info')).split(' · ')[0];
    const refined = (q, refine) => page.evaluate(([q, r]) => window.imgpick.refined(q, r), [q, refine]);
    // Marks for each prompt: its plain results at ranks 3 and 6 liked, rank 1 disliked.
    const marks = [];
    for (const q of PROMPTS) {
      const r = await refined(q, 'collapse=0');
      if (r.error) throw new Error(`${q}: ${r.error}`);
      marks.push(`up=${r.results[2].id}.${r.results[5].id}&down=${r.results[0].id}`);
    }
    const ops = {
      'plain search': (i) => refined(PROMPTS[i], 'collapse=0'),
      'feedback re-rank (2 👍 + 1 👎)': (i) => refined(PROMPTS[i], `${marks[i]}&collapse=0`),
      'more varied (MMR over the top 100)': (i) => refined(PROMPTS[i], 'vary=1&collapse=0'),
      'duplicate collapse': (i) => refined(PROMPTS[i], 'collapse=1'),
      'all three': (i) => refined(PROMPTS[i], `${marks[i]}&vary=1&collapse=1`),
      'passage of 10 sentences': (i) => page.evaluate((t) => window.imgpick.passage(t, 'collapse=1'), passage(i)),
    };
    const rows = [];
    for (const [name, run] of Object.entries(ops)) {
      for (let i = 0; i < PROMPTS.length; i++) await run(i); // warm-up: lists in memory, code paths compiled
      const ms = [];
      for (let i = 0; i < RUNS; i++) {
        const r = await run(i % PROMPTS.length);
        if (r.error) throw new Error(`${name}: ${r.error}`);
        ms.push(r.workerMs);
      }
      rows.push({ name, median: median(ms), p90: pct(ms, 0.9) });
    }
    return { info, rows };
  } finally {
    await browser.close();
    await server.stop();
    rmSync(site, { recursive: true, force: true });
  }
}

/** 'partitioned' or 'flat', from the first bytes of the gallery's gallery.json. */
function tier(gallery) {
  const fd = openSync(path.join(gallery, 'gallery.json'), 'r');
  const head = Buffer.alloc(400);
  readSync(fd, head, 0, 400, 0);
  closeSync(fd);
  return head.toString().includes('imgpick-partitioned-gallery') ? 'partitioned' : 'flat';
}

const results = [];
for (const g of opts.gallery || [path.join(ROOT, 'static/gallery')]) results.push({ gallery: g, ...(await bench(g)) });
const names = results[0].rows.map((r) => r.name);
console.log(`\nWriter's workflow in the search worker — headless Chromium, median (p90) of ${RUNS} runs, ms; target ≤ 50 ms median\n`);
console.log(`| operation | ${results.map((r) => `${r.info}, ${tier(r.gallery)}`).join(' | ')} |`);
console.log(`|---|${results.map(() => '---').join('|')}|`);
for (const name of names) {
  console.log(`| ${name} | ${results.map((r) => { const row = r.rows.find((x) => x.name === name); return `${row.median.toFixed(1)} (${row.p90.toFixed(1)})`; }).join(' | ')} |`);
}
