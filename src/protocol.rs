//! The master's HTTP API contract (DESIGN §8): the request and response
//! bodies of every endpoint, shared by the master (`sitebackup master serve`)
//! and the node that talks to it.
//!
//! This module is pure data: it depends on serde, chrono and uuid only, and
//! does no I/O. Requests reject unknown fields (`deny_unknown_fields`);
//! responses do not, so the master can add response fields without breaking
//! older nodes. Change it additively only.
//!
//! Secrets (provider keys, tokens) travel as [`SecretString`], whose `Debug`
//! is redacted and which has no `Display`, so a stray `{:?}` cannot log one.
//!
//! Sizes are bytes (`u64`) except the operator-facing `*_gb` fields of the
//! admin endpoints, which are decimal gigabytes (1 GB = 10^9 bytes), as in
//! the node's `storage_limit_gb`.
//!
//! With the `openapi` feature the types also derive `utoipa::ToSchema`, from
//! which the master generates `/api/v1/openapi.json`.

// The `openapi` feature is declared by the package that also builds the
// master; a build without it only loses the schema derives.
#![allow(unexpected_cfgs)]

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use uuid::Uuid;

/// Paths of the API, relative to the master's base URL.
pub mod paths {
    pub const PROVIDERS: &str = "/api/v1/storage/providers";
    /// `…/providers/{id}`
    pub const PROVIDER: &str = "/api/v1/storage/providers/{id}";
    pub const PROVIDER_TEST: &str = "/api/v1/storage/providers/{id}/test";
    pub const RECONCILE: &str = "/api/v1/storage/reconcile";
    pub const NODES: &str = "/api/v1/nodes";
    pub const NODE: &str = "/api/v1/nodes/{uuid}";
    pub const SITE: &str = "/api/v1/sites/{uuid}";
    /// `PUT`: register a site of the calling node by name.
    pub const NODE_SITE: &str = "/api/v1/node/sites/{name}";
    pub const NODE_LEASES: &str = "/api/v1/node/leases";
    /// `POST` a stored archive; `DELETE …?key=` a deleted one.
    pub const NODE_ARCHIVES: &str = "/api/v1/node/archives";
    pub const NODE_SYNC: &str = "/api/v1/node/sync";
    pub const OPENAPI: &str = "/api/v1/openapi.json";
}

/// Bytes per decimal gigabyte, the unit of every `*_gb` field.
pub const BYTES_PER_GB: f64 = 1e9;

/// Convert a `*_gb` value to bytes (rounded to the nearest byte).
pub fn gb_to_bytes(gb: f64) -> u64 {
    (gb * BYTES_PER_GB).round() as u64
}

/// Convert bytes to a `*_gb` value.
pub fn bytes_to_gb(bytes: u64) -> f64 {
    bytes as f64 / BYTES_PER_GB
}

// ---------------------------------------------------------------------------
// Secrets

/// A credential on the wire: serialised as a plain JSON string, but its
/// `Debug` prints a placeholder and it has no `Display`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that needs it (a signer, a store).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

// ---------------------------------------------------------------------------
// Errors

/// The body of every error response: `{"error": …, "field": …, "details": {…}}`.
///
/// `error` is a stable machine-readable code ([`ErrorCode`]); `field` names
/// the offending request field (dotted path) or is null; `details` always
/// holds `message` (a sentence for people) and, per code, more members
/// (for `quota_exceeded`: [`QuotaExceeded`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub field: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl ErrorBody {
    pub fn new(error: ErrorCode, field: Option<String>, message: impl Into<String>) -> Self {
        let mut details = serde_json::Map::new();
        details.insert("message".into(), serde_json::Value::String(message.into()));
        Self { error, field, details }
    }

    /// The human-readable sentence in `details.message`, if any.
    pub fn message(&self) -> Option<&str> {
        self.details.get("message").and_then(|v| v.as_str())
    }

    /// The quota figures of a `quota_exceeded` error.
    pub fn quota(&self) -> Option<QuotaExceeded> {
        serde_json::from_value(serde_json::Value::Object(self.details.clone())).ok()
    }
}

/// Error codes, with the status each comes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not JSON, or not the expected shape.
    InvalidJson,
    /// 400: a query string parameter is malformed.
    InvalidQuery,
    /// 422: a field has a value outside its range or format.
    InvalidValue,
    /// 422 / 400: a field the endpoint does not know.
    UnknownField,
    /// 401: no token, or a wrong or revoked one.
    Unauthorized,
    /// 403: the token's role may not use this endpoint or this object.
    Forbidden,
    /// 403: an upload lease would exceed a site or node quota.
    QuotaExceeded,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 409: a name is taken, a provider still holds archives, a key is
    /// already reported with other contents.
    Conflict,
    /// 413: the body is over 64 KiB.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 502: a live check against a provider failed (`…/test`).
    ProviderUnavailable,
    /// 503: the master cannot serve the request now (database busy).
    Unavailable,
    /// 500: a bug; the details never include internals.
    Internal,
    /// A code this version does not know yet.
    #[serde(other)]
    Unknown,
}

/// `details` of a 403 `quota_exceeded`: which quota, and the figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaExceeded {
    pub scope: QuotaScope,
    /// The site's or the node's uuid.
    pub uuid: Uuid,
    pub used_bytes: u64,
    pub quota_bytes: u64,
    pub estimated_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QuotaScope {
    Site,
    Node,
}

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

/// A field that is present (`Some(value)`, where the value may be null)
/// versus absent (`None`, through `#[serde(default)]`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let lease = LeaseProvider {
            id: 1,
            name: "p".into(),
            endpoint: "e".into(),
            region: "r".into(),
            bucket: "b".into(),
            path_style: true,
            access_key: SecretString::new("AKIAEXAMPLEACCESS"),
            secret_key: SecretString::new("wJalrXUtnFEMIsecret"),
            storage_limit_bytes: 1,
            used_bytes: 0,
            is_default: true,
        };
        let shown = format!("{lease:?}");
        assert!(!shown.contains("AKIAEXAMPLE") && !shown.contains("wJalr"), "{shown}");
        let json = serde_json::to_string(&lease).unwrap();
        assert!(json.contains("\"secret_key\":\"wJalrXUtnFEMIsecret\""), "{json}");
    }

    #[test]
    fn seed_body_parses_and_unknown_fields_are_refused() {
        let body = r#"{
          "name": "iDrive E2 Primary", "type": "s3",
          "endpoint": "t5k4.ldn.idrivee2-61.com", "bucket": "backups-bucket",
          "region": "eu-west-3", "access_key": "YOUR_ACCESS_KEY",
          "secret_key": "YOUR_SECRET_KEY", "storage_limit_gb": 1000, "is_default": true
        }"#;
        let p: ProviderCreate = serde_json::from_str(body).unwrap();
        assert_eq!(
            (p.kind, p.storage_limit_gb, p.is_default),
            (ProviderKind::S3, Some(1000.0), true)
        );
        let err = serde_json::from_str::<ProviderCreate>(&body.replace("\"type\"", "\"typo\"")).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn patch_tells_null_from_absent() {
        let clear: SitePatch = serde_json::from_str(r#"{"quota_gb": null}"#).unwrap();
        assert_eq!(clear.quota_gb, Some(None));
        let keep: SitePatch = serde_json::from_str("{}").unwrap();
        assert_eq!(keep.quota_gb, None);
        let set: NodePatch = serde_json::from_str(r#"{"quota_gb": 2.5}"#).unwrap();
        assert_eq!(set.quota_gb, Some(Some(2.5)));
    }

    #[test]
    fn error_body_shape_and_quota_details() {
        let mut body = ErrorBody::new(ErrorCode::QuotaExceeded, Some("estimated_bytes".into()), "over");
        let q = QuotaExceeded {
            scope: QuotaScope::Site,
            uuid: Uuid::nil(),
            used_bytes: 10,
            quota_bytes: 12,
            estimated_bytes: 5,
        };
        if let serde_json::Value::Object(m) = serde_json::to_value(&q).unwrap() {
            body.details.extend(m);
        }
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["error"], "quota_exceeded");
        assert_eq!(v["details"]["used_bytes"], 10);
        assert_eq!(v["details"]["message"], "over");
        let back: ErrorBody = serde_json::from_value(v).unwrap();
        assert_eq!(back.quota(), Some(q));
        let unknown: ErrorBody = serde_json::from_str(r#"{"error":"brand_new","field":null,"details":{}}"#).unwrap();
        assert_eq!(unknown.error, ErrorCode::Unknown);
    }

    #[test]
    fn lease_request_defaults() {
        let r: LeaseRequest = serde_json::from_str(r#"{"purpose":"read"}"#).unwrap();
        assert_eq!(
            (r.site_uuid, r.purpose, r.estimated_bytes),
            (None, LeasePurpose::Read, 0)
        );
        assert!(serde_json::from_str::<LeaseRequest>(r#"{"purpose":"write"}"#).is_err());
        let q: ReconcileQuery = serde_json::from_str("{}").unwrap();
        assert!(q.dry_run);
    }
}
