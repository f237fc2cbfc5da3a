// One embedding worker: turns the user's photo files into vectors (wasm ImageEmbedder, the candle
// EfficientNet-Lite0) and small thumbnails from the same decode (photo-decode.js: which decoder reads a photo).
// Started by the search worker's pool (embed-pool.js) only when photos are added; it gets the compiled wasm
// module and the weights from there, so it downloads nothing itself. The files never leave this machine: they are read here and
// only the vector and the thumbnail go back. Messages: EmbedRequest / EmbedEvent in protocol.js.
import { EmbedRequest, EmbedEvent, checkHandlers, errorText } from '../protocol.js';
import { embedPhoto } from './photo-decode.js';

let wasm = null;
let embedder = null;

async function init({ module, manifestJson, imageEncoder, imageHead }) {
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
  async [EmbedRequest.embed](msg) {
    let out;
    try {
      out = await embedPhoto(wasm, embedder, msg.file);
    } catch (e) {
      out = { error: errorText(e) };
    }
    postMessage({ type: EmbedEvent.embedded, job: msg.job, ...out }, out.vector ? [out.vector.buffer] : []);
  },
}, 'embed-worker');

onmessage = ({ data: msg }) => handlers[msg.type](msg);
