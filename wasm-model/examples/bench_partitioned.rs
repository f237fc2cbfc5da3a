//! Benchmarks of the partitioned gallery (docs/benchmarks.md "Partitioned gallery"); prints markdown tables.
//!
//! ```sh
//! B="cargo run --release -p wasm-model --example bench_partitioned --"
//! $B synth --seeds static/gallery,FLICKR_VAL_GALLERY --count 100000 --out target/h8/g100k   # flat int8 gallery
//! $B build --flat target/h8/g100k --out target/h8/p100k [--lists L] [--probe P]          # = trainer index
//! $B recall --model static/model --flat target/h8/g100k --part target/h8/p100k \
//!        --captions ../shared/data/flickr8k/captions_val.json --probes 8,16,32,64         # recall@10 vs exact
//! $B eval --model static/model --flat FLICKR_VAL_GALLERY --part P --captions …/captions_val.json  # R@1/5/10
//! $B scan                                                                                  # kernel vs memcpy
//! ```
//! Synthetic galleries: the seed galleries' real vectors first, then each new row is a seed moved part way
//! towards one of its 16 nearest seeds plus Gaussian noise (norm ≈ 0.55, cosine ≈ 0.85 to the mixed point),
//! with the seeds' hubness mixed alike and the seed's thumbnail and caption: the distribution of real image
//! vectors, at any size. Deterministic (SplitMix64, seed 1).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use wasm_model::engine::Engine;
use wasm_model::gallery::{write_gallery_bin, Gallery, GalleryDtype, GalleryIndex, GalleryItem};
use wasm_model::partitioned::fs::write_partitioned;
use wasm_model::partitioned::{shard_file, BuildParams, Shard};
use wasm_model::rank::{dot_f32, top_k};
use wasm_model::testutil::Rng;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}
fn need(args: &[String], name: &str) -> Res<String> {
    arg(args, name).ok_or_else(|| format!("missing {name}").into())
}

fn load_flat(dir: &Path) -> Res<(Gallery, GalleryIndex)> {
    let g = Gallery::from_bytes(&fs::read(dir.join("gallery.bin"))?)?;
    let idx = GalleryIndex::from_json(&fs::read_to_string(dir.join("gallery.json"))?)?;
    Ok((g, idx))
}

fn gaussian(rng: &mut Rng) -> f32 {
    let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

fn synth(args: &[String]) -> Res<()> {
    let count: usize = need(args, "--count")?.parse()?;
    let out = PathBuf::from(need(args, "--out")?);
    let (mut rows, mut items, mut model_id, mut dim) = (Vec::new(), Vec::<GalleryItem>::new(), String::new(), 0);
    fs::create_dir_all(out.join("thumbs"))?;
    for seed_dir in need(args, "--seeds")?.split(',') {
        let (g, idx) = load_flat(Path::new(seed_dir))?;
        (model_id, dim) = (g.model_id().to_owned(), g.dim());
        for (i, item) in idx.items.iter().enumerate() {
            rows.extend(g.row(i).unwrap());
            let thumb = out.join(&item.thumb);
            if !thumb.exists() {
                fs::create_dir_all(thumb.parent().unwrap())?;
                fs::copy(Path::new(seed_dir).join(&item.thumb), &thumb)?;
            }
            items.push(item.clone());
        }
    }
    let seeds = items.len();
    let hub: Vec<f32> = items.iter().map(|it| it.hubness.unwrap_or(0.25)).collect();
    let near: Vec<Vec<usize>> = (0..seeds)
        .map(|a| {
            let s: Vec<f32> = (0..seeds).map(|b| if a == b { f32::NAN } else { dot_f32(&rows[a * dim..(a + 1) * dim], &rows[b * dim..(b + 1) * dim]) }).collect();
            top_k(&s, 16, None).into_iter().map(|x| x.id as usize).collect()
        })
        .collect();
    let mut rng = Rng::new(1);
    let mut v = vec![0f32; dim];
    for i in seeds..count {
        let a = (rng.next_u64() % seeds as u64) as usize;
        let b = near[a][(rng.next_u64() % 16) as usize];
        let t = 0.25 * (rng.uniform() + 1.0); // 0..0.5
        for d in 0..dim {
            v[d] = (1.0 - t) * rows[a * dim + d] + t * rows[b * dim + d] + 0.025 * gaussian(&mut rng);
        }
        let norm = dot_f32(&v, &v).sqrt();
        rows.extend(v.iter().map(|x| x / norm));
        let mut item = items[a].clone();
        item.file = format!("synthetic/{i}.jpg");
        item.caption = format!("{} (variant {i})", items[a].caption);
        item.hubness = Some((1.0 - t) * hub[a] + t * hub[b] + 0.01 * gaussian(&mut rng));
        items.push(item);
    }
    rows.truncate(count * dim);
    items.truncate(count);
    fs::write(out.join("gallery.bin"), write_gallery_bin(&model_id, dim, &rows, GalleryDtype::Int8)?)?;
    fs::write(out.join("gallery.json"), GalleryIndex::new(&model_id, items).to_json())?;
    println!("wrote {count} rows ({seeds} real seeds) to {}", out.display());
    Ok(())
}

fn build(args: &[String]) -> Res<()> {
    let (g, idx) = load_flat(Path::new(&need(args, "--flat")?))?;
    let params = BuildParams {
        lists: arg(args, "--lists").map(|s| s.parse()).transpose()?,
        probe: arg(args, "--probe").map(|s| s.parse()).transpose()?,
        train_per_list: arg(args, "--train-per-list").map(|s| s.parse()).transpose()?.unwrap_or(BuildParams::default().train_per_list),
        iterations: arg(args, "--iterations").map(|s| s.parse()).transpose()?.unwrap_or(BuildParams::default().iterations),
        ..BuildParams::default()
    };
    let t = Instant::now();
    let s = write_partitioned(&g, &idx.items, &params, Path::new(&need(args, "--out")?))?;
    println!(
        "| {} | {} | {} | {:.1} s | {:.2} MB | {:.1} MB | {:.1} MB | {} |",
        s.count, s.lists, s.probe, t.elapsed().as_secs_f64(), s.header_bytes as f64 / 1e6, s.shard_bytes as f64 / 1e6, s.meta_bytes as f64 / 1e6, s.largest_list
    );
    Ok(())
}

fn queries(args: &[String]) -> Res<Vec<(String, String)>> {
    let c: serde_json::Value = serde_json::from_str(&fs::read_to_string(need(args, "--captions")?)?)?;
    let files: HashMap<i64, String> = c["images"].as_array().unwrap().iter().map(|i| (i["id"].as_i64().unwrap(), i["file_name"].as_str().unwrap().to_owned())).collect();
    let every: usize = arg(args, "--every").map(|s| s.parse()).transpose()?.unwrap_or(1);
    Ok(c["annotations"].as_array().unwrap().iter().step_by(every).map(|a| (a["caption"].as_str().unwrap().to_owned(), files[&a["image_id"].as_i64().unwrap()].clone())).collect())
}

fn recall(args: &[String]) -> Res<()> {
    let model = need(args, "--model")?;
    let flat = Engine::open(&model, need(args, "--flat")?)?;
    let part_dir = PathBuf::from(need(args, "--part")?);
    let part = Engine::open(&model, &part_dir)?;
    let p = part.partitioned().unwrap();
    let h = p.header();
    let scoring_weight = part.model().manifest.retrieval.as_ref().map_or(0.0, |r| r.hubness_weight);
    // --plan-weight 0: rank lists by the centroid alone (scoring still uses the shipped weight): the ablation.
    let plan_weight: f32 = arg(args, "--plan-weight").map(|s| s.parse()).transpose()?.unwrap_or(scoring_weight);
    let qs = queries(args)?;
    let probes: Vec<usize> = need(args, "--probes")?.split(',').map(|s| s.parse()).collect::<Result<_, _>>()?;
    println!("{} images, {} lists, {} queries (Flickr8k val captions); exact = the flat gallery's ranking\n", h.count, h.lists(), qs.len());
    println!("| probe | recall@10 mean | queries with all 10 | min | rows scanned | shard bytes / query |");
    println!("|---|---|---|---|---|---|");
    let exact: Vec<Vec<u32>> = qs.iter().map(|(q, _)| flat.search(q, 10).unwrap().iter().map(|h| h.id).collect()).collect();
    for &probe in &probes {
        let (mut sum, mut all, mut min, mut rows, mut bytes) = (0.0, 0, 1.0f64, 0usize, 0usize);
        for ((q, _), want) in qs.iter().zip(&exact) {
            let mut s = p.plan(part.query_vector(q)?, plan_weight, 10, None, Some(probe), true);
            s.set_penalty_weight(scoring_weight);
            let progress = p.complete(&mut s)?;
            let got = s.results();
            let r = got.iter().filter(|g| want.contains(&g.id)).count() as f64 / want.len().max(1) as f64;
            sum += r;
            all += (r == 1.0) as usize;
            min = min.min(r);
            rows += progress.searched;
            bytes += s.lists().iter().map(|&l| Shard::byte_len(h.list_sizes[l as usize] as usize, h.dim)).sum::<usize>();
        }
        let n = qs.len() as f64;
        println!("| {probe} | {:.4} | {:.1} % | {min:.1} | {:.0} | {:.2} MB |", sum / n, 100.0 * all as f64 / n, rows as f64 / n, bytes as f64 / n / 1e6);
    }
    let _ = shard_file(0);
    Ok(())
}

/// t2i R@1/5/10 (each caption's own image among the top K), exact vs partitioned at the header's probe.
fn eval(args: &[String]) -> Res<()> {
    let model = need(args, "--model")?;
    let flat = Engine::open(&model, need(args, "--flat")?)?;
    let part = Engine::open(&model, need(args, "--part")?)?;
    let by_file: HashMap<String, u32> = flat.index().items.iter().map(|it| (it.file.clone(), it.id as u32)).collect();
    let qs = queries(args)?;
    let mut hits = [[0usize; 3]; 2];
    for (q, file) in &qs {
        let target = by_file[file];
        for (e, engine) in [&flat, &part].into_iter().enumerate() {
            let top = engine.search(q, 10)?;
            for (j, k) in [1, 5, 10].into_iter().enumerate() {
                hits[e][j] += top.iter().take(k).any(|h| h.id == target) as usize;
            }
        }
    }
    let probe = part.partitioned().unwrap().header().probe;
    let lists = part.partitioned().unwrap().header().lists();
    println!("| ranking | t2i R@1 | R@5 | R@10 |\n|---|---|---|---|");
    for (name, h) in [("exact (flat)".to_owned(), hits[0]), (format!("partitioned ({lists} lists, probe {probe})"), hits[1])] {
        let pct = |x: usize| 100.0 * x as f64 / qs.len() as f64;
        println!("| {name} | {:.1} | {:.1} | {:.1} |", pct(h[0]), pct(h[1]), pct(h[2]));
    }
    Ok(())
}

/// The scan kernel (score + running top-10) over int8 rows of dimension 512, against memcpy of the same bytes:
/// one query's lists (24 × 500 rows, ~6 MB: in cache) and a whole 1 M-row gallery (512 MB: from memory).
fn scan(_args: &[String]) -> Res<()> {
    let dim = 512;
    println!("| rows scanned | bytes | memcpy | scan (score + top-10) | scan / memcpy bandwidth |\n|---|---|---|---|---|");
    for (lists, per) in [(24usize, 500usize), (2000, 500)] {
        let mut rng = Rng::new(5);
        let shards: Vec<Shard> = (0..lists)
            .map(|l| Shard {
                list: l as u32,
                dim,
                ids: (0..per as u32).map(|i| l as u32 * per as u32 + i).collect(),
                scales: vec![0.01; per],
                hubness: vec![0.2; per],
                codes: (0..per * dim).map(|_| (rng.next_u64() % 255) as i8).collect(),
            })
            .collect();
        let q: Vec<f32> = (0..dim).map(|_| rng.uniform()).collect();
        let mut dst = vec![0i8; per * dim];
        let reps = if lists > 100 { 5 } else { 200 };
        let best = |f: &mut dyn FnMut()| (0..reps).map(|_| { let t = Instant::now(); f(); t.elapsed().as_secs_f64() }).fold(f64::INFINITY, f64::min);
        let copy = best(&mut || for s in &shards { dst.copy_from_slice(&s.codes); std::hint::black_box(&dst); });
        let mut scores = Vec::new();
        let scan = best(&mut || {
            let mut top = wasm_model::rank::TopK::new(10);
            for s in &shards {
                s.scores_into(&q, 0.5, &mut scores);
                for (&id, &sc) in s.ids.iter().zip(&scores) { top.offer(id, sc); }
            }
            std::hint::black_box(top.sorted());
        });
        let bytes = (lists * per * dim) as f64;
        println!("| {} | {:.0} MB | {:.2} ms ({:.1} GB/s) | {:.2} ms ({:.1} GB/s) | {:.0} % |", lists * per, bytes / 1e6, copy * 1e3, bytes / copy / 1e9, scan * 1e3, bytes / scan / 1e9, 100.0 * copy / scan);
    }
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("synth") => synth(&args),
        Some("build") => build(&args),
        Some("recall") => recall(&args),
        Some("eval") => eval(&args),
        Some("scan") => scan(&args),
        _ => Err("usage: bench_partitioned synth|build|recall|eval|scan … (see the file's first comment)".into()),
    }
}
