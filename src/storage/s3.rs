//! The rust-s3 implementation of [`ObjectStore`].
//!
//! We drive the low-level multipart calls ourselves (initiate, put part,
//! complete, abort) instead of `put_object_stream`, which sizes its own
//! buffering from the machine's free memory: the memory bound is the
//! pipeline's bounded queue.
//!
//! Parts and object downloads go through our own SigV4-signed requests
//! (rust-s3's public signing helpers + reqwest, in `signed`):
//!
//! - Part `PUT`s, because `put_multipart_chunk` copies each part twice,
//!   hashes it twice with SHA-256 and once with MD5 — more CPU than the
//!   compression. Our request sends the part's `Bytes` as is with
//!   `x-amz-content-sha256: UNSIGNED-PAYLOAD` and `x-amz-checksum-crc32c`
//!   (hardware CRC32C, a few percent of one core at the upload rate): the
//!   server verifies each part, so a part damaged on the way — over
//!   `http://` nothing else would notice — is refused and retried; end to
//!   end, the archive's SHA-256 (catalog + `.sha256` sidecar) is checked by
//!   `verify` and `restore`. The upload is created with
//!   `x-amz-checksum-algorithm: CRC32C` and completed with each part's
//!   checksum (our own CompleteMultipartUpload: rust-s3's `Part` has no
//!   checksum field). A server that refuses the algorithm gets parts
//!   without a checksum; one that does not echo a part's checksum may have
//!   ignored it. Either is logged once per server and process. `Content-MD5` is not used as a
//!   fallback: MD5 over every part would cost more CPU than the benchmark's
//!   target allows (about 0.4 s per GB on one core, against 1.7 s for the
//!   whole compress-only run of 700 MiB).
//! - Temporary credentials: a `session_token` goes out as
//!   `x-amz-security-token` on every request (rust-s3's and ours).
//! - Object `GET`s, because rust-s3 cannot time a download by silence: its
//!   request timeout is a reqwest per-request timeout, which also covers
//!   the whole response body (a 300 s bound made any archive that takes
//!   longer to download unrestorable), its client is built inside the
//!   crate (no `read_timeout`, no connect timeout of ours), and
//!   `get_object_stream` shows neither the `ETag` nor `Content-Range` that
//!   a resumed, version-pinned ranged read needs.
//!
//! Both carry an **idle** timeout (`network.idle_timeout_secs`) and no
//! whole-request deadline. It is ours ([`super::idle`]), not reqwest's
//! `read_timeout`: in reqwest 0.12 that one runs as a single timer from
//! sending to the response headers, so for a part PUT it would be a
//! whole-request deadline again. A part's body counts as progress as the
//! HTTP stack takes it; a download's as chunks arrive.
//!
//! rust-s3 keeps the small requests, with a whole-request timeout. It is
//! built with `fail-on-err`, so every non-2xx answer comes back as
//! `HttpFailWithBody(status, body)`; we keep only the status and the S3
//! error `<Code>` from the body.

mod signed;

pub use signed::crc32c_base64;

use super::caps::{CapabilityState, Support};
use super::{
    Capabilities, CompletedPart, ErrorClass, ObjectInfo, ObjectRead, ObjectStore, PendingUpload, StorageError,
    StorageResult,
};
use crate::config::{NetworkConfig, S3Server};
use async_trait::async_trait;
use bytes::Bytes;
use s3::Bucket;
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::region::Region;
use std::collections::BTreeMap;
use std::time::Duration;

const CONTENT_TYPE: &str = "application/zstd";
/// Whole-request bound of rust-s3's requests, which carry small bodies
/// (list, head, initiate, complete, abort, delete, sidecars); at least the
/// idle window.
pub(super) const CONTROL_TIMEOUT: Duration = Duration::from_secs(300);
/// Health checks should fail fast; also the connect timeout of our own
/// requests.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

pub struct S3Store {
    name: String,
    bucket_name: String,
    /// The configured region (requests are signed for it).
    region: String,
    bucket: Box<Bucket>,
    check_bucket: Box<Bucket>,
    /// For the hand-signed part PUTs and GETs: a connect timeout, no
    /// whole-request timeout (see the module docs).
    client: reqwest::Client,
    /// No byte moved for this long: the request fails.
    idle: Duration,
    /// Optional calls the server implements, as learnt during the run.
    /// When it refused `x-amz-checksum-algorithm`, uploads are created
    /// without it and parts sent without a checksum.
    caps: CapabilityState,
}

/// Servers already reported as checking no part checksum (log once).
static UNCHECKED_LOGGED: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

impl S3Store {
    pub fn new(id: u32, cfg: &S3Server, network: &NetworkConfig) -> StorageResult<Self> {
        let name = format!("server {id} ({}/{})", cfg.endpoint.display(), cfg.bucket);
        let setup = |detail: String| StorageError::Other {
            server: name.clone(),
            operation: "client setup",
            detail,
            class: ErrorClass::NextServer,
        };
        let region = Region::Custom {
            region: cfg.region.clone(),
            endpoint: cfg.endpoint.url().to_string(),
        };
        let creds = Credentials::new(
            Some(cfg.access_key.expose()),
            Some(cfg.secret_key.expose()),
            None,
            cfg.session_token.as_ref().map(|t| t.expose()),
            None,
        )
        .map_err(|_| setup("invalid credentials format".into()))?;
        let mut bucket = Bucket::new(&cfg.bucket, region, creds).map_err(|e| setup(e.to_string()))?;
        if cfg.path_style {
            bucket = bucket.with_path_style();
        }
        let idle = network.idle_timeout();
        bucket.set_request_timeout(Some(CONTROL_TIMEOUT.max(idle)));
        let mut check_bucket = bucket.clone();
        check_bucket.set_request_timeout(Some(CHECK_TIMEOUT));
        let client = reqwest::Client::builder()
            .connect_timeout(CHECK_TIMEOUT)
            .build()
            .map_err(|e| setup(e.to_string()))?;
        Ok(Self {
            client,
            idle,
            caps: CapabilityState::default(),
            name,
            bucket_name: cfg.bucket.clone(),
            region: cfg.region.clone(),
            bucket,
            check_bucket,
        })
    }

    fn parts_unchecked(&self) -> bool {
        self.caps.get().part_checksums == Support::Unsupported
    }

    /// From now on send parts without a checksum; say so once per server.
    fn mark_parts_unchecked(&self, why: &str) {
        self.caps.set_part_checksums(Support::Unsupported);
        self.log_unverified(why);
    }

    /// Say once per server (and process) that its parts are not known to be
    /// checked.
    fn log_unverified(&self, why: &str) {
        let first = UNCHECKED_LOGGED
            .lock()
            .map(|mut logged| logged.insert(self.name.clone()))
            .unwrap_or(false);
        if first {
            tracing::warn!(
                server = %self.name,
                "Part checksums are not verified by this server ({why}): parts are uploaded unchecked; the archive's SHA-256 is still checked by verify and restore."
            );
        }
    }

    fn err(&self, operation: &'static str, e: S3Error) -> StorageError {
        classify(&self.name, &self.bucket_name, operation, e).with_region(&self.region)
    }

    /// The idle window passed with no byte moving during `action`.
    fn idle_error(&self, action: String) -> StorageError {
        StorageError::Idle {
            server: self.name.clone(),
            secs: self.idle.as_secs(),
            action,
        }
    }
}

/// The `<Code>` element of an S3 XML error body, if any.
fn error_code(body: &str) -> Option<String> {
    xml_element(body, "Code")
}

/// The text of the first `<name>` element of `body` (error bodies are
/// flat), bounded and without markup.
fn xml_element(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{name}>"))? + start;
    let text = body[start..end].trim();
    (!text.is_empty() && text.len() <= 64 && !text.contains('<')).then(|| text.to_string())
}

/// A region the server says it expects (AWS and Garage name theirs in
/// `<Region>` of an `AuthorizationHeaderMalformed` answer).
fn expected_region(body: &str) -> Option<String> {
    xml_element(body, "Region").filter(|r| r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

impl StorageError {
    /// A region refusal ([`classify`] leaves the configured region empty)
    /// names the region the requests were signed for.
    fn with_region(self, region: &str) -> Self {
        match self {
            StorageError::Region {
                server,
                configured,
                expected,
            } if configured.is_empty() => StorageError::Region {
                server,
                configured: region.to_string(),
                expected: expected.filter(|e| e != region),
            },
            other => other,
        }
    }
}

/// Map a rust-s3 error to a classified [`StorageError`]. Response bodies are
/// reduced to their error code: they can echo request details.
pub(super) fn classify(server: &str, bucket: &str, operation: &'static str, e: S3Error) -> StorageError {
    let server = server.to_string();
    match e {
        S3Error::HttpFailWithBody(status, body) => {
            let code = error_code(&body).unwrap_or_else(|| format!("HTTP {status}"));
            match code.as_str() {
                "AuthorizationHeaderMalformed" | "InvalidRegion" | "IllegalLocationConstraintException"
                    if expected_region(&body).is_some() || body.to_ascii_lowercase().contains("region") =>
                {
                    StorageError::Region {
                        server,
                        configured: String::new(),
                        expected: expected_region(&body),
                    }
                }
                "NotImplemented" => StorageError::Unsupported {
                    server,
                    operation,
                    code,
                },
                _ if status == 501 => StorageError::Unsupported {
                    server,
                    operation,
                    code,
                },
                "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "InvalidSecurity"
                | "InvalidToken"
                | "ExpiredToken" => StorageError::Credentials { server, code },
                "InvalidDigest" | "BadDigest" | "XAmzContentChecksumMismatch" => StorageError::Other {
                    server,
                    operation,
                    detail: format!("the server received the data damaged ({code}); sending it again"),
                    class: ErrorClass::Retry,
                },
                "NoSuchBucket" => StorageError::BucketNotFound {
                    server,
                    bucket: bucket.to_string(),
                },
                "NoSuchKey" => StorageError::NotFound {
                    server,
                    key: String::new(),
                },
                "EntityTooLarge" | "QuotaExceeded" | "InsufficientStorage" | "StorageQuotaExceeded" => {
                    StorageError::NoSpace {
                        server,
                        detail: format!("the server answered {code}"),
                    }
                }
                _ if status == 403 => StorageError::Credentials { server, code },
                _ if status == 507 => StorageError::NoSpace {
                    server,
                    detail: "the server answered 507 Insufficient Storage".into(),
                },
                _ => StorageError::Http {
                    server,
                    operation,
                    status,
                    code,
                },
            }
        }
        S3Error::Reqwest(e) => {
            let detail = if e.is_timeout() {
                "request timed out".to_string()
            } else if e.is_connect() {
                let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
                let mut last = "cannot connect".to_string();
                while let Some(s) = source {
                    last = s.to_string();
                    source = s.source();
                }
                format!("cannot connect ({last})")
            } else {
                e.without_url().to_string()
            };
            StorageError::Connection { server, detail }
        }
        S3Error::Io(e) => StorageError::Connection {
            server,
            detail: e.to_string(),
        },
        S3Error::SerdeXml(e) => StorageError::Other {
            server,
            operation,
            detail: format!("unexpected response: {e}"),
            class: ErrorClass::NextServer,
        },
        other => StorageError::Other {
            server,
            operation,
            detail: other.to_string(),
            class: ErrorClass::NextServer,
        },
    }
}

impl S3Store {
    /// CreateMultipartUpload with `metadata`, announcing CRC32C part
    /// checksums when `checksums`.
    async fn initiate(&self, key: &str, metadata: &BTreeMap<String, String>, checksums: bool) -> StorageResult<String> {
        let mut headers = http::HeaderMap::new();
        for (k, v) in metadata {
            let name = http::HeaderName::try_from(format!("x-amz-meta-{k}")).map_err(|e| StorageError::Other {
                server: self.name.clone(),
                operation: "initiate upload",
                detail: format!("bad metadata key {k:?}: {e}"),
                class: ErrorClass::Fatal,
            })?;
            let value = http::HeaderValue::from_str(v).map_err(|e| StorageError::Other {
                server: self.name.clone(),
                operation: "initiate upload",
                detail: format!("bad metadata value for {k:?}: {e}"),
                class: ErrorClass::Fatal,
            })?;
            headers.insert(name, value);
        }
        if checksums {
            headers.insert(
                http::HeaderName::from_static("x-amz-checksum-algorithm"),
                http::HeaderValue::from_static("CRC32C"),
            );
        }
        let bucket = self
            .bucket
            .with_extra_headers(headers)
            .map_err(|e| self.err("initiate upload", e))?;
        let resp = bucket
            .initiate_multipart_upload(key, CONTENT_TYPE)
            .await
            .map_err(|e| self.err("initiate upload", e))?;
        Ok(resp.upload_id)
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self, prefix: &str) -> StorageResult<()> {
        self.check_bucket
            .list_page(prefix.to_string(), Some("/".into()), None, None, Some(1))
            .await
            .map_err(|e| self.err("list", e))?;
        Ok(())
    }

    async fn create_multipart(&self, key: &str, metadata: &BTreeMap<String, String>) -> StorageResult<String> {
        if !self.parts_unchecked() {
            match self.initiate(key, metadata, true).await {
                // An answer, not a lost reply: asking again opens no second upload.
                Err(StorageError::Http { status: 400, code, .. } | StorageError::Unsupported { code, .. }) => {
                    self.mark_parts_unchecked(&format!("it refused x-amz-checksum-algorithm: {code}"));
                }
                other => return other,
            }
        }
        self.initiate(key, metadata, false).await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        data: Bytes,
    ) -> StorageResult<CompletedPart> {
        self.put_part(key, upload_id, part_number, data).await
    }

    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: Vec<CompletedPart>) -> StorageResult<()> {
        self.complete(key, upload_id, &parts).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StorageResult<()> {
        match self.abort(key, upload_id).await {
            // s3s-fs answers AccessDenied for an upload id it does not know
            // (already aborted or completed). But on AWS the same answer
            // means a key without s3:AbortMultipartUpload, and the upload
            // stays open and billed. So it is taken as gone only when the
            // upload is not listed as open, or (a server that cannot list
            // open uploads, like s3s-fs) the bucket itself can be listed.
            Err(e @ StorageError::Credentials { .. }) => {
                let gone = match self.list_multipart(key).await {
                    Ok(open) => !open.iter().any(|u| u.upload_id == upload_id),
                    Err(StorageError::Unsupported { .. }) => self.check("").await.is_ok(),
                    Err(_) => false,
                };
                if !gone {
                    return Err(e);
                }
                tracing::warn!(
                    server = %self.name, key, upload_id,
                    "Abort was refused ({e}), but the upload is not open any more: taking it as already gone."
                );
                Ok(())
            }
            other => other,
        }
    }

    async fn list_multipart(&self, prefix: &str) -> StorageResult<Vec<PendingUpload>> {
        const OP: &str = "ListMultipartUploads";
        if self.caps.get().list_uploads == Support::Unsupported {
            return Err(StorageError::Unsupported {
                server: self.name.clone(),
                operation: OP,
                code: "NotImplemented, earlier in this run".into(),
            });
        }
        let pages = match self.bucket.list_multiparts_uploads(Some(prefix), None).await {
            Ok(pages) => pages,
            Err(e) => {
                let e = self.err(OP, e);
                if let StorageError::Unsupported { code, .. } = &e {
                    self.caps.set_list_uploads(Support::Unsupported);
                    tracing::info!(
                        server = %self.name,
                        "The server does not list open multipart uploads ({code}): uploads this catalog recorded are still aborted by id."
                    );
                }
                return Err(e);
            }
        };
        self.caps.set_list_uploads(Support::Supported);
        Ok(pages
            .into_iter()
            .flat_map(|p| p.uploads)
            .map(|u| PendingUpload {
                key: u.key,
                upload_id: u.id,
                initiated: chrono::DateTime::parse_from_rfc3339(&u.initiated)
                    .ok()
                    .map(|t| t.with_timezone(&chrono::Utc)),
            })
            .collect())
    }

    fn capabilities(&self) -> Capabilities {
        self.caps.get()
    }

    async fn put_small(&self, key: &str, data: Bytes) -> StorageResult<()> {
        self.bucket
            .put_object_with_content_type(key, &data, "text/plain")
            .await
            .map_err(|e| self.err("put", e))?;
        Ok(())
    }

    async fn get_from(&self, key: &str, offset: u64, version: Option<&str>) -> StorageResult<ObjectRead> {
        self.get_range(key, offset, version).await
    }

    async fn head(&self, key: &str) -> StorageResult<Option<ObjectInfo>> {
        match self.bucket.head_object(key).await {
            Ok((h, _)) => Ok(Some(ObjectInfo {
                key: key.to_string(),
                size: h.content_length.unwrap_or(0).max(0) as u64,
                metadata: h.metadata.unwrap_or_default().into_iter().collect(),
            })),
            Err(S3Error::HttpFailWithBody(404, _)) => Ok(None),
            Err(e) => Err(self.err("head", e)),
        }
    }

    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let (page, _) = self
                .bucket
                .list_page(prefix.to_string(), None, token, None, None)
                .await
                .map_err(|e| self.err("list", e))?;
            out.extend(page.contents.into_iter().map(|o| ObjectInfo {
                key: o.key,
                size: o.size,
                metadata: BTreeMap::new(),
            }));
            match page.next_continuation_token {
                Some(t) if page.is_truncated => token = Some(t),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.bucket
            .delete_object(key)
            .await
            .map_err(|e| self.err("delete", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
