//! Reconciliation (`POST /api/v1/storage/reconcile`, and every
//! `reconcile_interval_secs` inside `serve`): list every provider under
//! every known node prefix, compare with the archive table, report the
//! drift, and, unless it is a dry run, correct the usage and abort stale
//! multipart uploads.
//!
//! [`plan`] is pure (listings, rows and `now` in; the report and the
//! changes out); [`run`] gathers the listings and applies. A provider whose
//! listing failed is reported and left as it is. Usage after a real run:
//! a provider's is the bytes listed under the node prefixes (what the
//! bucket really holds, sidecars and foreign objects included); a node's
//! and a site's are the sizes of their archives still present.

use super::api::AppState;
use super::repo::{ArchiveRow, ReconcileChanges};
use super::server_config;
use super::{MasterError, MasterResult};
use crate::layout::{OWNER_MARKER, sidecar_owner};
use crate::protocol::{DriftObject, ProviderReconcile, ReconcileReport, SizeMismatch, StaleUpload};
use crate::storage::{ObjectInfo, PendingUpload, Target, with_retries};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Multipart uploads open longer than this are stale by default: longer
/// than any upload of a healthy node (two days).
pub const DEFAULT_STALE_UPLOAD: Duration = Duration::from_secs(2 * 86_400);

/// What one provider's listing gave.
#[derive(Debug, Clone)]
pub struct Listing {
    pub provider_id: i64,
    pub name: String,
    pub used_before: u64,
    /// Objects and open uploads under the node prefixes, or why not.
    pub result: Result<(Vec<ObjectInfo>, Vec<PendingUpload>), String>,
}

/// Compare the listings with the archive rows (see the module doc).
pub fn plan(
    listings: &[Listing],
    rows: &[ArchiveRow],
    now: DateTime<Utc>,
    stale_after: Duration,
) -> (ReconcileReport, ReconcileChanges) {
    let mut report = ReconcileReport {
        dry_run: true,
        started_at: now,
        finished_at: now,
        providers: Vec::new(),
        unknown_objects: Vec::new(),
        missing_archives: Vec::new(),
        size_mismatches: Vec::new(),
        stale_uploads: Vec::new(),
    };
    let mut changes = ReconcileChanges::default();
    let stale_before = now - chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::days(2));
    for l in listings {
        let (objects, uploads) = match &l.result {
            Ok(r) => r,
            Err(e) => {
                report.providers.push(ProviderReconcile {
                    provider_id: l.provider_id,
                    name: l.name.clone(),
                    ok: false,
                    error: Some(e.clone()),
                    listed_objects: 0,
                    listed_bytes: 0,
                    used_bytes_before: l.used_before,
                    used_bytes_after: l.used_before,
                });
                continue;
            }
        };
        let listed: BTreeMap<&str, u64> = objects.iter().map(|o| (o.key.as_str(), o.size)).collect();
        let listed_bytes: u64 = objects.iter().map(|o| o.size).sum();
        let mine: Vec<&ArchiveRow> = rows.iter().filter(|r| r.provider_id == l.provider_id).collect();
        let known: BTreeSet<&str> = mine.iter().map(|r| r.key.as_str()).collect();
        for r in &mine {
            match listed.get(r.key.as_str()) {
                Some(&size) => {
                    if r.missing_at.is_some() {
                        changes.found.push(r.key.clone());
                    }
                    if size != r.size_bytes {
                        report.size_mismatches.push(SizeMismatch {
                            provider_id: l.provider_id,
                            key: r.key.clone(),
                            recorded_bytes: r.size_bytes,
                            listed_bytes: size,
                        });
                        changes.sizes.insert(r.key.clone(), size);
                    }
                }
                None => {
                    report.missing_archives.push(DriftObject {
                        provider_id: l.provider_id,
                        key: r.key.clone(),
                        size_bytes: r.size_bytes,
                    });
                    if r.missing_at.is_none() {
                        changes.missing.push(r.key.clone());
                    }
                }
            }
        }
        for o in objects {
            let ours = known.contains(o.key.as_str())
                || o.key.ends_with(OWNER_MARKER)
                || sidecar_owner(&o.key).is_some_and(|k| known.contains(k) || listed.contains_key(k));
            if !ours {
                report.unknown_objects.push(DriftObject {
                    provider_id: l.provider_id,
                    key: o.key.clone(),
                    size_bytes: o.size,
                });
            }
        }
        for u in uploads {
            if u.initiated.is_some_and(|t| t <= stale_before) {
                report.stale_uploads.push(StaleUpload {
                    provider_id: l.provider_id,
                    key: u.key.clone(),
                    upload_id: u.upload_id.clone(),
                    initiated: u.initiated,
                    aborted: false,
                });
            }
        }
        changes.provider_usage.insert(l.provider_id, listed_bytes);
        report.providers.push(ProviderReconcile {
            provider_id: l.provider_id,
            name: l.name.clone(),
            ok: true,
            error: None,
            listed_objects: objects.len() as u64,
            listed_bytes,
            used_bytes_before: l.used_before,
            used_bytes_after: listed_bytes,
        });
    }
    (report, changes)
}

/// List one provider under every node prefix.
async fn list_provider(target: &Target, prefixes: &[String]) -> Result<(Vec<ObjectInfo>, Vec<PendingUpload>), String> {
    let store = target.store().map_err(|e| e.to_string())?;
    let mut objects = Vec::new();
    let mut uploads = Vec::new();
    for prefix in prefixes {
        objects.extend(store.list(prefix).await.map_err(|e| e.to_string())?);
        match store.list_multipart(prefix).await {
            Ok(u) => uploads.extend(u),
            // Optional (see storage::Capabilities): the object listing
            // still counts; later prefixes ask no more.
            Err(crate::storage::StorageError::Unsupported { .. }) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok((objects, uploads))
}

/// Reconcile now (one run at a time).
pub async fn run(state: &AppState, dry_run: bool, stale_after: Duration) -> MasterResult<ReconcileReport> {
    let _one = state.reconcile_lock.lock().await;
    let started_at = Utc::now();
    let repo = state.repo.clone();
    let vault = state.vault.clone();
    let (providers, nodes, rows) = tokio::task::spawn_blocking(move || -> MasterResult<_> {
        let providers = repo.list_providers()?;
        let configs = providers
            .iter()
            .map(|p| server_config(p, &vault).map(|c| (p.clone(), c)))
            .collect::<MasterResult<Vec<_>>>()?;
        Ok((configs, repo.list_nodes()?, repo.list_archives()?))
    })
    .await
    .map_err(|e| MasterError::Setup(format!("reconcile task failed: {e}")))??;
    let prefixes: Vec<String> = nodes.iter().map(|n| format!("{}/", n.node_uuid)).collect();
    let mut listings = Vec::new();
    let mut targets = BTreeMap::new();
    for (row, config) in &providers {
        let target = Target::from_config(config, &state.network, row.used_bytes);
        let result = list_provider(&target, &prefixes).await;
        if let Err(e) = &result {
            tracing::warn!(provider = row.id, error = %e, "Reconcile could not list a provider.");
        }
        listings.push(Listing {
            provider_id: row.id,
            name: row.name.clone(),
            used_before: row.used_bytes,
            result,
        });
        targets.insert(row.id, target);
    }
    let (mut report, changes) = plan(&listings, &rows, Utc::now(), stale_after);
    report.started_at = started_at;
    report.dry_run = dry_run;
    if !dry_run {
        for u in &mut report.stale_uploads {
            let Some(store) = targets.get(&u.provider_id).and_then(|t| t.store().ok()) else {
                continue;
            };
            match with_retries(3, || store.abort_multipart(&u.key, &u.upload_id)).await {
                Ok(()) => {
                    tracing::info!(provider = u.provider_id, key = %u.key, "Aborted a stale multipart upload.");
                    u.aborted = true;
                }
                Err(e) => {
                    tracing::warn!(provider = u.provider_id, key = %u.key, error = %e, "Could not abort a stale upload.")
                }
            }
        }
        let repo = state.repo.clone();
        tokio::task::spawn_blocking(move || repo.apply_reconcile(&changes))
            .await
            .map_err(|e| MasterError::Setup(format!("reconcile task failed: {e}")))??;
    }
    report.finished_at = Utc::now();
    tracing::info!(
        dry_run,
        unknown = report.unknown_objects.len(),
        missing = report.missing_archives.len(),
        size_mismatches = report.size_mismatches.len(),
        stale_uploads = report.stale_uploads.len(),
        "Reconciliation finished."
    );
    Ok(report)
}

#[cfg(test)]
mod tests;
