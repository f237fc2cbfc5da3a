#!/usr/bin/env node
// The partitioned gallery's scan kernel in wasm (static/pkg in Node; docs/benchmarks.md "Partitioned gallery"):
// for prompts over a partitioned gallery, every planned list already in memory, the time of `plan_search` (text
// encoding + list ranking) and of `advance` (scoring the planned lists' int8 rows + the running top-k), against a
// copy of the same number of bytes inside wasm memory (TypedArray.copyWithin: memcpy). Prints a table.
//   node scripts/bench/partitioned-scan.mjs MODEL_DIR PARTITIONED_GALLERY_DIR [prompts]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const [modelDir, galleryDir] = process.argv.slice(2);
if (!modelDir || !galleryDir) { console.error('usage: partitioned-scan.mjs MODEL_DIR PARTITIONED_GALLERY_DIR [prompts]'); process.exit(2); }
const nPrompts = Number(process.argv[4] ?? 40);
const wasm = await import(pathToFileURL(path.join(root, 'static/pkg/wasm_model.js')));
const wasmExports = await wasm.default({ module_or_path: fs.readFileSync(path.join(root, 'static/pkg/wasm_model_bg.wasm')) });
const read = (d, f) => fs.readFileSync(path.join(d, f));
const manifest = JSON.parse(read(modelDir, 'manifest.json'));
const galleryJson = read(galleryDir, 'gallery.json').toString();
const engine = wasm.Engine.partitioned(read(modelDir, 'manifest.json').toString(), read(modelDir, manifest.files.vocab).toString(),
  read(modelDir, manifest.files.text_encoder), galleryJson, read(galleryDir, wasm.partitioned_header_file(galleryJson)));
engine.set_shard_memory(1 << 30);

const captions = path.join(root, '../shared/data/flickr8k/captions_val.json');
const prompts = fs.existsSync(captions)
  ? JSON.parse(fs.readFileSync(captions, 'utf8')).annotations.filter((_, i) => i % 10 === 3).slice(0, nPrompts).map((a) => a.caption)
  : Array.from({ length: nPrompts }, (_, i) => `a dog running on the beach ${i}`);
const info = engine.partition_info();
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };

// Every planned list in memory first (what a warm query finds), then the timed passes.
for (const p of prompts) {
  const s = engine.plan_search(p, 30, 'gallery');
  for (const l of s.pending()) engine.add_shard(read(galleryDir, engine.shard_file(l)));
  s.free();
}
const plan = [], scan = [], rows = [];
for (let rep = 0; rep < 3; rep++) {
  for (const p of prompts) {
    let t = performance.now();
    const s = engine.plan_search(p, 30, 'gallery');
    plan.push(performance.now() - t);
    t = performance.now();
    const step = engine.advance(s);
    scan.push(performance.now() - t);
    rows.push(step.searched);
    s.free();
  }
}
const bytesPerQuery = median(rows) * 512;
const mem = new Uint8Array(wasmExports.memory.buffer);
const copies = [];
for (let i = 0; i < 200; i++) {
  const t = performance.now();
  mem.copyWithin(0, mem.length - bytesPerQuery, mem.length); // the top of wasm memory: shard bytes
  copies.push(performance.now() - t);
}
const gbps = (bytes, ms) => (bytes / ms / 1e6).toFixed(1);
console.log(`${info.count} images, ${info.lists} lists, probe ${info.probe}; ${prompts.length} prompts × 3, lists in memory\n`);
console.log('| step | median | bandwidth |\n|---|---|---|');
console.log(`| plan_search (encode the prompt + rank ${info.lists} centroids) | ${median(plan).toFixed(2)} ms | |`);
console.log(`| advance: score ${median(rows)} int8 rows + top-30 | ${median(scan).toFixed(2)} ms | ${gbps(bytesPerQuery, median(scan))} GB/s |`);
console.log(`| memcpy of the same ${(bytesPerQuery / 1e6).toFixed(1)} MB in wasm memory | ${median(copies).toFixed(2)} ms | ${gbps(bytesPerQuery, median(copies))} GB/s |`);
console.log(`\nscan / memcpy bandwidth: ${(100 * median(copies) / median(scan)).toFixed(0)} %`);
