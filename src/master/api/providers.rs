//! Super-admin endpoints for storage providers (seed 001) and
//! reconciliation. Responses never carry the secret key; the access key is
//! masked.

use super::error::{ApiJson, ApiQuery, parse_path};
use super::{Admin, ApiError, AppState};
use crate::config::Endpoint;
use crate::master::crypto::{Vault, mask};
use crate::master::repo::{NewProvider, ProviderRow, ProviderUpdate};
use crate::master::{MasterError, MasterResult, gb_field, name_field, server_config};
use crate::protocol::{
    ForceQuery, Provider, ProviderCreate, ProviderKind, ProviderPatch, ProviderTestReport, ReconcileQuery,
    ReconcileReport, SecretString, bytes_to_gb,
};
use crate::storage::Target;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::sync::Arc;

/// Default region when a provider names none.
const DEFAULT_REGION: &str = "us-east-1";
/// Default soft limit, as for `S3_SERVER_N_STORAGE_LIMIT_GB`.
const DEFAULT_LIMIT_GB: f64 = 100.0;
/// The prefix the live check lists under.
const CHECK_PREFIX: &str = "sitebackup-master-check/";

/// A provider as the admin sees it.
pub(super) fn view(row: &ProviderRow, vault: &Vault) -> MasterResult<Provider> {
    Ok(Provider {
        id: row.id,
        name: row.name.clone(),
        kind: ProviderKind::S3,
        endpoint: row.endpoint.clone(),
        bucket: row.bucket.clone(),
        region: row.region.clone(),
        path_style: row.path_style,
        access_key: mask(vault.open_secret(&row.access_key_enc)?.expose()),
        storage_limit_gb: bytes_to_gb(row.storage_limit_bytes),
        used_gb: bytes_to_gb(row.used_bytes),
        storage_limit_bytes: row.storage_limit_bytes,
        used_bytes: row.used_bytes,
        archive_count: row.archive_count,
        is_default: row.is_default,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn endpoint_field(value: &str) -> MasterResult<(String, Endpoint)> {
    let endpoint = Endpoint::parse(value).map_err(|m| MasterError::invalid("endpoint", m))?;
    Ok((value.trim().trim_end_matches('/').to_string(), endpoint))
}

/// A bucket, region or key: 1 to `max` printable characters, no spaces.
fn token_field(field: &str, value: &str, max: usize) -> MasterResult<String> {
    let ok = !value.is_empty() && value.len() <= max && value.chars().all(|c| c.is_ascii_graphic());
    if !ok {
        return Err(MasterError::invalid(
            field,
            format!("must be 1 to {max} printable characters without spaces"),
        ));
    }
    Ok(value.to_string())
}

fn bucket_field(value: &str) -> MasterResult<String> {
    let b = token_field("bucket", value, 255)?;
    if b.contains('/') {
        return Err(MasterError::invalid("bucket", "a bucket name has no '/'"));
    }
    Ok(b)
}

fn secret_field(field: &str, value: &SecretString) -> MasterResult<SecretString> {
    token_field(field, value.expose(), 1024).map(SecretString::new)
}

fn validate_create(body: ProviderCreate) -> MasterResult<NewProvider> {
    let (endpoint, parsed) = endpoint_field(&body.endpoint)?;
    Ok(NewProvider {
        name: name_field("name", &body.name)?,
        endpoint,
        bucket: bucket_field(&body.bucket)?,
        region: token_field("region", body.region.as_deref().unwrap_or(DEFAULT_REGION), 64)?,
        path_style: body.path_style.unwrap_or(!parsed.is_aws()),
        access_key: secret_field("access_key", &body.access_key)?,
        secret_key: secret_field("secret_key", &body.secret_key)?,
        storage_limit_bytes: gb_field("storage_limit_gb", body.storage_limit_gb.unwrap_or(DEFAULT_LIMIT_GB))?,
        is_default: body.is_default,
    })
}

fn validate_patch(body: ProviderPatch) -> MasterResult<ProviderUpdate> {
    Ok(ProviderUpdate {
        name: body.name.as_deref().map(|n| name_field("name", n)).transpose()?,
        endpoint: body
            .endpoint
            .as_deref()
            .map(|e| endpoint_field(e).map(|(s, _)| s))
            .transpose()?,
        bucket: body.bucket.as_deref().map(bucket_field).transpose()?,
        region: body
            .region
            .as_deref()
            .map(|r| token_field("region", r, 64))
            .transpose()?,
        path_style: body.path_style,
        access_key: body
            .access_key
            .as_ref()
            .map(|k| secret_field("access_key", k))
            .transpose()?,
        secret_key: body
            .secret_key
            .as_ref()
            .map(|k| secret_field("secret_key", k))
            .transpose()?,
        storage_limit_bytes: body
            .storage_limit_gb
            .map(|g| gb_field("storage_limit_gb", g))
            .transpose()?,
        is_default: body.is_default,
    })
}

fn id_of(id: &str) -> Result<i64, ApiError> {
    parse_path("id", id)
}

#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/api/v1/storage/providers", tag = "providers",
    request_body = ProviderCreate,
    responses((status = 201, body = Provider), (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn create(
    _: Admin,
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<ProviderCreate>,
) -> Result<(StatusCode, Json<Provider>), ApiError> {
    let new = validate_create(body)?;
    let provider = state
        .db(move |repo, vault| view(&repo.insert_provider(&new, vault)?, vault))
        .await?;
    tracing::info!(provider = provider.id, name = %provider.name, "Provider created.");
    Ok((StatusCode::CREATED, Json(provider)))
}

#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/api/v1/storage/providers", tag = "providers",
    responses((status = 200, body = Vec<Provider>), (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn list(_: Admin, State(state): State<Arc<AppState>>) -> Result<Json<Vec<Provider>>, ApiError> {
    let mut rows = state
        .db(|repo, vault| {
            repo.list_providers()?
                .iter()
                .map(|r| view(r, vault))
                .collect::<MasterResult<Vec<_>>>()
        })
        .await?;
    rows.sort_by_key(|p| p.id);
    Ok(Json(rows))
}

#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/api/v1/storage/providers/{id}", tag = "providers",
    params(("id" = i64, Path)),
    responses((status = 200, body = Provider), (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn get_one(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Provider>, ApiError> {
    let id = id_of(&id)?;
    state
        .db(move |repo, vault| match repo.get_provider(id)? {
            Some(row) => view(&row, vault),
            None => Err(MasterError::NotFound(format!("no provider {id}"))),
        })
        .await
        .map(Json)
}

#[cfg_attr(feature = "openapi", utoipa::path(patch, path = "/api/v1/storage/providers/{id}", tag = "providers",
    params(("id" = i64, Path)), request_body = ProviderPatch,
    responses((status = 200, body = Provider), (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn update(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProviderPatch>,
) -> Result<Json<Provider>, ApiError> {
    let id = id_of(&id)?;
    let update = validate_patch(body)?;
    let provider = state
        .db(move |repo, vault| view(&repo.update_provider(id, &update, vault)?, vault))
        .await?;
    tracing::info!(provider = id, is_default = provider.is_default, "Provider changed.");
    Ok(Json(provider))
}

#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/api/v1/storage/providers/{id}", tag = "providers",
    params(("id" = i64, Path), ForceQuery),
    responses((status = 204), (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn remove(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ForceQuery>,
) -> Result<StatusCode, ApiError> {
    let id = id_of(&id)?;
    let forgotten = state.db(move |repo, _| repo.delete_provider(id, q.force)).await?;
    tracing::info!(provider = id, archives_forgotten = forgotten, "Provider deleted.");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/api/v1/storage/providers/{id}/test", tag = "providers",
    params(("id" = i64, Path)),
    responses((status = 200, body = ProviderTestReport), (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn test(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<ProviderTestReport>, ApiError> {
    let id = id_of(&id)?;
    let (row, server) = state
        .db(move |repo, vault| {
            let row = repo
                .get_provider(id)?
                .ok_or_else(|| MasterError::NotFound(format!("no provider {id}")))?;
            let server = server_config(&row, vault)?;
            Ok((row, server))
        })
        .await?;
    let target = Target::from_config(&server, &state.network, row.used_bytes);
    let result = match target.store() {
        Ok(store) => store.check(CHECK_PREFIX).await,
        Err(e) => Err(e),
    };
    let (ok, status, error) = match result {
        Ok(()) => (true, "ok".to_string(), None),
        Err(e) => (false, e.kind().to_string(), Some(e.to_string())),
    };
    tracing::info!(provider = id, ok, status = %status, "Provider checked.");
    Ok(Json(ProviderTestReport {
        id,
        name: row.name,
        endpoint: row.endpoint,
        bucket: row.bucket,
        ok,
        status,
        error,
        used_bytes: row.used_bytes,
        storage_limit_bytes: row.storage_limit_bytes,
    }))
}

#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/api/v1/storage/reconcile", tag = "providers",
    params(ReconcileQuery),
    responses((status = 200, body = ReconcileReport), (status = "4XX", body = crate::protocol::ErrorBody)),
    security(("bearer" = []))))]
pub async fn reconcile(
    _: Admin,
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<ReconcileQuery>,
) -> Result<Json<ReconcileReport>, ApiError> {
    let stale_after = match q.stale_upload_secs {
        Some(s) => std::time::Duration::from_secs(s),
        None => state.stale_upload_after,
    };
    crate::master::reconcile::run(&state, q.dry_run, stale_after)
        .await
        .map(Json)
        .map_err(ApiError::from)
}
