//! The database dump of a restored tree, for `restore --with-db`.
//!
//! The archive's manifest is untrusted: its `database.entry` is never used
//! as a path. The dump is the regular file `database/<name>.sql` directly
//! inside the restored tree, where `<name>` is the manifest's database
//! name (a valid database name: no `/`) or, without one, the only `.sql`
//! file there. It is opened relative to the tree's directory descriptor
//! with `O_NOFOLLOW` at each step, so a symlink (in the archive or put
//! there since) never leads elsewhere.

use rustix::fs::{FileType, Mode, OFlags};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Why no dump can be imported.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("the archive holds no database dump (no database/*.sql)")]
    None,
    #[error("the archive holds several database dumps and its manifest names none of them")]
    Ambiguous,
    #[error("the manifest's database name {0:?} is not a database name")]
    BadName(String),
    #[error("{path}: {problem}")]
    Unusable { path: PathBuf, problem: String },
}

/// The name of the dump to import: the manifest's `database.name`, else
/// the only `database/*.sql` of the restored tree (`dumps`).
pub fn dump_name(manifest: Option<&serde_json::Value>, dumps: &[PathBuf]) -> Result<String, DumpError> {
    let named = manifest
        .and_then(|m| m.get("database"))
        .and_then(|d| d.get("name"))
        .and_then(|n| n.as_str());
    if let Some(name) = named {
        crate::config::check_db_name(name).map_err(|_| DumpError::BadName(cut(name)))?;
        return Ok(name.to_string());
    }
    match dumps {
        [] => Err(DumpError::None),
        [one] => one
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
            .ok_or(DumpError::None),
        _ => Err(DumpError::Ambiguous),
    }
}

fn cut(s: &str) -> String {
    s.chars().take(100).collect()
}

/// Open `target/database/<name>.sql`: a regular file, reached without
/// following any symlink.
pub fn open_dump(target: &Path, name: &str) -> Result<File, DumpError> {
    crate::config::check_db_name(name).map_err(|_| DumpError::BadName(cut(name)))?;
    let rel = Path::new("database").join(format!("{name}.sql"));
    let unusable = |problem: String| DumpError::Unusable {
        path: target.join(&rel),
        problem,
    };
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let root = rustix::fs::open(target, dir_flags, Mode::empty()).map_err(|e| unusable(e.to_string()))?;
    let database = rustix::fs::openat(&root, "database", dir_flags | OFlags::NOFOLLOW, Mode::empty()).map_err(|e| {
        unusable(format!(
            "database/ cannot be opened as a directory without following a symlink ({e})"
        ))
    })?;
    // NONBLOCK: opening a FIFO must not hang (it is refused just below).
    let fd = rustix::fs::openat(
        &database,
        format!("{name}.sql"),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| unusable(format!("cannot be opened without following a symlink ({e})")))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| unusable(e.to_string()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(unusable("is not a regular file".into()));
    }
    rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(|e| unusable(e.to_string()))?;
    Ok(File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_name_comes_from_the_manifest_or_the_only_dump() {
        let m = json!({"database": {"name": "wp_blog", "entry": "/etc/hostname"}});
        assert_eq!(dump_name(Some(&m), &[]).unwrap(), "wp_blog");
        let bad = json!({"database": {"name": "../../etc/hostname"}});
        assert!(matches!(dump_name(Some(&bad), &[]), Err(DumpError::BadName(_))));
        let one = [PathBuf::from("/t/database/shop.sql")];
        assert_eq!(dump_name(Some(&json!({})), &one).unwrap(), "shop");
        assert!(matches!(dump_name(None, &[]), Err(DumpError::None)));
        let two = [PathBuf::from("/t/database/a.sql"), PathBuf::from("/t/database/b.sql")];
        assert!(matches!(dump_name(None, &two), Err(DumpError::Ambiguous)));
    }

    #[test]
    fn only_a_regular_file_reached_without_symlinks_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        std::fs::create_dir(t.join("database")).unwrap();
        std::fs::write(t.join("database/good.sql"), "SELECT 1;").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", t.join("database/link.sql")).unwrap();
        std::fs::create_dir(t.join("database/dir.sql")).unwrap();
        let mut text = String::new();
        use std::io::Read;
        open_dump(t, "good").unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "SELECT 1;");
        for name in ["link", "dir", "missing"] {
            assert!(open_dump(t, name).is_err(), "{name}");
        }
        // A symlinked database/ directory is refused too.
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir(other.path().join("database")).unwrap();
        std::fs::write(other.path().join("database/x.sql"), "x").unwrap();
        let t2 = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(other.path().join("database"), t2.path().join("database")).unwrap();
        assert!(open_dump(t2.path(), "x").is_err());
    }
}
