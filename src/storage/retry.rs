//! Retries on one server, and the clean-up that keeps a failed upload from
//! leaving anything behind. Shared by backup, restore, prune and reconcile.

use super::{ErrorClass, ObjectStore, StorageError};
use std::time::Duration;
use tracing::{info, warn};

/// Run `op`, retrying errors classed [`ErrorClass::Retry`] up to `retries`
/// times with exponential backoff (250 ms, 500 ms, 1 s, …).
pub async fn with_retries<T, F, Fut>(retries: u32, mut op: F) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StorageError>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.class() == ErrorClass::Retry && attempt < retries => {
                let delay = backoff(attempt);
                warn!("Retrying in {delay:?} after: {e}");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The pause before retry number `attempt` (from 0): 250 ms, doubling,
/// at most 16 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64 << attempt.min(6))
}

/// Abort a multipart upload, retrying a few times: a dangling upload keeps
/// costing storage on most providers.
pub async fn abort_with_retries(store: &dyn ObjectStore, key: &str, upload_id: &str) {
    match with_retries(3, || store.abort_multipart(key, upload_id)).await {
        Ok(()) => info!(key, "Aborted the partial upload."),
        Err(e) => warn!(
            key,
            upload_id, "Could not abort the partial upload; `sitebackup reconcile` will clean it up: {e}"
        ),
    }
}
