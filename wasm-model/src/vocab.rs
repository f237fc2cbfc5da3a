//! The vocabulary file `vocab.txt`: line i is token id i; `<pad>` = 0, `<unk>` = 1.

use std::collections::HashMap;

pub const PAD: &str = "<pad>";
pub const UNK: &str = "<unk>";
pub const PAD_ID: u32 = 0;
pub const UNK_ID: u32 = 1;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VocabError {
    #[error("vocab.txt: line {line} must be `{expected}` but is `{found}` (line 0 is <pad>, line 1 is <unk>; re-export the model)")]
    Reserved { line: usize, expected: &'static str, found: String },
    #[error("vocab.txt: line {line} is empty (every line must hold one token; remove blank lines)")]
    EmptyToken { line: usize },
    #[error("vocab.txt: token `{token}` appears on lines {first} and {line} (tokens must be unique)")]
    Duplicate { token: String, first: usize, line: usize },
    #[error("vocab.txt: {len} tokens do not fit u32 ids")]
    TooLarge { len: usize },
}

/// Token ↔ id mapping.
#[derive(Debug, Clone)]
pub struct Vocab {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    /// Builds a vocabulary; `tokens[0]` must be `<pad>` and `tokens[1]` `<unk>`.
    pub fn from_tokens(tokens: Vec<String>) -> Result<Self, VocabError> {
        for (line, expected) in [(0, PAD), (1, UNK)] {
            let found = tokens.get(line).map(String::as_str).unwrap_or("");
            if found != expected {
                return Err(VocabError::Reserved { line, expected, found: found.chars().take(40).collect() });
            }
        }
        if u32::try_from(tokens.len()).is_err() {
            return Err(VocabError::TooLarge { len: tokens.len() });
        }
        let mut ids = HashMap::with_capacity(tokens.len());
        for (line, tok) in tokens.iter().enumerate() {
            if tok.is_empty() {
                return Err(VocabError::EmptyToken { line });
            }
            if let Some(first) = ids.insert(tok.clone(), line as u32) {
                return Err(VocabError::Duplicate { token: tok.clone(), first: first as usize, line });
            }
        }
        Ok(Self { tokens, ids })
    }

    /// Parses the contents of `vocab.txt` (one token per line; a final newline is optional).
    pub fn from_text(text: &str) -> Result<Self, VocabError> {
        Self::from_tokens(text.lines().map(str::to_owned).collect())
    }

    /// The `vocab.txt` contents for this vocabulary (one token per line, trailing newline).
    pub fn to_text(&self) -> String {
        let mut s = self.tokens.join("\n");
        s.push('\n');
        s
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The id of `token`, or `<unk>`'s.
    pub fn id(&self, token: &str) -> u32 {
        self.ids.get(token).copied().unwrap_or(UNK_ID)
    }

    /// Whether `token` has its own id (is not mapped to `<unk>`).
    pub fn contains(&self, token: &str) -> bool {
        self.ids.contains_key(token)
    }

    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Maps tokens to ids (unknown tokens → `<unk>`).
    pub fn encode(&self, tokens: &[String]) -> Vec<u32> {
        tokens.iter().map(|t| self.id(t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_maps_unknowns() {
        let v = Vocab::from_text("<pad>\n<unk>\ndog\ncat\n").unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v.encode(&["cat".into(), "zebra".into(), "dog".into()]), [3, UNK_ID, 2]);
        assert_eq!(v.token(2), Some("dog"));
        assert_eq!(v.token(9), None);
        assert_eq!(Vocab::from_text(&v.to_text()).unwrap().tokens(), v.tokens());
        // Windows line endings and a missing final newline are accepted.
        assert_eq!(Vocab::from_text("<pad>\r\n<unk>\r\ndog").unwrap().id("dog"), 2);
    }

    #[test]
    fn refuses_bad_files_with_line_numbers() {
        assert!(matches!(Vocab::from_text(""), Err(VocabError::Reserved { line: 0, .. })));
        assert!(matches!(Vocab::from_text("<unk>\n<pad>\n"), Err(VocabError::Reserved { line: 0, .. })));
        assert!(matches!(Vocab::from_text("<pad>\n"), Err(VocabError::Reserved { line: 1, .. })));
        assert_eq!(
            Vocab::from_text("<pad>\n<unk>\ndog\n\ncat\n").unwrap_err(),
            VocabError::EmptyToken { line: 3 }
        );
        let e = Vocab::from_text("<pad>\n<unk>\ndog\ndog\n").unwrap_err();
        assert!(e.to_string().contains("lines 2 and 3"), "{e}");
    }
}
