//! Where the train-step gap to PyTorch is not: forward and forward + backward of the image side (stage-6 tail +
//! GPO + projection on 128 cached f16 activations) and of the text side (bi-LSTM on 128 captions) alone, median
//! ms of 20 after 5. `scripts/bench/encoders_torch.py` times the same on PyTorch (run both back to back, 2 threads,
//! `OMP_WAIT_POLICY=PASSIVE`). Needs the shipped manifest and the Lite0 weights.
//!   cargo run --release -p trainer --example encoder_timing
use tch::{Device, Kind, Tensor};
fn main() {
    trainer::keep_freed_memory(); // as the trainer CLI does
    tch::set_num_threads(2);
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read("static/model/manifest.json").unwrap()).unwrap();
    let cfg = trainer::record::recorded_config(&m["training"]).unwrap();
    let vocab_size = m["text"]["vocab_size"].as_u64().expect("manifest text.vocab_size") as usize;
    let (_vs, model) = trainer::run::build_model(&cfg, vocab_size, Device::Cpu).unwrap();
    tch::manual_seed(0);
    let x = Tensor::randn([128, 192, 7, 7], (Kind::Float, Device::Cpu)).to_kind(Kind::Half);
    let med = |mut v: Vec<f64>| { v.sort_by(f64::total_cmp); v[v.len() / 2] };
    let (mut f, mut fb) = (vec![], vec![]);
    for i in 0..25 {
        let t0 = std::time::Instant::now();
        let y = model.embed_cached(&x);
        let t1 = std::time::Instant::now();
        y.sum(Kind::Float).backward();
        let t2 = std::time::Instant::now();
        if i >= 5 { f.push((t1 - t0).as_secs_f64() * 1e3); fb.push((t2 - t0).as_secs_f64() * 1e3); }
    }
    println!("tch image side: forward {:.1} ms, forward+backward {:.1} ms", med(f), med(fb));
    // text side: 128 captions of the bench's lengths (mean 10.5, max 16), random ids
    let lens: Vec<i64> = (0..128).map(|i| 5 + (i * 7919 % 12) as i64).collect();
    let seqs: Vec<Vec<i64>> = lens.iter().enumerate().map(|(i, &l)| (0..l).map(|j| 2 + ((i as i64 * 31 + j * 17) % 15000)).collect()).collect();
    let refs: Vec<&[i64]> = seqs.iter().map(|s| s.as_slice()).collect();
    let (mut f, mut fb) = (vec![], vec![]);
    for i in 0..25 {
        let t0 = std::time::Instant::now();
        let (ids, l) = trainer::model::pad_batch(&refs, Device::Cpu);
        let y = model.text.forward(&ids, &l, 0.0);
        let t1 = std::time::Instant::now();
        y.sum(Kind::Float).backward();
        let t2 = std::time::Instant::now();
        if i >= 5 { f.push((t1 - t0).as_secs_f64() * 1e3); fb.push((t2 - t0).as_secs_f64() * 1e3); }
    }
    println!("tch text side: forward {:.1} ms, forward+backward {:.1} ms", med(f), med(fb));
}
