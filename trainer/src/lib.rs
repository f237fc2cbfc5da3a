//! imgpick trainer library: data, text, backbones, model, training, evaluation, export, publishing.
//!
//! The flow: [`data`] (COCO captions) → [`features`] (frozen backbone, cached on disk) → [`train`] (the loop:
//! [`config`], [`pairs`], [`model`], [`loss`], [`optim`], a [`run`] folder) → [`eval`] ([`metrics`]) →
//! [`export`] (model directory for the browser; [`record`] of the training) → [`publish`] (gallery) →
//! [`db_load`] (optional: the gallery into PostgreSQL for `web --db`), with [`load`] reading a model directory
//! back. Dependencies run one way: `data`, `loss` and `metrics` are leaves, `eval` reads models through `load`
//! (never `export`), and `run` holds what `train`, `export` and `plot` share.
//! Formats (tokenizer, model directory, gallery) are `wasm_model`'s: one definition for trainer and browser.
pub mod backbone;
pub mod bounds;
pub mod calibrate;
pub mod config;
pub mod crash;
pub mod data;
pub mod db_load;
pub mod eval;
pub mod export;
pub mod features;
pub mod image_file;
pub mod load;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod pairs;
pub mod plot;
pub mod publish;
pub mod record;
pub mod run;
pub mod search;
pub mod text;
pub mod train;

/// What a seeded random stream is for; each use draws from its own ChaCha8 stream, so none shares draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RandomUse {
    /// Rows of words GloVe does not know.
    WordVectors = 0,
    /// The order of an epoch's pairs.
    Order = 1,
    /// The crops and flips of an epoch's pairs (end-to-end fine-tuning).
    Augment = 2,
}

/// The seeded generator of `purpose` for `index` (an epoch; 0 for word vectors): ChaCha8, which replays on every
/// platform and `rand` version (`StdRng` promises neither), keyed by the run's seed, one stream per use and index.
pub fn random_stream(seed: u64, purpose: RandomUse, index: u64) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index.wrapping_mul(3).wrapping_add(purpose as u64));
    rng
}

/// CUDA when libtorch sees a GPU, else CPU.
pub fn default_device() -> tch::Device {
    if tch::Cuda::is_available() {
        tch::Device::Cuda(0)
    } else {
        tch::Device::Cpu
    }
}

/// Makes glibc keep freed activation buffers for the next step instead of handing them back to the kernel.
///
/// libtorch allocates and frees tens of megabytes of activations and gradients per training step. By default
/// glibc serves such blocks with fresh `mmap`s (or trims its heap on free), so every step page-faults and zeroes
/// them again: on the 2-core CPU that was ~20 % of the fine-tuned image side's forward + backward
/// (`examples/encoder_timing`: 337 → 266 ms). Here blocks up to 32 MiB (glibc's ceiling) come from the heap and
/// the heap is not trimmed; the cost is that the process keeps its peak memory until it exits. Call once, first
/// thing. Returns false where it does not apply (not glibc) or glibc refused a setting.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's allocator parameters, under glibc's own lock.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Writes `bytes` to `path` atomically: a temp file beside it, then rename (no partial output on a crash).
/// Errors name the file.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot replace {} (by renaming {} over it)", path.display(), tmp.display())
    })
}

#[cfg(test)]
mod tests {
    /// glibc accepts both allocator settings (a threshold above its 32 MiB ceiling would be refused).
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_allocator_settings() {
        assert!(super::keep_freed_memory());
    }
}
