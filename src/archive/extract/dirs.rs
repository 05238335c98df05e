//! The directories' final attributes, kept in an unnamed temporary file
//! (not in memory, which would grow with the number of directories an
//! archive lists) and applied by `Extracted::finish` in the reverse order
//! of the archive, so that in a depth-first archive a directory is
//! finished after everything below it.
//!
//! Record: path bytes, mode (u32), mtime (i64), owner flag (u8), uid,
//! gid (u32), then the path length (u32) last, so the log reads backwards.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Attributes of one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DirAttrs {
    /// The directory below the root, components joined with `/`.
    pub(super) path: Vec<u8>,
    pub(super) mode: u32,
    pub(super) mtime: i64,
    pub(super) owner: Option<(u32, u32)>,
}

const FIXED: usize = 4 + 8 + 1 + 4 + 4 + 4;

#[derive(Debug)]
pub(super) struct DirLog {
    out: BufWriter<File>,
    len: u64,
}

impl DirLog {
    /// A log in an unnamed file in `dir` (on the target's file system).
    pub(super) fn new(dir: &Path) -> io::Result<Self> {
        Ok(Self {
            out: BufWriter::new(tempfile::tempfile_in(dir)?),
            len: 0,
        })
    }

    pub(super) fn push(&mut self, d: &DirAttrs) -> io::Result<()> {
        let (has_owner, uid, gid) = match d.owner {
            Some((u, g)) => (1u8, u, g),
            None => (0, 0, 0),
        };
        let plen = u32::try_from(d.path.len()).map_err(io::Error::other)?;
        self.out.write_all(&d.path)?;
        self.out.write_all(&d.mode.to_le_bytes())?;
        self.out.write_all(&d.mtime.to_le_bytes())?;
        self.out.write_all(&[has_owner])?;
        self.out.write_all(&uid.to_le_bytes())?;
        self.out.write_all(&gid.to_le_bytes())?;
        self.out.write_all(&plen.to_le_bytes())?;
        self.len += d.path.len() as u64 + FIXED as u64;
        Ok(())
    }

    /// Call `f` on every record, last pushed first.
    pub(super) fn for_each_rev<E>(
        &mut self,
        mut f: impl FnMut(DirAttrs) -> Result<(), E>,
        io_err: impl Fn(io::Error) -> E,
    ) -> Result<(), E> {
        self.out.flush().map_err(&io_err)?;
        let file = self.out.get_ref();
        let mut end = self.len;
        let mut fixed = [0u8; FIXED];
        while end > 0 {
            let start_fixed = end.checked_sub(FIXED as u64).ok_or_else(|| io_err(corrupt()))?;
            file.read_exact_at(&mut fixed, start_fixed).map_err(&io_err)?;
            let word = |at: usize| u32::from_le_bytes([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]]);
            let plen = u64::from(word(FIXED - 4));
            let start = start_fixed.checked_sub(plen).ok_or_else(|| io_err(corrupt()))?;
            let mut path = vec![0u8; plen as usize];
            file.read_exact_at(&mut path, start).map_err(&io_err)?;
            let mut mtime = [0u8; 8];
            mtime.copy_from_slice(&fixed[4..12]);
            f(DirAttrs {
                path,
                mode: word(0),
                mtime: i64::from_le_bytes(mtime),
                owner: (fixed[12] == 1).then(|| (word(13), word(17))),
            })?;
            end = start;
        }
        Ok(())
    }
}

fn corrupt() -> io::Error {
    io::Error::other("the directory log is damaged")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_last_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = DirLog::new(dir.path()).unwrap();
        let recs: Vec<DirAttrs> = (0..1000u32)
            .map(|i| DirAttrs {
                path: format!("a/{}", "b/".repeat(i as usize % 7)).into_bytes(),
                mode: 0o700 + i % 8,
                mtime: -(i64::from(i)) * 1000,
                owner: (i % 2 == 0).then_some((i, i + 1)),
            })
            .collect();
        for r in &recs {
            log.push(r).unwrap();
        }
        let mut back = Vec::new();
        log.for_each_rev(
            |d| -> io::Result<()> {
                back.push(d);
                Ok(())
            },
            |e| e,
        )
        .unwrap();
        back.reverse();
        assert_eq!(back, recs);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the log has no name");
    }
}
