//! Catalog queries for `restore`, `verify` and `reconcile`: look-ups by key
//! and by server, verification results, and the corrections reconcile
//! makes (import, missing, size, found again). Usage is the sum of
//! `complete` rows, so these corrections are what fixes usage.

use super::{
    ARCHIVE_COLUMNS as COLUMNS, ArchiveRow, Catalog, CatalogResult, SuspectCause, VerifyOutcome, now_rfc3339,
    row_to_archive,
};
use crate::layout::ServerRef;
use rusqlite::{OptionalExtension, params};

/// An object found in a bucket that the catalog did not know as complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedArchive {
    pub site: String,
    pub server_id: u32,
    pub location: ServerRef,
    pub key: String,
    pub size_bytes: u64,
    pub sha256: Option<String>,
    pub created_at: String,
}

/// A row still `uploading`, with its multipart upload id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadingRow {
    pub id: i64,
    pub site: String,
    pub endpoint: String,
    pub bucket: String,
    pub key: String,
    pub upload_id: Option<String>,
    /// Size and checksum, once the archive was fully sent (recorded before
    /// the upload is completed; see [`Catalog::record_checksum`]).
    pub size_bytes: u64,
    pub sha256: Option<String>,
}

impl UploadingRow {
    /// The server the upload went to.
    pub fn location(&self) -> ServerRef {
        ServerRef::new(self.endpoint.clone(), self.bucket.clone())
    }
}

impl Catalog {
    /// The row for an object key: the `complete` one if any, else the newest.
    pub fn archive_by_key(&self, key: &str) -> CatalogResult<Option<ArchiveRow>> {
        self.with(|c| {
            c.query_row(
                &format!(
                    "SELECT {COLUMNS} FROM s3_archives WHERE key = ?1
                     ORDER BY status = 'complete' DESC, id DESC LIMIT 1"
                ),
                params![key],
                row_to_archive,
            )
            .optional()
        })
    }

    /// Every row (any status) recorded on one server.
    pub fn archives_on(&self, location: &ServerRef) -> CatalogResult<Vec<ArchiveRow>> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM s3_archives WHERE endpoint = ?1 AND bucket = ?2 ORDER BY key, id"
            ))?;
            let rows = stmt.query_map(params![location.endpoint, location.bucket], row_to_archive)?;
            rows.collect()
        })
    }

    pub fn uploading_rows(&self) -> CatalogResult<Vec<UploadingRow>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, site, endpoint, bucket, key, upload_id, size_bytes, sha256 FROM s3_archives WHERE status = 'uploading' ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(UploadingRow {
                    id: r.get(0)?,
                    site: r.get(1)?,
                    endpoint: r.get(2)?,
                    bucket: r.get(3)?,
                    key: r.get(4)?,
                    upload_id: r.get(5)?,
                    size_bytes: r.get::<_, i64>(6)?.max(0) as u64,
                    sha256: r.get(7)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Install ids whose prefixes this installation adopted.
    pub fn adopted_installs(&self) -> CatalogResult<Vec<String>> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT install_id FROM adopted_installs ORDER BY adopted_at")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// Remember that this installation took over `install_id`'s prefixes.
    pub fn adopt_install(&self, install_id: &str, host: &str) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO adopted_installs (install_id, host, adopted_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (install_id) DO NOTHING",
                params![install_id, host, now_rfc3339()],
            )?;
            Ok(())
        })
    }

    /// Record the time and outcome of a `verify` of archive `id`. An
    /// inconclusive verify (the server was down) does not undo an earlier
    /// `corrupt` finding: only a verify that reads the archive intact does.
    pub fn record_verification(
        &self,
        id: i64,
        at: &str,
        outcome: VerifyOutcome,
        error: Option<&str>,
    ) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE s3_archives SET verified_at = ?2, verify_outcome = ?3, verify_error = ?4
                 WHERE id = ?1 AND NOT (?3 = 'inconclusive' AND verify_outcome IS 'corrupt')",
                params![id, at, outcome, error],
            )?;
            Ok(())
        })
    }

    /// Mark a stored archive suspect (see [`SuspectCause`]), with the
    /// warning the backup gave.
    pub fn mark_suspect(&self, id: i64, cause: SuspectCause, reason: &str) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE s3_archives SET suspect = ?2, suspect_reason = ?3 WHERE id = ?1",
                params![id, cause, reason],
            )?;
            Ok(())
        })
    }

    /// The object is gone from its server: the row stops counting in usage.
    pub fn mark_missing(&self, id: i64) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE s3_archives SET status = 'missing', error = ?2 WHERE id = ?1",
                params![
                    id,
                    format!("object not found on the server by reconcile at {}", now_rfc3339())
                ],
            )?;
            Ok(())
        })
    }

    /// The object exists after all (a `missing`, `failed`, `deleted` or
    /// interrupted `uploading` row): make the row `complete` with the size
    /// seen on the server. A known checksum is kept when none is given.
    pub fn mark_present(&self, id: i64, size: u64, sha256: Option<&str>) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE s3_archives SET status = 'complete', size_bytes = ?2, sha256 = COALESCE(?3, sha256),
                        completed_at = COALESCE(completed_at, ?4), upload_id = NULL, error = NULL
                 WHERE id = ?1",
                params![id, size as i64, sha256, now_rfc3339()],
            )?;
            Ok(())
        })
    }

    /// Add a `complete` row for an object the catalog did not know.
    pub fn import_archive(&self, a: &ImportedArchive) -> CatalogResult<i64> {
        self.with(|c| {
            c.execute(
                "INSERT INTO s3_archives (site, server_id, endpoint, bucket, key, size_bytes, sha256, created_at, completed_at, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'complete')",
                params![
                    a.site,
                    a.server_id,
                    a.location.endpoint,
                    a.location.bucket,
                    a.key,
                    a.size_bytes as i64,
                    a.sha256,
                    a.created_at,
                    now_rfc3339()
                ],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Correct a row's size to what the server reports.
    pub fn update_size(&self, id: i64, size: u64) -> CatalogResult<()> {
        self.with(|c| {
            c.execute(
                "UPDATE s3_archives SET size_bytes = ?2 WHERE id = ?1",
                params![id, size as i64],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ArchiveStatus, NewArchive};
    use super::*;

    fn imported(key: &str, size: u64) -> ImportedArchive {
        ImportedArchive {
            site: "blog".into(),
            server_id: 1,
            location: ServerRef::new("h:1", "b"),
            key: key.into(),
            size_bytes: size,
            sha256: Some("ab".repeat(32)),
            created_at: "2024-12-25T08:30:00Z".into(),
        }
    }

    #[test]
    fn import_missing_and_found_again_move_usage() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let id = cat
            .import_archive(&imported("h/2024/12/25/blog-backup-20241225-083000.tar.zst", 100))
            .unwrap();
        assert_eq!(cat.usage(&ServerRef::new("h:1", "b")).unwrap(), 100);
        let row = cat
            .archive_by_key("h/2024/12/25/blog-backup-20241225-083000.tar.zst")
            .unwrap()
            .unwrap();
        assert_eq!((row.id, row.status, row.size_bytes), (id, ArchiveStatus::Complete, 100));
        assert_eq!(row.sha256.as_deref(), Some("ab".repeat(32).as_str()));

        cat.update_size(id, 150).unwrap();
        assert_eq!(cat.usage(&ServerRef::new("h:1", "b")).unwrap(), 150);
        cat.mark_missing(id).unwrap();
        assert_eq!(cat.usage(&ServerRef::new("h:1", "b")).unwrap(), 0);
        assert_eq!(cat.archive(id).unwrap().unwrap().status, ArchiveStatus::Missing);
        cat.mark_present(id, 120, None).unwrap();
        let row = cat.archive(id).unwrap().unwrap();
        assert_eq!((row.status, row.size_bytes), (ArchiveStatus::Complete, 120));
        assert_eq!(row.sha256.as_deref(), Some("ab".repeat(32).as_str()), "checksum kept");
        assert_eq!(cat.usage(&ServerRef::new("h:1", "b")).unwrap(), 120);
    }

    #[test]
    fn lookup_by_key_prefers_the_complete_row() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let run = cat.start_run("blog", "manual").unwrap();
        let here = ServerRef::new("h:1", "b");
        let new = |server_id| NewArchive {
            run_id: run,
            site: "blog",
            server_id,
            location: &here,
            key: "k",
            created_at: "2024-01-01T00:00:00Z",
        };
        let done = cat.insert_uploading(&new(1)).unwrap();
        cat.mark_complete(done, 5, "cd").unwrap();
        let failed = cat.insert_uploading(&new(2)).unwrap();
        cat.set_upload_id(failed, "up-1").unwrap();
        assert_eq!(cat.archive_by_key("k").unwrap().unwrap().id, done);
        assert_eq!(cat.archives_on(&here).unwrap().len(), 2);
        let uploading = cat.uploading_rows().unwrap();
        assert_eq!(uploading.len(), 1);
        assert_eq!(uploading[0].upload_id.as_deref(), Some("up-1"));
        cat.mark_failed(failed, "boom").unwrap();
        assert!(cat.uploading_rows().unwrap().is_empty());
        assert!(cat.archive_by_key("nope").unwrap().is_none());
    }

    #[test]
    fn verification_is_recorded_and_a_dead_server_does_not_clear_corruption() {
        use super::super::Condition;
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let id = cat.import_archive(&imported("k", 1)).unwrap();
        let row = cat.archive(id).unwrap().unwrap();
        assert_eq!((row.verify_outcome, row.condition()), (None, Condition::Clean));

        cat.record_verification(id, "2025-01-01T00:00:00Z", VerifyOutcome::Inconclusive, Some("down"))
            .unwrap();
        let row = cat.archive(id).unwrap().unwrap();
        assert_eq!(row.verified_at.as_deref(), Some("2025-01-01T00:00:00Z"));
        assert_eq!(row.verify_outcome, Some(VerifyOutcome::Inconclusive));
        assert_eq!(
            row.condition(),
            Condition::Clean,
            "a transient failure is not corruption"
        );

        cat.record_verification(
            id,
            "2025-01-02T00:00:00Z",
            VerifyOutcome::Corrupt,
            Some("checksum mismatch"),
        )
        .unwrap();
        cat.record_verification(id, "2025-01-03T00:00:00Z", VerifyOutcome::Inconclusive, Some("down"))
            .unwrap();
        let row = cat.archive(id).unwrap().unwrap();
        assert_eq!(row.condition(), Condition::Corrupt);
        assert_eq!(row.verify_error.as_deref(), Some("checksum mismatch"));
        assert_eq!(row.verified_at.as_deref(), Some("2025-01-02T00:00:00Z"));

        cat.record_verification(id, "2025-01-04T00:00:00Z", VerifyOutcome::Ok, None)
            .unwrap();
        let row = cat.archive(id).unwrap().unwrap();
        assert_eq!((row.condition(), row.verify_error), (Condition::Clean, None));

        cat.mark_suspect(id, SuspectCause::EmptySite, "site directory is empty")
            .unwrap();
        let row = cat.archive(id).unwrap().unwrap();
        assert_eq!(row.suspect, Some(SuspectCause::EmptySite));
        assert_eq!(row.condition(), Condition::Suspect);
        assert_eq!(row.suspect_reason.as_deref(), Some("site directory is empty"));
    }
}
