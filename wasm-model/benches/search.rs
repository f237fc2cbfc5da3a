//! `cargo bench -p wasm-model --bench search`: encode+rank latency and top-k throughput over
//! 1M × 256 int8 against memcpy of the same bytes (printed as a ratio table at the end).
//! Env: IMGPICK_BENCH_ROWS (default 1000000) for the throughput part.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use wasm_model::gallery::{write_gallery_bin, GalleryDtype, GalleryIndex, GalleryItem};
use wasm_model::rank::{dot_i8_i16, top_k};
use wasm_model::testutil::{random_model, random_rows, shipped_like_config, Rng};
use wasm_model::{Engine, Gallery};

const D: usize = 256;

/// A model shaped like the shipped one (GloVe-50 inputs, 1-layer biLSTM, D = 256) with random weights.
fn shipped_like_engine(n: usize, dtype: GalleryDtype) -> Engine {
    let model = random_model(shipped_like_config(), D, 1, true);
    let id = model.model_id().to_owned();
    let bin = write_gallery_bin(&id, D, &random_rows(n, D, 2), dtype).unwrap();
    let items = (0..n)
        .map(|i| GalleryItem { id: i, file: format!("{i}.jpg"), thumb: String::new(), caption: String::new(), source: String::new(), licence: String::new(), url: None, hubness: None, ..Default::default() })
        .collect();
    Engine::new(model, &bin, &GalleryIndex::new(&id, items).to_json()).unwrap()
}

/// An int8 gallery of `n` × D without building the f32 rows first (1M rows would need 1 GB).
fn big_int8_gallery(n: usize) -> Vec<u8> {
    let id = "0123456789abcdef0123456789abcdef";
    let mut rng = Rng::new(3);
    let chunk = 4096;
    let mut done = 0;
    // Quantise in chunks and splice scales and rows into one file.
    let mut header_and_scales = Vec::new();
    let mut values = Vec::with_capacity(n * D);
    while done < n {
        let m = chunk.min(n - done);
        let rows: Vec<f32> = (0..m * D).map(|_| rng.uniform()).collect();
        let b = write_gallery_bin(id, D, &rows, GalleryDtype::Int8).unwrap();
        header_and_scales.extend_from_slice(&b[64..64 + 4 * m]);
        values.extend_from_slice(&b[64 + 4 * m..b.len() - 4]);
        done += m;
    }
    let mut out = write_gallery_bin(id, D, &[], GalleryDtype::Int8).unwrap();
    out.truncate(64);
    out[16..20].copy_from_slice(&(n as u32).to_le_bytes());
    out.extend_from_slice(&header_and_scales);
    out.extend_from_slice(&values);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn median(mut f: impl FnMut(), runs: usize) -> Duration {
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[runs / 2]
}

fn main() {
    let mut c = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3)).configure_from_args();
    let prompts = ["a dog running on the beach", "w12 w400 w5 w77 w3000", "two children playing in the snow with a red ball"];
    let mut table = Vec::new();
    for (n, dtype) in [(8000, GalleryDtype::F32), (8000, GalleryDtype::Int8)] {
        let engine = shipped_like_engine(n, dtype);
        let name = format!("encode+rank {n}x{D} {dtype:?}");
        c.bench_function(&name, |b| b.iter(|| engine.search(black_box(prompts[2]), 10).unwrap()));
        let q = engine.query_vector(prompts[2]).unwrap();
        let enc = median(|| { black_box(engine.query_vector(black_box(prompts[2])).unwrap()); }, 31);
        let rank = median(|| { black_box(engine.rank(black_box(&q), 10, None)); }, 31);
        table.push((name, enc, rank));
    }

    let n: usize = std::env::var("IMGPICK_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let bytes = big_int8_gallery(n);
    let gallery = Gallery::from_bytes(&bytes).unwrap();
    let query = random_rows(1, D, 9);
    let mut scores = Vec::with_capacity(n);
    let data_bytes = n * D + 4 * n;
    let src = vec![1u8; data_bytes];
    let mut dst = vec![0u8; data_bytes];
    let mut g = c.benchmark_group(format!("top-10 over {n}x{D} int8"));
    g.throughput(Throughput::Bytes(data_bytes as u64));
    g.sample_size(10);
    g.bench_function("score+select", |b| b.iter(|| { gallery.scores_into(black_box(&query), &mut scores); black_box(top_k(&scores, 10, None)) }));
    g.bench_function("memcpy", |b| b.iter(|| { dst.copy_from_slice(black_box(&src)); black_box(&dst); }));
    g.finish();
    let topk = median(|| { gallery.scores_into(&query, &mut scores); black_box(top_k(&scores, 10, None)); }, 11);
    let copy = median(|| { dst.copy_from_slice(black_box(&src)); black_box(&dst); }, 11);
    // The alternative kernel: query quantised to i16 and exact integer dot products.
    let (scales, values) = bytes[64..bytes.len() - 4].split_at(4 * n);
    let values: Vec<i8> = values.iter().map(|&b| b as i8).collect();
    let alt = median(|| {
        let max = query.iter().fold(0f32, |m, x| m.max(x.abs()));
        let qs = 16383.0 / max as f64;
        let q: Vec<i16> = query.iter().map(|&x| (x as f64 * qs).round() as i16).collect();
        let s: Vec<f32> = values
            .chunks_exact(D)
            .zip(scales.chunks_exact(4))
            .map(|(row, sc)| (dot_i8_i16(row, &q) as f64 * f32::from_le_bytes(sc.try_into().unwrap()) as f64 / qs) as f32)
            .collect();
        black_box(top_k(&s, 10, None));
    }, 11);

    println!("\n| case | encode (median) | rank top-10 (median) |\n|---|---|---|");
    for (name, e, r) in &table {
        println!("| {name} | {:.3} ms | {:.3} ms |", e.as_secs_f64() * 1e3, r.as_secs_f64() * 1e3);
    }
    let gbs = |d: Duration| data_bytes as f64 / d.as_secs_f64() / 1e9;
    println!("\n| {n} x {D} int8 ({:.0} MB) | time | GB/s |\n|---|---|---|", data_bytes as f64 / 1e6);
    println!("| score + top-10 | {:.1} ms | {:.2} |", topk.as_secs_f64() * 1e3, gbs(topk));
    println!("| (alternative: i16-query integer kernel + top-10) | {:.1} ms | {:.2} |", alt.as_secs_f64() * 1e3, gbs(alt));
    println!("| memcpy | {:.1} ms | {:.2} |", copy.as_secs_f64() * 1e3, gbs(copy));
    println!("| top-k / memcpy bandwidth | {:.0} % | target ≥ 50 % |", 100.0 * copy.as_secs_f64() / topk.as_secs_f64());
}
