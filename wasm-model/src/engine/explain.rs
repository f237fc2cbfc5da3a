//! Leave-one-word-out explanations: how much each word of a query adds to one image's score.

use serde::Serialize;

use super::{Engine, EngineError};
use crate::query::{combine_terms, parse_query, QueryVectorError};
use crate::rank::dot_f32;

/// How much one prompt word contributed to an image's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WordDelta {
    /// Index of the query term the word belongs to.
    pub term: usize,
    pub token: String,
    /// Whether the model knows the word (unknown words are read as `<unk>`).
    pub known: bool,
    /// score(full query) − score(query without this word): positive = the word pushed the image up.
    pub delta: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub id: u32,
    pub score: f32,
    pub words: Vec<WordDelta>,
}

impl Engine {
    /// Leave-one-word-out: for each word of `query`, how much image `id`'s score drops without it.
    pub fn explain(&self, query: &str, id: usize) -> Result<Explanation, EngineError> {
        let row = self.row(id)?;
        let terms = parse_query(query)?;
        let full = combine_terms(&self.encoder, &terms, |i| terms[i].tokens.clone())?;
        let score = dot_f32(&full, &row);
        let mut words = Vec::new();
        for (t, term) in terms.iter().enumerate() {
            for (j, token) in term.tokens.iter().enumerate() {
                let without = |i: usize| {
                    let mut toks = terms[i].tokens.clone();
                    if i == t {
                        toks.remove(j);
                    }
                    toks
                };
                // Removing the only word of a one-word query leaves nothing: its score is 0.
                let reduced = match combine_terms(&self.encoder, &terms, without) {
                    Ok(v) => dot_f32(&v, &row),
                    Err(QueryVectorError::Query(_)) => 0.0,
                    Err(e) => return Err(e.into()),
                };
                words.push(WordDelta {
                    term: t,
                    token: token.clone(),
                    known: self.encoder.vocab().contains(token),
                    delta: score - reduced,
                });
            }
        }
        Ok(Explanation { id: id as u32, score, words })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::engine;
    use super::*;
    use crate::gallery::GalleryDtype;

    #[test]
    fn arithmetic_similar_and_explain() {
        let e = engine(GalleryDtype::F32);
        // `a -b` is the normalised difference of the two vectors.
        let (a, b) = (e.encoder().encode("w3").unwrap(), e.encoder().encode("w4").unwrap());
        let diff = crate::text_encoder::l2_normalize(a.iter().zip(&b).map(|(x, y)| x - 2.0 * y).collect());
        let got = e.query_vector("w3 -2:w4").unwrap();
        assert!(got.iter().zip(&diff).all(|(x, y)| (x - y).abs() < 1e-6));

        let sim = e.similar(4, 3).unwrap();
        assert_eq!(sim.len(), 3);
        assert!(sim.iter().all(|h| h.id != 4));
        assert!(matches!(e.similar(30, 3), Err(EngineError::UnknownImage { id: 30, len: 30 })));

        let ex = e.explain("w3 zebra", 7).unwrap();
        assert_eq!(ex.words.iter().map(|w| (w.token.as_str(), w.known)).collect::<Vec<_>>(), [("w3", true), ("zebra", false)]);
        let score = dot_f32(&e.query_vector("w3 zebra").unwrap(), &e.gallery().row(7).unwrap());
        let without_w3 = dot_f32(&e.query_vector("zebra").unwrap(), &e.gallery().row(7).unwrap());
        assert!((ex.score - score).abs() < 1e-6 && (ex.words[0].delta - (score - without_w3)).abs() < 1e-6);
        assert_eq!(e.explain("w3", 7).unwrap().words[0].delta, e.explain("w3", 7).unwrap().score);
    }
}
