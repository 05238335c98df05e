//! Retention: a pure planner (archives + policy + `now` in, a
//! [`RetentionPlan`] out) and the step that applies a plan.
//!
//! Semantics follow restic's `forget`: `keep_last N` keeps the N newest;
//! `keep_hourly/daily/weekly/monthly/yearly N` keep the newest archive of
//! each of the N most recent hours/days/ISO weeks/months/years that have
//! one; `keep_within D` keeps everything newer than `now - D`. An archive
//! kept by any rule is kept. Only `complete` archives are considered.
//! Safety rules that no policy overrides: the newest `complete` archive is
//! always kept, and a policy with no rule at all keeps everything.

use crate::catalog::{ArchiveRow, ArchiveStatus};
pub use crate::config::{RetentionPolicy, parse_duration};
use crate::layout::ServerRef;
use crate::storage::{ServerSource, Target};
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlannedArchive {
    pub id: i64,
    pub site: String,
    pub server_id: i64,
    pub endpoint: String,
    pub bucket: String,
    pub key: String,
    pub created_at: String,
    pub size_bytes: u64,
    /// Why it is kept (the rules that selected it) or why it goes.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RetentionPlan {
    pub keep: Vec<PlannedArchive>,
    pub remove: Vec<PlannedArchive>,
}

fn planned(a: &ArchiveRow, reasons: Vec<String>) -> PlannedArchive {
    PlannedArchive {
        id: a.id,
        site: a.site.clone(),
        server_id: a.server_id,
        endpoint: a.endpoint.clone(),
        bucket: a.bucket.clone(),
        key: a.key.clone(),
        created_at: a.created_at.clone(),
        size_bytes: a.size_bytes,
        reasons,
    }
}

fn created(a: &ArchiveRow) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&a.created_at)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Plan retention for ONE site's archives.
pub fn plan_retention(archives: &[ArchiveRow], policy: &RetentionPolicy, now: DateTime<Utc>) -> RetentionPlan {
    let mut complete: Vec<(&ArchiveRow, DateTime<Utc>)> = archives
        .iter()
        .filter(|a| a.status == ArchiveStatus::Complete)
        .filter_map(|a| created(a).map(|t| (a, t)))
        .collect();
    // Newest first; id breaks ties deterministically.
    complete.sort_by(|x, y| y.1.cmp(&x.1).then(y.0.id.cmp(&x.0.id)));

    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); complete.len()];
    if policy.is_empty() {
        for r in &mut reasons {
            r.push("no retention policy: everything is kept".into());
        }
    }
    if let Some(first) = reasons.first_mut() {
        first.push("newest complete archive".into());
    }
    if let Some(n) = policy.keep_last {
        for (i, r) in reasons.iter_mut().enumerate().take(n as usize) {
            r.push(format!("keep_last {n} (#{})", i + 1));
        }
    }
    type Bucket = fn(DateTime<Utc>) -> String;
    let buckets: [(&str, Option<u32>, Bucket); 5] = [
        ("keep_hourly", policy.keep_hourly, |t| {
            format!("{}-{:02}-{:02} {:02}h", t.year(), t.month(), t.day(), t.hour())
        }),
        ("keep_daily", policy.keep_daily, |t| t.format("%Y-%m-%d").to_string()),
        ("keep_weekly", policy.keep_weekly, |t| {
            let w = t.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        }),
        ("keep_monthly", policy.keep_monthly, |t| t.format("%Y-%m").to_string()),
        ("keep_yearly", policy.keep_yearly, |t| t.format("%Y").to_string()),
    ];
    for (rule, n, bucket_of) in buckets {
        let Some(n) = n else { continue };
        let mut seen = BTreeSet::new();
        for (i, (_, t)) in complete.iter().enumerate() {
            if seen.len() >= n as usize {
                break;
            }
            let b = bucket_of(*t);
            if seen.insert(b.clone()) {
                reasons[i].push(format!("{rule} {n} ({b})"));
            }
        }
    }
    if let Some(d) = policy.keep_within {
        for (i, (_, t)) in complete.iter().enumerate() {
            if *t > now - d {
                reasons[i].push("keep_within".into());
            }
        }
    }

    let mut plan = RetentionPlan::default();
    for ((a, _), r) in complete.iter().zip(reasons) {
        if r.is_empty() {
            plan.remove
                .push(planned(a, vec!["not selected by any keep rule".into()]));
        } else {
            plan.keep.push(planned(a, r));
        }
    }
    plan
}

/// Plan (and unless `dry_run`, apply) retention for one site.
pub async fn prune_site(
    source: &dyn ServerSource,
    catalog: &std::sync::Arc<crate::catalog::Catalog>,
    site: &crate::config::SiteConfig,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<(RetentionPlan, Vec<PruneResult>), String> {
    let policy = site.retention.clone().unwrap_or_default();
    let cat = catalog.clone();
    let filter = crate::catalog::ListFilter {
        site: Some(site.name.clone()),
        ..Default::default()
    };
    let rows = tokio::task::spawn_blocking(move || cat.list(&filter))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let plan = plan_retention(&rows, &policy, now);
    let results = if dry_run {
        Vec::new()
    } else {
        apply_retention(source, catalog, &plan).await
    };
    Ok((plan, results))
}

/// What happened to one archive the plan removes.
#[derive(Debug, Clone, Serialize)]
pub struct PruneResult {
    pub id: i64,
    pub key: String,
    pub deleted: bool,
    pub error: Option<String>,
}

/// Apply a plan: delete each removed archive's object (and checksum
/// sidecar) from its server, then mark the row `deleted`. Usage is derived
/// from `complete` rows, so it drops at once. An archive whose server is no
/// longer configured is left alone, with an error.
pub async fn apply_retention(
    source: &dyn ServerSource,
    catalog: &std::sync::Arc<crate::catalog::Catalog>,
    plan: &RetentionPlan,
) -> Vec<PruneResult> {
    let mut out = Vec::new();
    for a in &plan.remove {
        let location = ServerRef::new(a.endpoint.clone(), a.bucket.clone());
        let result = match source.server_at(&location).await {
            Err(e) => Err(e.to_string()),
            Ok(None) => Err(format!(
                "server {} ({location}) is no longer configured; archive left in place",
                a.server_id
            )),
            Ok(Some(server)) => delete_archive(&server, &a.key).await,
        };
        let result = match result {
            Ok(()) => {
                let cat = catalog.clone();
                let id = a.id;
                match tokio::task::spawn_blocking(move || cat.mark_deleted(id)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e),
        };
        match &result {
            Ok(()) => tracing::info!(site = %a.site, key = %a.key, "Pruned archive."),
            Err(e) => tracing::warn!(site = %a.site, key = %a.key, "Could not prune archive: {e}"),
        }
        out.push(PruneResult {
            id: a.id,
            key: a.key.clone(),
            deleted: result.is_ok(),
            error: result.err(),
        });
    }
    out
}

async fn delete_archive(server: &Target, key: &str) -> Result<(), String> {
    use crate::storage::{self, StorageError};
    let store = server.store().map_err(|e| e.to_string())?;
    for k in [key.to_string(), storage::sidecar_key(key)] {
        match crate::storage::with_retries(3, || store.delete(&k)).await {
            Ok(()) | Err(StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
