//! A refinement of a query — 👍/👎 marks, layout filters, near-duplicate collapse, "more varied" — as one value
//! that a share link, `/api/search` and `trainer search` carry as parameters, and the last steps every gallery
//! tier runs on a query's candidates: collapse near-duplicates into groups, then (when asked) re-rank the groups
//! by MMR, then keep `k`.
//!
//! Parameters (the page's URL and `/api/search` use the same names): `up=3,17` and `down=5` (picture ids),
//! `orient=landscape|portrait|square`, `min=800` (both sides at least, pixels), `lic=pd|commercial|nosa`,
//! `collapse=1|0`, `vary=1`.

use serde::{Deserialize, Serialize};

use super::duplicates::collapse;
use super::feedback::MAX_MARKS;
use super::layout::LayoutFilter;
use super::mmr::{mmr, MMR_LAMBDA};

/// Candidates a refined query considers (collapse and MMR choose among them): the brief's "top 100".
pub const CANDIDATES: usize = 100;

/// How a query is refined. The default changes nothing (the plain ranking).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refinement {
    /// Liked pictures (👍): the query moves towards them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub up: Vec<u32>,
    /// Disliked pictures (👎): the query moves away from them, and they are left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub down: Vec<u32>,
    #[serde(default)]
    pub layout: LayoutFilter,
    /// Near-duplicates collapse into the best-ranked one of them (`similar` lists the others).
    #[serde(default)]
    pub collapse: bool,
    /// Re-rank for variety (MMR).
    #[serde(default)]
    pub vary: bool,
}

impl Refinement {
    /// Whether it changes the plain ranking.
    pub fn is_plain(&self) -> bool {
        *self == Self::default()
    }

    /// Whether the query vector changes (marks).
    pub fn has_feedback(&self) -> bool {
        !self.up.is_empty() || !self.down.is_empty()
    }

    /// Whether candidates (vectors, metadata) are needed beyond the plain top k.
    pub fn needs_candidates(&self) -> bool {
        self.collapse || self.vary || !self.layout.is_empty()
    }

    /// Refuses what cannot be run: too many marks, a picture both liked and disliked, a bad size.
    pub fn check(&self) -> Result<(), String> {
        for (name, ids) in [("up", &self.up), ("down", &self.down)] {
            if ids.len() > MAX_MARKS {
                return Err(format!("{name} marks {} pictures; at most {MAX_MARKS} are taken", ids.len()));
            }
        }
        if let Some(id) = self.up.iter().find(|id| self.down.contains(id)) {
            return Err(format!("picture {id} is both liked (up) and disliked (down); mark it once"));
        }
        self.layout.check()
    }

    /// Reads the parameters above from `(name, value)` pairs (others are ignored). `collapse` defaults to
    /// `default_collapse` (the page collapses unless told not to; the API and CLI only when asked).
    pub fn from_params<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, default_collapse: bool) -> Result<Self, String> {
        let mut r = Refinement { collapse: default_collapse, ..Default::default() };
        let flag = |name: &str, v: &str| match v {
            "1" | "true" | "yes" | "" => Ok(true),
            "0" | "false" | "no" => Ok(false),
            _ => Err(format!("{name} must be 1 or 0, got {v:?}")),
        };
        for (name, value) in pairs {
            match name {
                "up" => r.up = parse_ids(name, value)?,
                "down" => r.down = parse_ids(name, value)?,
                "orient" if !value.is_empty() => r.layout.orientation = Some(value.parse()?),
                "min" if !value.is_empty() => {
                    let bad = || format!("min must be a whole number of pixels (both sides at least), got {value:?}");
                    r.layout.min_side = Some(value.parse().map_err(|_| bad())?);
                }
                "lic" if !value.is_empty() => r.layout.licence = Some(value.parse()?),
                "collapse" => r.collapse = flag(name, value)?,
                "vary" => r.vary = flag(name, value)?,
                _ => {}
            }
        }
        r.check()?;
        Ok(r)
    }
}

/// `3,17,5` (commas, or dots as the page writes them in a URL) → ids; empty → none; duplicates dropped.
fn parse_ids(name: &str, value: &str) -> Result<Vec<u32>, String> {
    let mut ids: Vec<u32> = Vec::new();
    for part in value.split([',', '.']).map(str::trim).filter(|p| !p.is_empty()) {
        let id = part.parse().map_err(|_| format!("{name} must list picture ids separated by commas, got {part:?}"))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
        if ids.len() > MAX_MARKS {
            return Err(format!("{name} marks more than {MAX_MARKS} pictures; at most {MAX_MARKS} are taken"));
        }
    }
    Ok(ids)
}

/// A candidate of a refined query, in rank order: its id, score and vector.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: u32,
    pub score: f32,
    pub vector: Vec<f32>,
}

/// One result of a refined query: the best-ranked picture of its group and the near-duplicates collapsed
/// into it (best first).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: u32,
    pub score: f32,
    pub similar: Vec<u32>,
}

/// The last steps on candidates that already passed the filters (rank order): groups of near-duplicates when
/// `collapse_at` is given (the gallery's threshold), MMR over the groups' first members when `vary`, then the
/// first `k`.
pub fn finish(candidates: &[Candidate], collapse_at: Option<f32>, vary: bool, k: usize) -> Vec<Group> {
    let vectors: Vec<Vec<f32>> = candidates.iter().map(|c| c.vector.clone()).collect();
    let groups: Vec<Vec<usize>> = match collapse_at {
        Some(t) => collapse(&vectors, t),
        None => (0..candidates.len()).map(|i| vec![i]).collect(),
    };
    let order: Vec<usize> = if vary {
        let scores: Vec<f32> = groups.iter().map(|g| candidates[g[0]].score).collect();
        let heads: Vec<Vec<f32>> = groups.iter().map(|g| vectors[g[0]].clone()).collect();
        mmr(&scores, &heads, k, MMR_LAMBDA)
    } else {
        (0..groups.len().min(k)).collect()
    };
    order
        .into_iter()
        .map(|g| {
            let members = &groups[g];
            let head = &candidates[members[0]];
            Group { id: head.id, score: head.score, similar: members[1..].iter().map(|&m| candidates[m].id).collect() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::layout::{LicenceNeed, Orientation};

    #[test]
    fn parameters_round_trip_and_bad_ones_are_named() {
        let pairs = [("q", "a dog"), ("up", "3,17,3"), ("down", "5"), ("orient", "landscape"), ("min", "800"), ("lic", "pd"), ("vary", "1")];
        let r = Refinement::from_params(pairs, true).unwrap();
        assert_eq!(r.up, [3, 17]);
        assert_eq!(r.down, [5]);
        assert_eq!(r.layout.orientation, Some(Orientation::Landscape));
        assert_eq!((r.layout.min_side, r.layout.licence), (Some(800), Some(LicenceNeed::PublicDomain)));
        assert!(r.collapse && r.vary && r.has_feedback() && r.needs_candidates());
        assert!(!Refinement::from_params([("collapse", "0")], true).unwrap().collapse);
        assert!(Refinement::from_params([], false).unwrap().is_plain());
        assert_eq!(Refinement::from_params([("up", "4.9")], false).unwrap().up, [4, 9], "dots as the page writes them");
        for (pair, needle) in [
            (("up", "3,x"), "picture ids"),
            (("orient", "wide"), "landscape"),
            (("min", "-3"), "pixels"),
            (("min", "0"), "1 to"),
            (("lic", "free"), "pd"),
            (("vary", "maybe"), "1 or 0"),
        ] {
            let e = Refinement::from_params([pair], false).unwrap_err();
            assert!(e.contains(needle), "{pair:?}: {e}");
        }
        let both = Refinement::from_params([("up", "2"), ("down", "2")], false).unwrap_err();
        assert!(both.contains("both liked"), "{both}");
        let many: String = (0..=MAX_MARKS).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        assert!(Refinement::from_params([("up", many.as_str())], false).unwrap_err().contains("at most"));
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Refinement>(&json).unwrap(), r);
        assert_eq!(serde_json::from_str::<Refinement>("{}").unwrap(), Refinement::default());
    }

    #[test]
    fn finish_collapses_then_varies_then_keeps_k() {
        let c = |id: u32, score: f32, v: [f32; 2]| Candidate { id, score, vector: v.to_vec() };
        let cands = [c(10, 0.5, [1.0, 0.0]), c(11, 0.49, [1.0, 0.0]), c(12, 0.48, [0.99, 0.141]), c(13, 0.45, [0.0, 1.0]), c(14, 0.1, [-1.0, 0.0])];
        let plain = finish(&cands, None, false, 3);
        assert_eq!(plain.iter().map(|g| g.id).collect::<Vec<_>>(), [10, 11, 12]);
        assert!(plain.iter().all(|g| g.similar.is_empty()));
        let grouped = finish(&cands, Some(0.95), false, 3);
        assert_eq!(grouped, [Group { id: 10, score: 0.5, similar: vec![11, 12] }, Group { id: 13, score: 0.45, similar: vec![] }, Group { id: 14, score: 0.1, similar: vec![] }]);
        // without collapsing, variety puts the different picture second (the opposite one earns no bonus)
        let varied = finish(&cands, None, true, 2);
        assert_eq!(varied.iter().map(|g| g.id).collect::<Vec<_>>(), [10, 13]);
    }
}
