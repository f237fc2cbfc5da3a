//! A database that goes away costs a search seconds and a clear "unavailable" error, never a hang or a crash;
//! when it is back, the same searcher answers again by itself.

use std::time::{Duration, Instant};

use db::local::LocalInstance;
use db::{load, DbConfig, DbError, DbSearcher, LoadOptions, ScanMode};

use crate::common::{self, GalleryFiles};

#[tokio::test]
async fn searches_fail_fast_while_the_database_is_down_and_recover() {
    let Some(db) = LocalInstance::for_test("searches_fail_fast_while_the_database_is_down_and_recover") else { return };
    let model = common::fixture_model(false);
    let files = GalleryFiles::fixture();
    let config = common::config(&db, ScanMode::Planner);
    load(&config, &files.published(&model), &LoadOptions::default(), |_| {}).await.unwrap();
    let searcher = DbSearcher::new(&model, config.clone()).unwrap();
    let before = searcher.search("a dog on the beach", 10, 0).await.unwrap();
    assert_eq!(before.len(), 10);

    db.pg.stop().unwrap();
    for attempt in 0..3 {
        let started = Instant::now();
        let err = searcher.search("a dog on the beach", 10, 0).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(8), "attempt {attempt} took {:?}", started.elapsed());
        assert!(err.is_unavailable() && err.http_status() == 503, "attempt {attempt}: {err:?}");
        assert!(matches!(&err, DbError::Unavailable { reason } if !reason.is_empty()), "{err:?}");
        let health = searcher.health().await.unwrap_err();
        assert!(health.is_unavailable(), "{health:?}");
        assert!(searcher.similar(3, 5, 0).await.unwrap_err().is_unavailable());
    }

    db.pg.start_again().unwrap();
    // The pool drops the connections the shutdown closed and opens new ones: the next search works.
    let after = searcher.search("a dog on the beach", 10, 0).await.unwrap();
    assert_eq!(after, before);
    assert_eq!(searcher.health().await.unwrap().rows_total, 40);
}

/// Nothing listens on the port (refused) or the address does not answer at all (connect timeout): both are
/// `Unavailable` within the connect timeout, and the searcher is built regardless (it connects lazily).
#[tokio::test]
async fn no_server_is_unavailable_not_a_hang() {
    let model = common::fixture_model(false);
    let free_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for url in [
        format!("postgres://imgpick:pw@127.0.0.1:{free_port}/imgpick"),
        // TEST-NET-1 (RFC 5737): never routed, so the connection attempt hangs until the timeout.
        "postgres://imgpick:pw@192.0.2.1:5432/imgpick".to_string(),
    ] {
        let mut config = DbConfig::from_url(&url).unwrap();
        config.connect_timeout = Duration::from_millis(700);
        let searcher = DbSearcher::new(&model, config).unwrap();
        let started = Instant::now();
        let err = searcher.search("cat", 10, 0).await.unwrap_err();
        assert!(err.is_unavailable(), "{url}: {err:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{url}: took {:?}", started.elapsed());
        let (config, published) = (DbConfig::from_url(&url).unwrap(), GalleryFiles::fixture().published(&model));
        let opts = LoadOptions::default();
        let loading = load(&config, &published, &opts, |_| {});
        let err = tokio::time::timeout(Duration::from_secs(10), loading).await.expect("load must not hang").unwrap_err();
        assert!(err.is_unavailable(), "{url}: {err:?}");
    }
}
