//! The one way blocking work leaves the async runtime: file-system calls,
//! hashing and SQLite reads made from async code go to tokio's blocking
//! pool through [`run`]. (Journal writes go to the journal's writer thread;
//! ssh2, which blocks throughout, runs on threads of its own.)

use anyhow::{Context, Result};

/// Runs `work` on tokio's blocking pool and waits for it without holding
/// up a worker thread.
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("blocking task failed")?
}
