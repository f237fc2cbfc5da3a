//! `web --port 8080 --static-dir static/`: serves imgpick's page and files; Ctrl-C stops it gracefully.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{bail, Context};
use clap::Parser;

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
    #[arg(long)]
    no_api: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
    let searcher = if args.no_api {
        Err("the server was started with --no-api".to_string())
    } else {
        web::engine::load(&args.static_dir)
    };
    match &searcher {
        Ok(s) => tracing::info!(model_id = %s.model_id(), "native /api/search ready"),
        Err(why) => tracing::warn!("/api/search disabled: {why}"),
    }
    let app = web::router(web::Config { static_dir: args.static_dir.clone(), searcher });

    let addr = SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}: is the port in use? try --port 0"))?;
    let local = listener.local_addr()?;
    // Tools (the e2e tests, the benchmark) read this line to find the port.
    println!("imgpick serving {} at http://{local}/", args.static_dir.display());
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
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
