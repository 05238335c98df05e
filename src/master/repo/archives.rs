//! Archives the nodes reported, and the usage counters that follow them:
//! `storage_used_bytes` of the provider, the node and the site move in the
//! same transaction as the archive row. Reconciliation sets them from the
//! buckets ([`Repo::apply_reconcile`]).

use super::{Repo, fmt_time, parse_opt_time, parse_time, parse_uuid, to_i64, to_u64};
use crate::master::{MasterError, MasterResult};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, Transaction, params};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRow {
    pub key: String,
    pub provider_id: i64,
    pub node_uuid: Uuid,
    pub site_uuid: Uuid,
    pub size_bytes: u64,
    pub sha256: String,
    pub created_at: DateTime<Utc>,
    pub missing_at: Option<DateTime<Utc>>,
}

/// A validated report of a stored archive.
#[derive(Debug, Clone)]
pub struct NewArchive {
    pub key: String,
    pub provider_id: i64,
    pub node_uuid: Uuid,
    pub site_uuid: Uuid,
    pub size_bytes: u64,
    pub sha256: String,
    pub created_at: DateTime<Utc>,
}

/// What a reconciliation writes, per provider whose listing succeeded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileChanges {
    /// provider id → bytes listed under the node prefixes.
    pub provider_usage: BTreeMap<i64, u64>,
    /// Keys no longer in their bucket.
    pub missing: Vec<String>,
    /// Keys found again after having been missing.
    pub found: Vec<String>,
    /// key → listed size, where it differs from the row.
    pub sizes: BTreeMap<String, u64>,
}

const COLUMNS: &str = "key, provider_id, node_uuid, site_uuid, size_bytes, sha256, created_at, missing_at";

fn row(r: &Row<'_>) -> rusqlite::Result<ArchiveRow> {
    Ok(ArchiveRow {
        key: r.get(0)?,
        provider_id: r.get(1)?,
        node_uuid: parse_uuid(&r.get::<_, String>(2)?)?,
        site_uuid: parse_uuid(&r.get::<_, String>(3)?)?,
        size_bytes: to_u64(r.get(4)?),
        sha256: r.get(5)?,
        created_at: parse_time(&r.get::<_, String>(6)?)?,
        missing_at: parse_opt_time(r.get(7)?)?,
    })
}

impl Repo {
    fn archive_tx(&self, tx: &Transaction<'_>, key: &str) -> MasterResult<Option<ArchiveRow>> {
        tx.query_row(&format!("SELECT {COLUMNS} FROM archives WHERE key = ?1"), [key], row)
            .optional()
            .map_err(self.sql())
    }

    /// Add `delta` bytes (negative to subtract) to the usage of the
    /// archive's provider, node and site.
    fn add_usage_tx(&self, tx: &Transaction<'_>, a: &ArchiveRow, delta: i64) -> MasterResult<()> {
        let run = |sql: &str, id: &dyn rusqlite::ToSql| tx.execute(sql, params![id, delta]).map_err(self.sql());
        run(
            "UPDATE providers SET storage_used_bytes = max(0, storage_used_bytes + ?2) WHERE id = ?1",
            &a.provider_id,
        )?;
        run(
            "UPDATE nodes SET storage_used_bytes = max(0, storage_used_bytes + ?2) WHERE node_uuid = ?1",
            &a.node_uuid.to_string(),
        )?;
        run(
            "UPDATE sites SET storage_used_bytes = max(0, storage_used_bytes + ?2) WHERE site_uuid = ?1",
            &a.site_uuid.to_string(),
        )?;
        Ok(())
    }

    /// Record a stored archive. Idempotent by key: the same report again
    /// changes nothing (`Ok(false)`); another archive under the same key
    /// is a conflict.
    pub fn record_archive(&self, a: &NewArchive) -> MasterResult<bool> {
        self.write(|tx| {
            let site_node: Option<String> = tx
                .query_row(
                    "SELECT node_uuid FROM sites WHERE site_uuid = ?1",
                    [a.site_uuid.to_string()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(self.sql())?;
            match site_node {
                None => return Err(MasterError::NotFound(format!("no site {}", a.site_uuid))),
                Some(n) if n != a.node_uuid.to_string() => {
                    return Err(MasterError::Forbidden(format!(
                        "site {} belongs to another node",
                        a.site_uuid
                    )));
                }
                Some(_) => {}
            }
            let provider: Option<i64> = tx
                .query_row("SELECT id FROM providers WHERE id = ?1", [a.provider_id], |r| r.get(0))
                .optional()
                .map_err(self.sql())?;
            if provider.is_none() {
                return Err(MasterError::invalid(
                    "provider_id",
                    format!("no provider {}", a.provider_id),
                ));
            }
            let new = ArchiveRow {
                key: a.key.clone(),
                provider_id: a.provider_id,
                node_uuid: a.node_uuid,
                site_uuid: a.site_uuid,
                size_bytes: a.size_bytes,
                sha256: a.sha256.clone(),
                created_at: a.created_at,
                missing_at: None,
            };
            if let Some(old) = self.archive_tx(tx, &a.key)? {
                let same = old.provider_id == new.provider_id
                    && old.site_uuid == new.site_uuid
                    && old.size_bytes == new.size_bytes
                    && old.sha256 == new.sha256;
                if !same {
                    return Err(MasterError::conflict(
                        Some("key"),
                        "this key is recorded with another provider, site, size or checksum",
                    ));
                }
                if old.missing_at.is_some() {
                    tx.execute("UPDATE archives SET missing_at = NULL WHERE key = ?1", [&a.key])
                        .map_err(self.sql())?;
                    self.add_usage_tx(tx, &new, to_i64(new.size_bytes))?;
                    return Ok(true);
                }
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO archives (key, provider_id, node_uuid, site_uuid, size_bytes, sha256, created_at, reported_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    a.key,
                    a.provider_id,
                    a.node_uuid.to_string(),
                    a.site_uuid.to_string(),
                    to_i64(a.size_bytes),
                    a.sha256,
                    fmt_time(a.created_at),
                    fmt_time(Utc::now())
                ],
            )
            .map_err(self.sql())?;
            self.add_usage_tx(tx, &new, to_i64(new.size_bytes))?;
            Ok(true)
        })
    }

    /// Forget a deleted archive of `node`. Idempotent: `Ok(false)` when it
    /// is not (or no longer) recorded.
    pub fn delete_archive(&self, node: Uuid, key: &str) -> MasterResult<bool> {
        self.write(|tx| {
            let Some(old) = self.archive_tx(tx, key)? else {
                return Ok(false);
            };
            if old.node_uuid != node {
                return Err(MasterError::Forbidden("this archive belongs to another node".into()));
            }
            tx.execute("DELETE FROM archives WHERE key = ?1", [key])
                .map_err(self.sql())?;
            if old.missing_at.is_none() {
                self.add_usage_tx(tx, &old, -to_i64(old.size_bytes))?;
            }
            Ok(true)
        })
    }

    /// Every archive row, missing or not.
    pub fn list_archives(&self) -> MasterResult<Vec<ArchiveRow>> {
        self.read(|c| {
            let mut st = c.prepare(&format!("SELECT {COLUMNS} FROM archives ORDER BY key"))?;
            let rows = st.query_map([], row)?;
            rows.collect()
        })
    }

    /// Node and site usage from their present archive rows.
    pub(crate) fn recompute_usage_tx(&self, tx: &Transaction<'_>) -> MasterResult<()> {
        tx.execute_batch(
            "UPDATE nodes SET storage_used_bytes = (SELECT COALESCE(SUM(size_bytes), 0) FROM archives a
                WHERE a.node_uuid = nodes.node_uuid AND a.missing_at IS NULL);
             UPDATE sites SET storage_used_bytes = (SELECT COALESCE(SUM(size_bytes), 0) FROM archives a
                WHERE a.site_uuid = sites.site_uuid AND a.missing_at IS NULL);",
        )
        .map_err(self.sql())
    }

    /// Write a reconciliation: provider usage from the listings, missing
    /// and found archives, listed sizes; then node and site usage again.
    pub fn apply_reconcile(&self, c: &ReconcileChanges) -> MasterResult<()> {
        self.write(|tx| {
            let now = fmt_time(Utc::now());
            for (id, bytes) in &c.provider_usage {
                tx.execute(
                    "UPDATE providers SET storage_used_bytes = ?2 WHERE id = ?1",
                    params![id, to_i64(*bytes)],
                )
                .map_err(self.sql())?;
            }
            for key in &c.missing {
                tx.execute(
                    "UPDATE archives SET missing_at = ?2 WHERE key = ?1 AND missing_at IS NULL",
                    params![key, now],
                )
                .map_err(self.sql())?;
            }
            for key in &c.found {
                tx.execute("UPDATE archives SET missing_at = NULL WHERE key = ?1", [key])
                    .map_err(self.sql())?;
            }
            for (key, size) in &c.sizes {
                tx.execute(
                    "UPDATE archives SET size_bytes = ?2 WHERE key = ?1",
                    params![key, to_i64(*size)],
                )
                .map_err(self.sql())?;
            }
            self.recompute_usage_tx(tx)
        })
    }
}
