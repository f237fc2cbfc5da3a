//! A query over a partitioned gallery, in steps that suit a page fetching lists one by one: `plan` picks the
//! lists (the header's `probe` best centroids), `advance` scans every planned list that is in memory and not yet
//! scanned, and the running top-k can be read after each step (progressive results). The final top-k does not
//! depend on the order the lists arrived in; with every list probed it is the flat gallery's ranking exactly
//! (the same int8 rows, kernel, hubness and tie rule).

use super::{PartitionedError, PartitionedGallery};
use crate::rank::{Scored, TopK};

/// A planned query and its running results.
#[derive(Debug, Clone)]
pub struct PlannedSearch {
    query: Vec<f32>,
    /// `hubness_weight` for text queries, 0 for image-to-image ones.
    penalty_weight: f32,
    exclude: Option<u32>,
    lists: Vec<u32>,
    scanned: Vec<bool>,
    searched: usize,
    top: TopK,
    scores: Vec<f32>,
}

/// How far a planned query got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Gallery images scored so far.
    pub searched: usize,
    /// Lists scanned / planned.
    pub done: usize,
    pub total: usize,
}

impl PlannedSearch {
    /// The lists this query scans, best first (empty when it searches no gallery images).
    pub fn lists(&self) -> &[u32] {
        &self.lists
    }
    /// Planned lists not scanned yet.
    pub fn pending(&self) -> Vec<u32> {
        self.lists.iter().zip(&self.scanned).filter(|(_, s)| !**s).map(|(l, _)| *l).collect()
    }
    pub fn is_complete(&self) -> bool {
        self.scanned.iter().all(|s| *s)
    }
    pub fn query(&self) -> &[f32] {
        &self.query
    }
    /// Scores the lists not yet scanned with another hubness weight than the plan used (for ablations).
    #[doc(hidden)]
    pub fn set_penalty_weight(&mut self, weight: f32) {
        self.penalty_weight = weight;
    }
    /// Offers a candidate from outside the gallery (the user's added photos).
    pub fn offer(&mut self, id: u32, score: f32) {
        if Some(id) != self.exclude {
            self.top.offer(id, score);
        }
    }
    /// The best candidates so far, best first.
    pub fn results(&self) -> Vec<Scored> {
        self.top.sorted()
    }
    pub fn progress(&self) -> Progress {
        Progress { searched: self.searched, done: self.scanned.iter().filter(|s| **s).count(), total: self.lists.len() }
    }
}

impl PartitionedGallery {
    /// Plans a query: the `probe` lists (default: the header's) whose centroids score best for `query` (less
    /// `penalty_weight` × the list's mean hubness), best first; `scan_gallery = false` plans no list.
    pub fn plan(&self, query: Vec<f32>, penalty_weight: f32, k: usize, exclude: Option<u32>, probe: Option<usize>, scan_gallery: bool) -> PlannedSearch {
        let h = self.header();
        let lists = if scan_gallery && query.len() == h.dim { h.plan(&query, penalty_weight, probe.unwrap_or(h.probe)) } else { Vec::new() };
        PlannedSearch { scanned: vec![false; lists.len()], lists, query, penalty_weight, exclude, searched: 0, top: TopK::new(k), scores: Vec::new() }
    }

    /// Scans every planned list that is in memory and not yet scanned.
    pub fn advance(&self, s: &mut PlannedSearch) -> Progress {
        for i in 0..s.lists.len() {
            if s.scanned[i] {
                continue;
            }
            let Some(shard) = self.shard(s.lists[i]) else { continue };
            shard.scores_into(&s.query, s.penalty_weight, &mut s.scores);
            for (&id, &score) in shard.ids.iter().zip(&s.scores) {
                if Some(id) != s.exclude {
                    s.top.offer(id, score);
                }
            }
            s.scanned[i] = true;
            s.searched += shard.len();
        }
        s.progress()
    }

    /// Reads the planned lists not in memory from the source, scanning as it goes (native readers).
    pub fn complete(&self, s: &mut PlannedSearch) -> Result<Progress, PartitionedError> {
        for list in s.pending() {
            self.load(list)?;
            self.advance(s);
        }
        Ok(self.advance(s))
    }
}
