//! The download pass: object stream → SHA-256 → bounded channel → a
//! consumer on a blocking thread (zstd + tar, see
//! [`archive::extract`](crate::archive::extract)). One pass, no temporary
//! copy; memory is bounded by the channel.
//!
//! The object is read through [`ResumingRead`]: a connection cut mid-body
//! is resumed from the last byte received, so every byte reaches the hash
//! and the consumer exactly once, in order, and the SHA-256 covers the
//! whole object across resumes. There is no deadline on the download as a
//! whole; the store's idle timeout bounds silence.

use super::RestoreError;
use crate::archive::ChannelReader;
use crate::archive::extract::ExtractError;
use crate::storage::{ObjectStore, ResumingRead};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Chunks buffered between the download and the consumer.
const QUEUE_CHUNKS: usize = 32;

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct DownloadProgress {
    /// Object size, when known in advance (0 otherwise).
    pub total: AtomicU64,
    /// Bytes downloaded so far.
    pub done: AtomicU64,
}

/// The outcome of one pass.
#[derive(Debug)]
pub struct Downloaded<T> {
    /// SHA-256 of the bytes downloaded (of the whole object if `complete`).
    pub sha256: String,
    pub bytes: u64,
    /// The whole object was read.
    pub complete: bool,
    /// What the consumer made of it.
    pub result: Result<T, ExtractError>,
}

/// Download `key` and feed it to `consume` (which reads it through a
/// [`ChannelReader`] on a blocking thread), hashing every byte on the way.
///
/// When the consumer gives up because the data is not a readable archive
/// (not when it refuses an entry), the rest of the object is still
/// downloaded and hashed, so the caller can
/// tell a damaged object (checksum mismatch) from a bad archive. Storage
/// errors and cancellation are returned as errors; the consumer is always
/// finished before this returns.
pub async fn download_through<T, F>(
    store: &dyn ObjectStore,
    key: &str,
    progress: &DownloadProgress,
    cancel: &CancellationToken,
    consume: F,
) -> Result<Downloaded<T>, RestoreError>
where
    T: Send + 'static,
    F: FnOnce(ChannelReader) -> Result<T, ExtractError> + Send + 'static,
{
    let mut reader = ResumingRead::open(store, key).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE_CHUNKS);
    let consumer = tokio::task::spawn_blocking(move || consume(ChannelReader::new(rx)));
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut ended = false;
    let mut failure = None;
    loop {
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                failure = Some(RestoreError::Cancelled);
                break;
            }
            next = reader.next() => next,
        };
        match next {
            Ok(None) => {
                ended = true;
                break;
            }
            Err(e) => {
                failure = Some(e.into());
                break;
            }
            Ok(Some(chunk)) => {
                hasher.update(&chunk);
                bytes += chunk.len() as u64;
                progress.done.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                let sent = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => {
                        failure = Some(RestoreError::Cancelled);
                        break;
                    }
                    sent = tx.send(chunk) => sent,
                };
                if sent.is_err() {
                    // The consumer stopped early; its result says why.
                    break;
                }
            }
        }
    }
    drop(tx);
    let result = consumer
        .await
        .map_err(|e| RestoreError::Internal(format!("archive reader thread: {e}")))?;
    if let Some(f) = failure {
        return Err(f);
    }
    // A consumer that stopped on unreadable data (or, oddly, finished
    // before the end) leaves the rest to hash; a refused entry does not.
    let drain = match &result {
        Ok(_) => true,
        Err(e) => e.is_format(),
    };
    if !ended && drain {
        tracing::debug!(key, "Hashing the rest of the object.");
        loop {
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(RestoreError::Cancelled),
                next = reader.next() => next,
            };
            match next {
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(e) => return Err(e.into()),
                Ok(Some(chunk)) => {
                    hasher.update(&chunk);
                    bytes += chunk.len() as u64;
                    progress.done.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            }
        }
    }
    Ok(Downloaded {
        sha256: hex::encode(hasher.finalize()),
        bytes,
        complete: ended,
        result,
    })
}
