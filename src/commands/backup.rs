//! `backup [SITE...] [--all]`: run [`BackupJob`]s now, one site at a time.

use super::UsageError;
use crate::catalog::Catalog;
use crate::catalog::{AttemptOutcome, RunOutcome};
use crate::cli::BackupArgs;
use crate::config::Config;
use crate::pipeline::{BackupJob, BackupReport, Progress};
use std::sync::Arc;

pub async fn run(config: &Config, args: &BackupArgs, json: bool, show_bar: bool) -> anyhow::Result<u8> {
    let sites = select_sites(config, args)?;
    let catalog = Arc::new(Catalog::open(&config.state_dir)?);
    let master = crate::node::client(config).transpose()?;
    let install = Arc::new(crate::install::load_or_create(&config.state_dir)?);
    let config = Arc::new(config.clone());
    let cancel = crate::signals::cancel_on_interrupt("Interrupted: aborting the running upload.");

    let mut reports = Vec::new();
    for site in sites {
        let progress = Arc::new(Progress::default());
        let bar = show_bar.then(|| super::progress::backup_bar(&site.name, progress.clone()));
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
        if let Some(bar) = bar {
            bar.finish();
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
        super::print_json(&serde_json::json!({ "results": reports }));
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
    Ok(exit_code(&reports))
}

/// 1 when any site failed, else 3 when any was stored with warnings, else 0.
fn exit_code(reports: &[BackupReport]) -> u8 {
    if reports.iter().any(|r| r.outcome == RunOutcome::Failed) {
        crate::EXIT_FAILED
    } else if reports.iter().any(|r| r.outcome == RunOutcome::Warning) {
        crate::EXIT_WARNINGS
    } else {
        0
    }
}

fn select_sites(config: &Config, args: &BackupArgs) -> Result<Vec<crate::config::SiteConfig>, UsageError> {
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
            if let Some(failover) = failover(r, a.server_id) {
                println!("  {failover}");
            }
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

/// `stored on server 2 after server 1 failed: <reason>` when the archive
/// is not on the first server tried.
fn failover(r: &BackupReport, stored_on: u32) -> Option<String> {
    let before: Vec<String> = r
        .attempts
        .iter()
        .filter(|a| a.outcome != AttemptOutcome::Succeeded)
        .map(|a| format!("server {} {}: {}", a.server_id, a.outcome, a.reason))
        .collect();
    (!before.is_empty()).then(|| format!("stored on server {stored_on} after {}", before.join("; ")))
}
