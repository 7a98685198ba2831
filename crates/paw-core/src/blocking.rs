//! Blocking work (SQLite, reading and hashing files, rendering) inside the build's async code.

use crate::error::{Error, Result};

/// Runs `work` on one of tokio's blocking threads and waits for it without blocking this task:
/// the build drives every step (and renews their leases) from one task, so a slow disk or a busy
/// catalog must not stall the others. `work` owns what it reads.
pub async fn off_the_task<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Error::bug(format!("paw's blocking call did not finish: {err}")))?
}
