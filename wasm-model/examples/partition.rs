//! Partitions a published flat gallery (`gallery.bin` + `gallery.json`) into a partitioned one, the files the
//! page fetches on demand (README "Partitioned gallery"); thumbnails stay where the items name them (copy or
//! keep `thumbs/` beside the output). Used by scripts/test-e2e.sh and the benchmarks.
//!
//! ```sh
//! cargo run --release -p wasm-model --example partition -- FLAT_DIR OUT_DIR [--lists L] [--probe P]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use wasm_model::gallery::{Gallery, GalleryIndex};
use wasm_model::partitioned::fs::write_partitioned;
use wasm_model::partitioned::BuildParams;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| -> Result<Option<usize>, String> {
        let Some(i) = args.iter().position(|a| a == name) else { return Ok(None) };
        args.get(i + 1).and_then(|v| v.parse().ok()).map(Some).ok_or(format!("{name} needs a number"))
    };
    let [flat, out] = [0, 1].map(|i| args.get(i).filter(|a| !a.starts_with("--")).map(PathBuf::from));
    let (Some(flat), Some(out)) = (flat, out) else {
        return Err("usage: partition FLAT_DIR OUT_DIR [--lists L] [--probe P]".into());
    };
    let read = |f: &str| std::fs::read(flat.join(f)).map_err(|e| format!("{}: {e}", flat.join(f).display()));
    let gallery = Gallery::from_bytes(&read("gallery.bin")?)?;
    let index = GalleryIndex::from_json(&String::from_utf8(read("gallery.json")?)?)?;
    index.check_gallery(&gallery)?;
    let params = BuildParams { lists: flag("--lists")?, probe: flag("--probe")?, ..BuildParams::default() };
    let t = Instant::now();
    let s = write_partitioned(&gallery, &index.items, &params, &out)?;
    println!(
        "partitioned {} images into {} lists (probe {}, largest {}) in {:.1} s: header {} B, shards {} B, metadata {} B → {}",
        s.count, s.lists, s.probe, s.largest_list, t.elapsed().as_secs_f64(), s.header_bytes, s.shard_bytes, s.meta_bytes, out.display()
    );
    Ok(())
}
