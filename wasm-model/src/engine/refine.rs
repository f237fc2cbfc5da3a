//! Refined queries (issue #20; the logic is `workflow`'s): 👍/👎 feedback moves the query vector, layout filters
//! drop what does not fit, near-duplicates collapse into groups and "more varied" re-ranks by MMR, on every tier:
//!
//! - flat gallery (and the user's photos): the filters and the excluded pictures are applied to every row
//!   before the top [`CANDIDATES`] are taken (exact);
//! - partitioned gallery: the planned lists' best `CANDIDATES` (plus the excluded) are the candidates; their
//!   rows are in memory after the scan, their metadata is read for the filters (natively from the folder; the
//!   page passes the items it fetched to [`Engine::finish_refined`]).
//!
//! The near-duplicate threshold is calibrated once per gallery (`workflow::duplicates`) and cached here.

use std::sync::OnceLock;

use serde::Serialize;

use super::search::{Hit, Scope};
use super::{Engine, EngineError, MAX_K};
use crate::rank::{scores_i8, top_k, Scored};
use crate::workflow::duplicates::{calibrate, spread, CALIBRATION_REFERENCE, CALIBRATION_SAMPLES};
use crate::workflow::feedback::rocchio;
use crate::workflow::refine::{finish, Candidate, Refinement, CANDIDATES};
use crate::workflow::{DuplicateCalibration, Layout};

/// Rows of a partitioned gallery's calibration (its first lists, in list order, until this many).
const PARTITIONED_CALIBRATION_ROWS: usize = 1024;

/// What the engine computes once for refined queries.
#[derive(Debug, Default)]
pub struct WorkflowCache {
    calibration: OnceLock<DuplicateCalibration>,
    /// Flat galleries: every item's layout (filters read them on every query).
    layouts: OnceLock<Vec<Layout>>,
}

/// One result of a refined query: the hit, and the near-duplicates collapsed into it (best first).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefinedHit {
    #[serde(flatten)]
    pub hit: Hit,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub similar: Vec<u32>,
}

impl Engine {
    /// The gallery's near-duplicate calibration, computed on first use: the nearest-neighbour cosines of
    /// [`CALIBRATION_SAMPLES`] pictures spread over the gallery (flat: among up to [`CALIBRATION_REFERENCE`]
    /// spread rows, all of them in a gallery that size; partitioned: among the rows of its first lists, which a
    /// page must have added — [`Engine::calibration_lists`]).
    pub fn duplicate_calibration(&self) -> Result<DuplicateCalibration, EngineError> {
        if let Some(c) = self.workflow.calibration.get() {
            return Ok(*c);
        }
        let rows: Vec<Vec<f32>> = match &self.partitioned {
            None => spread(self.gallery.len(), CALIBRATION_REFERENCE).into_iter().filter_map(|i| self.gallery.row(i)).collect(),
            Some(p) => {
                let mut rows = Vec::new();
                for list in self.calibration_lists() {
                    let shard = p.load(list)?;
                    rows.extend((0..shard.len()).map(|i| shard.row(i)));
                }
                rows
            }
        };
        let c = calibrate(&nearest_neighbour_cosines(&rows, self.model.manifest.embed_dim));
        Ok(*self.workflow.calibration.get_or_init(|| c))
    }

    /// The lists a partitioned gallery's calibration reads (list order, until ~1,024 rows); none for a flat one.
    pub fn calibration_lists(&self) -> Vec<u32> {
        let Some(p) = &self.partitioned else { return Vec::new() };
        let mut total = 0;
        let mut lists = Vec::new();
        for (list, &size) in p.header().list_sizes.iter().enumerate() {
            if total >= PARTITIONED_CALIBRATION_ROWS {
                break;
            }
            total += size as usize;
            lists.push(list as u32);
        }
        lists
    }

    /// The query vector `q` moved by the refinement's marks (Rocchio; each marked picture's row must be
    /// readable: in memory, or natively in the folder).
    pub fn feedback_vector(&self, q: Vec<f32>, r: &Refinement) -> Result<Vec<f32>, EngineError> {
        if !r.has_feedback() {
            return Ok(q);
        }
        let rows = |ids: &[u32]| ids.iter().map(|&id| self.row(id as usize)).collect::<Result<Vec<_>, _>>();
        rocchio(&q, &rows(&r.up)?, &rows(&r.down)?).map_err(|e| EngineError::Refine(e.to_string()))
    }

    /// `search_in`, refined.
    pub fn search_refined(&self, query: &str, k: usize, scope: Scope, r: &Refinement) -> Result<Vec<RefinedHit>, EngineError> {
        let q = self.query_vector(query)?;
        self.rank_refined(q, k, scope, &[], true, r)
    }

    /// `similar`, refined (the picture itself is left out).
    pub fn similar_refined(&self, id: usize, k: usize, r: &Refinement) -> Result<Vec<RefinedHit>, EngineError> {
        let row = self.row(id)?;
        self.rank_refined(row, k, Scope::All, &[id as u32], false, r)
    }

    /// Ranks by `q` (a text query's vector when `text_query`: hubness-corrected, strength marked unless marks
    /// moved it) with `exclude` and the refinement's disliked pictures left out; every tier, natively.
    pub fn rank_refined(&self, q: Vec<f32>, k: usize, scope: Scope, exclude: &[u32], text_query: bool, r: &Refinement) -> Result<Vec<RefinedHit>, EngineError> {
        r.check().map_err(EngineError::Refine)?;
        let q = self.feedback_vector(q, r)?;
        let excluded: Vec<u32> = exclude.iter().chain(&r.down).copied().collect();
        let wanted = if r.needs_candidates() { CANDIDATES.max(k) } else { k }.min(MAX_K);
        let scored: Vec<Scored> = if self.partitioned.is_some() {
            let mut plan = self.plan_vector(q, wanted + excluded.len(), None, scope, text_query)?;
            self.partitioned.as_ref().ok_or(EngineError::NotPartitioned)?.complete(&mut plan)?;
            plan.results()
        } else {
            self.flat_candidates(&q, wanted, scope, &excluded, text_query, r)
        };
        self.finish_refined(&scored, &|id| self.layout_of(id), &excluded, k, text_query, r)
    }

    /// Flat gallery: every row scored, the excluded and the filtered out dropped, the best `wanted` kept.
    fn flat_candidates(&self, q: &[f32], wanted: usize, scope: Scope, excluded: &[u32], text_query: bool, r: &Refinement) -> Vec<Scored> {
        let n = self.gallery.len();
        let mut scores = if scope == Scope::Added { vec![f32::NAN; n] } else { self.gallery.scores(q) };
        if text_query {
            scores.iter_mut().zip(&self.hub_penalty).for_each(|(s, p)| *s -= p);
        }
        if scope != Scope::Gallery {
            self.added.scores_into(q, if text_query { self.added_hub_penalty } else { 0.0 }, &mut scores);
        }
        for &id in excluded {
            if let Some(s) = scores.get_mut(id as usize) {
                *s = f32::NAN;
            }
        }
        if !r.layout.is_empty() {
            let layouts = self.workflow.layouts.get_or_init(|| self.index.items.iter().map(Layout::of).collect());
            for (id, s) in scores.iter_mut().enumerate() {
                let layout = layouts.get(id).copied().unwrap_or_else(Layout::own_photo);
                if !r.layout.accepts(&layout) {
                    *s = f32::NAN;
                }
            }
        }
        top_k(&scores, wanted, None).into_iter().filter(|s| s.score > f32::NEG_INFINITY).collect()
    }

    /// Picture `id`'s layout: its item's (flat, or natively a partitioned gallery's metadata), an added photo's.
    pub fn layout_of(&self, id: u32) -> Option<Layout> {
        let id = id as usize;
        if id >= self.gallery_len() {
            return (id < self.len()).then(Layout::own_photo);
        }
        match &self.partitioned {
            None => self.index.items.get(id).map(Layout::of),
            Some(p) => p.item(id).ok().map(|it| Layout::of(&it.item)),
        }
    }

    /// The last steps of a refined query on its ranked candidates (`scored`, best first): the excluded and
    /// (with a layout filter) the pictures whose `layout` does not fit — or is not known: `None` — dropped,
    /// near-duplicates collapsed when asked (each candidate's row must be readable), MMR when asked, `k` kept.
    /// The page calls this for a partitioned gallery with the items it fetched.
    pub fn finish_refined(
        &self,
        scored: &[Scored],
        layout: &dyn Fn(u32) -> Option<Layout>,
        excluded: &[u32],
        k: usize,
        text_query: bool,
        r: &Refinement,
    ) -> Result<Vec<RefinedHit>, EngineError> {
        let filter = !r.layout.is_empty();
        let kept: Vec<Scored> = scored
            .iter()
            .filter(|s| !excluded.contains(&s.id) && s.score.is_finite())
            .filter(|s| !filter || layout(s.id).is_some_and(|l| r.layout.accepts(&l)))
            .take(if r.needs_candidates() { CANDIDATES.max(k) } else { k })
            .copied()
            .collect();
        let groups = if r.collapse || r.vary {
            let threshold = if r.collapse { Some(self.duplicate_calibration()?.threshold) } else { None };
            let candidates = kept
                .iter()
                .map(|s| Ok(Candidate { id: s.id, score: s.score, vector: self.row(s.id as usize)? }))
                .collect::<Result<Vec<_>, EngineError>>()?;
            finish(&candidates, threshold, r.vary, k)
        } else {
            kept.iter().take(k).map(|s| crate::workflow::Group { id: s.id, score: s.score, similar: Vec::new() }).collect()
        };
        // strength is calibrated for plain text queries: marks move the query onto another scale
        let strength = text_query && !r.has_feedback();
        Ok(groups
            .into_iter()
            .map(|g| RefinedHit { hit: self.hit_of(g.id, g.score, strength), similar: g.similar })
            .collect())
    }

    /// A hit for picture `id` with its file, thumbnail and caption when the engine has them.
    fn hit_of(&self, id: u32, score: f32, strength: bool) -> Hit {
        let i = id as usize;
        let n = self.gallery_len();
        let (file, thumb, caption) = if i < n {
            self.item(i).map(|it| (it.file, it.thumb, it.caption)).unwrap_or_default()
        } else {
            self.added.names(i - n).map(|(f, t)| (f.to_owned(), t.to_owned(), String::new())).unwrap_or_default()
        };
        Hit { id, file, thumb, caption, score, strong: if strength { self.match_strength(score) } else { None } }
    }
}

/// Each row's cosine with its nearest other row among `rows` (int8, as every gallery scores), for the first
/// [`CALIBRATION_SAMPLES`] rows spread over them. Public so that the database tier calibrates a gallery it loads
/// exactly as the engine calibrates the same flat gallery.
pub fn nearest_neighbour_cosines(rows: &[Vec<f32>], dim: usize) -> Vec<f32> {
    let mut codes = Vec::with_capacity(rows.len() * dim);
    let mut scales = Vec::with_capacity(rows.len());
    for r in rows.iter().filter(|r| r.len() == dim) {
        if let Ok((c, s)) = super::quantize_i8(r) {
            codes.extend(c);
            scales.push(s);
        }
    }
    let mut out = Vec::with_capacity(scales.len());
    spread(scales.len(), CALIBRATION_SAMPLES)
        .into_iter()
        .map(|i| {
            let row: Vec<f32> = codes[i * dim..(i + 1) * dim].iter().map(|&c| c as f32 * scales[i]).collect();
            out.clear();
            scores_i8(&codes, &scales, dim, &row, &mut out);
            out.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &s)| s).fold(f32::NAN, f32::max)
        })
        .collect()
}
