//! The gallery summary's example prompts (`gallery.json` `summary`, README "Gallery"): of a list of everyday
//! prompts, the few whose results on this gallery are strong matches, so the page's empty state offers prompts
//! that really work on it. Computed when a gallery is published (`trainer publish`).

use super::{Engine, Scope};
use crate::gallery::{count_themes, themes_of, ExamplePrompt, GallerySummary, EXAMPLE_DEPTH};

/// Prompts a writer might type, across the themes (`gallery::THEMES`); the summary keeps those that work.
pub const CANDIDATE_PROMPTS: &[&str] = &[
    "a dog", "a cat", "a bird flying", "a horse in a field", "fish swimming in the sea", "a butterfly on a flower",
    "an elephant", "a tiger", "a monkey in a tree", "a sheep", "a cow", "a parrot", "an owl", "a frog",
    "a woman smiling", "a man in a suit", "children playing", "people dancing", "a baby", "an old man",
    "a girl jumping", "a musician playing", "an astronaut",
    "a bowl of fruit", "a cup of coffee", "vegetables", "a cake", "bread", "cheese",
    "snowy mountains", "a path through the forest", "a sandy beach", "a lake at dawn", "a sunset", "storm clouds",
    "a desert", "a waterfall", "flowers in a garden", "autumn leaves", "a field of flowers", "the moon", "a coral reef",
    "a city at night", "an old castle", "a church", "a bridge over a river", "a lighthouse", "a windmill",
    "a busy street", "an old wooden house", "a temple", "a skyline",
    "a red car", "a bus", "a bicycle", "a boat on the water", "an airplane in the sky", "a train", "a rocket launch",
    "a tractor", "a guitar", "tools on a workbench", "a clock", "a hammer", "a camera", "a ball", "a teddy bear",
];

/// Words of a prompt that name nothing (a caption sharing only these does not show what was asked).
const FILLER: &[&str] = &["a", "an", "the", "of", "in", "on", "at", "with", "and", "to", "by", "for", "from", "over", "under", "through", "into", "its", "their"];

/// Whether `caption` shows the subject of `prompt`: its first word that belongs to a theme (else its first word
/// other than [`FILLER`]) — that word itself (or a plural of it) or another word of its theme ("a bird flying" →
/// "a hawk flying…": both animals; "a monkey in a tree" → "bare tree branches…": no).
fn caption_names(caption: &str, prompt: &str) -> bool {
    let words = crate::tokenizer::tokenize(prompt);
    let content: Vec<&String> = words.iter().filter(|w| !FILLER.contains(&w.as_str())).collect();
    let Some(subject) = content.iter().find(|w| !themes_of(w).is_empty()).or(content.first()) else { return false };
    let caption_words = crate::tokenizer::tokenize(caption);
    if caption_words.iter().any(|c| crate::gallery::names_word(c, subject) || crate::gallery::names_word(subject, c)) {
        return true;
    }
    let (theirs, ours) = (themes_of(caption), themes_of(subject));
    ours.iter().any(|t| theirs.contains(t))
}

/// Examples kept at most.
pub const MAX_EXAMPLES: usize = 8;
/// Examples kept at most per theme (a prompt's theme: the first its words name), so the list spans the gallery.
const PER_THEME: usize = 2;

impl Engine {
    /// The flat gallery's summary: its captions counted by theme and the example prompts among
    /// [`CANDIDATE_PROMPTS`] (see [`Engine::example_prompts`]).
    pub fn gallery_summary(&self) -> GallerySummary {
        GallerySummary { themes: count_themes(&self.index.items), examples: self.example_prompts(CANDIDATE_PROMPTS, MAX_EXAMPLES) }
    }

    /// Up to `max` of `candidates` that work on this gallery, best first. With a calibrated model
    /// (`retrieval.strong_match`) only prompts whose top result is a strong match, ranked by how many of their
    /// first [`EXAMPLE_DEPTH`] results are strong, then by the top score; without one, by the top score. When the
    /// top picture has a caption, it must show the prompt's subject (`caption_names`).
    /// Two prompts with the same top picture are one example, and a theme gives at most two.
    pub fn example_prompts(&self, candidates: &[&str], max: usize) -> Vec<ExamplePrompt> {
        let calibrated = self.model.manifest.strong_match().is_some();
        let mut scored: Vec<(ExamplePrompt, u32)> = candidates
            .iter()
            .filter_map(|&prompt| {
                let hits = self.search_in(prompt, EXAMPLE_DEPTH, Scope::Gallery).ok()?;
                let top = hits.first()?;
                let strong = calibrated.then(|| hits.iter().filter(|h| h.strong == Some(true)).count());
                // a strong score alone is weak evidence (a yellow pepper for "a bowl of fruit" scored strong):
                // when the gallery has captions, the top picture's must also name something the prompt asks for
                if strong == Some(0) || (!top.caption.is_empty() && !caption_names(&top.caption, prompt)) {
                    return None;
                }
                Some((ExamplePrompt { prompt: prompt.to_string(), score: top.score, strong }, top.id))
            })
            .collect();
        scored.sort_by(|(a, _), (b, _)| b.strong.cmp(&a.strong).then(b.score.total_cmp(&a.score)));
        let (mut kept, mut tops, mut themes): (Vec<ExamplePrompt>, Vec<u32>, Vec<&str>) = (Vec::new(), Vec::new(), Vec::new());
        for (example, top) in scored {
            let theme = themes_of(&example.prompt).first().copied().unwrap_or("other");
            if kept.len() == max || tops.contains(&top) || themes.iter().filter(|t| **t == theme).count() == PER_THEME {
                continue;
            }
            tops.push(top);
            themes.push(theme);
            kept.push(example);
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{engine, items};
    use super::*;
    use crate::gallery::{write_gallery_bin, GalleryDtype, GalleryIndex};
    use crate::model_dir::{Retrieval, StrongMatch};
    use crate::testutil::{random_model, random_rows, small_config};

    // The random test model's vocabulary is w0…w29: prompts are made of those words.
    const PROMPTS: [&str; 6] = ["w2 w5 w7", "w3", "w4 w8", "w9 w3", "w6 w10", "w11"];

    /// The test gallery (30 random rows) with `caption(i)` as captions, calibrated at `min_score` if given.
    fn gallery(caption: impl Fn(usize) -> String, min_score: Option<f32>) -> Engine {
        let mut model = random_model(small_config(), 6, 9, false);
        let strong_match = min_score.map(|min_score| StrongMatch {
            min_score, target_precision: 0.5, precision: 0.5, coverage: 0.5, queries: 1, images: 1, captions: "c".into(),
        });
        model.manifest.retrieval = Some(Retrieval { image_views: vec!["original".into()], hubness_k: 10, hubness_weight: 0.0, strong_match });
        let id = model.model_id().to_owned();
        let bin = write_gallery_bin(&id, 6, &random_rows(30, 6, 2), GalleryDtype::F32).unwrap();
        let mut its = items(30);
        its.iter_mut().enumerate().for_each(|(i, it)| it.caption = caption(i));
        Engine::new(model, &bin, &GalleryIndex::new(&id, its).to_json()).unwrap()
    }

    #[test]
    fn uncalibrated_examples_are_ranked_by_top_score_without_repeating_a_top_picture() {
        let e = gallery(|_| String::new(), None); // no captions: no caption check
        let examples = e.example_prompts(&PROMPTS, 4);
        assert!(!examples.is_empty() && examples.len() <= 4);
        assert!(examples.iter().all(|x| x.strong.is_none()));
        for pair in examples.windows(2) {
            assert!(pair[0].score >= pair[1].score, "best first: {examples:?}");
        }
        let mut tops: Vec<u32> = examples.iter().map(|x| e.search_in(&x.prompt, 1, Scope::Gallery).unwrap()[0].id).collect();
        let n = tops.len();
        tops.sort();
        tops.dedup();
        assert_eq!(tops.len(), n, "one example per top picture: {tops:?}");
        assert!((examples[0].score - e.search(&examples[0].prompt, 1).unwrap()[0].score).abs() < 1e-6);
    }

    /// With a threshold, only prompts whose top result is strong are kept, most strong results first; a
    /// threshold above every score keeps none.
    #[test]
    fn calibrated_examples_need_a_strong_top_result() {
        let plain = gallery(|_| String::new(), None);
        let mut tops: Vec<f32> = PROMPTS.iter().map(|p| plain.search(p, 1).unwrap()[0].score).collect();
        tops.sort_by(|a, b| b.total_cmp(a));
        // between the 2nd and 3rd best top score: at most two prompts qualify
        let cut = (tops[1] + tops[2]) / 2.0;
        let e = gallery(|_| String::new(), Some(cut));
        let examples = e.example_prompts(&PROMPTS, 8);
        assert!(!examples.is_empty() && examples.len() <= 2, "{examples:?}");
        assert!(examples.iter().all(|x| x.score >= cut && x.strong.unwrap() >= 1));
        for pair in examples.windows(2) {
            assert!(pair[0].strong >= pair[1].strong, "most strong results first: {examples:?}");
        }
        assert!(gallery(|_| String::new(), Some(tops[0] + 1.0)).example_prompts(&PROMPTS, 8).is_empty());
        assert!(e.gallery_summary().examples.len() <= MAX_EXAMPLES);
    }

    /// With captions, a prompt is an example only when its top picture's caption shares one of its words.
    #[test]
    fn captions_must_name_what_the_prompt_asks_for() {
        let blind = gallery(|_| String::new(), None);
        let top_of = |p: &str| blind.search(p, 1).unwrap()[0].id as usize;
        let (first, second) = (top_of(PROMPTS[0]), top_of(PROMPTS[1]));
        // only the first prompt's top picture is captioned with its first word
        let e = gallery(|i| if i == first { "a w2 on a hill".into() } else { "a thing".into() }, None);
        let kept: Vec<String> = e.example_prompts(&PROMPTS[..2], 8).into_iter().map(|x| x.prompt).collect();
        assert_eq!(kept, [PROMPTS[0]], "{first} {second}");
    }

    #[test]
    fn a_theme_gives_at_most_two_examples() {
        let e = gallery(|_| String::new(), None);
        // every prompt names a dog: one theme
        let prompts = ["w2 dog", "w3 dog", "w4 dog", "w5 dog", "w6 dog", "w7 dog"];
        let examples = e.example_prompts(&prompts, 8);
        assert!(!examples.is_empty() && examples.len() <= PER_THEME, "{examples:?}");
    }

    #[test]
    fn a_caption_shows_the_prompts_subject_by_its_word_or_theme() {
        assert!(caption_names("a woolly white sheep standing in a field", "a sheep"));
        assert!(caption_names("two red buses", "a bus"), "plural");
        assert!(caption_names("a hawk flying with its wings spread", "a bird flying"), "same theme");
        assert!(caption_names("a green bus", "a red bus"), "the subject is the themed word, not the colour");
        assert!(!caption_names("bare tree branches against a pink sky at dusk", "a monkey in a tree"), "not the subject");
        assert!(!caption_names("a yellow pepper", "a bowl of fruit"));
        assert!(!caption_names("a path in the woods", "a dog in the snow"), "only filler in common");
        assert!(caption_names("w5 on a hill", "w5 w2"), "no themed word: the first word");
    }

    #[test]
    fn the_summary_counts_the_flat_gallerys_captions() {
        let e = engine(GalleryDtype::F32);
        // the test items' captions ("caption 3") name no theme
        assert!(e.gallery_summary().themes.is_empty());
        let e = gallery(|i| if i < 3 { "a dog".into() } else { String::new() }, None);
        assert_eq!(e.gallery_summary().themes, [crate::gallery::ThemeCount { theme: "animals".into(), count: 3 }]);
    }
}
