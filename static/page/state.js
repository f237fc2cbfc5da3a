// What the page shows, in one object: every module reads and writes `state`, and the URL mirrors part of it
// (url.js).
import { MyPhotoIndex } from './photo-index.js';
import { plainRefinement } from './refine.js';

/** Which pictures a search ranks (URL parameter `in`). */
export const SCOPES = ['all', 'mine', 'gallery'];

export const state = {
  items: [],           // gallery.json items; index = gallery row id (a partitioned gallery's: those seen so far)
  count: 0,            // pictures in the gallery
  partitioned: null,   // { lists, probe } of a partitioned gallery, else null
  server: false,       // the gallery is searched on the server (worker/server-gallery.js)
  ready: false,
  query: '',           // text in the box
  like: null,          // picture id for "more like this", or null
  shown: [],           // [{id, score}] currently rendered
  viewing: null,       // picture id open in the viewer
  scope: 'all',        // one of SCOPES
  myPhotos: new MyPhotoIndex(), // the user's photos (ids after the gallery's): has(id), get(id) -> { name, path, thumbUrl }
  canEmbed: false,     // the model ships an image encoder
  sharedBoard: null,   // a board opened from a link (URL board=3,17,5): { ids, error } (board-link.js, board.js)
  refine: plainRefinement(), // 👍/👎 marks, layout filters, grouping, variety (refine.js; URL up=, down=, orient= …)
  passage: null,       // passage mode: the pasted text (URL #text=, compressed: passage-text.js), else null
};
