//! What `/api/search` reads from a request: the query string of a GET, and also the JSON object body of a POST
//! (for long passages: a query string is bounded by the server's header limit, ~400 kB, and shows up in logs).
//! Both give `(name, value)` pairs read the same way:
//!
//! - one of `q` (a prompt), `like` (a picture id) or `text` (a passage, at most wasm-model's
//!   `MAX_PASSAGE_BYTES`, as on the page);
//! - `k` (results; a passage's suggestions for the whole), `offset` (queries only), `k_idea` (a passage's
//!   suggestions per idea);
//! - the refinement, by the page's names: `up`, `down`, `orient`, `min`, `lic`, `collapse`, `vary`
//!   (`Refinement::from_params`; nothing collapses unless asked, unlike the page, which collapses by default).
//!
//! In a JSON body a value may be a string, a number, a boolean (`true` = `1`) or, for `up` / `down`, an array
//! of ids; `null` is as if left out. Each name is given once across the query string and the body.

use wasm_model::workflow::passage::MAX_PASSAGE_BYTES;
use wasm_model::workflow::Refinement;

use crate::api::{ApiError, DEFAULT_K, MAX_K, MAX_QUERY_BYTES, MAX_RANK};
use crate::backend::{Query, SearchRequest};

/// Largest POST body: a passage of `MAX_PASSAGE_BYTES` with room for JSON escapes (`\u00e9` is 6 bytes for 2).
pub const MAX_BODY_BYTES: usize = 4 * MAX_PASSAGE_BYTES;
/// A passage's suggestions per idea unless `k_idea` says otherwise.
pub const DEFAULT_K_IDEA: usize = 4;
/// The names read; any other is ignored (shared page links carry page-only ones).
const NAMES: &[&str] = &["q", "like", "text", "k", "k_idea", "offset", "up", "down", "orient", "min", "lic", "collapse", "vary"];

/// A request as parsed, with what the answer echoes.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub request: SearchRequest,
    pub query: Option<String>,
    pub like: Option<usize>,
    pub k_idea: Option<usize>,
}

/// The pairs of the query string and (a POST) the body, each known name at most once.
pub fn request_pairs(raw_query: Option<&str>, body: Option<&[u8]>) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw_query.unwrap_or(""))
        .map_err(|e| ApiError::bad(format!("cannot read the query string: {e}")))?;
    if let Some(body) = body.filter(|b| !b.iter().all(u8::is_ascii_whitespace)) {
        let json: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad(format!("the body must be a JSON object of search parameters ({{\"text\": \"…\"}}): {e}")))?;
        let serde_json::Value::Object(fields) = json else {
            return Err(ApiError::bad("the body must be a JSON object of search parameters, e.g. {\"text\": \"…\", \"k\": 10}"));
        };
        for (name, value) in fields.into_iter().filter(|(name, _)| NAMES.contains(&name.as_str())) {
            if let Some(v) = json_value(&name, value)? {
                pairs.push((name, v));
            }
        }
    }
    for name in NAMES {
        let count = pairs.iter().filter(|(n, _)| n == name).count();
        if count > 1 {
            return Err(ApiError::bad(format!("{name} is given {count} times; give it once")));
        }
    }
    Ok(pairs)
}

/// A JSON body value as the query string would give it.
fn json_value(name: &str, value: serde_json::Value) -> Result<Option<String>, ApiError> {
    use serde_json::Value;
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        _ => None,
    };
    Ok(match &value {
        Value::Null => None,
        Value::Array(items) if matches!(name, "up" | "down") => {
            let ids: Option<Vec<String>> = items.iter().map(scalar).collect();
            Some(ids.ok_or_else(|| ApiError::bad(format!("{name} must be an array of picture ids")))?.join(","))
        }
        v => Some(scalar(v).ok_or_else(|| ApiError::bad(format!("{name} must be a string, a number or a boolean")))?),
    })
}

fn one<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// An integer parameter within `range`, `default` when absent or empty.
fn number(pairs: &[(String, String)], name: &str, default: usize, range: std::ops::RangeInclusive<usize>) -> Result<usize, ApiError> {
    match one(pairs, name) {
        None | Some("") => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(ApiError::bad(format!("{name} must be an integer from {} to {}, got {s:?}", range.start(), range.end()))),
        },
    }
}

/// The search a request asks for, every problem a 400 naming it.
pub fn parse_request(pairs: &[(String, String)]) -> Result<Parsed, ApiError> {
    let k = number(pairs, "k", DEFAULT_K, 1..=MAX_K)?;
    let like = match one(pairs, "like") {
        None | Some("") => None,
        Some(s) => Some(s.parse::<usize>().map_err(|_| ApiError::bad(format!("like must be a gallery item id, got {s:?}")))?),
    };
    let offset = match one(pairs, "offset") {
        None | Some("") => 0,
        Some(s) => match s.parse::<usize>() {
            Ok(o) if o + k <= MAX_RANK => o,
            _ => return Err(ApiError::bad(format!("offset must be an integer from 0 to {} (offset + k ≤ {MAX_RANK}), got {s:?}", MAX_RANK - k))),
        },
    };
    let query = one(pairs, "q").filter(|q| !q.trim().is_empty()).map(str::to_owned);
    if let Some(q) = &query {
        if q.len() > MAX_QUERY_BYTES {
            return Err(ApiError::bad(format!("q is {} bytes; at most {MAX_QUERY_BYTES} are accepted (a passage goes in text=)", q.len())));
        }
    }
    let text = one(pairs, "text").filter(|t| !t.trim().is_empty()).map(str::to_owned);
    if let Some(t) = &text {
        if t.len() > MAX_PASSAGE_BYTES {
            return Err(ApiError::bad(format!("text is {} bytes; paste at most {MAX_PASSAGE_BYTES} bytes (about 15,000 words), or split it", t.len())));
        }
        if offset > 0 {
            return Err(ApiError::bad("offset pages a query's ranking; a passage (text) is answered whole"));
        }
    }
    let refinement = Refinement::from_params(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())), false).map_err(ApiError::bad)?;
    let k_idea = text.as_ref().map(|_| number(pairs, "k_idea", DEFAULT_K_IDEA, 1..=MAX_K)).transpose()?;
    let query_kind = match (query.clone(), like, text) {
        (Some(q), None, None) => Query::Text(q),
        (None, Some(id), None) => Query::Like(id),
        (None, None, Some(text)) => Query::Passage { text, k_idea: k_idea.unwrap_or(DEFAULT_K_IDEA) },
        (None, None, None) => return Err(ApiError::bad("missing query: /api/search?q=a+dog+on+a+beach&k=10 (or like=ID, or text=A+passage.)")),
        _ => return Err(ApiError::bad("give either q or like or text, not several")),
    };
    Ok(Parsed { request: SearchRequest { query: query_kind, k, offset, refinement }, query, like, k_idea })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &str, body: Option<&str>) -> Result<Vec<(String, String)>, String> {
        request_pairs(Some(query), body.map(str::as_bytes)).map_err(|e| e.message)
    }

    fn parse(query: &str, body: Option<&str>) -> Result<Parsed, String> {
        parse_request(&pairs(query, body)?).map_err(|e| e.message)
    }

    #[test]
    fn the_query_string_and_a_json_body_read_alike() {
        let get = parse("q=a+dog&up=3,17&down=5&orient=landscape&min=800&lic=pd&collapse=1&vary=true&k=7", None).unwrap();
        let body = r#"{"q": "a dog", "up": [3, 17], "down": "5", "orient": "landscape", "min": 800, "lic": "pd", "collapse": true, "vary": 1, "k": 7, "extra": {"ignored": 1}}"#;
        let post = parse("", Some(body)).unwrap();
        assert_eq!(get, post);
        assert_eq!(get.request.query, Query::Text("a dog".into()));
        let r = &get.request.refinement;
        assert_eq!((r.up.as_slice(), r.down.as_slice(), r.collapse, r.vary, get.request.k), (&[3, 17][..], &[5][..], true, true, 7));
        // the query string and the body together; a name in both is refused
        let mixed = parse("vary=1", Some(r#"{"text": "A dog runs. A cat sleeps.", "k_idea": 2}"#)).unwrap();
        assert_eq!(mixed.request.query, Query::Passage { text: "A dog runs. A cat sleeps.".into(), k_idea: 2 });
        assert!(mixed.request.refinement.vary && mixed.k_idea == Some(2));
        assert!(parse("k=3", Some(r#"{"k": 4, "q": "x"}"#)).unwrap_err().contains("k is given 2 times"));
        // the API collapses only when asked; null is as if left out
        let plain = parse("", Some(r#"{"like": 4, "collapse": null}"#)).unwrap();
        assert!(plain.request.refinement.is_plain() && plain.like == Some(4));
        assert_eq!(parse("text=A+dog.", None).unwrap().k_idea, Some(DEFAULT_K_IDEA));
    }

    #[test]
    fn bad_requests_name_the_problem() {
        for (query, body, needle) in [
            ("q=x&orient=wide", None, "landscape, portrait or square"),
            ("q=x&up=a", None, "picture ids"),
            ("q=x&up=2&down=2", None, "both liked"),
            ("q=x&min=0", None, "1 to"),
            ("q=x&vary=maybe", None, "1 or 0"),
            ("q=x&text=y", None, "either q or like or text"),
            ("text=A+dog.&offset=5", None, "answered whole"),
            ("text=A+dog.&k_idea=0", None, "k_idea must be an integer from 1"),
            ("", Some("[1, 2]"), "JSON object"),
            ("", Some("{not json"), "JSON object"),
            ("", Some(r#"{"up": [[1]]}"#), "array of picture ids"),
            ("", Some(r#"{"q": {"a": 1}}"#), "q must be a string"),
            ("", Some("{}"), "missing query"),
        ] {
            let e = parse(query, body).unwrap_err();
            assert!(e.contains(needle), "{query} {body:?}: {e}");
        }
        let long = "word ".repeat(MAX_PASSAGE_BYTES / 5 + 1);
        let e = parse("", Some(&serde_json::json!({ "text": long }).to_string())).unwrap_err();
        assert!(e.contains("at most 100000 bytes"), "{e}");
    }
}
