//! The catalog's typed states. Each maps to the TEXT values its column's
//! `CHECK` constraint allows, through rusqlite's `ToSql`/`FromSql`, so a
//! `match` is checked for completeness and a misspelt state does not
//! compile. An unknown value read back is an error, not a default.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::Serialize;
use std::fmt;

/// Defines a string-backed enum with `as_str`, `Display`, `FromStr`,
/// serde (lower-case) and SQL mappings.
macro_rules! sql_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the catalog and shown to operators.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(concat!("unknown ", stringify!($name), " {:?}"), other)),
                }
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e: String| FromSqlError::Other(e.into()))
            }
        }
    };
}

sql_enum! {
    /// `s3_archives.status`.
    ArchiveStatus {
        /// The row is written before the first byte goes out.
        Uploading => "uploading",
        /// The server confirmed the upload.
        Complete => "complete",
        /// The upload failed or was interrupted; nothing is stored.
        Failed => "failed",
        /// Removed by retention.
        Deleted => "deleted",
        /// Reconcile found the object gone from its server.
        Missing => "missing",
    }
}

sql_enum! {
    /// `run_attempts.outcome`: what happened to one server within a run.
    AttemptOutcome {
        Skipped => "skipped",
        Failed => "failed",
        Succeeded => "succeeded",
    }
}

sql_enum! {
    /// `backup_runs.outcome`.
    RunOutcome {
        Running => "running",
        Success => "success",
        /// Stored, with warnings (unreadable or changed files, a failed
        /// optional hook).
        Warning => "warning",
        Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    /// Every state survives a round trip through SQLite, and each column's
    /// CHECK constraint (from the real migrations) accepts every value.
    #[test]
    fn states_round_trip_through_the_real_schema() {
        let dir = tempfile::tempdir().unwrap();
        let cat = crate::catalog::Catalog::open(dir.path()).unwrap();
        let conn = Connection::open(cat.path()).unwrap();
        for s in ArchiveStatus::ALL {
            conn.execute(
                "INSERT INTO s3_archives (site, server_id, endpoint, bucket, key, created_at, status)
                 VALUES ('a', 1, 'e', 'b', 'k', 't', ?1)",
                [s],
            )
            .unwrap();
            let back: ArchiveStatus = conn
                .query_row("SELECT status FROM s3_archives ORDER BY id DESC LIMIT 1", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(back, *s);
        }
        for o in RunOutcome::ALL {
            conn.execute(
                "INSERT INTO backup_runs (site, trigger, started_at, outcome) VALUES ('a', 'm', 't', ?1)",
                [o],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO backup_runs (site, trigger, started_at, outcome) VALUES ('a', 'm', 't', 'running')",
            [],
        )
        .unwrap();
        for o in AttemptOutcome::ALL {
            conn.execute(
                "INSERT INTO run_attempts (run_id, server_id, endpoint, outcome, reason, at) VALUES (1, 1, 'e', ?1, 'r', 't')",
                [o],
            )
            .unwrap();
        }
        let bad: rusqlite::Result<ArchiveStatus> = conn.query_row("SELECT 'complet'", [], |r| r.get(0));
        assert!(bad.is_err());
    }

    #[test]
    fn text_matches_serde() {
        for s in ArchiveStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
            assert_eq!(s.as_str().parse::<ArchiveStatus>().unwrap(), *s);
        }
    }
}
