//! The writing side of extraction: descending the target tree one
//! component at a time through directory descriptors, never following a
//! symlink, and creating entries relative to them (see the parent module's
//! "How writes stay inside the directory").

use super::*;

/// Why a walk down the tree stopped.
pub(super) enum Walk {
    Symlink(String),
    NotDir(String),
    Missing(String),
    Io(io::Error),
}

impl Walk {
    pub(super) fn into_error(self, entry: &str, dir: &Path) -> ExtractError {
        let refused = |reason| ExtractError::Refused {
            entry: entry.to_string(),
            reason,
        };
        match self {
            Walk::Symlink(at) => refused(Refusal::ThroughSymlink(at)),
            Walk::NotDir(at) => refused(Refusal::NotADirectory(at)),
            Walk::Missing(at) => refused(Refusal::LinkTargetMissing(at)),
            Walk::Io(cause) => ExtractError::Write {
                entry: entry.to_string(),
                dir: dir.to_path_buf(),
                cause,
            },
        }
    }
}

pub(super) fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

pub(super) fn is_symlink(parent: BorrowedFd<'_>, name: &OsStr) -> bool {
    rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
}

/// Open the directory `name` in `parent` without following a symlink; with
/// `create`, a missing one is made `0700`. `at` names it in errors.
pub(super) fn open_component(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    create: bool,
    at: impl Fn() -> String,
) -> Result<OwnedFd, Walk> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut result = rustix::fs::openat(parent, name, flags, Mode::empty());
    if create && matches!(result, Err(Errno::NOENT)) {
        match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(Walk::Io(e.into())),
        }
        result = rustix::fs::openat(parent, name, flags, Mode::empty());
    }
    result.map_err(|e| match e {
        _ if is_symlink(parent, name) => Walk::Symlink(at()),
        Errno::NOTDIR => Walk::NotDir(at()),
        Errno::NOENT => Walk::Missing(at()),
        other => Walk::Io(other.into()),
    })
}

/// Open the directory `comps` below `root`, one component at a time, never
/// following a symlink; with `create`, missing directories are made `0700`.
pub(super) fn walk(root: &OwnedFd, comps: &[OsString], create: bool) -> Result<OwnedFd, Walk> {
    let mut current = rustix::io::dup(root).map_err(|e| Walk::Io(e.into()))?;
    for (i, comp) in comps.iter().enumerate() {
        current = open_component(current.as_fd(), comp, create, || display_comps(&comps[..=i]))?;
    }
    Ok(current)
}

/// The target's root descriptor and the open directories of the current
/// path below it. Tar streams are depth-first, so moving from one entry's
/// parent to the next one's opens each directory about once.
pub(super) struct DirCache {
    pub(super) root: OwnedFd,
    /// `stack[i]` is the directory `stack[0].0/…/stack[i].0`.
    pub(super) stack: Vec<(OsString, OwnedFd)>,
}

impl DirCache {
    pub(super) fn open(&mut self, comps: &[OsString], create: bool) -> Result<BorrowedFd<'_>, Walk> {
        let common = self
            .stack
            .iter()
            .zip(comps)
            .take_while(|((name, _), comp)| name == *comp)
            .count();
        self.stack.truncate(common);
        for (i, comp) in comps.iter().enumerate().skip(common) {
            let parent = self.stack.last().map_or(self.root.as_fd(), |(_, fd)| fd.as_fd());
            let fd = open_component(parent, comp, create, || display_comps(&comps[..=i]))?;
            self.stack.push((comp.clone(), fd));
        }
        Ok(self.stack.last().map_or(self.root.as_fd(), |(_, fd)| fd.as_fd()))
    }
}

pub(super) struct Extractor {
    pub(super) cache: DirCache,
    pub(super) dest: PathBuf,
    pub(super) opts: ExtractOptions,
    pub(super) stats: ExtractStats,
    pub(super) dirs: DirLog,
    pub(super) budget: Budget,
    pub(super) buf: Vec<u8>,
}

pub(super) fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

pub(super) fn uid_of(uid: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(uid)
}

pub(super) fn gid_of(gid: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(gid)
}

/// Make room for a new non-directory called `name`: unlink what is there,
/// unless it is a directory.
pub(super) fn clear_name(parent: BorrowedFd<'_>, name: &OsStr) -> Result<(), Clear> {
    let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| Clear::Io(e.into()))?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        return Err(Clear::IsDir);
    }
    rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(|e| Clear::Io(e.into()))
}

pub(super) enum Clear {
    IsDir,
    Io(io::Error),
}

/// Run `create`; if the name exists, clear it (never a directory) and retry.
pub(super) fn create_fresh<T>(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    mut create: impl FnMut() -> rustix::io::Result<T>,
) -> Result<T, Clear> {
    match create() {
        Err(Errno::EXIST) => {
            clear_name(parent, name)?;
            create().map_err(|e| Clear::Io(e.into()))
        }
        other => other.map_err(|e| Clear::Io(e.into())),
    }
}

impl Extractor {
    pub(super) fn write_err(&self, entry: &str) -> impl FnOnce(io::Error) -> ExtractError + use<> {
        let entry = entry.to_string();
        let dir = self.dest.clone();
        move |cause| ExtractError::Write { entry, dir, cause }
    }

    pub(super) fn clear_err(&self, item: &Item) -> impl FnOnce(Clear) -> ExtractError + use<> {
        let write = self.write_err(&item.name);
        let entry = item.name.clone();
        move |c| match c {
            Clear::IsDir => ExtractError::Refused {
                reason: Refusal::ReplacesDirectory(entry.clone()),
                entry,
            },
            Clear::Io(e) => write(e),
        }
    }

    pub(super) fn owner(&self, item: &Item) -> Option<(u32, u32)> {
        item.owner.filter(|_| self.opts.preserve_owner)
    }

    pub(super) fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, item: Item) -> Result<(), ExtractError> {
        self.stats.entries += 1;
        match &item.kind {
            ItemKind::Dir => self.dir(&item),
            ItemKind::File => self.file(entry, &item),
            ItemKind::Symlink(target) => self.symlink(&item, target),
            ItemKind::HardLink(target) => self.hardlink(&item, target),
            ItemKind::Skip => Ok(()),
        }
    }

    pub(super) fn dir(&mut self, item: &Item) -> Result<(), ExtractError> {
        if item.path.is_root() {
            return Ok(());
        }
        if let Err(w) = self.cache.open(item.path.components(), true) {
            return Err(w.into_error(&item.name, &self.dest));
        }
        let attrs = DirAttrs {
            path: joined(item.path.components()),
            mode: item.mode & self.opts.mode_mask(),
            mtime: item.mtime,
            owner: self.owner(item),
        };
        self.dirs.push(&attrs).map_err(self.write_err(&item.name))?;
        self.stats.dirs += 1;
        Ok(())
    }

    pub(super) fn file<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, item: &Item) -> Result<(), ExtractError> {
        let Some((name, parent_comps)) = item.path.split_last() else {
            return Err(ExtractError::Refused {
                entry: item.name.clone(),
                reason: Refusal::Path(PathProblem::Empty),
            });
        };
        let clear_err = self.clear_err(item);
        let write = self.write_err(&item.name);
        let owner = self.owner(item);
        let mode = item.mode & self.opts.mode_mask();
        let parent = match self.cache.open(parent_comps, true) {
            Ok(p) => p,
            Err(w) => return Err(w.into_error(&item.name, &self.dest)),
        };
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = create_fresh(parent, name, || {
            rustix::fs::openat(parent, name.as_os_str(), flags, Mode::from_raw_mode(0o600))
        })
        .map_err(clear_err)?;
        let mut file = File::from(fd);
        loop {
            let n = entry
                .read(&mut self.buf)
                .map_err(format_error(format!("in entry {:?}", item.name)))?;
            if n == 0 {
                break;
            }
            match self.budget.write(&file, n as u64) {
                Ok(Ok(())) => {}
                Ok(Err(limit)) => {
                    return Err(ExtractError::Limit {
                        entry: item.name.clone(),
                        limit,
                    });
                }
                Err(e) => return Err(write(e)),
            }
            if let Err(e) = file.write_all(&self.buf[..n]) {
                return Err(write(e));
            }
            self.stats.file_bytes += n as u64;
        }
        let attrs = || -> io::Result<()> {
            if let Some((uid, gid)) = owner {
                rustix::fs::fchown(&file, Some(uid_of(uid)), Some(gid_of(gid)))?;
            }
            rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))?;
            rustix::fs::futimens(&file, &times(item.mtime))?;
            Ok(())
        };
        attrs().map_err(write)?;
        self.stats.files += 1;
        Ok(())
    }

    pub(super) fn symlink(&mut self, item: &Item, target: &[u8]) -> Result<(), ExtractError> {
        let Some((name, parent_comps)) = item.path.split_last() else {
            return Err(ExtractError::Refused {
                entry: item.name.clone(),
                reason: Refusal::Path(PathProblem::Empty),
            });
        };
        let clear_err = self.clear_err(item);
        let write = self.write_err(&item.name);
        let owner = self.owner(item);
        let parent = match self.cache.open(parent_comps, true) {
            Ok(p) => p,
            Err(w) => return Err(w.into_error(&item.name, &self.dest)),
        };
        create_fresh(parent, name, || rustix::fs::symlinkat(target, parent, name.as_os_str())).map_err(clear_err)?;
        let attrs = || -> io::Result<()> {
            if let Some((uid, gid)) = owner {
                rustix::fs::chownat(
                    parent,
                    name.as_os_str(),
                    Some(uid_of(uid)),
                    Some(gid_of(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
            }
            rustix::fs::utimensat(parent, name.as_os_str(), &times(item.mtime), AtFlags::SYMLINK_NOFOLLOW)?;
            Ok(())
        };
        attrs().map_err(write)?;
        self.stats.symlinks += 1;
        Ok(())
    }

    pub(super) fn hardlink(&mut self, item: &Item, target: &SafePath) -> Result<(), ExtractError> {
        let (Some((name, parent_comps)), Some((target_name, target_parent))) =
            (item.path.split_last(), target.split_last())
        else {
            return Err(ExtractError::Refused {
                entry: item.name.clone(),
                reason: Refusal::Path(PathProblem::Empty),
            });
        };
        let clear_err = self.clear_err(item);
        let target_display = display_comps(target.components());
        let missing = ExtractError::Refused {
            entry: item.name.clone(),
            reason: Refusal::LinkTargetMissing(target_display.clone()),
        };
        let target_dir = walk(&self.cache.root, target_parent, false).map_err(|w| match w {
            Walk::Missing(_) | Walk::NotDir(_) => ExtractError::Refused {
                entry: item.name.clone(),
                reason: Refusal::LinkTargetMissing(target_display.clone()),
            },
            other => other.into_error(&item.name, &self.dest),
        })?;
        let parent = match self.cache.open(parent_comps, true) {
            Ok(p) => p,
            Err(w) => return Err(w.into_error(&item.name, &self.dest)),
        };
        let result = create_fresh(parent, name, || {
            rustix::fs::linkat(
                &target_dir,
                target_name.as_os_str(),
                parent,
                name.as_os_str(),
                AtFlags::empty(),
            )
        });
        match result {
            Ok(()) => {}
            Err(Clear::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Err(missing),
            Err(c) => return Err(clear_err(c)),
        }
        self.stats.hardlinks += 1;
        Ok(())
    }
}
