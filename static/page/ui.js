// The page's elements, looked up once (`ui`), and `el()`, the one way new elements are made: user text only
// ever goes in through textContent / attributes, never parsed as HTML.

const $ = (id) => document.getElementById(id);

export const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role') node.setAttribute(k, v);
    else node[k] = v;
  }
  node.append(...children);
  return node;
};

export const ui = {
  input: $('q'), form: $('search-form'), results: $('results'), status: $('status'), empty: $('empty'),
  examples: $('examples'), loading: $('loading'), loadBar: $('load-bar'), loadText: $('load-text'),
  error: $('error'), errorMessage: $('error-message'), retry: $('retry'), copy: $('copy-link'),
  likeBanner: $('like-banner'), likeCaption: $('like-caption'), likeClear: $('like-clear'),
  viewer: $('viewer'), viewerImg: $('viewer-img'), viewerCaption: $('viewer-caption'),
  viewerLicence: $('viewer-licence'), viewerSource: $('viewer-source'), viewerScore: $('viewer-score'),
  viewerLike: $('viewer-like'), viewerWhy: $('viewer-why'), why: $('why'), whyList: $('why-list'), whyPrompt: $('why-prompt'),
  modelInfo: $('model-info'),
  fitNote: $('fit-note'), gallerySummary: $('gallery-summary'), examplesIntro: $('examples-intro'),
  viewerCredit: $('viewer-credit'), viewerCreditLine: $('viewer-credit-line'),
  mine: $('mine'), mineCount: $('mine-count'), mineFiles: $('mine-files'), mineFolder: $('mine-folder'),
  mineClear: $('mine-clear'), mineProgress: $('mine-progress'), mineBar: $('mine-bar'),
  mineProgressText: $('mine-progress-text'), mineStop: $('mine-stop'), mineNote: $('mine-note'),
  mineErrors: $('mine-errors'), mineErrorsSummary: $('mine-errors-summary'), mineErrorsList: $('mine-errors-list'),
  mineHint: $('mine-hint'), scope: $('scope'), dropOverlay: $('drop-overlay'),
  refine: $('refine'), refineOrient: $('refine-orient'), refineMin: $('refine-min'), refineLic: $('refine-lic'),
  refineCollapse: $('refine-collapse'), refineVary: $('refine-vary'), passageToggle: $('passage-toggle'),
  marks: $('marks'), marksText: $('marks-text'), marksList: $('marks-list'), marksClear: $('marks-clear'),
  passage: $('passage'), passageText: $('passage-text'), passageGo: $('passage-go'), passageClose: $('passage-close'),
  passageNote: $('passage-note'), passageIdeas: $('passage-ideas'), passageWhole: $('passage-whole'),
};
