//! One error type for the database tier, sorted by what a caller should do about it: fix the request (400/404),
//! wait for the database (503, with the reason), or look at the server (500). `http_status` says which.

use std::time::Duration;

use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached or is shutting down; retrying later works once it is back.
    #[error("the database is unavailable: {reason}")]
    Unavailable { reason: String },
    /// A query ran past the statement timeout (the server cancelled it).
    #[error("the database did not answer within {0:?} (statement timeout); it may be overloaded")]
    Timeout(Duration),
    /// More searches are in flight than the searcher allows, and none finished within the wait.
    #[error("too many searches in flight ({limit}); try again shortly")]
    Busy { limit: usize },
    /// No gallery is live in the database (never loaded, or the first load has not finished).
    #[error("no gallery is loaded in the database: {reason}")]
    NotLoaded { reason: String },
    /// The database holds another model's vectors than the one this process encodes queries with.
    #[error("the database holds model {database}'s vectors, but this model is {model}; {hint}")]
    ModelMismatch { database: String, model: String, hint: &'static str },
    /// Another process is loading into the same database right now.
    #[error("another load into this database is running (it holds the imgpick load lock); wait for it to finish")]
    LoadBusy,
    /// The prompt cannot be searched (empty, too many terms, cancels out …); the message says why.
    #[error("{0}")]
    Query(String),
    #[error("image id {id} is not in the gallery (it has {len} images, ids 0..{len})")]
    UnknownImage { id: usize, len: usize },
    /// The published files cannot be read or do not belong together.
    #[error("{0}")]
    Gallery(String),
    #[error("database URL: {0}")]
    Config(String),
    /// Anything else the server answered (a bug or a schema problem: the message names the statement).
    #[error("database error while {context}: {message}")]
    Sql { context: &'static str, message: String, code: Option<String> },
}

impl DbError {
    /// Whether waiting (for the database to come back, or for load to drop) is the remedy: answer 503.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::Timeout(_) | Self::Busy { .. } | Self::NotLoaded { .. } | Self::ModelMismatch { .. }
        )
    }

    /// The HTTP status a server should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Query(_) => 400,
            Self::UnknownImage { .. } => 404,
            e if e.is_unavailable() => 503,
            Self::LoadBusy => 409,
            _ => 500,
        }
    }

    /// Sorts a driver error: connection trouble and server shutdown are `Unavailable`, a cancelled statement is
    /// `Timeout`, the rest is `Sql` naming `context`.
    pub fn from_pg(context: &'static str, e: tokio_postgres::Error, statement_timeout: Duration) -> Self {
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            if *code == SqlState::QUERY_CANCELED {
                return Self::Timeout(statement_timeout);
            }
            // Class 08 (connection exception), 57P01-03 (admin/crash shutdown, cannot connect now), 53300 (too
            // many connections): the server is there but cannot serve now.
            let class = &code.code()[..2];
            if class == "08"
                || [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN, SqlState::CANNOT_CONNECT_NOW, SqlState::TOO_MANY_CONNECTIONS]
                    .contains(code)
            {
                return Self::Unavailable { reason: db.message().to_string() };
            }
            return Self::Sql { context, message: db.message().to_string(), code: Some(code.code().to_string()) };
        }
        // No server message: the connection failed or broke (refused, reset, timed out, closed).
        Self::Unavailable { reason: describe_chain(&e) }
    }

    pub(crate) fn from_pool(e: deadpool_postgres::PoolError, statement_timeout: Duration, connect_timeout: Duration) -> Self {
        use deadpool_postgres::{PoolError, TimeoutType};
        match e {
            PoolError::Backend(e) => Self::from_pg("connecting", e, statement_timeout),
            PoolError::Timeout(TimeoutType::Create) => {
                Self::Unavailable { reason: format!("no connection within {connect_timeout:?}") }
            }
            PoolError::Timeout(TimeoutType::Wait) => Self::Unavailable { reason: "no free connection in the pool".into() },
            PoolError::Timeout(TimeoutType::Recycle) => Self::Unavailable { reason: "checking a pooled connection timed out".into() },
            PoolError::Closed => Self::Unavailable { reason: "the connection pool is closed".into() },
            other => Self::Unavailable { reason: other.to_string() },
        }
    }
}

/// "error connecting to server: Connection refused (os error 111)": the driver's message and its causes.
fn describe_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

impl From<wasm_model::GalleryError> for DbError {
    fn from(e: wasm_model::GalleryError) -> Self {
        Self::Gallery(e.to_string())
    }
}

impl From<wasm_model::ModelError> for DbError {
    fn from(e: wasm_model::ModelError) -> Self {
        Self::Gallery(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_remedy() {
        assert_eq!(DbError::Unavailable { reason: "refused".into() }.http_status(), 503);
        assert_eq!(DbError::Timeout(Duration::from_secs(1)).http_status(), 503);
        assert_eq!(DbError::Busy { limit: 4 }.http_status(), 503);
        assert_eq!(DbError::NotLoaded { reason: "empty".into() }.http_status(), 503);
        let mismatch = DbError::ModelMismatch { database: "a".into(), model: "b".into(), hint: "reload" };
        assert_eq!(mismatch.http_status(), 503);
        assert!(mismatch.to_string().contains("model a") && mismatch.to_string().contains("this model is b"));
        assert_eq!(DbError::Query("empty".into()).http_status(), 400);
        assert_eq!(DbError::UnknownImage { id: 9, len: 3 }.http_status(), 404);
        assert_eq!(DbError::Sql { context: "x", message: "y".into(), code: None }.http_status(), 500);
        assert!(!DbError::Query("q".into()).is_unavailable());
    }
}
