//! Nodes, their sites, and what a lease and a sync read.

use super::providers::ProviderRow;
use super::{Repo, fmt_time, parse_opt_time, parse_time, parse_uuid, to_i64, to_u64};
use crate::master::crypto::hash_token;
use crate::master::{MasterError, MasterResult};
use crate::protocol::{RunOutcome, SecretString, SiteStatus};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, Transaction, params};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub node_uuid: Uuid,
    pub name: String,
    pub quota_bytes: Option<u64>,
    pub used_bytes: u64,
    pub archive_count: u64,
    pub created_at: DateTime<Utc>,
    pub last_seen: Option<DateTime<Utc>>,
    pub version: Option<String>,
    pub free_space_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRow {
    pub site_uuid: Uuid,
    pub node_uuid: Uuid,
    pub name: String,
    pub period_secs: u64,
    pub quota_bytes: Option<u64>,
    pub used_bytes: u64,
    pub archive_count: u64,
    pub registered_at: DateTime<Utc>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_outcome: Option<RunOutcome>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// What a lease is computed from, read in one go.
#[derive(Debug, Clone)]
pub struct LeaseSnapshot {
    pub node: NodeRow,
    pub site: Option<SiteRow>,
    pub providers: Vec<ProviderRow>,
}

const NODE_COLUMNS: &str = "node_uuid, name, quota_bytes, storage_used_bytes,
    (SELECT count(*) FROM archives a WHERE a.node_uuid = nodes.node_uuid AND a.missing_at IS NULL),
    created_at, last_seen, version, free_space_bytes";

const SITE_COLUMNS: &str = "site_uuid, node_uuid, name, period_secs, quota_bytes, storage_used_bytes,
    (SELECT count(*) FROM archives a WHERE a.site_uuid = sites.site_uuid AND a.missing_at IS NULL),
    registered_at, last_success, last_outcome, last_run_at, last_error";

fn node_row(r: &Row<'_>) -> rusqlite::Result<NodeRow> {
    Ok(NodeRow {
        node_uuid: parse_uuid(&r.get::<_, String>(0)?)?,
        name: r.get(1)?,
        quota_bytes: r.get::<_, Option<i64>>(2)?.map(to_u64),
        used_bytes: to_u64(r.get(3)?),
        archive_count: to_u64(r.get(4)?),
        created_at: parse_time(&r.get::<_, String>(5)?)?,
        last_seen: parse_opt_time(r.get(6)?)?,
        version: r.get(7)?,
        free_space_bytes: r.get::<_, Option<i64>>(8)?.map(to_u64),
    })
}

fn site_row(r: &Row<'_>) -> rusqlite::Result<SiteRow> {
    Ok(SiteRow {
        site_uuid: parse_uuid(&r.get::<_, String>(0)?)?,
        node_uuid: parse_uuid(&r.get::<_, String>(1)?)?,
        name: r.get(2)?,
        period_secs: to_u64(r.get(3)?),
        quota_bytes: r.get::<_, Option<i64>>(4)?.map(to_u64),
        used_bytes: to_u64(r.get(5)?),
        archive_count: to_u64(r.get(6)?),
        registered_at: parse_time(&r.get::<_, String>(7)?)?,
        last_success: parse_opt_time(r.get(8)?)?,
        last_outcome: match r.get::<_, Option<String>>(9)?.as_deref() {
            Some("success") => Some(RunOutcome::Success),
            Some("failed") => Some(RunOutcome::Failed),
            _ => None,
        },
        last_run_at: parse_opt_time(r.get(10)?)?,
        last_error: r.get(11)?,
    })
}

fn outcome_text(o: RunOutcome) -> &'static str {
    match o {
        RunOutcome::Success => "success",
        RunOutcome::Failed => "failed",
    }
}

impl Repo {
    /// A new node and its token (whose hash alone is stored).
    pub fn create_node(&self, name: &str, quota_bytes: Option<u64>, token: &SecretString) -> MasterResult<NodeRow> {
        let node_uuid = Uuid::new_v4();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO nodes (node_uuid, name, quota_bytes, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    node_uuid.to_string(),
                    name,
                    quota_bytes.map(to_i64),
                    fmt_time(Utc::now())
                ],
            )
            .map_err(|e| match &e {
                rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                    MasterError::conflict(Some("name"), format!("a node named {name:?} exists"))
                }
                _ => self.sql()(e),
            })?;
            self.insert_token_tx(
                tx,
                &hash_token(token.expose()),
                super::Role::Node,
                Some(node_uuid),
                name,
            )?;
            self.node_tx(tx, node_uuid)
        })
    }

    fn node_tx(&self, tx: &Transaction<'_>, node: Uuid) -> MasterResult<NodeRow> {
        tx.query_row(
            &format!("SELECT {NODE_COLUMNS} FROM nodes WHERE node_uuid = ?1"),
            [node.to_string()],
            node_row,
        )
        .optional()
        .map_err(self.sql())?
        .ok_or_else(|| MasterError::NotFound(format!("no node {node}")))
    }

    pub fn list_nodes(&self) -> MasterResult<Vec<NodeRow>> {
        self.read(|c| {
            let mut st = c.prepare(&format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY name"))?;
            let rows = st.query_map([], node_row)?;
            rows.collect()
        })
    }

    pub fn get_node(&self, node: Uuid) -> MasterResult<Option<NodeRow>> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {NODE_COLUMNS} FROM nodes WHERE node_uuid = ?1"),
                [node.to_string()],
                node_row,
            )
            .optional()
        })
    }

    /// A node by uuid or by name (the admin commands take either).
    pub fn find_node(&self, name_or_uuid: &str) -> MasterResult<Option<NodeRow>> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {NODE_COLUMNS} FROM nodes WHERE node_uuid = ?1 OR name = ?1"),
                [name_or_uuid],
                node_row,
            )
            .optional()
        })
    }

    /// Sites of one node, or of every node.
    pub fn list_sites(&self, node: Option<Uuid>) -> MasterResult<Vec<SiteRow>> {
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {SITE_COLUMNS} FROM sites WHERE ?1 IS NULL OR node_uuid = ?1 ORDER BY node_uuid, name"
            ))?;
            let rows = st.query_map([node.map(|n| n.to_string())], site_row)?;
            rows.collect()
        })
    }

    pub fn update_node(&self, node: Uuid, name: Option<&str>, quota: Option<Option<u64>>) -> MasterResult<NodeRow> {
        self.write(|tx| {
            let old = self.node_tx(tx, node)?;
            let quota = quota.unwrap_or(old.quota_bytes);
            tx.execute(
                "UPDATE nodes SET name = ?2, quota_bytes = ?3 WHERE node_uuid = ?1",
                params![node.to_string(), name.unwrap_or(&old.name), quota.map(to_i64)],
            )
            .map_err(|e| match &e {
                rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                    MasterError::conflict(Some("name"), "a node of this name exists")
                }
                _ => self.sql()(e),
            })?;
            self.node_tx(tx, node)
        })
    }

    /// Remove a node with its sites and tokens. With archives recorded,
    /// only with `force` (their rows go too; the objects stay).
    pub fn delete_node(&self, node: Uuid, force: bool) -> MasterResult<u64> {
        self.write(|tx| {
            let row = self.node_tx(tx, node)?;
            if row.archive_count > 0 && !force {
                return Err(MasterError::conflict(
                    None,
                    format!(
                        "node {} holds {} archives: remove it with force to forget them",
                        row.name, row.archive_count
                    ),
                ));
            }
            let id = node.to_string();
            let archived: i64 = tx
                .query_row("SELECT count(*) FROM archives WHERE node_uuid = ?1", [&id], |r| {
                    r.get(0)
                })
                .map_err(self.sql())?;
            tx.execute("DELETE FROM archives WHERE node_uuid = ?1", [&id])
                .map_err(self.sql())?;
            tx.execute("DELETE FROM nodes WHERE node_uuid = ?1", [&id])
                .map_err(self.sql())?;
            self.recompute_usage_tx(tx)?;
            Ok(to_u64(archived))
        })
    }

    fn site_tx(&self, tx: &Transaction<'_>, site: Uuid) -> MasterResult<Option<SiteRow>> {
        tx.query_row(
            &format!("SELECT {SITE_COLUMNS} FROM sites WHERE site_uuid = ?1"),
            [site.to_string()],
            site_row,
        )
        .optional()
        .map_err(self.sql())
    }

    pub fn get_site(&self, site: Uuid) -> MasterResult<Option<SiteRow>> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {SITE_COLUMNS} FROM sites WHERE site_uuid = ?1"),
                [site.to_string()],
                site_row,
            )
            .optional()
        })
    }

    pub fn update_site_quota(&self, site: Uuid, quota: Option<Option<u64>>) -> MasterResult<SiteRow> {
        self.write(|tx| {
            let old = self
                .site_tx(tx, site)?
                .ok_or_else(|| MasterError::NotFound(format!("no site {site}")))?;
            if let Some(q) = quota {
                tx.execute(
                    "UPDATE sites SET quota_bytes = ?2 WHERE site_uuid = ?1",
                    params![site.to_string(), q.map(to_i64)],
                )
                .map_err(self.sql())?;
            }
            Ok(self.site_tx(tx, site)?.unwrap_or(old))
        })
    }

    /// Register a site of `node` by name, or update its period. Returns the
    /// site and whether it was created.
    pub fn register_site(&self, node: Uuid, name: &str, period_secs: u64) -> MasterResult<(SiteRow, bool)> {
        self.write(|tx| {
            let existing: Option<String> = tx
                .query_row(
                    "SELECT site_uuid FROM sites WHERE node_uuid = ?1 AND name = ?2",
                    params![node.to_string(), name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(self.sql())?;
            let (site, created) = match existing {
                Some(id) => {
                    tx.execute(
                        "UPDATE sites SET period_secs = ?2 WHERE site_uuid = ?1",
                        params![id, to_i64(period_secs)],
                    )
                    .map_err(self.sql())?;
                    (parse_uuid(&id).map_err(self.sql())?, false)
                }
                None => {
                    let id = Uuid::new_v4();
                    tx.execute(
                        "INSERT INTO sites (site_uuid, node_uuid, name, period_secs, registered_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            id.to_string(),
                            node.to_string(),
                            name,
                            to_i64(period_secs),
                            fmt_time(Utc::now())
                        ],
                    )
                    .map_err(self.sql())?;
                    (id, true)
                }
            };
            let row = self
                .site_tx(tx, site)?
                .ok_or_else(|| MasterError::NotFound(format!("no site {site}")))?;
            Ok((row, created))
        })
    }

    /// Record that the node was heard from.
    pub fn touch_node(&self, node: Uuid, at: DateTime<Utc>) -> MasterResult<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE nodes SET last_seen = ?2 WHERE node_uuid = ?1",
                params![node.to_string(), fmt_time(at)],
            )
            .map_err(self.sql())?;
            Ok(())
        })
    }

    /// Store a node's sync: version, free space and per-site results.
    /// Returns the `site_uuid`s that are not this node's.
    pub fn record_sync(
        &self,
        node: Uuid,
        version: &str,
        free_space: Option<u64>,
        sites: &[SiteStatus],
    ) -> MasterResult<Vec<Uuid>> {
        self.write(|tx| {
            let now = fmt_time(Utc::now());
            tx.execute(
                "UPDATE nodes SET version = ?2, free_space_bytes = ?3, last_seen = ?4 WHERE node_uuid = ?1",
                params![node.to_string(), version, free_space.map(to_i64), now],
            )
            .map_err(self.sql())?;
            let mut unknown = Vec::new();
            for s in sites {
                let (outcome, at, error) = match &s.last_result {
                    Some(r) => (Some(outcome_text(r.outcome)), Some(fmt_time(r.at)), r.error.clone()),
                    None => (None, None, None),
                };
                let n = tx
                    .execute(
                        "UPDATE sites SET
                            last_success = CASE WHEN ?3 IS NOT NULL AND (last_success IS NULL OR ?3 > last_success)
                                THEN ?3 ELSE last_success END,
                            last_outcome = COALESCE(?4, last_outcome),
                            last_run_at = COALESCE(?5, last_run_at),
                            last_error = CASE WHEN ?4 IS NULL THEN last_error ELSE ?6 END
                         WHERE site_uuid = ?1 AND node_uuid = ?2",
                        params![
                            s.site_uuid.to_string(),
                            node.to_string(),
                            s.last_success.map(fmt_time),
                            outcome,
                            at,
                            error
                        ],
                    )
                    .map_err(self.sql())?;
                if n == 0 {
                    unknown.push(s.site_uuid);
                }
            }
            Ok(unknown)
        })
    }

    /// The node, the site (if asked) and the providers, from one reader.
    pub fn lease_snapshot(&self, node: Uuid, site: Option<Uuid>) -> MasterResult<Option<LeaseSnapshot>> {
        self.read(|c| {
            let node = c
                .prepare_cached("SELECT node_uuid, name, quota_bytes, storage_used_bytes, 0, created_at, last_seen, version, free_space_bytes FROM nodes WHERE node_uuid = ?1")?
                .query_row([node.to_string()], node_row)
                .optional()?;
            let Some(node) = node else { return Ok(None) };
            let site = match site {
                Some(s) => c
                    .prepare_cached(
                        "SELECT site_uuid, node_uuid, name, period_secs, quota_bytes, storage_used_bytes, 0,
                            registered_at, last_success, last_outcome, last_run_at, last_error
                         FROM sites WHERE site_uuid = ?1",
                    )?
                    .query_row([s.to_string()], site_row)
                    .optional()?,
                None => None,
            };
            Ok(Some(LeaseSnapshot {
                node,
                site,
                providers: super::providers::lease_providers(c)?,
            }))
        })
    }
}
