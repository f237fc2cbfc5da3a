//! Refined searches (issue #20: 👍/👎 feedback, layout and licence filters, near-duplicate collapse, "more
//! varied", pasted passages) with the engine's results: the query moved by `workflow::feedback::rocchio` (from
//! the marked pictures' stored vectors), the filters and the excluded pictures applied in SQL to every row
//! (exact, as the engine does on a flat gallery; the HNSW walk goes on until enough rows pass, pgvector's
//! `iterative_scan = strict_order`), the best `CANDIDATES` fetched with their vectors, and the last steps
//! (collapse with the threshold stored at load, MMR, `k`) done by `workflow::refine::finish` itself.

use tokio_postgres::types::ToSql;
use wasm_model::engine::{IdeaPlan, PassagePlan, MAX_K};
use wasm_model::gallery::LICENCES;
use wasm_model::workflow::feedback::rocchio;
use wasm_model::workflow::refine::{finish, Candidate, Group};
use wasm_model::workflow::{Layout, LayoutFilter, Refinement, CANDIDATES};

use crate::schema::{GalleryMeta, LIVE_TABLE};
use crate::search::{DbSearcher, Hit};
use crate::source::{orientation_sql, text_query_vector};
use crate::{DbError, ScanMode};

/// What a refined query ranks by.
#[derive(Debug, Clone, PartialEq)]
pub enum RefinedQuery {
    /// A prompt's vector (`wasm_model::query::query_vector`): hubness-corrected scores.
    Text(Vec<f32>),
    /// "More like" gallery picture `id` (left out): plain cosine.
    Like(usize),
}

/// One result of a refined query: the hit and the near-duplicates collapsed into it (best first, each with
/// its own score and metadata: a client without the gallery shows them).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RefinedHit {
    #[serde(flatten)]
    pub hit: Hit,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub similar: Vec<Hit>,
}

/// One idea of a passage and its suggestions.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PassageIdeaHits {
    #[serde(flatten)]
    pub idea: IdeaPlan,
    pub results: Vec<RefinedHit>,
}

/// A passage's answer, shaped as `wasm_model::engine::PassageAnswer`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PassageHits {
    pub ideas: Vec<PassageIdeaHits>,
    pub whole: Vec<RefinedHit>,
    pub sentences: usize,
    pub total: usize,
    pub without_words: usize,
}

/// Licence ids a licence need accepts (read from the same table and the same `LayoutFilter::accepts` as the
/// engine); `None` without a licence filter.
fn accepted_licences(r: &Refinement) -> Option<Vec<String>> {
    let only_licence = LayoutFilter { licence: Some(r.layout.licence?), ..Default::default() };
    let fits = |id: &'static str| only_licence.accepts(&Layout { width: None, height: None, licence_id: Some(id), own: false });
    Some(LICENCES.iter().filter(|l| fits(l.id)).map(|l| l.id.to_string()).collect())
}

impl DbSearcher {
    /// The `k` results after the first `offset` of `query` refined by `r` (the first `offset + k` are ranked,
    /// collapsed and varied, then the page is cut), as `Engine::search_refined` / `similar_refined` answer.
    pub async fn search_refined(&self, query: &RefinedQuery, k: usize, offset: usize, r: &Refinement) -> Result<Vec<RefinedHit>, DbError> {
        r.check().map_err(DbError::Query)?;
        let wanted = offset.saturating_add(k).min(MAX_K);
        self.bounded(async {
            let mut conn = self.connection().await?;
            let meta = self.live_meta(&conn).await?;
            let (q, exclude, text) = match query {
                RefinedQuery::Text(q) => (q.clone(), Vec::new(), true),
                RefinedQuery::Like(id) => {
                    let row = self.stored_rows(&conn, &meta, "like", &[*id as u64]).await?.remove(0);
                    (row, vec![*id as u32], false)
                }
            };
            let hits = self.rank_refined(&mut conn, &meta, q, text, &exclude, wanted, r).await?;
            Ok(hits.into_iter().skip(offset).collect())
        })
        .await
    }

    /// A passage's suggestions from its plan (`PassagePlan::new` with this model's encoder), as
    /// `Engine::passage`: `k_whole` for the whole passage (with every refinement), `k_idea` per idea (filters and
    /// collapse only), each picture suggested once across ideas.
    pub async fn passage(&self, plan: &PassagePlan, k_idea: usize, k_whole: usize, r: &Refinement) -> Result<PassageHits, DbError> {
        r.check().map_err(DbError::Query)?;
        self.bounded(async {
            let mut conn = self.connection().await?;
            let meta = self.live_meta(&conn).await?;
            let whole = self.rank_refined(&mut conn, &meta, plan.whole.clone(), true, &[], k_whole.min(MAX_K), r).await?;
            let per_idea = PassagePlan::idea_refinement(r);
            let mut shown: Vec<u32> = Vec::new();
            let mut ideas = Vec::with_capacity(plan.ideas.len());
            for idea in &plan.ideas {
                let results = self.rank_refined(&mut conn, &meta, idea.vector.clone(), true, &shown, k_idea.min(MAX_K), &per_idea).await?;
                shown.extend(results.iter().map(|h| h.hit.hit.id));
                ideas.push(PassageIdeaHits { idea: idea.clone(), results });
            }
            Ok(PassageHits {
                ideas,
                whole,
                sentences: plan.split.sentences.len(),
                total: plan.split.total,
                without_words: plan.split.without_words,
            })
        })
        .await
    }

    /// The stored vectors (`embed_dim` values, the hubness term dropped) of pictures `ids`, in that order; a
    /// picture that is not there is a bad request naming the parameter (`name`) it came in.
    async fn stored_rows(&self, conn: &deadpool_postgres::Object, meta: &GalleryMeta, name: &str, ids: &[u64]) -> Result<Vec<Vec<f32>>, DbError> {
        let unknown = |id: u64| {
            if name == "like" {
                DbError::UnknownImage { id: id as usize, len: meta.rows_total }
            } else {
                DbError::Query(format!("{name} names picture {id}, which is not in the gallery (it has {n} images, ids 0..{n})", n = meta.rows_total))
            }
        };
        let ids32 = ids.iter().map(|&id| i32::try_from(id).map_err(|_| unknown(id))).collect::<Result<Vec<i32>, _>>()?;
        let sql = format!("SELECT id, embedding FROM {LIVE_TABLE} WHERE id = ANY($1)");
        let rows = conn.query(&sql, &[&ids32]).await.map_err(|e| self.pg_error("reading marked pictures' vectors", e))?;
        let mut found: Vec<(i32, Vec<f32>)> = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i32 = row.try_get(0).map_err(|e| self.pg_error("reading marked pictures' vectors", e))?;
            let mut v = meta.vector_type.read(row, 1).map_err(|e| self.pg_error("reading marked pictures' vectors", e))?;
            v.truncate(meta.embed_dim);
            found.push((id, v));
        }
        ids32
            .iter()
            .zip(ids)
            .map(|(id, &raw)| found.iter().find(|(f, _)| f == id).map(|(_, v)| v.clone()).ok_or_else(|| unknown(raw)))
            .collect()
    }

    /// The engine's `rank_refined` on the database: feedback, exclusions and filters, candidates, finish.
    #[allow(clippy::too_many_arguments)]
    async fn rank_refined(
        &self,
        conn: &mut deadpool_postgres::Object,
        meta: &GalleryMeta,
        q: Vec<f32>,
        text_query: bool,
        exclude: &[u32],
        k: usize,
        r: &Refinement,
    ) -> Result<Vec<RefinedHit>, DbError> {
        let q = if r.has_feedback() {
            let ids = |v: &[u32]| v.iter().map(|&id| id as u64).collect::<Vec<_>>();
            let liked = self.stored_rows(conn, meta, "up", &ids(&r.up)).await?;
            let disliked = self.stored_rows(conn, meta, "down", &ids(&r.down)).await?;
            rocchio(&q, &liked, &disliked).map_err(|e| DbError::Query(e.to_string()))?
        } else {
            q
        };
        // [q, 1] scores q·v − w·h (hubness-corrected text queries), [v, 0] the plain cosine of "more like this"
        let folded = if text_query { text_query_vector(&q) } else { [q.as_slice(), &[0.0]].concat() };
        let excluded: Vec<i32> = exclude.iter().chain(&r.down).map(|&id| id as i32).collect();
        let limit = if r.needs_candidates() { CANDIDATES.max(k) } else { k }.min(MAX_K);
        let rows = self.query_candidates(conn, meta, &folded, &excluded, limit, r).await?;
        let mut hits = Vec::with_capacity(rows.len());
        let mut candidates = Vec::with_capacity(rows.len());
        for row in &rows {
            let read = |e| self.pg_error("reading the results", e);
            let hit = Hit {
                hit: wasm_model::Hit {
                    id: row.try_get::<_, i32>(0).map_err(read)? as u32,
                    file: row.try_get(1).map_err(read)?,
                    thumb: row.try_get(2).map_err(read)?,
                    caption: row.try_get(3).map_err(read)?,
                    score: row.try_get(7).map_err(read)?,
                    strong: None,
                },
                source: row.try_get(4).map_err(read)?,
                licence: row.try_get(5).map_err(read)?,
                url: row.try_get(6).map_err(read)?,
            };
            if r.collapse || r.vary {
                let mut vector = meta.vector_type.read(row, 8).map_err(read)?;
                vector.truncate(meta.embed_dim);
                candidates.push(Candidate { id: hit.hit.id, score: hit.hit.score, vector });
            }
            hits.push(hit);
        }
        let groups: Vec<Group> = if r.collapse || r.vary {
            finish(&candidates, r.collapse.then_some(meta.duplicates.threshold), r.vary, k)
        } else {
            hits.iter().take(k).map(|h| Group { id: h.hit.id, score: h.hit.score, similar: Vec::new() }).collect()
        };
        // strength is calibrated for plain text queries: marks move the query onto another scale
        let strength = text_query && !r.has_feedback();
        Ok(groups
            .into_iter()
            .filter_map(|g| {
                let find = |id: u32| hits.iter().find(|h| h.hit.id == id).cloned();
                let mut hit = find(g.id)?;
                hit.hit.strong = if strength { self.strong_match.as_ref().map(|s| s.is_strong(hit.hit.score)) } else { None };
                Some(RefinedHit { hit, similar: g.similar.iter().filter_map(|&id| find(id)).collect() })
            })
            .collect())
    }

    /// The best `limit` rows for the folded query vector that pass the filters and are not excluded, with their
    /// stored vectors.
    async fn query_candidates(
        &self,
        conn: &mut deadpool_postgres::Object,
        meta: &GalleryMeta,
        folded: &[f32],
        excluded: &[i32],
        limit: usize,
        r: &Refinement,
    ) -> Result<Vec<tokio_postgres::Row>, DbError> {
        let vector = meta.vector_type.param(folded);
        let orientation: Option<&str> = r.layout.orientation.map(orientation_sql);
        let min_side: Option<i32> = r.layout.min_side.map(|m| m as i32);
        let licences = accepted_licences(r);
        let limit64 = limit as i64;
        let sql = format!(
            "SELECT id, file, thumb, caption, source, licence, url, (-(embedding <#> $1))::real AS score, embedding
             FROM {LIVE_TABLE}
             WHERE (SELECT model_id FROM imgpick_meta WHERE slot = 'live') = $2 AND id <> ALL($3::integer[])
               AND ($4::text IS NULL OR orientation = $4) AND ($5::integer IS NULL OR LEAST(width, height) >= $5)
               AND ($6::text[] IS NULL OR licence_id = ANY($6))
             ORDER BY embedding <#> $1, id
             LIMIT $7"
        );
        let model_id = self.model_id().to_string();
        let params: [&(dyn ToSql + Sync); 7] = [vector.as_ref(), &model_id, &excluded, &orientation, &min_side, &licences, &limit64];
        // The graph walk keeps ef_search candidates: at least the rows asked for (and those left out), and with
        // filters or exclusions it goes on until enough rows pass, in exact distance order.
        let ef = (limit + excluded.len() + 1).max(self.config().ef_search).min(MAX_K);
        let mut settings = vec![format!("SET LOCAL hnsw.ef_search = {ef}")];
        if !r.layout.is_empty() || !excluded.is_empty() {
            settings.push("SET LOCAL hnsw.iterative_scan = strict_order".into());
        }
        match self.config().scan {
            ScanMode::Planner => {}
            ScanMode::Exact => settings.push("SET LOCAL enable_indexscan = off".into()),
            ScanMode::Index => settings.push("SET LOCAL enable_seqscan = off".into()),
        }
        let result = async {
            let statement = conn.prepare_cached(&sql).await?;
            let tx = conn.transaction().await?;
            tx.batch_execute(&settings.join("; ")).await?;
            let rows = tx.query(&statement, &params).await?;
            tx.commit().await?;
            Ok(rows)
        }
        .await;
        result.map_err(|e| self.pg_error("searching (refined)", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_model::workflow::LicenceNeed;

    #[test]
    fn licence_needs_become_the_ids_the_engine_accepts() {
        let need = |n| Refinement { layout: LayoutFilter { licence: Some(n), ..Default::default() }, ..Default::default() };
        assert_eq!(accepted_licences(&Refinement::default()), None);
        let pd = accepted_licences(&need(LicenceNeed::PublicDomain)).unwrap();
        assert_eq!(pd, ["pd", "cc0-1.0"]);
        let commercial = accepted_licences(&need(LicenceNeed::Commercial)).unwrap();
        assert!(commercial.contains(&"cc-by-sa-3.0".to_string()) && !commercial.iter().any(|l| l.contains("-nc")), "{commercial:?}");
        assert!(!commercial.contains(&"unknown".to_string()));
        let nosa = accepted_licences(&need(LicenceNeed::CommercialNoShareAlike)).unwrap();
        assert!(nosa.contains(&"cc-by-4.0".to_string()) && !nosa.iter().any(|l| l.contains("-sa")), "{nosa:?}");
    }
}
