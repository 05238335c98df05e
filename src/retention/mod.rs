//! Retention: a pure planner (archives + policy + `now` in, a
//! [`RetentionPlan`] out) and the step that applies a plan.
//!
//! Only `complete` archives are considered, and each is taken in its
//! [`Condition`]:
//!
//! - **clean** archives go through the policy, which follows restic's
//!   `forget` exactly (restic 0.16 and later, including its rule that the
//!   oldest archive is kept while a count rule has counts left): see
//!   [`restic`] for the rules and the restic source they follow;
//! - **corrupt** archives (a `verify` read them to the end and found a
//!   checksum or format mismatch) fill no keep slot and are always removed,
//!   and reported as corrupt;
//! - **suspect** archives (the backup found the site empty, or much smaller
//!   than before) fill no keep slot, so they never push a clean archive
//!   out. One newer than the newest clean archive is kept (it may be the
//!   only copy of a real change); once a clean archive follows it, it goes.
//!   A site without a policy keeps them too.
//!
//! Whatever the policy, the newest clean archive is never removed (restic's
//! rules already guarantee that; the planner checks it again).

mod restic;

use crate::catalog::{ArchiveRow, ArchiveStatus, Condition};
pub use crate::config::{KeepWithin, RetentionPolicy, parse_keep_within};
use crate::install::{Installation, Ownership};
use crate::layout::ServerRef;
use crate::storage::{ServerSource, Target};
use chrono::{DateTime, Utc};
use serde::Serialize;

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
    /// `clean`, `suspect` or `corrupt`.
    pub condition: Condition,
    /// Why it is kept (the rules that selected it) or why it goes.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RetentionPlan {
    pub keep: Vec<PlannedArchive>,
    pub remove: Vec<PlannedArchive>,
}

impl RetentionPlan {
    /// Archives removed because a verify found them corrupt.
    pub fn corrupt(&self) -> impl Iterator<Item = &PlannedArchive> {
        self.remove.iter().filter(|a| a.condition == Condition::Corrupt)
    }
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
        condition: a.condition(),
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
    let mut stored: Vec<(&ArchiveRow, DateTime<Utc>)> = archives
        .iter()
        .filter(|a| a.status == ArchiveStatus::Complete)
        .filter_map(|a| created(a).map(|t| (a, t)))
        .collect();
    // Newest first; id breaks ties deterministically.
    stored.sort_by(|x, y| y.1.cmp(&x.1).then(y.0.id.cmp(&x.0.id)));

    let clean: Vec<DateTime<Utc>> = stored
        .iter()
        .filter(|(a, _)| a.condition() == Condition::Clean)
        .map(|(_, t)| *t)
        .collect();
    let newest_clean = stored
        .iter()
        .find(|(a, _)| a.condition() == Condition::Clean)
        .map(|(a, t)| (*t, a.id));
    let mut clean_reasons = restic::keep_reasons(&clean, policy, now).into_iter();

    let mut plan = RetentionPlan::default();
    for (a, t) in &stored {
        let (keep, reasons) = match a.condition() {
            Condition::Clean => {
                let mut r = clean_reasons.next().unwrap_or_default();
                if r.is_empty() && newest_clean == Some((*t, a.id)) {
                    r.push("newest clean archive".into());
                }
                if r.is_empty() {
                    (false, vec!["not selected by any keep rule".to_string()])
                } else {
                    (true, r)
                }
            }
            Condition::Corrupt => (
                false,
                vec![format!(
                    "corrupt: {}",
                    a.verify_error
                        .as_deref()
                        .unwrap_or("a verify found a checksum or format mismatch")
                )],
            ),
            Condition::Suspect => {
                let why = a
                    .suspect_reason
                    .as_deref()
                    .or(a.suspect.map(|c| c.as_str()))
                    .unwrap_or("?");
                match newest_clean {
                    _ if policy.is_empty() => (
                        true,
                        vec![format!("no retention policy: everything is kept (suspect: {why})")],
                    ),
                    Some((ct, cid)) if (*t, a.id) < (ct, cid) => (
                        false,
                        vec![format!(
                            "suspect ({why}) and older than the newest clean archive #{cid}: it fills no keep slot"
                        )],
                    ),
                    _ => (
                        true,
                        vec![format!(
                            "suspect ({why}): kept while newer than every clean archive; it fills no keep slot"
                        )],
                    ),
                }
            }
        };
        if keep {
            plan.keep.push(planned(a, reasons));
        } else {
            plan.remove.push(planned(a, reasons));
        }
    }
    plan
}

/// Plan (and unless `dry_run`, apply) retention for one site.
pub async fn prune_site(
    source: &dyn ServerSource,
    install: &Installation,
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
        apply_retention(source, install, catalog, &plan).await
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
    install: &Installation,
    catalog: &std::sync::Arc<crate::catalog::Catalog>,
    plan: &RetentionPlan,
) -> Vec<PruneResult> {
    let mut out = Vec::new();
    let cat = catalog.clone();
    let adopted = match tokio::task::spawn_blocking(move || cat.adopted_installs()).await {
        Ok(Ok(a)) => a,
        _ => Vec::new(),
    };
    for a in &plan.remove {
        let location = ServerRef::new(a.endpoint.clone(), a.bucket.clone());
        let result = match source.server_at(&location).await {
            Err(e) => Err(e.to_string()),
            Ok(None) => Err(format!(
                "server {} ({location}) is no longer configured; archive left in place",
                a.server_id
            )),
            Ok(Some(server)) => delete_archive(&server, &a.key, install, &adopted).await,
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
            Ok(()) if a.condition == Condition::Corrupt => tracing::warn!(
                site = %a.site, key = %a.key,
                "Pruned a corrupt archive: {}", a.reasons.join("; ")
            ),
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

/// Delete an archive and its sidecar, unless its metadata names another
/// installation (see [`crate::install`]): a catalog row never licenses
/// deleting what another host wrote.
async fn delete_archive(server: &Target, key: &str, install: &Installation, adopted: &[String]) -> Result<(), String> {
    use crate::storage::{self, StorageError};
    let store = server.store().map_err(|e| e.to_string())?;
    let head = crate::storage::with_retries(3, || store.head(key))
        .await
        .map_err(|e| e.to_string())?;
    let writer = head.as_ref().and_then(|h| h.metadata.get(crate::install::METADATA_KEY));
    if let Some(writer) = writer
        && !crate::install::may_touch(Some(writer), &Ownership::Ours, install, adopted)
    {
        return Err(format!(
            "{key} was written by another installation (install id {writer}); left in place"
        ));
    }
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
