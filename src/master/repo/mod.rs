//! The master's database behind one repository type, [`Repo`]: every query
//! of the master is a method here (split by subject over the files of this
//! folder), so another backend (PostgreSQL for an HA master) can be added
//! beside it without touching the API.
//!
//! SQLite in WAL mode: one writer connection (writes are serialised and
//! start with `BEGIN IMMEDIATE`, so a read-check-write runs alone, also
//! against the admin commands of another process) and a small pool of
//! reader connections, so leases read in parallel. Synchronous: async code
//! calls it through `spawn_blocking`.

mod archives;
mod nodes;
mod providers;
mod schema;
mod tokens;

pub use archives::{ArchiveRow, NewArchive, ReconcileChanges};
pub use nodes::{LeaseSnapshot, NodeRow, SiteRow};
pub use providers::{NewProvider, ProviderRow, ProviderUpdate};
pub use tokens::{Principal, Role, TokenRow};

use super::{MasterError, MasterResult};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// File name of the database in the state directory.
pub const DB_FILE: &str = "master.db";
/// Reader connections kept open.
const MAX_IDLE_READERS: usize = 64;

pub struct Repo {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo").field("path", &self.path).finish_non_exhaustive()
    }
}

pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn parse_time(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

pub(crate) fn parse_opt_time(s: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_time).transpose()
}

pub(crate) fn parse_uuid(s: &str) -> rusqlite::Result<uuid::Uuid> {
    uuid::Uuid::parse_str(s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

/// Sizes are `u64` in Rust and `INTEGER` (i64) in SQLite.
pub(crate) fn to_i64(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Repo {
    /// Create the database (and the state directory, 0700) if needed and
    /// migrate it: `master init`.
    pub fn create(state_dir: &Path) -> MasterResult<Repo> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|e| MasterError::Setup(format!("cannot create {}: {e}", state_dir.display())))?;
        Self::open_at(&state_dir.join(DB_FILE), true)
    }

    /// Open an existing database: every command but `init`.
    pub fn open(state_dir: &Path) -> MasterResult<Repo> {
        let path = state_dir.join(DB_FILE);
        if !path.exists() {
            return Err(MasterError::Setup(format!(
                "{} does not exist: run `sitebackup master init` first",
                path.display()
            )));
        }
        Self::open_at(&path, false)
    }

    fn open_at(path: &Path, create: bool) -> MasterResult<Repo> {
        let mut conn = Self::connect(path, create)?;
        let db = |source| MasterError::Db {
            path: path.display().to_string(),
            source,
        };
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        crate::sqlite::migrate(&mut conn, schema::MIGRATIONS).map_err(|e| match e {
            crate::sqlite::MigrateError::Sqlite(source) => db(source),
            other => MasterError::Setup(format!("{}: {other}", path.display())),
        })?;
        Ok(Repo {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        })
    }

    fn connect(path: &Path, create: bool) -> MasterResult<Connection> {
        let db = |source| MasterError::Db {
            path: path.display().to_string(),
            source,
        };
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        Ok(conn)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db_err(&self, source: rusqlite::Error) -> MasterError {
        if let rusqlite::Error::SqliteFailure(e, _) = &source
            && matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
        {
            return MasterError::Unavailable("the database is busy; try again".into());
        }
        MasterError::Db {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Run `f` on a reader connection (one of the pool, or a new one).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> MasterResult<T> {
        let conn = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = Self::connect(&self.path, false)?;
                c.pragma_update(None, "query_only", true).map_err(|e| self.db_err(e))?;
                c
            }
        };
        let result = f(&conn).map_err(|e| self.db_err(e));
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < MAX_IDLE_READERS {
            pool.push(conn);
        }
        result
    }

    /// Run `f` in a write transaction (`BEGIN IMMEDIATE`), committed when
    /// it returns `Ok`.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> MasterResult<T>) -> MasterResult<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db_err(e))?;
        let value = f(&tx)?;
        tx.commit().map_err(|e| self.db_err(e))?;
        Ok(value)
    }

    /// A `rusqlite` error inside [`write`](Self::write), as a master error.
    pub(crate) fn sql(&self) -> impl Fn(rusqlite::Error) -> MasterError + '_ {
        move |e| self.db_err(e)
    }

    /// `meta.primary_key_id`: the key new secrets are sealed with.
    pub fn primary_key_id(&self) -> MasterResult<Option<String>> {
        self.read(|c| {
            c.query_row("SELECT value FROM meta WHERE name = 'primary_key_id'", [], |r| r.get(0))
                .optional()
        })
    }

    pub(crate) fn primary_key_id_tx(&self, tx: &Transaction<'_>) -> MasterResult<String> {
        tx.query_row("SELECT value FROM meta WHERE name = 'primary_key_id'", [], |r| r.get(0))
            .optional()
            .map_err(self.sql())?
            .ok_or_else(|| MasterError::Setup("the database names no key: run `sitebackup master init`".into()))
    }

    pub(crate) fn set_primary_key_id_tx(&self, tx: &Transaction<'_>, id: &str) -> MasterResult<()> {
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ('primary_key_id', ?1)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            [id],
        )
        .map_err(self.sql())?;
        Ok(())
    }

    /// Set the key id if none is set yet (`master init`).
    pub fn init_key_id(&self, id: &str) -> MasterResult<bool> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "INSERT INTO meta (name, value) VALUES ('primary_key_id', ?1) ON CONFLICT (name) DO NOTHING",
                    [id],
                )
                .map_err(self.sql())?;
            Ok(n == 1)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
