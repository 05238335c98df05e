//! Bearer-token authentication as extractors: [`Admin`] for the super-admin
//! endpoints, [`NodeCaller`] for the node endpoints. A missing, unknown or
//! revoked token is 401; a token of the other role is 403. The token is
//! hashed (SHA-256) and looked up by hash; the stored hash is compared in
//! constant time ([`crate::master::repo::Repo::authenticate`]).

use super::{ApiError, AppState};
use crate::master::crypto::hash_token;
use crate::master::repo::{Principal, Role};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use std::sync::Arc;
use uuid::Uuid;

/// Tokens are 43 characters; anything much longer is not one.
const MAX_TOKEN: usize = 256;

async fn principal(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| {
            let (scheme, token) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN)
        .ok_or_else(|| ApiError::unauthorized("the Authorization header is not \"Bearer <token>\""))?;
    let hash = hash_token(token);
    state
        .db(move |repo, _| repo.authenticate(&hash))
        .await?
        .ok_or_else(|| ApiError::unauthorized("the token is unknown or revoked"))
}

/// A request with a super-admin token.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        match principal(parts, state).await?.role {
            Role::SuperAdmin => Ok(Admin),
            Role::Node => Err(ApiError::forbidden(
                "a node token may only use the /api/v1/node endpoints",
            )),
        }
    }
}

/// A request with a node token: the node it is bound to.
#[derive(Debug, Clone, Copy)]
pub struct NodeCaller {
    pub node_uuid: Uuid,
}

impl FromRequestParts<Arc<AppState>> for NodeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let p = principal(parts, state).await?;
        match (p.role, p.node_uuid) {
            (Role::Node, Some(node_uuid)) => {
                state.seen(node_uuid);
                Ok(NodeCaller { node_uuid })
            }
            _ => Err(ApiError::forbidden(
                "the /api/v1/node endpoints take a node token (`sitebackup master node add`)",
            )),
        }
    }
}
