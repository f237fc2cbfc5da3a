#![no_main]
use libfuzzer_sys::fuzz_target;
use wasm_model::query::{parse_query, MAX_TERMS, MAX_WEIGHT};

fuzz_target!(|text: &str| {
    if let Ok(terms) = parse_query(text) {
        assert!(!terms.is_empty() && terms.len() <= MAX_TERMS);
        assert!(terms.iter().all(|t| t.weight.is_finite() && t.weight != 0.0 && t.weight.abs() <= MAX_WEIGHT));
    }
});
