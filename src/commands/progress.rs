//! Progress bars on stderr for `backup`, `restore` and `verify`: shown only
//! on a terminal, without `--json` or `-q`. Sizes are in decimal units
//! (MB, 10^6 bytes), like the summaries. Each bar is registered with
//! [`crate::telemetry::bars`], so log lines are printed above it, never
//! over it.

use crate::pipeline::Progress;
use crate::restore::DownloadProgress;
use indicatif::{DecimalBytes, ProgressBar, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often the bar reads the counters.
const REFRESH: Duration = Duration::from_millis(200);

/// A bar and the task that refreshes it; [`Bar::finish`] removes it.
pub struct Bar {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Bar {
    pub fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
        crate::telemetry::bars().remove(&self.bar);
    }
}

fn new_bar(template: &str, prefix: &str) -> ProgressBar {
    let bar = crate::telemetry::bars().add(ProgressBar::new(0));
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// Source bytes read out of the estimate, compressed bytes uploaded, rate
/// and time left.
pub fn backup_bar(site: &str, progress: Arc<Progress>) -> Bar {
    let bar = new_bar(
        "{prefix} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} read, {msg} uploaded ({decimal_bytes_per_sec}, ETA {eta})",
        site,
    );
    let update = move |b: &ProgressBar| {
        b.set_length(progress.total.load(Ordering::Relaxed));
        b.set_position(progress.read.load(Ordering::Relaxed));
        b.set_message(DecimalBytes(progress.uploaded.load(Ordering::Relaxed)).to_string());
    };
    update(&bar);
    spawn_ticker(bar, update)
}

/// Bytes downloaded out of the archive's size.
pub fn download_bar(key: &str, progress: Arc<DownloadProgress>) -> Bar {
    let bar = new_bar(
        "{prefix} [{bar:30}] {decimal_bytes}/{decimal_total_bytes} ({decimal_bytes_per_sec}, ETA {eta})",
        key.rsplit('/').next().unwrap_or(key),
    );
    let update = move |b: &ProgressBar| {
        b.set_length(progress.total.load(Ordering::Relaxed));
        b.set_position(progress.done.load(Ordering::Relaxed));
    };
    update(&bar);
    spawn_ticker(bar, update)
}

fn spawn_ticker(bar: ProgressBar, update: impl Fn(&ProgressBar) + Send + 'static) -> Bar {
    let b = bar.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(REFRESH).await;
            update(&b);
        }
    });
    Bar { bar, ticker }
}
