use super::*;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::sync::Arc;

fn spec(root: &Path, exclude: &[&str]) -> ArchiveSpec {
    ArchiveSpec {
        site: "blog".into(),
        host_id: "host".into(),
        root: root.to_path_buf(),
        excludes: Excludes::from_lines(root, exclude.iter().copied()).unwrap(),
        created_at: "2024-12-25T08:30:00Z".into(),
        zstd_level: 3,
        zstd_threads: 0,
        database: None,
    }
}

fn entries(archive: &[u8]) -> Vec<(String, tar::EntryType, Vec<u8>, u32)> {
    let dec = zstd::stream::read::Decoder::new(archive).unwrap();
    let mut ar = tar::Archive::new(dec);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let mode = e.header().mode().unwrap();
        out.push((
            e.path().unwrap().display().to_string(),
            e.header().entry_type(),
            data,
            mode,
        ));
    }
    out
}

#[test]
fn archive_holds_files_dirs_symlinks_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("wp-content/uploads")).unwrap();
    std::fs::create_dir_all(root.join("wp-content/cache/x")).unwrap();
    std::fs::write(root.join("index.php"), b"<?php echo 1;").unwrap();
    std::fs::set_permissions(root.join("index.php"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::write(root.join("wp-content/cache/x/big"), vec![1u8; 1000]).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    symlink("index.php", root.join("link")).unwrap();

    let counter = Arc::new(AtomicU64::new(0));
    let (stats, out) = write_archive(&spec(root, &["wp-content/cache/**"]), Vec::new(), &counter).unwrap();
    let list = entries(&out);
    let names: Vec<&str> = list.iter().map(|e| e.0.as_str()).collect();
    assert!(names.contains(&"files/index.php"), "{names:?}");
    assert!(names.contains(&"files/empty"));
    assert!(
        !names.iter().any(|n| n.ends_with("big")),
        "excluded file archived: {names:?}"
    );
    assert_eq!(names.last(), Some(&"manifest.json"));
    let php = list.iter().find(|e| e.0 == "files/index.php").unwrap();
    assert_eq!(php.2, b"<?php echo 1;");
    assert_eq!(php.3 & 0o777, 0o640);
    let link = list.iter().find(|e| e.0 == "files/link").unwrap();
    assert_eq!(link.1, tar::EntryType::Symlink);
    assert_eq!(stats.files, 2);
    assert_eq!(stats.symlinks, 1);
    assert_eq!(counter.load(Ordering::Relaxed), 13);
    let manifest: serde_json::Value = serde_json::from_slice(&list.last().unwrap().2).unwrap();
    assert_eq!(manifest["site"], "blog");
    assert_eq!(manifest["files"], 2);
}

#[test]
fn database_dump_goes_between_files_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("site");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.php"), b"<?php").unwrap();
    let dump = dir.path().join("blog.sql");
    let sql = b"CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n".to_vec();
    std::fs::write(&dump, &sql).unwrap();
    let mut s = spec(&root, &[]);
    s.database = Some(DatabaseEntry {
        entry: "database/wp_blog.sql".into(),
        path: dump.clone(),
        size: sql.len() as u64,
        manifest: serde_json::json!({ "name": "wp_blog", "dump_bytes": sql.len() }),
    });
    let counter = Arc::new(AtomicU64::new(0));
    let (_, out) = write_archive(&s, Vec::new(), &counter).unwrap();
    let list = entries(&out);
    let names: Vec<&str> = list.iter().map(|e| e.0.as_str()).collect();
    let n = names.len();
    assert_eq!(
        &names[n - 3..],
        &["database", "database/wp_blog.sql", "manifest.json"],
        "{names:?}"
    );
    assert!(names[..n - 3].iter().all(|n| n.starts_with("files")), "{names:?}");
    let entry = &list[n - 2];
    assert_eq!(entry.2, sql);
    assert_eq!(entry.3 & 0o777, 0o600, "a dump holds password hashes");
    assert_eq!(list[n - 3].3 & 0o777, 0o700);
    let manifest: serde_json::Value = serde_json::from_slice(&list[n - 1].2).unwrap();
    assert_eq!(manifest["database"]["name"], "wp_blog");
    assert_eq!(counter.load(Ordering::Relaxed), 5 + sql.len() as u64);

    // A spool file that changed size fails the archive instead of corrupting it.
    for size in [sql.len() as u64 + 10, sql.len() as u64 - 10] {
        let mut bad = s.clone();
        if let Some(db) = bad.database.as_mut() {
            db.size = size;
        }
        let err = write_archive(&bad, Vec::new(), &counter).unwrap_err();
        assert!(err.to_string().contains("database dump"), "{err}");
    }
}

#[test]
fn shrinking_file_is_padded_and_growing_file_is_cut() {
    let data = b"hello world".to_vec();
    let counter = AtomicU64::new(0);
    // Shrank: header says 20 bytes, file has 11.
    let mut r = FixedSizeReader {
        inner: data.as_slice(),
        remaining: 20,
        short_by: 0,
        error: None,
        read_bytes: &counter,
    };
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out.len(), 20);
    assert_eq!(&out[..11], b"hello world");
    assert!(out[11..].iter().all(|b| *b == 0));
    assert_eq!(r.short_by, 9);
    // Grew: header says 5 bytes.
    let mut r = FixedSizeReader {
        inner: data.as_slice(),
        remaining: 5,
        short_by: 0,
        error: None,
        read_bytes: &counter,
    };
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"hello");
    assert_eq!(r.short_by, 0);
}

#[test]
fn part_sink_cuts_parts_and_hash_matches() {
    let (tx, mut rx) = mpsc_channel(64);
    let mut sink = HashingWriter::new(PartSink::new(tx, 10));
    sink.write_all(&[7u8; 25]).unwrap();
    let (sink, sha, n) = sink.finish();
    assert_eq!(sink.finish().unwrap(), 3);
    assert_eq!(n, 25);
    let mut parts = Vec::new();
    while let Ok(p) = rx.try_recv() {
        parts.push(p.len());
    }
    assert_eq!(parts, vec![10, 10, 5]);
    use sha2::Digest;
    assert_eq!(sha, hex::encode(sha2::Sha256::digest([7u8; 25])));
}

fn mpsc_channel(
    n: usize,
) -> (
    tokio::sync::mpsc::Sender<bytes::Bytes>,
    tokio::sync::mpsc::Receiver<bytes::Bytes>,
) {
    tokio::sync::mpsc::channel(n)
}
