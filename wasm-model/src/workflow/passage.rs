//! Paste a passage: a paragraph or a whole article split into sentences (what each suggestion names), and
//! adjacent sentences of a paragraph merged into one *idea* when their text vectors are close. Pure text and
//! vector logic; the engine encodes the sentences (`engine::passage`).

use std::ops::Range;

use crate::rank::dot_f32;
use crate::tokenizer::tokenize;

/// Longest passage accepted, in UTF-8 bytes (~15,000 words). Longer text is refused with a message saying so,
/// never half-read.
pub const MAX_PASSAGE_BYTES: usize = 100_000;
/// Sentences encoded at most (each is one text-encoder pass: ~2–3 ms in wasm); the rest of a longer passage is
/// left out and the answer says how many there were.
pub const MAX_SENTENCES: usize = 120;
/// Adjacent sentences of a paragraph whose text vectors have at least this cosine (the next sentence against
/// the idea so far) are one idea. Measured with the shipped text encoder on Flickr8k val captions
/// (`examples/workflow_calibrate.rs`): 1 % of caption pairs of *different* pictures reach it, 75 % of pairs
/// of captions of the *same* picture do.
pub const IDEA_MERGE_COSINE: f32 = 0.42;
/// Words that end in a full stop without ending a sentence.
const ABBREVIATIONS: &[&str] = &["mr", "mrs", "ms", "dr", "st", "prof", "sr", "jr", "vs", "etc", "e.g", "i.e", "cf", "approx", "no", "fig"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PassageError {
    #[error("the passage is {bytes} bytes; paste at most {MAX_PASSAGE_BYTES} bytes (about 15,000 words), or split it")]
    TooLong { bytes: usize },
    #[error("the passage has no words to search for (only punctuation, symbols, emoji or markup)")]
    NoWords,
}

/// One sentence of a passage: its text (markup removed, whitespace collapsed) and its paragraph's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    pub text: String,
    pub paragraph: usize,
}

/// A passage split for searching: the sentences with words (at most [`MAX_SENTENCES`]), and what was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub sentences: Vec<Sentence>,
    /// Sentences in the whole passage (with words), including those past the limit.
    pub total: usize,
    /// Sentences without any word (emoji, punctuation, markup only): not searched.
    pub without_words: usize,
}

impl Split {
    /// Whether sentences past [`MAX_SENTENCES`] were left out.
    pub fn truncated(&self) -> bool {
        self.total > self.sentences.len()
    }
}

/// Text with HTML/XML tags and character entities turned into spaces (`<p>`, `</em>`, `&nbsp;`, `&#8217;`),
/// so markup pasted from a web page neither becomes words nor glues words together. A `<` that opens no tag
/// (`a < b`) is kept.
fn strip_markup(text: &str) -> String {
    const BLOCK_TAGS: &[&str] = &["p", "br", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "blockquote", "section", "article"];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        // `<name …>`, `</name>`, `<!-- … >`, `<?…>` (within 400 bytes); `&name;`, `&#123;`
        let tag = (c == '<').then(|| rest[1..].find('>').filter(|&e| e < 400).map(|e| &rest[1..1 + e])).flatten()
            .filter(|t| t.chars().next().is_some_and(|f| f.is_ascii_alphabetic() || matches!(f, '/' | '!' | '?')));
        let entity = (c == '&').then(|| rest[1..].find(';').map(|e| &rest[1..1 + e])).flatten()
            .filter(|t| (1..=10).contains(&t.len()) && t.chars().all(|f| f.is_ascii_alphanumeric() || f == '#'));
        match (tag, entity) {
            (Some(t), _) => {
                let name: String = t.trim_start_matches('/').chars().take_while(char::is_ascii_alphanumeric).collect();
                let block = BLOCK_TAGS.contains(&name.to_ascii_lowercase().as_str());
                out.push_str(if block { "\n\n" } else { " " }); // block-level tags end a paragraph
                rest = &rest[t.len() + 2..];
            }
            (None, Some(e)) => {
                out.push(' ');
                rest = &rest[e.len() + 2..];
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// Whether the word before a full stop (`word`, without the stop) is an abbreviation or an initial (`J.`).
fn is_abbreviation(word: &str) -> bool {
    let w = word.trim_start_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
    ABBREVIATIONS.contains(&w.as_str()) || (w.chars().count() == 1 && w.chars().all(char::is_alphabetic))
}

/// Splits `text` into paragraphs (blank lines, or block-level HTML tags) and sentences (`.`, `!`, `?`, `…`
/// followed by white space — not after an abbreviation or an initial, not inside `3.5`), keeping the first
/// [`MAX_SENTENCES`] sentences that have words.
pub fn split_passage(text: &str) -> Result<Split, PassageError> {
    if text.len() > MAX_PASSAGE_BYTES {
        return Err(PassageError::TooLong { bytes: text.len() });
    }
    let clean = strip_markup(&text.replace("\r\n", "\n"));
    let mut sentences = Vec::new();
    let (mut total, mut without_words) = (0, 0);
    let mut push = |raw: &str, paragraph: usize| {
        let sentence = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if sentence.is_empty() {
            return;
        }
        if tokenize(&sentence).is_empty() {
            without_words += 1;
            return;
        }
        total += 1;
        if sentences.len() < MAX_SENTENCES {
            sentences.push(Sentence { text: sentence, paragraph });
        }
    };
    // Paragraphs: separated by a blank line (a single line break inside a paragraph is a soft wrap), or by a
    // line break when the passage has no blank line at all (one paragraph per line).
    let blank_lines = clean.split('\n').any(|l| l.trim().is_empty()) && clean.trim().contains('\n');
    let paragraphs: Vec<&str> = if blank_lines { split_on_blank_lines(&clean) } else { clean.split('\n').collect() };
    for (p, paragraph) in paragraphs.into_iter().filter(|p| !p.trim().is_empty()).enumerate() {
        let mut start = 0;
        let chars: Vec<(usize, char)> = paragraph.char_indices().collect();
        for (i, &(at, c)) in chars.iter().enumerate() {
            if at < start || !matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？') {
                continue; // not a terminator, or inside a run already ended (`?!`)
            }
            // the terminator run, then closing quotes/brackets, then white space (or the end)
            let mut j = i + 1;
            while j < chars.len() && matches!(chars[j].1, '.' | '!' | '?' | '…' | '"' | '\'' | '”' | '’' | ')' | ']' | '»') {
                j += 1;
            }
            let at_end = j == chars.len();
            if !(at_end || chars[j].1.is_whitespace()) || (i > 0 && chars[i - 1].1 == '.') {
                continue;
            }
            let word = paragraph[start..at].rsplit(char::is_whitespace).next().unwrap_or("");
            if c == '.' && j == i + 1 && !at_end && is_abbreviation(word) {
                continue;
            }
            let end = if at_end { paragraph.len() } else { chars[j].0 };
            push(&paragraph[start..end], p);
            start = end;
        }
        push(&paragraph[start..], p);
    }
    if total == 0 {
        return Err(PassageError::NoWords);
    }
    Ok(Split { sentences, total, without_words })
}

fn split_on_blank_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            out.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    out.push(&text[start..]);
    out
}

/// Groups sentences into ideas: runs of adjacent sentences of one paragraph where each next sentence's vector
/// has a cosine of at least `merge_cosine` with the idea so far (the normalised sum of its sentences' vectors).
/// `vectors` are L2-normalised, one per sentence; returns the ideas' sentence ranges, in order.
pub fn group_ideas(vectors: &[Vec<f32>], paragraphs: &[usize], merge_cosine: f32) -> Vec<Range<usize>> {
    let mut ideas: Vec<Range<usize>> = Vec::new();
    let mut sum: Vec<f32> = Vec::new();
    for (i, v) in vectors.iter().enumerate() {
        let joins = match ideas.last() {
            Some(last) if paragraphs.get(last.start) == paragraphs.get(i) => {
                let norm = dot_f32(&sum, &sum).sqrt().max(1e-12);
                dot_f32(&sum, v) / norm >= merge_cosine
            }
            _ => false,
        };
        if joins {
            ideas.last_mut().expect("joins only after an idea").end = i + 1;
            sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
        } else {
            ideas.push(i..i + 1);
            sum = v.clone();
        }
    }
    ideas
}

/// The normalised sum of `vectors` (unit length each): a passage's or an idea's query vector. `None` when they
/// cancel out or there are none.
pub fn mean_direction<'a>(vectors: impl IntoIterator<Item = &'a Vec<f32>>) -> Option<Vec<f32>> {
    let mut sum: Vec<f32> = Vec::new();
    for v in vectors {
        if sum.is_empty() {
            sum = vec![0.0; v.len()];
        }
        sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
    }
    let norm = dot_f32(&sum, &sum).sqrt();
    (norm.is_finite() && norm > 1e-6).then(|| sum.iter().map(|x| x / norm).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &Split) -> Vec<&str> {
        s.sentences.iter().map(|x| x.text.as_str()).collect()
    }

    #[test]
    fn splits_sentences_and_paragraphs() {
        let s = split_passage("The dog ran. It was fast!  Was it?\n\nA new day… Dr. Smith paid 3.5 dollars to J. Doe.").unwrap();
        assert_eq!(texts(&s), ["The dog ran.", "It was fast!", "Was it?", "A new day…", "Dr. Smith paid 3.5 dollars to J. Doe."]);
        assert_eq!(s.sentences.iter().map(|x| x.paragraph).collect::<Vec<_>>(), [0, 0, 0, 1, 1]);
        assert_eq!((s.total, s.without_words, s.truncated()), (5, 0, false));
        // one paragraph per line when there is no blank line; a quote closes with its sentence
        let s = split_passage("He said \"stop.\" Then left\nSecond line").unwrap();
        assert_eq!(texts(&s), ["He said \"stop.\"", "Then left", "Second line"]);
        assert_eq!(s.sentences[2].paragraph, 1);
        assert_eq!(texts(&split_passage("Really?! Wait... what now. e.g. this").unwrap()), ["Really?!", "Wait...", "what now.", "e.g. this"]);
    }

    #[test]
    fn markup_emoji_and_limits() {
        let s = split_passage("<p>A cat <em>sleeps</em> on a mat.</p><p>Dogs&nbsp;bark &amp; run.</p> 🐶🐶. a < b").unwrap();
        assert_eq!(texts(&s), ["A cat sleeps on a mat.", "Dogs bark run.", "a < b"]);
        assert_eq!(s.without_words, 1, "the emoji-only sentence");
        assert_eq!(split_passage("🐶 🎉!! <br> …"), Err(PassageError::NoWords));
        assert_eq!(split_passage(""), Err(PassageError::NoWords));
        let long = "word ".repeat(MAX_PASSAGE_BYTES / 5 + 1);
        assert!(matches!(split_passage(&long), Err(PassageError::TooLong { bytes }) if bytes > MAX_PASSAGE_BYTES));
        let many = "A short sentence. ".repeat(MAX_SENTENCES + 30);
        let s = split_passage(&many).unwrap();
        assert_eq!((s.sentences.len(), s.total, s.truncated()), (MAX_SENTENCES, MAX_SENTENCES + 30, true));
    }

    #[test]
    fn ideas_merge_close_neighbours_within_a_paragraph() {
        let unit = |v: [f32; 3]| {
            let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            v.iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let (a, a2, b) = (unit([1.0, 0.0, 0.0]), unit([0.9, 0.2, 0.0]), unit([0.0, 1.0, 0.0]));
        let vs = vec![a.clone(), a2.clone(), b.clone(), b.clone(), a.clone()];
        assert_eq!(group_ideas(&vs, &[0, 0, 0, 0, 0], 0.42), [0..2, 2..4, 4..5]);
        // a paragraph break always starts a new idea
        assert_eq!(group_ideas(&vs, &[0, 1, 1, 1, 1], 0.42), [0..1, 1..2, 2..4, 4..5]);
        assert_eq!(group_ideas(&vs, &[0; 5], 1.01), [0..1, 1..2, 2..3, 3..4, 4..5]);
        let m = mean_direction(&[a.clone(), b.clone()]).unwrap();
        assert!((m[0] - m[1]).abs() < 1e-6 && (dot_f32(&m, &m) - 1.0).abs() < 1e-5);
        assert!(mean_direction(&[a.clone(), a.iter().map(|x| -x).collect()]).is_none());
    }
}
