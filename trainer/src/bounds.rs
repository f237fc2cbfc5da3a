//! The valid range of every numeric option, defined once: the command line's value parsers
//! (`value_parser = bounds::BATCH_SIZE.parser()`, a usage error naming the option, value and range) and
//! [`crate::config::Config::check`] (configs built in code or read from `state.json`) use the same [`Bound`].

use std::fmt::Display;
use std::str::FromStr;

/// A closed or half-open range of a numeric option and how to say it.
#[derive(Debug)]
pub struct Bound<T: 'static> {
    pub min: T,
    pub max: T,
    /// `min` itself is not allowed (e.g. `--lr 0`).
    pub min_open: bool,
    /// `max` itself is not allowed (e.g. `--word-dropout 1`).
    pub max_open: bool,
    /// The range in words, and why when it is not obvious (the error message's "expected …").
    pub rule: &'static str,
}

impl<T: PartialOrd + Copy + Display + FromStr + Send + Sync + 'static> Bound<T>
where
    T::Err: Display,
{
    /// Whether `v` is in range (NaN never is).
    pub fn contains(&self, v: T) -> bool {
        let above = if self.min_open { v > self.min } else { v >= self.min };
        let below = if self.max_open { v < self.max } else { v <= self.max };
        above && below
    }

    /// `Ok` in range, else "`{option}` is {v}: expected {rule}".
    pub fn check(&self, option: &str, v: T) -> anyhow::Result<()> {
        if !self.contains(v) {
            anyhow::bail!("{option} is {v}: expected {}", self.rule);
        }
        Ok(())
    }

    /// The clap value parser: parses `T`, then checks the range (clap prefixes the option and the value).
    pub fn parser(&'static self) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
        move |s: &str| {
            let v: T = s.trim().parse().map_err(|e| format!("{e}; expected {}", self.rule))?;
            if self.contains(v) {
                Ok(v)
            } else {
                Err(format!("expected {}", self.rule))
            }
        }
    }
}

const fn closed<T>(min: T, max: T, rule: &'static str) -> Bound<T> {
    Bound { min, max, min_open: false, max_open: false, rule }
}

/// Largest joint, word and hidden dimension: the model directory's limit (wasm-model refuses more).
const MAX_DIM: i64 = 1 << 14;

// `trainer fit`
pub static EMBED_DIM: Bound<i64> = closed(1, MAX_DIM, "1..=16384 (the model directory's limit)");
pub static HIDDEN_DIM: Bound<i64> = closed(1, MAX_DIM, "1..=16384 (the model directory's limit)");
pub static LAYERS: Bound<i64> = closed(1, 16, "1..=16 stacked LSTM layers (the model directory's limit)");
pub static VOCAB_SIZE: Bound<usize> = closed(3, 1 << 24, "3..=16777216 (<pad>, <unk> and at least one word)");
pub static MIN_COUNT: Bound<usize> = closed(1, usize::MAX, "at least 1 occurrence");
pub static WORD_DROPOUT: Bound<f64> =
    Bound { min: 0.0, max: 1.0, min_open: false, max_open: true, rule: "a probability in [0, 1) (1 would replace every word)" };
pub static LR_SCALE: Bound<f64> = closed(0.0, f64::MAX, "a finite number ≥ 0 (0 freezes those weights)");
pub static CROP_SCALE: Bound<f64> =
    Bound { min: 0.0, max: 1.0, min_open: true, max_open: false, rule: "a fraction in (0, 1] of the shorter image side" };
pub static FINETUNE_FROM: Bound<usize> = closed(0, 16, "a backbone stage 0..=16 (Lite0 has 0..=6 and its head conv 7)");
pub static MARGIN: Bound<f64> = closed(0.0, f64::MAX, "a finite number ≥ 0");
pub static TAU: Bound<f64> = Bound { min: 0.0, max: f64::MAX, min_open: true, max_open: false, rule: "a finite temperature > 0" };
pub static EPOCHS: Bound<usize> = closed(1, 1_000_000, "at least 1 epoch");
pub static BATCH_SIZE: Bound<usize> =
    closed(2, 1 << 20, "2..=1048576 pairs (a pair's negatives are the other pairs of its batch: one pair alone learns nothing)");
pub static LR: Bound<f64> = Bound {
    min: 0.0,
    max: 1.0,
    min_open: true,
    max_open: false,
    rule: "a learning rate in (0, 1] (Adam moves each weight by about lr a step: above 1 a run diverges at once)",
};
pub static WEIGHT_DECAY: Bound<f64> = closed(0.0, f64::MAX, "a finite number ≥ 0");
pub static GRAD_CLIP: Bound<f64> = closed(0.0, f64::MAX, "a finite gradient norm ≥ 0 (0 = no clipping)");
pub static STOP_AFTER_EPOCH: Bound<usize> = closed(1, usize::MAX, "an epoch ≥ 1");
// other commands
pub static THREADS: Bound<i32> = closed(1, 4096, "1..=4096 threads");
pub static BOOTSTRAP: Bound<usize> = closed(1, 10_000_000, "at least 1 resample (1000 is usual)");
pub static SEARCH_K: Bound<usize> = closed(1, wasm_model::engine::MAX_K, "1..=1000 results");
pub static SPLIT: Bound<usize> = closed(0, 16, "a backbone stage 0..=16 (Lite0: 0..=7)");
pub static TOP_CLASSES: Bound<usize> = closed(1, 1000, "1..=1000 classes");
pub static SHARE: Bound<f64> = closed(0.0, 1.0, "a share in [0, 1] (0.5 = half of them)");
pub static MIN_QUERIES: Bound<usize> = closed(1, usize::MAX, "at least 1 query");
pub static LISTS: Bound<usize> =
    closed(1, wasm_model::partitioned::MAX_LISTS, "1..=65536 lists (a partitioned header's limit; default 2√N, at most 4096)");
pub static PROBE: Bound<usize> = closed(1, wasm_model::partitioned::MAX_LISTS, "1..=65536 lists probed per query (default 24)");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_and_closed_ends_and_nan() {
        assert!(LR.contains(1.0) && LR.contains(1e-9) && !LR.contains(0.0) && !LR.contains(f64::NAN) && !LR.contains(1e30));
        assert!(WORD_DROPOUT.contains(0.0) && !WORD_DROPOUT.contains(1.0));
        assert!(LR_SCALE.contains(0.0) && !LR_SCALE.contains(f64::INFINITY));
        assert_eq!(BATCH_SIZE.parser()("128"), Ok(128));
        let e = BATCH_SIZE.parser()("1").unwrap_err();
        assert!(e.starts_with("expected 2..=") && e.contains("learns nothing"), "{e}");
        assert!(BATCH_SIZE.parser()("-1").unwrap_err().contains("invalid digit"));
        let e = BATCH_SIZE.check("--batch-size", 1).unwrap_err().to_string();
        assert!(e.starts_with("--batch-size is 1: expected 2..="), "{e}");
    }
}
