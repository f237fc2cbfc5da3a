// One embedding worker: turns the user's photo files into vectors (wasm ImageEmbedder, the candle
// EfficientNet-Lite0) and small thumbnails (the browser's own decoder, OffscreenCanvas → JPEG). Started by
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

// A thumbnail from the browser's decode of the file (EXIF orientation applied); null when the browser could
// not decode it (the vector still counts: the page then shows the file name without a picture).
async function thumbnail(bitmap) {
  if (!bitmap) return null;
  try {
    const scale = Math.min(1, THUMB_SIDE / Math.max(bitmap.width, bitmap.height));
    const w = Math.max(1, Math.round(bitmap.width * scale)), h = Math.max(1, Math.round(bitmap.height * scale));
    const canvas = new OffscreenCanvas(w, h);
    const ctx = canvas.getContext('2d');
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(bitmap, 0, 0, w, h);
    return await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.85 });
  } catch {
    return null;
  } finally {
    bitmap.close();
  }
}

async function embed({ file }) {
  const t0 = performance.now();
  const bytes = new Uint8Array(await file.arrayBuffer());
  const tRead = performance.now();
  // The browser decodes the thumbnail's bitmap on its own threads while the wasm encoder runs here.
  // Decoded straight to thumbnail height (width follows the aspect ratio): a 12-MP photo never becomes a 48-MB bitmap.
  const bitmap = createImageBitmap(file, { resizeHeight: THUMB_SIDE, resizeQuality: 'high' }).catch(() => null);
  let vector;
  try {
    vector = embedder.embed(bytes);
  } catch (e) {
    bitmap.then((b) => b?.close());
    return { error: errorText(e) };
  }
  const tEmbed = performance.now();
  const thumb = await thumbnail(await bitmap);
  return { vector, thumb, ms: { read: tRead - t0, embed: tEmbed - tRead, thumb: performance.now() - tEmbed } };
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
