//! `restore ARCHIVE --to DIR`: find the archive, stream it through SHA-256,
//! zstd and safe tar extraction into DIR (see [`crate::restore`] for what a
//! failure leaves behind).

use crate::archive::extract::ExtractOptions;
use crate::catalog::Catalog;
use crate::cli::RestoreArgs;
use crate::config::Config;
use crate::restore::{self, DownloadProgress, RestoreOptions, RestoreReport};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub async fn run(config: &Config, args: &RestoreArgs, json: bool) -> anyhow::Result<u8> {
    if args.with_db {
        anyhow::bail!(
            "database import (--with-db) is not available in sitebackup {} yet; restore without it and import \
             DIR/database/*.sql with the mysql client",
            env!("CARGO_PKG_VERSION")
        );
    }
    let catalog = Arc::new(Catalog::open(&config.state_dir)?);
    let located = restore::locate(config, &catalog, &args.archive).await?;
    let cancel = interrupt_token();
    let progress = Arc::new(DownloadProgress::default());
    let bar = (!json && std::io::stderr().is_terminal()).then(|| download_bar(&located.key, progress.clone()));
    let opts = RestoreOptions {
        extract: ExtractOptions::for_current_user(),
        keep_partial: args.keep_partial,
    };
    let result = restore::restore_to(&located, &args.to, opts, &progress, &cancel).await;
    if let Some((bar, ticker)) = bar {
        ticker.abort();
        bar.finish_and_clear();
    }
    let report = result?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(0)
}

fn print_report(r: &RestoreReport) {
    let id = r.id.map(|id| format!(" (#{id})")).unwrap_or_default();
    println!("Restored {}{id} from {} into {}", r.key, r.server, r.target.display());
    println!(
        "  {} files, {} directories, {} symlinks, {} hard links; {} of files",
        r.stats.files,
        r.stats.dirs,
        r.stats.symlinks,
        r.stats.hardlinks,
        super::mb(r.stats.file_bytes)
    );
    let against: Vec<&str> = r.checked_against.iter().map(|c| c.describe()).collect();
    if against.is_empty() {
        println!(
            "  archive {} sha256={} (NOT checked: no recorded checksum)",
            super::mb(r.size_bytes),
            r.sha256
        );
    } else {
        println!(
            "  archive {} sha256={} matches the {}",
            super::mb(r.size_bytes),
            r.sha256,
            against.join(" and ")
        );
    }
    for dump in &r.database_dumps {
        println!("  database dump: {}", dump.display());
    }
    for w in &r.warnings {
        println!("  warning: {w}");
    }
    println!("  took {:.1}s", r.duration_secs);
}

/// A token cancelled by Ctrl-C, so a download stops cleanly and the
/// partial tree is cleaned up.
pub(super) fn interrupt_token() -> CancellationToken {
    let cancel = CancellationToken::new();
    let interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!("Interrupted: stopping the download.");
            interrupt.cancel();
        }
    });
    cancel
}

/// A download progress bar on stderr, refreshed from `progress`.
pub(super) fn download_bar(
    label: &str,
    progress: Arc<DownloadProgress>,
) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(label.rsplit('/').next().unwrap_or(label).to_string());
    let b = bar.clone();
    let ticker = tokio::spawn(async move {
        loop {
            b.set_length(progress.total.load(Ordering::Relaxed));
            b.set_position(progress.done.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (bar, ticker)
}
