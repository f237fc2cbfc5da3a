// The page's side of the search worker (worker/search-worker.js): starts it, sends requests, and routes its
// events to the page's handlers. Messages: Request / Event in protocol.js.
import { Request, Event, checkHandlers } from '../protocol.js';

/** Starts the search worker and asks it to load. `handlers`: one function per Event except `answer`, which
 *  resolves `ask`, and `searchProgress`, which goes to that `ask`'s `onProgress`. `onFailure(message)`: the
 *  worker script itself could not start. */
export function startSearchWorker(handlers, onFailure) {
  const worker = new Worker(new URL('../worker/search-worker.js', import.meta.url), { type: 'module' });
  let seq = 0;
  const pending = new Map(); // seq -> { resolve, onProgress }
  const all = checkHandlers(Event, {
    ...handlers,
    [Event.answer](data) {
      const asked = pending.get(data.seq);
      pending.delete(data.seq);
      asked?.resolve(data);
    },
    [Event.searchProgress](data) {
      pending.get(data.seq)?.onProgress?.(data);
    },
  }, 'page');
  worker.onmessage = ({ data }) => all[data.type]?.(data);
  worker.onerror = (e) => onFailure(`the search worker failed to start (${e.message || 'script error'})`);
  const send = (type, fields = {}) => worker.postMessage({ ...fields, type });
  send(Request.load);
  return {
    /** A request without an answer. */
    send,
    /** A request with an answer: resolves to the `answer` event (`{ error }` when it failed). `onProgress` gets
     *  its `searchProgress` events (a partitioned gallery's running results). */
    ask: (type, fields = {}, onProgress = null) => new Promise((resolve) => {
      const s = ++seq;
      pending.set(s, { resolve, onProgress });
      worker.postMessage({ ...fields, type, seq: s });
    }),
  };
}
