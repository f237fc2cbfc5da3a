//! `trainer search`: rank a published gallery (flat or partitioned) from the command line with the code the
//! browser runs — a prompt, refined like the page's share links (issue #20: 👍/👎 marks, layout and licence
//! filters, near-duplicate collapse, "more varied"), or a pasted passage (`--passage FILE`, `-` for stdin:
//! suggestions per idea with its sentences, and for the passage as a whole).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use wasm_model::engine::{Engine, Hit, PassageAnswer, RefinedHit, Scope};
use wasm_model::workflow::passage::MAX_PASSAGE_BYTES;
use wasm_model::workflow::{LicenceNeed, Orientation, Refinement};

use crate::bounds;

/// A passage's suggestions per idea unless --k-idea says otherwise (as `/api/search`'s `k_idea`).
pub const DEFAULT_K_IDEA: usize = 4;

#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// Model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Gallery folder (flat or partitioned, as `publish` wrote it).
    #[arg(long)]
    pub gallery: PathBuf,
    /// Number of results (a passage's: for the whole passage).
    #[arg(short, default_value_t = 10, value_parser = bounds::SEARCH_K.parser(), allow_negative_numbers = true)]
    pub k: usize,
    /// Print JSON, best first: a prompt's `[{"id", "file", "score", "caption", "strong", "similar"}]` (`strong`:
    /// whether the result reaches the model's calibrated strong-match score, absent when the model is not
    /// calibrated or marks moved the query; `similar`: ids collapsed into it, absent when none); a passage's
    /// answer as wasm-model's `PassageAnswer` (`ideas` with `text`, `first`, `last`, `results`; `whole`).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub refine: RefineArgs,
    /// Search a passage instead of a prompt: a text file (paragraphs split by blank lines), or `-` for stdin.
    /// At most 100,000 bytes.
    #[arg(long, value_name = "FILE", conflicts_with = "prompt")]
    pub passage: Option<PathBuf>,
    /// A passage's suggestions per idea [default: 4].
    #[arg(long, value_parser = bounds::SEARCH_K.parser(), allow_negative_numbers = true)]
    pub k_idea: Option<usize>,
    /// The prompt (rclip-style arithmetic allowed: `beach -people +dog`).
    #[arg(required_unless_present = "passage")]
    pub prompt: Option<String>,
}

/// The refinement a share link carries (`up`, `down`, `orient`, `min`, `lic`, `collapse`, `vary`), as flags.
#[derive(clap::Args, Debug, Default)]
pub struct RefineArgs {
    /// Liked pictures (ids, comma-separated or repeated): the query moves towards them.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub up: Vec<u32>,
    /// Disliked pictures: the query moves away from them, and they are left out.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub down: Vec<u32>,
    /// Only pictures of this orientation: landscape, portrait or square.
    #[arg(long, value_parser = |s: &str| s.parse::<Orientation>())]
    pub orient: Option<Orientation>,
    /// Only pictures whose shorter side has at least this many pixels.
    #[arg(long, value_name = "PIXELS")]
    pub min_side: Option<u32>,
    /// Only pictures whose licence allows: pd (public domain / CC0), commercial, nosa (commercial, no share-alike).
    #[arg(long, value_parser = |s: &str| s.parse::<LicenceNeed>())]
    pub licence: Option<LicenceNeed>,
    /// Collapse near-duplicates into the best-ranked of them (threshold calibrated on the gallery).
    #[arg(long)]
    pub collapse: bool,
    /// Re-rank the top 100 for variety (maximal marginal relevance).
    #[arg(long)]
    pub vary: bool,
}

impl RefineArgs {
    /// The refinement, read by the same parser as share links and `/api/search` (the same checks, messages).
    pub fn refinement(&self) -> Result<Refinement> {
        let ids = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let (up, down) = (ids(&self.up), ids(&self.down));
        let min = self.min_side.map(|m| m.to_string()).unwrap_or_default();
        let orient = self.orient.map(orientation_name).unwrap_or_default();
        let lic = self.licence.map(LicenceNeed::as_str).unwrap_or_default();
        let flag = |b: bool| if b { "1" } else { "0" };
        let pairs = [
            ("up", up.as_str()),
            ("down", down.as_str()),
            ("orient", orient),
            ("min", min.as_str()),
            ("lic", lic),
            ("collapse", flag(self.collapse)),
            ("vary", flag(self.vary)),
        ];
        Refinement::from_params(pairs, false).map_err(|e| anyhow::anyhow!("{}", flag_names(&e)))
    }
}

fn orientation_name(o: Orientation) -> &'static str {
    match o {
        Orientation::Landscape => "landscape",
        Orientation::Portrait => "portrait",
        Orientation::Square => "square",
    }
}

/// The refinement's messages name URL parameters; here they are flags.
fn flag_names(message: &str) -> String {
    message.replace("(up)", "(--up)").replace("(down)", "(--down)").replace("up marks", "--up marks").replace("down marks", "--down marks")
}

/// A passage's text from a file or stdin (`-`), refused past `MAX_PASSAGE_BYTES` without reading it all.
fn read_passage(path: &std::path::Path) -> Result<String> {
    let mut bytes = Vec::new();
    let limit = MAX_PASSAGE_BYTES as u64 + 1;
    let name = if path.as_os_str() == "-" { "stdin".to_string() } else { path.display().to_string() };
    if path.as_os_str() == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut bytes).context("cannot read the passage from stdin")?;
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("cannot read the passage {name}"))?;
        file.take(limit).read_to_end(&mut bytes).with_context(|| format!("cannot read the passage {name}"))?;
    }
    if bytes.len() > MAX_PASSAGE_BYTES {
        bail!("the passage {name} is over {MAX_PASSAGE_BYTES} bytes (about 15,000 words); search a part of it");
    }
    String::from_utf8(bytes).with_context(|| format!("the passage {name} is not UTF-8 text"))
}

/// Runs the search; the text to print.
pub fn run(args: &SearchArgs) -> Result<String> {
    if args.k_idea.is_some() && args.passage.is_none() {
        bail!("--k-idea sets a passage's suggestions per idea: give --passage FILE too (or leave --k-idea out)");
    }
    let r = args.refine.refinement()?;
    let engine = Engine::open(&args.model, &args.gallery)?;
    if let Some(path) = &args.passage {
        let text = read_passage(path)?;
        let answer = engine.passage(&text, args.k_idea.unwrap_or(DEFAULT_K_IDEA), args.k, Scope::All, &r)?;
        return Ok(if args.json { serde_json::to_string(&answer)? } else { describe_passage(&answer) });
    }
    let prompt = args.prompt.as_deref().context("give a prompt or --passage FILE")?;
    let hits: Vec<RefinedHit> = if r.is_plain() {
        engine.search(prompt, args.k)?.into_iter().map(|hit| RefinedHit { hit, similar: Vec::new() }).collect()
    } else {
        engine.search_refined(prompt, args.k, Scope::All, &r)?
    };
    Ok(if args.json { serde_json::to_string(&hits.iter().map(hit_json).collect::<Vec<_>>())? } else { lines(&hits, "") })
}

fn hit_json(h: &RefinedHit) -> serde_json::Value {
    let mut v = serde_json::json!({"id": h.hit.id, "file": h.hit.file, "score": h.hit.score, "caption": h.hit.caption});
    if let Some(strong) = h.hit.strong {
        v["strong"] = strong.into();
    }
    if !h.similar.is_empty() {
        v["similar"] = h.similar.clone().into();
    }
    v
}

/// One line per result: score, strength, id, file, caption, and the near-duplicates collapsed into it.
fn lines(hits: &[RefinedHit], indent: &str) -> String {
    let mut out = String::new();
    for RefinedHit { hit: Hit { id, file, caption, score, strong, .. }, similar } in hits {
        let strength = match strong {
            Some(true) => "strong  ",
            Some(false) => "weaker  ",
            None => "",
        };
        out.push_str(&format!("{indent}{score:.4}  {strength}#{id}  {file}  {caption}"));
        if !similar.is_empty() {
            let ids: Vec<String> = similar.iter().map(|s| format!("#{s}")).collect();
            out.push_str(&format!("  (+{} similar: {})", similar.len(), ids.join(" ")));
        }
        out.push('\n');
    }
    out
}

fn describe_passage(a: &PassageAnswer) -> String {
    let mut out = String::new();
    for (n, idea) in a.ideas.iter().enumerate() {
        let which = if idea.idea.first == idea.idea.last {
            format!("sentence {}", idea.idea.first + 1)
        } else {
            format!("sentences {}–{}", idea.idea.first + 1, idea.idea.last + 1)
        };
        out.push_str(&format!("idea {} ({which}): {}\n", n + 1, idea.idea.text));
        out.push_str(&lines(&idea.results, "  "));
    }
    out.push_str("the whole passage:\n");
    out.push_str(&lines(&a.whole, "  "));
    let mut notes = Vec::new();
    if a.total > a.sentences {
        notes.push(format!("searched the first {} of {} sentences", a.sentences, a.total));
    }
    if a.without_words > 0 {
        notes.push(format!("{} sentence(s) without words left out", a.without_words));
    }
    if !notes.is_empty() {
        out.push_str(&format!("({})\n", notes.join("; ")));
    }
    out
}
