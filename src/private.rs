//! Files and directories sitebackup creates for itself — the catalog, lock
//! files, spool files, archives on a `local` target, the install id — are
//! private whatever the umask: directories `0700`, files `0600`. They hold
//! database dumps, `wp-config.php` and the history of every backup.
//!
//! Only what is created here gets these modes; an existing directory (a
//! `state_dir` the operator made, a `local` server's mount point) keeps
//! its own.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of the directories sitebackup creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the files sitebackup creates.
pub const FILE_MODE: u32 = 0o600;

/// `mkdir -p` with every directory it creates `0700`.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(path)
}

/// Open `path` for writing, creating it `0600` if missing (an existing
/// file keeps its content and mode).
pub fn open_or_create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
}

/// Create or truncate `path`, `0600` when it is created.
pub fn create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Create `path`, `0600`; fails if it exists (a temporary file to rename
/// over the real one).
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Take group and other permissions away from an existing file (one an
/// older version created under a lax umask). Missing files are fine.
pub fn restrict(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o077 != 0 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(m.permissions().mode() & 0o700))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_paths_are_private_and_existing_ones_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let deep = dir.path().join("a/b/c");
        create_dir_all(&deep).unwrap();
        for p in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&dir.path().join(p)), 0o700, "{p}");
        }
        let f = deep.join("f");
        create(&f).unwrap();
        assert_eq!(mode(&f), 0o600);
        let lax = deep.join("lax");
        std::fs::write(&lax, b"x").unwrap();
        std::fs::set_permissions(&lax, std::fs::Permissions::from_mode(0o644)).unwrap();
        restrict(&lax).unwrap();
        assert_eq!(mode(&lax), 0o600);
        restrict(&deep.join("missing")).unwrap();
    }
}
