//! Writes the tiny regression fixture in `tests/fixtures/tiny/`: a random-weight model directory, a
//! gallery (f32 + int8) and reference vectors/rankings computed by this crate's native candle code.
//! The wasm tests embed it and must reproduce the vectors; the native test keeps them from drifting.
//!
//! `cargo run -p wasm-model --example make_fixture` (rewrite only on a deliberate contract change).

use std::path::Path;

use wasm_model::gallery::{write_gallery_bin, GalleryDtype, GalleryIndex, GalleryItem};
use wasm_model::model_dir::{Pooling, TextConfig};
use wasm_model::testutil::{random_model_with_vocab, random_rows};
use wasm_model::{Engine, Vocab};

const WORDS: &str = "a dog cat on the beach people running snow red car man woman child water grass ball \
                     playing in with sitting street bike white black two jumping field young";

pub const PROMPTS: &[&str] = &[
    "a dog on the beach",
    "Two people playing in the snow!",
    "red car",
    "cat",
    "",
    "🐶 <b>dog</b> don't 犬",
    "beach -people +dog",
    "2:cat + white snow",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny");
    std::fs::create_dir_all(&dir)?;
    let mut tokens = vec!["<pad>".to_string(), "<unk>".to_string()];
    tokens.extend(WORDS.split_whitespace().map(str::to_owned));
    let vocab = Vocab::from_tokens(tokens)?;
    let cfg = TextConfig {
        vocab_size: vocab.len(),
        word_dim: 8,
        hidden_dim: 12,
        layers: 2,
        bidirectional: true,
        pooling: Pooling::Mean,
    };
    let model = random_model_with_vocab(cfg, 16, 2026, false, Some(vocab));
    model.write(&dir)?;
    let id = model.model_id().to_owned();
    let n = 40;
    let rows = random_rows(n, 16, 7);
    let items: Vec<GalleryItem> = (0..n)
        .map(|i| GalleryItem {
            id: i,
            file: format!("images/{i:03}.jpg"),
            thumb: format!("thumbs/{i:03}.webp"),
            caption: format!("synthetic image {i}"),
            source: "random".into(),
            licence: "CC0-1.0".into(),
            url: None,
            hubness: None,
            ..Default::default()
        })
        .collect();
    let json = GalleryIndex::new(&id, items).to_json();
    std::fs::write(dir.join("gallery.json"), &json)?;
    let bin = write_gallery_bin(&id, 16, &rows, GalleryDtype::F32)?;
    std::fs::write(dir.join("gallery.bin"), &bin)?;
    std::fs::write(dir.join("gallery_int8.bin"), write_gallery_bin(&id, 16, &rows, GalleryDtype::Int8)?)?;

    let engine = Engine::new(model, &bin, &json)?;
    let mut refs = Vec::new();
    for p in PROMPTS {
        // `text_vector`: the encoder alone (empty → <unk>); `query_vector`/`top10`: the query path, or its error.
        let text_vector = engine.encoder().encode(p)?;
        let entry = match (engine.query_vector(p), engine.search(p, 10)) {
            (Ok(q), Ok(hits)) => serde_json::json!({
                "prompt": p, "text_vector": text_vector, "query_vector": q,
                "top10": hits.iter().map(|h| h.id).collect::<Vec<_>>(),
            }),
            (Err(e), _) | (_, Err(e)) => {
                serde_json::json!({ "prompt": p, "text_vector": text_vector, "error": e.to_string() })
            }
        };
        refs.push(entry);
    }
    let reference = serde_json::json!({
        "generator": "wasm-model/examples/make_fixture.rs (native candle)",
        "model_id": id,
        "prompts": refs,
    });
    std::fs::write(dir.join("reference.json"), serde_json::to_string_pretty(&reference)? + "\n")?;
    println!("wrote {}", dir.display());
    Ok(())
}
