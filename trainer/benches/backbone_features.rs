//! Feature-extraction throughput of the backbones (eval, no grad, 224 px): images/s, channels-last vs
//! NCHW. `scripts/bench/backbone.sh` runs this and the PyTorch reference and prints a table with the
//! ratio. Knobs: IMGPICK_BENCH_BATCH (default 32), IMGPICK_BENCH_THREADS (default 2).

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tch::{nn, Device, Kind, Tensor};
use trainer::backbone::{self, efficientnet_lite::EfficientNetLite, Backbone};

fn env_or(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn lite0_features(c: &mut Criterion) {
    let weights = backbone::assets_dir().join("efficientnet_lite0.safetensors");
    if !weights.is_file() {
        eprintln!(
            "SKIP: {} not found (run scripts/setup.sh or set IMGPICK_ASSETS)",
            weights.display()
        );
        return;
    }
    let (batch, threads) = (
        env_or("IMGPICK_BENCH_BATCH", 32),
        env_or("IMGPICK_BENCH_THREADS", 2),
    );
    trainer::keep_freed_memory(); // as the trainer CLI does
    tch::set_num_threads(threads as i32);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut net = EfficientNetLite::load_lite0(&vs.root(), &weights).expect("Lite0 weights load");
    tch::manual_seed(0);
    let x = Tensor::randn([batch, 3, 224, 224], (Kind::Float, Device::Cpu));

    let mut group = c.benchmark_group(format!("lite0_features_b{batch}_t{threads}"));
    group.throughput(Throughput::Elements(batch as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    for channels_last in [true, false] {
        net.set_channels_last(channels_last);
        let name = if channels_last {
            "channels_last"
        } else {
            "nchw"
        };
        group.bench_function(name, |b| {
            b.iter(|| tch::no_grad(|| net.features(&x, false)))
        });
    }
    group.finish();
}

/// Partial fine-tuning (model-quality lead 1): forward + backward of stages `k..` + head on cached
/// `stem_to(x, k)` activations, the per-batch cost of training the last stages on CPU.
fn lite0_partial_finetune_step(c: &mut Criterion) {
    let weights = backbone::assets_dir().join("efficientnet_lite0.safetensors");
    if !weights.is_file() {
        return;
    }
    let (batch, threads) = (
        env_or("IMGPICK_BENCH_BATCH", 32),
        env_or("IMGPICK_BENCH_THREADS", 2),
    );
    trainer::keep_freed_memory(); // as the trainer CLI does
    tch::set_num_threads(threads as i32);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut net = EfficientNetLite::load_lite0(&vs.root(), &weights).expect("Lite0 weights load");
    let x = Tensor::randn([batch, 3, 224, 224], (Kind::Float, Device::Cpu));
    let mut group = c.benchmark_group(format!("lite0_finetune_step_b{batch}_t{threads}"));
    group.throughput(Throughput::Elements(batch as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    for k in [5usize, 6] {
        let cached = tch::no_grad(|| net.stem_to(&x, k, false));
        for channels_last in [true, false] {
            net.set_channels_last(channels_last);
            let name = format!(
                "from_stage{k}_{}",
                if channels_last {
                    "channels_last"
                } else {
                    "nchw"
                }
            );
            group.bench_function(name, |b| {
                b.iter(|| {
                    vs.trainable_variables()
                        .iter()
                        .for_each(|p| p.shallow_clone().zero_grad());
                    let loss = backbone::global_avg_pool(&net.stages_from(&cached, k, true))
                        .square()
                        .mean(Kind::Float);
                    loss.backward();
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, lite0_features, lite0_partial_finetune_step);
criterion_main!(benches);
