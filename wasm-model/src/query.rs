//! Query syntax (README "Ranking and queries"): rclip-style prompt arithmetic, `beach -people +dog`,
//! `2:cat + kitten`. Parsing is pure; [`query_vector`] turns terms into one L2-normalised vector.

use crate::text_encoder::{l2_normalize, EncodeError, TextEncoder};
use crate::tokenizer::tokenize;

/// Each term costs one text encoding, so a query holds at most this many (bounds server and page work).
pub const MAX_TERMS: usize = 8;
/// Words (tokens) a query encodes in all terms together; the text encoder runs one LSTM step per word and
/// direction, so this bounds the work of one query: 8 terms x 28 words took 1–2.4 s of server CPU. Generous for
/// real prompts (a long sentence is 20–30 words; one term keeps at most `tokenizer::MAX_TOKENS` = 48).
pub const MAX_QUERY_WORDS: usize = 64;
// One term alone (cut at the tokenizer's limit) always fits.
const _: () = assert!(crate::tokenizer::MAX_TOKENS <= MAX_QUERY_WORDS);
/// Largest accepted `W:` weight.
pub const MAX_WEIGHT: f32 = 100.0;

/// One weighted prompt of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub weight: f32,
    pub text: String,
    /// `tokenize(text)`, never empty.
    pub tokens: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QueryError {
    #[error("the query has no words to search for (type a few words, e.g. `dog on a beach`)")]
    Empty,
    #[error("the query has {count} terms; at most {MAX_TERMS} are allowed")]
    TooManyTerms { count: usize },
    #[error(
        "the query has {count} words in all its terms; at most {MAX_QUERY_WORDS} are allowed (shorten it or use \
         fewer terms)"
    )]
    TooManyWords { count: usize },
    #[error("weight `{text}` must be a number from 0 to {MAX_WEIGHT} (e.g. `2:cat`)")]
    Weight { text: String },
    #[error("the query's terms cancel out (e.g. `cat -cat`); change a weight or a word")]
    CancelsOut,
}

/// Splits a query into weighted terms.
///
/// `+` always separates terms; `-` does when it starts the query or follows whitespace or another
/// operator (so `t-shirt` and `well-known` stay words). A term may start with `W:` (a weight, e.g. `2:cat`);
/// consecutive operators multiply their signs. Terms without any word (`+ 🐶`) are dropped.
pub fn parse_query(query: &str) -> Result<Vec<Term>, QueryError> {
    let mut raw: Vec<(f32, String)> = Vec::new();
    let (mut sign, mut text, mut prev) = (1f32, String::new(), None::<char>);
    let mut after_op = true;
    for c in query.chars() {
        let is_op = c == '+' || (c == '-' && (after_op || prev.is_none_or(char::is_whitespace)));
        if is_op {
            if !text.trim().is_empty() {
                raw.push((sign, std::mem::take(&mut text)));
                sign = 1.0;
            } else if !after_op {
                sign = 1.0;
            }
            text.clear();
            if c == '-' {
                sign = -sign;
            }
            after_op = true;
        } else {
            text.push(c);
            if !c.is_whitespace() {
                after_op = false;
            }
        }
        prev = Some(c);
        if raw.len() > MAX_TERMS {
            return Err(QueryError::TooManyTerms { count: raw.len() });
        }
    }
    if !text.trim().is_empty() {
        raw.push((sign, text));
    }
    let mut terms = Vec::new();
    for (sign, text) in raw {
        let (weight, body) = split_weight(text.trim())?;
        let tokens = tokenize(body);
        if !tokens.is_empty() && weight != 0.0 {
            terms.push(Term { weight: sign * weight, text: body.to_owned(), tokens });
        }
    }
    if terms.len() > MAX_TERMS {
        return Err(QueryError::TooManyTerms { count: terms.len() });
    }
    let words = terms.iter().map(|t| t.tokens.len()).sum();
    if words > MAX_QUERY_WORDS {
        return Err(QueryError::TooManyWords { count: words });
    }
    if terms.is_empty() {
        return Err(QueryError::Empty);
    }
    Ok(terms)
}

/// Splits a leading `W:` weight (`2:cat`, `0.5 : dog`) off a term.
fn split_weight(term: &str) -> Result<(f32, &str), QueryError> {
    let Some((head, rest)) = term.split_once(':') else { return Ok((1.0, term)) };
    let head = head.trim();
    if head.is_empty() || !head.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Ok((1.0, term)); // a colon inside the prompt, not a weight
    }
    match head.parse::<f32>() {
        Ok(w) if w.is_finite() && (0.0..=MAX_WEIGHT).contains(&w) => Ok((w, rest)),
        _ => Err(QueryError::Weight { text: head.chars().take(20).collect() }),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryVectorError {
    #[error("{0}")]
    Query(#[from] QueryError),
    #[error("{0}")]
    Encode(#[from] EncodeError),
}

/// The L2-normalised weighted sum of the terms' text vectors; `tokens_of(i)` gives term i's tokens
/// (so `explain` can drop one token). Terms with no tokens are skipped.
pub fn combine_terms(
    encoder: &TextEncoder,
    terms: &[Term],
    tokens_of: impl Fn(usize) -> Vec<String>,
) -> Result<Vec<f32>, QueryVectorError> {
    let mut sum = vec![0f32; encoder.embed_dim()];
    let mut any = false;
    for (i, term) in terms.iter().enumerate() {
        let tokens = tokens_of(i);
        if tokens.is_empty() {
            continue;
        }
        any = true;
        let v = encoder.encode_ids(&encoder.vocab().encode(&tokens))?;
        sum.iter_mut().zip(&v).for_each(|(s, x)| *s += term.weight * x);
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !any {
        return Err(QueryError::Empty.into());
    }
    if norm < 1e-6 {
        return Err(QueryError::CancelsOut.into());
    }
    Ok(l2_normalize(sum))
}

/// The query vector of `query` (see [`parse_query`]).
pub fn query_vector(encoder: &TextEncoder, query: &str) -> Result<Vec<f32>, QueryVectorError> {
    let terms = parse_query(query)?;
    combine_terms(encoder, &terms, |i| terms[i].tokens.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn w(q: &str) -> Vec<(f32, String)> {
        parse_query(q).unwrap().into_iter().map(|t| (t.weight, t.tokens.join(" "))).collect()
    }

    #[test]
    fn parses_rclip_arithmetic() {
        assert_eq!(w("a dog on the beach"), [(1.0, "a dog on the beach".into())]);
        assert_eq!(w("beach -people +dog"), [(1.0, "beach".into()), (-1.0, "people".into()), (1.0, "dog".into())]);
        assert_eq!(w("2:cat + kitten"), [(2.0, "cat".into()), (1.0, "kitten".into())]);
        assert_eq!(w("sunset - 0.5:clouds"), [(1.0, "sunset".into()), (-0.5, "clouds".into())]);
        assert_eq!(w("-rain"), [(-1.0, "rain".into())]);
        assert_eq!(w("cat +-dog"), [(1.0, "cat".into()), (-1.0, "dog".into())]);
        assert_eq!(w("cat --dog"), [(1.0, "cat".into()), (1.0, "dog".into())]);
    }

    #[test]
    fn hyphens_and_colons_inside_words_are_text() {
        assert_eq!(w("man in a t-shirt"), [(1.0, "man in a t shirt".into())]);
        assert_eq!(w("time: 12"), [(1.0, "time 12".into())]);
        assert_eq!(w("0:cat + dog"), [(1.0, "dog".into())]);
    }

    #[test]
    fn refuses_empty_and_abusive_queries() {
        for q in ["", "   ", "+", "- + -", "🐶🐶", "<>&;", "2:", "cat + 0:dog - 0:cat"] {
            let r = parse_query(q);
            assert!(r.is_err() || q.contains("cat"), "{q:?}: {r:?}");
        }
        assert_eq!(parse_query(""), Err(QueryError::Empty));
        assert_eq!(parse_query("+ 🐶"), Err(QueryError::Empty));
        assert!(matches!(parse_query(&"a + ".repeat(5000)), Err(QueryError::TooManyTerms { .. })));
        assert!(matches!(parse_query("1000:cat"), Err(QueryError::Weight { .. })));
        assert!(matches!(parse_query("1.2.3:cat"), Err(QueryError::Weight { .. })));
        assert_eq!(w(&"x".repeat(10_000)).len(), 1);
    }

    #[test]
    fn bounds_the_words_a_query_encodes() {
        let term = vec!["dog"; 28].join(" ");
        let err = parse_query(&vec![term; 8].join(" + ")).unwrap_err();
        assert_eq!(err, QueryError::TooManyWords { count: 224 });
        let msg = err.to_string();
        assert!(msg.contains("224 words") && msg.contains(&MAX_QUERY_WORDS.to_string()), "{msg}");
        // Real prompts fit: eight terms of eight words, or one long sentence (cut at the tokenizer's limit).
        let eight = ["a dog on a beach at the sea"; 8].join(" + ");
        assert_eq!(parse_query(&eight).unwrap().len(), 8);
        assert_eq!(parse_query(&"dog ".repeat(100)).unwrap()[0].tokens.len(), crate::MAX_TOKENS);
    }

    proptest! {
        #[test]
        fn never_panics_and_respects_limits(s in any::<String>()) {
            if let Ok(terms) = parse_query(&s) {
                prop_assert!(!terms.is_empty() && terms.len() <= MAX_TERMS);
                prop_assert!(terms.iter().map(|t| t.tokens.len()).sum::<usize>() <= MAX_QUERY_WORDS);
                for t in terms {
                    prop_assert!(t.weight.is_finite() && t.weight != 0.0 && t.weight.abs() <= MAX_WEIGHT);
                    prop_assert!(!t.tokens.is_empty());
                }
            }
        }

        #[test]
        fn arithmetic_shaped_input(s in "([0-9.]{0,3}:)?[a-z ]{0,8}([+-] ?([0-9.]{0,3}:)?[a-z -]{0,8}){0,10}") {
            let _ = parse_query(&s);
        }
    }
}
