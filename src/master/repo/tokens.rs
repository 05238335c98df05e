//! Bearer tokens: stored as SHA-256 hashes only, looked up by hash and
//! compared in constant time.

use super::{Repo, fmt_time, parse_opt_time, parse_time, parse_uuid};
use crate::master::{MasterError, MasterResult};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use subtle::ConstantTimeEq;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    SuperAdmin,
    Node,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::Node => "node",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "super_admin" => Some(Role::SuperAdmin),
            "node" => Some(Role::Node),
            _ => None,
        }
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub token_id: i64,
    pub role: Role,
    /// The node a node token is bound to.
    pub node_uuid: Option<Uuid>,
}

/// A token as `master token list` shows it (never the token).
#[derive(Debug, Clone, Serialize)]
pub struct TokenRow {
    pub id: i64,
    pub role: Role,
    pub node_uuid: Option<Uuid>,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Repo {
    /// Store a new token's hash.
    pub fn create_token(&self, hash: &[u8; 32], role: Role, node: Option<Uuid>, label: &str) -> MasterResult<i64> {
        self.write(|tx| self.insert_token_tx(tx, hash, role, node, label))
    }

    pub(crate) fn insert_token_tx(
        &self,
        tx: &rusqlite::Transaction<'_>,
        hash: &[u8; 32],
        role: Role,
        node: Option<Uuid>,
        label: &str,
    ) -> MasterResult<i64> {
        tx.execute(
            "INSERT INTO tokens (hash, role, node_uuid, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                hash.as_slice(),
                role.as_str(),
                node.map(|u| u.to_string()),
                label,
                fmt_time(Utc::now())
            ],
        )
        .map_err(self.sql())?;
        Ok(tx.last_insert_rowid())
    }

    /// The principal of a live (not revoked) token with this hash.
    pub fn authenticate(&self, hash: &[u8; 32]) -> MasterResult<Option<Principal>> {
        let row = self.read(|c| {
            c.prepare_cached("SELECT id, hash, role, node_uuid FROM tokens WHERE hash = ?1 AND revoked_at IS NULL")?
                .query_row([hash.as_slice()], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                })
                .optional()
        })?;
        let Some((id, stored, role, node)) = row else {
            return Ok(None);
        };
        if !bool::from(stored.as_slice().ct_eq(hash.as_slice())) {
            return Ok(None);
        }
        let role = Role::parse(&role).ok_or_else(|| MasterError::Setup(format!("token {id} has an unknown role")))?;
        let node_uuid = node
            .as_deref()
            .map(parse_uuid)
            .transpose()
            .map_err(|e| MasterError::Setup(format!("token {id}: {e}")))?;
        Ok(Some(Principal {
            token_id: id,
            role,
            node_uuid,
        }))
    }

    pub fn list_tokens(&self) -> MasterResult<Vec<TokenRow>> {
        self.read(|c| {
            let mut st =
                c.prepare("SELECT id, role, node_uuid, label, created_at, revoked_at FROM tokens ORDER BY id")?;
            let rows = st.query_map([], |r| {
                let role: String = r.get(1)?;
                let node: Option<String> = r.get(2)?;
                Ok(TokenRow {
                    id: r.get(0)?,
                    role: Role::parse(&role).unwrap_or(Role::Node),
                    node_uuid: node.as_deref().map(parse_uuid).transpose()?,
                    label: r.get(3)?,
                    created_at: parse_time(&r.get::<_, String>(4)?)?,
                    revoked_at: parse_opt_time(r.get(5)?)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Revoke a token; `false` when there is no such live token.
    pub fn revoke_token(&self, id: i64) -> MasterResult<bool> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    params![id, fmt_time(Utc::now())],
                )
                .map_err(self.sql())?;
            Ok(n == 1)
        })
    }
}
