#![no_main]
use libfuzzer_sys::fuzz_target;
use wasm_model::tokenizer::{tokenize, MAX_TOKENS};

fuzz_target!(|text: &str| {
    let tokens = tokenize(text);
    assert!(tokens.len() <= MAX_TOKENS);
    assert!(tokens.iter().all(|t| !t.is_empty() && !t.starts_with('\'') && !t.ends_with('\'')));
});
