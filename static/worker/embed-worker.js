// One embedding worker: turns the user's photo files into vectors (wasm ImageEmbedder, the candle
// EfficientNet-Lite0) and small thumbnails (from the same decode, OffscreenCanvas → JPEG). Started by
// the search worker's pool (embed-pool.js) only when photos are added; it gets the compiled wasm module and the
// weights from there, so it downloads nothing itself. The files never leave this machine: they are read here and
// only the vector and the thumbnail go back. Messages: EmbedRequest / EmbedEvent in protocol.js.
import { EmbedRequest, EmbedEvent, checkHandlers, errorText } from '../protocol.js';

let embedder = null;

const THUMB_SIDE = 320; // longest side of a thumbnail, in pixels

async function init({ module, manifestJson, imageEncoder, imageHead }) {
  const wasm = await import('../pkg/wasm_model.js');
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

const handlers = checkHandlers(EmbedRequest, {
  async [EmbedRequest.init](msg) {
    try {
      await init(msg);
      postMessage({ type: EmbedEvent.started });
    } catch (e) {
      postMessage({ type: EmbedEvent.failed, error: errorText(e) });
    }
  },
  async [EmbedRequest.embed](msg) {
    let out;
    try {
      out = await embed(msg);
    } catch (e) {
      out = { error: errorText(e) };
    }
    postMessage({ type: EmbedEvent.embedded, job: msg.job, ...out }, out.vector ? [out.vector.buffer] : []);
  },
}, 'embed-worker');

onmessage = ({ data: msg }) => handlers[msg.type](msg);
