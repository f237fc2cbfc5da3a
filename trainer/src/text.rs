//! Vocabulary (caption words ∪ frequent GloVe words) and GloVe word vectors.
//!
//! Tokenisation is `wasm_model`'s (the same code the browser runs). The vocabulary keeps every caption word seen
//! at least `min_count` times, then fills up with the most frequent GloVe words (GloVe rows are in frequency
//! order) so that a prompt word never seen in captions still lands near its neighbours.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub use wasm_model::vocab::{Vocab, PAD, UNK};
pub const PAD_ID: i64 = wasm_model::vocab::PAD_ID as i64;
pub const UNK_ID: i64 = wasm_model::vocab::UNK_ID as i64;

/// The shared tokenizer (wasm-model's contract).
pub fn tokenize(text: &str) -> Vec<String> {
    wasm_model::tokenizer::tokenize(text)
}

/// Token ids of a text as the model sees them; an empty token list encodes as the single `<unk>` (contract).
pub fn encode(vocab: &Vocab, text: &str) -> Vec<i64> {
    let ids: Vec<i64> = vocab.encode(&tokenize(text)).into_iter().map(i64::from).collect();
    if ids.is_empty() {
        vec![UNK_ID]
    } else {
        ids
    }
}

/// Builds the vocabulary: caption words with count ≥ `min_count` (most frequent first), then GloVe words in
/// GloVe order, up to `max_size` tokens in all (caption words are never dropped for the size limit).
pub fn build_vocab<'a>(
    captions: impl IntoIterator<Item = &'a str>,
    glove_words: &[String],
    min_count: usize,
    max_size: usize,
) -> Vocab {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for c in captions {
        for t in tokenize(c) {
            *counts.entry(t).or_default() += 1;
        }
    }
    let mut words: Vec<(String, usize)> = counts.into_iter().filter(|(_, n)| *n >= min_count.max(1)).collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut tokens = vec![PAD.to_string(), UNK.to_string()];
    let mut seen: HashSet<String> = tokens.iter().cloned().collect();
    for (w, _) in words {
        if seen.insert(w.clone()) {
            tokens.push(w);
        }
    }
    for w in glove_words {
        if tokens.len() >= max_size {
            break;
        }
        // Only words the tokenizer can produce are reachable from a prompt.
        let toks = tokenize(w);
        if toks.len() == 1 && toks[0] == *w && seen.insert(w.clone()) {
            tokens.push(w.clone());
        }
    }
    Vocab::from_tokens(tokens).expect("built vocabulary is valid")
}

/// Reads a `vocab.txt`.
pub fn read_vocab(path: &Path) -> Result<Vocab> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading vocabulary {}", path.display()))?;
    Vocab::from_text(&text).with_context(|| format!("invalid vocabulary file {}", path.display()))
}

/// GloVe vectors: `glove.6B.50d.safetensors` (tensor `vectors`, f32 [N, dim]) + `.words.txt` (word of row i).
pub struct Glove {
    pub words: Vec<String>,
    pub dim: usize,
    pub vectors: Vec<f32>,
}

impl Glove {
    /// Default location: `$IMGPICK_ASSETS/glove.6B.50d.safetensors` (`assets/` in the repo).
    pub fn default_path() -> PathBuf {
        crate::backbone::assets_dir().join("glove.6B.50d.safetensors")
    }

    pub fn load(path: &Path) -> Result<Self> {
        let fix = "run scripts/setup.sh to install the GloVe assets, or pass --glove PATH";
        let bytes = std::fs::read(path).with_context(|| format!("cannot read GloVe vectors {} ({fix})", path.display()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .with_context(|| format!("{} is not a safetensors file ({fix})", path.display()))?;
        let t = st
            .tensor("vectors")
            .with_context(|| format!("{} has no tensor `vectors` ({fix})", path.display()))?;
        // f16 halves the file (e.g. a trimmed copy carried to another machine)
        let vectors = match wasm_model::tensors::view_to_f32(&t) {
            Ok(v) if t.shape().len() == 2 => v,
            _ => bail!("{}: `vectors` must be f32 or f16 [N, dim], found {:?} {:?}", path.display(), t.dtype(), t.shape()),
        };
        let (n, dim) = (t.shape()[0], t.shape()[1]);
        // `glove.6B.50d.safetensors` -> `glove.6B.50d.words.txt`
        let stem = path.to_string_lossy();
        let words_path = PathBuf::from(format!("{}.words.txt", stem.strip_suffix(".safetensors").unwrap_or(&stem)));
        let words_text = std::fs::read_to_string(&words_path)
            .with_context(|| format!("cannot read GloVe words {} ({fix})", words_path.display()))?;
        let words: Vec<String> = words_text.lines().map(str::to_string).collect();
        if words.len() != n {
            bail!("{} has {} words but {} has {} vectors ({fix})", words_path.display(), words.len(), path.display(), n);
        }
        Ok(Glove { words, dim, vectors })
    }

    pub fn index(&self) -> HashMap<&str, usize> {
        self.words.iter().enumerate().map(|(i, w)| (w.as_str(), i)).collect()
    }

    /// Embedding matrix [vocab, dim] (row-major): GloVe rows where known, small random rows otherwise, zero for
    /// `<pad>`. Returns the matrix and how many tokens GloVe covered.
    pub fn embedding_for(&self, vocab: &Vocab, seed: u64) -> (Vec<f32>, usize) {
        use rand::Rng;
        let index = self.index();
        let mut rng = crate::random_stream(seed, crate::RandomUse::WordVectors, 0);
        let mut out = vec![0f32; vocab.len() * self.dim];
        let mut covered = 0;
        for (i, tok) in vocab.tokens().iter().enumerate() {
            if i as i64 == PAD_ID {
                continue;
            }
            let row = &mut out[i * self.dim..(i + 1) * self.dim];
            if let Some(&g) = index.get(tok.as_str()) {
                row.copy_from_slice(&self.vectors[g * self.dim..(g + 1) * self.dim]);
                covered += 1;
            } else {
                // small uniform init (GloVe rows have std ≈ 0.4)
                row.iter_mut().for_each(|v| *v = rng.random_range(-0.3..0.3));
            }
        }
        (out, covered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_keeps_frequent_caption_words_then_glove() {
        let caps = ["A dog runs .", "a dog sits", "The cat"];
        let glove: Vec<String> = ["the", "a", "puppy", "kitten", "don't", "x.y", "zebra"].iter().map(|s| s.to_string()).collect();
        let v = build_vocab(caps, &glove, 2, 5);
        // "a" and "dog" occur twice; then GloVe words fill up to 5 tokens.
        assert_eq!(v.tokens(), ["<pad>", "<unk>", "a", "dog", "the"]);
        let v = build_vocab(caps, &glove, 1, 100);
        assert!(v.contains("puppy") && v.contains("don't"));
        // a GloVe entry the tokenizer would split is unreachable and left out
        assert!(!v.contains("x.y"));
        let id = |t: &str| i64::from(v.id(t));
        assert_eq!(encode(&v, "A DOG, zebra?!"), vec![id("a"), id("dog"), id("zebra")]);
        assert_eq!(encode(&v, "qwertyuiop"), vec![UNK_ID]);
        assert_eq!(encode(&v, "  ...  "), vec![UNK_ID]);
    }

    #[test]
    fn vocab_file_round_trip() {
        let v = build_vocab(["one two two"], &[], 1, 10);
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("vocab.txt");
        std::fs::write(&d, v.to_text()).unwrap();
        assert_eq!(read_vocab(&d).unwrap().tokens(), v.tokens());
        std::fs::write(&d, "a\nb\n").unwrap();
        assert!(read_vocab(&d).is_err());
    }

    #[test]
    fn glove_embedding_matrix() {
        let path = Glove::default_path();
        if !path.is_file() {
            eprintln!("skipping: {} not installed (scripts/setup.sh)", path.display());
            return;
        }
        let g = Glove::load(&path).unwrap();
        assert_eq!(g.dim, 50);
        assert!((g.vectors[0] - 0.418).abs() < 1e-4, "GloVe row of `the` starts with 0.418");
        let v = Vocab::from_tokens(vec![PAD.into(), UNK.into(), "the".into(), "qqqzzz".into()]).unwrap();
        let (m, covered) = g.embedding_for(&v, 1);
        assert_eq!(covered, 1);
        assert!(m[..50].iter().all(|&x| x == 0.0), "<pad> row is zero");
        assert_eq!(&m[100..150], &g.vectors[..50]);
        assert!(m[150..200].iter().any(|&x| x != 0.0));
    }

    #[test]
    fn glove_loads_f16_and_refuses_other_dtypes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let write = |dtype: safetensors::Dtype, bytes: Vec<u8>| {
            let t = safetensors::tensor::TensorView::new(dtype, vec![2, 2], &bytes).unwrap();
            safetensors::serialize_to_file([("vectors", t)], None, &dir.join("g.safetensors")).unwrap();
        };
        std::fs::write(dir.join("g.words.txt"), "dog\ncat\n").unwrap();
        let values = [0.5f32, -1.25, 2.0, 0.0];
        write(safetensors::Dtype::F16, values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect());
        let g = Glove::load(&dir.join("g.safetensors")).unwrap();
        assert_eq!((g.words.len(), g.dim), (2, 2));
        assert_eq!(g.vectors, values);
        write(safetensors::Dtype::I32, vec![0; 16]);
        let e = Glove::load(&dir.join("g.safetensors")).err().unwrap().to_string();
        assert!(e.contains("must be f32 or f16"), "{e}");
    }

    #[test]
    fn glove_missing_file_is_a_clear_error() {
        let e = Glove::load(Path::new("/nonexistent/glove.safetensors")).err().unwrap().to_string();
        assert!(e.contains("cannot read GloVe vectors") && e.contains("setup.sh"), "{e}");
    }
}
