//! The node's HTTP client for the master's API (the types in
//! [`crate::protocol`]). Every request carries the node's bearer token;
//! nothing it receives is logged or written anywhere (a lease holds
//! storage credentials, kept in memory only).

use crate::config::NodeConfig;
use crate::protocol::{
    ArchiveAck, ArchiveReport, ErrorBody, ErrorCode, LeaseRequest, LeaseResponse, SiteRegistered, SiteRegistration,
    SyncRequest, SyncResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};

/// A request to the master gets this long as a whole (its answers are
/// small).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read from the master.
const MAX_RESPONSE: usize = 4 * 1024 * 1024;

/// Why a call to the master failed.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// Network trouble or a 5xx: worth retrying later.
    #[error("the master at {url} is unreachable: {detail}")]
    Unreachable { url: String, detail: String },
    /// 401: the token is wrong, revoked, or for another master.
    #[error("the master refused this node's token (token revoked or invalid); check [master].token_file")]
    Unauthorized,
    /// A 4xx other than 401, with the master's error body.
    #[error("the master refused the request ({status}): {}", describe(body))]
    Refused { status: u16, body: ErrorBody },
    /// An answer that does not follow the contract.
    #[error("the master at {url} answered something unexpected: {detail}")]
    Protocol { url: String, detail: String },
}

impl MasterError {
    /// Worth trying again (the master may come back).
    pub fn transient(&self) -> bool {
        matches!(self, MasterError::Unreachable { .. })
    }
}

fn describe(body: &ErrorBody) -> String {
    let mut s = body
        .message()
        .map_or_else(|| format!("{:?}", body.error), str::to_string);
    if let Some(field) = &body.field {
        s.push_str(&format!(" (field {field})"));
    }
    s
}

/// Client for one master, as one node.
#[derive(Clone)]
pub struct MasterClient {
    http: reqwest::Client,
    base: url::Url,
    token: crate::config::Secret,
    /// How long calls that must succeed keep retrying an unreachable
    /// master ([`MasterClient::with_retry`]).
    retry_for: Duration,
}

impl std::fmt::Debug for MasterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl MasterClient {
    pub fn new(node: &NodeConfig) -> Result<Self, MasterError> {
        let setup = |detail: String| MasterError::Protocol {
            url: node.url.to_string(),
            detail,
        };
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("sitebackup/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &node.ca_file {
            let pem = std::fs::read(ca).map_err(|e| setup(format!("cannot read {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| setup(format!("{} holds no PEM certificate: {e}", ca.display())))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| setup(e.to_string()))?;
        Ok(Self {
            http,
            base: node.url.clone(),
            token: node.token.clone(),
            retry_for: Duration::from_secs(node.retry_secs),
        })
    }

    pub fn url(&self) -> &url::Url {
        &self.base
    }

    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<R, MasterError> {
        let url = self.base.join(path).map_err(|e| MasterError::Protocol {
            url: self.base.to_string(),
            detail: e.to_string(),
        })?;
        let unreachable = |detail: String| MasterError::Unreachable {
            url: self.base.to_string(),
            detail,
        };
        let mut req = self
            .http
            .request(method, url)
            .query(query)
            .bearer_auth(self.token.expose());
        if let Some(b) = body {
            req = req.json(b);
        }
        // reqwest's messages name the URL, never the headers.
        let resp = req.send().await.map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| unreachable(e.to_string()))?;
        if bytes.len() > MAX_RESPONSE {
            return Err(MasterError::Protocol {
                url: self.base.to_string(),
                detail: format!("an answer of {} bytes", bytes.len()),
            });
        }
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| MasterError::Protocol {
                url: self.base.to_string(),
                detail: e.to_string(),
            });
        }
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            return Err(unreachable(format!("HTTP {status}")));
        }
        if status.as_u16() == 401 {
            return Err(MasterError::Unauthorized);
        }
        let body = serde_json::from_slice::<ErrorBody>(&bytes)
            .unwrap_or_else(|_| ErrorBody::new(ErrorCode::Unknown, None, format!("HTTP {status}")));
        Err(MasterError::Refused {
            status: status.as_u16(),
            body,
        })
    }

    /// `op`, retried with backoff while the master is unreachable, for up
    /// to `[master] retry_secs`.
    pub async fn with_retry<T, F, Fut>(&self, mut op: F) -> Result<T, MasterError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, MasterError>>,
    {
        let started = Instant::now();
        let mut delay = Duration::from_millis(500);
        loop {
            match op().await {
                Err(e) if e.transient() && started.elapsed() + delay < self.retry_for => {
                    tracing::warn!("{e}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(15));
                }
                other => return other,
            }
        }
    }

    /// `PUT /api/v1/node/sites/{name}`.
    pub async fn register_site(&self, name: &str, period_secs: u64) -> Result<SiteRegistered, MasterError> {
        let body = SiteRegistration { period_secs };
        self.call(
            reqwest::Method::PUT,
            &format!("api/v1/node/sites/{name}"),
            &[],
            Some(&body),
        )
        .await
    }

    /// `POST /api/v1/node/leases`.
    pub async fn lease(&self, req: &LeaseRequest) -> Result<LeaseResponse, MasterError> {
        self.call(reqwest::Method::POST, "api/v1/node/leases", &[], Some(req))
            .await
    }

    /// `POST /api/v1/node/archives`.
    pub async fn report_stored(&self, report: &ArchiveReport) -> Result<ArchiveAck, MasterError> {
        self.call(reqwest::Method::POST, "api/v1/node/archives", &[], Some(report))
            .await
    }

    /// `DELETE /api/v1/node/archives?key=`.
    pub async fn report_deleted(&self, key: &str) -> Result<ArchiveAck, MasterError> {
        self.call::<(), _>(reqwest::Method::DELETE, "api/v1/node/archives", &[("key", key)], None)
            .await
    }

    /// `POST /api/v1/node/sync`.
    pub async fn sync(&self, req: &SyncRequest) -> Result<SyncResponse, MasterError> {
        self.call(reqwest::Method::POST, "api/v1/node/sync", &[], Some(req))
            .await
    }
}
