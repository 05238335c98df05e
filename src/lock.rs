//! Per-site lock files in `{state_dir}/locks/`, shared by the CLI and the
//! daemon so two backups of one site never run at once, and the daemon's
//! instance lock `{state_dir}/daemon.lock` (holding its PID), so two
//! daemons never share a state directory. Each is an advisory `flock`,
//! released by the kernel if the process dies. Lock files are `0600` in
//! `0700` directories ([`crate::private`]).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("a backup of site {site:?} is already running (lock {path} is held)")]
    Busy { site: String, path: PathBuf },
    #[error(
        "another sitebackup daemon ({}) already runs on this state directory: it holds {path}; stop it first (systemctl stop sitebackup)",
        match .pid { Some(pid) => format!("PID {pid}"), None => "PID unknown".to_string() }
    )]
    DaemonRunning { pid: Option<u32>, path: PathBuf },
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
        crate::private::create_dir_all(&dir).map_err(io)?;
        let file = crate::private::open_or_create(&path).map_err(io)?;
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

/// Held for the life of a daemon.
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
    path: PathBuf,
}

impl DaemonLock {
    /// Take `{state_dir}/daemon.lock` and write our PID into it, or name
    /// the PID of the daemon holding it.
    pub fn try_acquire(state_dir: &Path) -> Result<Self, LockError> {
        use std::io::{Read, Seek, Write};
        let path = state_dir.join("daemon.lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        crate::private::create_dir_all(state_dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(crate::private::FILE_MODE)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.take(64).read_to_string(&mut text);
                return Err(LockError::DaemonRunning {
                    pid: text.trim().parse().ok(),
                    path,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(io)?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Does a daemon hold `{state_dir}/daemon.lock` now? Only looks:
    /// creates nothing and takes the lock for no longer than the test.
    pub fn is_held(state_dir: &Path) -> bool {
        let Ok(file) = OpenOptions::new().read(true).open(state_dir.join("daemon.lock")) else {
            return false;
        };
        matches!(file.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))
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

    #[test]
    fn a_second_daemon_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = DaemonLock::try_acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(first.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        let err = DaemonLock::try_acquire(dir.path()).unwrap_err();
        assert!(
            matches!(err, LockError::DaemonRunning { pid: Some(p), .. } if p == std::process::id()),
            "{err}"
        );
        assert!(
            err.to_string().contains(&format!("PID {}", std::process::id())),
            "{err}"
        );
        drop(first);
        DaemonLock::try_acquire(dir.path()).unwrap();
    }
}
