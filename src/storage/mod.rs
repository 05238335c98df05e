//! Object stores: the [`ObjectStore`] trait (multipart put, streaming and
//! ranged get, head, paginated list, delete), its rust-s3 implementation
//! and the local directory one, error classification for the failover
//! code, and [`ResumingRead`], which reads a whole object across cut
//! connections.
//!
//! Errors carry an [`ErrorClass`]: callers branch on it, never on message
//! text. Messages name the server (`server N (endpoint)`) and use the
//! operator wording of the original tool ("Invalid S3 credentials", "Not
//! enough space", …). No message includes a credential or a raw response
//! body.

mod caps;
mod idle;
mod local;
mod read;
mod retry;
mod s3;
mod source;

pub use caps::{Capabilities, Support, probe as probe_capabilities};
pub use idle::transfers;
pub use local::LocalStore;
pub use read::ResumingRead;
pub use retry::{abort_with_retries, with_retries};
pub use s3::{S3Store, crc32c_base64};
pub use source::{ConfigSource, Purpose, ServerInfo, ServerSource, SourceError, Target};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::collections::BTreeMap;

/// What a caller should do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try the same request again on the same server (network blip, 5xx).
    Retry,
    /// This server cannot take the job: move on to the next one.
    NextServer,
    /// Nothing another server could fix (bad input, a bug, a missing object).
    Fatal,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "Invalid S3 credentials for {server}: the server answered {code}. Check the access key and secret key, and that the key may read and write the bucket"
    )]
    Credentials { server: String, code: String },
    #[error("Bucket not found on {server}: {bucket:?} does not exist or is not visible to this key")]
    BucketNotFound { server: String, bucket: String },
    #[error(
        "Connection error to {server}: {detail}. Check the endpoint (no https:// prefix needed), region and firewall"
    )]
    Connection { server: String, detail: String },
    #[error("Not enough space on {server}: {detail}")]
    NoSpace { server: String, detail: String },
    #[error("{key:?} not found on {server}")]
    NotFound { server: String, key: String },
    #[error("{server} answered HTTP {status} ({code}) to {operation}")]
    Http {
        server: String,
        operation: &'static str,
        status: u16,
        code: String,
    },
    /// Nothing moved for the idle window. Not retried on the same server:
    /// the window is the operator's bound on silence.
    #[error(
        "{server}: no data for {secs} s (idle timeout) while {action}. A slow link is fine, a silent one is not: check the network, or raise network.idle_timeout_secs (SITEBACKUP_IDLE_TIMEOUT_SECS)"
    )]
    Idle { server: String, secs: u64, action: String },
    /// A resumed read found another version of the object than the one it
    /// started on.
    #[error(
        "{key} changed on {server} while it was being downloaded ({detail}); the download stopped rather than mix two versions: run the command again"
    )]
    Changed {
        server: String,
        key: String,
        detail: String,
    },
    /// A `local` server's directory does not exist (an unmounted disk?).
    #[error("{server}: directory missing — is it mounted? ({} does not exist; sitebackup never creates a local server's directory)", .path.display())]
    DirectoryMissing { server: String, path: std::path::PathBuf },
    /// The server does not implement a call (`501 NotImplemented` or the
    /// like). On an optional call the caller carries on without it (see
    /// [`caps`]); on an essential one the server cannot take the job.
    #[error(
        "{server} does not implement {operation} (it answered {code}); sitebackup cannot work without it on this server"
    )]
    Unsupported {
        server: String,
        operation: &'static str,
        code: String,
    },
    /// The request was signed for another region than the server's.
    #[error(
        "Region mismatch on {server}: requests are signed for region {configured:?}{}. Set the server's region (`region`, S3_SERVER_N_REGION) to the one its provider gives for the bucket",
        .expected.as_ref().map(|r| format!(", but the server expects {r:?}")).unwrap_or_else(|| ", which the server refused".into())
    )]
    Region {
        server: String,
        configured: String,
        expected: Option<String>,
    },
    #[error("{server}: {operation} failed: {detail}")]
    Other {
        server: String,
        operation: &'static str,
        detail: String,
        class: ErrorClass,
    },
}

impl StorageError {
    pub fn class(&self) -> ErrorClass {
        match self {
            StorageError::Credentials { .. }
            | StorageError::BucketNotFound { .. }
            | StorageError::NoSpace { .. }
            | StorageError::DirectoryMissing { .. }
            | StorageError::Unsupported { .. }
            | StorageError::Region { .. } => ErrorClass::NextServer,
            StorageError::Connection { .. } => ErrorClass::Retry,
            StorageError::Idle { .. } => ErrorClass::NextServer,
            StorageError::NotFound { .. } | StorageError::Changed { .. } => ErrorClass::Fatal,
            StorageError::Http { status, .. } => {
                if *status >= 500 || *status == 429 || *status == 408 {
                    ErrorClass::Retry
                } else {
                    ErrorClass::NextServer
                }
            }
            StorageError::Other { class, .. } => *class,
        }
    }

    /// A short machine-readable label, for `--json` and the runs table.
    pub fn kind(&self) -> &'static str {
        match self {
            StorageError::Credentials { .. } => "credentials",
            StorageError::BucketNotFound { .. } => "bucket_not_found",
            StorageError::Connection { .. } => "unreachable",
            StorageError::NoSpace { .. } => "no_space",
            StorageError::NotFound { .. } => "not_found",
            StorageError::Http { .. } => "http",
            StorageError::Idle { .. } => "idle_timeout",
            StorageError::Changed { .. } => "changed",
            StorageError::DirectoryMissing { .. } => "directory_missing",
            StorageError::Unsupported { .. } => "unsupported",
            StorageError::Region { .. } => "region",
            StorageError::Other { .. } => "error",
        }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// One part accepted by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
    /// The part's CRC32C (base64, as `x-amz-checksum-crc32c`) when it was
    /// sent with one; listed again in the completion.
    pub checksum_crc32c: Option<String>,
}

/// What `head` and `list` report about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// User metadata (`x-amz-meta-*` without the prefix). Empty from `list`.
    pub metadata: BTreeMap<String, String>,
}

/// A multipart upload that was started and neither completed nor aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
    /// When the upload was started, when the store says.
    pub initiated: Option<chrono::DateTime<chrono::Utc>>,
}

pub type ByteStream = BoxStream<'static, StorageResult<Bytes>>;

/// One response to a (possibly ranged) read: the object's bytes from the
/// requested offset to its end.
pub struct ObjectRead {
    pub stream: ByteStream,
    /// Size of the whole object (not of this read), when the server said.
    pub size: Option<u64>,
    /// What identifies this version of the object (the S3 `ETag`), for a
    /// later ranged read to insist on.
    pub version: Option<String>,
}

/// An S3-like object store. Every method is one logical request; retries
/// and failover are the caller's business.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// `server N (endpoint/bucket)`, for messages.
    fn name(&self) -> &str;

    /// Check that the server is reachable, the credentials work and the
    /// bucket exists, by listing at most one key under `prefix`.
    async fn check(&self, prefix: &str) -> StorageResult<()>;

    async fn create_multipart(&self, key: &str, metadata: &BTreeMap<String, String>) -> StorageResult<String>;
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        data: Bytes,
    ) -> StorageResult<CompletedPart>;
    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<CompletedPart>) -> StorageResult<()>;
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StorageResult<()>;
    /// Open multipart uploads under `prefix`. An optional call: a server
    /// that does not implement it answers [`StorageError::Unsupported`]
    /// (see [`caps`]).
    async fn list_multipart(&self, prefix: &str) -> StorageResult<Vec<PendingUpload>>;
    /// Which optional calls the server implements, as far as this store
    /// has seen.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// A small object in one request (checksum sidecars).
    async fn put_small(&self, key: &str, data: Bytes) -> StorageResult<()>;
    /// The bytes of `key` from `offset` to its end. With `version` (from an
    /// earlier read of the same key), a store holding another version
    /// answers [`StorageError::Changed`] instead of its bytes.
    async fn get_from(&self, key: &str, offset: u64, version: Option<&str>) -> StorageResult<ObjectRead>;
    /// The whole object, as one response (see [`ResumingRead`] for a read
    /// that survives a cut connection).
    async fn get(&self, key: &str) -> StorageResult<ByteStream> {
        Ok(self.get_from(key, 0, None).await?.stream)
    }
    async fn head(&self, key: &str) -> StorageResult<Option<ObjectInfo>>;
    /// Every object under `prefix`, following pagination.
    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>>;
    async fn delete(&self, key: &str) -> StorageResult<()>;
}

use crate::install::OwnerMarker;
use crate::layout::Owner;
pub use crate::layout::{sidecar_key, sidecar_owner};

/// The checksum in a sidecar's text (`sha256sum` format: `<hex>  <name>`),
/// lower-cased, or `None` when it is not 64 hex digits.
pub fn parse_sidecar(text: &str) -> Option<String> {
    let hex = text.split_whitespace().next()?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.to_ascii_lowercase())
}

/// Sidecars and owner markers are a few lines; anything longer is not one.
const MAX_SMALL: usize = 4096;

/// Fetch a small object whole: `Ok(None)` when it does not exist or is
/// larger than `max` bytes (then it is not what the caller looks for).
pub async fn read_small(store: &dyn ObjectStore, key: &str, max: usize) -> StorageResult<Option<Vec<u8>>> {
    use futures::StreamExt;
    let mut stream = match store.get(key).await {
        Ok(s) => s,
        Err(StorageError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        data.extend_from_slice(&chunk?);
        if data.len() > max {
            return Ok(None);
        }
    }
    Ok(Some(data))
}

/// Fetch and parse the checksum sidecar of `key`: `Ok(None)` when there is
/// none (or it is unreadable as a checksum).
pub async fn read_sidecar(store: &dyn ObjectStore, key: &str) -> StorageResult<Option<String>> {
    let text = read_small(store, &sidecar_key(key), MAX_SMALL).await?;
    Ok(text
        .and_then(|t| String::from_utf8(t).ok())
        .and_then(|t| parse_sidecar(&t)))
}

/// The owner marker under `owner`'s prefix (see [`crate::install`]);
/// `Ok(None)` when there is none. An unreadable marker reads as one owned
/// by nobody known, so nothing is claimed over it.
pub async fn read_marker(store: &dyn ObjectStore, owner: &Owner) -> StorageResult<Option<OwnerMarker>> {
    let key = owner.marker_key();
    Ok(read_small(store, &key, MAX_SMALL).await?.map(|bytes| {
        OwnerMarker::parse(&bytes).unwrap_or_else(|| OwnerMarker {
            install_id: "(unreadable marker)".into(),
            host: "(unknown)".into(),
            machine_id: None,
            written_at: String::new(),
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_parse_like_sha256sum() {
        let hex = "AB".repeat(32);
        assert_eq!(parse_sidecar(&format!("{hex}  x.tar.zst\n")), Some("ab".repeat(32)));
        assert_eq!(parse_sidecar(&"ab".repeat(32)), Some("ab".repeat(32)));
        assert_eq!(parse_sidecar("abc  x.tar.zst\n"), None);
        assert_eq!(parse_sidecar(&format!("{}  x", "g".repeat(64))), None);
        assert_eq!(parse_sidecar(""), None);
    }

    #[test]
    fn classes_follow_status() {
        let http = |status| StorageError::Http {
            server: "s".into(),
            operation: "op",
            status,
            code: "X".into(),
        };
        assert_eq!(http(503).class(), ErrorClass::Retry);
        assert_eq!(http(500).class(), ErrorClass::Retry);
        assert_eq!(http(400).class(), ErrorClass::NextServer);
        let creds = StorageError::Credentials {
            server: "server 1 (h/b)".into(),
            code: "InvalidAccessKeyId".into(),
        };
        assert_eq!(creds.class(), ErrorClass::NextServer);
        assert!(
            creds
                .to_string()
                .starts_with("Invalid S3 credentials for server 1 (h/b)")
        );
    }
}
