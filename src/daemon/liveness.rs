//! Is the daemon alive, in the sense systemd's watchdog asks? The runner
//! proves it with a heartbeat, and the watchdog pings systemd only while
//! the heartbeat is fresh.
//!
//! While idle, the runner beats every second. While a job runs, it beats
//! only while the job makes **progress**: bytes move (read from the site,
//! parts completed, body bytes sent or received on any server), or a step
//! with a time limit of its own is inside it (a hook until its
//! `timeout_secs`, the dump until `database.timeout_secs`, a prune until
//! [`PRUNE_STEP`]). A stall longer than the network idle timeout with no
//! step running lets the heartbeat go stale, the pings stop, and systemd
//! restarts the service (`WatchdogSec=`). A job stuck on network I/O thus
//! no longer keeps the service "healthy".
//!
//! Time is tokio's, so tests drive it with a paused clock.

use crate::pipeline::Progress;
use chrono::Utc;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the runner looks at its job and beats.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long one prune (listing and deleting on the servers) may run
/// without moving body bytes.
pub(super) const PRUNE_STEP: Duration = Duration::from_secs(600);

/// The runner's last sign of life.
#[derive(Debug)]
pub(super) struct Heartbeat(Mutex<Instant>);

impl Heartbeat {
    pub(super) fn new() -> Self {
        Self(Mutex::new(Instant::now()))
    }

    pub(super) fn beat(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    pub(super) fn age(&self) -> Duration {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }
}

/// Does a job count as alive? Bytes moved within `stall`, or a step is
/// inside its own time limit.
pub(super) fn progressing(since_moved: Duration, stall: Duration, step_running: bool) -> bool {
    since_moved < stall || step_running
}

/// Await `work`, beating while it makes progress (see the module doc).
pub(super) async fn watched<T>(
    heartbeat: &Heartbeat,
    tick: &mut tokio::time::Interval,
    progress: &Progress,
    stall: Duration,
    work: impl Future<Output = T>,
) -> T {
    tokio::pin!(work);
    let mut seen = progress.activity();
    let mut moved_at = Instant::now();
    loop {
        tokio::select! {
            r = &mut work => return r,
            _ = tick.tick() => {
                let now = progress.activity();
                if now != seen {
                    seen = now;
                    moved_at = Instant::now();
                }
                let step_running = progress.step_until().is_some_and(|until| Utc::now() < until);
                if progressing(moved_at.elapsed(), stall, step_running) {
                    heartbeat.beat();
                } else {
                    tracing::warn!(
                        stalled_secs = moved_at.elapsed().as_secs(),
                        "The running job has moved no bytes for longer than the idle timeout."
                    );
                }
            }
        }
    }
}

/// Call `ping` every `interval / 2` while the heartbeat is younger than
/// `interval`, until `stop`.
pub(super) async fn watchdog(
    heartbeat: &Heartbeat,
    interval: Duration,
    stop: CancellationToken,
    mut ping: impl FnMut(),
) {
    let half = interval / 2;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(half) => {
                let age = heartbeat.age();
                if age < interval {
                    ping();
                } else {
                    tracing::error!(age_ms = age.as_millis() as u64, "The job runner is not making progress; withholding the watchdog ping.");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn progress_or_a_step_keeps_a_job_alive() {
        let stall = Duration::from_secs(60);
        assert!(progressing(Duration::from_secs(59), stall, false));
        assert!(!progressing(Duration::from_secs(60), stall, false));
        assert!(progressing(Duration::from_secs(3600), stall, true));
    }

    /// A stale heartbeat sends no ping; a fresh one does.
    #[tokio::test(start_paused = true)]
    async fn pings_stop_when_the_heartbeat_is_stale() {
        let heartbeat = Arc::new(Heartbeat::new());
        let pings = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let (hb, p, s) = (heartbeat.clone(), pings.clone(), stop.clone());
        let dog = tokio::spawn(async move {
            watchdog(&hb, Duration::from_secs(10), s, || {
                p.fetch_add(1, Ordering::Relaxed);
            })
            .await
        });
        // Fresh for the first 10 s: pings at 5 s (and possibly at 10 s).
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(pings.load(Ordering::Relaxed), 1);
        // Never beaten again: from 10 s on the heartbeat is stale.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let stale = pings.load(Ordering::Relaxed);
        assert!(stale <= 2, "{stale} pings with a stale heartbeat");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(pings.load(Ordering::Relaxed), stale, "pings while stale");
        // A beat makes it fresh again.
        heartbeat.beat();
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(pings.load(Ordering::Relaxed), stale + 1);
        stop.cancel();
        dog.await.unwrap();
    }

    /// A job that stops moving bytes stops the beats after the stall
    /// window; a step inside its limit keeps them going.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_job_stops_beating_unless_a_step_runs() {
        let heartbeat = Heartbeat::new();
        let progress = Progress::default();
        let mut tick = tokio::time::interval(HEARTBEAT);
        let stall = Duration::from_secs(30);
        // A job that never moves a byte, for 100 s.
        watched(
            &heartbeat,
            &mut tick,
            &progress,
            stall,
            tokio::time::sleep(Duration::from_secs(100)),
        )
        .await;
        assert!(heartbeat.age() >= Duration::from_secs(69), "{:?}", heartbeat.age());
        // The same inside a step with a longer limit: beating throughout.
        // (The step's limit is wall-clock time, which a paused tokio clock
        // does not move, so it stays inside it.)
        let _step = progress.step(Duration::from_secs(3600));
        watched(
            &heartbeat,
            &mut tick,
            &progress,
            stall,
            tokio::time::sleep(Duration::from_secs(100)),
        )
        .await;
        assert!(heartbeat.age() <= Duration::from_secs(1), "{:?}", heartbeat.age());
    }
}
