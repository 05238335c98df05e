//! SQLite helpers shared by the node's catalog and the master's database:
//! numbered schema migrations tracked with `PRAGMA user_version`.
//!
//! Migrations are append-only lists of SQL batches; `user_version` is the
//! count applied. Each batch runs in its own transaction with the version
//! bump, so a crash leaves the schema at a whole version. A database newer
//! than the binary is refused rather than guessed at.

use rusqlite::Connection;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("schema version {found} is newer than this sitebackup knows ({known}); upgrade sitebackup")]
    TooNew { found: i64, known: i64 },
}

/// Apply the migrations `conn` has not had yet, in order.
pub fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<(), MigrateError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = migrations.len() as i64;
    if current > known {
        return Err(MigrateError::TooNew { found: current, known });
    }
    for (i, sql) in migrations.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_once_in_order_and_refuses_newer() {
        let mut c = Connection::open_in_memory().unwrap();
        let v1 = ["CREATE TABLE a (x INTEGER);"];
        migrate(&mut c, &v1).unwrap();
        let v2 = ["CREATE TABLE a (x INTEGER);", "ALTER TABLE a ADD COLUMN y TEXT;"];
        migrate(&mut c, &v2).unwrap();
        migrate(&mut c, &v2).unwrap();
        let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, 2);
        assert!(matches!(
            migrate(&mut c, &v1),
            Err(MigrateError::TooNew { found: 2, known: 1 })
        ));
    }

    #[test]
    fn a_failing_batch_leaves_the_previous_version() {
        let mut c = Connection::open_in_memory().unwrap();
        let bad = [
            "CREATE TABLE a (x INTEGER);",
            "CREATE TABLE b (x); SELECT nonsense FROM nowhere;",
        ];
        assert!(migrate(&mut c, &bad).is_err());
        let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, 1);
        let b: i64 = c
            .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'b'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(b, 0);
    }
}
