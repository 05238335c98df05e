//! The SQLite catalog: every archive (`s3_archives`), every backup run and
//! each server attempt within it (`backup_runs`, `run_attempts`).
//!
//! WAL mode with a busy timeout, so `list` in a second process reads while
//! the daemon writes. Schema changes are numbered migrations tracked with
//! `PRAGMA user_version`. Synchronous: async code calls it through
//! `spawn_blocking`. Nothing here ever stores a credential; error texts
//! come from classified storage errors, which never include one.

mod node;
mod ops;
mod state;

pub use node::{OutboxEntry, OutboxKind};
pub use ops::{ImportedArchive, UploadingRow};
pub use state::{ArchiveStatus, AttemptOutcome, Condition, RunOutcome, SuspectCause, VerifyOutcome};

use crate::layout::ServerRef;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("catalog: internal error: {0}")]
    Internal(String),
    #[error(
        "catalog {path} has schema version {found}, newer than this sitebackup knows ({known}); upgrade sitebackup"
    )]
    TooNew { path: PathBuf, found: i64, known: i64 },
}

pub type CatalogResult<T> = Result<T, CatalogError>;

/// Migrations, applied in order; `user_version` is the count applied.
const MIGRATIONS: &[&str] = &[
    // 1: archives, runs, attempts.
    r#"
    CREATE TABLE s3_archives (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id       INTEGER,
        site         TEXT NOT NULL,
        server_id    INTEGER NOT NULL,
        endpoint     TEXT NOT NULL,
        bucket       TEXT NOT NULL,
        key          TEXT NOT NULL,
        size_bytes   INTEGER NOT NULL DEFAULT 0,
        sha256       TEXT,
        created_at   TEXT NOT NULL,
        completed_at TEXT,
        status       TEXT NOT NULL CHECK (status IN ('uploading','complete','failed','deleted','missing')),
        upload_id    TEXT,
        error        TEXT,
        verified_at  TEXT,
        verify_ok    INTEGER
    );
    CREATE INDEX s3_archives_site ON s3_archives(site, created_at);
    CREATE INDEX s3_archives_server ON s3_archives(endpoint, bucket, status);
    CREATE INDEX s3_archives_key ON s3_archives(key);

    CREATE TABLE backup_runs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        site        TEXT NOT NULL,
        trigger     TEXT NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        outcome     TEXT NOT NULL CHECK (outcome IN ('running','success','warning','failed')),
        archive_id  INTEGER REFERENCES s3_archives(id),
        error       TEXT,
        warnings    TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX backup_runs_site ON backup_runs(site, started_at);

    CREATE TABLE run_attempts (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id    INTEGER NOT NULL REFERENCES backup_runs(id),
        server_id INTEGER NOT NULL,
        endpoint  TEXT NOT NULL,
        outcome   TEXT NOT NULL CHECK (outcome IN ('skipped','failed','succeeded')),
        reason    TEXT NOT NULL,
        at        TEXT NOT NULL
    );
    "#,
    // 2: installations whose prefixes this one took over (`reconcile --adopt`).
    r#"
    CREATE TABLE adopted_installs (
        install_id TEXT PRIMARY KEY,
        host       TEXT NOT NULL,
        adopted_at TEXT NOT NULL
    );
    "#,
    // 3: the verify result as a state (ok / corrupt / inconclusive) instead
    // of a bool, with its error; the suspect marking of an archive. An old
    // failed verify cannot tell damage from a dead server: inconclusive.
    r#"
    ALTER TABLE s3_archives ADD COLUMN verify_outcome TEXT
        CHECK (verify_outcome IN ('ok','corrupt','inconclusive'));
    ALTER TABLE s3_archives ADD COLUMN verify_error TEXT;
    UPDATE s3_archives SET verify_outcome = CASE verify_ok WHEN 1 THEN 'ok' ELSE 'inconclusive' END
        WHERE verify_ok IS NOT NULL;
    ALTER TABLE s3_archives DROP COLUMN verify_ok;
    ALTER TABLE s3_archives ADD COLUMN suspect TEXT CHECK (suspect IN ('empty_site','shrunk'));
    ALTER TABLE s3_archives ADD COLUMN suspect_reason TEXT;
    "#,
    // 4: node mode. The site uuids the master assigned, the reports waiting
    // for the master (the outbox), and the node's sync state.
    r#"
    CREATE TABLE node_sites (
        site          TEXT PRIMARY KEY,
        site_uuid     TEXT NOT NULL,
        registered_at TEXT NOT NULL
    );
    CREATE TABLE outbox (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        kind       TEXT NOT NULL CHECK (kind IN ('stored','deleted')),
        key        TEXT NOT NULL,
        body       TEXT NOT NULL,
        created_at TEXT NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE TABLE node_state (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
];

pub fn now_rfc3339() -> String {
    fmt_time(Utc::now())
}

pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ArchiveRow {
    pub id: i64,
    pub site: String,
    pub server_id: i64,
    pub endpoint: String,
    pub bucket: String,
    pub key: String,
    pub size_bytes: u64,
    pub sha256: Option<String>,
    pub created_at: String,
    pub status: ArchiveStatus,
    pub error: Option<String>,
    pub verified_at: Option<String>,
    /// What the last `verify` proved (`None`: never verified).
    pub verify_outcome: Option<VerifyOutcome>,
    /// Why that verify failed.
    pub verify_error: Option<String>,
    /// Set when the backup looked wrong (an empty site, a sudden shrink).
    pub suspect: Option<SuspectCause>,
    /// The warning the backup gave for it.
    pub suspect_reason: Option<String>,
}

/// A new archive row, written as `uploading` before the first byte goes out.
#[derive(Debug, Clone)]
pub struct NewArchive<'a> {
    pub run_id: i64,
    pub site: &'a str,
    pub server_id: u32,
    pub location: &'a ServerRef,
    pub key: &'a str,
    pub created_at: &'a str,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Attempt {
    pub server_id: u32,
    pub endpoint: String,
    pub outcome: AttemptOutcome,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub site: String,
    pub trigger: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: RunOutcome,
    pub archive_id: Option<i64>,
    pub error: Option<String>,
    pub warnings: Vec<String>,
    pub attempts: Vec<Attempt>,
}

impl ArchiveRow {
    /// The server the archive was stored on.
    pub fn location(&self) -> ServerRef {
        ServerRef::new(self.endpoint.clone(), self.bucket.clone())
    }

    /// Clean, suspect or corrupt, as retention sees it.
    pub fn condition(&self) -> Condition {
        Condition::of(self.verify_outcome, self.suspect)
    }
}

pub struct Catalog {
    path: PathBuf,
    conn: Mutex<Connection>,
}

#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub site: Option<String>,
    pub server_id: Option<u32>,
    /// Include `deleted`, `failed` and `missing` rows.
    pub all_statuses: bool,
}

impl Catalog {
    /// Open (creating the state directory and file if needed) and migrate.
    /// The directory is created `0700` and the database `0600` (SQLite
    /// gives its `-wal` and `-shm` files the database's mode); a catalog an
    /// older version left readable by others is made private.
    pub fn open(state_dir: &Path) -> CatalogResult<Self> {
        let state_err = |source| CatalogError::StateDir {
            path: state_dir.to_path_buf(),
            source,
        };
        crate::private::create_dir_all(state_dir).map_err(state_err)?;
        let path = state_dir.join("catalog.db");
        crate::private::open_or_create(&path).map_err(state_err)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            crate::private::restrict(Path::new(&name)).map_err(state_err)?;
        }
        let err = |source| CatalogError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        // FULL: a row's size and checksum are written before the upload is
        // completed, and must survive a power cut that follows.
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
        migrate(&mut conn, &path)?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> CatalogResult<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|source| CatalogError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    pub fn start_run(&self, site: &str, trigger: &str) -> CatalogResult<i64> {
        self.with(|c| {
            c.execute(
                "INSERT INTO backup_runs (site, trigger, started_at, outcome) VALUES (?1, ?2, ?3, 'running')",
                params![site, trigger, now_rfc3339()],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    pub fn record_attempt(&self, run_id: i64, attempt: &Attempt) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO run_attempts (run_id, server_id, endpoint, outcome, reason, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![run_id, attempt.server_id, attempt.endpoint, attempt.outcome, attempt.reason, now_rfc3339()],
            )?;
            Ok(())
        })
    }

    pub fn finish_run(
        &self,
        run_id: i64,
        outcome: RunOutcome,
        archive_id: Option<i64>,
        error: Option<&str>,
        warnings: &[String],
    ) -> CatalogResult<()> {
        let warnings = serde_json::to_string(warnings).unwrap_or_else(|_| "[]".into());
        self.with(|c| {
            c.execute(
                "UPDATE backup_runs SET finished_at = ?2, outcome = ?3, archive_id = ?4, error = ?5, warnings = ?6 WHERE id = ?1",
                params![run_id, now_rfc3339(), outcome, archive_id, error, warnings],
            )?;
            Ok(())
        })
    }

    pub fn insert_uploading(&self, a: &NewArchive<'_>) -> CatalogResult<i64> {
        self.with(|c| {
            c.execute(
                "INSERT INTO s3_archives (run_id, site, server_id, endpoint, bucket, key, created_at, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'uploading')",
                params![
                    a.run_id,
                    a.site,
                    a.server_id,
                    a.location.endpoint,
                    a.location.bucket,
                    a.key,
                    a.created_at
                ],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    pub fn set_upload_id(&self, id: i64, upload_id: &str) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE s3_archives SET upload_id = ?2 WHERE id = ?1",
                params![id, upload_id],
            )?;
            Ok(())
        })
    }

    /// Record the archive's final size and checksum while it is still
    /// `uploading`, before the upload is completed: a crash between the
    /// completion and [`mark_complete`](Self::mark_complete) then leaves
    /// enough to recognise the object as whole.
    pub fn record_checksum(&self, id: i64, size: u64, sha256: &str) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE s3_archives SET size_bytes = ?2, sha256 = ?3 WHERE id = ?1 AND status = 'uploading'",
                params![id, size as i64, sha256],
            )?;
            Ok(())
        })
    }

    /// Mark `complete`: only after the server confirmed the upload.
    pub fn mark_complete(&self, id: i64, size: u64, sha256: &str) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE s3_archives SET status = 'complete', size_bytes = ?2, sha256 = ?3, completed_at = ?4, upload_id = NULL, error = NULL
                 WHERE id = ?1",
                params![id, size as i64, sha256, now_rfc3339()],
            )?;
            Ok(())
        })
    }

    pub fn mark_failed(&self, id: i64, error: &str) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE s3_archives SET status = 'failed', error = ?2, completed_at = ?3 WHERE id = ?1",
                params![id, error, now_rfc3339()],
            )?;
            Ok(())
        })
    }

    /// Sum of `complete` archive sizes stored on a server. Servers are
    /// identified by their [`ServerRef`], so renumbering them keeps usage.
    pub fn usage(&self, location: &ServerRef) -> CatalogResult<u64> {
        self.with(|c| {
            c.query_row(
                "SELECT COALESCE(SUM(size_bytes), 0) FROM s3_archives WHERE endpoint = ?1 AND bucket = ?2 AND status = 'complete'",
                params![location.endpoint, location.bucket],
                |r| r.get::<_, i64>(0),
            )
            .map(|v| v.max(0) as u64)
        })
    }

    /// Size of the site's newest complete archive.
    pub fn last_archive_size(&self, site: &str) -> CatalogResult<Option<u64>> {
        self.with(|c| {
            c.query_row(
                "SELECT size_bytes FROM s3_archives WHERE site = ?1 AND status = 'complete' ORDER BY created_at DESC, id DESC LIMIT 1",
                params![site],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|v| v.map(|v| v.max(0) as u64))
        })
    }

    pub fn key_exists(&self, key: &str) -> CatalogResult<bool> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM s3_archives WHERE key = ?1 AND status IN ('uploading','complete') LIMIT 1",
                params![key],
                |_| Ok(()),
            )
            .optional()
            .map(|v| v.is_some())
        })
    }

    pub fn list(&self, filter: &ListFilter) -> CatalogResult<Vec<ArchiveRow>> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {ARCHIVE_COLUMNS}
                 FROM s3_archives
                 WHERE (?1 IS NULL OR site = ?1) AND (?2 IS NULL OR server_id = ?2)
                   AND (?3 OR status IN ('complete','uploading'))
                 ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map(
                params![filter.site, filter.server_id, filter.all_statuses],
                row_to_archive,
            )?;
            rows.collect()
        })
    }

    /// Mark an archive whose object was removed by retention.
    pub fn mark_deleted(&self, id: i64) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE s3_archives SET status = 'deleted', completed_at = COALESCE(completed_at, ?2) WHERE id = ?1",
                params![id, now_rfc3339()],
            )?;
            Ok(())
        })
    }

    /// Runs left `running` by a process that died. Only call this while
    /// holding the site's lock.
    pub fn fail_stale_runs(&self, site: &str) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE backup_runs SET outcome = 'failed', error = 'interrupted: the process stopped during the run', finished_at = ?2
                 WHERE site = ?1 AND outcome = 'running'",
                params![site, now_rfc3339()],
            )?;
            Ok(())
        })
    }

    /// The newest complete archive's creation time for a site.
    pub fn last_complete_at(&self, site: &str) -> CatalogResult<Option<String>> {
        self.with(|c| {
            c.query_row(
                "SELECT created_at FROM s3_archives WHERE site = ?1 AND status = 'complete' ORDER BY created_at DESC LIMIT 1",
                params![site],
                |r| r.get(0),
            )
            .optional()
        })
    }

    pub fn archive(&self, id: i64) -> CatalogResult<Option<ArchiveRow>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {ARCHIVE_COLUMNS} FROM s3_archives WHERE id = ?1"),
                params![id],
                row_to_archive,
            )
            .optional()
        })
    }

    pub fn run(&self, id: i64) -> CatalogResult<Option<RunRow>> {
        self.with(|c| {
            let run = c
                .query_row(
                    "SELECT id, site, trigger, started_at, finished_at, outcome, archive_id, error, warnings FROM backup_runs WHERE id = ?1",
                    params![id],
                    |r| {
                        let warnings: String = r.get(8)?;
                        Ok(RunRow {
                            id: r.get(0)?,
                            site: r.get(1)?,
                            trigger: r.get(2)?,
                            started_at: r.get(3)?,
                            finished_at: r.get(4)?,
                            outcome: r.get(5)?,
                            archive_id: r.get(6)?,
                            error: r.get(7)?,
                            warnings: serde_json::from_str(&warnings).unwrap_or_default(),
                            attempts: Vec::new(),
                        })
                    },
                )
                .optional()?;
            let Some(mut run) = run else { return Ok(None) };
            let mut stmt = c.prepare(
                "SELECT server_id, endpoint, outcome, reason FROM run_attempts WHERE run_id = ?1 ORDER BY id",
            )?;
            run.attempts = stmt
                .query_map(params![id], |r| {
                    Ok(Attempt {
                        server_id: r.get(0)?,
                        endpoint: r.get(1)?,
                        outcome: r.get(2)?,
                        reason: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Some(run))
        })
    }
}

/// The columns [`row_to_archive`] reads, in its order: every query that
/// returns [`ArchiveRow`]s selects exactly these.
const ARCHIVE_COLUMNS: &str =
    "id, site, server_id, endpoint, bucket, key, size_bytes, sha256, created_at, status, error, verified_at,
     verify_outcome, verify_error, suspect, suspect_reason";

fn row_to_archive(r: &rusqlite::Row<'_>) -> rusqlite::Result<ArchiveRow> {
    Ok(ArchiveRow {
        id: r.get(0)?,
        site: r.get(1)?,
        server_id: r.get(2)?,
        endpoint: r.get(3)?,
        bucket: r.get(4)?,
        key: r.get(5)?,
        size_bytes: r.get::<_, i64>(6)?.max(0) as u64,
        sha256: r.get(7)?,
        created_at: r.get(8)?,
        status: r.get(9)?,
        error: r.get(10)?,
        verified_at: r.get(11)?,
        verify_outcome: r.get(12)?,
        verify_error: r.get(13)?,
        suspect: r.get(14)?,
        suspect_reason: r.get(15)?,
    })
}

fn migrate(conn: &mut Connection, path: &Path) -> CatalogResult<()> {
    crate::sqlite::migrate(conn, MIGRATIONS).map_err(|e| match e {
        crate::sqlite::MigrateError::Sqlite(source) => CatalogError::Sqlite {
            path: path.to_path_buf(),
            source,
        },
        crate::sqlite::MigrateError::TooNew { found, known } => CatalogError::TooNew {
            path: path.to_path_buf(),
            found,
            known,
        },
    })
}

#[cfg(test)]
mod tests;
