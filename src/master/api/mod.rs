//! The master's HTTP API on axum: the router, the shared
//! state, and request logging. Handlers are split by audience: providers
//! and reconciliation ([`providers`]), nodes and sites ([`nodes`]) for the
//! super admin, the node endpoints ([`node`]), and the OpenAPI document
//! ([`openapi`]). Bodies and answers are the types of [`crate::protocol`].
//!
//! Every failure is an [`ApiError`]; the database is reached through
//! `spawn_blocking` ([`AppState::db`]). The log has method, route, status
//! and latency of each request, never a header, a body or a query value.

mod auth;
pub mod error;
mod node;
mod nodes;
#[cfg(feature = "openapi")]
pub mod openapi;
mod providers;

pub use auth::{Admin, NodeCaller};
pub use error::{ApiError, MAX_BODY};

use super::crypto::Vault;
use super::repo::Repo;
use super::{MasterError, MasterResult};
use crate::config::NetworkConfig;
use crate::protocol::{ErrorCode, paths};
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, patch, post, put};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How often at most a node's `last_seen` is written.
const SEEN_EVERY: Duration = Duration::from_secs(15);

/// What every handler shares.
pub struct AppState {
    pub repo: Arc<Repo>,
    pub vault: Arc<Vault>,
    /// The most a lease lives (`lease_ttl_secs`).
    pub lease_ttl: Duration,
    pub network: NetworkConfig,
    /// Multipart uploads open longer than this are stale (reconcile).
    pub stale_upload_after: Duration,
    /// One reconciliation at a time.
    pub reconcile_lock: tokio::sync::Mutex<()>,
    seen: Mutex<HashMap<Uuid, Instant>>,
}

impl AppState {
    pub fn new(repo: Arc<Repo>, vault: Arc<Vault>, lease_ttl: Duration) -> Self {
        AppState {
            repo,
            vault,
            lease_ttl,
            network: NetworkConfig::default(),
            stale_upload_after: crate::master::reconcile::DEFAULT_STALE_UPLOAD,
            reconcile_lock: tokio::sync::Mutex::new(()),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Run a repository call on the blocking pool.
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Repo, &Vault) -> MasterResult<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let repo = self.repo.clone();
        let vault = self.vault.clone();
        tokio::task::spawn_blocking(move || f(&repo, &vault))
            .await
            .map_err(|e| MasterError::Setup(format!("database task failed: {e}")))?
            .map_err(ApiError::from)
    }

    /// Note that `node` was heard from; writes `last_seen` at most every
    /// [`SEEN_EVERY`], off the request's path.
    pub fn seen(&self, node: Uuid) {
        let now = Instant::now();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            match seen.get(&node) {
                Some(t) if now.duration_since(*t) < SEEN_EVERY => return,
                _ => {
                    seen.insert(node, now);
                }
            }
        }
        let repo = self.repo.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = repo.touch_node(node, chrono::Utc::now()) {
                tracing::debug!(node = %node, error = %e, "Could not record last_seen.");
            }
        });
    }
}

/// The router of the whole API.
pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route(paths::PROVIDERS, post(providers::create).get(providers::list))
        .route(
            paths::PROVIDER,
            get(providers::get_one)
                .patch(providers::update)
                .delete(providers::remove),
        )
        .route(paths::PROVIDER_TEST, post(providers::test))
        .route(paths::RECONCILE, post(providers::reconcile))
        .route(paths::NODES, get(nodes::list).post(nodes::create))
        .route(paths::NODE, patch(nodes::update).delete(nodes::remove))
        .route(paths::SITE, patch(nodes::update_site))
        .route(paths::NODE_SITE, put(node::register_site))
        .route(paths::NODE_LEASES, post(node::lease))
        .route(
            paths::NODE_ARCHIVES,
            post(node::archive_stored).delete(node::archive_deleted),
        )
        .route(paths::NODE_SYNC, post(node::sync));
    #[cfg(feature = "openapi")]
    let api = api.route(paths::OPENAPI, get(openapi::serve));
    api.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /api/v1/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        None,
        "this endpoint does not take this method",
    )
}

/// One log line per request: method, route template, status, latency.
async fn log_request(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "(unknown route)".into());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let micros = start.elapsed().as_micros() as u64;
    if status >= 500 {
        tracing::warn!(%method, route, status, micros, "Request failed.");
    } else {
        tracing::debug!(%method, route, status, micros, "Request served.");
    }
    response
}

#[cfg(test)]
mod tests;
