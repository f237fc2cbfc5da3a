// The writer's workflow in the search worker (issue #20): refined searches and "more like this" (👍/👎 marks,
// layout filters, near-duplicate groups, "more varied") and pasted passages, on each gallery tier — a flat
// gallery answers in one engine call; a partitioned one plans, fetches its lists as a plain query does
// (partitioned.js), then finishes with the metadata it fetched; a server gallery passes the same parameters to
// /api/search (server-gallery.js). The refinement arrives as URL parameters (page/refine.js `engineParams`).
import { fitPassage } from '../page/passage-text.js';
import { Superseded } from './partitioned.js';

/** The marked picture ids in `refine` (their rows must be in the engine before a partitioned plan). */
function marks(refine) {
  const p = new URLSearchParams(refine);
  return ['up', 'down'].flatMap((name) => (p.get(name) || '').split(/[.,]/).filter((s) => /^\d+$/.test(s)).map(Number));
}

// [{id, score, strong?, similar?}] as the page gets them.
const hits = (raw) => Array.from(raw, (h) => ({ id: h.id, score: h.score, strong: h.strong, similar: h.similar || [] }));
const shownIds = (results) => results.flatMap((r) => [r.id, ...r.similar]);

/** One refined query over a partitioned gallery `p`: `makePlan()` returns a wasm RefinedPlan. Resolves to
 *  `{ results, searched, lists, fetched }`; `onStep` gets the running (not yet refined) top k. */
async function runRefined(p, makePlan, onStep) {
  const engine = p.engine;
  let results = null;
  const step = await p.run(makePlan, onStep, {
    advance: (plan) => engine.advance_refined(plan),
    items: false,
    finish: async (plan) => {
      if (plan.collapses() && !p.calibrated) {
        // The gallery's near-duplicate threshold, once: its first lists (~1,000 pictures), then cached.
        for (const list of engine.calibration_lists()) await p.loadList(list);
        engine.duplicate_calibration();
        p.calibrated = true;
      }
      const items = plan.needs_items() ? await p.items(Array.from(plan.candidates())) : [];
      results = hits(engine.finish_refined(plan, JSON.stringify(items)));
    },
  });
  return { results, searched: step.searched, lists: { done: step.done, total: step.total }, fetched: step.fetched };
}

/** The request handlers' work; `tier()` is `{ engine, partitioned, server }` as loaded. */
export function workflow(tier) {
  async function partitionedAnswer(p, msg, makePlan, onStep, own = null) {
    // Feedback reads the marked pictures' vectors (their lists); their items name them in the marks bar.
    const marked = [];
    for (const id of marks(msg.refine)) marked.push(await p.ensureRow(id));
    const answer = await runRefined(p, makePlan, onStep);
    const items = await p.items([...new Set(shownIds(answer.results))]);
    return { ...answer, items: [...(own ? [own] : []), ...items, ...marked.filter(Boolean)] };
  }

  return {
    /** `{ query, k, scope, refine }` → `{ results, items? … }`. */
    async search(msg, onStep) {
      const { engine, partitioned, server } = tier();
      const scope = msg.scope || 'all';
      if (server) return server.search(msg);
      if (!partitioned) return { results: hits(engine.search_refined(msg.query, msg.k, scope, msg.refine)) };
      return partitionedAnswer(partitioned, msg, () => engine.plan_refined_search(msg.query, msg.k, scope, msg.refine), onStep);
    },

    /** `{ id, k, refine }` → `{ results, items? … }` (partitioned: `items` starting with picture `id`'s own). */
    async similar(msg, onStep) {
      const { engine, partitioned, server } = tier();
      if (server) return server.similar(msg);
      if (!partitioned) return { results: hits(engine.similar_refined(msg.id, msg.k, msg.refine)) };
      const own = await partitioned.ensureRow(msg.id);
      return partitionedAnswer(partitioned, msg, () => engine.plan_refined_similar(msg.id, msg.k, msg.refine), onStep, own);
    },

    /** `{ text, kIdea, kWhole, scope, refine }` → `{ ideas: [{ text, first, last, results }], whole, sentences,
     *  total, withoutWords, truncated: { bytes, kept } | null, items? }`. A text over the engine's limit is cut
     *  at a paragraph or sentence end first (and the answer says so). */
    async passage(msg) {
      const { engine, partitioned, server } = tier();
      const fit = fitPassage(String(msg.text ?? ''));
      const truncated = fit.truncated ? { bytes: fit.bytes, kept: fit.kept } : null;
      const scope = msg.scope || 'all';
      if (server) return { ...(await server.passage({ ...msg, text: fit.text })), truncated };
      if (!partitioned) {
        const a = engine.passage(fit.text, msg.kIdea, msg.kWhole, scope, msg.refine);
        return { ideas: a.ideas.map((i) => ({ ...i, results: hits(i.results) })), whole: hits(a.whole), sentences: a.sentences,
          total: a.total, withoutWords: a.without_words, truncated };
      }
      // Partitioned: the whole passage, then each idea in turn (an idea leaves out what earlier ideas suggested).
      const plan = engine.plan_passage(fit.text);
      try {
        const info = plan.info();
        for (const id of marks(msg.refine)) await partitioned.ensureRow(id);
        const whole = await runRefined(partitioned, () => engine.plan_passage_whole(plan, msg.kWhole, scope, msg.refine), null);
        const ideas = [];
        const shown = [];
        let last = partitioned.latest; // a query started since (its ticket is newer) supersedes this passage
        for (const [i, idea] of info.ideas.entries()) {
          if (partitioned.latest !== last) throw new Superseded();
          const { results } = await runRefined(partitioned,
            () => engine.plan_passage_idea(plan, i, msg.kIdea, scope, msg.refine, Uint32Array.from(shown)), null);
          last = partitioned.latest;
          shown.push(...results.map((r) => r.id));
          ideas.push({ ...idea, results });
        }
        const items = await partitioned.items([...new Set([...shownIds(whole.results), ...ideas.flatMap((i) => shownIds(i.results))])]);
        return { ideas, whole: whole.results, sentences: info.sentences, total: info.total, withoutWords: info.without_words,
          truncated, items };
      } finally {
        plan.free();
      }
    },
  };
}
