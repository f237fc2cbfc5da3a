#!/usr/bin/env node
// Latency of the wasm Engine (static/pkg, built by scripts/build-wasm.sh) in Node: construction, then
// search(prompt, 10) for a fixed prompt set; prints a table (median / p90 / max, ms).
// Usage: node scripts/bench/wasm.mjs [model_dir] [gallery_dir]
//   defaults: static/model + static/gallery, else the tiny test fixture.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const fixture = path.join(root, "wasm-model/tests/fixtures/tiny");
const exists = (d, f) => fs.existsSync(path.join(d, f));
let modelDir = process.argv[2] ?? path.join(root, "static/model");
let galleryDir = process.argv[3] ?? path.join(root, "static/gallery");
if (!exists(modelDir, "manifest.json") || !exists(galleryDir, "gallery.bin")) {
  console.error(`bench-wasm: no model/gallery at ${modelDir} + ${galleryDir}; using the tiny fixture`);
  modelDir = galleryDir = fixture;
}
const pkg = path.join(root, "static/pkg/wasm_model.js");
if (!fs.existsSync(pkg)) {
  console.error("bench-wasm: FAILED: static/pkg/wasm_model.js is missing: run scripts/build-wasm.sh");
  process.exit(1);
}
const { default: init, Engine } = await import(pathToFileURL(pkg));
await init({ module_or_path: fs.readFileSync(path.join(root, "static/pkg/wasm_model_bg.wasm")) });

const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, "manifest.json"), "utf8"));
const read = (d, f) => fs.readFileSync(path.join(d, f));
let t0 = performance.now();
const engine = new Engine(
  read(modelDir, "manifest.json").toString(), read(modelDir, manifest.files.vocab).toString(),
  read(modelDir, manifest.files.text_encoder), read(galleryDir, "gallery.bin"),
  read(galleryDir, "gallery.json").toString(),
  manifest.files.image_head ? read(modelDir, manifest.files.image_head) : undefined);
const loadMs = performance.now() - t0;

const prompts = ["a dog running on the beach", "two children playing in the snow", "red car",
  "a man riding a bike down the street", "beach -people +dog", "2:cat + kitten", "white dog jumping in grass",
  "a woman sitting on a bench with a black cat"];
const stats = (xs) => { xs.sort((a, b) => a - b); return [xs[xs.length >> 1], xs[Math.floor(xs.length * 0.9)], xs[xs.length - 1]]; };
const rows = [];
for (const [name, fn] of [
  ["search(prompt, 10)", (p) => engine.search(p, 10)],
  ["query_vector(prompt)", (p) => engine.query_vector(p)],
  ["similar(0, 10)", () => engine.similar(0, 10)],
]) {
  for (let i = 0; i < 20; i++) fn(prompts[i % prompts.length]); // warm up
  const times = [];
  for (let i = 0; i < 200; i++) {
    t0 = performance.now();
    fn(prompts[i % prompts.length]);
    times.push(performance.now() - t0);
  }
  rows.push([name, ...stats(times)]);
}
const wasmBytes = fs.statSync(path.join(root, "static/pkg/wasm_model_bg.wasm")).size;
console.log(`\nwasm Engine in Node ${process.version}: model ${manifest.model_id} (${modelDir}), ` +
  `${engine.gallery_len()} images, wasm ${(wasmBytes / 1e6).toFixed(2)} MB, construction ${loadMs.toFixed(1)} ms\n`);
console.log("| call | median ms | p90 ms | max ms |\n|---|---|---|---|");
for (const [n, m, p, x] of rows) console.log(`| ${n} | ${m.toFixed(3)} | ${p.toFixed(3)} | ${x.toFixed(3)} |`);
