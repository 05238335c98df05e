//! The master's HTTP API contract: the request and response
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

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use uuid::Uuid;

mod admin;
mod node;
pub use admin::*;
pub use node::*;

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

/// A field that is present (`Some(value)`, where the value may be null)
/// versus absent (`None`, through `#[serde(default)]`).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests;
