//! The catalog's typed states. Each maps to the TEXT values its column's
//! `CHECK` constraint allows, through rusqlite's `ToSql`/`FromSql`, so a
//! `match` is checked for completeness and a misspelt state does not
//! compile. An unknown value read back is an error, not a default.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::Serialize;
use std::fmt;

/// Defines a string-backed enum with `as_str`, `Display`, `FromStr`,
/// serde (snake_case, the same text) and SQL mappings.
macro_rules! sql_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "snake_case")]
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

sql_enum! {
    /// `s3_archives.verify_outcome`: what the last `verify` proved.
    VerifyOutcome {
        /// Read to the end: the checksum matched every recorded one, and
        /// it read as a tar.zst archive with its manifest.
        Ok => "ok",
        /// Read to the end, and the checksum or the format did not match:
        /// the stored object is damaged. Retention removes it.
        Corrupt => "corrupt",
        /// The verify failed without proving damage: a download error (a
        /// dead or slow server), an interruption, no recorded checksum to
        /// compare with, or no manifest (an archive from another tool).
        Inconclusive => "inconclusive",
    }
}

/// A verify that did not run proves nothing.
impl Default for VerifyOutcome {
    fn default() -> Self {
        VerifyOutcome::Inconclusive
    }
}

sql_enum! {
    /// `s3_archives.suspect`: why a stored archive looks wrong. A suspect
    /// archive is kept, but fills no retention slot.
    SuspectCause {
        /// The site directory had no files (an unmounted volume?).
        EmptySite => "empty_site",
        /// Much smaller than the site's previous complete archive.
        Shrunk => "shrunk",
    }
}

/// What retention makes of an archive: derived from the verify outcome and
/// the suspect marking (never stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    Clean,
    Suspect,
    Corrupt,
}

impl Condition {
    pub fn of(verify: Option<VerifyOutcome>, suspect: Option<SuspectCause>) -> Self {
        match (verify, suspect) {
            (Some(VerifyOutcome::Corrupt), _) => Condition::Corrupt,
            (_, Some(_)) => Condition::Suspect,
            _ => Condition::Clean,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Clean => "clean",
            Condition::Suspect => "suspect",
            Condition::Corrupt => "corrupt",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
        for v in VerifyOutcome::ALL {
            conn.execute("UPDATE s3_archives SET verify_outcome = ?1", [v]).unwrap();
            let back: VerifyOutcome = conn
                .query_row("SELECT verify_outcome FROM s3_archives LIMIT 1", [], |r| r.get(0))
                .unwrap();
            assert_eq!(back, *v);
        }
        for c in SuspectCause::ALL {
            conn.execute("UPDATE s3_archives SET suspect = ?1", [c]).unwrap();
            let back: SuspectCause = conn
                .query_row("SELECT suspect FROM s3_archives LIMIT 1", [], |r| r.get(0))
                .unwrap();
            assert_eq!(back, *c);
        }
        assert!(
            conn.execute("UPDATE s3_archives SET verify_outcome = 'broken'", [])
                .is_err()
        );
        assert!(conn.execute("UPDATE s3_archives SET suspect = 'odd'", []).is_err());
        let bad: rusqlite::Result<ArchiveStatus> = conn.query_row("SELECT 'complet'", [], |r| r.get(0));
        assert!(bad.is_err());
    }

    #[test]
    fn corrupt_wins_over_suspect() {
        use Condition as C;
        assert_eq!(C::of(None, None), C::Clean);
        assert_eq!(C::of(Some(VerifyOutcome::Inconclusive), None), C::Clean);
        assert_eq!(C::of(Some(VerifyOutcome::Ok), Some(SuspectCause::Shrunk)), C::Suspect);
        assert_eq!(
            C::of(Some(VerifyOutcome::Corrupt), Some(SuspectCause::EmptySite)),
            C::Corrupt
        );
    }

    #[test]
    fn text_matches_serde() {
        fn check<T: Serialize + std::str::FromStr + PartialEq + fmt::Debug + Copy>(
            all: &[T],
            text: fn(T) -> &'static str,
        ) where
            T::Err: fmt::Debug,
        {
            for v in all {
                assert_eq!(serde_json::to_value(v).unwrap(), serde_json::json!(text(*v)));
                assert_eq!(text(*v).parse::<T>().unwrap(), *v);
            }
        }
        check(ArchiveStatus::ALL, ArchiveStatus::as_str);
        check(AttemptOutcome::ALL, AttemptOutcome::as_str);
        check(RunOutcome::ALL, RunOutcome::as_str);
        check(VerifyOutcome::ALL, VerifyOutcome::as_str);
        check(SuspectCause::ALL, SuspectCause::as_str);
        for c in [Condition::Clean, Condition::Suspect, Condition::Corrupt] {
            assert_eq!(serde_json::to_value(c).unwrap(), serde_json::json!(c.as_str()));
        }
    }
}
