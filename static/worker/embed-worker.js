// One embedding worker: turns the user's photo files into vectors (wasm ImageEmbedder, the candle
// EfficientNet-Lite0) and small thumbnails (from the same decode, OffscreenCanvas → JPEG). Started by
// worker.js only when photos are added; it gets the compiled wasm module and the weights from there, so it
// downloads nothing itself. The files never leave this machine: they are read here and only the vector and
// the thumbnail go back.
let embedder = null;

const THUMB_SIDE = 320; // longest side of a thumbnail, in pixels

const errorText = (e) => (e && e.message) ? e.message : String(e);

async function init({ module, manifestJson, imageEncoder, imageHead }) {
  const wasm = await import('./pkg/wasm_model.js');
  await wasm.default({ module_or_path: module });
  embedder = new wasm.ImageEmbedder(manifestJson, imageEncoder, imageHead);
}

// The thumbnail's pixels come from the wasm decoder's own decode of the photo (one decode per photo: the
// browser decoding it again costs ~100 ms for a 12-MP JPEG); the canvas only encodes them as a small JPEG.
async function thumbnail({ width, height, rgba }) {
  try {
    const canvas = new OffscreenCanvas(width, height);
    canvas.getContext('2d').putImageData(new ImageData(rgba, width, height), 0, 0);
    return await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.85 });
  } catch {
    return null; // the vector still counts: the page then shows the file name without a picture
  }
}

async function embed({ file }) {
  const t0 = performance.now();
  const bytes = new Uint8Array(await file.arrayBuffer());
  const tRead = performance.now();
  let out;
  try {
    out = embedder.embed_with_thumbnail(bytes, THUMB_SIDE);
  } catch (e) {
    return { error: errorText(e) };
  }
  const tEmbed = performance.now();
  const thumb = await thumbnail(out);
  return { vector: out.vector, thumb, ms: { read: tRead - t0, embed: tEmbed - tRead, thumb: performance.now() - tEmbed } };
}

onmessage = async ({ data: msg }) => {
  try {
    if (msg.type === 'init') {
      await init(msg);
      postMessage({ type: 'ready' });
    } else if (msg.type === 'embed') {
      const out = await embed(msg);
      postMessage({ type: 'embedded', job: msg.job, ...out }, out.vector ? [out.vector.buffer] : []);
    }
  } catch (e) {
    postMessage({ type: msg.type === 'init' ? 'failed' : 'embedded', job: msg.job, error: errorText(e) });
  }
};
