//! How much the server takes on at once, and for how long (issue #16: half-sent requests stayed open, and 64
//! concurrent searches grew the process to 271–425 threads). Everything over a limit gets a fast
//! `503 Service Unavailable` with `Retry-After`.

use std::time::Duration;

/// Seconds a client is told to wait in `Retry-After` when the server is full.
pub const RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// A connection must deliver a request's headers within this time (also closes idle keep-alive
    /// connections after it).
    pub header_read_timeout: Duration,
    /// A request must be answered within this time (a search's wait for a worker included); else 503.
    pub request_timeout: Duration,
    /// Open connections; one more gets a 503 and is closed.
    pub max_connections: usize,
    /// Searches that run at once, each on its own blocking thread (text encoding is CPU work).
    pub search_workers: usize,
    /// Searches running or waiting for a worker; one more gets a 503 at once.
    pub max_pending_searches: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 512,
            search_workers: cores,
            max_pending_searches: 64,
        }
    }
}
