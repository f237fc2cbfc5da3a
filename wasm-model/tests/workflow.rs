//! The writer's workflow through the engine (issue #20): feedback, layout filters, near-duplicate collapse and
//! variety on a flat gallery checked against the definitions by hand, the partitioned tier at full probing
//! equal to the flat one, and pasted passages.

use std::fs;
use std::path::PathBuf;

use wasm_model::engine::{Engine, RefinedHit, Scope};
use wasm_model::gallery::{write_gallery_bin, Gallery, GalleryDtype, GalleryIndex, GalleryItem};
use wasm_model::model_dir::{ModelDir, Retrieval};
use wasm_model::partitioned::fs::write_partitioned;
use wasm_model::partitioned::BuildParams;
use wasm_model::rank::dot_f32;
use wasm_model::testutil::{random_model, random_rows, small_config};
use wasm_model::workflow::feedback::rocchio;
use wasm_model::workflow::{LayoutFilter, LicenceNeed, Orientation, Refinement};

const N: usize = 300;
const D: usize = 16;
/// Rows 250.. are copies of rows 0.. (a re-encoded twin each): exact near-duplicates.
const TWINS: usize = 50;

fn model() -> ModelDir {
    let mut m = random_model(small_config(), D, 9, false);
    m.manifest.retrieval = Some(Retrieval { image_views: vec!["original".into()], hubness_k: 10, hubness_weight: 0.5, strong_match: None });
    m
}

fn rows() -> Vec<f32> {
    let mut r = random_rows(N, D, 4);
    for i in 0..TWINS {
        let (src, dst) = (i * D, (N - TWINS + i) * D);
        for d in 0..D {
            r[dst + d] = r[src + d] * (1.0 + 0.001 * d as f32);
        }
    }
    r
}

fn items() -> Vec<GalleryItem> {
    let licences = ["cc0-1.0", "cc-by-sa-3.0", "cc-by-nc-4.0", "cc-by-4.0"];
    (0..N)
        .map(|i| GalleryItem {
            file: format!("img{i}.jpg"),
            thumb: format!("thumbs/{i}.webp"),
            caption: format!("caption {i}"),
            licence: "see licence_id".into(),
            hubness: Some(0.1 + 0.3 * ((i * 37 % 101) as f32 / 101.0)),
            // landscape, portrait, square, unknown size in turn; sizes grow with the id
            width: [Some(1600 + i as u32), Some(880 + (i % 40) as u32), Some(1000), None][i % 4],
            height: [Some(900), Some(1600 + i as u32), Some(1000 + (i % 50) as u32), None][i % 4],
            licence_id: Some(licences[i / 4 % 4].to_string()),
            ..Default::default()
        })
        .collect()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    model: PathBuf,
    flat: PathBuf,
    partitioned: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let (model_dir, flat, partitioned) = (tmp.path().join("model"), tmp.path().join("flat"), tmp.path().join("part"));
    let m = model();
    m.write(&model_dir).unwrap();
    fs::create_dir_all(&flat).unwrap();
    let bin = write_gallery_bin(m.model_id(), D, &rows(), GalleryDtype::Int8).unwrap();
    let idx = GalleryIndex::new(m.model_id(), items());
    fs::write(flat.join("gallery.bin"), &bin).unwrap();
    fs::write(flat.join("gallery.json"), idx.to_json()).unwrap();
    // every list probed: the partitioned ranking is the flat one
    let params = BuildParams { lists: Some(6), probe: Some(6), meta_block: 40, ..BuildParams::default() };
    write_partitioned(&Gallery::from_bytes(&bin).unwrap(), &idx.items, &params, &partitioned).unwrap();
    Fixture { model: model_dir, flat, partitioned, _tmp: tmp }
}

fn ids(hits: &[RefinedHit]) -> Vec<u32> {
    hits.iter().map(|h| h.hit.id).collect()
}

const PROMPT: &str = "w2 w5 w7";

#[test]
fn feedback_moves_the_query_by_rocchio_and_leaves_disliked_pictures_out() {
    let f = fixture();
    let e = Engine::open(&f.model, &f.flat).unwrap();
    let plain = e.search(PROMPT, 20).unwrap();
    let (liked, disliked) = (plain[10].id, plain[0].id);
    let r = Refinement { up: vec![liked], down: vec![disliked], ..Default::default() };
    let hits = e.search_refined(PROMPT, 20, Scope::All, &r).unwrap();
    assert!(!ids(&hits).contains(&disliked), "a disliked picture is left out");
    let pos = |hs: &[RefinedHit], id| hs.iter().position(|h| h.hit.id == id);
    assert!(pos(&hits, liked).unwrap() < 10, "the liked picture moves up");
    // scores are the moved query's, hubness-corrected, with no strength (another scale)
    let row = |id: u32| e.gallery().row(id as usize).unwrap();
    let q = rocchio(&e.query_vector(PROMPT).unwrap(), &[row(liked)], &[row(disliked)]).unwrap();
    let penalty = |id: u32| 0.5 * e.index().items[id as usize].hubness.unwrap();
    for h in &hits {
        assert!((h.hit.score - (dot_f32(&q, &row(h.hit.id)) - penalty(h.hit.id))).abs() < 1e-4, "{h:?}");
        assert_eq!(h.hit.strong, None);
    }
    // a shared link's parameters give the same answer
    let from_link = Refinement::from_params([("up", &*liked.to_string()), ("down", &*disliked.to_string())], false).unwrap();
    assert_eq!(e.search_refined(PROMPT, 20, Scope::All, &from_link).unwrap(), hits);
    // marks on pictures that do not exist are refused by name
    let bad = Refinement { up: vec![N as u32 + 7], ..Default::default() };
    assert!(e.search_refined(PROMPT, 5, Scope::All, &bad).unwrap_err().to_string().contains(&(N + 7).to_string()));
}

#[test]
fn layout_filters_are_exact_on_a_flat_gallery() {
    let f = fixture();
    let e = Engine::open(&f.model, &f.flat).unwrap();
    let all = e.search(PROMPT, N).unwrap();
    for layout in [
        LayoutFilter { orientation: Some(Orientation::Landscape), ..Default::default() },
        LayoutFilter { orientation: Some(Orientation::Portrait), min_side: Some(900), ..Default::default() },
        LayoutFilter { licence: Some(LicenceNeed::PublicDomain), ..Default::default() },
        LayoutFilter { licence: Some(LicenceNeed::CommercialNoShareAlike), orientation: Some(Orientation::Square), ..Default::default() },
    ] {
        let r = Refinement { layout, ..Default::default() };
        let hits = e.search_refined(PROMPT, 15, Scope::All, &r).unwrap();
        let expected: Vec<u32> = all.iter().filter(|h| layout.accepts(&e.layout_of(h.id).unwrap())).take(15).map(|h| h.id).collect();
        assert!(!expected.is_empty(), "{layout:?}");
        assert_eq!(ids(&hits), expected, "{layout:?}");
        assert!(hits.iter().zip(&all).all(|(h, _)| h.hit.strong.is_none() == all[0].strong.is_none()), "strength kept without marks");
    }
    // the user's photos: no recorded size (fail size filters), their own licence (pass licence filters)
    let mut e = e;
    e.add_vector("mine.jpg", "blob:1", e.query_vector(PROMPT).unwrap()).unwrap();
    let pd = Refinement { layout: LayoutFilter { licence: Some(LicenceNeed::PublicDomain), ..Default::default() }, ..Default::default() };
    assert_eq!(e.search_refined(PROMPT, 1, Scope::Added, &pd).unwrap()[0].hit.file, "mine.jpg");
    let big = Refinement { layout: LayoutFilter { min_side: Some(10), ..Default::default() }, ..Default::default() };
    assert!(e.search_refined(PROMPT, 1, Scope::Added, &big).unwrap().is_empty());
}

#[test]
fn near_duplicates_collapse_and_variety_reranks() {
    let f = fixture();
    let e = Engine::open(&f.model, &f.flat).unwrap();
    let c = e.duplicate_calibration().unwrap();
    assert!((0.70..=0.95).contains(&c.threshold) && c.samples > 100, "{c:?}");
    let twin = |id: u32| if (id as usize) < TWINS { Some(id + (N - TWINS) as u32) } else if (id as usize) >= N - TWINS { Some(id - (N - TWINS) as u32) } else { None };
    // a twin's own row as the query: the pair tops the plain ranking
    let plain = e.similar(7, 10).unwrap();
    assert_eq!(plain[0].id, twin(7).unwrap());
    let r = Refinement { collapse: true, ..Default::default() };
    let hits = e.search_refined(PROMPT, 30, Scope::All, &r).unwrap();
    let shown = ids(&hits);
    for h in &hits {
        // no picture is shown with its twin, and each collapsed twin is listed under the one shown
        if let Some(t) = twin(h.hit.id) {
            assert!(!shown.contains(&t), "{} and its twin {t} both shown", h.hit.id);
        }
        assert!(h.similar.iter().all(|&s| dot_f32(&e.gallery().row(s as usize).unwrap(), &e.gallery().row(h.hit.id as usize).unwrap()) >= c.threshold));
    }
    let collapsed: usize = hits.iter().map(|h| h.similar.len()).sum();
    assert!(collapsed > 0, "the query's top 30 holds some twins");
    // the shown ones keep the plain order
    let all = e.search(PROMPT, N).unwrap();
    let order: Vec<usize> = shown.iter().map(|id| all.iter().position(|h| h.id == *id).unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]));
    // variety: the best stays first, the rest is re-ranked among the top 100
    let varied = e.search_refined(PROMPT, 20, Scope::All, &Refinement { vary: true, ..Default::default() }).unwrap();
    assert_eq!(varied[0].hit.id, all[0].id);
    assert_ne!(ids(&varied), all[..20].iter().map(|h| h.id).collect::<Vec<_>>());
    assert!(varied.iter().all(|h| all[..100].iter().any(|a| a.id == h.hit.id)));
    let mean_cos = |hs: &[u32]| {
        let v: Vec<Vec<f32>> = hs.iter().map(|&i| e.gallery().row(i as usize).unwrap()).collect();
        let pairs: Vec<f32> = (0..v.len()).flat_map(|i| (0..i).map(move |j| (i, j))).map(|(i, j)| dot_f32(&v[i], &v[j])).collect();
        pairs.iter().sum::<f32>() / pairs.len() as f32
    };
    assert!(mean_cos(&ids(&varied)) < mean_cos(&all[..20].iter().map(|h| h.id).collect::<Vec<_>>()), "more varied");
}

#[test]
fn the_partitioned_tier_at_full_probing_refines_as_the_flat_one() {
    let f = fixture();
    let flat = Engine::open(&f.model, &f.flat).unwrap();
    let part = Engine::open(&f.model, &f.partitioned).unwrap();
    assert!(part.partitioned().is_some());
    let base = flat.search(PROMPT, 10).unwrap();
    for r in [
        Refinement { up: vec![base[5].id], down: vec![base[1].id], ..Default::default() },
        Refinement { vary: true, down: vec![base[0].id], ..Default::default() },
        Refinement { collapse: true, up: vec![base[3].id], ..Default::default() },
    ] {
        let (a, b) = (flat.search_refined(PROMPT, 12, Scope::All, &r).unwrap(), part.search_refined(PROMPT, 12, Scope::All, &r).unwrap());
        assert_eq!(ids(&a), ids(&b), "{r:?}");
        a.iter().zip(&b).for_each(|(x, y)| assert!((x.hit.score - y.hit.score).abs() < 1e-5 && x.similar == y.similar && x.hit.file == y.hit.file));
        assert_eq!(ids(&flat.similar_refined(4, 8, &r).unwrap()), ids(&part.similar_refined(4, 8, &r).unwrap()), "like, {r:?}");
    }
    // filters: a partitioned gallery filters its 100 best probed candidates (the flat one, every row)
    let layout = LayoutFilter { orientation: Some(Orientation::Landscape), licence: Some(LicenceNeed::Commercial), ..Default::default() };
    let top100 = flat.search(PROMPT, 100).unwrap();
    let expected: Vec<u32> = top100.iter().filter(|h| layout.accepts(&flat.layout_of(h.id).unwrap())).map(|h| h.id).collect();
    let got = part.search_refined(PROMPT, 40, Scope::All, &Refinement { layout, ..Default::default() }).unwrap();
    assert_eq!(ids(&got), expected[..expected.len().min(40)]);
    assert!(expected.len() < 40, "fewer than k pass among the candidates: {}", expected.len());
    assert_eq!(ids(&flat.search_refined(PROMPT, 40, Scope::All, &Refinement { layout, ..Default::default() }).unwrap()).len(), 40, "the flat tier filters every row");
    assert!(!part.calibration_lists().is_empty() && flat.calibration_lists().is_empty());
}

#[test]
fn a_passage_gets_suggestions_per_idea_and_for_the_whole() {
    let f = fixture();
    let e = Engine::open(&f.model, &f.flat).unwrap();
    let text = "<p>w2 w5 w7. w2 w5 w7 w8!</p>\n\nw9 w10 w11. 🐶🐶. w3 w4?";
    let plan = e.plan_passage(text).unwrap();
    assert_eq!(plan.split.sentences.len(), 4);
    assert_eq!(plan.split.without_words, 1);
    let answer = e.passage(text, 3, 8, Scope::All, &Refinement { collapse: true, ..Default::default() }).unwrap();
    assert_eq!(answer.whole.len(), 8);
    assert!(answer.ideas.len() >= 2 && answer.ideas.len() <= 4, "{}", answer.ideas.len());
    assert_eq!(answer.ideas[0].idea.first, 0);
    assert_eq!(answer.ideas.last().unwrap().idea.last, 3);
    let mut seen = std::collections::HashSet::new();
    for idea in &answer.ideas {
        assert_eq!(idea.results.len(), 3);
        assert!(idea.results.iter().all(|h| seen.insert(h.hit.id)), "each picture suggested once across ideas");
    }
    // the whole passage: the normalised sum of its sentence vectors, ranked as a text query
    let enc = |s: &str| e.encoder().encode(s).unwrap();
    let sum: Vec<f32> = ["w2 w5 w7.", "w2 w5 w7 w8!", "w9 w10 w11.", "w3 w4?"].iter().map(|s| enc(s)).fold(vec![0.0; D], |a, v| a.iter().zip(&v).map(|(x, y)| x + y).collect());
    let norm = dot_f32(&sum, &sum).sqrt();
    let whole = e.rank_refined(sum.iter().map(|x| x / norm).collect(), 8, Scope::All, &[], true, &Refinement { collapse: true, ..Default::default() }).unwrap();
    assert_eq!(ids(&answer.whole), ids(&whole));
    // refusals with a message
    assert!(e.passage("🐶 🎉", 3, 8, Scope::All, &Refinement::default()).unwrap_err().to_string().contains("no words"));
    let long = "w2 ".repeat(40_000);
    assert!(e.passage(&long, 3, 8, Scope::All, &Refinement::default()).unwrap_err().to_string().contains("at most"));
}
