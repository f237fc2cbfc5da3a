//! How to reach the database and how long to wait for it: the URL plus timeouts, pool size and the HNSW search
//! breadth. Every wait is bounded, so a database that is down or hung costs a caller seconds, never a hang.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{Client, NoTls};

use crate::DbError;

/// Default `hnsw.ef_search`, the breadth of the graph search: recall@10 0.955 at 1 M images with the default index
/// (m 24, ef_construction 96), p50 50 ms on 2 busy cores; 200 already gives 0.958 at 100 k (docs/scale.md,
/// "PostgreSQL + pgvector (measured)"). pgvector's own default, 40, gave 0.56 at 1 M.
pub const DEFAULT_EF_SEARCH: usize = 800;

#[derive(Clone)]
pub struct DbConfig {
    pg: tokio_postgres::Config,
    /// Connections the searcher keeps at most.
    pub pool_size: usize,
    /// Searches running at once; more wait up to `queue_timeout`, then get [`DbError::Busy`].
    pub max_in_flight: usize,
    /// Opening one connection (TCP + authentication).
    pub connect_timeout: Duration,
    /// A search statement; the server cancels it after this (a load has no limit: building an index takes minutes).
    pub statement_timeout: Duration,
    /// Waiting for a search slot or a pooled connection.
    pub queue_timeout: Duration,
    /// `hnsw.ef_search` for searches (raised per query to at least offset + k + 1).
    pub ef_search: usize,
    /// Index or full scan (the planner's choice unless told).
    pub scan: ScanMode,
}

/// How a search finds its top k.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanMode {
    /// PostgreSQL's planner chooses: the HNSW index on large tables, a full scan (exact, and faster) on small
    /// ones — a few thousand rows with a wide `ef_search`.
    #[default]
    Planner,
    /// Every row, exactly scored: the ranking the index approximates (tests, recall measurements; slow at scale).
    Exact,
    /// Always the HNSW index (tests and benchmarks of the approximate search on small tables).
    Index,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("url", &self.redacted_url())
            .field("pool_size", &self.pool_size)
            .field("max_in_flight", &self.max_in_flight)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("queue_timeout", &self.queue_timeout)
            .field("ef_search", &self.ef_search)
            .field("scan", &self.scan)
            .finish()
    }
}

impl DbConfig {
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (what `scripts/pg.sh start` prints), or any libpq-style
    /// connection string. TLS is not supported: use it on one machine or a trusted network.
    pub fn from_url(url: &str) -> Result<Self, DbError> {
        let pg = tokio_postgres::Config::from_str(url.trim()).map_err(|e| {
            DbError::Config(format!("cannot read it ({e}); expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"))
        })?;
        if pg.get_hosts().is_empty() {
            return Err(DbError::Config("no host in it; expected postgres://USER:PASSWORD@HOST:PORT/DATABASE".into()));
        }
        if pg.get_dbname().is_none() {
            return Err(DbError::Config("no database name in it; expected postgres://USER:PASSWORD@HOST:PORT/DATABASE".into()));
        }
        Ok(Self {
            pg,
            pool_size: 16,
            max_in_flight: 16,
            connect_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(5),
            queue_timeout: Duration::from_secs(2),
            ef_search: DEFAULT_EF_SEARCH,
            scan: ScanMode::Planner,
        })
    }

    /// The URL's host, port and database, without the password (for logs and error messages).
    pub fn redacted_url(&self) -> String {
        let host = match self.pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "?".into(),
        };
        let port = self.pg.get_ports().first().copied().unwrap_or(5432);
        let user = self.pg.get_user().unwrap_or("");
        format!("postgres://{user}@{host}:{port}/{}", self.pg.get_dbname().unwrap_or(""))
    }

    /// The driver configuration with our timeouts: connect, TCP keepalive, and the session settings
    /// (`statement_timeout`, `hnsw.ef_search`) sent at connection start, so a search is one round trip.
    fn session_config(&self, statement_timeout: Option<Duration>) -> tokio_postgres::Config {
        let mut pg = self.pg.clone();
        pg.connect_timeout(self.connect_timeout);
        pg.keepalives(true).keepalives_idle(Duration::from_secs(10));
        if pg.get_application_name().is_none() {
            pg.application_name("imgpick");
        }
        let mut options = pg.get_options().unwrap_or("").to_string();
        let timeout_ms = statement_timeout.map_or(0, |t| t.as_millis().max(1));
        // force_custom_plan: a prepared search is planned with its LIMIT known; a generic plan may not know it is
        // a top-k and sort the whole table instead of walking the HNSW index.
        options.push_str(&format!(
            " -c statement_timeout={timeout_ms} -c hnsw.ef_search={} -c plan_cache_mode=force_custom_plan",
            self.ef_search.clamp(1, 1000)
        ));
        pg.options(options.trim());
        pg
    }

    /// The searcher's pool: lazy (no connection until the first search), bounded waits everywhere.
    pub(crate) fn pool(&self) -> Result<Pool, DbError> {
        let manager = Manager::from_config(
            self.session_config(Some(self.statement_timeout)),
            NoTls,
            // Fast: a pooled connection is reused if its socket is open; one the server closed is dropped.
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        Pool::builder(manager)
            .max_size(self.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.queue_timeout))
            .create_timeout(Some(self.connect_timeout))
            .recycle_timeout(Some(self.connect_timeout))
            .build()
            .map_err(|e| DbError::Config(format!("cannot build the connection pool: {e}")))
    }

    /// One connection outside the pool, without a statement timeout (loads and index builds); its driver task
    /// runs on the current tokio runtime.
    pub async fn connect_unpooled(&self) -> Result<Client, DbError> {
        let (client, connection) = self
            .session_config(None)
            .connect(NoTls)
            .await
            .map_err(|e| DbError::from_pg("connecting", e, Duration::ZERO))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("database connection ended: {e}");
            }
        });
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_urls_and_hides_the_password() {
        let c = DbConfig::from_url("postgres://imgpick:s3cret@127.0.0.1:5433/imgpick").unwrap();
        assert_eq!(c.redacted_url(), "postgres://imgpick@127.0.0.1:5433/imgpick");
        assert!(!format!("{c:?}").contains("s3cret"));
        let s = c.session_config(Some(Duration::from_millis(1500)));
        let settings = "-c hnsw.ef_search=800 -c plan_cache_mode=force_custom_plan";
        assert_eq!(s.get_options(), Some(format!("-c statement_timeout=1500 {settings}").as_str()));
        assert_eq!(c.session_config(None).get_options(), Some(format!("-c statement_timeout=0 {settings}").as_str()));
        for bad in ["", "http://x", "postgres://127.0.0.1:5432"] {
            let e = DbConfig::from_url(bad).unwrap_err();
            assert!(matches!(e, DbError::Config(_)) && e.to_string().contains("postgres://"), "{bad:?}: {e}");
        }
    }
}
