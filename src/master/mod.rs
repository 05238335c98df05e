//! The master (`sitebackup master …`): the central service that
//! keeps the storage providers, hands nodes their credentials on demand,
//! tracks usage per provider, node and site, and reconciles its database
//! with what the buckets hold.
//!
//! - [`repo`]: the one repository type over the master's SQLite database
//!   (every query lives there, so PostgreSQL can be added beside it).
//! - [`crypto`]: the Fernet key file ([`crypto::Vault`]), bearer tokens.
//! - [`api`]: the axum router; the wire types are [`crate::protocol`].
//! - [`reconcile`]: listing the providers under every node prefix and
//!   correcting usage; [`rotate`]: crash-safe key rotation; [`admin`]: what
//!   the admin subcommands do; [`serve`]: the HTTP(S) service under systemd.
//!
//! Nothing here prints or logs a provider key or a token, except the one
//! place that shows a new token to the operator once.

pub mod admin;
pub mod api;
pub mod crypto;
pub mod reconcile;
pub mod repo;
pub mod rotate;
pub mod serve;

use crate::config::{Endpoint, S3Server, Secret, ServerConfig, ServerKind};
use crate::protocol::{ErrorCode, QuotaExceeded};

/// What the master's operations fail with; the API maps each to a status
/// and an [`ErrorCode`].
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { field: Option<String>, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("the upload would exceed the {scope:?} quota", scope = .0.scope)]
    Quota(QuotaExceeded),
    /// Busy database, key rotation in progress: worth a retry.
    #[error("{0}")]
    Unavailable(String),
    #[error("database {path}: {source}")]
    Db {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// The database is not there yet, or cannot be opened.
    #[error("{0}")]
    Setup(String),
    #[error("key file: {0}")]
    Crypto(String),
    #[error("{0}")]
    Storage(#[from] crate::storage::StorageError),
}

pub type MasterResult<T> = Result<T, MasterError>;

impl MasterError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        MasterError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn conflict(field: Option<&str>, message: impl Into<String>) -> Self {
        MasterError::Conflict {
            field: field.map(str::to_string),
            message: message.into(),
        }
    }

    /// The wire code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            MasterError::NotFound(_) => ErrorCode::NotFound,
            MasterError::Conflict { .. } => ErrorCode::Conflict,
            MasterError::Invalid { .. } => ErrorCode::InvalidValue,
            MasterError::Forbidden(_) => ErrorCode::Forbidden,
            MasterError::Quota(_) => ErrorCode::QuotaExceeded,
            MasterError::Unavailable(_) => ErrorCode::Unavailable,
            MasterError::Storage(_) => ErrorCode::ProviderUnavailable,
            MasterError::Db { .. } | MasterError::Setup(_) | MasterError::Crypto(_) => ErrorCode::Internal,
        }
    }
}

/// Check a `*_gb` value from a request: finite, not negative, not absurd.
pub fn gb_field(field: &str, gb: f64) -> MasterResult<u64> {
    // 10^9 GB = 1 EB: past any bucket, and still far inside u64 bytes.
    if !gb.is_finite() || !(0.0..=1e9).contains(&gb) {
        return Err(MasterError::invalid(
            field,
            format!("must be a number of GB between 0 and 1000000000, found {gb}"),
        ));
    }
    Ok(crate::protocol::gb_to_bytes(gb))
}

/// A name an operator gives (provider, node): 1 to 100 characters, no
/// control characters.
pub fn name_field(field: &str, name: &str) -> MasterResult<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 100 || trimmed.chars().any(char::is_control) {
        return Err(MasterError::invalid(
            field,
            "must be 1 to 100 characters without control characters",
        ));
    }
    Ok(trimmed.to_string())
}

/// The provider as a storage server: what the live check and the
/// reconciliation open.
pub fn server_config(row: &repo::ProviderRow, vault: &crypto::Vault) -> MasterResult<ServerConfig> {
    let endpoint = Endpoint::parse(&row.endpoint).map_err(|m| MasterError::invalid("endpoint", m))?;
    Ok(ServerConfig {
        id: u32::try_from(row.id).unwrap_or(u32::MAX),
        storage_limit_bytes: row.storage_limit_bytes,
        kind: ServerKind::S3(S3Server {
            endpoint,
            region: row.region.clone(),
            bucket: row.bucket.clone(),
            access_key: Secret::new(vault.open_secret(&row.access_key_enc)?.into_inner()),
            secret_key: Secret::new(vault.open_secret(&row.secret_key_enc)?.into_inner()),
            session_token: None,
            path_style: row.path_style,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gb_fields_refuse_negative_and_non_finite() {
        assert_eq!(gb_field("x", 0.5).unwrap(), 500_000_000);
        for bad in [-1.0, f64::NAN, f64::INFINITY, 2e9] {
            assert!(matches!(gb_field("x", bad), Err(MasterError::Invalid { .. })), "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name_field("name", "  a b ").unwrap(), "a b");
        assert!(name_field("name", " ").is_err());
        assert!(name_field("name", &"x".repeat(101)).is_err());
        assert!(name_field("name", "a\nb").is_err());
    }
}
