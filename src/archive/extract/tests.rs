#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[path = "../../../tests/common/fixtures.rs"]
mod fixtures;
use fixtures::{Raw, crafted, snapshot};
use proptest::prelude::*;
use std::fs::FileTimes;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, UNIX_EPOCH};

fn file<'a>(name: &'a [u8], data: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind: tar::EntryType::Regular,
        link: None,
        data,
    }
}

fn link<'a>(name: &'a [u8], kind: tar::EntryType, target: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind,
        link: Some(target),
        data: b"",
    }
}

fn dir(name: &[u8]) -> Raw<'_> {
    Raw {
        name,
        kind: tar::EntryType::Directory,
        link: None,
        data: b"",
    }
}

/// A scratch area with `dest` (extraction root) and `outside` (must stay
/// empty).
struct Scratch {
    _dir: tempfile::TempDir,
    dest: PathBuf,
    outside: PathBuf,
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&dest).unwrap();
    std::fs::create_dir(&outside).unwrap();
    Scratch {
        dest,
        outside,
        _dir: dir,
    }
}

fn opts() -> ExtractOptions {
    ExtractOptions::for_current_user()
}

fn refusal(result: Result<Extracted, ExtractError>) -> (String, Refusal) {
    match result {
        Err(ExtractError::Refused { entry, reason }) => (entry, reason),
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, got success"),
    }
}

fn assert_empty(dir: &Path) {
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.is_empty(), "{} is not empty: {names:?}", dir.display());
}

#[test]
fn parent_dir_entry_is_refused() {
    let s = scratch();
    let evil = b"files/../../outside/evil";
    let r = extract(crafted(&[file(evil, b"x")]).as_slice(), &s.dest, &opts());
    assert_eq!(
        refusal(r),
        ("files/../../outside/evil".into(), Refusal::Path(PathProblem::ParentDir))
    );
    assert_empty(&s.outside);
}

#[test]
fn absolute_entry_is_refused() {
    let s = scratch();
    let name = format!("{}/evil", s.outside.display());
    let r = extract(crafted(&[file(name.as_bytes(), b"x")]).as_slice(), &s.dest, &opts());
    let (entry, reason) = refusal(r);
    assert_eq!(entry, name);
    assert_eq!(reason, Refusal::Path(PathProblem::Absolute));
    assert_empty(&s.outside);
    assert_empty(&s.dest);
}

#[test]
fn file_under_a_symlink_to_root_is_refused() {
    let s = scratch();
    let under = format!("files/root{}/evil", s.outside.display());
    let archive = crafted(&[
        dir(b"files/"),
        link(b"files/root", tar::EntryType::Symlink, b"/"),
        file(under.as_bytes(), b"x"),
    ]);
    let err = extract(archive.as_slice(), &s.dest, &opts()).unwrap_err();
    assert!(
        err.to_string().contains(&format!("{under:?}")) && err.to_string().contains("symlink \"files/root\""),
        "{err}"
    );
    assert_eq!(
        refusal(Err(err)),
        (under.clone(), Refusal::ThroughSymlink("files/root".into()))
    );
    assert_empty(&s.outside);
    // The symlink itself was restored as archived; it was never followed.
    assert_eq!(std::fs::read_link(s.dest.join("files/root")).unwrap(), Path::new("/"));
}

#[test]
fn hard_links_to_outside_paths_are_refused() {
    let s = scratch();
    std::fs::write(s.outside.join("secret"), b"secret").unwrap();
    let absolute = format!("{}/secret", s.outside.display());
    let cases: Vec<(Vec<u8>, Refusal)> = vec![
        (absolute.into_bytes(), Refusal::LinkTarget(PathProblem::Absolute)),
        (
            b"../outside/secret".to_vec(),
            Refusal::LinkTarget(PathProblem::ParentDir),
        ),
        (
            b"files/../../outside/secret".to_vec(),
            Refusal::LinkTarget(PathProblem::ParentDir),
        ),
        (
            b"files/nothing".to_vec(),
            Refusal::LinkTargetMissing("files/nothing".into()),
        ),
    ];
    for (target, expected) in cases {
        let archive = crafted(&[dir(b"files/"), link(b"files/h", tar::EntryType::Link, &target)]);
        let r = extract(archive.as_slice(), &s.dest, &opts());
        assert_eq!(refusal(r), ("files/h".into(), expected));
        assert!(!s.dest.join("files/h").exists());
    }
    assert_eq!(std::fs::metadata(s.outside.join("secret")).unwrap().nlink(), 1);

    // Through a symlink the archive made: refused too.
    let archive = crafted(&[
        link(b"l", tar::EntryType::Symlink, s.outside.as_os_str().as_bytes()),
        link(b"h", tar::EntryType::Link, b"l/secret"),
    ]);
    let r = extract(archive.as_slice(), &s.dest, &opts());
    assert_eq!(refusal(r), ("h".into(), Refusal::ThroughSymlink("l".into())));
    assert_eq!(std::fs::metadata(s.outside.join("secret")).unwrap().nlink(), 1);
}

#[test]
fn hard_link_inside_the_archive_works() {
    let s = scratch();
    let archive = crafted(&[file(b"a", b"data"), link(b"b", tar::EntryType::Link, b"a")]);
    let done = extract(archive.as_slice(), &s.dest, &opts()).unwrap();
    assert_eq!(done.stats.hardlinks, 1);
    assert_eq!(std::fs::read(s.dest.join("b")).unwrap(), b"data");
    assert_eq!(std::fs::metadata(s.dest.join("a")).unwrap().nlink(), 2);
}

#[test]
fn devices_and_fifos_are_refused() {
    for (kind, what) in [
        (tar::EntryType::Fifo, "FIFO"),
        (tar::EntryType::Char, "character device"),
        (tar::EntryType::Block, "block device"),
    ] {
        let s = scratch();
        let archive = crafted(&[Raw {
            name: b"files/dev",
            kind,
            link: None,
            data: b"",
        }]);
        let r = extract(archive.as_slice(), &s.dest, &opts());
        assert_eq!(refusal(r), ("files/dev".into(), Refusal::Special(what)));
        assert_empty(&s.dest);
    }
}

#[test]
fn an_existing_symlink_in_the_target_is_never_followed() {
    let s = scratch();
    symlink(&s.outside, s.dest.join("files")).unwrap();
    let r = extract(crafted(&[file(b"files/evil", b"x")]).as_slice(), &s.dest, &opts());
    assert_eq!(
        refusal(r),
        ("files/evil".into(), Refusal::ThroughSymlink("files".into()))
    );
    assert_empty(&s.outside);

    // A symlink in the way of a file is replaced, not written through.
    let s = scratch();
    std::fs::write(s.outside.join("victim"), b"original").unwrap();
    symlink(s.outside.join("victim"), s.dest.join("f")).unwrap();
    extract(crafted(&[file(b"f", b"new")]).as_slice(), &s.dest, &opts()).unwrap();
    assert_eq!(std::fs::read(s.outside.join("victim")).unwrap(), b"original");
    assert_eq!(std::fs::read(s.dest.join("f")).unwrap(), b"new");
    assert!(!s.dest.join("f").symlink_metadata().unwrap().is_symlink());
}

#[test]
fn duplicates_replace_files_but_never_directories() {
    let s = scratch();
    let archive = crafted(&[
        file(b"a", b"one"),
        link(b"a", tar::EntryType::Symlink, b"target"),
        file(b"b", b"one"),
        file(b"b", b"two"),
    ]);
    extract(archive.as_slice(), &s.dest, &opts()).unwrap();
    assert_eq!(std::fs::read_link(s.dest.join("a")).unwrap(), Path::new("target"));
    assert_eq!(std::fs::read(s.dest.join("b")).unwrap(), b"two");

    let s = scratch();
    let r = extract(crafted(&[dir(b"d"), file(b"d", b"x")]).as_slice(), &s.dest, &opts());
    assert_eq!(refusal(r), ("d".into(), Refusal::ReplacesDirectory("d".into())));
    let s = scratch();
    let r = extract(
        crafted(&[file(b"d", b"x"), file(b"d/e", b"x")]).as_slice(),
        &s.dest,
        &opts(),
    );
    assert_eq!(refusal(r), ("d/e".into(), Refusal::NotADirectory("d".into())));
}

#[test]
fn damaged_and_truncated_streams_are_format_errors() {
    let s = scratch();
    let good = crafted(&[file(b"a", &vec![7u8; 100_000]), file(b"b", b"x")]);
    let truncated = &good[..good.len() / 2];
    let err = extract(truncated, &s.dest, &opts()).unwrap_err();
    assert!(err.is_format(), "{err}");
    let err = extract(&b"this is not zstd"[..], &s.dest, &opts()).unwrap_err();
    assert!(err.is_format(), "{err}");
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"garbage after the last frame");
    let s = scratch();
    let err = extract(trailing.as_slice(), &s.dest, &opts()).unwrap_err();
    assert!(err.is_format(), "{err}");
    assert!(
        check(trailing.as_slice(), &ExtractLimits::default())
            .unwrap_err()
            .is_format()
    );
}

#[test]
fn check_applies_the_same_rules_without_writing() {
    let summary = check(
        crafted(&[
            dir(b"files/"),
            file(b"files/a", b"abc"),
            file(b"manifest.json", br#"{"site":"blog"}"#),
        ])
        .as_slice(),
        &ExtractLimits::default(),
    )
    .unwrap();
    assert_eq!(summary.stats.files, 2);
    assert_eq!(summary.stats.file_bytes, 3 + 15);
    assert_eq!(summary.manifest.unwrap()["site"], "blog");
    assert!(summary.manifest_is_last);

    let refused = |entries: &[Raw<'_>]| match check(crafted(entries).as_slice(), &ExtractLimits::default()) {
        Err(ExtractError::Refused { entry, reason }) => (entry, reason),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        refused(&[link(b"l", tar::EntryType::Symlink, b"/"), file(b"l/etc/x", b"")]),
        ("l/etc/x".into(), Refusal::ThroughSymlink("l".into()))
    );
    assert_eq!(
        refused(&[file(b"../x", b"")]),
        ("../x".into(), Refusal::Path(PathProblem::ParentDir))
    );
    assert_eq!(
        refused(&[link(b"h", tar::EntryType::Link, b"/etc/passwd")]),
        ("h".into(), Refusal::LinkTarget(PathProblem::Absolute))
    );
}

fn set_mtime(path: &Path, secs: u64) {
    rustix::fs::utimensat(rustix::fs::CWD, path, &times(secs as i64), AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

#[test]
fn written_archives_extract_to_an_identical_tree() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("site");
    std::fs::create_dir_all(src.join("a/b/c")).unwrap();
    std::fs::create_dir(src.join("empty")).unwrap();
    std::fs::create_dir(src.join("locked")).unwrap();
    std::fs::write(src.join("a/b/c/deep.txt"), b"deep").unwrap();
    std::fs::write(src.join("secret.php"), b"<?php // 0640").unwrap();
    std::fs::write(src.join("empty.txt"), b"").unwrap();
    std::fs::write(src.join(OsStr::from_bytes(b"caf\xe9-latin1.txt")), b"not utf-8 name").unwrap();
    std::fs::write(src.join("locked/inside"), b"in a read-only dir").unwrap();
    symlink("a/b/c/deep.txt", src.join("link")).unwrap();
    symlink("/nonexistent/absolute", src.join("abs-link")).unwrap();
    std::fs::set_permissions(src.join("secret.php"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(src.join("a"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let mut secs = 1_500_000_000;
    for e in walkdir::WalkDir::new(&src).contents_first(true) {
        secs += 1000;
        set_mtime(e.unwrap().path(), secs);
    }
    std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let f = std::fs::File::open(src.join("locked")).unwrap();
    f.set_times(FileTimes::new().set_modified(UNIX_EPOCH + Duration::from_secs(1_400_000_000)))
        .unwrap();

    let spec = super::super::ArchiveSpec {
        site: "blog".into(),
        host_id: "host".into(),
        root: src.clone(),
        excludes: crate::archive::Excludes::none(),
        created_at: "2024-12-25T08:30:00Z".into(),
        zstd_level: 3,
        zstd_threads: 0,
        database: None,
    };
    let (_, bytes) = super::super::write_archive(&spec, Vec::new(), &Arc::new(AtomicU64::new(0))).unwrap();

    let dest = dir.path().join("restore");
    std::fs::create_dir(&dest).unwrap();
    let mut done = extract(bytes.as_slice(), &dest, &opts()).unwrap();
    done.finish(&dest).unwrap();
    assert_eq!(done.stats.symlinks, 2);
    assert_eq!(done.stats.files, 6, "{:?}", done.stats);
    let expected = snapshot(&src);
    let got = snapshot(&dest.join("files"));
    assert_eq!(got, expected);
    assert!(dest.join("manifest.json").is_file());

    let summary = check(bytes.as_slice(), &ExtractLimits::default()).unwrap();
    assert_eq!(summary.stats.files, done.stats.files);
    assert_eq!(summary.manifest.unwrap()["site"], "blog");
    assert!(summary.manifest_is_last);
}

proptest! {
    /// Whatever the input, an accepted path has only normal components and
    /// stays below any root it is joined to.
    #[test]
    fn sanitized_paths_stay_below_the_root(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
        let parts: Vec<&[u8]> = raw.split(|b| *b == b'/').collect();
        match sanitize_path(&raw) {
            Ok(p) => {
                prop_assert!(!raw.is_empty() && raw[0] != b'/' && !raw.contains(&0));
                prop_assert!(!parts.contains(&&b".."[..]));
                for c in p.components() {
                    let c = c.as_bytes();
                    prop_assert!(!c.is_empty() && c != b"." && c != b"..");
                    prop_assert!(!c.contains(&b'/') && !c.contains(&0));
                }
                let root = Path::new("/restore/root");
                let joined = root.join(p.to_path_buf());
                prop_assert!(joined.starts_with(root));
                prop_assert!(joined.components().all(|c| !matches!(c, std::path::Component::ParentDir)));
            }
            Err(PathProblem::Empty) => prop_assert!(raw.is_empty()),
            Err(PathProblem::Nul) => prop_assert!(raw.contains(&0)),
            Err(PathProblem::Absolute) => prop_assert_eq!(raw.first(), Some(&b'/')),
            Err(PathProblem::ParentDir) => prop_assert!(parts.contains(&&b".."[..])),
        }
    }

    /// Relative names built from ordinary segments, with `.` and extra
    /// slashes as noise, are accepted and keep their segments in order.
    #[test]
    fn ordinary_relative_paths_keep_their_segments(
        segs in proptest::collection::vec("[a-zA-Z0-9 _.-]{1,8}", 1..6),
        noise in proptest::collection::vec(0u8..3, 6),
    ) {
        let segs: Vec<String> = segs.into_iter().filter(|s| s != "." && s != "..").collect();
        prop_assume!(!segs.is_empty());
        let separators = ["/", "/./", "//"];
        let mut raw = if noise[0] == 1 { "./".to_string() } else { String::new() };
        for (i, s) in segs.iter().enumerate() {
            if i > 0 {
                raw.push_str(separators[usize::from(noise[i % noise.len()])]);
            }
            raw.push_str(s);
        }
        if noise[5] == 2 {
            raw.push('/');
        }
        let p = sanitize_path(raw.as_bytes()).unwrap();
        let got: Vec<String> = p.components().iter().map(|c| c.to_string_lossy().into_owned()).collect();
        prop_assert_eq!(got, segs);
    }

    /// A `..` segment anywhere, or a leading `/`, is always refused.
    #[test]
    fn traversal_is_always_refused(
        before in proptest::collection::vec("[a-z]{1,4}", 0..4),
        after in proptest::collection::vec("[a-z]{1,4}", 0..4),
    ) {
        let mut segs = before.clone();
        segs.push("..".into());
        segs.extend(after.clone());
        let rel = segs.join("/");
        prop_assert_eq!(sanitize_path(rel.as_bytes()), Err(PathProblem::ParentDir));
        let abs = format!("/{}", before.iter().chain(after.iter()).cloned().collect::<Vec<_>>().join("/"));
        prop_assert_eq!(sanitize_path(abs.as_bytes()), Err(PathProblem::Absolute));
    }
}

#[test]
fn entry_and_byte_limits_stop_extraction_and_verify() {
    let s = scratch();
    let archive = crafted(&[dir(b"files/"), file(b"files/a", b"abcdef"), file(b"files/b", b"ghij")]);
    let limits = |max_entries, max_bytes| ExtractLimits {
        max_entries,
        max_bytes,
        keep_free_bytes: 0,
    };
    let few = opts().with_limits(limits(2, u64::MAX));
    match extract(archive.as_slice(), &s.dest, &few) {
        Err(ExtractError::Limit { entry, limit }) => {
            assert_eq!(entry, "files/b");
            assert_eq!(limit, LimitError::Entries(2));
        }
        other => panic!("{other:?}"),
    }
    match check(archive.as_slice(), &limits(2, u64::MAX)) {
        Err(ExtractError::Limit { limit, .. }) => assert_eq!(limit, LimitError::Entries(2)),
        other => panic!("{other:?}"),
    }
    let s = scratch();
    let small = opts().with_limits(limits(100, 8));
    match extract(archive.as_slice(), &s.dest, &small) {
        Err(ExtractError::Limit { entry, limit }) => {
            assert_eq!(entry, "files/b");
            assert_eq!(limit, LimitError::Bytes(8));
        }
        other => panic!("{other:?}"),
    }
    let s = scratch();
    let no_room = opts().with_limits(ExtractLimits {
        keep_free_bytes: u64::MAX,
        ..ExtractLimits::default()
    });
    let err = extract(archive.as_slice(), &s.dest, &no_room).unwrap_err();
    assert!(
        matches!(
            err,
            ExtractError::Limit {
                limit: LimitError::Space { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("restore.keep_free_mb"), "{err}");
}

#[test]
fn long_names_are_cut_in_messages() {
    let s = scratch();
    // A 60 KiB name (under the header cap) with a `..` in it.
    let name = format!("files/{}/../x", "n".repeat(60 * 1024));
    // tar's builder refuses `..`: write the long-name entry by hand.
    let mut raw = Vec::new();
    let mut l = tar::Header::new_gnu();
    l.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    l.set_entry_type(tar::EntryType::GNULongName);
    l.set_size(name.len() as u64 + 1);
    l.set_cksum();
    raw.extend_from_slice(l.as_bytes());
    raw.extend_from_slice(name.as_bytes());
    raw.push(0);
    raw.resize(raw.len().div_ceil(512) * 512, 0);
    let mut f = tar::Header::new_gnu();
    f.set_path("short").unwrap();
    f.set_size(0);
    f.set_mode(0o644);
    f.set_cksum();
    raw.extend_from_slice(f.as_bytes());
    raw.extend_from_slice(&[0u8; 1024]);
    let archive = zstd::encode_all(raw.as_slice(), 3).unwrap();
    let err = extract(archive.as_slice(), &s.dest, &opts()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`..`"), "{msg}");
    assert!(msg.len() < 1000, "{} bytes", msg.len());
    assert!(msg.contains(&format!("({} bytes)", name.len())), "{msg}");
}
