//! Node mode: the daemon and CLI of a web host whose storage
//! credentials come from a master, just in time.
//!
//! - **Sites get uuids.** Each configured site is registered by name with
//!   its schedule's period (at start-up, at each sync, and on demand before
//!   a site's first backup); the master's `site_uuid` is kept in the
//!   catalog. A renamed site is a new site.
//! - **Credentials in memory only.** A job's servers come from a lease
//!   ([`LeaseSource`]) asked for just before the first upload, with the
//!   archive estimate; it serves the job's failovers and is dropped when the
//!   job ends. Restore, verify, prune and reconcile lease for reading, which
//!   the master never refuses for quota. A lease is never written to the
//!   catalog, a spool, a log line or a hook's environment.
//! - **Keys** are `{node_uuid}/{site_uuid}/{site}_{YYYYMMDD_HHMMSS}.tar.zst`
//!   ([`crate::layout::ArchiveKey`]); install id, owner marker and sidecar
//!   work as in standalone mode, under the node prefix.
//! - **Reports are never lost.** Each stored archive and each retention
//!   deletion goes into the catalog's outbox first, and is delivered at
//!   once when the master answers, else at the next sync. The master counts
//!   reports by key, so a report delivered twice counts once.
//! - **Sync** ([`sync`]) every `sync_interval_secs` and on SIGHUP: deliver
//!   the outbox, register the sites, send the node's status.
//!
//! An unreachable master is retried with backoff for `[master]
//! retry_secs`; then the job fails with a clear message. There is no
//! silent fallback to other storage.

pub mod client;
mod lease;

pub use client::{MasterClient, MasterError};
pub use lease::LeaseSource;

use crate::catalog::{Catalog, OutboxKind, RunOutcome};
use crate::config::{Config, SiteConfig};
use crate::layout::{ArchiveKey, Placement};
use crate::pipeline::BackupReport;
use crate::protocol::{ArchiveReport, RunResult, SiteStatus, SyncRequest, SyncResponse};
use crate::retention::PruneResult;
use crate::storage::{ConfigSource, Purpose, ServerSource, SourceError, Target};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tracing::{info, warn};

/// Catalog `node_state` names.
pub const LAST_SYNC_OK: &str = "last_sync_ok";
pub const LAST_SYNC_ERROR: &str = "last_sync_error";

/// The master client of a node-mode config (`None` in standalone mode).
pub fn client(config: &Config) -> Option<Result<MasterClient, MasterError>> {
    config.node().map(MasterClient::new)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::catalog::CatalogError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The period of a site's schedule, in seconds, for its registration.
fn period_secs(config: &Config, site: &SiteConfig) -> u64 {
    site.schedule
        .period(Utc::now(), config.timezone)
        .and_then(|p| u64::try_from(p.num_seconds()).ok())
        .unwrap_or(86_400)
        .max(1)
}

/// Register `site` with the master and remember its uuid.
pub async fn register(
    config: &Config,
    catalog: &Arc<Catalog>,
    client: &MasterClient,
    site: &SiteConfig,
) -> Result<uuid::Uuid, MasterError> {
    let period = period_secs(config, site);
    let registered = client.with_retry(|| client.register_site(&site.name, period)).await?;
    let (cat, name, uuid) = (catalog.clone(), site.name.clone(), registered.site_uuid.to_string());
    if let Err(e) = blocking(move || cat.set_site_uuid(&name, &uuid)).await {
        warn!(site = %site.name, "Could not store the site's uuid in the catalog: {e}");
    }
    Ok(registered.site_uuid)
}

/// The site's uuid: from the catalog, else registered now.
pub async fn site_uuid(
    config: &Config,
    catalog: &Arc<Catalog>,
    client: &MasterClient,
    site: &SiteConfig,
) -> Result<uuid::Uuid, String> {
    let (cat, name) = (catalog.clone(), site.name.clone());
    if let Some(known) = blocking(move || cat.site_uuid(&name)).await?
        && let Ok(uuid) = known.parse()
    {
        return Ok(uuid);
    }
    register(config, catalog, client, site)
        .await
        .map_err(|e| format!("cannot register site {} with the master: {e}", site.name))
}

/// A source that only ever fails: a node job that could not even start
/// talking to the master. The run fails with the reason, and its
/// `on_error` hooks run.
struct Unavailable(String);

#[async_trait]
impl ServerSource for Unavailable {
    fn placement(&self) -> Option<Placement> {
        None
    }

    async fn servers(&self, _purpose: Purpose) -> Result<Vec<Target>, SourceError> {
        Err(SourceError::Master(self.0.clone()))
    }
}

/// Where a backup of `site` gets its servers.
pub struct BackupSource {
    pub source: Arc<dyn ServerSource>,
    lease: Option<(Arc<LeaseSource>, uuid::Uuid)>,
}

impl BackupSource {
    /// The configured servers (standalone) or a fresh lease (node mode).
    pub async fn for_site(config: &Config, catalog: &Arc<Catalog>, site: &SiteConfig) -> Self {
        let Some(client) = client(config) else {
            return Self {
                source: Arc::new(ConfigSource::new(config, Some(catalog.clone()))),
                lease: None,
            };
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => return Self::unavailable(e.to_string()),
        };
        match site_uuid(config, catalog, &client, site).await {
            Ok(uuid) => {
                let lease = Arc::new(LeaseSource::new(client, Some((&site.name, uuid)), config.network));
                Self {
                    source: lease.clone(),
                    lease: Some((lease, uuid)),
                }
            }
            Err(e) => Self::unavailable(e),
        }
    }

    fn unavailable(reason: String) -> Self {
        Self {
            source: Arc::new(Unavailable(reason)),
            lease: None,
        }
    }

    /// In node mode, report the stored archive to the master: through the
    /// outbox, so that a master away now gets it at the next sync.
    pub async fn report(&self, catalog: &Arc<Catalog>, client: Option<&MasterClient>, report: &BackupReport) {
        let (Some((lease, site_uuid)), Some(done)) = (&self.lease, &report.archive) else {
            return;
        };
        let Some(provider_id) = lease.provider_id(&done.location).await else {
            warn!(key = %done.key, "The stored archive's provider is not in the lease; the master's reconciliation will find it.");
            return;
        };
        let created_at = ArchiveKey::parse(&done.key).map_or_else(Utc::now, |k| k.created_at());
        let body = ArchiveReport {
            key: done.key.clone(),
            site_uuid: *site_uuid,
            provider_id,
            size_bytes: done.size_bytes,
            sha256: done.sha256.clone(),
            created_at,
        };
        queue(catalog, OutboxKind::Stored, &done.key, &body).await;
        if let Some(client) = client {
            deliver_outbox(catalog, client).await;
        }
    }
}

/// The servers for restore, verify, prune and reconcile: the configured
/// ones, or a read lease (never refused for quota) over the node prefix.
pub fn read_source(config: &Config, catalog: &Arc<Catalog>) -> Arc<dyn ServerSource> {
    match client(config) {
        None => Arc::new(ConfigSource::new(config, Some(catalog.clone()))),
        Some(Ok(client)) => Arc::new(LeaseSource::new(client, None, config.network)),
        Some(Err(e)) => Arc::new(Unavailable(e.to_string())),
    }
}

async fn queue<T: serde::Serialize>(catalog: &Arc<Catalog>, kind: OutboxKind, key: &str, body: &T) {
    let body = match serde_json::to_string(body) {
        Ok(b) => b,
        Err(e) => return warn!(key, "Could not encode the report for the master: {e}"),
    };
    let (cat, key_owned) = (catalog.clone(), key.to_string());
    if let Err(e) = blocking(move || cat.outbox_push(kind, &key_owned, &body)).await {
        warn!(key, "Could not queue the report for the master: {e}");
    }
}

/// In node mode, report retention's deletions to the master (outbox first).
pub async fn report_pruned(config: &Config, catalog: &Arc<Catalog>, results: &[PruneResult]) {
    let Some(Ok(client)) = client(config) else { return };
    let deleted: Vec<&PruneResult> = results.iter().filter(|r| r.deleted).collect();
    if deleted.is_empty() {
        return;
    }
    for r in deleted {
        queue(
            catalog,
            OutboxKind::Deleted,
            &r.key,
            &serde_json::json!({ "key": r.key }),
        )
        .await;
    }
    deliver_outbox(catalog, &client).await;
}

/// Deliver the waiting reports, oldest first, stopping at the first one
/// the master cannot take now. Returns (delivered, still waiting).
pub async fn deliver_outbox(catalog: &Arc<Catalog>, client: &MasterClient) -> (usize, usize) {
    let cat = catalog.clone();
    let waiting = match blocking(move || cat.outbox()).await {
        Ok(w) => w,
        Err(e) => {
            warn!("Could not read the outbox: {e}");
            return (0, 0);
        }
    };
    let total = waiting.len();
    let mut delivered = 0;
    for entry in waiting {
        let result = match entry.kind {
            OutboxKind::Stored => match serde_json::from_str::<ArchiveReport>(&entry.body) {
                Ok(report) => client.report_stored(&report).await.map(|_| ()),
                Err(e) => {
                    warn!(key = %entry.key, "Dropping an unreadable report from the outbox: {e}");
                    Ok(())
                }
            },
            OutboxKind::Deleted => client.report_deleted(&entry.key).await.map(|_| ()),
        };
        let cat = catalog.clone();
        let id = entry.id;
        match result {
            Ok(()) => {
                let _ = blocking(move || cat.outbox_done(id)).await;
                delivered += 1;
            }
            Err(e) => {
                let msg = e.to_string();
                let _ = blocking(move || cat.outbox_failed(id, &msg)).await;
                if e.transient() || matches!(e, MasterError::Unauthorized) {
                    break; // the rest waits for the next sync
                }
                warn!(key = %entry.key, "The master refused a report; it stays in the outbox: {e}");
            }
        }
    }
    (delivered, total - delivered)
}

/// The node's status for the master.
async fn status(config: &Config, catalog: &Arc<Catalog>) -> SyncRequest {
    let mut sites = Vec::new();
    for site in &config.sites {
        let (cat, name) = (catalog.clone(), site.name.clone());
        let Ok(Some(uuid)) = blocking(move || cat.site_uuid(&name)).await else {
            continue;
        };
        let Ok(site_uuid) = uuid.parse() else { continue };
        let (cat, name) = (catalog.clone(), site.name.clone());
        let last = blocking(move || cat.last_run(&name)).await.ok().flatten();
        let (cat, name) = (catalog.clone(), site.name.clone());
        let success = blocking(move || cat.last_complete_at(&name)).await.ok().flatten();
        let time = |t: &str| DateTime::parse_from_rfc3339(t).ok().map(|t| t.to_utc());
        sites.push(SiteStatus {
            site_uuid,
            last_result: last.and_then(|(outcome, at, error)| {
                Some(RunResult {
                    outcome: match outcome {
                        RunOutcome::Failed => crate::protocol::RunOutcome::Failed,
                        _ => crate::protocol::RunOutcome::Success,
                    },
                    at: time(&at)?,
                    error: error.map(|e| e.chars().take(500).collect()),
                })
            }),
            last_success: success.as_deref().and_then(time),
        });
    }
    let free_space_bytes = rustix::fs::statvfs(&config.state_dir)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize));
    SyncRequest {
        version: env!("CARGO_PKG_VERSION").to_string(),
        sites,
        free_space_bytes,
    }
}

/// One sync: deliver the outbox, register the sites, send the status.
/// The time of the last success (or the error) is kept in the catalog.
pub async fn sync(config: &Config, catalog: &Arc<Catalog>, client: &MasterClient) -> Result<SyncResponse, MasterError> {
    let result = sync_once(config, catalog, client).await;
    let (cat, now) = (catalog.clone(), crate::catalog::now_rfc3339());
    let (name, value) = match &result {
        Ok(_) => (LAST_SYNC_OK, now),
        Err(e) => (LAST_SYNC_ERROR, format!("{now} {e}")),
    };
    let _ = blocking(move || cat.set_node_state(name, &value)).await;
    result
}

async fn sync_once(
    config: &Config,
    catalog: &Arc<Catalog>,
    client: &MasterClient,
) -> Result<SyncResponse, MasterError> {
    let (delivered, waiting) = deliver_outbox(catalog, client).await;
    if delivered > 0 || waiting > 0 {
        info!(delivered, waiting, "Outbox delivered to the master.");
    }
    for site in &config.sites {
        register(config, catalog, client, site).await?;
    }
    let status = status(config, catalog).await;
    client.sync(&status).await
}
