//! `trainer fit`: the training loop over cached backbone features (or decoded images), fixed seeds,
//! per-epoch validation and atomic checkpoints with the optimizer state (so `--resume` continues a killed run
//! exactly at the last finished epoch), best epoch kept by val rsum.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tch::Tensor;

use crate::config::Config;
use crate::data::Dataset;
use crate::loss::contrastive;
use crate::model::pad_batch;
use crate::optim::{learning_rate, Adam};
use crate::pairs::{decode_batch, random_views, validate, Augment, PairData};
use crate::run::{build_model, load_checkpoint, remove_stale_checkpoints, save_checkpoint, write_json, Checkpoint, EpochLog, RunState, STATE_FILE, VOCAB_FILE};
use crate::text::{self, Glove};

/// Trains into `out` (a run folder). With `resume`, continues from `out/state.json` and the checkpoint it names.
/// `stop_after_epoch` ends the run early as if killed right after that epoch's checkpoint (tests, budgets).
pub fn fit(cfg: Config, out: &Path, resume: bool, stop_after_epoch: Option<usize>) -> Result<RunState> {
    cfg.check()?; // a bad value (or view name) fails before anything is written
    let device = crate::default_device();
    tracing::info!("device: {device:?}");
    std::fs::create_dir_all(out).with_context(|| format!("cannot create run folder {}", out.display()))?;
    let state_path = out.join(STATE_FILE);
    let mut state = if resume && state_path.is_file() {
        let s: RunState = serde_json::from_slice(&std::fs::read(&state_path)?)
            .with_context(|| format!("cannot parse {}", state_path.display()))?;
        if s.config != cfg {
            tracing::warn!("--resume: using the run's saved config (command-line settings differ and are ignored)");
        }
        tracing::info!("resuming {} after epoch {}", out.display(), s.epochs_done);
        s
    } else {
        if state_path.is_file() {
            bail!("{} already holds a run; pass --resume to continue it or choose another --out", out.display());
        }
        RunState::new(cfg)
    };
    let cfg = state.config.clone();
    let (text_cfg, opt) = (&cfg.text, &cfg.optimiser);
    tch::manual_seed(opt.seed as i64);

    // Vocabulary: built once, stored in the run folder (resume must not rebuild it differently).
    let vocab_path = out.join(VOCAB_FILE);
    let glove = Glove::load(&text_cfg.glove_path())?;
    let vocab = if vocab_path.is_file() {
        text::read_vocab(&vocab_path)?
    } else {
        let ds = Dataset::load(&cfg.data.train_captions)?.with_captions()?;
        let v = text::build_vocab(ds.pairs().into_iter().map(|(c, _)| c), &glove.words, text_cfg.min_count, text_cfg.vocab_size);
        crate::write_atomic(&vocab_path, v.to_text().as_bytes())?;
        v
    };
    tracing::info!("vocabulary: {} tokens", vocab.len());

    let train = PairData::load(&cfg, &cfg.data.train_captions, &vocab, &cfg.image.views()?, device)?;
    let val = PairData::load_val(&cfg, &vocab, device)?;
    tracing::info!("train: {} captions of {} images ({} views); val: {} captions", train.captions.len(), train.image_ids.len(), train.views.len(), val.captions.len());

    let (mut vs, mut model) = build_model(&cfg, vocab.len(), device)?;
    let mut adam = Adam::new(&vs, text_cfg.embedding_lr_scale, cfg.image.backbone_lr_scale);
    if let Some(last) = state.checkpoint_path(out, Checkpoint::Last) {
        load_checkpoint(&mut vs, &last, Some(&mut adam))?;
        // what a kill left beside the committed state (an unfinished next epoch's files)
        remove_stale_checkpoints(out, &state)?;
    } else {
        let (rows, covered) = glove.embedding_for(&vocab, opt.seed);
        model.text.init_embedding(&rows);
        tracing::info!("GloVe covers {covered}/{} tokens", vocab.len());
    }
    drop(glove);

    let steps_per_epoch = train.captions.len().div_ceil(opt.batch_size);
    let total_steps = steps_per_epoch * opt.epochs;
    let image_ids = Tensor::from_slice(&train.image_ids).to_device(device);
    for epoch in state.epochs_done..opt.epochs {
        let started = Instant::now();
        tch::manual_seed(opt.seed as i64 + epoch as i64);
        let loss_kind = cfg.objective.at_epoch(epoch);
        let order = permutation(train.captions.len(), opt.seed, epoch);
        let bar = ProgressBar::new(steps_per_epoch as u64).with_style(
            ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta}").unwrap(),
        );
        bar.set_message(format!("{}/{}", epoch + 1, opt.epochs));
        let mut loss_sum = 0.0;
        // Batches of caption indices; (first position in `order`, indices). Singletons carry no negatives.
        let batches: Vec<(usize, &[usize])> =
            order.chunks(opt.batch_size).enumerate().map(|(i, c)| (i * opt.batch_size, c)).filter(|(_, c)| c.len() >= 2).collect();
        std::thread::scope(|scope| -> Result<()> {
            // End-to-end fine-tuning: a thread decodes the next batches while this one trains on the current.
            let decoded = train.decode.then(|| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Tensor>>(2);
                let (files, prep, batches, caption_image, cfg) = (&train.files, &train.preprocess, &batches, &train.caption_image, &cfg);
                scope.spawn(move || {
                    for (start, batch) in batches {
                        let idx: Vec<usize> = batch.iter().map(|&j| caption_image[j]).collect();
                        let aug: Vec<Augment> = (0..batch.len()).map(|p| Augment::for_pair(cfg, epoch, start + p)).collect();
                        if tx.send(decode_batch(files, prep, &idx, &aug)).is_err() {
                            break; // the trainer stopped (error): nothing left to do
                        }
                    }
                });
                rx
            });
            for &(_, batch) in &batches {
                let seqs: Vec<&[i64]> = batch.iter().map(|&j| train.captions[j].as_slice()).collect();
                let (ids, lens) = pad_batch(&seqs, device);
                let img_idx: Vec<i64> = batch.iter().map(|&j| train.caption_image[j] as i64).collect();
                let img_idx = Tensor::from_slice(&img_idx).to_device(device);
                let img = if let Some(rx) = &decoded {
                    let x = rx.recv().context("the image decoder thread stopped")??;
                    model.embed_images(None, &x.to_device(device))
                } else {
                    model.embed_cached(&random_views(&train.views, &img_idx))
                };
                let txt = model.text.forward(&ids, &lens, text_cfg.word_dropout);
                let loss = contrastive(&img, &txt, &image_ids.index_select(0, &img_idx), loss_kind);
                let mut grads = adam.gradients(&loss);
                let grad_norm = adam.clip(&mut grads, opt.grad_clip);
                let loss_value = loss.double_value(&[]);
                if !loss_value.is_finite() || !grad_norm.is_finite() {
                    let at = format!("epoch {}/{}, step {}/{steps_per_epoch}", epoch + 1, opt.epochs, bar.position() + 1);
                    return Err(diverged(&at, &format!("loss {loss_value}, gradient norm {grad_norm}"), opt.lr));
                }
                state.step += 1;
                adam.step(&grads, learning_rate(opt, state.step - 1, total_steps), opt.weight_decay, state.step);
                loss_sum += loss_value;
                bar.inc(1);
                // Logs (nohup, CI) get no progress bar: a line every 50 steps instead.
                if bar.is_hidden() && bar.position().is_multiple_of(50) {
                    let secs = started.elapsed().as_secs_f64();
                    tracing::info!(
                        "epoch {}/{} step {}/{steps_per_epoch}: loss {:.3}, {:.2} s/step ({:.0} pairs/s)",
                        epoch + 1,
                        opt.epochs,
                        bar.position(),
                        loss_sum / bar.position() as f64,
                        secs / bar.position() as f64,
                        bar.position() as f64 * opt.batch_size as f64 / secs
                    );
                }
            }
            Ok(())
        })?;
        bar.finish_and_clear();
        // the last step's update is checked here (its own loss and gradients were finite)
        if let Err(e) = crate::export::check_weights_finite(&vs) {
            return Err(diverged(&format!("epoch {}/{}, after its last step", epoch + 1, opt.epochs), &format!("{e}"), opt.lr));
        }
        let metrics = validate(&model, &val, device).with_context(|| format!("epoch {}/{}: validation", epoch + 1, opt.epochs))?;
        let seconds = started.elapsed().as_secs_f64();
        let train_loss = loss_sum / steps_per_epoch as f64;
        tracing::info!("epoch {}/{}: loss {train_loss:.3} ({seconds:.0} s) val {metrics}", epoch + 1, opt.epochs);
        state.history.push(EpochLog { epoch: epoch + 1, train_loss, val: metrics, seconds });
        state.epochs_done = epoch + 1;
        // Checkpoints first, then the state that points at them: a kill between the two only repeats an epoch.
        // The commit: epoch-numbered checkpoints first, then the state naming them (one atomic rename), then
        // what it no longer names goes. A kill anywhere leaves a state whose checkpoints are its own epoch's.
        save_checkpoint(&vs, Some(&adam), &out.join(Checkpoint::Last.epoch_file(epoch + 1)))?;
        crate::crash::point("fit.checkpoint-written")?;
        if metrics.rsum > state.best_rsum {
            state.best_rsum = metrics.rsum;
            state.best_epoch = Some(epoch + 1);
            save_checkpoint(&vs, None, &out.join(Checkpoint::Best.epoch_file(epoch + 1)))?;
        }
        crate::crash::point("fit.best-written")?;
        write_json(&state_path, &state)?;
        crate::crash::point("fit.state-committed")?;
        remove_stale_checkpoints(out, &state)?;
        crate::crash::point("fit.old-checkpoints-removed")?;
        if let Err(e) = crate::plot::training_curve(&state.history, &out.join("curve.svg")) {
            tracing::warn!("could not draw the training curve: {e:#}");
        }
        if stop_after_epoch == Some(epoch + 1) {
            tracing::info!("stopping after epoch {} as asked; continue with --resume", epoch + 1);
            break;
        }
    }
    Ok(state)
}

/// The error of a run whose numbers stopped being finite: where, what, and what to change. Nothing of the epoch
/// is committed, so the run folder still holds the last good epoch.
fn diverged(at: &str, detail: &str, lr: f64) -> anyhow::Error {
    anyhow::anyhow!(
        "{at}: training diverged ({detail}); nothing of this epoch was saved. Lower --lr (it is {lr}) or raise \
         --lr-warmup-steps / lower --grad-clip, then start a new run (or --resume from the last saved epoch)"
    )
}

/// Deterministic permutation for (seed, epoch): resuming at an epoch boundary replays the same order.
fn permutation(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    use rand::seq::SliceRandom;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut crate::random_stream(seed, crate::RandomUse::Order, epoch as u64));
    idx
}


#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    use tch::{Device, Tensor};
    use wasm_model::model_dir::ImagePooling;

    use super::*;

    /// A run over the 15 installed photos (captioned from their file names): small and fast.
    pub(crate) fn tiny_config() -> Config {
        let mut cfg = Config::from_fit_flags(&[
            "--vocab-size", "500", "--embed-dim", "16", "--hidden-dim", "16", "--bidirectional", "--pooling", "mean",
            "--word-dropout", "0.1", "--epochs", "3", "--batch-size", "8", "--lr", "1e-3", "--lr-warmup-steps", "2",
            "--warmup-epochs", "1", "--seed", "7",
        ])
        .unwrap();
        cfg.data.images = crate::backbone::assets_dir().join("photos");
        cfg
    }

    fn photo_captions(dir: &Path) -> Option<PathBuf> {
        let photos = crate::backbone::assets_dir().join("photos");
        let mut files: Vec<String> = std::fs::read_dir(&photos)
            .ok()?
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let images: Vec<_> = files.iter().enumerate().map(|(i, f)| serde_json::json!({"id": i, "file_name": f})).collect();
        let anns: Vec<_> = files
            .iter()
            .enumerate()
            .flat_map(|(i, f)| {
                let words = f.split('.').next().unwrap().replace('_', " ");
                [format!("a photo of a {words}"), format!("{words} in a picture")]
                    .into_iter()
                    .map(move |c| serde_json::json!({"image_id": i, "caption": c}))
            })
            .collect();
        let p = dir.join("photos.json");
        std::fs::write(&p, serde_json::to_vec(&serde_json::json!({"images": images, "annotations": anns})).unwrap()).unwrap();
        Some(p)
    }

    /// A temp folder and the tiny config training on the asset photos (`None`, with a message, when the assets
    /// are not installed).
    fn photo_run(name: &str) -> Option<(tempfile::TempDir, Config)> {
        let mut cfg = tiny_config();
        if !cfg.image.backbone.weights().is_file() || !cfg.text.glove_path().is_file() {
            eprintln!("skipping: assets not installed (scripts/setup.sh)");
            return None;
        }
        let root = tempfile::Builder::new().prefix(name).tempdir().unwrap();
        let caps = photo_captions(root.path())?;
        cfg.data.train_captions = vec![caps.clone()];
        cfg.data.val_captions = caps;
        cfg.data.cache_dir = root.path().join("cache");
        Some((root, cfg))
    }

    /// Names of the variables whose values in `run`'s last checkpoint differ from a freshly built model's.
    fn moved_since_init(cfg: &Config, run: &Path) -> impl Fn(&str) -> bool {
        let after = resume_weights(run);
        let (vs0, _m) = build_model(cfg, 10, Device::Cpu).unwrap();
        let before = vs0.variables();
        move |name: &str| (&after[name] - &before[name]).abs().max().double_value(&[]) > 0.0
    }

    /// Every crash point of an epoch's commit, in order.
    const COMMIT_STEPS: [&str; 4] = ["fit.checkpoint-written", "fit.best-written", "fit.state-committed", "fit.old-checkpoints-removed"];

    /// Training tests seed libtorch's global RNG: run them one at a time so they replay exactly.
    static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    pub(crate) fn training_lock() -> std::sync::MutexGuard<'static, ()> {
        TRAINING.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn permutation_is_deterministic_and_complete() {
        let a = permutation(100, 3, 1);
        assert_eq!(a, permutation(100, 3, 1));
        assert_ne!(a, permutation(100, 3, 2));
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
    }

    /// A run stopped after epoch 1 and resumed gives exactly the weights of an uninterrupted run.
    #[test]
    fn resume_after_kill_matches_uninterrupted_run() {
        let _serial = training_lock();
        let Some((tmp, cfg)) = photo_run("imgpick-resume") else { return };
        let root = tmp.path();

        let full = fit(cfg.clone(), &root.join("full"), false, None).unwrap();
        assert_eq!(full.epochs_done, 3);
        let part = fit(cfg.clone(), &root.join("part"), false, Some(1)).unwrap();
        assert_eq!(part.epochs_done, 1);
        // a second start without --resume refuses to overwrite the run
        assert!(fit(cfg.clone(), &root.join("part"), false, None).unwrap_err().to_string().contains("--resume"));
        let resumed = fit(cfg.clone(), &root.join("part"), true, None).unwrap();
        assert_eq!(resumed.epochs_done, 3);
        let a = resume_weights(&root.join("full"));
        let b = resume_weights(&root.join("part"));
        for (name, t) in a {
            let d = (&t - &b[&name]).abs().max().double_value(&[]);
            assert!(d < 1e-5, "{name} differs by {d} after resume");
        }
        assert_eq!(full.history.len(), 3);
        assert!((full.history[2].train_loss - resumed.history[2].train_loss).abs() < 1e-4);
        assert!(root.join("full").join("curve.svg").is_file());
        // fitting 15 photos must beat chance clearly (chance rsum ≈ 200: t2i 7/33/67, i2t 7/31/56)
        assert!(full.history[2].val.rsum > 300.0, "{}", full.history[2].val);
    }

    /// The weights (with the Adam state) a run folder's `--resume` continues from.
    fn resume_weights(run: &Path) -> std::collections::HashMap<String, Tensor> {
        let state: RunState = serde_json::from_slice(&std::fs::read(run.join(STATE_FILE)).unwrap()).unwrap();
        Tensor::read_safetensors(state.checkpoint_path(run, Checkpoint::Last).unwrap()).unwrap().into_iter().collect()
    }

    /// A kill at any step of an epoch's commit (checkpoint written, best written, state.json written, old
    /// checkpoints removed) resumes to exactly the uninterrupted run: same weights, Adam state and history.
    #[test]
    fn a_kill_at_any_commit_step_resumes_to_the_uninterrupted_run() {
        let _serial = training_lock();
        let Some((tmp, cfg)) = photo_run("imgpick-kill") else { return };
        let root = tmp.path();
        let full = fit(cfg.clone(), &root.join("full"), false, None).unwrap();
        let want = resume_weights(&root.join("full"));
        for step in COMMIT_STEPS {
            let dir = root.join(step);
            crate::crash::arm(step, 2); // epoch 2's commit
            let e = fit(cfg.clone(), &dir, false, None).unwrap_err();
            crate::crash::disarm();
            assert!(e.is::<crate::crash::SimulatedCrash>(), "{step}: {e:#}");
            let resumed = fit(cfg.clone(), &dir, true, None).unwrap();
            let got = resume_weights(&dir);
            assert_eq!(got.len(), want.len(), "{step}");
            for (name, t) in &want {
                let d = (t - &got[name]).abs().max().double_value(&[]);
                assert!(d < 1e-5, "killed at {step}: {name} differs by {d} after resume");
            }
            let losses = |s: &RunState| s.history.iter().map(|h| (h.epoch, h.train_loss, h.val.rsum)).collect::<Vec<_>>();
            assert_eq!(losses(&resumed).len(), 3, "{step}");
            for (a, b) in losses(&full).iter().zip(losses(&resumed)) {
                assert!(a.0 == b.0 && (a.1 - b.1).abs() < 1e-4 && (a.2 - b.2).abs() < 1e-6, "killed at {step}: {a:?} vs {b:?}");
            }
            assert_eq!((resumed.step, resumed.best_epoch), (full.step, full.best_epoch), "{step}");
            let mut left: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.contains("safetensors")).collect();
            left.sort();
            let mut named = vec![Checkpoint::Last.epoch_file(3), Checkpoint::Best.epoch_file(full.best_epoch.unwrap())];
            named.sort();
            named.dedup();
            assert_eq!(left, named, "killed at {step}: only the committed checkpoints are left");
        }
    }

    /// A run whose numbers stop being finite (here a NaN in one image's cached features) stops with an error
    /// naming the epoch and step, and commits nothing: no epoch of made-up scores.
    #[test]
    fn a_diverged_run_stops_naming_the_epoch_and_step() {
        let _serial = training_lock();
        let Some((tmp, mut cfg)) = photo_run("imgpick-diverge") else { return };
        cfg.optimiser.epochs = 1;
        fit(cfg.clone(), &tmp.path().join("healthy"), false, None).unwrap();
        // poison the feature cache the healthy run made: image 0's pooled features become NaN
        let folder = std::fs::read_dir(&cfg.data.cache_dir).unwrap().next().unwrap().unwrap().path();
        let part = folder.join("part-00000.safetensors");
        let tensors: Vec<(String, Tensor)> = Tensor::read_safetensors(&part).unwrap();
        let tensors: Vec<(String, Tensor)> = tensors
            .into_iter()
            .map(|(n, t)| {
                if n == "pooled" {
                    let _ = t.get(0).fill_(f64::NAN);
                }
                (n, t)
            })
            .collect();
        Tensor::write_safetensors(&tensors, &part).unwrap();
        let run = tmp.path().join("run");
        let e = format!("{:#}", fit(cfg, &run, false, None).unwrap_err());
        assert!(e.contains("epoch 1/1, step ") && e.contains("diverged") && e.contains("loss NaN"), "{e}");
        assert!(!run.join(STATE_FILE).exists(), "no epoch committed");
    }

    /// Fine-tuning from stage 6 with GPO pooling: only stage 6, the head conv, GPO and the projections move;
    /// earlier stages and BN statistics keep their ImageNet values; a resumed run matches an uninterrupted one.
    #[test]
    fn finetune_trains_only_the_tail_and_resumes() {
        let _serial = training_lock();
        let Some((tmp, mut cfg)) = photo_run("imgpick-finetune") else { return };
        let root = tmp.path();
        cfg.image.finetune_from = Some(6);
        cfg.image.image_pooling = ImagePooling::Gpo;
        cfg.image.backbone_lr_scale = 1.0;
        cfg.optimiser.epochs = 2;
        cfg.image.use_flips = true;

        let full = fit(cfg.clone(), &root.join("full"), false, None).unwrap();
        let after = resume_weights(&root.join("full"));
        let moved = moved_since_init(&cfg, &root.join("full"));
        assert!(moved("image.backbone._blocks.15._expand_conv.weight"));
        assert!(moved("image.backbone._conv_head.weight"));
        assert!(moved("image.backbone._bn1.bias"));
        assert!(moved("image.gpo.logits"));
        assert!(!moved("image.backbone._blocks.14._expand_conv.weight"), "stage 5 must stay frozen");
        assert!(!moved("image.backbone._conv_stem.weight"));
        assert!(!moved("image.backbone._bn1.running_mean"), "BN statistics stay as loaded");
        assert!(!after.contains_key("adam_m.image.backbone._blocks.14._expand_conv.weight"), "no optimizer state for frozen weights");

        let part = fit(cfg.clone(), &root.join("part"), false, Some(1)).unwrap();
        assert_eq!(part.epochs_done, 1);
        fit(cfg.clone(), &root.join("part"), true, None).unwrap();
        let b = resume_weights(&root.join("part"));
        for (name, t) in &after {
            let d = (t - &b[name]).abs().max().double_value(&[]);
            assert!(d < 1e-5, "{name} differs by {d} after resume");
        }
        assert!(full.history[1].val.rsum > 250.0, "{}", full.history[1].val);
    }

    /// `--train-views`: zoomed views are cached like the others and trained on; a bad name is refused first.
    #[test]
    fn zoomed_training_views() {
        let _serial = training_lock();
        let Some((tmp, mut cfg)) = photo_run("imgpick-train-views") else { return };
        let root = tmp.path();
        cfg.optimiser.epochs = 1;
        cfg.image.train_views = vec!["zoom-x".into()];
        let e = format!("{:#}", fit(cfg.clone(), &root.join("bad"), false, None).unwrap_err());
        assert!(e.contains("zoom-x") && e.contains("--train-views"), "{e}");
        assert!(!root.join("bad").exists(), "nothing written for a refused config");
        cfg.image.train_views = vec!["original".into(), "flipped".into(), "zoom-c".into()];
        let state = fit(cfg.clone(), &root.join("run"), false, None).unwrap();
        assert_eq!(state.config.image.train_views, cfg.image.train_views);
        let cached: Vec<String> = std::fs::read_dir(&cfg.data.cache_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        for view in ["-orig-", "-flip-", "-zoom-c-"] {
            assert!(cached.iter().any(|c| c.contains(view)), "{view} cached: {cached:?}");
        }
        assert!(state.history[0].train_loss.is_finite() && state.history[0].val.rsum > 0.0);
    }

    /// `--finetune` (from stage 0): batches decoded from the files, the stem learns too, val works.
    #[test]
    fn end_to_end_finetune_trains_the_stem() {
        let _serial = training_lock();
        let Some((tmp, mut cfg)) = photo_run("imgpick-e2e-finetune") else { return };
        let root = tmp.path();
        cfg.image.finetune_from = Some(0);
        cfg.image.use_flips = true;
        cfg.optimiser.epochs = 1;
        let state = fit(cfg.clone(), &root.join("run"), false, None).unwrap();
        assert!(!cfg.data.cache_dir.exists(), "end-to-end fine-tuning caches nothing");
        let moved = moved_since_init(&cfg, &root.join("run"));
        assert!(moved("image.backbone._conv_stem.weight"));
        assert!(moved("image.backbone._blocks.0._depthwise_conv.weight"));
        assert!(!moved("image.backbone._fc.weight"), "the ImageNet classifier is not part of the model");
        assert!(state.history[0].val.rsum > 0.0);
    }
}
