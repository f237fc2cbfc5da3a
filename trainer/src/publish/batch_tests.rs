//! Publishing with the photos prepared ahead, and several per forward pass, gives the vectors of the pass of
//! earlier versions (one photo decoded, then embedded, at a time): the network is in eval mode (no statistic
//! is shared across a batch), so nothing changes beyond float rounding.

use wasm_model::model_dir::{ModelDir, Retrieval};
use wasm_model::tensors::{self, FloatDtype};

use super::tests::{fixture, index, opts, vectors};
use super::*;

/// 10 asset photos and a truncated file among them (skipped mid-batch), published with the shipped views (7
/// per image) and with one view (`--plain`): one at a time as before, then by default, 3 per pass (batches 3,
/// 3, 3, 1) and all 10 in one pass. Every vector, hubness, thumbnail and skip is the one-at-a-time pass's.
#[test]
fn prepared_ahead_and_batched_publishing_gives_the_one_at_a_time_vectors() {
    let Some(f) = fixture("batched", 10) else { return };
    let jpeg = std::fs::read(&f.photos[0]).unwrap();
    std::fs::write(f.images.join("caer_f_truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    // the shipped view set, and a bank of caption rows (any unit rows do) so hubness is computed too
    let dim = 16;
    let bank: Vec<f32> = (0..8 * dim).map(|i| ((i * 7 % 13) as f32 - 6.0) / 10.0).collect();
    let bytes = tensors::to_safetensors(&[("captions", vec![8, dim], bank)], FloatDtype::F32).unwrap();
    ModelDir::add_hubness_bank(&f.model, &bytes, Retrieval::recommended()).unwrap();
    assert_eq!(Retrieval::recommended().views().unwrap().len(), 7);

    for plain in [false, true] {
        let publish_into = |tag: &str, embedding: EmbedSettings| {
            let out = f.root.join(format!("{tag}-{plain}"));
            let r = publish_with(&PublishOptions { plain, ..opts(&f, &out) }, embedding).unwrap();
            assert_eq!((r.count, r.embedded), (10, 10), "{tag}: {r:?}");
            (out, r)
        };
        let (one, one_report) = publish_into("before", EmbedSettings { images_per_pass: Some(1), inline: true });
        let want = vectors(&f.model, &one);
        let want_index = index(&one);
        let batched = |n| EmbedSettings { images_per_pass: Some(n), inline: false };
        for (tag, embedding) in [("default", EmbedSettings::default()), ("three", batched(3)), ("all", batched(16))] {
            let (out, r) = publish_into(tag, embedding);
            assert_eq!(r.skipped, one_report.skipped, "{tag}: the same skips");
            assert!(r.skipped.iter().any(|(file, why)| file == "caer_f_truncated.jpg" && why.contains("end-of-image")), "{:?}", r.skipped);
            let got_index = index(&out);
            for (a, b) in want_index.items.iter().zip(&got_index.items) {
                assert_eq!((&a.file, &a.thumb, a.width, a.height), (&b.file, &b.thumb, b.width, b.height), "{tag}: items in listing order");
                let close = match (a.hubness, b.hubness) {
                    (Some(ha), Some(hb)) => !plain && (ha - hb).abs() <= 1e-5,
                    (None, None) => plain,
                    _ => false,
                };
                assert!(close, "{tag} {}: hubness {:?} vs {:?}", a.file, a.hubness, b.hubness);
            }
            let got = vectors(&f.model, &out);
            assert_eq!(got.len(), want.len());
            for ((w, g), item) in want.iter().zip(&got).zip(&want_index.items) {
                let diff = w.iter().zip(g).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                let cosine: f32 = w.iter().zip(g).map(|(a, b)| a * b).sum();
                assert!(diff <= 1e-5 && cosine >= 0.99999, "{tag} plain={plain} {}: max diff {diff}, cosine {cosine}", item.file);
            }
        }
    }
}
