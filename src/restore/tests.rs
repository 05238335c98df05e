#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::archive::{ArchiveSpec, DatabaseEntry, write_archive};
use crate::config::{ServerConfig, ServerKind};
use crate::storage::{LocalStore, ObjectStore, Target, sidecar_key};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const KEY: &str = "host/2024/12/25/blog-backup-20241225-083000.tar.zst";

/// A local store holding one archive of a small tree, with a sidecar
/// carrying `sidecar_sha` (the real checksum when `None`).
async fn setup(dir: &Path, sidecar_sha: Option<&str>) -> (Located, String) {
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("sub")).unwrap();
    std::fs::write(site.join("sub/a.txt"), b"hello").unwrap();
    std::os::unix::fs::symlink("sub/a.txt", site.join("link")).unwrap();
    let dump = dir.join("dump.sql");
    std::fs::write(&dump, b"CREATE TABLE t (x INT);\n").unwrap();
    let spec = ArchiveSpec {
        site: "blog".into(),
        host_id: "host".into(),
        root: site,
        excludes: crate::archive::Excludes::none(),
        created_at: "2024-12-25T08:30:00Z".into(),
        zstd_level: 3,
        zstd_threads: 0,
        database: Some(DatabaseEntry {
            entry: "database/wp_blog.sql".into(),
            path: dump,
            size: 24,
            manifest: serde_json::json!({ "name": "wp_blog" }),
        }),
    };
    let (_, bytes) = write_archive(&spec, Vec::new(), &Arc::new(AtomicU64::new(0))).unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let root = dir.join("store");
    std::fs::create_dir_all(&root).unwrap();
    let store = Arc::new(LocalStore::new(1, root.clone()));
    store.put_small(KEY, Bytes::from(bytes.clone())).await.unwrap();
    let sidecar = format!("{}  x.tar.zst\n", sidecar_sha.unwrap_or(&sha));
    store.put_small(&sidecar_key(KEY), Bytes::from(sidecar)).await.unwrap();
    let located = Located {
        server: Target::from_config(
            &ServerConfig {
                id: 1,
                storage_limit_bytes: u64::MAX,
                kind: ServerKind::Local { path: root },
            },
            &Default::default(),
            0,
        ),
        store,
        key: KEY.into(),
        row: None,
        size: Some(bytes.len() as u64),
        metadata: BTreeMap::new(),
    };
    (located, sha)
}

fn opts(keep_partial: bool) -> RestoreOptions {
    RestoreOptions {
        selection: crate::archive::extract::Selection::all(),
        extract: ExtractOptions::for_current_user(),
        keep_partial,
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_good_archive_is_published_with_nothing_else_left() {
    let tmp = tempfile::tempdir().unwrap();
    let (located, sha) = setup(tmp.path(), None).await;
    let progress = DownloadProgress::default();
    let out = tmp.path().join("out");
    let report = restore_to(&located, &out, opts(false), &progress, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.sha256, sha);
    assert_eq!(
        report.checked_against,
        vec![Reference {
            source: super::locate::ReferenceKind::Sidecar,
            sha256: sha.clone()
        }]
    );
    assert_eq!(names(&out), ["database", "files", "manifest.json"]);
    assert_eq!(std::fs::read(out.join("files/sub/a.txt")).unwrap(), b"hello");
    assert_eq!(report.manifest.unwrap()["site"], "blog");
    assert_eq!(report.database_dumps, vec![out.join("database/wp_blog.sql")]);
    assert_eq!(
        std::fs::read(out.join("database/wp_blog.sql")).unwrap(),
        b"CREATE TABLE t (x INT);\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("database"), mode("database/wp_blog.sql")), (0o700, 0o600));
    assert_eq!(progress.done.load(Ordering::Relaxed), located.size.unwrap());

    let v = verify(
        "x",
        &located,
        Default::default(),
        &DownloadProgress::default(),
        &CancellationToken::new(),
    )
    .await;
    assert!(v.ok, "{v:?}");
    assert_eq!(v.outcome, VerifyOutcome::Ok);
    assert_eq!(v.site.as_deref(), Some("blog"));
}

#[tokio::test]
async fn a_checksum_mismatch_removes_the_partial_tree_or_keeps_it_marked() {
    let tmp = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let (located, _) = setup(tmp.path(), Some(&wrong)).await;
    let out = tmp.path().join("out");
    let err = restore_to(
        &located,
        &out,
        opts(false),
        &DownloadProgress::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, RestoreError::Aborted { error, .. } if matches!(**error, RestoreError::ChecksumMismatch { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("partial tree was removed"), "{err}");
    assert!(!out.exists(), "the restore created DIR and removed it again");

    std::fs::create_dir(&out).unwrap();
    let err = restore_to(
        &located,
        &out,
        opts(true),
        &DownloadProgress::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("NOT TRUSTWORTHY"), "{err}");
    assert_eq!(names(&out), [UNTRUSTED_DIR]);

    let v = verify(
        "x",
        &located,
        Default::default(),
        &DownloadProgress::default(),
        &CancellationToken::new(),
    )
    .await;
    assert!(!v.ok);
    assert_eq!(v.outcome, VerifyOutcome::Corrupt, "read to the end, checksum differs");
    assert!(v.error.unwrap().contains("checksum mismatch"));
}

#[tokio::test]
async fn a_cancelled_restore_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (located, _) = setup(tmp.path(), None).await;
    let out = tmp.path().join("out");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = restore_to(&located, &out, opts(false), &DownloadProgress::default(), &cancel)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RestoreError::Aborted { error, .. } if matches!(**error, RestoreError::Cancelled)),
        "{err}"
    );
    assert!(!out.exists());
}

#[tokio::test]
async fn without_any_recorded_checksum_verify_fails_and_restore_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let (located, _) = setup(tmp.path(), None).await;
    located.store.delete(&sidecar_key(KEY)).await.unwrap();
    let v = verify(
        "x",
        &located,
        Default::default(),
        &DownloadProgress::default(),
        &CancellationToken::new(),
    )
    .await;
    assert!(!v.ok);
    assert_eq!(v.outcome, VerifyOutcome::Inconclusive, "nothing to compare with");
    assert!(v.error.unwrap().contains("no recorded checksum"));
    let report = restore_to(
        &located,
        &tmp.path().join("out"),
        opts(false),
        &DownloadProgress::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(report.checked_against.is_empty());
    assert!(
        report.warnings.iter().any(|w| w.contains("cannot be proven intact")),
        "{:?}",
        report.warnings
    );
}

/// Only a download that reached the end and found a mismatch proves an
/// archive corrupt; a failure to read it proves nothing.
#[tokio::test]
async fn verify_tells_corruption_from_a_failed_download() {
    let tmp = tempfile::tempdir().unwrap();
    let (located, _) = setup(tmp.path(), None).await;
    let run = |cancel: CancellationToken| {
        let located = &located;
        async move { verify("x", located, Default::default(), &DownloadProgress::default(), &cancel).await }
    };

    let cancel = CancellationToken::new();
    cancel.cancel();
    let v = run(cancel).await;
    assert_eq!((v.ok, v.outcome), (false, VerifyOutcome::Inconclusive), "{v:?}");

    // Not a tar.zst at all, though its checksum file matches: the format
    // is damaged.
    let garbage = Bytes::from(vec![0x5a_u8; 4096]);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&garbage));
    located.store.put_small(KEY, garbage).await.unwrap();
    let sidecar = Bytes::from(format!("{sha}  x.tar.zst\n"));
    located.store.put_small(&sidecar_key(KEY), sidecar).await.unwrap();
    let v = run(CancellationToken::new()).await;
    assert_eq!(v.outcome, VerifyOutcome::Corrupt, "{v:?}");
    assert!(v.error.unwrap().contains("damaged"));

    // Gone from the server: that is reconcile's business, not damage.
    located.store.delete(KEY).await.unwrap();
    let v = run(CancellationToken::new()).await;
    assert_eq!(v.outcome, VerifyOutcome::Inconclusive, "{v:?}");
}

#[test]
fn the_target_must_be_new_or_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("x"), b"").unwrap();
    let err = prepare_target(&full).unwrap_err();
    assert!(err.to_string().contains("is not empty"), "{err}");
    let file = tmp.path().join("file");
    std::fs::write(&file, b"").unwrap();
    assert!(
        prepare_target(&file)
            .unwrap_err()
            .to_string()
            .contains("not a directory")
    );
    let p = prepare_target(&tmp.path().join("new/deeper")).unwrap();
    assert!(p.created_target && p.staging.is_dir());
}
