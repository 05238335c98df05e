//! Start-up recovery: what a previous process left behind when it stopped
//! in the middle of a backup (a crash, `kill -9`, a power cut).
//!
//! For every catalog row still `uploading`, under the site's lock (a CLI
//! backup running now keeps its own):
//! - when the row holds the archive's final size and checksum (written
//!   before the upload was completed) and the server has the object with
//!   that size and a sidecar with that checksum, the upload completed
//!   before the stop: the row is marked `complete`;
//! - otherwise the upload was truly partial: the multipart upload whose id
//!   this catalog recorded is aborted, a sidecar without its archive is
//!   removed, and the row is marked `failed`.
//!
//! Only upload ids this catalog recorded are aborted: another installation
//! writing under a shared prefix is never touched, and no listing of open
//! uploads is needed (some providers cannot list them). A whole object is
//! never deleted. Stale database spools of the sites, and the private
//! option files (with the database password) of dumps that were killed,
//! are removed.

use crate::catalog::{Catalog, UploadingRow};
use crate::config::Config;
use crate::lock::SiteLock;
use crate::storage::{self, ObjectStore, Purpose, Target};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Each request to a server during recovery gets this long.
const STEP: Duration = Duration::from_secs(20);

pub(super) async fn recover_after_crash(config: &Config, catalog: &Arc<Catalog>) {
    // In node mode this asks the master for a read lease; an unreachable
    // master leaves recovery to the next start or `reconcile`.
    let targets = crate::node::read_source(config, catalog)
        .servers(Purpose::Read)
        .await
        .unwrap_or_default();
    let mut held: BTreeMap<String, SiteLock> = BTreeMap::new();
    for site in &config.sites {
        if let Ok(l) = SiteLock::try_acquire(&config.state_dir, &site.name) {
            held.insert(site.name.clone(), l);
        }
    }
    for site in held.keys() {
        // A database dump spooled by a run that died (see database::dump).
        let spool = config.state_dir.join("spool").join(format!("{site}.sql"));
        if std::fs::remove_file(&spool).is_ok() {
            warn!(site = %site, "Removed a database dump left by an interrupted run.");
        }
        // And the private option file (it holds the database password) a
        // killed dump tool left next to it.
        if crate::database::remove_stale_client_dirs(&config.state_dir.join("spool"), site) > 0 {
            warn!(site = %site, "Removed a database client option file left by an interrupted run.");
        }
    }
    let cat = catalog.clone();
    let rows = match tokio::task::spawn_blocking(move || cat.uploading_rows()).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => return warn!("Could not read interrupted uploads from the catalog: {e}"),
        Err(e) => return warn!("Could not read interrupted uploads from the catalog: {e}"),
    };
    let mut touched = std::collections::BTreeSet::new();
    for row in rows {
        // Sites no longer configured: take their lock for the clean-up.
        let _extra = if held.contains_key(&row.site) {
            None
        } else {
            match SiteLock::try_acquire(&config.state_dir, &row.site) {
                Ok(l) => Some(l),
                Err(_) => continue, // a backup of that site is running now
            }
        };
        touched.insert(row.site.clone());
        let target = targets.iter().find(|t| t.location == row.location());
        let verdict = match target {
            Some(t) => settle(t, &row).await,
            None => Verdict::Failed("interrupted: its server is no longer configured".into()),
        };
        let cat = catalog.clone();
        let id = row.id;
        let result = match &verdict {
            Verdict::Complete => {
                let sha = row.sha256.clone().unwrap_or_default();
                let size = row.size_bytes;
                tokio::task::spawn_blocking(move || cat.mark_complete(id, size, &sha)).await
            }
            Verdict::Failed(why) => {
                let why = why.clone();
                tokio::task::spawn_blocking(move || cat.mark_failed(id, &why)).await
            }
        };
        match (result, verdict) {
            (Ok(Ok(())), Verdict::Complete) => info!(
                site = %row.site, key = %row.key,
                "An upload completed just before the previous stop: recorded it as complete."
            ),
            (Ok(Ok(())), Verdict::Failed(why)) => {
                warn!(site = %row.site, key = %row.key, "Marked an interrupted upload failed: {why}")
            }
            (Ok(Err(e)), _) => {
                warn!(site = %row.site, key = %row.key, "Could not update the interrupted upload's row: {e}")
            }
            (Err(e), _) => {
                warn!(site = %row.site, key = %row.key, "Could not update the interrupted upload's row: {e}")
            }
        }
    }
    for site in touched {
        let cat = catalog.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || cat.fail_stale_runs(&site)).await {
            warn!("Could not close interrupted runs in the catalog: {e}");
        }
    }
}

enum Verdict {
    Complete,
    Failed(String),
}

/// Decide one interrupted upload, cleaning up on the server when it was
/// partial.
async fn settle(target: &Target, row: &UploadingRow) -> Verdict {
    let store = match target.store() {
        Ok(s) => s,
        Err(e) => return Verdict::Failed(format!("interrupted; the server could not be checked: {e}")),
    };
    if let Some(sha) = &row.sha256
        && is_whole(store.as_ref(), &row.key, row.size_bytes, sha).await
    {
        return Verdict::Complete;
    }
    if let Some(upload_id) = &row.upload_id {
        match tokio::time::timeout(STEP, store.abort_multipart(&row.key, upload_id)).await {
            Ok(Ok(())) => info!(server = target.id, key = %row.key, "Aborted an upload left open by a previous stop."),
            Ok(Err(e)) => warn!(server = target.id, key = %row.key, "Could not abort a stale upload: {e}"),
            Err(_) => warn!(server = target.id, key = %row.key, "Aborting a stale upload timed out."),
        }
    }
    if let Ok(Ok(None)) = tokio::time::timeout(STEP, store.head(&row.key)).await {
        let _ = tokio::time::timeout(STEP, store.delete(&storage::sidecar_key(&row.key))).await;
    }
    Verdict::Failed("interrupted: the process stopped during the upload".into())
}

/// The object is there with the recorded size, and its sidecar holds the
/// recorded checksum.
async fn is_whole(store: &dyn ObjectStore, key: &str, size: u64, sha256: &str) -> bool {
    let head = tokio::time::timeout(STEP, store.head(key)).await;
    if !matches!(head, Ok(Ok(Some(ref info))) if info.size == size) {
        return false;
    }
    let sidecar = tokio::time::timeout(STEP, storage::read_sidecar(store, key)).await;
    matches!(sidecar, Ok(Ok(Some(ref s))) if s.eq_ignore_ascii_case(sha256))
}
