//! Bodies of the node endpoints (a node token, for its own node).

#![allow(unexpected_cfgs)]

use super::SecretString;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Node endpoints (node token, for itself)

/// `PUT /api/v1/node/sites/{name}`: register (or update) a site of the
/// calling node. Idempotent: the same name gets the same `site_uuid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SiteRegistration {
    /// The period of the site's schedule, in seconds (at least 1).
    pub period_secs: u64,
}

/// Response of the registration (201 the first time, 200 after).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteRegistered {
    pub site_uuid: Uuid,
    pub node_uuid: Uuid,
    pub name: String,
    pub period_secs: u64,
    pub quota_gb: Option<f64>,
    /// `true` when this request created the site.
    pub created: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LeasePurpose {
    /// Write a new archive: refused with 403 `quota_exceeded` when the
    /// estimate would exceed the site's or the node's quota.
    Upload,
    /// Read, list or delete (restore, verify, prune, reconcile): never
    /// refused for quota.
    Read,
}

/// `POST /api/v1/node/leases`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// Required for `upload`; optional for `read` (a lease for the whole
    /// node prefix).
    #[serde(default)]
    pub site_uuid: Option<Uuid>,
    pub purpose: LeasePurpose,
    /// Expected archive size (upload); 0 for reads.
    #[serde(default)]
    pub estimated_bytes: u64,
}

/// The credentials lease: hold it in memory only, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseResponse {
    pub purpose: LeasePurpose,
    pub node_uuid: Uuid,
    pub site_uuid: Option<Uuid>,
    /// `{node_uuid}/`: every key the node writes starts with it.
    pub prefix: String,
    pub expires_at: DateTime<Utc>,
    /// In order of trial: the default provider first, then by id.
    pub providers: Vec<LeaseProvider>,
    /// Bytes left under the site's quota; null when it has none.
    pub site_quota_remaining_bytes: Option<u64>,
    /// Bytes left under the node's quota; null when it has none.
    pub node_quota_remaining_bytes: Option<u64>,
}

/// One provider of a lease, with its decrypted keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseProvider {
    pub id: i64,
    pub name: String,
    /// As in the node's `[[servers]] endpoint`: a host name (TLS) or
    /// `http://host:port`.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub path_style: bool,
    pub access_key: SecretString,
    pub secret_key: SecretString,
    /// The soft limit: skip the provider when `used + estimate` exceeds it.
    pub storage_limit_bytes: u64,
    pub used_bytes: u64,
    pub is_default: bool,
}

/// `POST /api/v1/node/archives`: an archive was stored. Idempotent by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ArchiveReport {
    /// `{node_uuid}/{site_uuid}/{site}_{YYYYMMDD_HHMMSS}.tar.zst`
    pub key: String,
    pub site_uuid: Uuid,
    pub provider_id: i64,
    pub size_bytes: u64,
    /// Hex SHA-256 of the object.
    pub sha256: String,
    pub created_at: DateTime<Utc>,
}

/// Response of `POST` (201 when new, 200 when already recorded) and
/// `DELETE …?key=` (200; `changed` false when it was unknown or gone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArchiveAck {
    pub key: String,
    pub changed: bool,
}

/// `DELETE /api/v1/node/archives?key=…`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ArchiveKeyQuery {
    pub key: String,
}

/// `POST /api/v1/node/sync`: the node's status in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// The node's sitebackup version.
    pub version: String,
    #[serde(default)]
    pub sites: Vec<SiteStatus>,
    /// Free bytes in the node's state directory (spool).
    #[serde(default)]
    pub free_space_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SiteStatus {
    pub site_uuid: Uuid,
    #[serde(default)]
    pub last_result: Option<RunResult>,
    #[serde(default)]
    pub last_success: Option<DateTime<Utc>>,
}

/// The outcome of a site's last backup run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunResult {
    pub outcome: RunOutcome,
    pub at: DateTime<Utc>,
    /// A short error text (the master truncates it).
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Success,
    Failed,
}

/// The changes out: what the master holds for the node now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncResponse {
    pub node_uuid: Uuid,
    pub server_time: DateTime<Utc>,
    pub node_quota_bytes: Option<u64>,
    pub node_used_bytes: u64,
    /// Every site the master knows for this node.
    pub sites: Vec<SyncSite>,
    /// `site_uuid`s in the request the master does not know (removed by an
    /// admin): register them again by name.
    pub unknown_sites: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncSite {
    pub site_uuid: Uuid,
    pub name: String,
    pub period_secs: u64,
    pub quota_bytes: Option<u64>,
    pub used_bytes: u64,
    pub archive_count: u64,
}
