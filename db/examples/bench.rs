//! The database tier at scale (scripts/bench/pg.sh starts the instance and runs this): N synthetic images made
//! from a real published gallery — each a real image vector plus noise shaped like the real vectors, renormalised,
//! with its base image's hubness (deterministic seed; see `synthesize`) — loaded into PostgreSQL + pgvector; then
//! load and index-build time, table and index size, recall@10 of the HNSW search against the exact shipped
//! scoring (computed in Rust, as `Engine::search` does) over an `ef_search` sweep, and query latency p50/p99
//! through `DbSearcher` (text encoding included, one query at a time). Prints a markdown table.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use clap::Parser;
use db::{DbConfig, DbSearcher, LoadOptions, LoadProgress, PublishedGallery, ScanMode, VectorType};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;
use tokio_postgres::NoTls;
use wasm_model::rank::top_k;
use wasm_model::{write_gallery_bin, GalleryDtype, GalleryIndex, GalleryItem, ModelDir, TextEncoder};

#[derive(Parser)]
struct Args {
    /// The instance (what `scripts/pg.sh start` prints).
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "static/model")]
    model: PathBuf,
    /// A gallery published with that model: its rows seed the synthetic images, its captions are the queries.
    #[arg(long)]
    base: PathBuf,
    #[arg(long, default_value_t = 1_000_000)]
    n: usize,
    #[arg(long, default_value_t = 200)]
    queries: usize,
    #[arg(long, value_delimiter = ',', default_value = "40,100,200,400,800")]
    ef: Vec<usize>,
    /// Storage types to load and measure, one after the other.
    #[arg(long, value_delimiter = ',', default_value = "halfvec")]
    types: Vec<VectorType>,
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Scale of the noise added to each real row. 1.0: two synthetic images of the same base are as alike
    /// (cosine ≈ 0.53) as a real image and its nearest real neighbour (≈ 0.51 in Flickr8k val), so the 1,000
    /// bases do not become 1,000 tight clusters; each keeps cosine ≈ 0.73 to its base. (0.7: 0.69 and 0.83.)
    #[arg(long, default_value_t = 1.0)]
    noise: f32,
    /// HNSW graph degree and build breadth (the loader's defaults; pgvector's are 16 and 64).
    #[arg(long, default_value_t = LoadOptions::default().hnsw_m)]
    m: i32,
    #[arg(long, default_value_t = LoadOptions::default().hnsw_ef_construction)]
    ef_construction: i32,
    #[arg(long, default_value = "2GB")]
    maintenance_work_mem: String,
    #[arg(long, default_value_t = 1)]
    parallel_workers: i32,
    /// Queries also answered by an exact scan in the database (its latency, and the recall of the storage type alone).
    #[arg(long, default_value_t = 10)]
    exact_queries: usize,
}

struct Row {
    label: String,
    recall: f64,
    p50: Duration,
    p99: Duration,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let model = ModelDir::load(&args.model).with_context(|| format!("loading {}", args.model.display()))?;
    let base = PublishedGallery::open(&args.model, &args.base)?;
    ensure!(base.len() >= 10, "the base gallery has {} images; publish a larger one", base.len());

    let started = Instant::now();
    let published = synthesize(&model, &base, args.n, args.seed, args.noise)?;
    eprintln!("bench: {} synthetic images from {} real ones in {:.1?}", published.len(), base.len(), started.elapsed());

    // Queries: captions of the base images (real prompts), spread over the gallery.
    let encoder = TextEncoder::new(&model)?;
    let step = (base.len() / args.queries.max(1)).max(1);
    let prompts: Vec<String> = base.items().iter().step_by(step).take(args.queries).map(|it| it.caption.clone()).collect();
    let started = Instant::now();
    let vectors = prompts.iter().map(|p| wasm_model::query::query_vector(&encoder, p)).collect::<Result<Vec<_>, _>>()?;
    let encode_each = started.elapsed() / prompts.len() as u32;
    let started = Instant::now();
    let truth: Vec<Vec<u32>> = vectors.iter().map(|q| top_k(&published.text_scores(q), 10, None).iter().map(|s| s.id).collect()).collect();
    let scan_each = started.elapsed() / prompts.len() as u32;
    eprintln!("bench: {} queries; text encoding {encode_each:.1?} each; exact scan in Rust (f32) {scan_each:.1?} each", prompts.len());

    let mut config = DbConfig::from_url(&args.url)?;
    config.statement_timeout = Duration::from_secs(120);
    let mut lines = Vec::new();
    for &vector_type in &args.types {
        let opts = LoadOptions {
            vector_type,
            maintenance_work_mem: Some(args.maintenance_work_mem.clone()),
            parallel_workers: Some(args.parallel_workers),
            hnsw_m: args.m,
            hnsw_ef_construction: args.ef_construction,
            ..LoadOptions::default()
        };
        let mut last = Instant::now();
        let report = db::load(&config, &published, &opts, |p| {
            if last.elapsed() > Duration::from_secs(15) || !matches!(p, LoadProgress::Copying { .. }) {
                eprintln!("bench: {vector_type:?}: {p:?}");
                last = Instant::now();
            }
        })
        .await?;
        let (table, index) = sizes(&args.url).await?;
        let mut rows = Vec::new();
        for (i, &ef) in args.ef.iter().enumerate() {
            let mut c = config.clone();
            (c.ef_search, c.scan) = (ef, ScanMode::Planner);
            let searcher = DbSearcher::new(&model, c)?;
            if i == 0 {
                let plan = searcher.explain(&prompts[0], 10, 0).await?;
                ensure!(plan.contains("imgpick_images_hnsw"), "the planner did not use the HNSW index:\n{plan}");
                run(&searcher, &prompts, &truth).await?; // warm-up: index pages into memory
            }
            let mut row = run(&searcher, &prompts, &truth).await?;
            row.label = format!("ef_search {ef}");
            rows.push(row);
        }
        let mut c = config.clone();
        c.scan = ScanMode::Exact;
        let exact = DbSearcher::new(&model, c)?;
        let n_exact = args.exact_queries.min(prompts.len());
        let mut row = run(&exact, &prompts[..n_exact], &truth[..n_exact]).await?;
        row.label = format!("exact scan ({n_exact} queries)");
        rows.push(row);
        for r in rows {
            lines.push(format!(
                "| {} | {} | {:.0} s | {:.0} s | {} | {} | {} | {:.3} | {:.1} | {:.1} |",
                published.len(),
                vector_type.sql(),
                report.copy_time.as_secs_f64(),
                report.index_time.as_secs_f64(),
                mib(table),
                mib(index),
                r.label,
                r.recall,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
            ));
        }
    }
    println!("\nrecall@10 against the exact shipped scoring (f32, in Rust); latency: DbSearcher::search, k = 10, one at a time,");
    println!("text encoding ({encode_each:.1?}) included; exact scan of the same vectors in Rust: {scan_each:.0?} per query\n");
    println!("HNSW m = {}, ef_construction = {}\n", args.m, args.ef_construction);
    println!("| images | storage | load (copy) | HNSW build | table | index | search | recall@10 | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    lines.iter().for_each(|l| println!("{l}"));
    Ok(())
}

/// N images, each a real row plus noise shaped like the real rows (drawn from their covariance: a Gaussian
/// combination of `MIX` centred real rows), so the synthetic gallery keeps the real one's few dominant directions
/// instead of filling all 512 (isotropic noise makes a far harder, unrealistic index: see docs/scale.md), plus a
/// little isotropic noise so no two rows coincide; renormalised by the gallery writer. Hubness: the base row's, jittered.
fn synthesize(model: &ModelDir, base: &PublishedGallery, n: usize, seed: u64, noise: f32) -> Result<PublishedGallery> {
    const MIX: usize = 8;
    let dim = base.embed_dim();
    let bases: Vec<Vec<f32>> = (0..base.len()).map(|i| base.gallery().row(i).expect("row")).collect();
    let mean: Vec<f32> = (0..dim).map(|d| bases.iter().map(|r| r[d]).sum::<f32>() / bases.len() as f32).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let (shaped, iso) = (noise / (MIX as f32).sqrt(), 0.02 / (dim as f32).sqrt());
    let mut rows = Vec::with_capacity(n * dim);
    let mut items = Vec::with_capacity(n);
    let mut x = vec![0f32; dim];
    for i in 0..n {
        let a = rng.random_range(0..bases.len());
        x.copy_from_slice(&bases[a]);
        for _ in 0..MIX {
            let (b, g) = (rng.random_range(0..bases.len()), rng.sample::<f32, _>(StandardNormal) * shaped);
            x.iter_mut().zip(&bases[b]).zip(&mean).for_each(|((x, v), m)| *x += g * (v - m));
        }
        x.iter_mut().for_each(|x| *x += iso * rng.sample::<f32, _>(StandardNormal));
        rows.extend_from_slice(&x);
        let from = &base.items()[a];
        let jitter: f32 = rng.sample::<f32, _>(StandardNormal) * 0.005;
        items.push(GalleryItem {
            id: i,
            file: format!("synthetic/{i:07}.jpg"),
            thumb: from.thumb.clone(),
            caption: from.caption.clone(),
            source: "synthetic".into(),
            licence: from.licence.clone(),
            url: None,
            hubness: from.hubness.map(|h| h + jitter),
            ..Default::default()
        });
    }
    let bin = write_gallery_bin(model.model_id(), dim, &rows, GalleryDtype::F16)?;
    drop(rows);
    let json = GalleryIndex::new(model.model_id(), items).to_json();
    Ok(PublishedGallery::from_bytes(model, &bin, &json)?)
}

/// Runs every prompt once; recall@10 against `truth` and latency percentiles.
async fn run(searcher: &DbSearcher, prompts: &[String], truth: &[Vec<u32>]) -> Result<Row> {
    let mut latencies = Vec::with_capacity(prompts.len());
    let mut found = 0usize;
    for (prompt, want) in prompts.iter().zip(truth) {
        let started = Instant::now();
        let hits = searcher.search(prompt, 10, 0).await?;
        latencies.push(started.elapsed());
        found += hits.iter().filter(|h| want.contains(&h.hit.id)).count();
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    Ok(Row { label: String::new(), recall: found as f64 / (10 * prompts.len()) as f64, p50: pct(0.5), p99: pct(0.99) })
}

async fn sizes(url: &str) -> Result<(i64, i64)> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(conn);
    let row = client
        .query_one("SELECT pg_total_relation_size('imgpick_images') - pg_indexes_size('imgpick_images'), pg_relation_size('imgpick_images_hnsw')", &[])
        .await?;
    Ok((row.get(0), row.get(1)))
}

fn mib(bytes: i64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}
