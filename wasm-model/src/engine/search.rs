//! Ranking: the `k` best images for a text query (cosine less the hubness correction) or for an image
//! (plain cosine), over the gallery, the added photos or both.

use serde::Serialize;

use super::{Engine, EngineError, MAX_K};
use crate::rank::top_k;

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub id: u32,
    pub file: String,
    pub thumb: String,
    pub caption: String,
    pub score: f32,
    /// Text queries of a calibrated model (manifest `retrieval.strong_match`): whether the score reaches the
    /// strong-match threshold. `None` (left out of JSON) for image-to-image queries and uncalibrated models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strong: Option<bool>,
}

/// Which images a search ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// The gallery and the added photos together.
    #[default]
    All,
    /// Only the shipped gallery.
    Gallery,
    /// Only the added photos.
    Added,
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" | "" => Ok(Scope::All),
            "gallery" => Ok(Scope::Gallery),
            "mine" | "added" => Ok(Scope::Added),
            _ => Err(format!("unknown scope {s:?}: expected all, gallery or mine")),
        }
    }
}

impl Engine {
    /// Like [`Engine::search`], over `scope`.
    pub fn search_in(&self, query: &str, k: usize, scope: Scope) -> Result<Vec<Hit>, EngineError> {
        let q = self.query_vector(query)?;
        if self.partitioned.is_some() {
            return self.search_partitioned(q, k, None, scope, true);
        }
        Ok(self.rank_scored(&q, k, None, scope, true))
    }


    /// The `k` images that best fit `query`, best first (ties → lower id). Scores are cosines, less the
    /// hubness correction when the model has one (manifest `retrieval`).
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, EngineError> {
        self.search_in(query, k, Scope::All)
    }

    /// The `k` images most like gallery image `id` (which is left out).
    pub fn similar(&self, id: usize, k: usize) -> Result<Vec<Hit>, EngineError> {
        let row = self.row(id)?;
        if self.partitioned.is_some() {
            return self.search_partitioned(row, k, Some(id as u32), Scope::All, false);
        }
        Ok(self.rank(&row, k, Some(id as u32)))
    }

    /// Ranks the gallery and the added photos by `query` (a vector of the model's dimension); flat galleries
    /// only (a partitioned one plans its queries: [`Engine::plan_vector`]).
    pub fn rank(&self, query: &[f32], k: usize, exclude: Option<u32>) -> Vec<Hit> {
        self.rank_in(query, k, exclude, Scope::All)
    }

    /// Ranks the images in `scope` by cosine; ids stay global (added photos are `gallery_len()..`).
    pub fn rank_in(&self, query: &[f32], k: usize, exclude: Option<u32>, scope: Scope) -> Vec<Hit> {
        self.rank_scored(query, k, exclude, scope, false)
    }

    /// `rank_in`, with the hubness correction when `text_query` (it is measured against captions, so it
    /// applies to text queries, not to image-to-image similarity).
    fn rank_scored(&self, query: &[f32], k: usize, exclude: Option<u32>, scope: Scope, text_query: bool) -> Vec<Hit> {
        let n = self.gallery.len();
        let mut scores = if scope == Scope::Added { vec![f32::NAN; n] } else { self.gallery.scores(query) };
        if text_query {
            scores.iter_mut().zip(&self.hub_penalty).for_each(|(s, p)| *s -= p);
        }
        if scope != Scope::Gallery {
            let added_penalty = if text_query { self.added_hub_penalty } else { 0.0 };
            self.added.scores_into(query, added_penalty, &mut scores);
        }
        // Out-of-scope rows score NaN (they rank last); drop them rather than return them.
        let in_scope = |id: usize| match scope {
            Scope::All => true,
            Scope::Gallery => id < n,
            Scope::Added => id >= n,
        };
        top_k(&scores, k.min(MAX_K), exclude)
            .into_iter()
            .filter(|s| in_scope(s.id as usize))
            .map(|s| {
                let id = s.id as usize;
                let (file, thumb, caption) = match self.index.items.get(id) {
                    Some(item) if id < n => (item.file.clone(), item.thumb.clone(), item.caption.clone()),
                    _ => {
                        let (file, thumb) = self.added.names(id - n).unwrap_or_default();
                        (file.to_owned(), thumb.to_owned(), String::new())
                    }
                };
                let strong = if text_query { self.match_strength(s.score) } else { None };
                Hit { id: s.id, file, thumb, caption, score: s.score, strong }
            })
            .collect()
    }

    /// Whether a text query's result with this score is a strong match (manifest `retrieval.strong_match`);
    /// `None` when the model is not calibrated. Image-to-image scores are plain cosines on another scale: not
    /// for them.
    pub fn match_strength(&self, score: f32) -> Option<bool> {
        self.model.manifest.match_strength(score)
    }

    /// Sets `strong` on the hits of a text query (for callers that rank in steps, as a partitioned gallery does).
    pub fn mark_strength(&self, hits: &mut [Hit]) {
        hits.iter_mut().for_each(|h| h.strong = self.match_strength(h.score));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{engine, items};
    use super::*;
    use crate::rank::dot_f32;
    use crate::gallery::{write_gallery_bin, GalleryDtype, GalleryIndex};
    use crate::testutil::{random_model, random_rows, small_config};

    #[test]
    fn search_is_exhaustive_top_k() {
        for dtype in [GalleryDtype::F32, GalleryDtype::F16, GalleryDtype::Int8] {
            let e = engine(dtype);
            let hits = e.search("w2 w5 w7", 5).unwrap();
            assert_eq!(hits.len(), 5);
            let q = e.query_vector("w2 w5 w7").unwrap();
            let mut all: Vec<(f32, usize)> = (0..30).map(|i| (dot_f32(&q, &e.gallery().row(i).unwrap()), i)).collect();
            all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            assert_eq!(hits.iter().map(|h| h.id as usize).collect::<Vec<_>>(), all[..5].iter().map(|a| a.1).collect::<Vec<_>>());
            assert_eq!(hits[0].file, format!("img{}.jpg", hits[0].id));
            assert!((hits[0].score - all[0].0).abs() < 1e-3);
        }
    }

    /// With `retrieval` in the manifest, text queries score `cosine - weight * hubness`: a hub loses its lead;
    /// image-to-image similarity stays plain cosine; added photos get the gallery's mean hubness.
    #[test]
    fn hubness_correction_reorders_text_queries_only() {
        let plain = engine(GalleryDtype::F32);
        let q = plain.query_vector("w2 w5 w7").unwrap();
        let top = plain.search("w2 w5 w7", 2).unwrap();
        let (first, second) = (top[0].id as usize, top[1].id as usize);
        let gap = top[0].score - top[1].score;

        let mut model = random_model(small_config(), 6, 9, false);
        model.manifest.retrieval = Some(crate::model_dir::Retrieval { image_views: vec!["original".into()], hubness_k: 10, hubness_weight: 0.5, strong_match: None });
        let id = model.model_id().to_owned();
        let bin = write_gallery_bin(&id, 6, &random_rows(30, 6, 2), GalleryDtype::F32).unwrap();
        let mut its = items(30);
        for it in its.iter_mut() {
            it.hubness = Some(0.2);
        }
        its[first].hubness = Some(0.2 + 4.0 * gap + 0.01); // penalty 0.5 × that: more than the gap
        its[7].hubness = None; // unknown: the mean
        let mut e = Engine::new(model, &bin, &GalleryIndex::new(&id, its.clone()).to_json()).unwrap();
        let hits = e.search("w2 w5 w7", 30).unwrap();
        assert_eq!(hits[0].id as usize, second, "the hub {first} must drop below {second}");
        let mean = its.iter().filter_map(|i| i.hubness).sum::<f32>() / 29.0;
        for h in &hits {
            let cos = dot_f32(&q, &e.gallery().row(h.id as usize).unwrap());
            let hub = its[h.id as usize].hubness.unwrap_or(mean);
            assert!((h.score - (cos - 0.5 * hub)).abs() < 1e-5, "id {}: {} vs {}", h.id, h.score, cos - 0.5 * hub);
        }
        // similar(): plain cosine, unchanged by hubness
        assert_eq!(e.similar(3, 5).unwrap(), plain.similar(3, 5).unwrap());
        // an added photo equal to the query: its (int8) cosine, ≈ 1, less the mean penalty
        e.add_vector("mine.jpg", "blob:1", q.clone()).unwrap();
        let mine = e.search_in("w2 w5 w7", 1, Scope::Added).unwrap();
        let cos = dot_f32(&q, &e.added().row(0).unwrap());
        assert!((cos - 1.0).abs() < 1e-2, "{cos}");
        assert!((mine[0].score - (cos - 0.5 * mean)).abs() < 1e-5, "{}", mine[0].score);
    }

    /// A calibrated model (`retrieval.strong_match`) marks each text-query hit strong or not by its score; image
    /// queries and an uncalibrated model leave `strong` out (also of the JSON).
    #[test]
    fn text_hits_carry_their_strength_when_the_model_is_calibrated() {
        let plain = engine(GalleryDtype::F32);
        let hits = plain.search("w2 w5 w7", 30).unwrap();
        assert!(hits.iter().all(|h| h.strong.is_none()));
        assert!(!serde_json::to_string(&hits[0]).unwrap().contains("strong"));
        // the threshold between the 3rd and 4th score: exactly three strong hits
        let min_score = (hits[2].score + hits[3].score) / 2.0;
        let mut model = random_model(small_config(), 6, 9, false);
        let calibrated = crate::model_dir::StrongMatch {
            min_score, target_precision: 0.5, precision: 0.5, coverage: 0.2, queries: 10, images: 5, captions: "c.json".into(),
        };
        model.manifest.retrieval =
            Some(crate::model_dir::Retrieval { image_views: vec!["original".into()], hubness_k: 10, hubness_weight: 0.0, strong_match: Some(calibrated) });
        let id = model.model_id().to_owned();
        let bin = write_gallery_bin(&id, 6, &random_rows(30, 6, 2), GalleryDtype::F32).unwrap();
        let mut e = Engine::new(model, &bin, &GalleryIndex::new(&id, items(30)).to_json()).unwrap();
        let hits = e.search("w2 w5 w7", 30).unwrap();
        let strong: Vec<Option<bool>> = hits.iter().map(|h| h.strong).collect();
        assert_eq!(strong[..4], [Some(true), Some(true), Some(true), Some(false)]);
        assert!(strong[3..].iter().all(|s| *s == Some(false)));
        assert!(serde_json::to_string(&hits[0]).unwrap().contains("\"strong\":true"));
        assert!(e.similar(3, 5).unwrap().iter().all(|h| h.strong.is_none()), "image queries: another scale");
        // the user's photos are text-query hits too
        e.add_vector("mine.jpg", "blob:1", e.query_vector("w2 w5 w7").unwrap()).unwrap();
        assert_eq!(e.search_in("w2 w5 w7", 1, Scope::Added).unwrap()[0].strong, Some(true));
    }

    #[test]
    fn hostile_queries_give_errors_or_results_never_panics() {
        let e = engine(GalleryDtype::Int8);
        let long = "w2 ".repeat(3400);
        for q in [long.as_str(), "🐶 w3", "<script>w4</script>", "שלום w5", "w6\u{0}"] {
            assert!(!e.search(q, 10).unwrap().is_empty(), "{q:?}");
        }
        for q in ["", "   ", "🐶🐶", "w3 -w3"] {
            let err = e.search(q, 10).unwrap_err().to_string();
            assert!(err.contains("query"), "{q:?}: {err}");
        }
        assert!(e.search("w2", 0).unwrap().is_empty());
        assert_eq!(e.search("w2", usize::MAX).unwrap().len(), 30);
    }
}
