//! `reconcile`: make the catalog agree with what each server really holds
//! under this host's prefix, and clean up what backups left behind.
//!
//! Three steps, so that `--dry-run` shows exactly what would happen:
//! [`gather`] only reads (the listing, open multipart uploads, and the
//! checksum file and metadata of objects the catalog does not know);
//! [`plan_server`] is pure (data in, [`ServerPlan`] out); [`apply`] changes
//! the catalog and the bucket.
//!
//! The plan, per server:
//! - archives (`….tar.zst`) not complete in the catalog are **imported** as
//!   `complete` rows, with the listed size, the SHA-256 from the `.sha256`
//!   sidecar (left empty when there is none) and the site and creation time
//!   from the object metadata, else from the key; a `missing`, `failed`,
//!   `deleted` or interrupted `uploading` row for the key is reused;
//! - `complete` rows whose object is gone are marked **missing**;
//! - `complete` rows whose size differs from the listing get the listed size;
//! - open multipart uploads under the prefix are **aborted**, except those of
//!   a backup running now (its site lock is held). On a server that cannot
//!   list open uploads (`ListMultipartUploads` is optional, see
//!   [`crate::storage::Capabilities`]) the plan says so, and the uploads
//!   whose ids the catalog recorded for interrupted backups are aborted by
//!   id; everything else still happens;
//! - `uploading` rows of sites with no backup running are marked `failed`;
//! - sidecars whose archive is gone are **deleted**; other objects are
//!   reported and left alone.
//!
//! Usage is the sum of `complete` rows, so applying the plan recomputes it.
//! A server that cannot be listed gets no plan: its rows are never marked
//! missing because of a network error.

use crate::catalog::{ArchiveRow, ArchiveStatus, Catalog, CatalogError, ImportedArchive, UploadingRow};
use crate::layout::{ARCHIVE_SUFFIX, ArchiveKey, Owner, is_safe_name, site_of_key};
use crate::storage::with_retries;
use crate::storage::{self, ObjectInfo, ObjectStore, PendingUpload, StorageError, StorageResult, Target};
use chrono::DateTime;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Transient storage errors are retried this many times.
const RETRIES: u32 = 2;

/// What one server holds under the host prefix (read by [`gather`]).
#[derive(Debug, Clone, Default)]
pub struct ServerInventory {
    pub objects: Vec<ObjectInfo>,
    pub uploads: Vec<PendingUpload>,
    /// The server does not implement ListMultipartUploads: `uploads` is
    /// empty because nobody could ask.
    pub uploads_not_listable: bool,
    /// For archives the catalog does not know as complete: their sidecar
    /// checksum and metadata.
    pub details: BTreeMap<String, ObjectDetails>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectDetails {
    pub sha256: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Import {
    pub key: String,
    pub site: String,
    pub created_at: String,
    pub size_bytes: u64,
    pub sha256: Option<String>,
    /// A row for the key that is reused (made complete) instead of adding one.
    pub existing_id: Option<i64>,
    pub previous_status: Option<ArchiveStatus>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Missing {
    pub id: i64,
    pub key: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SizeFix {
    pub id: i64,
    pub key: String,
    pub catalog_bytes: u64,
    pub server_bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Upload {
    pub key: String,
    pub upload_id: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StaleRow {
    pub id: i64,
    pub site: String,
    pub key: String,
}

/// Whether the open multipart uploads of a server could be listed.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OpenUploads {
    #[default]
    Listed,
    /// The server does not implement ListMultipartUploads: only the
    /// uploads the catalog recorded are known (and aborted by id).
    NotListable,
}

/// What reconcile would change on one server.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ServerPlan {
    pub imports: Vec<Import>,
    pub missing: Vec<Missing>,
    pub size_mismatches: Vec<SizeFix>,
    pub aborts: Vec<Upload>,
    /// Uploads of backups running now: left alone.
    pub in_progress: Vec<Upload>,
    /// `uploading` rows of sites with no backup running: marked failed.
    pub stale_rows: Vec<StaleRow>,
    pub orphan_sidecars: Vec<String>,
    /// Objects under the prefix that are not archives: reported only.
    pub unrecognised: Vec<String>,
    /// Archives and uploads of another installation: left alone.
    pub foreign: Vec<String>,
    pub usage_before_bytes: u64,
    pub usage_after_bytes: u64,
    /// Whether `aborts` come from a listing of open uploads.
    pub open_uploads: OpenUploads,
}

impl ServerPlan {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.imports.is_empty()
            && self.missing.is_empty()
            && self.size_mismatches.is_empty()
            && self.aborts.is_empty()
            && self.stale_rows.is_empty()
            && self.orphan_sidecars.is_empty()
    }
}

/// Everything [`plan_server`] looks at for one server and prefix.
#[derive(Clone, Copy)]
pub struct PlanInput<'a> {
    /// The installation whose prefix was listed.
    pub owner: &'a Owner,
    pub inventory: &'a ServerInventory,
    /// Catalog rows on this server, any status.
    pub rows: &'a [ArchiveRow],
    /// `uploading` rows on this server with their upload ids.
    pub uploading: &'a [UploadingRow],
    /// Sites whose backup is running now (lock held).
    pub busy_sites: &'a BTreeSet<String>,
    /// May an object written by this install id (`None`: no id in its
    /// metadata) be imported? See [`crate::install::may_touch`].
    pub may_import: &'a dyn Fn(Option<&str>) -> bool,
    /// This installation owns the prefix (its marker, or `--adopt`): open
    /// uploads and sidecars this catalog does not know are its own too.
    /// Otherwise only the upload ids this catalog recorded are aborted.
    pub prefix_owned: bool,
}

impl std::fmt::Debug for PlanInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanInput")
            .field("owner", self.owner)
            .field("prefix_owned", &self.prefix_owned)
            .finish_non_exhaustive()
    }
}

/// Site and creation time of an object to import: metadata first, then key.
fn identity(owner: &Owner, key: &str, details: Option<&ObjectDetails>) -> Option<(String, String)> {
    let from_key =
        ArchiveKey::parse_under(owner, key).map(|k| (k.site().to_string(), crate::catalog::fmt_time(k.created_at())));
    let meta = details.map(|d| &d.metadata);
    let site = meta
        .and_then(|m| m.get("site"))
        .filter(|s| is_safe_name(s))
        .cloned()
        .or_else(|| from_key.as_ref().map(|(s, _)| s.clone()))?;
    let created_at = meta
        .and_then(|m| m.get("created-at"))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| crate::catalog::fmt_time(t.to_utc()))
        .or_else(|| from_key.map(|(_, t)| t))?;
    Some((site, created_at))
}

/// The plan for one server. Pure.
pub fn plan_server(input: PlanInput<'_>) -> ServerPlan {
    let PlanInput {
        owner,
        inventory,
        rows,
        uploading,
        busy_sites,
        may_import,
        prefix_owned,
    } = input;
    let marker = owner.marker_key();
    let mut plan = ServerPlan::default();
    let prefix = owner.prefix();
    let prefix = prefix.as_str();
    let listed: BTreeMap<&str, u64> = inventory
        .objects
        .iter()
        .filter(|o| o.key.starts_with(prefix))
        .map(|o| (o.key.as_str(), o.size))
        .collect();
    let mut rows_by_key: BTreeMap<&str, Vec<&ArchiveRow>> = BTreeMap::new();
    for row in rows {
        rows_by_key.entry(row.key.as_str()).or_default().push(row);
    }
    let busy = |site: &str| busy_sites.contains(site);
    let live_uploads: BTreeSet<&str> = uploading
        .iter()
        .filter(|u| busy(&u.site))
        .filter_map(|u| u.upload_id.as_deref())
        .collect();
    let recorded_uploads: BTreeSet<&str> = uploading.iter().filter_map(|u| u.upload_id.as_deref()).collect();

    plan.usage_before_bytes = rows
        .iter()
        .filter(|r| r.status == ArchiveStatus::Complete)
        .map(|r| r.size_bytes)
        .sum();

    for (&key, &size) in &listed {
        if key == marker {
            continue;
        }
        if let Some(archive) = storage::sidecar_owner(key) {
            if !listed.contains_key(archive) {
                if prefix_owned {
                    plan.orphan_sidecars.push(key.to_string());
                } else {
                    plan.unrecognised.push(key.to_string());
                }
            }
            continue;
        }
        if !key.ends_with(ARCHIVE_SUFFIX) {
            plan.unrecognised.push(key.to_string());
            continue;
        }
        let known = rows_by_key.get(key).map(Vec::as_slice).unwrap_or_default();
        if let Some(row) = known.iter().find(|r| r.status == ArchiveStatus::Complete) {
            if row.size_bytes != size {
                plan.size_mismatches.push(SizeFix {
                    id: row.id,
                    key: key.to_string(),
                    catalog_bytes: row.size_bytes,
                    server_bytes: size,
                });
            }
            continue;
        }
        if known
            .iter()
            .any(|r| r.status == ArchiveStatus::Uploading && busy(&r.site))
        {
            continue; // a running backup is about to mark it complete
        }
        let details = inventory.details.get(key);
        let writer = details.and_then(|d| d.metadata.get(crate::install::METADATA_KEY));
        if !may_import(writer.map(String::as_str)) {
            plan.foreign.push(key.to_string());
            continue;
        }
        let Some((site, created_at)) = identity(owner, key, details) else {
            plan.unrecognised.push(key.to_string());
            continue;
        };
        let reused = known.iter().max_by_key(|r| r.id);
        plan.imports.push(Import {
            key: key.to_string(),
            site,
            created_at,
            size_bytes: size,
            sha256: details.and_then(|d| d.sha256.clone()),
            existing_id: reused.map(|r| r.id),
            previous_status: reused.map(|r| r.status),
        });
    }

    for row in rows {
        if row.status == ArchiveStatus::Complete && !listed.contains_key(row.key.as_str()) {
            plan.missing.push(Missing {
                id: row.id,
                key: row.key.clone(),
                size_bytes: row.size_bytes,
            });
        }
    }
    let imported: BTreeSet<i64> = plan.imports.iter().filter_map(|i| i.existing_id).collect();
    for u in uploading {
        if !busy(&u.site) && !imported.contains(&u.id) {
            plan.stale_rows.push(StaleRow {
                id: u.id,
                site: u.site.clone(),
                key: u.key.clone(),
            });
        }
    }
    if inventory.uploads_not_listable {
        // Nobody can list them: abort the ones this catalog recorded for
        // interrupted backups, by id (an upload already gone is fine).
        plan.open_uploads = OpenUploads::NotListable;
        for u in uploading {
            if let Some(id) = &u.upload_id
                && !busy(&u.site)
                && !imported.contains(&u.id)
                && u.key.starts_with(prefix)
            {
                plan.aborts.push(Upload {
                    key: u.key.clone(),
                    upload_id: id.clone(),
                });
            }
        }
    }
    for u in inventory.uploads.iter().filter(|u| u.key.starts_with(prefix)) {
        let upload = Upload {
            key: u.key.clone(),
            upload_id: u.upload_id.clone(),
        };
        if live_uploads.contains(u.upload_id.as_str()) {
            plan.in_progress.push(upload);
        } else if prefix_owned || recorded_uploads.contains(u.upload_id.as_str()) {
            plan.aborts.push(upload);
        } else {
            plan.foreign.push(format!("{} (open upload {})", u.key, u.upload_id));
        }
    }

    let gained: u64 = plan.imports.iter().map(|i| i.size_bytes).sum();
    let lost: u64 = plan.missing.iter().map(|m| m.size_bytes).sum();
    let resized: i128 = plan
        .size_mismatches
        .iter()
        .map(|s| i128::from(s.server_bytes) - i128::from(s.catalog_bytes))
        .sum();
    let after = i128::from(plan.usage_before_bytes) + i128::from(gained) - i128::from(lost) + resized;
    plan.usage_after_bytes = u64::try_from(after.max(0)).unwrap_or(u64::MAX);
    plan
}

/// Read what [`plan_server`] needs from one server: the listing under
/// `prefix`, open uploads, and for archives without a `complete` row their
/// sidecar checksum and metadata. Changes nothing.
pub async fn gather(store: &dyn ObjectStore, prefix: &str, rows: &[ArchiveRow]) -> StorageResult<ServerInventory> {
    let objects = with_retries(RETRIES, || store.list(prefix)).await?;
    let (uploads, uploads_not_listable) = match with_retries(RETRIES, || store.list_multipart(prefix)).await {
        Ok(uploads) => (uploads, false),
        Err(StorageError::Unsupported { .. }) => (Vec::new(), true),
        Err(e) => return Err(e),
    };
    let complete: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.status == ArchiveStatus::Complete)
        .map(|r| r.key.as_str())
        .collect();
    let keys: BTreeSet<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    let mut details = BTreeMap::new();
    for key in keys
        .iter()
        .filter(|k| k.ends_with(ARCHIVE_SUFFIX) && !complete.contains(**k))
    {
        let metadata = with_retries(RETRIES, || store.head(key))
            .await?
            .map(|info| info.metadata)
            .unwrap_or_default();
        let sha256 = if keys.contains(storage::sidecar_key(key).as_str()) {
            with_retries(RETRIES, || storage::read_sidecar(store, key)).await?
        } else {
            None
        };
        details.insert(key.to_string(), ObjectDetails { sha256, metadata });
    }
    Ok(ServerInventory {
        objects,
        uploads,
        uploads_not_listable,
        details,
    })
}

/// What [`apply`] managed to do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    pub changes: usize,
    pub errors: Vec<String>,
    /// Usage of the server from the catalog after the changes.
    pub usage_bytes: u64,
}

/// Carry out one server's plan: catalog corrections first, then aborts and
/// sidecar deletions on the server. Every step is attempted; failures are
/// collected.
pub async fn apply(plan: &ServerPlan, server: &Target, store: &dyn ObjectStore, catalog: &Arc<Catalog>) -> ApplyReport {
    let mut report = ApplyReport::default();
    let cat = catalog.clone();
    let p = plan.clone();
    let (location, server_id) = (server.location.clone(), server.id);
    let catalog_result = tokio::task::spawn_blocking(move || {
        let mut changes = 0;
        let mut errors = Vec::new();
        let mut note = |what: String, r: Result<(), CatalogError>| match r {
            Ok(()) => changes += 1,
            Err(e) => errors.push(format!("{what}: {e}")),
        };
        for i in &p.imports {
            let r = match i.existing_id {
                Some(id) => cat.mark_present(id, i.size_bytes, i.sha256.as_deref()),
                None => cat
                    .import_archive(&ImportedArchive {
                        site: i.site.clone(),
                        server_id,
                        location: location.clone(),
                        key: i.key.clone(),
                        size_bytes: i.size_bytes,
                        sha256: i.sha256.clone(),
                        created_at: i.created_at.clone(),
                    })
                    .map(|_| ()),
            };
            note(format!("import {}", i.key), r);
        }
        for m in &p.missing {
            note(format!("mark {} missing", m.key), cat.mark_missing(m.id));
        }
        for s in &p.size_mismatches {
            note(
                format!("fix the size of {}", s.key),
                cat.update_size(s.id, s.server_bytes),
            );
        }
        for s in &p.stale_rows {
            let r = cat.mark_failed(
                s.id,
                "interrupted: no backup of the site was running (found by reconcile)",
            );
            note(format!("mark the interrupted upload of {} failed", s.key), r);
        }
        let usage = cat.usage(&location);
        (changes, errors, usage)
    })
    .await;
    match catalog_result {
        Ok((changes, errors, usage)) => {
            report.changes += changes;
            report.errors.extend(errors);
            match usage {
                Ok(u) => report.usage_bytes = u,
                Err(e) => report.errors.push(format!("usage: {e}")),
            }
        }
        Err(e) => report.errors.push(format!("catalog update: {e}")),
    }
    let state_dir = catalog.path().parent().map(std::path::Path::to_path_buf);
    for u in &plan.aborts {
        // A backup of this site may have started since the plan was made:
        // hold its lock while aborting, and leave the upload alone if busy.
        let site = site_of_key(&u.key);
        let _lock = match (&state_dir, site.as_deref()) {
            (Some(dir), Some(site)) => match crate::lock::SiteLock::try_acquire(dir, site) {
                Ok(lock) => Some(lock),
                Err(_) => {
                    tracing::info!(key = %u.key, "A backup of this site is running; its upload is left alone.");
                    continue;
                }
            },
            _ => None,
        };
        match with_retries(RETRIES, || store.abort_multipart(&u.key, &u.upload_id)).await {
            Ok(()) => report.changes += 1,
            Err(e) => report.errors.push(format!("abort the upload of {}: {e}", u.key)),
        }
    }
    for key in &plan.orphan_sidecars {
        match with_retries(RETRIES, || store.delete(key)).await {
            Ok(()) => report.changes += 1,
            Err(e) => report.errors.push(format!("delete {key}: {e}")),
        }
    }
    report
}

#[cfg(test)]
mod tests;
