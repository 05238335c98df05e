//! `backup [SITE...] [--all]`: run [`BackupJob`]s now, one site at a time.

use super::UsageError;
use crate::catalog::Catalog;
use crate::catalog::RunOutcome;
use crate::cli::BackupArgs;
use crate::config::Config;
use crate::pipeline::{BackupJob, BackupReport, Progress};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub async fn run(config: &Config, args: &BackupArgs, json: bool) -> anyhow::Result<u8> {
    let sites = select_sites(config, args)?;
    let catalog = Arc::new(Catalog::open(&config.state_dir)?);
    let master = crate::node::client(config).transpose()?;
    let install = Arc::new(crate::install::load_or_create(&config.state_dir)?);
    let config = Arc::new(config.clone());
    let cancel = crate::signals::cancel_on_interrupt("Interrupted: aborting the running upload.");

    let show_bar = !json && std::io::stderr().is_terminal();
    let mut reports = Vec::new();
    for site in sites {
        let progress = Arc::new(Progress::default());
        let bar = show_bar.then(|| progress_bar(&site.name, progress.clone()));
        // Standalone: the configured servers; node mode: a fresh lease.
        let servers = crate::node::BackupSource::for_site(&config, &catalog, &site).await;
        let job = BackupJob {
            config: config.clone(),
            site,
            catalog: catalog.clone(),
            source: servers.source.clone(),
            install: install.clone(),
            trigger: "manual",
            progress,
            cancel: cancel.clone(),
        };
        let report = job.run().await;
        servers.report(&catalog, master.as_ref(), &report).await;
        if let Some((bar, ticker)) = bar {
            ticker.abort();
            bar.finish_and_clear();
        }
        if !json {
            print_summary(&report);
        }
        reports.push(report);
        if cancel.is_cancelled() {
            break;
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "results": reports }))?
        );
    }
    if let Some(r) = reports.iter().find(|r| r.foreign_owner) {
        eprintln!(
            "error: {}",
            r.error
                .as_deref()
                .unwrap_or("the prefix belongs to another installation")
        );
        return Ok(crate::EXIT_CONFIG);
    }
    let failed = reports.iter().any(|r| r.outcome == RunOutcome::Failed);
    Ok(if failed { crate::EXIT_FAILED } else { 0 })
}

pub(super) fn select_sites(config: &Config, args: &BackupArgs) -> Result<Vec<crate::config::SiteConfig>, UsageError> {
    if args.all {
        if config.sites.is_empty() {
            return Err(UsageError("no [[sites]] are configured: nothing to back up".into()));
        }
        return Ok(config.sites.clone());
    }
    if args.sites.is_empty() {
        return Err(UsageError("name the sites to back up, or pass --all".into()));
    }
    args.sites
        .iter()
        .map(|name| {
            config
                .site(name)
                .cloned()
                .ok_or_else(|| UsageError::unknown_site(name, config))
        })
        .collect()
}

fn progress_bar(site: &str, progress: Arc<Progress>) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} read, {msg} uploaded ({bytes_per_sec}, ETA {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(site.to_string());
    let b = bar.clone();
    let ticker = tokio::spawn(async move {
        loop {
            b.set_length(progress.total.load(Ordering::Relaxed));
            b.set_position(progress.read.load(Ordering::Relaxed));
            b.set_message(indicatif::HumanBytes(progress.uploaded.load(Ordering::Relaxed)).to_string());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (bar, ticker)
}

fn print_summary(r: &BackupReport) {
    match (&r.archive, r.outcome) {
        (Some(a), outcome) => {
            println!(
                "{}: {} on {} key={} size={} sha256={} duration={:.1}s",
                r.site,
                if outcome == RunOutcome::Warning {
                    "stored with warnings"
                } else {
                    "stored"
                },
                a.server,
                a.key,
                super::mb(a.size_bytes),
                a.sha256,
                r.duration_secs
            );
            for w in &r.warnings {
                println!("  warning: {w}");
            }
        }
        (None, _) => {
            println!(
                "{}: FAILED after {:.1}s: {}",
                r.site,
                r.duration_secs,
                r.error.as_deref().unwrap_or("unknown error")
            );
            for a in &r.attempts {
                println!("  server {} ({}): {}: {}", a.server_id, a.endpoint, a.outcome, a.reason);
            }
        }
    }
}
