use super::*;

fn here() -> ServerRef {
    ServerRef::new("h:1", "b")
}

fn new_archive<'a>(location: &'a ServerRef, run_id: i64, key: &'a str, created_at: &'a str) -> NewArchive<'a> {
    NewArchive {
        run_id,
        site: "blog",
        server_id: 1,
        location,
        key,
        created_at,
    }
}

#[test]
fn usage_counts_only_complete_archives() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(dir.path()).unwrap();
    let loc = here();
    let run = cat.start_run("blog", "manual").unwrap();
    let a = cat
        .insert_uploading(&new_archive(&loc, run, "k1", "2024-01-01T00:00:00Z"))
        .unwrap();
    let b = cat
        .insert_uploading(&new_archive(&loc, run, "k2", "2024-01-02T00:00:00Z"))
        .unwrap();
    let _c = cat
        .insert_uploading(&new_archive(&loc, run, "k3", "2024-01-03T00:00:00Z"))
        .unwrap();
    assert_eq!(cat.usage(&here()).unwrap(), 0);
    cat.mark_complete(a, 1000, "aa").unwrap();
    cat.mark_failed(b, "boom").unwrap();
    assert_eq!(cat.usage(&here()).unwrap(), 1000);
    assert_eq!(cat.usage(&ServerRef::new("h:1", "other")).unwrap(), 0);
    assert_eq!(cat.last_archive_size("blog").unwrap(), Some(1000));
    assert!(cat.key_exists("k1").unwrap());
    assert!(!cat.key_exists("k2").unwrap());
}

#[test]
fn reopening_does_not_rerun_migrations() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cat = Catalog::open(dir.path()).unwrap();
        cat.start_run("blog", "manual").unwrap();
    }
    let cat = Catalog::open(dir.path()).unwrap();
    assert!(cat.run(1).unwrap().is_some());
    let version: i64 = cat
        .with(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
        .unwrap();
    assert_eq!(version, MIGRATIONS.len() as i64);
}

#[test]
fn a_second_connection_reads_while_a_write_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Catalog::open(dir.path()).unwrap();
    let run = writer.start_run("blog", "manual").unwrap();
    let loc = here();
    writer
        .insert_uploading(&new_archive(&loc, run, "k1", "2024-01-01T00:00:00Z"))
        .unwrap();
    // Hold a write transaction open on the writer.
    writer
        .with(|c| c.execute_batch("BEGIN IMMEDIATE; UPDATE s3_archives SET size_bytes = 5;"))
        .unwrap();
    let reader = Catalog::open(dir.path()).unwrap();
    let rows = reader.list(&ListFilter::default()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].size_bytes, 0, "reader sees the last committed state");
    writer.with(|c| c.execute_batch("COMMIT;")).unwrap();
    assert_eq!(reader.list(&ListFilter::default()).unwrap()[0].size_bytes, 5);
}

#[test]
fn runs_keep_attempts_and_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(dir.path()).unwrap();
    let run = cat.start_run("blog", "manual").unwrap();
    cat.record_attempt(
        run,
        &Attempt {
            server_id: 1,
            endpoint: "h:1".into(),
            outcome: AttemptOutcome::Skipped,
            reason: "no room".into(),
        },
    )
    .unwrap();
    cat.finish_run(run, RunOutcome::Warning, None, None, &["file vanished".into()])
        .unwrap();
    let row = cat.run(run).unwrap().unwrap();
    assert_eq!(row.outcome, RunOutcome::Warning);
    assert_eq!(row.warnings, vec!["file vanished".to_string()]);
    assert_eq!(row.attempts[0].reason, "no room");
}

/// A catalog written before verify outcomes were a state: a passed verify
/// becomes `ok`; a failed one could have been a dead server, so it becomes
/// `inconclusive`, never `corrupt`.
#[test]
fn old_verify_results_migrate_without_inventing_corruption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join("catalog.db")).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        for (key, ok) in [("a", Some(true)), ("b", Some(false)), ("c", None)] {
            conn.execute(
                "INSERT INTO s3_archives (site, server_id, endpoint, bucket, key, created_at, status, verify_ok)
                 VALUES ('blog', 1, 'h:1', 'b', ?1, '2024-01-01T00:00:00Z', 'complete', ?2)",
                params![key, ok],
            )
            .unwrap();
        }
    }
    let cat = Catalog::open(dir.path()).unwrap();
    let outcome = |key: &str| cat.archive_by_key(key).unwrap().unwrap().verify_outcome;
    assert_eq!(outcome("a"), Some(VerifyOutcome::Ok));
    assert_eq!(outcome("b"), Some(VerifyOutcome::Inconclusive));
    assert_eq!(outcome("c"), None);
    let row = cat.archive_by_key("b").unwrap().unwrap();
    assert_eq!((row.condition(), row.suspect), (Condition::Clean, None));
}
