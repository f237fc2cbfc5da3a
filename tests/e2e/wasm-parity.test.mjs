// The page's image encoder (the wasm package's ImageEmbedder, what the embedding workers run, here in Node's V8)
// against the trainer's tch vectors on 200 real photos: Flickr8k val, published by `trainer publish --plain --dtype f32`
// with the same model. Issue 6's proof, on the f32 path (the image encoder exported with --f32): cosine ≥ 0.999
// for every photo and the same top-10 for 50 prompts. The shipped f16 file: cosine ≥ 0.999 and ≥ 95 % of the
// top-10 in common (f16 rounding swaps near-ties). The engine's int8 rows of added photos: ≥ 95 % of the top-10 in
// common with their f32 ranking. (The browser's decoder for large JPEGs: tests/e2e/decode-parity.test.mjs.)
// Reported as skipped when ../shared/data/flickr8k is absent (IMGPICK_FLICKR8K overrides the path).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync, mkdtempSync, mkdirSync, copyFileSync, rmSync, cpSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, E2E_MODEL as MODEL, TRAINER_BIN } from './harness.mjs';

const FLICKR = process.env.IMGPICK_FLICKR8K || path.join(ROOT, '../shared/data/flickr8k');
const N = 200, PROMPTS = 50;

const manifest = JSON.parse(readFileSync(path.join(MODEL, 'manifest.json'), 'utf8'));
// A string `skip` makes node:test report the test as skipped, with this reason, in the summary.
const skip = !existsSync(path.join(FLICKR, 'captions_val.json')) ? `needs Flickr8k: none at ${FLICKR} (set IMGPICK_FLICKR8K)`
  : !manifest.files?.image_encoder ? 'the model has no image encoder' : false;

test(`wasm ImageEmbedder vs tch on ${N} Flickr8k val photos: cosine ≥ 0.999, same top-10 for ${PROMPTS} prompts (f32)`, { skip }, async () => {
  const val = JSON.parse(readFileSync(path.join(FLICKR, 'captions_val.json'), 'utf8'));
  const captioned = new Set(val.annotations.map((a) => a.image_id));
  const images = val.images.filter((im) => captioned.has(im.id)).slice(0, N);
  assert.equal(images.length, N);
  const work = mkdtempSync(path.join(tmpdir(), 'imgpick-wasm-parity-'));
  try {
    mkdirSync(path.join(work, 'photos'));
    // Copies, not links: `trainer publish` follows links only inside the folder it publishes.
    for (const im of images) copyFileSync(path.join(FLICKR, 'images', im.file_name), path.join(work, 'photos', im.file_name));
    const env = { ...process.env, RUST_LOG: 'error', OMP_WAIT_POLICY: 'PASSIVE' };
    execFileSync(TRAINER_BIN, ['publish', '--plain', '--model', MODEL, '--images', path.join(work, 'photos'), '--out',
      path.join(work, 'gallery'), '--dtype', 'f32', '--threads', '1'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    // The same model with an f32 image encoder (the f16 file is what the page ships).
    const f32Model = path.join(work, 'model-f32');
    cpSync(MODEL, f32Model, { recursive: true, dereference: true });
    execFileSync(TRAINER_BIN, ['export-image-encoder', '--model', f32Model, '--f32', '--threads', '1'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    const bin = readFileSync(path.join(work, 'gallery/gallery.bin'));
    const galleryJson = readFileSync(path.join(work, 'gallery/gallery.json'), 'utf8');
    const [dtype, rows, dim] = [bin.readUInt32LE(12), bin.readUInt32LE(16), bin.readUInt32LE(20)];
    assert.deepEqual([dtype, rows, dim], [1, N, manifest.embed_dim], 'an f32 gallery of every photo');
    const tch = (i) => new Float32Array(bin.buffer.slice(bin.byteOffset + 64 + i * dim * 4, bin.byteOffset + 64 + (i + 1) * dim * 4));
    const items = JSON.parse(galleryJson).items;

    const pkg = path.join(ROOT, 'static/pkg');
    const wasm = await import(pathToFileURL(path.join(pkg, 'wasm_model.js')));
    await wasm.default({ module_or_path: readFileSync(path.join(pkg, 'wasm_model_bg.wasm')) });
    const read = (dir, f) => readFileSync(path.join(dir, f));
    const engineFor = () => new wasm.Engine(read(MODEL, 'manifest.json').toString(), read(MODEL, manifest.files.vocab).toString(),
      read(MODEL, manifest.files.text_encoder), bin, galleryJson, read(MODEL, manifest.files.image_head));
    const byId = new Map(images.map((im) => [im.id, im.file_name]));
    const prompts = [...new Map(val.annotations.map((a) => [a.image_id, a.caption])).entries()]
      .filter(([id]) => byId.has(id)).slice(0, PROMPTS).map(([, c]) => c);
    assert.equal(prompts.length, PROMPTS);

    // Embeds the 200 photos with the model dir's image encoder and ranks them for each prompt (its query vector
    // from the engine) by f32 cosine against the trainer's vectors. The engine keeps added photos as int8 rows
    // (as an int8 gallery): its own ranking of the wasm vectors ("mine") is compared with their f32 ranking.
    const engine = engineFor();
    const queries = prompts.map((p) => engine.query_vector(p));
    const dot = (a, b) => { let d = 0; for (let k = 0; k < dim; k++) d += a[k] * b[k]; return d; };
    const top10 = (q, rows) => rows.map((r, i) => [dot(q, r), i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 10).map((x) => x[1]);
    const agreement = (as, bs) => {
      let same = 0, common = 0;
      as.forEach((a, j) => { if (JSON.stringify(a) === JSON.stringify(bs[j])) same++; common += a.filter((i) => bs[j].includes(i)).length; });
      return { same, overlap: common / (as.length * 10) };
    };
    const tchRows = items.map((_, i) => tch(i));
    const tchTop = queries.map((q) => top10(q, tchRows));
    const compare = (dir, label) => {
      const m = JSON.parse(read(dir, 'manifest.json'));
      const embedder = new wasm.ImageEmbedder(JSON.stringify(m), read(dir, m.files.image_encoder), read(dir, m.files.image_head));
      const mine = engineFor();
      let minCos = 1, worst = '';
      const t0 = performance.now();
      const rows = items.map((item, i) => {
        const v = embedder.embed(readFileSync(path.join(work, 'photos', path.basename(item.file))));
        const r = tch(i);
        const cos = dot(v, r) / Math.sqrt(dot(v, v) * dot(r, r));
        if (cos < minCos) { minCos = cos; worst = item.file; }
        mine.add_vector(item.file, '', v);
        return v;
      });
      const ms = (performance.now() - t0) / N;
      const wasmTop = queries.map((q) => top10(q, rows));
      const vsTch = agreement(tchTop, wasmTop);
      const byName = new Map(items.map((it, i) => [it.file, i]));
      const int8 = agreement(wasmTop, prompts.map((p) => mine.search_in(p, 10, 'mine').map((h) => byName.get(h.file))));
      console.log(`# ${label}: min cosine ${minCos.toFixed(7)} (${worst}); identical top-10 for ${vsTch.same} of ${PROMPTS} prompts, `
        + `${(vsTch.overlap * 100).toFixed(1)} % of top-10 in common; ${ms.toFixed(0)} ms per photo in wasm; kept as int8 in the engine: `
        + `identical top-10 for ${int8.same} of ${PROMPTS}, ${(int8.overlap * 100).toFixed(1)} % in common with f32`);
      return { minCos, ...vsTch, int8 };
    };
    const f32 = compare(f32Model, 'f32 image encoder');
    assert.ok(f32.minCos >= 0.999, `f32: min cosine ${f32.minCos}`);
    assert.equal(f32.same, PROMPTS, 'f32: the same top-10 for every prompt');
    const f16 = compare(MODEL, 'shipped f16 image encoder');
    assert.ok(f16.minCos >= 0.999, `f16: min cosine ${f16.minCos}`);
    assert.ok(f16.overlap >= 0.95, `f16: ${f16.overlap} of the top-10 in common`);
    // int8 rows (4× smaller) swap near-ties only.
    for (const r of [f32, f16]) assert.ok(r.int8.overlap >= 0.95, `int8: ${r.int8.overlap} of the top-10 in common with f32`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
