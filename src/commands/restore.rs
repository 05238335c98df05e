//! `restore ARCHIVE --to DIR`: find the archive, stream it through SHA-256,
//! zstd and safe tar extraction into DIR (see [`crate::restore`] for what a
//! failure leaves behind).

use crate::archive::extract::ExtractOptions;
use crate::catalog::Catalog;
use crate::cli::RestoreArgs;
use crate::config::Config;
use crate::database;
use crate::restore::{self, DownloadProgress, RestoreOptions, RestoreReport};
use anyhow::Context;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub async fn run(config: &Config, args: &RestoreArgs, json: bool) -> anyhow::Result<u8> {
    let catalog = Arc::new(Catalog::open(&config.state_dir)?);
    let source = crate::node::read_source(config, &catalog);
    let located = restore::locate(source.as_ref(), &catalog, &args.archive).await?;
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
    let import = if args.with_db {
        Some(import_database(config, &report, args.db_name.as_deref()).await?)
    } else {
        None
    };
    if json {
        let mut doc = serde_json::to_value(&report)?;
        if let (Some(obj), Some(import)) = (doc.as_object_mut(), &import) {
            obj.insert("database_import".into(), serde_json::to_value(import)?);
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_report(&report);
        if let Some(i) = &import {
            println!(
                "  imported {} into database {}{} with {} in {:.1}s",
                super::mb(i.bytes),
                i.database,
                if i.created { " (created)" } else { "" },
                i.tool,
                i.duration_secs
            );
        }
    }
    Ok(0)
}

/// `--with-db`: import the restored dump with the mariadb/mysql client.
/// Credentials follow the dump's rules: the site's `[sites.database]` or
/// `wp-config.php` when the site is configured here, else the restored
/// `files/wp-config.php`.
async fn import_database(
    config: &Config,
    report: &RestoreReport,
    db_name: Option<&str>,
) -> anyhow::Result<database::ImportReport> {
    let manifest_db = report.manifest.as_ref().and_then(|m| m.get("database"));
    let entry = manifest_db.and_then(|d| d.get("entry")).and_then(|e| e.as_str());
    let dump = match entry {
        Some(entry) => report.target.join(entry),
        None => report
            .database_dumps
            .first()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("--with-db: the archive {} holds no database dump", report.key))?,
    };
    let site = report
        .manifest
        .as_ref()
        .and_then(|m| m.get("site"))
        .and_then(|s| s.as_str())
        .and_then(|name| config.site(name));
    let settings = match site {
        Some(site) => database::resolve(&site.path, site.database.as_ref()),
        None => database::resolve(&report.target.join("files"), None),
    }
    .context("--with-db: cannot work out the database settings")?
    .ok_or_else(|| {
        anyhow::anyhow!(
            "--with-db: no database settings: the site has no [sites.database] section and no wp-config.php"
        )
    })?;
    let into = db_name.map(str::to_string);
    let import = tokio::task::spawn_blocking(move || database::import_dump(&settings, &dump, into.as_deref()))
        .await
        .context("--with-db: the import task failed")?
        .context("--with-db: database import failed")?;
    Ok(import)
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
    crate::signals::cancel_on_interrupt("Interrupted: stopping the download.")
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
