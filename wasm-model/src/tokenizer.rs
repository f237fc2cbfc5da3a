//! Tokenizer version 1 (README "Tokenizer"): the one tokenizer shared by the trainer and the browser.

/// Written into `manifest.json` as `tokenizer_version`; readers refuse models made with another version.
pub const TOKENIZER_VERSION: u32 = 1;
/// Prompts longer than this many tokens are truncated (the rest is ignored, not an error).
pub const MAX_TOKENS: usize = 48;

/// Splits `text` into lower-case word tokens (see the crate README for the exact rules).
///
/// Never fails: any input (empty, emoji, HTML, right-to-left scripts) gives a possibly empty token list.
pub fn tokenize(text: &str) -> Vec<String> {
    // Typographic apostrophes (phones type U+2019) mean the same as ASCII ones.
    let lower = text.to_lowercase().replace('\u{2019}', "'");
    let chars: Vec<char> = lower.chars().collect();
    let mut tokens = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let keeps_apostrophe = c == '\''
            && !current.is_empty()
            && i > 0
            && chars[i - 1].is_alphabetic()
            && chars.get(i + 1).is_some_and(|n| n.is_alphabetic());
        if c.is_alphanumeric() || keeps_apostrophe {
            current.push(c);
        } else if !current.is_empty() {
            tokens.push(std::mem::take(&mut current));
            if tokens.len() == MAX_TOKENS {
                return tokens;
            }
        }
    }
    if !current.is_empty() && tokens.len() < MAX_TOKENS {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Vec<String> {
        tokenize(s)
    }

    #[test]
    fn lower_cases_and_splits_on_punctuation() {
        assert_eq!(t("A Dog, running on the BEACH!"), ["a", "dog", "running", "on", "the", "beach"]);
        assert_eq!(t("two-dogs;play\tin\nsnow"), ["two", "dogs", "play", "in", "snow"]);
    }

    #[test]
    fn apostrophe_stays_only_between_letters() {
        assert_eq!(t("Don't touch people's dog"), ["don't", "touch", "people's", "dog"]);
        assert_eq!(t("don\u{2019}t"), ["don't"]);
        assert_eq!(t("'quoted' dogs' 90's"), ["quoted", "dogs", "90", "s"]);
        assert_eq!(t("''''"), Vec::<String>::new());
    }

    #[test]
    fn keeps_numbers_and_unicode_letters() {
        assert_eq!(t("3 Äpfel über café"), ["3", "äpfel", "über", "café"]);
        assert_eq!(t("كلب على الشاطئ"), ["كلب", "على", "الشاطئ"]);
        assert_eq!(t("猫 and 犬"), ["猫", "and", "犬"]);
    }

    #[test]
    fn hostile_inputs_give_clean_tokens() {
        assert!(t("").is_empty());
        assert!(t(" \t\n  ").is_empty());
        assert_eq!(t("🐶🐶 dog🏖️beach"), ["dog", "beach"]);
        assert_eq!(t("<script>alert('x')</script>"), ["script", "alert", "x", "script"]);
        assert_eq!(t("\u{202E}dog\u{202C}"), ["dog"]);
        let long = "dog ".repeat(2500);
        assert_eq!(t(&long).len(), MAX_TOKENS);
        let one_word = "a".repeat(10_000);
        assert_eq!(t(&one_word), [one_word]);
    }

    #[test]
    fn truncates_to_max_tokens_in_order() {
        let words: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        let got = t(&words.join(" "));
        assert_eq!(got, words[..MAX_TOKENS]);
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn tokens_are_clean_and_bounded(s in any::<String>()) {
                let toks = tokenize(&s);
                prop_assert!(toks.len() <= MAX_TOKENS);
                for tok in &toks {
                    prop_assert!(!tok.is_empty());
                    prop_assert!(tok.chars().all(|c| c.is_alphanumeric() || c == '\''));
                    prop_assert!(!tok.starts_with('\'') && !tok.ends_with('\''));
                    prop_assert_eq!(tok.to_lowercase(), tok.clone());
                }
            }

            #[test]
            fn idempotent_on_joined_tokens(s in "[a-zA-Z' ,.!-]{0,200}") {
                let toks = tokenize(&s);
                prop_assert_eq!(tokenize(&toks.join(" ")), toks);
            }
        }
    }
}
