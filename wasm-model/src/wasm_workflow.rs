//! The browser API of the writer's workflow (issue #20; wasm32 only): refined queries (👍/👎 marks, layout
//! filters, near-duplicate collapse, "more varied") and pasted passages, on a flat gallery (one call) and on a
//! partitioned one (plan → fetch lists → `advance_refined` → `finish_refined` with the fetched items). A
//! refinement travels as the page's URL parameters (`up=3.17&down=5&orient=landscape&min=800&lic=pd&collapse=1
//! &vary=1`, `workflow::Refinement::from_params`), so a share link, this API and `/api/search` read the same text.
//!
//! ```js
//! engine.search_refined('a red kite', 30, 'all', 'up=4.9&collapse=1');   // [{id, score, strong?, similar?}]
//! engine.passage(text, 4, 12, 'all', 'collapse=1');                      // {ideas, whole, sentences, total, without_words}
//! // partitioned: every marked picture's list added first (its metadata names it), then
//! const plan = engine.plan_refined_search('a red kite', 30, 'all', 'collapse=1');
//! for (const list of plan.pending()) { engine.add_shard(bytes); engine.advance_refined(plan); }
//! for (const list of engine.calibration_lists()) engine.add_shard(bytes); // once, before the first collapse
//! engine.finish_refined(plan, plan.needs_items() ? JSON.stringify(items) : '[]');
//! ```

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::engine::{PassagePlan, RefinedHit, Scope};
use crate::gallery::GalleryItem;
use crate::partitioned::PlannedSearch;
use crate::rank::Scored;
use crate::wasm::{js_err, to_js, Engine};
use crate::workflow::{Layout, Refinement, CANDIDATES};

/// `up=3.17&collapse=1` → a checked refinement (names as in the URL; values carry no escapes: ids, words and
/// digits only). An empty text is the plain ranking.
fn refinement(params: &str) -> Result<Refinement, JsError> {
    let pairs = params.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, "")));
    Refinement::from_params(pairs, false).map_err(|e| JsError::new(&e))
}

fn scope(scope: &str) -> Result<Scope, JsError> {
    scope.parse().map_err(|e: String| JsError::new(&e))
}

/// A result as the page gets it: `similar` lists the near-duplicates collapsed into it (left out when none).
#[derive(Serialize)]
struct PageHit {
    id: u32,
    score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    strong: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    similar: Vec<u32>,
}

fn page_hits(hits: Vec<RefinedHit>) -> Vec<PageHit> {
    hits.into_iter().map(|h| PageHit { id: h.hit.id, score: h.hit.score, strong: h.hit.strong, similar: h.similar }).collect()
}

#[derive(Serialize)]
struct PageIdea {
    text: String,
    first: usize,
    last: usize,
    results: Vec<PageHit>,
}

#[derive(Serialize)]
struct PageAnswer {
    ideas: Vec<PageIdea>,
    whole: Vec<PageHit>,
    sentences: usize,
    total: usize,
    without_words: usize,
}

/// A planned refined query over a partitioned gallery (free it with `free()` when done).
#[wasm_bindgen]
pub struct RefinedPlan {
    inner: PlannedSearch,
    refinement: Refinement,
    /// Left out of the answer: "more like" its own picture, disliked pictures, an earlier idea's suggestions.
    excluded: Vec<u32>,
    k: usize,
    text_query: bool,
}

#[wasm_bindgen]
impl RefinedPlan {
    /// The planned lists not scanned yet, best first.
    pub fn pending(&self) -> Vec<u32> {
        self.inner.pending()
    }
    pub fn is_complete(&self) -> bool {
        self.inner.is_complete()
    }
    /// Whether `finish_refined` needs the candidates' items (a layout filter reads their size and licence).
    pub fn needs_items(&self) -> bool {
        !self.refinement.layout.is_empty()
    }
    /// Whether `finish_refined` collapses near-duplicates (the gallery's calibration lists must be added first).
    pub fn collapses(&self) -> bool {
        self.refinement.collapse
    }
    /// The candidates so far, best first (ids).
    pub fn candidates(&self) -> Vec<u32> {
        self.inner.results().into_iter().map(|s| s.id).collect()
    }
}

/// The pieces of `meta_items`' items a layout filter reads.
#[derive(Deserialize)]
struct ItemLayout {
    id: u32,
    #[serde(default)]
    licence: String,
    width: Option<u32>,
    height: Option<u32>,
    licence_id: Option<String>,
}

#[derive(Serialize)]
struct RefinedStep {
    /// The running top `k` (not yet filtered or collapsed).
    results: Vec<PageHit>,
    searched: usize,
    done: usize,
    total: usize,
}

/// A pasted passage split, encoded and grouped into ideas (free it with `free()`): what a partitioned gallery's
/// passage plans its queries from.
#[wasm_bindgen]
pub struct Passage {
    plan: PassagePlan,
}

#[wasm_bindgen]
impl Passage {
    /// `{ideas: [{text, first, last}], sentences, total, without_words}` (sentence numbers from 0).
    pub fn info(&self) -> Result<JsValue, JsError> {
        to_js(&serde_json::json!({
            "ideas": self.plan.ideas,
            "sentences": self.plan.split.sentences.len(),
            "total": self.plan.split.total,
            "without_words": self.plan.split.without_words,
        }))
    }
}

#[wasm_bindgen]
impl Engine {
    /// `search_in` refined by `params` (URL parameters, see above): `[{id, score, strong?, similar?}]` best first.
    /// Flat galleries; throws naming what is wrong with a parameter.
    pub fn search_refined(&self, query: &str, k: usize, scope_name: &str, params: &str) -> Result<JsValue, JsError> {
        let r = refinement(params)?;
        to_js(&page_hits(self.inner.search_refined(query, k, scope(scope_name)?, &r).map_err(js_err)?))
    }

    /// `similar` refined by `params`.
    pub fn similar_refined(&self, id: usize, k: usize, params: &str) -> Result<JsValue, JsError> {
        let r = refinement(params)?;
        to_js(&page_hits(self.inner.similar_refined(id, k, &r).map_err(js_err)?))
    }

    /// A passage's suggestions on a flat gallery: `{ideas: [{text, first, last, results}], whole, sentences,
    /// total, without_words}` — `k_idea` per idea (each picture once), `k_whole` for the whole passage; marks and
    /// "more varied" apply to the whole passage's results only. Throws for a passage over 100,000 bytes or
    /// without words.
    pub fn passage(&self, text: &str, k_idea: usize, k_whole: usize, scope_name: &str, params: &str) -> Result<JsValue, JsError> {
        let r = refinement(params)?;
        let a = self.inner.passage(text, k_idea, k_whole, scope(scope_name)?, &r).map_err(js_err)?;
        let ideas = a
            .ideas
            .into_iter()
            .map(|i| PageIdea { text: i.idea.text, first: i.idea.first, last: i.idea.last, results: page_hits(i.results) })
            .collect();
        to_js(&PageAnswer { ideas, whole: page_hits(a.whole), sentences: a.sentences, total: a.total, without_words: a.without_words })
    }

    /// The gallery's near-duplicate threshold: `{threshold, median, mad, samples}` (computed on first use; a
    /// partitioned gallery's `calibration_lists` must be added first).
    pub fn duplicate_calibration(&self) -> Result<JsValue, JsError> {
        let c = self.inner.duplicate_calibration().map_err(js_err)?;
        to_js(&serde_json::json!({ "threshold": c.threshold, "median": c.median, "mad": c.mad, "samples": c.samples }))
    }

    /// The lists a partitioned gallery's near-duplicate calibration reads (add them before the first collapse).
    pub fn calibration_lists(&self) -> Vec<u32> {
        self.inner.calibration_lists()
    }

    /// Plans a refined text query over a partitioned gallery. Every marked picture's list must have been added.
    pub fn plan_refined_search(&self, query: &str, k: usize, scope_name: &str, params: &str) -> Result<RefinedPlan, JsError> {
        let q = self.inner.query_vector(query).map_err(js_err)?;
        self.plan_refined(q, k, scope(scope_name)?, Vec::new(), true, refinement(params)?)
    }

    /// Plans "more like picture `id`", refined (its list and every marked picture's must have been added).
    pub fn plan_refined_similar(&self, id: u32, k: usize, params: &str) -> Result<RefinedPlan, JsError> {
        let row = self.row(id)?;
        self.plan_refined(row, k, Scope::All, vec![id], false, refinement(params)?)
    }

    /// Splits, encodes and groups a passage (throws for one over 100,000 bytes or without words).
    pub fn plan_passage(&self, text: &str) -> Result<Passage, JsError> {
        Ok(Passage { plan: self.inner.plan_passage(text).map_err(js_err)? })
    }

    /// Plans the whole passage's query (marks and every refinement apply).
    pub fn plan_passage_whole(&self, passage: &Passage, k: usize, scope_name: &str, params: &str) -> Result<RefinedPlan, JsError> {
        self.plan_refined(passage.plan.whole.clone(), k, scope(scope_name)?, Vec::new(), true, refinement(params)?)
    }

    /// Plans idea `idea`'s query: filters and collapse only, `shown` (earlier ideas' suggestions) left out.
    pub fn plan_passage_idea(&self, passage: &Passage, idea: usize, k: usize, scope_name: &str, params: &str, shown: Vec<u32>) -> Result<RefinedPlan, JsError> {
        let i = passage.plan.ideas.get(idea).ok_or_else(|| JsError::new(&format!("the passage has {} ideas, not {}", passage.plan.ideas.len(), idea + 1)))?;
        let r = PassagePlan::idea_refinement(&refinement(params)?);
        self.plan_refined(i.vector.clone(), k, scope(scope_name)?, shown, true, r)
    }

    /// Scans the planned lists now in memory: `{results: [{id, score}] (the running top k), searched, done, total}`.
    pub fn advance_refined(&self, plan: &mut RefinedPlan) -> Result<JsValue, JsError> {
        let p = self.inner.advance(&mut plan.inner).map_err(js_err)?;
        let results = plan
            .inner
            .results()
            .into_iter()
            .filter(|s| !plan.excluded.contains(&s.id))
            .take(plan.k)
            .map(|s| PageHit { id: s.id, score: s.score, strong: None, similar: Vec::new() })
            .collect();
        to_js(&RefinedStep { results, searched: p.searched, done: p.done, total: p.total })
    }

    /// The answer of a complete plan: `[{id, score, strong?, similar?}]`. `items_json`: the candidates' metadata
    /// items (`meta_items`' objects, as JSON) when `plan.needs_items()`, else `[]`; a candidate without its item
    /// fails a layout filter (never assumed to fit).
    pub fn finish_refined(&self, plan: &RefinedPlan, items_json: &str) -> Result<JsValue, JsError> {
        if !plan.inner.is_complete() {
            return Err(JsError::new("the plan has lists not scanned yet: add them and advance first"));
        }
        let items: Vec<ItemLayout> = serde_json::from_str(items_json).map_err(|e| JsError::new(&format!("items_json is not a list of metadata items: {e}")))?;
        let gallery_len = self.inner.gallery_len() as u32;
        let layout = |id: u32| -> Option<Layout> {
            if id >= gallery_len {
                return Some(Layout::own_photo());
            }
            let it = items.iter().find(|it| it.id == id)?;
            let item = GalleryItem { licence: it.licence.clone(), width: it.width, height: it.height, licence_id: it.licence_id.clone(), ..Default::default() };
            Some(Layout::of(&item))
        };
        let scored: Vec<Scored> = plan.inner.results();
        let hits = self.inner.finish_refined(&scored, &layout, &plan.excluded, plan.k, plan.text_query, &plan.refinement).map_err(js_err)?;
        to_js(&page_hits(hits))
    }
}

impl Engine {
    /// Picture `id`'s vector: a gallery picture's (its list added) or one of the user's photos'.
    fn row(&self, id: u32) -> Result<Vec<f32>, JsError> {
        let (id, n) = (id as usize, self.inner.gallery_len());
        let unknown = || JsError::new(&format!("picture {id} is not in the gallery (it has {} pictures)", self.inner.len()));
        match self.inner.partitioned() {
            Some(p) if id < n => p.row(id).map_err(js_err),
            _ if id < n => self.inner.gallery().row(id).ok_or_else(unknown),
            _ => self.inner.added().row(id - n).ok_or_else(unknown),
        }
    }

    /// A plan by vector `q`, moved by the refinement's marks, over enough candidates for its last steps.
    fn plan_refined(&self, q: Vec<f32>, k: usize, scope: Scope, mut excluded: Vec<u32>, text_query: bool, r: Refinement) -> Result<RefinedPlan, JsError> {
        let q = self.inner.feedback_vector(q, &r).map_err(js_err)?;
        excluded.extend(&r.down);
        let wanted = if r.needs_candidates() { CANDIDATES.max(k) } else { k };
        let inner = self.inner.plan_vector(q, wanted + excluded.len(), None, scope, text_query).map_err(js_err)?;
        Ok(RefinedPlan { inner, refinement: r, excluded, k, text_query })
    }
}
