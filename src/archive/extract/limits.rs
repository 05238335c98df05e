//! What an archive may make a restore write, and how much of the target's
//! file system it may fill. The manifest comes last in the stream, so it
//! cannot announce sizes up front: the limits are the operator's
//! (`[restore]`), checked as entries arrive.

use rustix::fs::StatVfs;
use std::io;
use std::os::fd::AsFd;

/// Limits of one extraction (`[restore]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Entries of any kind (also checked by `verify`).
    pub max_entries: u64,
    /// Bytes of file content written.
    pub max_bytes: u64,
    /// Free space always left on the target's file system.
    pub keep_free_bytes: u64,
}

/// Defaults of `[restore]`.
pub const DEFAULT_MAX_ENTRIES: u64 = 5_000_000;
pub const DEFAULT_MAX_SIZE_GB: f64 = 1000.0;
pub const DEFAULT_KEEP_FREE_MB: u64 = 1024;

impl Default for ExtractLimits {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: (DEFAULT_MAX_SIZE_GB * 1e9) as u64,
            keep_free_bytes: DEFAULT_KEEP_FREE_MB * 1024 * 1024,
        }
    }
}

/// Which limit an archive crossed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "the archive has more than {0} entries; raise restore.max_entries (SITEBACKUP_RESTORE_MAX_ENTRIES) if it is genuine"
    )]
    Entries(u64),
    #[error(
        "the archive's files add up to more than {0} bytes; raise restore.max_size_gb (SITEBACKUP_RESTORE_MAX_SIZE_GB) if it is genuine"
    )]
    Bytes(u64),
    #[error(
        "not enough space: the file system has {free} bytes free and restore keeps {keep} bytes free (restore.keep_free_mb, SITEBACKUP_RESTORE_KEEP_FREE_MB); free some space or restore elsewhere"
    )]
    Space { free: u64, keep: u64 },
    #[error("the archive has more symlinks (by total name length, {0} bytes) than verify keeps track of")]
    Symlinks(u64),
}

/// Free space of the file system holding `fd` that a restore may use.
fn usable(fd: impl AsFd, keep: u64) -> io::Result<(u64, u64)> {
    let st: StatVfs = rustix::fs::fstatvfs(fd)?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    Ok((free, free.saturating_sub(keep)))
}

/// Counts what is written against the limits and the free space. The
/// file system is asked again whenever the allowance runs out (other
/// writers may have freed or taken space meanwhile).
#[derive(Debug)]
pub(super) struct Budget {
    limits: ExtractLimits,
    bytes: u64,
    /// Bytes that may still be written before the file system is asked
    /// again.
    allowance: u64,
}

impl Budget {
    pub(super) fn new(limits: ExtractLimits) -> Self {
        Self {
            limits,
            bytes: 0,
            allowance: 0,
        }
    }

    /// Before writing `n` more bytes into a file on the file system of
    /// `fd`.
    pub(super) fn write(&mut self, fd: impl AsFd, n: u64) -> io::Result<Result<(), LimitError>> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.limits.max_bytes {
            return Ok(Err(LimitError::Bytes(self.limits.max_bytes)));
        }
        if self.allowance < n {
            let (free, usable) = usable(fd, self.limits.keep_free_bytes)?;
            if usable < n {
                return Ok(Err(LimitError::Space {
                    free,
                    keep: self.limits.keep_free_bytes,
                }));
            }
            self.allowance = usable;
        }
        self.allowance -= n;
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_free_space_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let fd = std::fs::File::open(dir.path()).unwrap();
        let mut b = Budget::new(ExtractLimits {
            max_entries: 2,
            max_bytes: 100,
            keep_free_bytes: 0,
        });
        assert_eq!(b.write(&fd, 60).unwrap(), Ok(()));
        assert_eq!(b.write(&fd, 60).unwrap(), Err(LimitError::Bytes(100)));
        let mut full = Budget::new(ExtractLimits {
            keep_free_bytes: u64::MAX,
            ..ExtractLimits::default()
        });
        assert!(matches!(full.write(&fd, 1).unwrap(), Err(LimitError::Space { .. })));
    }
}
