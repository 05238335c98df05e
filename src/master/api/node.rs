//! The node endpoints: a node token, acting for its own node only.
//!
//! The lease is the hot path: one reader query for node, site and
//! providers, and decrypted keys from the vault's cache; no write (the
//! `last_seen` write is throttled and off the path).

use super::error::{ApiJson, ApiQuery};
use super::{ApiError, AppState, NodeCaller};
use crate::layout::{ArchiveKey, Placement, is_safe_name};
use crate::master::repo::{LeaseSnapshot, NewArchive};
use crate::master::{MasterError, MasterResult};
use crate::protocol::{
    ArchiveAck, ArchiveKeyQuery, ArchiveReport, LeaseProvider, LeasePurpose, LeaseRequest, LeaseResponse,
    QuotaExceeded, QuotaScope, SiteRegistered, SiteRegistration, SyncRequest, SyncResponse, SyncSite, bytes_to_gb,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use uuid::Uuid;

/// The longest period a site may register: a year.
const MAX_PERIOD_SECS: u64 = 366 * 86_400;
/// The most bytes an estimate may claim (1 EB).
const MAX_ESTIMATE: u64 = 1_000_000_000_000_000_000;

/// The quota figures of an upload lease: remaining bytes per quota, or the
/// quota it would exceed. Pure: the numbers in, the decision out.
pub fn plan_quota(
    snapshot: &LeaseSnapshot,
    purpose: LeasePurpose,
    estimate: u64,
) -> Result<(Option<u64>, Option<u64>), QuotaExceeded> {
    let site = snapshot.site.as_ref();
    let checks = [
        site.and_then(|s| s.quota_bytes.map(|q| (QuotaScope::Site, s.site_uuid, s.used_bytes, q))),
        snapshot
            .node
            .quota_bytes
            .map(|q| (QuotaScope::Node, snapshot.node.node_uuid, snapshot.node.used_bytes, q)),
    ];
    if purpose == LeasePurpose::Upload {
        for (scope, uuid, used, quota) in checks.iter().flatten().copied() {
            if used.saturating_add(estimate) > quota {
                return Err(QuotaExceeded {
                    scope,
                    uuid,
                    used_bytes: used,
                    quota_bytes: quota,
                    estimated_bytes: estimate,
                });
            }
        }
    }
    let remaining = |c: &Option<(QuotaScope, Uuid, u64, u64)>| c.map(|(_, _, used, q)| q.saturating_sub(used));
    Ok((remaining(&checks[0]), remaining(&checks[1])))
}

#[cfg_attr(feature = "openapi", utoipa::path(put, path = "/api/v1/node/sites/{name}", tag = "node",
    params(("name" = String, Path)), request_body = SiteRegistration,
    responses((status = 201, body = SiteRegistered), (status = 200, body = SiteRegistered),
        (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn register_site(
    caller: NodeCaller,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SiteRegistration>,
) -> Result<(StatusCode, Json<SiteRegistered>), ApiError> {
    if !is_safe_name(&name) || name.len() > 100 {
        return Err(ApiError::invalid("name", "a site name is 1 to 100 of [A-Za-z0-9._-]"));
    }
    if !(1..=MAX_PERIOD_SECS).contains(&body.period_secs) {
        return Err(ApiError::invalid(
            "period_secs",
            format!("must be between 1 and {MAX_PERIOD_SECS} seconds"),
        ));
    }
    let node = caller.node_uuid;
    let (site, created) = state
        .db(move |repo, _| repo.register_site(node, &name, body.period_secs))
        .await?;
    if created {
        tracing::info!(node = %node, site = %site.site_uuid, name = %site.name, "Site registered.");
    }
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((
        status,
        Json(SiteRegistered {
            site_uuid: site.site_uuid,
            node_uuid: site.node_uuid,
            name: site.name,
            period_secs: site.period_secs,
            quota_gb: site.quota_bytes.map(bytes_to_gb),
            created,
        }),
    ))
}

fn lease_of(
    snapshot: &LeaseSnapshot,
    req: &LeaseRequest,
    vault: &crate::master::crypto::Vault,
    expires_at: DateTime<Utc>,
) -> MasterResult<LeaseResponse> {
    let (site_left, node_left) = plan_quota(snapshot, req.purpose, req.estimated_bytes).map_err(MasterError::Quota)?;
    let providers = snapshot
        .providers
        .iter()
        .map(|p| {
            Ok(LeaseProvider {
                id: p.id,
                name: p.name.clone(),
                endpoint: p.endpoint.clone(),
                region: p.region.clone(),
                bucket: p.bucket.clone(),
                path_style: p.path_style,
                access_key: vault.open_secret(&p.access_key_enc)?,
                secret_key: vault.open_secret(&p.secret_key_enc)?,
                storage_limit_bytes: p.storage_limit_bytes,
                used_bytes: p.used_bytes,
                is_default: p.is_default,
            })
        })
        .collect::<MasterResult<Vec<_>>>()?;
    Ok(LeaseResponse {
        purpose: req.purpose,
        node_uuid: snapshot.node.node_uuid,
        site_uuid: req.site_uuid,
        prefix: format!("{}/", snapshot.node.node_uuid),
        expires_at,
        providers,
        site_quota_remaining_bytes: site_left,
        node_quota_remaining_bytes: node_left,
    })
}

#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/api/v1/node/leases", tag = "node",
    request_body = LeaseRequest,
    responses((status = 200, body = LeaseResponse),
        (status = 403, description = "quota_exceeded (details: QuotaExceeded) or another node's site",
            body = crate::protocol::ErrorBody),
        (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn lease(
    caller: NodeCaller,
    State(state): State<Arc<AppState>>,
    ApiJson(req): ApiJson<LeaseRequest>,
) -> Result<Json<LeaseResponse>, ApiError> {
    if req.purpose == LeasePurpose::Upload && req.site_uuid.is_none() {
        return Err(ApiError::invalid("site_uuid", "an upload lease needs the site_uuid"));
    }
    if req.estimated_bytes > MAX_ESTIMATE {
        return Err(ApiError::invalid("estimated_bytes", "is larger than any bucket"));
    }
    let node = caller.node_uuid;
    let ttl = chrono::Duration::from_std(state.lease_ttl).unwrap_or(chrono::Duration::seconds(60));
    let lease = state
        .db(move |repo, vault| {
            let snapshot = repo
                .lease_snapshot(node, req.site_uuid)?
                .ok_or_else(|| MasterError::Forbidden("this node was removed".into()))?;
            match (&snapshot.site, req.site_uuid) {
                (None, Some(site)) => return Err(MasterError::NotFound(format!("no site {site}"))),
                (Some(s), _) if s.node_uuid != node => {
                    return Err(MasterError::Forbidden(format!(
                        "site {} belongs to another node",
                        s.site_uuid
                    )));
                }
                _ => {}
            }
            lease_of(&snapshot, &req, vault, Utc::now() + ttl)
        })
        .await?;
    Ok(Json(lease))
}

/// The key must be a node-layout key under the caller's prefix and the
/// reported site.
fn check_key(node: Uuid, site: Uuid, key: &str) -> Result<(), ApiError> {
    let parsed = ArchiveKey::parse(key).filter(|_| key.len() <= 1024);
    let Some(Placement::Node { node_uuid, site_uuid }) = parsed.as_ref().map(|k| k.placement()) else {
        return Err(ApiError::invalid(
            "key",
            "not a node archive key {node_uuid}/{site_uuid}/{site}_{YYYYMMDD_HHMMSS}.tar.zst",
        ));
    };
    if Uuid::parse_str(node_uuid).ok() != Some(node) {
        return Err(ApiError::forbidden("the key is under another node's prefix"));
    }
    if Uuid::parse_str(site_uuid).ok() != Some(site) {
        return Err(ApiError::invalid("key", "the key is not under the reported site_uuid"));
    }
    Ok(())
}

#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/api/v1/node/archives", tag = "node",
    request_body = ArchiveReport,
    responses((status = 201, body = ArchiveAck), (status = 200, body = ArchiveAck),
        (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn archive_stored(
    caller: NodeCaller,
    State(state): State<Arc<AppState>>,
    ApiJson(report): ApiJson<ArchiveReport>,
) -> Result<(StatusCode, Json<ArchiveAck>), ApiError> {
    let node = caller.node_uuid;
    check_key(node, report.site_uuid, &report.key)?;
    if report.sha256.len() != 64 || !report.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid("sha256", "must be 64 hex digits"));
    }
    let new = NewArchive {
        key: report.key.clone(),
        provider_id: report.provider_id,
        node_uuid: node,
        site_uuid: report.site_uuid,
        size_bytes: report.size_bytes,
        sha256: report.sha256.to_ascii_lowercase(),
        created_at: report.created_at,
    };
    let changed = state.db(move |repo, _| repo.record_archive(&new)).await?;
    if changed {
        tracing::info!(node = %node, provider = report.provider_id, bytes = report.size_bytes, key = %report.key, "Archive recorded.");
    }
    let status = if changed { StatusCode::CREATED } else { StatusCode::OK };
    Ok((
        status,
        Json(ArchiveAck {
            key: report.key,
            changed,
        }),
    ))
}

#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/api/v1/node/archives", tag = "node",
    params(ArchiveKeyQuery),
    responses((status = 200, body = ArchiveAck), (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn archive_deleted(
    caller: NodeCaller,
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<ArchiveKeyQuery>,
) -> Result<Json<ArchiveAck>, ApiError> {
    let node = caller.node_uuid;
    if !q.key.starts_with(&format!("{node}/")) {
        return Err(ApiError::forbidden("the key is not under this node's prefix"));
    }
    let key = q.key.clone();
    let changed = state.db(move |repo, _| repo.delete_archive(node, &key)).await?;
    if changed {
        tracing::info!(node = %node, key = %q.key, "Archive deletion recorded.");
    }
    Ok(Json(ArchiveAck { key: q.key, changed }))
}

#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/api/v1/node/sync", tag = "node",
    request_body = SyncRequest,
    responses((status = 200, body = SyncResponse), (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn sync(
    caller: NodeCaller,
    State(state): State<Arc<AppState>>,
    ApiJson(mut req): ApiJson<SyncRequest>,
) -> Result<Json<SyncResponse>, ApiError> {
    let node = caller.node_uuid;
    if req.version.is_empty() || req.version.len() > 64 || req.version.chars().any(char::is_control) {
        return Err(ApiError::invalid("version", "must be 1 to 64 printable characters"));
    }
    if req.sites.len() > 10_000 {
        return Err(ApiError::invalid("sites", "too many sites"));
    }
    for s in &mut req.sites {
        if let Some(r) = &mut s.last_result
            && let Some(e) = &mut r.error
        {
            *e = e.chars().filter(|c| !c.is_control()).take(500).collect();
        }
    }
    let (unknown, row, sites) = state
        .db(move |repo, _| {
            let unknown = repo.record_sync(node, &req.version, req.free_space_bytes, &req.sites)?;
            let row = repo
                .get_node(node)?
                .ok_or_else(|| MasterError::Forbidden("this node was removed".into()))?;
            Ok((unknown, row, repo.list_sites(Some(node))?))
        })
        .await?;
    Ok(Json(SyncResponse {
        node_uuid: node,
        server_time: Utc::now(),
        node_quota_bytes: row.quota_bytes,
        node_used_bytes: row.used_bytes,
        sites: sites
            .into_iter()
            .map(|s| SyncSite {
                site_uuid: s.site_uuid,
                name: s.name,
                period_secs: s.period_secs,
                quota_bytes: s.quota_bytes,
                used_bytes: s.used_bytes,
                archive_count: s.archive_count,
            })
            .collect(),
        unknown_sites: unknown,
    }))
}
