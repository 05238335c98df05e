//! Idle timeouts: a request may take as long as it needs while bytes move,
//! and fails once the idle window passes with none. There is deliberately
//! no deadline on a request as a whole: a big part or archive on a slow
//! link must still get through.
//!
//! Used by the hand-signed S3 requests (part PUT and GET, see `s3`); this
//! module knows nothing about S3. It must not sleep for a fixed time: every
//! wait ends at "last activity + window".

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Size of the pieces a request body is handed to the HTTP stack in: each
/// piece taken counts as activity.
const BODY_PIECE: usize = 64 * 1024;

/// Pieces of request and response bodies moved by this process, on any
/// server: the daemon's heartbeat watches it to tell a slow transfer from a
/// stuck one (see [`transfers`]).
static TRANSFERS: AtomicU64 = AtomicU64::new(0);

/// A count that grows whenever body bytes move to or from any server.
pub fn transfers() -> u64 {
    TRANSFERS.load(Ordering::Relaxed)
}

/// When bytes last moved, shared between a request body and its watcher.
#[derive(Clone, Debug)]
pub(super) struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub(super) fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(super) fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
        TRANSFERS.fetch_add(1, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Run `fut` to the end, or give up (`None`) once `idle` passed without
/// a [`Activity::touch`].
pub(super) async fn until_idle<F: Future>(fut: F, activity: &Activity, idle: Duration) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        let deadline = activity.last() + idle;
        tokio::select! {
            out = &mut fut => return Some(out),
            () = tokio::time::sleep_until(deadline) => {
                if activity.last() + idle <= Instant::now() {
                    return None;
                }
            }
        }
    }
}

/// `data` as a stream of pieces that touch `activity` as the HTTP stack
/// takes them: a part upload makes progress while its body drains into
/// the socket.
pub(super) fn tracked_body(
    data: Bytes,
    activity: Activity,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + Sync + 'static {
    let len = data.len();
    futures::stream::iter((0..len).step_by(BODY_PIECE)).map(move |start| {
        activity.touch();
        Ok(data.slice(start..len.min(start + BODY_PIECE)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test(start_paused = true)]
    async fn activity_postpones_the_idle_deadline() {
        let activity = Activity::new();
        let idle = Duration::from_secs(3);
        // Touched every 2 s for 10 s: finishes although 10 s > 3 s.
        let a = activity.clone();
        let busy = async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                a.touch();
            }
            "done"
        };
        assert_eq!(until_idle(busy, &activity, idle).await, Some("done"));
        // Silent for 4 s: gives up at the 3 s mark.
        let started = Instant::now();
        let silent = tokio::time::sleep(Duration::from_secs(4));
        assert_eq!(until_idle(silent, &activity, idle).await, None);
        assert_eq!(started.elapsed(), idle);
    }

    #[tokio::test]
    async fn the_body_is_cut_into_pieces_in_order() {
        let data = Bytes::from((0..200_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let pieces: Vec<Bytes> = tracked_body(data.clone(), Activity::new())
            .map(|r| r.unwrap_or_default())
            .collect()
            .await;
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces.concat(), data.to_vec());
        assert_eq!(tracked_body(Bytes::new(), Activity::new()).count().await, 0);
    }
}
