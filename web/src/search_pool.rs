//! Where searches run: at most `search_workers` at once, each on a blocking thread (text encoding is CPU work
//! that must not stall the async executor). Unbounded `spawn_blocking` grew the server to 271–425 threads at 64
//! concurrent searches; here the excess waits on a semaphore (no thread), and admission is capped in front of
//! it by tower's concurrency limit + load shedding (see `api::routes`).

use std::sync::Arc;

use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct SearchPool {
    workers: Arc<Semaphore>,
}

/// Why a job did not run.
#[derive(Debug)]
pub enum PoolError {
    /// The job panicked (a bug in the engine; the server goes on).
    Panicked(String),
}

impl SearchPool {
    pub fn new(workers: usize) -> Self {
        Self { workers: Arc::new(Semaphore::new(workers.max(1))) }
    }

    /// Runs `job` on a blocking thread once a worker is free. Dropping the returned future while it waits gives
    /// up the place in line; once started, the job runs to the end (threads cannot be cancelled) and keeps its
    /// worker until then, so the bound holds even for abandoned requests.
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, PoolError> {
        let worker = self.workers.clone().acquire_owned().await.expect("the pool's semaphore is never closed");
        tokio::task::spawn_blocking(move || {
            let out = job();
            drop(worker);
            out
        })
        .await
        .map_err(|e| PoolError::Panicked(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_runs_more_jobs_than_workers_and_survives_a_panic() {
        let pool = SearchPool::new(3);
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut jobs = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            jobs.spawn(async move {
                pool.run(move || {
                    peak.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
                .unwrap()
            });
        }
        while let Some(r) = jobs.join_next().await {
            r.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert!(matches!(pool.run(|| panic!("engine bug")).await, Err(PoolError::Panicked(_))));
        assert_eq!(pool.run(|| 7).await.unwrap(), 7, "a panicked job gives its worker back");
    }
}
