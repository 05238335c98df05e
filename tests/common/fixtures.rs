//! Test fixtures shared by the unit tests of `archive::extract` (through
//! `#[path]`) and the integration tests (through `common`): tree snapshots
//! for round-trip comparisons, and hostile tar archives built byte by byte.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One entry of a tree, as compared between a source and a restore.
#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub mtime: i64,
    /// File content or symlink target.
    pub content: Vec<u8>,
}

/// Every entry below `root` (included, as ""): kind, mode, mtime, content.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    use std::os::unix::ffi::OsStringExt;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
        let meta = e.path().symlink_metadata().unwrap();
        let (kind, content) = if meta.is_symlink() {
            (
                "symlink",
                std::fs::read_link(e.path()).unwrap().into_os_string().into_vec(),
            )
        } else if meta.is_dir() {
            ("dir", Vec::new())
        } else {
            ("file", std::fs::read(e.path()).unwrap())
        };
        let mode = if meta.is_symlink() {
            0
        } else {
            meta.permissions().mode() & 0o7777
        };
        out.insert(
            rel,
            Node {
                kind,
                mode,
                mtime: meta.mtime(),
                content,
            },
        );
    }
    out
}

/// Assert two trees are equal, naming the first difference.
pub fn assert_same_tree(expected: &Path, got: &Path) {
    let (a, b) = (snapshot(expected), snapshot(got));
    let names_a: Vec<_> = a.keys().collect();
    let names_b: Vec<_> = b.keys().collect();
    assert_eq!(
        names_b,
        names_a,
        "entries differ between {} and {}",
        got.display(),
        expected.display()
    );
    for (path, node) in &a {
        assert_eq!(&b[path], node, "{} differs", path.display());
    }
}

/// One hostile tar entry: raw name bytes, type, link target, content.
pub struct Raw<'a> {
    pub name: &'a [u8],
    pub kind: tar::EntryType,
    pub link: Option<&'a [u8]>,
    pub data: &'a [u8],
}

/// Build a tar.zst with headers written byte for byte (the `tar` crate's
/// own path checks would refuse these names).
pub fn crafted(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..e.name.len()].copy_from_slice(e.name);
            if let Some(l) = e.link {
                gnu.linkname[..l.len()].copy_from_slice(l);
            }
        }
        h.set_entry_type(e.kind);
        h.set_size(e.data.len() as u64);
        h.set_mode(if e.kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        builder.append(&h, e.data).unwrap();
    }
    zstd::encode_all(builder.into_inner().unwrap().as_slice(), 3).unwrap()
}
