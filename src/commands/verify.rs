//! `verify [ARCHIVE...|--all]`: download each archive, check its SHA-256
//! against every recorded checksum and read it through zstd and tar;
//! record the time and outcome in the catalog. Exit 1 on any failure.
//! Only a proven mismatch marks an archive `corrupt` (the next `prune`
//! removes it); a failed download leaves it `inconclusive`.

use super::progress::download_bar;
use super::restore::interrupt_token;
use crate::catalog::{Catalog, ListFilter, VerifyOutcome};
use crate::cli::VerifyArgs;
use crate::config::Config;
use crate::restore::{self, DownloadProgress, VerifyReport};
use std::sync::Arc;

pub async fn run(config: &Config, args: &VerifyArgs, json: bool, show_bar: bool) -> anyhow::Result<u8> {
    let catalog = Arc::new(Catalog::open(&config.state_dir)?);
    let source = crate::node::read_source(config, &catalog);
    let targets: Vec<String> = if args.all {
        let cat = catalog.clone();
        tokio::task::spawn_blocking(move || cat.list(&ListFilter::default()))
            .await??
            .into_iter()
            .filter(|r| r.status == crate::catalog::ArchiveStatus::Complete)
            .map(|r| r.id.to_string())
            .collect()
    } else if args.archives.is_empty() {
        return Err(super::UsageError(
            "name the archives to verify (catalog ids or object keys), or pass --all".into(),
        )
        .into());
    } else {
        args.archives.clone()
    };

    let cancel = interrupt_token();
    let mut reports = Vec::new();
    for archive in &targets {
        let report = match restore::locate(source.as_ref(), &catalog, archive).await {
            Err(e) => VerifyReport::failed(archive, e.to_string()),
            Ok(located) => {
                let progress = Arc::new(DownloadProgress::default());
                let bar = show_bar.then(|| download_bar(&located.key, progress.clone()));
                let report = restore::verify(archive, &located, config.restore.limits(), &progress, &cancel).await;
                if let Some(bar) = bar {
                    bar.finish();
                }
                report
            }
        };
        if cancel.is_cancelled() {
            reports.push(report);
            break;
        }
        if let Some(id) = report.id {
            let (cat, outcome, error) = (catalog.clone(), report.outcome, report.error.clone());
            let at = crate::catalog::now_rfc3339();
            tokio::task::spawn_blocking(move || cat.record_verification(id, &at, outcome, error.as_deref())).await??;
        }
        let error = report.error.as_deref().unwrap_or("?");
        match report.outcome {
            VerifyOutcome::Ok => tracing::info!(archive = %archive, "Archive verified."),
            VerifyOutcome::Corrupt => {
                tracing::error!(archive = %archive, "Archive is corrupt; the next prune removes it: {error}")
            }
            VerifyOutcome::Inconclusive => tracing::error!(
                archive = %archive,
                "Verification failed (inconclusive; the archive is not marked corrupt): {error}"
            ),
        }
        if !json {
            print_report(&report);
        }
        reports.push(report);
    }
    let failed = reports.iter().filter(|r| !r.ok).count();
    if json {
        super::print_json(&serde_json::json!({ "ok": failed == 0, "results": reports }));
    } else if targets.is_empty() {
        println!("No complete archives in the catalog.");
    } else {
        println!(
            "{} of {} archives verified{}",
            reports.len() - failed,
            targets.len(),
            if failed > 0 {
                let corrupt = reports.iter().filter(|r| r.outcome == VerifyOutcome::Corrupt).count();
                format!(", {failed} FAILED ({corrupt} corrupt)")
            } else {
                String::new()
            }
        );
    }
    Ok(if failed > 0 || cancel.is_cancelled() {
        crate::EXIT_FAILED
    } else {
        0
    })
}

fn print_report(r: &VerifyReport) {
    let id = r.id.map(|id| format!("#{id} ")).unwrap_or_default();
    let name = r.key.as_deref().unwrap_or(&r.requested);
    if r.ok {
        let against: Vec<&str> = r.checked_against.iter().map(|c| c.describe()).collect();
        let files = r.stats.as_ref().map_or(0, |s| s.files);
        println!(
            "OK      {id}{name}: {}, sha256 matches the {}, {files} files readable",
            super::mb(r.size_bytes.unwrap_or(0)),
            against.join(" and ")
        );
    } else if r.outcome == VerifyOutcome::Corrupt {
        println!(
            "CORRUPT {id}{name}: {} (marked corrupt: it fills no retention slot and the next prune removes it)",
            r.error.as_deref().unwrap_or("unknown error")
        );
    } else {
        println!(
            "FAILED  {id}{name}: {} (inconclusive: not marked corrupt)",
            r.error.as_deref().unwrap_or("unknown error")
        );
    }
    for w in &r.warnings {
        println!("  warning: {w}");
    }
}
