//! Bodies of the super-admin endpoints: storage providers, reconciliation,
//! nodes and sites.

#![allow(unexpected_cfgs)]

use super::{RunResult, SecretString, present};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Storage providers (super admin)

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    #[default]
    S3,
}

/// `POST /api/v1/storage/providers`: seed 001's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProviderCreate {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: ProviderKind,
    /// Host name without scheme (TLS), or `http://host:port`.
    pub endpoint: String,
    pub bucket: String,
    /// Default `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    pub access_key: SecretString,
    pub secret_key: SecretString,
    /// Decimal GB (default 100), a soft limit.
    #[serde(default)]
    pub storage_limit_gb: Option<f64>,
    #[serde(default)]
    pub is_default: bool,
    /// Default: path-style for every endpoint but AWS's.
    #[serde(default)]
    pub path_style: Option<bool>,
}

/// `PATCH /api/v1/storage/providers/{id}`: the fields to change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProviderPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_limit_gb: Option<f64>,
    /// `true` makes this the default (and unsets the old one); `false`
    /// leaves no default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
}

/// A provider as the admin endpoints show it: never the secret key, and the
/// access key masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Provider {
    pub id: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub path_style: bool,
    /// The first characters of the access key id, e.g. `AKIA…`.
    pub access_key: String,
    pub storage_limit_gb: f64,
    pub used_gb: f64,
    pub storage_limit_bytes: u64,
    pub used_bytes: u64,
    pub archive_count: u64,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `DELETE /api/v1/storage/providers/{id}?force=true`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ForceQuery {
    /// Remove even when archives are recorded on it (their rows go too).
    #[serde(default)]
    pub force: bool,
}

/// `POST /api/v1/storage/providers/{id}/test`: the live check of
/// `sitebackup servers` (reachable, credentials valid, bucket exists,
/// writable under a probe prefix).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderTestReport {
    pub id: i64,
    pub name: String,
    pub endpoint: String,
    pub bucket: String,
    pub ok: bool,
    /// `ok`, or the storage error's kind (`auth`, `not_found`, `network`, …).
    pub status: String,
    pub error: Option<String>,
    pub used_bytes: u64,
    pub storage_limit_bytes: u64,
}

// ---------------------------------------------------------------------------
// Reconciliation (super admin)

/// `POST /api/v1/storage/reconcile?dry_run=true|false` (default `true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ReconcileQuery {
    #[serde(default = "yes")]
    pub dry_run: bool,
    /// Multipart uploads open longer than this many seconds are stale
    /// (default: the master's setting, two days).
    #[serde(default)]
    pub stale_upload_secs: Option<u64>,
}

impl Default for ReconcileQuery {
    fn default() -> Self {
        Self {
            dry_run: true,
            stale_upload_secs: None,
        }
    }
}

fn yes() -> bool {
    true
}

/// The drift report. With `dry_run = false` the usage figures were written
/// and the stale uploads aborted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReconcileReport {
    pub dry_run: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub providers: Vec<ProviderReconcile>,
    /// Objects under a node prefix with no archive row.
    pub unknown_objects: Vec<DriftObject>,
    /// Archive rows whose object is not in the listing.
    pub missing_archives: Vec<DriftObject>,
    pub size_mismatches: Vec<SizeMismatch>,
    /// Multipart uploads open longer than the threshold.
    pub stale_uploads: Vec<StaleUpload>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderReconcile {
    pub provider_id: i64,
    pub name: String,
    /// Listing succeeded for every node prefix; when false, nothing of this
    /// provider was changed.
    pub ok: bool,
    pub error: Option<String>,
    pub listed_objects: u64,
    pub listed_bytes: u64,
    pub used_bytes_before: u64,
    pub used_bytes_after: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DriftObject {
    pub provider_id: i64,
    pub key: String,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SizeMismatch {
    pub provider_id: i64,
    pub key: String,
    pub recorded_bytes: u64,
    pub listed_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StaleUpload {
    pub provider_id: i64,
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<DateTime<Utc>>,
    pub aborted: bool,
}

// ---------------------------------------------------------------------------
// Nodes and sites (super admin)

/// `POST /api/v1/nodes`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NodeCreate {
    pub name: String,
    #[serde(default)]
    pub quota_gb: Option<f64>,
}

/// `201` of `POST /api/v1/nodes`: the token is shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeCreated {
    pub node: Node,
    pub token: SecretString,
}

/// `PATCH /api/v1/nodes/{uuid}`. `quota_gb: null` removes the quota.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NodePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub quota_gb: Option<Option<f64>>,
}

/// `PATCH /api/v1/sites/{uuid}`. `quota_gb: null` removes the quota.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SitePatch {
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub quota_gb: Option<Option<f64>>,
}

/// A node as `GET /api/v1/nodes` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Node {
    pub node_uuid: Uuid,
    pub name: String,
    pub quota_gb: Option<f64>,
    pub used_gb: f64,
    pub used_bytes: u64,
    pub archive_count: u64,
    pub created_at: DateTime<Utc>,
    /// Last authenticated request of the node.
    pub last_seen: Option<DateTime<Utc>>,
    /// From the node's last sync.
    pub version: Option<String>,
    pub free_space_bytes: Option<u64>,
    pub sites: Vec<Site>,
    /// Number of its sites whose last success is older than their period.
    pub sites_missed: u64,
}

/// A site as the admin endpoints show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Site {
    pub site_uuid: Uuid,
    pub node_uuid: Uuid,
    pub name: String,
    /// The schedule's period the node registered, in seconds.
    pub period_secs: u64,
    pub quota_gb: Option<f64>,
    pub used_gb: f64,
    pub used_bytes: u64,
    pub archive_count: u64,
    pub registered_at: DateTime<Utc>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_result: Option<RunResult>,
    /// Whole periods elapsed since the last success (or registration)
    /// beyond the first: 0 when the site is on time.
    pub missed_periods: u64,
    /// `missed_periods > 0`.
    pub missed: bool,
}
