//! Getting archives back: `restore` (download → SHA-256 → zstd → safe tar
//! extraction, in one streaming pass) and `verify` (the same pass, writing
//! nothing).
//!
//! An archive is named by catalog id or object key ([`locate`]); with an
//! empty catalog a key is found by asking each configured server in order.
//! The download must match every recorded checksum ([`references`]): the
//! catalog's, the `{key}.sha256` sidecar's (the one that survives the loss
//! of the host) and a `sha256` metadata field if there is one.
//!
//! # Where a restore writes, and what a failure leaves
//!
//! `--to DIR` must be missing or empty. The archive is extracted into
//! `DIR/.sitebackup-partial-PID/` (mode 0700), and only once the whole
//! object was read, it matched every reference checksum and every entry was
//! extracted, are its top-level entries (`manifest.json`, `files/`,
//! `database/`) renamed into `DIR` and the directories given their final
//! modes and mtimes. On any failure — checksum mismatch, unreadable or
//! refused entry, download error, Ctrl-C — the partial tree is **removed**
//! (and `DIR` too, if the restore created it), the error says so, and the
//! command exits 1; `DIR` never holds an untrusted tree under the names a
//! good restore uses. With `keep_partial` (`--keep-partial`) the partial
//! tree is instead renamed to `DIR/UNTRUSTED-partial-restore/` for salvage.
//!
//! After a restore, `DIR/database/*.sql` are the dumps
//! ([`RestoreReport::database_dumps`]), ready for an import step, which
//! opens one with [`open_dump`] (never by a path the manifest names).

mod dump;
mod locate;
mod stream;

pub use dump::{DumpError, dump_name, open_dump};

pub use locate::{Located, Reference, locate, references};
pub use stream::{DownloadProgress, Downloaded, download_through};

use crate::archive::extract::{self, ExtractError, ExtractOptions, ExtractStats};
use crate::catalog::{CatalogError, VerifyOutcome};
use crate::storage::StorageError;
use rustix::fs::{Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use serde::Serialize;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Name of the kept partial tree (`--keep-partial`) under the target.
pub const UNTRUSTED_DIR: &str = "UNTRUSTED-partial-restore";

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("no archive with id {0} in the catalog (see `sitebackup list --all`)")]
    UnknownId(i64),
    #[error("archive {id} is {status} in the catalog: it was never stored; pick a complete one from `sitebackup list`")]
    NotStored {
        id: i64,
        status: crate::catalog::ArchiveStatus,
    },
    #[error(
        "archive {id} is stored on {location}, which is not a configured server; configure a server with that endpoint and bucket"
    )]
    ServerNotConfigured { id: i64, location: String },
    #[error("{key:?} is not in the catalog and no configured server has it ({tried})")]
    NotFound { key: String, tried: String },
    #[error("No S3 servers configured")]
    NoServers,
    /// The servers could not be had (node mode: the master refused).
    #[error("{0}")]
    Source(String),
    #[error("{0:?} is neither a catalog id nor an object key")]
    BadName(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(
        "checksum mismatch for {key}: the {reference} records sha256 {expected}, but the downloaded object hashes to {actual}; the stored archive is damaged or was replaced"
    )]
    ChecksumMismatch {
        key: String,
        reference: &'static str,
        expected: String,
        actual: String,
    },
    #[error("target directory {dir}: {problem}")]
    Target { dir: PathBuf, problem: String },
    #[error("cancelled")]
    Cancelled,
    #[error("{error}. {leftover}")]
    Aborted { error: Box<RestoreError>, leftover: String },
    #[error("internal error: {0}")]
    Internal(String),
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CatalogError> + Send + 'static,
) -> Result<T, RestoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Ok(r?),
        Err(e) => Err(RestoreError::Internal(e.to_string())),
    }
}

async fn blocking_io<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RestoreError> + Send + 'static,
) -> Result<T, RestoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(RestoreError::Internal(e.to_string())))
}

/// The first reference the download does not match, as an error.
fn mismatch(key: &str, refs: &[Reference], actual: &str) -> Option<RestoreError> {
    refs.iter()
        .find(|r| r.sha256 != actual)
        .map(|r| RestoreError::ChecksumMismatch {
            key: key.to_string(),
            reference: r.describe(),
            expected: r.sha256.clone(),
            actual: actual.to_string(),
        })
}

#[derive(Debug, Clone, Copy)]
pub struct RestoreOptions {
    pub extract: ExtractOptions,
    /// On failure keep the partial tree as [`UNTRUSTED_DIR`] instead of
    /// removing it.
    pub keep_partial: bool,
}

/// What a successful restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub id: Option<i64>,
    pub server_id: u32,
    pub server: crate::storage::ServerInfo,
    pub key: String,
    pub target: PathBuf,
    pub size_bytes: u64,
    pub sha256: String,
    /// The recorded checksums the download matched.
    pub checked_against: Vec<Reference>,
    pub stats: ExtractStats,
    pub manifest: Option<serde_json::Value>,
    /// `target/database/*.sql`: the dumps, for an import step.
    pub database_dumps: Vec<PathBuf>,
    pub warnings: Vec<String>,
    pub duration_secs: f64,
}

/// The target directory, checked and holding a fresh staging directory.
#[derive(Debug, Clone)]
struct Prepared {
    target: PathBuf,
    staging: PathBuf,
    created_target: bool,
}

fn target_err(dir: &Path, problem: impl Into<String>) -> RestoreError {
    RestoreError::Target {
        dir: dir.to_path_buf(),
        problem: problem.into(),
    }
}

fn prepare_target(target: &Path) -> Result<Prepared, RestoreError> {
    let created_target = match std::fs::metadata(target) {
        Ok(m) if !m.is_dir() => return Err(target_err(target, "exists and is not a directory")),
        Ok(_) => {
            let mut entries = std::fs::read_dir(target).map_err(|e| target_err(target, e.to_string()))?;
            if entries.next().is_some() {
                return Err(target_err(
                    target,
                    "is not empty; restore into a new or empty directory, then move what you need into place",
                ));
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // 0700: the tree holds the site's secrets and the database dump.
            crate::private::create_dir_all(target).map_err(|e| target_err(target, format!("cannot create it: {e}")))?;
            true
        }
        Err(e) => return Err(target_err(target, e.to_string())),
    };
    let staging = target.join(format!(".sitebackup-partial-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(|e| target_err(target, format!("cannot create {}: {e}", staging.display())))?;
    Ok(Prepared {
        target: target.to_path_buf(),
        staging,
        created_target,
    })
}

/// Move the staged top-level entries into the target (never replacing
/// anything) and drop the staging directory.
fn publish(p: &Prepared) -> Result<(), RestoreError> {
    let io = |what: &str, e: std::io::Error| target_err(&p.target, format!("{what}: {e}"));
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let target_fd = rustix::fs::open(&p.target, dir_flags, Mode::empty()).map_err(|e| io("open", e.into()))?;
    let staging_fd = rustix::fs::open(&p.staging, dir_flags, Mode::empty()).map_err(|e| io("open", e.into()))?;
    let mut names: Vec<_> = std::fs::read_dir(&p.staging)
        .map_err(|e| io("read the staging directory", e))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|e| io("read the staging directory", e))?;
    names.sort();
    for name in names {
        let moved = match rustix::fs::renameat_with(&staging_fd, &name, &target_fd, &name, RenameFlags::NOREPLACE) {
            Err(Errno::INVAL) | Err(Errno::NOSYS) => {
                // No RENAME_NOREPLACE on this filesystem: check, then rename.
                if p.target.join(&name).symlink_metadata().is_ok() {
                    Err(Errno::EXIST)
                } else {
                    rustix::fs::renameat(&staging_fd, &name, &target_fd, &name)
                }
            }
            other => other,
        };
        moved.map_err(|e| io(&format!("move {:?} into place", name), e.into()))?;
    }
    std::fs::remove_dir(&p.staging).map_err(|e| io("remove the staging directory", e))?;
    Ok(())
}

/// Remove (or keep, marked untrusted) the partial tree after a failure.
fn abandon(p: &Prepared, error: RestoreError, keep: bool) -> RestoreError {
    let leftover = if keep {
        let kept = p.target.join(UNTRUSTED_DIR);
        match std::fs::rename(&p.staging, &kept) {
            Ok(()) => format!(
                "The partial tree is kept in {}: it is NOT TRUSTWORTHY (incomplete or unverified)",
                kept.display()
            ),
            Err(e) => format!(
                "The partial tree is kept in {} ({e} when renaming it): it is NOT TRUSTWORTHY",
                p.staging.display()
            ),
        }
    } else {
        match std::fs::remove_dir_all(&p.staging) {
            Ok(()) => {
                if p.created_target {
                    let _ = std::fs::remove_dir(&p.target);
                }
                "Nothing was restored: the partial tree was removed (--keep-partial keeps it for salvage)".to_string()
            }
            Err(e) => format!(
                "The partial tree in {} could not be removed ({e}); it is NOT TRUSTWORTHY: delete it",
                p.staging.display()
            ),
        }
    };
    RestoreError::Aborted {
        error: Box::new(error),
        leftover,
    }
}

/// Restore the archive into `target` (see the module docs for what a
/// failure leaves behind).
pub async fn restore_to(
    located: &Located,
    target: &Path,
    opts: RestoreOptions,
    progress: &DownloadProgress,
    cancel: &CancellationToken,
) -> Result<RestoreReport, RestoreError> {
    let started = Instant::now();
    let t = target.to_path_buf();
    let prepared = blocking_io(move || prepare_target(&t)).await?;
    let (refs, mut warnings) = references(located).await;
    if refs.is_empty() {
        warnings.push(format!(
            "no recorded checksum for {} (no catalog row, no {} object): the download cannot be proven intact",
            located.key,
            crate::storage::sidecar_key(&located.key)
        ));
    }
    progress
        .total
        .store(located.size.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    let staging = prepared.staging.clone();
    let extract_opts = opts.extract;
    let downloaded = download_through(located.store.as_ref(), &located.key, progress, cancel, move |r| {
        extract::extract(r, &staging, &extract_opts)
    })
    .await;
    let checked = downloaded.and_then(|d| {
        if d.complete
            && let Some(e) = mismatch(&located.key, &refs, &d.sha256)
        {
            return Err(e);
        }
        let extracted = d.result?;
        if !d.complete {
            return Err(RestoreError::Internal("the download ended early".into()));
        }
        Ok((extracted, d.sha256, d.bytes))
    });
    let (mut extracted, sha256, size_bytes) = match checked {
        Ok(v) => v,
        Err(e) => {
            let p = prepared.clone();
            let keep = opts.keep_partial;
            return Err(blocking_io(move || Ok(abandon(&p, e, keep))).await?);
        }
    };
    if let Some(expected) = located.size
        && expected != size_bytes
    {
        warnings.push(format!(
            "the catalog records {expected} bytes but the object has {size_bytes}; `sitebackup reconcile` corrects the catalog"
        ));
    }
    let stats = extracted.stats.clone();
    let p = prepared.clone();
    let keep = opts.keep_partial;
    let (manifest, database_dumps, more_warnings) = blocking_io(move || {
        if let Err(e) = publish(&p) {
            return Err(abandon(&p, e, keep));
        }
        extracted.finish(&p.target).map_err(|e| RestoreError::Aborted {
            error: Box::new(e.into()),
            leftover: "The archive was verified and every entry restored, but some directories may lack their \
                       mode, owner or mtime"
                .to_string(),
        })?;
        Ok(inspect(&p.target))
    })
    .await?;
    warnings.extend(more_warnings);
    for w in &warnings {
        tracing::warn!(key = %located.key, "{w}");
    }
    Ok(RestoreReport {
        id: located.row.as_ref().map(|r| r.id),
        server_id: located.server.id,
        server: located.server.info(),
        key: located.key.clone(),
        target: target.to_path_buf(),
        size_bytes,
        sha256,
        checked_against: refs,
        stats,
        manifest,
        database_dumps,
        warnings,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

/// The restored manifest and database dumps, and what looks wrong.
fn inspect(target: &Path) -> (Option<serde_json::Value>, Vec<PathBuf>, Vec<String>) {
    let mut warnings = Vec::new();
    let manifest_path = target.join("manifest.json");
    let manifest = match std::fs::symlink_metadata(&manifest_path) {
        Ok(m) if m.is_file() => match std::fs::read(&manifest_path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string()))
        {
            Ok(v) => Some(v),
            Err(e) => {
                warnings.push(format!("manifest.json is unreadable: {e}"));
                None
            }
        },
        _ => {
            warnings.push("the archive has no manifest.json: it was not made by sitebackup, or is incomplete".into());
            None
        }
    };
    let mut dumps: Vec<PathBuf> = std::fs::read_dir(target.join("database"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "sql") && p.symlink_metadata().is_ok_and(|m| m.is_file())
                })
                .collect()
        })
        .unwrap_or_default();
    dumps.sort();
    (manifest, dumps, warnings)
}

/// The outcome of verifying one archive.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// The archive as it was asked for on the command line (a catalog id
    /// or an object key), as typed; `id` and `key` are what it resolved to.
    pub requested: String,
    pub id: Option<i64>,
    pub server_id: Option<u32>,
    pub key: Option<String>,
    pub ok: bool,
    /// What the verify proved: `ok`, `corrupt` (read to the end, and the
    /// checksum or format did not match) or `inconclusive` (anything else
    /// that went wrong, such as a download error).
    pub outcome: VerifyOutcome,
    pub size_bytes: Option<u64>,
    pub sha256: Option<String>,
    /// The recorded checksums compared with the download.
    pub checked_against: Vec<Reference>,
    pub stats: Option<ExtractStats>,
    pub site: Option<String>,
    pub created_at: Option<String>,
    pub error: Option<String>,
    pub warnings: Vec<String>,
    pub duration_secs: f64,
}

impl VerifyReport {
    /// A report for an archive that could not even be located.
    pub fn failed(archive: &str, error: String) -> Self {
        Self {
            requested: archive.to_string(),
            error: Some(error),
            ..Self::default()
        }
    }
}

/// Download the archive, compare its SHA-256 with every recorded checksum
/// and read it completely through zstd and tar with the restore checks.
/// Fails when there is no recorded checksum at all: integrity cannot be
/// proven then.
pub async fn verify(
    archive: &str,
    located: &Located,
    limits: extract::ExtractLimits,
    progress: &DownloadProgress,
    cancel: &CancellationToken,
) -> VerifyReport {
    let started = Instant::now();
    let mut report = VerifyReport {
        requested: archive.to_string(),
        id: located.row.as_ref().map(|r| r.id),
        server_id: Some(located.server.id),
        key: Some(located.key.clone()),
        ..VerifyReport::default()
    };
    let (refs, warnings) = references(located).await;
    report.warnings = warnings;
    progress
        .total
        .store(located.size.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    let mut errors = Vec::new();
    // Damage is proven only by a download that reached the end of the
    // object: a checksum mismatch, or bytes that are not a tar.zst archive.
    // A download error, a refused entry or a missing checksum proves
    // nothing about the stored object.
    let mut corrupt = false;
    let check = move |r| extract::check(r, &limits);
    match download_through(located.store.as_ref(), &located.key, progress, cancel, check).await {
        Err(e) => errors.push(e.to_string()),
        Ok(d) => {
            report.sha256 = Some(d.sha256.clone());
            report.size_bytes = Some(d.bytes);
            if d.complete {
                if let Some(e) = mismatch(&located.key, &refs, &d.sha256) {
                    errors.push(e.to_string());
                    corrupt = true;
                }
                if let Some(expected) = located.size
                    && expected != d.bytes
                {
                    errors.push(format!(
                        "size mismatch: {expected} bytes recorded, {} downloaded",
                        d.bytes
                    ));
                }
            }
            match d.result {
                Err(e) => {
                    corrupt |= d.complete && e.is_format();
                    errors.push(e.to_string());
                }
                Ok(summary) => {
                    match &summary.manifest {
                        None => errors.push(
                            "manifest.json is missing: the archive is incomplete or was not made by sitebackup".into(),
                        ),
                        Some(m) => {
                            report.site = m["site"].as_str().map(String::from);
                            report.created_at = m["created_at"].as_str().map(String::from);
                            if !summary.manifest_is_last {
                                report
                                    .warnings
                                    .push("entries follow manifest.json, which sitebackup writes last".into());
                            }
                        }
                    }
                    report.stats = Some(summary.stats);
                }
            }
            if refs.is_empty() {
                errors.push(format!(
                    "no recorded checksum (no catalog row, no {} object): the archive cannot be proven intact",
                    crate::storage::sidecar_key(&located.key)
                ));
            }
        }
    }
    report.checked_against = refs;
    report.ok = errors.is_empty();
    report.outcome = match (report.ok, corrupt) {
        (true, _) => VerifyOutcome::Ok,
        (false, true) => VerifyOutcome::Corrupt,
        (false, false) => VerifyOutcome::Inconclusive,
    };
    report.error = (!errors.is_empty()).then(|| errors.join("; "));
    report.duration_secs = started.elapsed().as_secs_f64();
    report
}

#[cfg(test)]
mod tests;
