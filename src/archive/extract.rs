//! Safe extraction of an archive stream (zstd → tar) into a directory, and
//! the read-only pass that `verify` runs over the same stream. Plain
//! `std::io` on blocking threads — zstd decodes on a second, scoped thread
//! feeding the tar reader through a small bounded channel, so decompression
//! overlaps the file writes; no async, no S3, no checksums (the caller
//! hashes the compressed bytes as they arrive).
//!
//! # What is refused
//!
//! Refusing stops the extraction with [`ExtractError::Refused`], which names
//! the entry and the reason:
//! - names that are absolute, contain a `..` component or a NUL byte, or are
//!   empty ([`sanitize_path`]); `.` components and repeated slashes are
//!   dropped;
//! - entries whose path goes through a symlink, whether the archive made it
//!   or it was already on disk;
//! - hard links whose target is absolute, contains `..`, goes through a
//!   symlink, or is not an earlier entry of the archive;
//! - character and block devices, FIFOs, and entry types we do not know.
//!
//! Symlinks themselves are restored exactly as archived, whatever their
//! target (sites legitimately link to absolute paths): they are never
//! followed while writing, so they cannot redirect a write.
//!
//! # How writes stay inside the directory
//!
//! Everything is created relative to an open descriptor of the target
//! directory (`openat`, `mkdirat`, `symlinkat`, `linkat`), descending one
//! component at a time with `O_DIRECTORY | O_NOFOLLOW`: a symlink anywhere on
//! the way makes the walk fail instead of being followed. Files are created
//! with `O_CREAT | O_EXCL | O_NOFOLLOW`; when a name already exists (a
//! duplicate entry) the old non-directory is unlinked first — never opened or
//! written through — and an existing directory is never replaced.
//!
//! # Metadata
//!
//! Files get their mode and mtime (and numeric owner and group when running
//! as root; setuid, setgid and sticky bits are kept only then). Symlinks get
//! their mtime (and owner as root). Directories are created `0700` and get
//! their mode, owner and mtime in [`Extracted::finish`], deepest first, once
//! everything inside them is written: so read-only directories can be
//! filled, writing into a directory does not disturb its restored mtime, and
//! nothing is reachable by other users before its final mode is set.
//! Directories the archive does not describe (implied parents) stay `0700`.
//!
//! # Hostile archives and memory
//!
//! Whatever the archive, memory stays bounded (under 64 MiB for a whole
//! `verify` or `restore`): extension headers that `tar` would buffer whole
//! (GNU long names and links, pax headers) are capped at 64 KiB
//! ([`headers`]); the zstd window at 16 MiB ([`decode`], refusing bigger
//! ones with the `--long` setting that unpacks them); directories' final
//! attributes go to an unnamed temporary file, not to memory ([`dirs`]).
//! Entries, bytes written and the target's free space are limited by
//! [`ExtractLimits`] (`[restore]`), and names in messages are cut to
//! [`MAX_SHOWN`] characters.

mod check;
mod decode;
mod dirs;
mod fs;
pub mod headers;
mod limits;
mod list;
mod select;

pub use check::{ArchiveSummary, check};
pub use decode::{MAX_WINDOW_LOG, WindowTooLarge, frame_window_log};
pub use headers::{MAX_EXTENSION, TooLarge};
pub use limits::{DEFAULT_KEEP_FREE_MB, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_SIZE_GB, ExtractLimits, LimitError};
pub use list::{ListSummary, ListedEntry, list};
pub use select::Selection;

use decode::{DECODED_QUEUE, Decoded, decode};
use dirs::{DirAttrs, DirLog};
use fs::{DirCache, Extractor, gid_of, open_root, times, uid_of, walk};
use headers::HeaderGuard;
use limits::Budget;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use serde::Serialize;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Why a path from an archive is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    #[error("it is an absolute path")]
    Absolute,
    #[error("it contains a `..` component")]
    ParentDir,
    #[error("it is empty")]
    Empty,
    #[error("it contains a NUL byte")]
    Nul,
}

/// A relative path made only of normal components (no `.`, `..`, empty
/// component, `/` or NUL). The empty path is the extraction root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SafePath(Vec<OsString>);

impl SafePath {
    pub fn components(&self) -> &[OsString] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_path_buf(&self) -> PathBuf {
        self.0.iter().collect()
    }

    fn split_last(&self) -> Option<(&OsString, &[OsString])> {
        self.0.split_last()
    }
}

/// Turn a raw tar entry name into a [`SafePath`], or say why it is unsafe.
pub fn sanitize_path(raw: &[u8]) -> Result<SafePath, PathProblem> {
    if raw.is_empty() {
        return Err(PathProblem::Empty);
    }
    if raw.contains(&0) {
        return Err(PathProblem::Nul);
    }
    if raw[0] == b'/' {
        return Err(PathProblem::Absolute);
    }
    let mut out = Vec::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err(PathProblem::ParentDir),
            c => out.push(OsString::from_vec(c.to_vec())),
        }
    }
    Ok(SafePath(out))
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("its name is unsafe: {0}")]
    Path(PathProblem),
    #[error("it is a hard link whose target is unsafe: {0}")]
    LinkTarget(PathProblem),
    #[error("it is a hard link to {0:?}, which is not an earlier entry of the archive")]
    LinkTargetMissing(String),
    #[error("its path goes through the symlink {0:?}, which could lead outside the target directory")]
    ThroughSymlink(String),
    #[error("it is a {0}; device nodes and FIFOs are never restored")]
    Special(&'static str),
    #[error("it has an entry type sitebackup does not restore ({0})")]
    Unsupported(String),
    #[error("it would replace the directory {0:?}")]
    ReplacesDirectory(String),
    #[error("{0:?} is in the way: it exists and is not a directory")]
    NotADirectory(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("refusing archive entry {entry:?}: {reason}")]
    Refused { entry: String, reason: Refusal },
    #[error("the archive is damaged or is not a tar.zst archive ({context}): {cause}")]
    Format { context: String, cause: io::Error },
    #[error("cannot restore {entry:?} into {dir}: {cause}")]
    Write {
        entry: String,
        dir: PathBuf,
        cause: io::Error,
    },
    /// An extension header over [`MAX_EXTENSION`] (a long-name bomb).
    #[error("refusing the archive {context}: it holds {what}")]
    Oversized { context: String, what: TooLarge },
    #[error("refusing the archive: {0}")]
    Window(WindowTooLarge),
    #[error("stopped at archive entry {entry:?}: {limit}")]
    Limit { entry: String, limit: LimitError },
}

impl ExtractError {
    /// The compressed stream could not be read as an archive: reading the
    /// rest of it to finish the checksum tells damage from a bad archive.
    pub fn is_format(&self) -> bool {
        matches!(self, ExtractError::Format { .. })
    }
}

/// Counters of one extraction or check.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ExtractStats {
    pub entries: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// Bytes of regular-file content.
    pub file_bytes: u64,
    /// Entries read but not written: not taken by `restore --include`.
    pub skipped: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct ExtractOptions {
    /// Restore numeric owners and setuid/setgid/sticky bits (root only).
    pub preserve_owner: bool,
    pub limits: ExtractLimits,
}

impl ExtractOptions {
    /// Owners are restored when running as root, as `tar` does; default
    /// limits.
    pub fn for_current_user() -> Self {
        Self {
            preserve_owner: rustix::process::geteuid().is_root(),
            limits: ExtractLimits::default(),
        }
    }

    pub fn with_limits(self, limits: ExtractLimits) -> Self {
        Self { limits, ..self }
    }

    fn mode_mask(&self) -> u32 {
        if self.preserve_owner { 0o7777 } else { 0o777 }
    }
}

/// A finished extraction whose directories still have their working mode.
#[derive(Debug)]
pub struct Extracted {
    pub stats: ExtractStats,
    dirs: DirLog,
}

impl Extracted {
    /// Apply the directories' modes, owners and mtimes, in the reverse
    /// order of the archive (deepest first in a depth-first archive),
    /// relative to `root` (where the tree is now: the caller may have moved
    /// it since [`extract`]).
    pub fn finish(&mut self, root: &Path) -> Result<(), ExtractError> {
        let root_fd = open_root(root).map_err(|cause| ExtractError::Write {
            entry: ".".into(),
            dir: root.to_path_buf(),
            cause,
        })?;
        let log_err = |cause| ExtractError::Write {
            entry: "(directory attributes)".into(),
            dir: root.to_path_buf(),
            cause,
        };
        self.dirs.for_each_rev(
            |d| {
                let name = display(&d.path);
                let write = |cause: io::Error| ExtractError::Write {
                    entry: name.clone(),
                    dir: root.to_path_buf(),
                    cause,
                };
                let comps: Vec<OsString> = d
                    .path
                    .split(|b| *b == b'/')
                    .map(|c| OsString::from_vec(c.to_vec()))
                    .collect();
                let fd = walk(&root_fd, &comps, false).map_err(|w| w.into_error(&name, root))?;
                if let Some((uid, gid)) = d.owner {
                    rustix::fs::fchown(&fd, Some(uid_of(uid)), Some(gid_of(gid))).map_err(|e| write(e.into()))?;
                }
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(d.mode)).map_err(|e| write(e.into()))?;
                rustix::fs::futimens(&fd, &times(d.mtime)).map_err(|e| write(e.into()))?;
                Ok(())
            },
            log_err,
        )
    }
}

/// What one tar entry asks for, after validation.
struct Item {
    name: String,
    path: SafePath,
    kind: ItemKind,
    mode: u32,
    mtime: i64,
    /// Numeric owner, when the header has a readable one.
    owner: Option<(u32, u32)>,
}

enum ItemKind {
    Dir,
    File,
    Symlink(Vec<u8>),
    HardLink(SafePath),
    /// Metadata-only entries (pax global headers).
    Skip,
}

/// Longest name shown in a message (an archive's names may be 64 KiB).
pub const MAX_SHOWN: usize = 300;

/// A name for messages: lossy UTF-8, cut to [`MAX_SHOWN`] characters.
fn display(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(&raw[..raw.len().min(MAX_SHOWN * 4)]);
    let mut shown: String = text.chars().take(MAX_SHOWN).collect();
    if shown.len() < raw.len() {
        shown.push_str(&format!("… ({} bytes)", raw.len()));
    }
    shown
}

fn display_comps(comps: &[OsString]) -> String {
    let joined: Vec<u8> = comps.iter().map(|c| c.as_bytes()).collect::<Vec<_>>().join(&b'/');
    display(&joined)
}

fn joined(comps: &[OsString]) -> Vec<u8> {
    comps.iter().map(|c| c.as_bytes()).collect::<Vec<_>>().join(&b'/')
}

/// A read error of the stream: a guard's refusal (oversized header, zstd
/// window) or damage.
fn format_error(context: String) -> impl FnOnce(io::Error) -> ExtractError {
    move |cause| {
        if let Some(what) = headers::too_large(&cause) {
            return ExtractError::Oversized {
                context,
                what: what.clone(),
            };
        }
        if let Some(w) = decode::window_too_large(&cause) {
            return ExtractError::Window(w.clone());
        }
        ExtractError::Format { context, cause }
    }
}

/// Validate one entry: its type, its name and a hard link's target.
fn classify<R: Read>(entry: &tar::Entry<'_, R>) -> Result<Item, ExtractError> {
    let raw = entry.path_bytes();
    let name = display(&raw);
    let refused = |reason| ExtractError::Refused {
        entry: name.clone(),
        reason,
    };
    let header = entry.header();
    let entry_type = header.entry_type();
    let special = match entry_type {
        tar::EntryType::Char => Some("character device"),
        tar::EntryType::Block => Some("block device"),
        tar::EntryType::Fifo => Some("FIFO"),
        _ => None,
    };
    if let Some(what) = special {
        return Err(refused(Refusal::Special(what)));
    }
    let path = sanitize_path(&raw).map_err(|p| refused(Refusal::Path(p)))?;
    let kind = match entry_type {
        tar::EntryType::Directory => ItemKind::Dir,
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => ItemKind::File,
        tar::EntryType::Symlink => match entry.link_name_bytes() {
            Some(t) if !t.is_empty() => ItemKind::Symlink(t.into_owned()),
            _ => {
                return Err(ExtractError::Format {
                    context: format!("in entry {name:?}"),
                    cause: io::Error::new(io::ErrorKind::InvalidData, "symlink without a target"),
                });
            }
        },
        tar::EntryType::Link => {
            let target = entry.link_name_bytes().unwrap_or_default();
            let target = sanitize_path(&target).map_err(|p| refused(Refusal::LinkTarget(p)))?;
            if target.is_root() {
                return Err(refused(Refusal::LinkTarget(PathProblem::Empty)));
            }
            ItemKind::HardLink(target)
        }
        tar::EntryType::XGlobalHeader => ItemKind::Skip,
        other => return Err(refused(Refusal::Unsupported(format!("{other:?}")))),
    };
    if path.is_root() && !matches!(kind, ItemKind::Dir | ItemKind::Skip) {
        return Err(refused(Refusal::Path(PathProblem::Empty)));
    }
    let in_entry = || format!("in entry {name:?}");
    let mode = header.mode().map_err(format_error(in_entry()))?;
    let mtime = header.mtime().map_err(format_error(in_entry()))?;
    let owner = match (header.uid(), header.gid()) {
        (Ok(uid), Ok(gid)) => Some((
            u32::try_from(uid).unwrap_or(u32::MAX),
            u32::try_from(gid).unwrap_or(u32::MAX),
        )),
        _ => None,
    };
    Ok(Item {
        name: name.clone(),
        path,
        kind,
        mode,
        mtime: i64::try_from(mtime).unwrap_or(i64::MAX),
        owner,
    })
}

/// Decode `input` on a second thread (so decompression overlaps the file
/// writes), call `f` on every tar entry, then read the stream to its end
/// (so trailing garbage and truncated frames are noticed).
fn for_each_entry<R: Read + Send>(
    input: R,
    max_entries: u64,
    mut f: impl FnMut(&mut tar::Entry<'_, HeaderGuard<Decoded>>, Item) -> Result<(), ExtractError>,
) -> Result<(), ExtractError> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(DECODED_QUEUE);
        scope.spawn(move || decode(input, tx));
        let mut archive = tar::Archive::new(HeaderGuard::new(Decoded {
            rx,
            current: Vec::new(),
            pos: 0,
        }));
        let mut count = 0u64;
        let mut last: Option<String> = None;
        let after = |last: &Option<String>| match last {
            Some(name) => format!("after entry {name:?}"),
            None => "at the start".to_string(),
        };
        {
            let entries = archive.entries().map_err(format_error(after(&last)))?;
            for entry in entries {
                let mut entry = entry.map_err(format_error(after(&last)))?;
                let item = classify(&entry)?;
                count += 1;
                if count > max_entries {
                    return Err(ExtractError::Limit {
                        entry: item.name,
                        limit: LimitError::Entries(max_entries),
                    });
                }
                let name = item.name.clone();
                f(&mut entry, item)?;
                last = Some(name);
            }
        }
        let mut rest = archive.into_inner().into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(format_error(after(&last)))?;
        Ok(())
    })
}

/// Extract the compressed archive read from `input` into the existing
/// directory `dest`. On error, whatever was written stays in `dest` for the
/// caller to remove.
pub fn extract<R: Read + Send>(input: R, dest: &Path, opts: &ExtractOptions) -> Result<Extracted, ExtractError> {
    extract_selected(input, dest, opts, &mut Selection::all())
}

/// [`extract`] only the entries `selection` takes; the others are read
/// (every check still applies to them) and counted as skipped.
pub fn extract_selected<R: Read + Send>(
    input: R,
    dest: &Path,
    opts: &ExtractOptions,
    selection: &mut Selection,
) -> Result<Extracted, ExtractError> {
    let root = open_root(dest).map_err(|cause| ExtractError::Write {
        entry: ".".into(),
        dir: dest.to_path_buf(),
        cause,
    })?;
    let dirs = DirLog::new(dest).map_err(|cause| ExtractError::Write {
        entry: "(directory attributes)".into(),
        dir: dest.to_path_buf(),
        cause,
    })?;
    let mut ex = Extractor {
        cache: DirCache {
            root,
            stack: Vec::new(),
        },
        dest: dest.to_path_buf(),
        opts: *opts,
        stats: ExtractStats::default(),
        dirs,
        budget: Budget::new(opts.limits),
        buf: vec![0; 256 * 1024],
    };
    let mut skipped = 0;
    for_each_entry(input, opts.limits.max_entries, |entry, item| {
        if selection.wants(&item.path, matches!(item.kind, ItemKind::Dir)) {
            ex.entry(entry, item)
        } else {
            skipped += 1;
            Ok(())
        }
    })?;
    ex.stats.skipped = skipped;
    Ok(Extracted {
        stats: ex.stats,
        dirs: ex.dirs,
    })
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
