//! Feature-extraction throughput of the backbones (eval, no grad, 224 px): images/s, channels-last vs
//! NCHW. `scripts/bench_backbone.sh` runs this and the PyTorch reference and prints a table with the
//! ratio. Knobs: IMGPICK_BENCH_BATCH (default 32), IMGPICK_BENCH_THREADS (default 2).

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tch::{nn, Device, Kind, Tensor};
use trainer::backbone::{self, efficientnet_lite::EfficientNetLite, Backbone};

fn env_or(name: &str, default: i64) -> i64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn lite0_features(c: &mut Criterion) {
    let weights = backbone::assets_dir().join("efficientnet_lite0.safetensors");
    if !weights.is_file() {
        eprintln!("SKIP: {} not found (run scripts/setup.sh or set IMGPICK_ASSETS)", weights.display());
        return;
    }
    let (batch, threads) = (env_or("IMGPICK_BENCH_BATCH", 32), env_or("IMGPICK_BENCH_THREADS", 2));
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
        let name = if channels_last { "channels_last" } else { "nchw" };
        group.bench_function(name, |b| b.iter(|| tch::no_grad(|| net.features(&x, false))));
    }
    group.finish();
}

criterion_group!(benches, lite0_features);
criterion_main!(benches);
