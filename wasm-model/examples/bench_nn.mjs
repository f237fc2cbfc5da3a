// candle-nn or hand-written, in wasm (Node): runs `bench_candle_nn` of a package built with feature nn-bench
// (bench_nn_wasm.sh builds it) on a model directory and prints its table.
// Usage: node bench_nn.mjs PKG_DIR MODEL_DIR
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [pkgDir, modelDir] = process.argv.slice(2);
if (!pkgDir || !modelDir) {
  console.error("usage: node bench_nn.mjs PKG_DIR MODEL_DIR");
  process.exit(2);
}
const { default: init, bench_candle_nn } = await import(pathToFileURL(path.join(pkgDir, "wasm_model.js")));
await init({ module_or_path: fs.readFileSync(path.join(pkgDir, "wasm_model_bg.wasm")) });
const read = (f) => fs.readFileSync(path.join(modelDir, f));
const manifest = JSON.parse(read("manifest.json"));
const imageEncoder = manifest.files.image_encoder && fs.existsSync(path.join(modelDir, manifest.files.image_encoder))
  ? read(manifest.files.image_encoder) : undefined;
// The prompts of scripts/bench/wasm.mjs and examples/bench_nn.rs.
const prompts = ["a dog running on the beach", "two children playing in the snow", "red car",
  "a man riding a bike down the street", "beach people dog", "cat kitten", "white dog jumping in grass",
  "a woman sitting on a bench with a black cat"];
const table = bench_candle_nn(read("manifest.json").toString(), read(manifest.files.vocab).toString(),
  read(manifest.files.text_encoder), imageEncoder, prompts);
console.log(`wasm32 (SIMD128) in Node ${process.version}, ${modelDir} (model ${manifest.model_id})\n`);
console.log(table);
