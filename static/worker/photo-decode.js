// One photo file → its vector and a small thumbnail, in an embedding worker. Which decoder reads the pixels:
// - By default the wasm encoder decodes the file itself, with the trainer's decoder: exactly its pixels, a large
//   JPEG decoded at 1/2–1/8 of its size in the IDCT (wasm-model's decode_for_input), so the same vector.
// - JPEGs of BROWSER_DECODE_MIN_PIXELS or more (phone photos), when the pool asks for it (embed-pool.js: a
//   benchmark setting now): the browser's own decoder at full size (createImageBitmap, on the browser's threads,
//   while the wasm encoder works on the previous photo); the wasm encoder then resizes and embeds those pixels,
//   and the thumbnail is drawn from the same bitmap.
// Why the size limit: the two JPEG decoders differ by a level or two on a few % of the pixels. Downscaled
// to the network's input (manifest image.image_size: 224–260 px) those differences average out (browser vs wasm
// full-size decode, 45 real 1.6–14.7 MP photos, Lite0: min cosine 0.9997; at 640 px 0.9995), but a JPEG near the
// input size feeds them to the network as they are (Flickr8k val: min 0.995). Against the wasm decoder's scaled
// decode of large JPEGs (what publish embeds): 40 wallpapers min 0.9993, median 0.9999 (0.9969 / 0.9996 with the
// earlier 2× rule). docs/benchmarks.md, "My photos".
// Bad files are refused by the wasm `probe_image` first, with the same messages whichever decoder runs.

/** Longest side of a thumbnail, in pixels. */
export const THUMB_SIDE = 320;
/** JPEGs with at least this many pixels are decoded by the browser (see above). */
export const BROWSER_DECODE_MIN_PIXELS = 2_000_000;

// createImageBitmap always applies the EXIF orientation (`imageOrientation: 'none'` is treated as
// 'from-image' in Chromium), but the vector is computed from the pixels as stored, as the trainer does. Each
// entry maps the turned bitmap back onto the stored W×H grid: canvas setTransform(a, b, c, d, e·W, f·H).
// Exact for all eight (pixel-for-pixel equal to the same JPEG without EXIF; checked in tests/e2e).
const UNDO_ORIENTATION = {
  1: [1, 0, 0, 1, 0, 0], 2: [-1, 0, 0, 1, 1, 0], 3: [-1, 0, 0, -1, 1, 1], 4: [1, 0, 0, -1, 0, 1],
  5: [0, 1, 1, 0, 0, 0], 6: [0, -1, 1, 0, 0, 1], 7: [0, -1, -1, 0, 1, 1], 8: [0, 1, -1, 0, 1, 0],
};

// Reused across photos: a 12-MP canvas is 48 MB, allocated once per worker rather than once per photo.
let pixelCanvas = null;

/** The stored pixels of `bitmap` (turned back by `orientation`): RGBA bytes of `width × height`. */
function storedPixels(bitmap, { width, height, orientation }) {
  pixelCanvas ??= new OffscreenCanvas(1, 1);
  pixelCanvas.width = width;
  pixelCanvas.height = height;
  // willReadFrequently: a CPU canvas, so getImageData is a copy, not a read-back from the GPU.
  const g = pixelCanvas.getContext('2d', { willReadFrequently: true });
  g.imageSmoothingEnabled = false;
  const [a, b, c, d, e, f] = UNDO_ORIENTATION[orientation];
  g.setTransform(a, b, c, d, e * width, f * height);
  g.drawImage(bitmap, 0, 0);
  g.setTransform(1, 0, 0, 1, 0, 0);
  return g.getImageData(0, 0, width, height).data;
}

/** A JPEG thumbnail, longest side ≤ THUMB_SIDE, of `source` (a bitmap, upright) or of `rgba` pixels. */
async function thumbnail(source) {
  try {
    const scale = Math.min(1, THUMB_SIDE / Math.max(source.width, source.height));
    const [w, h] = [Math.max(1, Math.round(source.width * scale)), Math.max(1, Math.round(source.height * scale))];
    const canvas = new OffscreenCanvas(w, h);
    const g = canvas.getContext('2d');
    if (source.rgba) {
      g.putImageData(new ImageData(source.rgba, w, h), 0, 0); // already small (the wasm decoder's thumbnail)
    } else {
      g.imageSmoothingQuality = 'medium';
      g.drawImage(source, 0, 0, w, h);
    }
    return await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.85 });
  } catch {
    return null; // the vector still counts: the page then shows the file name without a picture
  }
}

/** The vector and thumbnail of a JPEG the browser decoded (`bitmap`, turned upright; `info` from probe_image). */
async function fromBitmap(embedder, bitmap, info, ms) {
  const t0 = performance.now();
  const rgba = storedPixels(bitmap, info);
  const t1 = performance.now();
  // A Uint8ClampedArray is passed to wasm as bytes (copied into its memory).
  const vector = embedder.embed_rgba(new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.byteLength), info.width, info.height);
  const t2 = performance.now();
  const thumb = await thumbnail(bitmap);
  Object.assign(ms, { decode: ms.decode + t1 - t0, embed: t2 - t1, thumb: performance.now() - t2 });
  return { vector, thumb };
}

/** The first half of embedding `file` (a File or Blob), started as soon as it arrives: its bytes, the header's
 *  checks (`probe_image` throws an Error naming the problem), and for a big JPEG the browser's decode, which runs
 *  on the browser's own threads while the wasm encoder still works on the previous photo. Resolves to what
 *  `finishPhoto` takes. `wasm`: the wasm package's module. */
export async function preparePhoto(wasm, file, { browserDecode = true } = {}) {
  const t0 = performance.now();
  const bytes = new Uint8Array(await file.arrayBuffer());
  const ms = { read: performance.now() - t0, decode: 0, embed: 0, thumb: 0 };
  const info = wasm.probe_image(bytes); // throws for an empty, unknown, truncated or too large file
  let bitmap = null;
  if (browserDecode && info.format === 'jpeg' && info.width * info.height >= BROWSER_DECODE_MIN_PIXELS
    && typeof createImageBitmap === 'function') {
    const t1 = performance.now();
    // colorSpaceConversion 'none': the file's values, not converted by its ICC profile (the trainer ignores it).
    bitmap = createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' })
      .then((b) => { ms.decode = performance.now() - t1; return b; }, () => null);
  }
  return { bytes, info, bitmap, ms };
}

/** The second half: `{ vector: Float32Array, thumb: Blob | null, decoder: 'browser' | 'wasm', ms: { read, decode,
 *  embed, thumb } }` (`decode`: from the start of the browser's decode to its end, so it overlaps the previous
 *  photo). Throws an Error naming the problem for a file that cannot be embedded. `embedder`: an ImageEmbedder. */
export async function finishPhoto(embedder, { bytes, info, bitmap, ms }) {
  const decoded = await bitmap;
  if (decoded) {
    try {
      const turned = info.orientation >= 5;
      const [w, h] = turned ? [info.height, info.width] : [info.width, info.height];
      // Not the image the header describes (or no decode at all): the wasm decoder below.
      if (decoded.width === w && decoded.height === h) return { ...await fromBitmap(embedder, decoded, info, ms), decoder: 'browser', ms };
    } finally {
      decoded.close();
    }
  }
  const t1 = performance.now();
  const out = embedder.embed_with_thumbnail(bytes, THUMB_SIDE); // decode + resize + encoder in wasm
  const t2 = performance.now();
  const thumb = await thumbnail({ width: out.width, height: out.height, rgba: out.rgba });
  Object.assign(ms, { decode: 0, embed: t2 - t1, thumb: performance.now() - t2 });
  return { vector: out.vector, thumb, decoder: 'wasm', ms };
}

/** `preparePhoto` then `finishPhoto`: one photo on its own. */
export async function embedPhoto(wasm, embedder, file, options = {}) {
  return finishPhoto(embedder, await preparePhoto(wasm, file, options));
}
