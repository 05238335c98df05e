//! Node mode's part of the catalog: the site uuids the master assigned,
//! the outbox of archive reports not yet delivered to the master, and the
//! node's sync state. Nothing here holds a credential: a lease is never
//! written anywhere.

use super::{Catalog, CatalogResult, RunOutcome, now_rfc3339};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

/// What an outbox entry reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxKind {
    /// An archive was stored (its body is the report).
    Stored,
    /// Retention deleted an archive.
    Deleted,
}

impl OutboxKind {
    fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Stored => "stored",
            OutboxKind::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "stored" => Some(OutboxKind::Stored),
            "deleted" => Some(OutboxKind::Deleted),
            _ => None,
        }
    }
}

/// A report waiting for the master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxEntry {
    pub id: i64,
    pub kind: OutboxKind,
    pub key: String,
    /// The report, as JSON.
    pub body: String,
    pub created_at: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

impl Catalog {
    /// The uuid the master gave `site`, if it was registered.
    pub fn site_uuid(&self, site: &str) -> CatalogResult<Option<String>> {
        self.with(|c| {
            c.query_row("SELECT site_uuid FROM node_sites WHERE site = ?1", params![site], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    /// Remember the uuid the master gave `site` (a re-registration may
    /// change it).
    pub fn set_site_uuid(&self, site: &str, site_uuid: &str) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO node_sites (site, site_uuid, registered_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (site) DO UPDATE SET site_uuid = excluded.site_uuid, registered_at = excluded.registered_at",
                params![site, site_uuid, now_rfc3339()],
            )?;
            Ok(())
        })
    }

    /// Every registered site and its uuid.
    pub fn site_uuids(&self) -> CatalogResult<Vec<(String, String)>> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT site, site_uuid FROM node_sites ORDER BY site")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// The outcome, end time and error of the site's last finished run.
    pub fn last_run(&self, site: &str) -> CatalogResult<Option<(RunOutcome, String, Option<String>)>> {
        self.with(|c| {
            c.query_row(
                "SELECT outcome, finished_at, error FROM backup_runs
                 WHERE site = ?1 AND outcome != 'running' AND finished_at IS NOT NULL
                 ORDER BY id DESC LIMIT 1",
                params![site],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
        })
    }

    /// Queue a report for the master.
    pub fn outbox_push(&self, kind: OutboxKind, key: &str, body: &str) -> CatalogResult<i64> {
        self.with(|c| {
            c.execute(
                "INSERT INTO outbox (kind, key, body, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![kind.as_str(), key, body, now_rfc3339()],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// The waiting reports, oldest first.
    pub fn outbox(&self) -> CatalogResult<Vec<OutboxEntry>> {
        self.with(|c| {
            let mut stmt =
                c.prepare("SELECT id, kind, key, body, created_at, attempts, last_error FROM outbox ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                let kind: String = r.get(1)?;
                Ok(OutboxEntry {
                    id: r.get(0)?,
                    kind: OutboxKind::parse(&kind).ok_or_else(|| {
                        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, kind.into())
                    })?,
                    key: r.get(2)?,
                    body: r.get(3)?,
                    created_at: r.get(4)?,
                    attempts: r.get(5)?,
                    last_error: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The report was delivered.
    pub fn outbox_done(&self, id: i64) -> CatalogResult<()> {
        self.with(|c| {
            c.execute("DELETE FROM outbox WHERE id = ?1", params![id])?;
            Ok(())
        })
    }

    /// A delivery attempt failed.
    pub fn outbox_failed(&self, id: i64, error: &str) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, error],
            )?;
            Ok(())
        })
    }

    /// A value of the node's sync state (`last_sync_ok`, `last_sync_error`, …).
    pub fn node_state(&self, name: &str) -> CatalogResult<Option<String>> {
        self.with(|c| {
            c.query_row("SELECT value FROM node_state WHERE name = ?1", params![name], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    pub fn set_node_state(&self, name: &str, value: &str) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO node_state (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name, value],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_uuids_outbox_and_state() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        assert_eq!(cat.site_uuid("blog").unwrap(), None);
        cat.set_site_uuid("blog", "u1").unwrap();
        cat.set_site_uuid("blog", "u2").unwrap();
        assert_eq!(cat.site_uuid("blog").unwrap().as_deref(), Some("u2"));
        assert_eq!(cat.site_uuids().unwrap(), vec![("blog".to_string(), "u2".to_string())]);

        let a = cat.outbox_push(OutboxKind::Stored, "k1", "{}").unwrap();
        let b = cat.outbox_push(OutboxKind::Deleted, "k2", "{}").unwrap();
        cat.outbox_failed(a, "master unreachable").unwrap();
        let waiting = cat.outbox().unwrap();
        assert_eq!(waiting.iter().map(|e| e.id).collect::<Vec<_>>(), vec![a, b]);
        assert_eq!(
            (waiting[0].attempts, waiting[0].last_error.as_deref()),
            (1, Some("master unreachable"))
        );
        cat.outbox_done(a).unwrap();
        assert_eq!(cat.outbox().unwrap().len(), 1);

        cat.set_node_state("last_sync_ok", "t1").unwrap();
        cat.set_node_state("last_sync_ok", "t2").unwrap();
        assert_eq!(cat.node_state("last_sync_ok").unwrap().as_deref(), Some("t2"));
    }
}
