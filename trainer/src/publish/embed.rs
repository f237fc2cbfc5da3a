//! Embedding the images `publish` has no cached vector for: decoding, view preparation and thumbnail encoding
//! on a producer thread running ahead of the network, which embeds [`EmbedSettings::images_per_pass`] images
//! per forward pass.
//!
//! Why (docs/benchmarks.md "Publishing throughput"): preparing a photo's views is ~40% of its time, and
//! done on the network's thread between passes it also left libtorch's other OpenMP thread spinning at its
//! barrier: with 2 threads on a busy machine earlier versions spent ~75% of their time there (perf) and ran
//! 5× slower. The producer only decodes and lays out pixels (Rust, plus a copy into a tensor); every libtorch
//! computation stays on the calling thread, so `--threads` still bounds libtorch. It is at most
//! [`PREPARED_BATCHES`] batches ahead (a bounded channel): memory is a few photos' views, not the folder.
//! Results come back in job order, so the caller appends each image's cache record in listing order.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use anyhow::{Context, Result};
use tch::{Kind, Tensor};

use crate::backbone::{self, preprocess::{network_picture, Preprocess}};
use crate::features::View;

use super::thumbs;

/// Images per forward pass when none is asked for. Measured on 60 Flickr8k photos (2-core EPYC, 2 MB L2 per
/// core): more per pass cost more CPU, not less (7 views: 4 per pass +0-10%, 1 thread, +45% with 2; one
/// view: 32 per pass +20%), as a single image's activations still fit in the cache.
pub const IMAGES_PER_PASS: usize = 1;
/// How many batches of prepared images the producer may hold ahead of the network.
const PREPARED_BATCHES: usize = 2;

/// What embedding one image gave: its vector (views averaged, then normalised), its thumbnail's JPEG bytes
/// and its size as shown.
pub struct Embedded {
    pub vector: Vec<f32>,
    pub thumb: Vec<u8>,
    pub shown_size: (u32, u32),
}

/// The stock backbone (and the store holding its weights); `None` for a model with its own fine-tuned tail.
pub type StockBackbone = Option<(tch::nn::VarStore, Box<dyn backbone::Backbone>)>;

/// One image made ready for the network by the producer.
pub(super) struct Prepared {
    path: PathBuf,
    /// `[3, S, S]` per view, not yet mirrored (the mirror is a libtorch op: done on the network's thread).
    views: Vec<Tensor>,
    thumb: Vec<u8>,
    shown_size: (u32, u32),
}

/// What the producer sends for each job, in job order: a fatal error, or the image (or why it is skipped).
pub(super) type Sent = Result<Result<Prepared, String>>;

/// How `publish` embeds. The defaults are the fastest measured; the rest is there to compare against
/// (`trainer publish --batch-images N --one-at-a-time`, scripts/bench/publish.sh).
#[derive(Clone, Copy, Debug, Default)]
pub struct EmbedSettings {
    /// Images per forward pass (`None`: [`IMAGES_PER_PASS`]).
    pub images_per_pass: Option<usize>,
    /// Decode and prepare each image on the network's thread, just before its pass (no thread running
    /// ahead): the pass of earlier versions.
    pub inline: bool,
}

impl EmbedSettings {
    pub fn images_per_pass(&self) -> usize {
        self.images_per_pass.unwrap_or(IMAGES_PER_PASS).max(1)
    }
}

/// Decodes the image at `path`, prepares its views and encodes its thumbnail.
fn prepare(path: PathBuf, prep: &Preprocess, views: &[View]) -> Sent {
    // decoded as the page decodes a photo (a large JPEG scaled down in the IDCT)
    let (opened, shown_size) = match crate::image_file::open_for_network(&path, prep.size) {
        Ok(opened) => opened,
        Err(why) => return Ok(Err(why)),
    };
    // the stored pixels, as the page embeds a photo (the orientation only turns the thumbnail), and a cut-out on
    // grey, padded to a square (the thumbnail keeps it on white)
    let picture = network_picture(opened.image.clone());
    let inputs = views.iter().map(|&view| crate::features::picture_view_input(prep, view, &picture)).collect();
    let thumb = thumbs::encode(&opened.upright())?;
    Ok(Ok(Prepared { path, views: inputs, thumb, shown_size }))
}

/// Runs in its own thread: [`prepare`]s each job and sends the results in job order. Stops when the
/// receiver is gone (the publish failed or finished).
pub fn produce(jobs: Vec<PathBuf>, prep: Preprocess, views: &[View], tx: SyncSender<Sent>) {
    for path in jobs {
        if tx.send(prepare(path, &prep, views)).is_err() {
            return;
        }
    }
}

/// Where an [`Embedder`] gets prepared images from.
pub enum Source {
    /// A [`produce`] thread, running ahead.
    Ahead(Receiver<Sent>),
    /// Prepared on the network's thread when needed, one after the other (the pass of earlier versions,
    /// kept for comparison).
    Inline { jobs: std::vec::IntoIter<PathBuf>, prep: Preprocess },
}

impl Source {
    /// The next job's prepared image; `None` when every job is done.
    fn next(&mut self, views: &[View]) -> Option<Sent> {
        match self {
            Source::Ahead(rx) => rx.recv().ok(),
            Source::Inline { jobs, prep } => jobs.next().map(|path| prepare(path, prep, views)),
        }
    }
}

/// The network's side: pulls prepared images, embeds them a batch at a time and hands out each image's
/// result in job order.
pub struct Embedder<'a> {
    source: Source,
    ready: VecDeque<Result<Embedded, String>>,
    per_pass: usize,
    views: &'a [View],
    model: &'a crate::model::JointModel,
    /// The stock backbone, loaded on the first batch (a fine-tuned model carries its own).
    load_backbone: &'a dyn Fn() -> Result<StockBackbone>,
    net: Option<StockBackbone>,
    device: tch::Device,
    /// A fatal error from preparing a later image, returned once the images before it are handed out.
    failed: Option<anyhow::Error>,
}

/// The channel between [`produce`] and an [`Embedder`], holding at most [`PREPARED_BATCHES`] batches.
pub fn channel(per_pass: usize) -> (SyncSender<Sent>, Receiver<Sent>) {
    sync_channel(PREPARED_BATCHES * per_pass)
}

impl<'a> Embedder<'a> {
    pub fn new(
        source: Source,
        per_pass: usize,
        views: &'a [View],
        model: &'a crate::model::JointModel,
        load_backbone: &'a dyn Fn() -> Result<StockBackbone>,
        device: tch::Device,
    ) -> Self {
        Embedder { source, ready: VecDeque::new(), per_pass, views, model, load_backbone, net: None, device, failed: None }
    }

    /// The next job's result (call once per job, in order): `Ok(Err(why))` for a file that could not be
    /// read or decoded (it is skipped).
    pub fn next(&mut self) -> Result<Result<Embedded, String>> {
        if self.ready.is_empty() {
            if let Some(e) = self.failed.take() {
                return Err(e);
            }
            self.embed_next_batch()?;
        }
        match self.ready.pop_front() {
            Some(result) => Ok(result),
            None => Err(self.failed.take().unwrap_or_else(|| anyhow::anyhow!("publish's image producer stopped early (it panicked?)"))),
        }
    }

    /// Takes the next `per_pass` readable images (and the skipped files among them) from the producer and
    /// embeds them in one forward pass.
    fn embed_next_batch(&mut self) -> Result<()> {
        let mut batch: Vec<Result<Prepared, String>> = Vec::new();
        while batch.iter().filter(|p| p.is_ok()).count() < self.per_pass {
            match self.source.next(self.views) {
                Some(Ok(prepared)) => batch.push(prepared),
                Some(Err(fatal)) => {
                    self.failed = Some(fatal); // after the images before it, as one at a time would
                    break;
                }
                None => break, // every job is prepared
            }
        }
        let images: Vec<&Prepared> = batch.iter().filter_map(|p| p.as_ref().ok()).collect();
        let mut vectors = if images.is_empty() { Vec::new() } else { self.embed(&images)? }.into_iter();
        for p in batch {
            self.ready.push_back(p.map(|p| Embedded { vector: vectors.next().expect("a vector per image"), thumb: p.thumb, shown_size: p.shown_size }));
        }
        Ok(())
    }

    /// Each image's vector: its views' embeddings averaged, then normalised (test-time augmentation).
    fn embed(&mut self, images: &[&Prepared]) -> Result<Vec<Vec<f32>>> {
        if self.net.is_none() {
            self.net = Some((self.load_backbone)()?);
        }
        let stock = self.net.as_ref().and_then(|n| n.as_ref()).map(|(_, b)| b.as_ref());
        let rows: Vec<Tensor> = images
            .iter()
            .flat_map(|p| self.views.iter().zip(&p.views).map(|(view, x)| crate::features::mirrored_if_flipped(*view, x)))
            .collect();
        let (n, v) = (images.len() as i64, self.views.len() as i64);
        let flat: Vec<f32> = tch::no_grad(|| {
            let e = self.model.embed_images(stock, &Tensor::stack(&rows, 0).to_device(self.device));
            let summed = e.view([n, v, -1]).sum_dim_intlist(1, false, Kind::Float);
            Vec::<f32>::try_from(crate::model::l2_normalize(&summed).to_device(tch::Device::Cpu).flatten(0, -1))
        })
        .with_context(|| match images {
            [one] => format!("embedding {}", one.path.display()),
            [first, .., last] => format!("embedding {} … {} (one batch)", first.path.display(), last.path.display()),
            [] => unreachable!("a batch has an image"),
        })?;
        let dim = flat.len() / images.len();
        Ok(flat.chunks(dim).map(<[f32]>::to_vec).collect())
    }
}
