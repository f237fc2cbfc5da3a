//! `web --port 8080 --static-dir static/`: serves imgpick's page and files; Ctrl-C stops it gracefully, SIGHUP
//! reloads the model and gallery for `/api/search`. With `--db URL`, `/api/search` answers from PostgreSQL
//! (db_search.rs) and the page searches through it.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{bail, Context};
use clap::Parser;
use std::sync::Arc;

use web::{db_search::DbBackend, reload::Reloader, Limits, SharedSearcher};

#[derive(Parser, Debug)]
#[command(version, about = "Serve imgpick's static/ folder (page, wasm, model, gallery) and /api/search")]
struct Args {
    /// TCP port (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on; use 0.0.0.0 to serve other machines.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// The folder to serve (the page, pkg/, model/, gallery/).
    #[arg(long, default_value = "static")]
    static_dir: PathBuf,
    /// Do not load the native engine; /api/search then answers 503.
    #[arg(long, conflicts_with = "db")]
    no_api: bool,
    /// Answer /api/search from this database (postgres://USER:PASSWORD@HOST:PORT/DATABASE, loaded with
    /// `trainer db-load`; also read from IMGPICK_DB_URL) instead of static/gallery's files; the page then
    /// searches through the server. Queries are encoded with --static-dir's model/; thumbnails are served from
    /// its gallery/. A database that is down answers 503 with the reason until it is back.
    #[arg(long, env = "IMGPICK_DB_URL", hide_env_values = true)]
    db: Option<String>,
    /// --db: database searches at once (and pooled connections); more wait up to 2 s, then 503.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1000))]
    db_connections: u16,
    /// --db: hnsw.ef_search, the breadth of the index search (recall against speed; docs/scale.md).
    #[arg(long, default_value_t = db::DEFAULT_EF_SEARCH as u16, value_parser = clap::value_parser!(u16).range(1..=1000))]
    db_ef_search: u16,
    /// Seconds between looks at model/ and gallery/ for a republish (reloaded once the files settle;
    /// SIGHUP reloads at once); 0 turns watching off.
    #[arg(long, default_value_t = 2.0)]
    watch_interval_secs: f64,
    /// Open connections at most; more get 503 + Retry-After.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Searches run at once (default: the number of CPU cores).
    #[arg(long, default_value_t = Limits::default().search_workers)]
    search_workers: usize,
    /// Searches running or waiting at most; more get 503 + Retry-After at once.
    #[arg(long, default_value_t = Limits::default().max_pending_searches)]
    max_pending_searches: usize,
    /// Seconds a client has to send a request's headers (and an idle keep-alive connection stays open).
    #[arg(long, default_value_t = Limits::default().header_read_timeout.as_secs_f64())]
    header_timeout_secs: f64,
    /// The site's address as visitors see it (e.g. https://pics.example.org/), for the absolute URLs in shared
    /// links' preview tags; default: http:// and each request's Host.
    #[arg(long)]
    public_url: Option<String>,
    /// Seconds to answer a request (a search's wait for a worker included); else 503.
    #[arg(long, default_value_t = Limits::default().request_timeout.as_secs_f64())]
    request_timeout_secs: f64,
}

fn seconds(name: &str, s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{name} must be a positive number of seconds, got {s}"))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "web=info,tower_http=warn".into()),
        )
        .init();
    let args = Args::parse();
    if !args.static_dir.join("index.html").is_file() {
        bail!(
            "{} has no index.html: pass --static-dir pointing at imgpick's static/ folder",
            args.static_dir.display()
        );
    }
    if args.max_connections == 0 || args.search_workers == 0 || args.max_pending_searches == 0 {
        bail!("--max-connections, --search-workers and --max-pending-searches must be at least 1");
    }
    if let Some(url) = &args.public_url {
        let plain = url.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'<' | b'>' | b'\\'));
        if !(url.starts_with("http://") || url.starts_with("https://")) || !plain {
            bail!("--public-url {url:?} must be an http:// or https:// address without spaces or quotes, e.g. https://pics.example.org/");
        }
    }
    let limits = Limits {
        header_read_timeout: seconds("header-timeout-secs", args.header_timeout_secs)?,
        request_timeout: seconds("request-timeout-secs", args.request_timeout_secs)?,
        max_connections: args.max_connections,
        search_workers: args.search_workers,
        max_pending_searches: args.max_pending_searches,
    };
    let watch = if args.watch_interval_secs == 0.0 {
        None
    } else {
        Some(seconds("watch-interval-secs", args.watch_interval_secs)?)
    };
    // Searches take `search_workers` blocking threads at most; the rest serve file reads (tokio::fs).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(limits.search_workers + 32)
        .build()?;
    runtime.block_on(run(args, limits, watch))
}

async fn run(args: Args, limits: Limits, watch: Option<Duration>) -> anyhow::Result<()> {
    let mut shared = SharedSearcher::new(Err("the server was started with --no-api".to_string()));
    let watcher = if let Some(url) = &args.db {
        let backend = DbBackend::open(&args.static_dir, url, args.db_connections.into(), args.db_ef_search.into(), limits.search_workers)?;
        let where_ = backend.db().config().redacted_url();
        // The first search connects; say now whether that will work (the server starts either way).
        match backend.db().health().await {
            Ok(meta) => tracing::info!("/api/search answers from {where_}: {} images of model {}", meta.rows_total, meta.model_id),
            Err(e) => tracing::warn!("/api/search answers from {where_}, which cannot search now (503 until it can): {e}"),
        }
        shared = SharedSearcher::new(Ok(Arc::new(backend)));
        None
    } else if args.no_api {
        None
    } else {
        // The reloader notes the files as they are before the first load, so a change during it is seen.
        let mut reloader = Reloader::new(&args.static_dir, shared.clone());
        reloader.reload(); // logs what it loaded, or why /api/search is off
        Some(reloader.spawn(watch))
    };
    let config =
        web::Config { static_dir: args.static_dir.clone(), searcher: shared, limits: limits.clone(), public_url: args.public_url.clone() };
    let app = web::router(config);
    tokio::spawn(web::precompress::prewarm(app.clone(), args.static_dir.clone()));
    // SIGHUP reloads at once (and must not stop the server, its default action).
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match &watcher {
                    Some(watcher) => {
                        tracing::info!("SIGHUP: reloading the model and gallery");
                        watcher.reload();
                    }
                    None => tracing::info!("SIGHUP: nothing to reload (--no-api, or --db: the database is read live)"),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _keep_watching = watcher;

    let addr = SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}: is the port in use? try --port 0"))?;
    let local = listener.local_addr()?;
    // Tools (the e2e tests, the benchmark) read this line to find the port.
    println!("imgpick serving {} at http://{local}/", args.static_dir.display());
    web::serve(listener, app, &limits, shutdown_signal()).await?;
    println!("imgpick: stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async { tokio::signal::ctrl_c().await.ok() };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => s.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
