// One embedding worker: turns the user's photo files into vectors (wasm ImageEmbedder, the candle EfficientNet-Lite
// the manifest names, at its input size: Lite0 224 px, Lite1 240, Lite2 260) and small thumbnails from the same
// decode (photo-decode.js: which decoder reads a photo).
// Started by the search worker's pool (embed-pool.js) only when photos are added; it gets the compiled wasm
// module and the weights from there, so it downloads nothing itself. The files never leave this machine: they are read here and
// only the vector and the thumbnail go back. Messages: EmbedRequest / EmbedEvent in protocol.js.
import { EmbedRequest, EmbedEvent, checkHandlers, errorText } from '../protocol.js';
import { preparePhoto, finishPhoto } from './photo-decode.js';

let wasm = null;
let embedder = null;
let options = { browserDecode: true };
let inOrder = Promise.resolve(); // photos are finished one at a time, in the order they came

async function init({ module, manifestJson, imageEncoder, imageHead, browserDecode }) {
  options = { browserDecode: browserDecode !== false };
  wasm = await import('../pkg/wasm_model.js');
  await wasm.default({ module_or_path: module });
  embedder = new wasm.ImageEmbedder(manifestJson, imageEncoder, imageHead);
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
  [EmbedRequest.embed](msg) {
    // Prepared at once (a big JPEG starts decoding on the browser's threads), finished in arrival order: the pool
    // sends the next photo while this one is in the encoder.
    const prepared = preparePhoto(wasm, msg.file, options);
    prepared.catch(() => {}); // its error is reported in order, below
    inOrder = inOrder.then(async () => {
      let out;
      try {
        out = await finishPhoto(embedder, await prepared);
      } catch (e) {
        out = { error: errorText(e) };
      }
      postMessage({ type: EmbedEvent.embedded, job: msg.job, ...out }, out.vector ? [out.vector.buffer] : []);
    });
  },
}, 'embed-worker');

onmessage = ({ data: msg }) => handlers[msg.type](msg);
