// A pasted passage as text (pure; the page and the search worker both use it): whether pasted text is a passage
// rather than a prompt, the cut of an over-long passage to what the engine reads (at a paragraph or sentence
// end), and the compressed form a share link carries in its fragment (`#text=`: deflate-raw, then base64url; a
// fragment never reaches a server).

/** Longest passage the engine reads, in UTF-8 bytes (wasm-model workflow::passage::MAX_PASSAGE_BYTES). */
export const MAX_PASSAGE_BYTES = 100_000;
/** Sentences the engine searches at most (workflow::passage::MAX_SENTENCES). */
export const MAX_SENTENCES = 120;
/** Pasted text longer than this (characters) is a passage, not a prompt; the search box holds 500. */
const PROMPT_CHARS = 160;

const utf8 = new TextEncoder();

/** Whether pasted `text` should open passage mode: a line break, two sentences, or more than a prompt. */
export function looksLikePassage(text) {
  const t = text.trim();
  if (!t) return false;
  if (t.length > PROMPT_CHARS || /\n\s*\S/.test(t)) return true;
  return /[.!?…]["')\]’”]*\s+\S.*[\p{L}\p{N}]/u.test(t); // a sentence end followed by more words
}

/** `text` cut to at most `max` UTF-8 bytes, at the last paragraph break (else sentence end, else space) in the
 *  last fifth of what fits: `{ text, bytes, kept, truncated }` (`bytes`: the whole text's size). */
export function fitPassage(text, max = MAX_PASSAGE_BYTES) {
  const encoded = utf8.encode(text);
  const bytes = encoded.length;
  if (bytes <= max) return { text, bytes, kept: bytes, truncated: false };
  let end = max;
  while (end > 0 && (encoded[end] & 0xC0) === 0x80) end -= 1; // a continuation byte: never split a character
  const head = new TextDecoder().decode(encoded.subarray(0, end));
  const floor = Math.floor(head.length * 0.8);
  const lastEnd = (re) => {
    let at = -1;
    for (const m of head.matchAll(re)) at = m.index + m[0].length;
    return at > floor ? at : -1;
  };
  const cut = [/\n\s*\n/g, /[.!?…]["')\]’”]*\s/g, /\s/g].map(lastEnd).find((i) => i > 0) ?? head.length;
  const kept = head.slice(0, cut).trimEnd();
  return { text: kept, bytes, kept: utf8.encode(kept).length, truncated: true };
}

const toBase64Url = (bytes) => {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};
const fromBase64Url = (text) => {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error('the shared text in the link is damaged (it is not base64url); ask for the link again');
  let bin;
  try {
    bin = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4));
  } catch {
    throw new Error('the shared text in the link is damaged (it is cut short); ask for the link again');
  }
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
};

async function pipe(bytes, stream) {
  const out = new Response(new Blob([bytes]).stream().pipeThrough(stream));
  return new Uint8Array(await out.arrayBuffer());
}

/** `text` compressed for a link's fragment (deflate-raw, base64url). */
export async function encodeFragment(text) {
  return toBase64Url(await pipe(utf8.encode(text), new CompressionStream('deflate-raw')));
}

/** The text a link's `#text=` carried; throws saying the link is damaged when it does not decompress. Stops at
 *  4 × MAX_PASSAGE_BYTES of output (a hostile link cannot inflate without bound). */
export async function decodeFragment(encoded) {
  const compressed = fromBase64Url(encoded);
  const reader = new Blob([compressed]).stream().pipeThrough(new DecompressionStream('deflate-raw')).getReader();
  const parts = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      size += value.length;
      if (size > 4 * MAX_PASSAGE_BYTES) { reader.cancel(); break; }
    }
  } catch {
    throw new Error('the shared text in the link is damaged (it does not decompress); ask for the link again');
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) { all.set(p, at); at += p.length; }
  return new TextDecoder().decode(all);
}
