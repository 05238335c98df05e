//! Per-site lock files in `{state_dir}/locks/`, shared by the CLI and the
//! daemon so two backups of one site never run at once. The lock is an
//! advisory `flock`, released by the kernel if the process dies.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("a backup of site {site:?} is already running (lock {path} is held)")]
    Busy { site: String, path: PathBuf },
    #[error("cannot open lock file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held for the duration of one site's backup.
#[derive(Debug)]
pub struct SiteLock {
    _file: File,
    path: PathBuf,
}

impl SiteLock {
    pub fn try_acquire(state_dir: &Path, site: &str) -> Result<Self, LockError> {
        let dir = state_dir.join("locks");
        let path = dir.join(format!("{site}.lock"));
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Busy {
                site: site.to_string(),
                path,
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Is a backup of `site` running now? Only looks: creates nothing and
    /// takes the lock for no longer than the test itself.
    pub fn is_held(state_dir: &Path, site: &str) -> Result<bool, LockError> {
        let path = state_dir.join("locks").join(format!("{site}.lock"));
        let file = match OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(LockError::Io { path, source }),
        };
        match file.try_lock() {
            Ok(()) => Ok(false),
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(source)) => Err(LockError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_a_site_is_refused_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = SiteLock::try_acquire(dir.path(), "blog").unwrap();
        let err = SiteLock::try_acquire(dir.path(), "blog").unwrap_err();
        assert!(err.to_string().contains("already running"), "{err}");
        let _other = SiteLock::try_acquire(dir.path(), "shop").unwrap();
        assert!(SiteLock::is_held(dir.path(), "blog").unwrap());
        assert!(!SiteLock::is_held(dir.path(), "nothing").unwrap());
        drop(first);
        assert!(!SiteLock::is_held(dir.path(), "blog").unwrap());
        SiteLock::try_acquire(dir.path(), "blog").unwrap();
    }
}
