//! Paste a passage (issue #20): each sentence is encoded as one plain text (no prompt arithmetic: a dash in
//! prose is not a minus), adjacent close sentences become one idea (`workflow::passage`), and each idea gets its
//! own suggestions — pictures already suggested for an earlier idea are skipped, so a draft's sections get
//! different pictures — plus the best pictures for the passage as a whole (the normalised sum of its sentence
//! vectors). Layout filters and near-duplicate collapse apply to both; 👍/👎 marks and "more varied" to the
//! whole passage's results only (a mark is a judgement about those).

use serde::Serialize;

use super::refine::RefinedHit;
use super::search::Scope;
use super::{Engine, EngineError};
use crate::text_encoder::TextEncoder;
use crate::workflow::passage::{group_ideas, mean_direction, split_passage, IDEA_MERGE_COSINE};
use crate::workflow::{Refinement, Split};

/// A passage ready to search: its sentences, their ideas (sentence ranges and query vectors) and the whole
/// passage's query vector.
#[derive(Debug, Clone)]
pub struct PassagePlan {
    pub split: Split,
    pub ideas: Vec<IdeaPlan>,
    pub whole: Vec<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdeaPlan {
    /// The idea's sentences, joined.
    pub text: String,
    /// Its first and last sentence (0-based, inclusive).
    pub first: usize,
    pub last: usize,
    #[serde(skip)]
    pub vector: Vec<f32>,
}

/// One idea's suggestions.
#[derive(Debug, Clone, Serialize)]
pub struct PassageIdea {
    #[serde(flatten)]
    pub idea: IdeaPlan,
    pub results: Vec<RefinedHit>,
}

/// A passage's answer.
#[derive(Debug, Clone, Serialize)]
pub struct PassageAnswer {
    pub ideas: Vec<PassageIdea>,
    /// The best pictures for the passage as a whole.
    pub whole: Vec<RefinedHit>,
    /// Sentences searched / in the passage (with words; past `MAX_SENTENCES` they are left out).
    pub sentences: usize,
    pub total: usize,
    /// Sentences without a word (emoji, punctuation, markup): not searched.
    pub without_words: usize,
}

impl PassagePlan {
    /// The refinement of each idea's query: the layout filters and the collapse only.
    pub fn idea_refinement(r: &Refinement) -> Refinement {
        Refinement { layout: r.layout, collapse: r.collapse, ..Refinement::default() }
    }
}

impl Engine {
    /// Splits, encodes and groups a passage (refuses one over `MAX_PASSAGE_BYTES` or without words).
    pub fn plan_passage(&self, text: &str) -> Result<PassagePlan, EngineError> {
        PassagePlan::new(&self.encoder, text)
    }
}

impl PassagePlan {
    /// [`Engine::plan_passage`] with only a text encoder (the database tier plans passages without an engine).
    pub fn new(encoder: &TextEncoder, text: &str) -> Result<PassagePlan, EngineError> {
        let split = split_passage(text)?;
        let vectors = split.sentences.iter().map(|s| encoder.encode(&s.text)).collect::<Result<Vec<_>, _>>()?;
        let paragraphs: Vec<usize> = split.sentences.iter().map(|s| s.paragraph).collect();
        let ideas = group_ideas(&vectors, &paragraphs, IDEA_MERGE_COSINE)
            .into_iter()
            .filter_map(|range| {
                let vector = mean_direction(&vectors[range.clone()])?;
                let text = split.sentences[range.clone()].iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ");
                Some(IdeaPlan { text, first: range.start, last: range.end - 1, vector })
            })
            .collect();
        let whole = mean_direction(&vectors).ok_or_else(|| EngineError::Refine("the passage's sentences cancel each other out; search a part of it".into()))?;
        Ok(PassagePlan { split, ideas, whole })
    }
}

impl Engine {

    /// A passage's suggestions: `k_idea` per idea (each picture suggested once across ideas) and `k_whole` for
    /// the passage as a whole.
    pub fn passage(&self, text: &str, k_idea: usize, k_whole: usize, scope: Scope, r: &Refinement) -> Result<PassageAnswer, EngineError> {
        r.check().map_err(EngineError::Refine)?;
        let plan = self.plan_passage(text)?;
        let whole = self.rank_refined(plan.whole.clone(), k_whole, scope, &[], true, r)?;
        let per_idea = PassagePlan::idea_refinement(r);
        let mut shown: Vec<u32> = Vec::new();
        let mut ideas = Vec::with_capacity(plan.ideas.len());
        for idea in plan.ideas {
            let results = self.rank_refined(idea.vector.clone(), k_idea, scope, &shown, true, &per_idea)?;
            shown.extend(results.iter().map(|h| h.hit.id));
            ideas.push(PassageIdea { idea, results });
        }
        Ok(PassageAnswer {
            ideas,
            whole,
            sentences: plan.split.sentences.len(),
            total: plan.split.total,
            without_words: plan.split.without_words,
        })
    }
}
