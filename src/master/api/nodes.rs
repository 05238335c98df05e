//! Super-admin endpoints for nodes and sites: quotas, last seen, and which
//! sites have missed their period.

use super::error::{ApiJson, ApiQuery, parse_path};
use super::{Admin, ApiError, AppState};
use crate::master::crypto::generate_token;
use crate::master::repo::{NodeRow, SiteRow};
use crate::master::{MasterError, gb_field, name_field};
use crate::protocol::{ForceQuery, Node, NodeCreate, NodeCreated, NodePatch, RunResult, Site, SitePatch, bytes_to_gb};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use uuid::Uuid;

/// Whole periods missed: the time since the last success (or the
/// registration), less a grace of half a period (at most an hour) for the
/// run in progress, in periods.
pub fn missed_periods(period_secs: u64, since: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let period = period_secs.max(1);
    let grace = (period / 2).min(3600);
    let elapsed = u64::try_from((now - since).num_seconds()).unwrap_or(0);
    elapsed.saturating_sub(grace) / period
}

pub(super) fn site_view(s: &SiteRow, now: DateTime<Utc>) -> Site {
    let missed = missed_periods(s.period_secs, s.last_success.unwrap_or(s.registered_at), now);
    Site {
        site_uuid: s.site_uuid,
        node_uuid: s.node_uuid,
        name: s.name.clone(),
        period_secs: s.period_secs,
        quota_gb: s.quota_bytes.map(bytes_to_gb),
        used_gb: bytes_to_gb(s.used_bytes),
        used_bytes: s.used_bytes,
        archive_count: s.archive_count,
        registered_at: s.registered_at,
        last_success: s.last_success,
        last_result: match (s.last_outcome, s.last_run_at) {
            (Some(outcome), Some(at)) => Some(RunResult {
                outcome,
                at,
                error: s.last_error.clone(),
            }),
            _ => None,
        },
        missed_periods: missed,
        missed: missed > 0,
    }
}

fn node_view(n: &NodeRow, sites: &[SiteRow], now: DateTime<Utc>) -> Node {
    let sites: Vec<Site> = sites
        .iter()
        .filter(|s| s.node_uuid == n.node_uuid)
        .map(|s| site_view(s, now))
        .collect();
    Node {
        node_uuid: n.node_uuid,
        name: n.name.clone(),
        quota_gb: n.quota_bytes.map(bytes_to_gb),
        used_gb: bytes_to_gb(n.used_bytes),
        used_bytes: n.used_bytes,
        archive_count: n.archive_count,
        created_at: n.created_at,
        last_seen: n.last_seen,
        version: n.version.clone(),
        free_space_bytes: n.free_space_bytes,
        sites_missed: sites.iter().filter(|s| s.missed).count() as u64,
        sites,
    }
}

fn uuid_of(field: &str, s: &str) -> Result<Uuid, ApiError> {
    parse_path(field, s)
}

#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/api/v1/nodes", tag = "nodes",
    responses((status = 200, body = Vec<Node>), (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn list(_: Admin, State(state): State<Arc<AppState>>) -> Result<Json<Vec<Node>>, ApiError> {
    let (nodes, sites) = state
        .db(|repo, _| Ok((repo.list_nodes()?, repo.list_sites(None)?)))
        .await?;
    let now = Utc::now();
    Ok(Json(nodes.iter().map(|n| node_view(n, &sites, now)).collect()))
}

#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/api/v1/nodes", tag = "nodes",
    request_body = NodeCreate,
    responses((status = 201, body = NodeCreated), (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn create(
    _: Admin,
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<NodeCreate>,
) -> Result<(StatusCode, Json<NodeCreated>), ApiError> {
    let name = name_field("name", &body.name)?;
    let quota = body.quota_gb.map(|q| gb_field("quota_gb", q)).transpose()?;
    let token = generate_token()?;
    let t = token.clone();
    let node = state.db(move |repo, _| repo.create_node(&name, quota, &t)).await?;
    tracing::info!(node = %node.node_uuid, name = %node.name, "Node created.");
    Ok((
        StatusCode::CREATED,
        Json(NodeCreated {
            node: node_view(&node, &[], Utc::now()),
            token,
        }),
    ))
}

#[cfg_attr(feature = "openapi", utoipa::path(patch, path = "/api/v1/nodes/{uuid}", tag = "nodes",
    params(("uuid" = Uuid, Path)), request_body = NodePatch,
    responses((status = 200, body = Node), (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn update(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(uuid): Path<String>,
    ApiJson(body): ApiJson<NodePatch>,
) -> Result<Json<Node>, ApiError> {
    let node = uuid_of("uuid", &uuid)?;
    let name = body.name.as_deref().map(|n| name_field("name", n)).transpose()?;
    let quota = body
        .quota_gb
        .map(|q| q.map(|gb| gb_field("quota_gb", gb)).transpose())
        .transpose()?;
    let (row, sites) = state
        .db(move |repo, _| {
            let row = repo.update_node(node, name.as_deref(), quota)?;
            Ok((row, repo.list_sites(Some(node))?))
        })
        .await?;
    tracing::info!(node = %node, "Node changed.");
    Ok(Json(node_view(&row, &sites, Utc::now())))
}

#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/api/v1/nodes/{uuid}", tag = "nodes",
    params(("uuid" = Uuid, Path), ForceQuery),
    responses((status = 204), (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn remove(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(uuid): Path<String>,
    ApiQuery(q): ApiQuery<ForceQuery>,
) -> Result<StatusCode, ApiError> {
    let node = uuid_of("uuid", &uuid)?;
    let forgotten = state.db(move |repo, _| repo.delete_node(node, q.force)).await?;
    tracing::info!(node = %node, archives_forgotten = forgotten, "Node deleted.");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg_attr(feature = "openapi", utoipa::path(patch, path = "/api/v1/sites/{uuid}", tag = "nodes",
    params(("uuid" = Uuid, Path)), request_body = SitePatch,
    responses((status = 200, body = Site), (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn update_site(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(uuid): Path<String>,
    ApiJson(body): ApiJson<SitePatch>,
) -> Result<Json<Site>, ApiError> {
    let site = uuid_of("uuid", &uuid)?;
    let quota = body
        .quota_gb
        .map(|q| q.map(|gb| gb_field("quota_gb", gb)).transpose())
        .transpose()?;
    let row = state
        .db(move |repo, _| repo.update_site_quota(site, quota))
        .await
        .map_err(|e| match e.body.error {
            crate::protocol::ErrorCode::NotFound => ApiError::from(MasterError::NotFound(format!("no site {site}"))),
            _ => e,
        })?;
    tracing::info!(site = %site, "Site changed.");
    Ok(Json(site_view(&row, Utc::now())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn a_site_on_time_or_running_has_missed_nothing() {
        let now = Utc::now();
        let day = 86_400;
        assert_eq!(missed_periods(day, now - Duration::hours(3), now), 0);
        // Its next run is due and running: within the grace.
        assert_eq!(
            missed_periods(day, now - Duration::hours(24) - Duration::minutes(30), now),
            0
        );
        assert_eq!(missed_periods(day, now - Duration::hours(26), now), 1);
        assert_eq!(
            missed_periods(day, now - Duration::days(3) - Duration::hours(2), now),
            3
        );
        assert_eq!(missed_periods(60, now - Duration::seconds(95), now), 1);
        // A clock going backwards misses nothing.
        assert_eq!(missed_periods(day, now + Duration::hours(1), now), 0);
    }
}
