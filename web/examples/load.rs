//! A small HTTP/1.1 load generator for `scripts/bench/web-load.sh`: `C` keep-alive connections send `GET URL`
//! back to back for `SECS` seconds; prints one JSON line with requests/s, latency percentiles, status counts and
//! — given the server's `--pid` — its peak thread count and resident memory (from /proc).
//!
//! `cargo run --release -p web --example load -- --url http://127.0.0.1:8080/api/search?q=dog -c 16 --secs 10`
//!
//! Only 127.0.0.1 / localhost URLs are accepted: this is a benchmark of our own server, not a load tool.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
struct Args {
    /// `http://127.0.0.1:PORT/path?query`.
    #[arg(long)]
    url: String,
    /// Connections, each with one request in flight.
    #[arg(short = 'c', long, default_value_t = 1)]
    concurrency: usize,
    /// How long to send requests.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Extra request headers, `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// The server's process id: sample its threads and memory while the load runs.
    #[arg(long)]
    pid: Option<u32>,
}

#[derive(Default)]
struct Outcome {
    latencies_us: Vec<u64>,
    ok: usize,
    busy: usize,
    other: usize,
    errors: usize,
    bytes: u64,
}

/// Sends requests on one connection until `stop`; reconnects after a closed connection.
async fn worker(host: String, request: Vec<u8>, stop: Arc<AtomicBool>) -> Outcome {
    let mut out = Outcome::default();
    let mut conn: Option<BufReader<TcpStream>> = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            match TcpStream::connect(&host).await {
                Ok(s) => {
                    s.set_nodelay(true).ok();
                    conn = Some(BufReader::new(s));
                }
                Err(_) => {
                    out.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let stream = conn.as_mut().expect("connected");
        let start = Instant::now();
        match exchange(stream, &request).await {
            Ok((status, len, keep_alive)) => {
                out.latencies_us.push(start.elapsed().as_micros() as u64);
                out.bytes += len;
                match status {
                    200..=299 => out.ok += 1,
                    503 => out.busy += 1,
                    _ => out.other += 1,
                }
                if !keep_alive {
                    conn = None;
                }
            }
            Err(_) => {
                out.errors += 1;
                conn = None;
            }
        }
    }
    out
}

/// One request and its response: status, body length, whether the connection stays open.
async fn exchange(stream: &mut BufReader<TcpStream>, request: &[u8]) -> std::io::Result<(u16, u64, bool)> {
    stream.get_mut().write_all(request).await?;
    let mut line = String::new();
    if stream.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line.get(9..12).and_then(|s| s.parse().ok()).ok_or(std::io::ErrorKind::InvalidData)?;
    let (mut len, mut keep_alive, mut chunked) = (0u64, true, false);
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().map_err(|_| std::io::ErrorKind::InvalidData)?;
        } else if l == "connection: close" {
            keep_alive = false;
        } else if l.starts_with("transfer-encoding:") && l.contains("chunked") {
            chunked = true; // on-the-fly compression streams its output
        }
    }
    if !chunked {
        tokio::io::copy(&mut (&mut *stream).take(len), &mut tokio::io::sink()).await?;
        return Ok((status, len, keep_alive));
    }
    let mut total = 0;
    loop {
        line.clear();
        stream.read_line(&mut line).await?;
        let size_hex = line.trim_end().split(';').next().unwrap_or("");
        let size = u64::from_str_radix(size_hex, 16).map_err(|_| std::io::ErrorKind::InvalidData)?;
        // Each chunk ends with CRLF; the last (empty) one is followed by optional trailers and an empty line.
        tokio::io::copy(&mut (&mut *stream).take(size), &mut tokio::io::sink()).await?;
        total += size;
        if size == 0 {
            loop {
                line.clear();
                if stream.read_line(&mut line).await? == 0 || line.trim_end().is_empty() {
                    return Ok((status, total, keep_alive));
                }
            }
        }
        line.clear();
        stream.read_line(&mut line).await?;
    }
}

/// (threads, VmRSS KiB) of `pid`.
fn sample(pid: u32) -> Option<(usize, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        let value = status.lines().find_map(|l| l.strip_prefix(name))?;
        value.split_whitespace().next()?.parse().ok()
    };
    Some((field("Threads:")? as usize, field("VmRSS:")?))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rest = args.url.strip_prefix("http://").ok_or_else(|| anyhow::anyhow!("--url must start with http://"))?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    anyhow::ensure!(
        host.starts_with("127.0.0.1:") || host.starts_with("localhost:"),
        "only 127.0.0.1 or localhost with an explicit port, got {host}"
    );
    anyhow::ensure!(args.concurrency >= 1 && args.secs > 0.0, "-c must be at least 1 and --secs positive");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    for h in &args.headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");

    let stop = Arc::new(AtomicBool::new(false));
    let peak_threads = Arc::new(AtomicUsize::new(0));
    let peak_rss = Arc::new(AtomicUsize::new(0));
    let sampler = args.pid.map(|pid| {
        let (stop, peak_threads, peak_rss) = (stop.clone(), peak_threads.clone(), peak_rss.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some((threads, rss)) = sample(pid) {
                    peak_threads.fetch_max(threads, Ordering::Relaxed);
                    peak_rss.fetch_max(rss as usize, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    });
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| tokio::spawn(worker(host.to_string(), request.clone().into_bytes(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(args.secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Outcome::default();
    for w in workers {
        let o = w.await?;
        total.latencies_us.extend(o.latencies_us);
        total.ok += o.ok;
        total.busy += o.busy;
        total.other += o.other;
        total.errors += o.errors;
        total.bytes += o.bytes;
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(s) = sampler {
        s.await?;
    }
    total.latencies_us.sort_unstable();
    let n = total.latencies_us.len();
    println!(
        "{}",
        serde_json::json!({
            "concurrency": args.concurrency,
            "seconds": elapsed,
            "requests": n,
            "rps": n as f64 / elapsed,
            "ok_rps": total.ok as f64 / elapsed,
            "p50_ms": percentile(&total.latencies_us, 0.50),
            "p99_ms": percentile(&total.latencies_us, 0.99),
            "ok": total.ok,
            "busy_503": total.busy,
            "other_status": total.other,
            "errors": total.errors,
            "mb_per_s": total.bytes as f64 / elapsed / 1e6,
            "peak_threads": args.pid.map(|_| peak_threads.load(Ordering::Relaxed)),
            "peak_rss_mb": args.pid.map(|_| peak_rss.load(Ordering::Relaxed) as f64 / 1024.0),
        })
    );
    Ok(())
}
