//! One [`BackupJob`], shared by `sitebackup backup` and the daemon.
//!
//! For each site: take the site lock, open a run, then try the servers in
//! order. A server is skipped when `usage + estimate > limit`. Otherwise the
//! archive is streamed to it: a blocking thread writes tar → zstd → SHA-256 →
//! parts into a bounded channel; up to `concurrency` parts upload at once.
//! The limit is enforced again as bytes go out. On failure the multipart
//! upload is aborted, the row marked `failed`, and the archive is streamed
//! again **from the source** to the next server: no local spool of the
//! archive, so no disk space is needed for it, at the cost of reading the
//! site once more per failover.
//!
//! The database is different: it is dumped **once** per run, after the
//! `before` hooks and before the first server is tried, into
//! `{state_dir}/spool/{site}.sql` (a tar entry needs its size up front, and
//! every attempt must carry the same consistent snapshot). Each attempt
//! reads that file; it is deleted when the run ends. A failed dump fails the
//! run before anything is uploaded. `after` hooks run once an archive is
//! stored, `on_error` hooks after a failure (see [`crate::hooks`]).

mod plan;
#[cfg(test)]
mod tests;
mod upload;

pub use plan::{
    Choice, ServerSlot, Skip, Suspicion, estimate_bytes, fail_over_after, judge_archive, part_size_for, plan_servers,
    room_check,
};

use crate::archive::{self, ArchiveSpec, DatabaseEntry, Excludes, HashingWriter, PartSink};
use crate::catalog::{Attempt, AttemptOutcome, Catalog, NewArchive, RunOutcome, SuspectCause};
use crate::config::{Config, SiteConfig};
use crate::database::{self, DatabaseDump};
use crate::hooks::{self, HookContext, HookStage};
use crate::install::{self, Installation};
use crate::layout::ArchiveKey;
use crate::lock::SiteLock;
use crate::storage::{
    self, CompletedPart, ObjectStore, Purpose, ServerSource, StorageError, Target, abort_with_retries, with_retries,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Source bytes expected (sum of file sizes).
    pub total: AtomicU64,
    /// Source bytes read so far in the current attempt.
    pub read: AtomicU64,
    /// Compressed bytes confirmed by the server in the current attempt.
    pub uploaded: AtomicU64,
    /// Unix milliseconds until which a step with a time limit of its own
    /// (a hook, the database dump) may run without moving bytes; 0: none.
    pub step_until_ms: AtomicI64,
}

impl Progress {
    /// A step that may run for up to `limit` without moving bytes; its end
    /// (the guard dropped) clears it.
    pub fn step(&self, limit: Duration) -> StepGuard<'_> {
        let until = Utc::now()
            .timestamp_millis()
            .saturating_add(i64::try_from(limit.as_millis()).unwrap_or(i64::MAX));
        self.step_until_ms.store(until, Ordering::Relaxed);
        StepGuard(self)
    }

    /// A count that grows whenever the job moves bytes (reads the site,
    /// completes a part, or sends or receives body bytes on any server).
    pub fn activity(&self) -> u64 {
        self.read
            .load(Ordering::Relaxed)
            .wrapping_add(self.uploaded.load(Ordering::Relaxed))
            .wrapping_add(storage::transfers())
    }

    /// The end of the running step, if one is running.
    pub fn step_until(&self) -> Option<DateTime<Utc>> {
        match self.step_until_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }
}

/// Ends a [`Progress::step`].
pub struct StepGuard<'a>(&'a Progress);

impl Drop for StepGuard<'_> {
    fn drop(&mut self) {
        self.0.step_until_ms.store(0, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveDone {
    pub id: i64,
    pub server_id: u32,
    pub server: crate::storage::ServerInfo,
    pub key: String,
    pub size_bytes: u64,
    pub sha256: String,
    /// Set when the archive was marked suspect (see [`judge_archive`]).
    pub suspect: Option<SuspectCause>,
    /// The server it is on (a master's provider is told by it).
    #[serde(skip)]
    pub location: crate::layout::ServerRef,
}

/// The outcome of one site's backup.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub site: String,
    pub run_id: Option<i64>,
    pub outcome: RunOutcome,
    pub archive: Option<ArchiveDone>,
    /// Set when the stored archive looks wrong (see [`judge_archive`]); the
    /// run then ends as `warning`.
    pub suspect: Option<SuspectCause>,
    pub attempts: Vec<Attempt>,
    pub warnings: Vec<String>,
    pub error: Option<String>,
    /// The run was refused because the prefix belongs to another
    /// installation: a configuration problem (`backup` exits 2).
    pub foreign_owner: bool,
    pub duration_secs: f64,
}

/// Everything one backup needs. Cheap to build per run.
pub struct BackupJob {
    pub config: Arc<Config>,
    pub site: SiteConfig,
    pub catalog: Arc<Catalog>,
    /// Where the servers come from (the configuration, or a master's lease).
    pub source: Arc<dyn ServerSource>,
    /// This installation: its id goes into every object's metadata and
    /// the prefix's owner marker.
    pub install: Arc<Installation>,
    pub trigger: &'static str,
    pub progress: Arc<Progress>,
    pub cancel: CancellationToken,
}

impl BackupJob {
    /// Run the backup to completion. Never panics on I/O problems: every
    /// failure ends up in the report and the runs table.
    pub async fn run(self) -> BackupReport {
        let started = Instant::now();
        let site = self.site.name.clone();
        let mut report = BackupReport {
            site: site.clone(),
            run_id: None,
            outcome: RunOutcome::Failed,
            archive: None,
            suspect: None,
            attempts: Vec::new(),
            warnings: Vec::new(),
            error: None,
            foreign_owner: false,
            duration_secs: 0.0,
        };
        let lock = match SiteLock::try_acquire(&self.config.state_dir, &site) {
            Ok(l) => l,
            Err(e) => {
                report.error = Some(e.to_string());
                return report;
            }
        };
        let result = self.run_locked(&mut report).await;
        if let Err(e) = result {
            report.outcome = RunOutcome::Failed;
            report.error = Some(e);
        }
        if report.run_id.is_some() {
            self.final_hooks(&mut report).await;
        }
        drop(lock);
        if let Some(run_id) = report.run_id {
            let cat = self.catalog.clone();
            let (outcome, archive_id, error, warnings) = (
                report.outcome,
                report.archive.as_ref().map(|a| a.id),
                report.error.clone(),
                report.warnings.clone(),
            );
            let res = tokio::task::spawn_blocking(move || {
                cat.finish_run(run_id, outcome, archive_id, error.as_deref(), &warnings)
            })
            .await;
            if !matches!(res, Ok(Ok(()))) {
                warn!(site = %site, "Could not record the end of the run in the catalog.");
            }
        }
        report.duration_secs = started.elapsed().as_secs_f64();
        report
    }

    async fn run_locked(&self, report: &mut BackupReport) -> Result<(), String> {
        let site = &self.site;
        let cat = self.catalog.clone();
        let name = site.name.clone();
        let trigger = self.trigger;
        let run_id = blocking(move || cat.start_run(&name, trigger)).await?;
        report.run_id = Some(run_id);

        if !site.path.is_dir() {
            return Err(format!(
                "site directory {} is missing or not a directory — is the volume mounted?",
                site.path.display()
            ));
        }
        self.before_hooks(report).await?;
        // Held until the run ends; dropping it deletes the spool file.
        let dump = self.dump_database().await?;
        if let Some(d) = &dump {
            report.warnings.extend(d.warnings.iter().cloned());
        }
        let database = dump.as_ref().map(|d| DatabaseEntry {
            entry: d.info.entry.clone(),
            path: d.path().to_path_buf(),
            size: d.info.dump_bytes,
            manifest: serde_json::to_value(&d.info).unwrap_or_default(),
        });
        let dump_bytes = dump.as_ref().map_or(0, |d| d.info.dump_bytes);

        // The site's `.sitebackupignore` is read once per run: every
        // attempt leaves out the same entries.
        let (root, rules) = (site.path.clone(), site.excludes.clone());
        let (excludes, source_bytes) = tokio::task::spawn_blocking(move || {
            let (excludes, warnings) = Excludes::for_site(&root, &rules);
            let bytes = archive::source_size(&root, &excludes);
            (excludes, warnings, bytes)
        })
        .await
        .map(|(excludes, warnings, bytes)| {
            report.warnings.extend(warnings);
            (excludes, bytes + dump_bytes)
        })
        .map_err(|e| e.to_string())?;
        self.progress.total.store(source_bytes, Ordering::Relaxed);
        let cat = self.catalog.clone();
        let name = site.name.clone();
        let last = blocking(move || cat.last_archive_size(&name)).await?;
        let estimate = estimate_bytes(last, source_bytes, self.config.upload.size_margin_percent);
        info!(site = %site.name, source_bytes, estimate, "Backup started.");

        let targets = self
            .source
            .servers(Purpose::Upload {
                estimated_bytes: estimate,
            })
            .await
            .map_err(|e| e.to_string())?;
        let slots = ServerSlot::of(&targets);
        let mut failures = Vec::new();
        for choice in plan_servers(&slots, estimate) {
            if self.cancel.is_cancelled() {
                return Err("cancelled before an upload could finish".into());
            }
            let id = match &choice {
                Choice::Try(id) | Choice::Skip(id, _) => *id,
            };
            let Some(server) = targets.iter().find(|s| s.id == id) else {
                continue;
            };
            if let Choice::Skip(_, skip) = choice {
                let reason = skip.to_string();
                info!(site = %site.name, server = server.id, "Skipping server: {reason}.");
                self.attempt(report, run_id, server, AttemptOutcome::Skipped, &reason)
                    .await?;
                failures.push(format!("server {}: {reason}", server.id));
                continue;
            }
            let store = match server.store() {
                Ok(s) => s,
                Err(e) => {
                    self.attempt(report, run_id, server, AttemptOutcome::Failed, &e.to_string())
                        .await?;
                    failures.push(e.to_string());
                    continue;
                }
            };
            match self
                .attempt_upload(run_id, server, store, estimate, database.clone(), &excludes)
                .await
            {
                Ok((done, stats)) => {
                    self.attempt(
                        report,
                        run_id,
                        server,
                        AttemptOutcome::Succeeded,
                        &format!("stored {}", done.key),
                    )
                    .await?;
                    info!(
                        site = %site.name, server = server.id, key = %done.key, bytes = done.size_bytes,
                        "Upload finished."
                    );
                    report.warnings.extend(stats.warnings);
                    report.suspect = done.suspect;
                    report.outcome = if report.warnings.is_empty() {
                        RunOutcome::Success
                    } else {
                        RunOutcome::Warning
                    };
                    report.archive = Some(done);
                    return Ok(());
                }
                Err(e) => {
                    let msg = e.to_string();
                    self.attempt(report, run_id, server, AttemptOutcome::Failed, &msg)
                        .await?;
                    if !e.next_server() {
                        report.foreign_owner = matches!(e, upload::AttemptError::ForeignOwner(_));
                        return Err(msg);
                    }
                    warn!(site = %site.name, server = server.id, "Upload failed, trying the next server: {msg}");
                    failures.push(msg);
                }
            }
        }
        Err(if failures.is_empty() {
            "No S3 servers configured".to_string()
        } else {
            format!("every server failed: {}", failures.join("; "))
        })
    }

    /// Run the `before` hooks. A failure aborts the run unless
    /// `before_optional`, which turns it into a warning.
    async fn before_hooks(&self, report: &mut BackupReport) -> Result<(), String> {
        let site = &self.site;
        let ctx = HookContext {
            site: &site.name,
            site_path: &site.path,
            outcome: "running",
            archive_key: None,
            error: None,
        };
        let step = self.progress.step(stage_limit(&site.hooks, HookStage::Before));
        let result = hooks::run_stage(&site.hooks, HookStage::Before, &ctx, &self.cancel).await;
        drop(step);
        match result {
            Ok(()) => Ok(()),
            Err(e) if site.hooks.before_optional && !self.cancel.is_cancelled() => {
                report
                    .warnings
                    .push(format!("{e} (hooks.before_optional: the backup went ahead)"));
                Ok(())
            }
            Err(e) => Err(format!("{e}; backup aborted")),
        }
    }

    /// Dump the site's database, if it has one, into the spool directory.
    async fn dump_database(&self) -> Result<Option<DatabaseDump>, String> {
        let (path, raw) = (self.site.path.clone(), self.site.database.clone());
        let settings = tokio::task::spawn_blocking(move || database::resolve(&path, raw.as_ref()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot back up the database: {e}"))?;
        let Some(settings) = settings else {
            return Ok(None);
        };
        info!(
            site = %self.site.name, database = %settings.name, address = %settings.address,
            from = %settings.source, "Dumping the database."
        );
        let spool = self.config.state_dir.join("spool");
        let _step = self.progress.step(settings.timeout + crate::process::KILL_GRACE);
        database::dump(&settings, &spool, &self.site.name, &self.cancel)
            .await
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// `after` hooks on success, `on_error` hooks on failure. A failing
    /// `after` hook turns the outcome into a warning; the archive stays.
    async fn final_hooks(&self, report: &mut BackupReport) {
        let site = &self.site;
        let stage = if report.outcome == RunOutcome::Failed {
            HookStage::OnError
        } else {
            HookStage::After
        };
        let none = match stage {
            HookStage::OnError => site.hooks.on_error.is_empty(),
            _ => site.hooks.after.is_empty(),
        };
        if none {
            return;
        }
        if self.cancel.is_cancelled() {
            warn!(site = %site.name, hook = stage.as_str(), "Hooks skipped: the job was cancelled.");
            return;
        }
        let key = report.archive.as_ref().map(|a| a.key.clone());
        let error = report.error.clone();
        let ctx = HookContext {
            site: &site.name,
            site_path: &site.path,
            outcome: report.outcome.as_str(),
            archive_key: key.as_deref(),
            error: error.as_deref(),
        };
        let _step = self.progress.step(stage_limit(&site.hooks, stage));
        if let Err(e) = hooks::run_stage(&site.hooks, stage, &ctx, &self.cancel).await {
            report.warnings.push(e.to_string());
            if report.outcome == RunOutcome::Success {
                report.outcome = RunOutcome::Warning;
            }
        }
    }

    /// Judge a stored archive against the site's previous complete one
    /// and mark its row suspect if it looks wrong. Called before the row
    /// becomes `complete`, so that no prune ever sees it as clean.
    async fn mark_if_suspect(
        &self,
        row_id: i64,
        files: u64,
        size: u64,
    ) -> Result<Option<Suspicion>, crate::catalog::CatalogError> {
        let (cat, name) = (self.catalog.clone(), self.site.name.clone());
        // This row is not complete yet: `last_archive_size` is the previous one.
        let previous = tokio::task::spawn_blocking(move || cat.last_archive_size(&name))
            .await
            .map_err(|e| crate::catalog::CatalogError::Internal(e.to_string()))??;
        let Some(s) = judge_archive(files, size, previous, self.config.upload.suspect_below_percent) else {
            return Ok(None);
        };
        warn!(site = %self.site.name, row_id, "Archive marked suspect: {}", s.message);
        let (cat, msg) = (self.catalog.clone(), s.message.clone());
        tokio::task::spawn_blocking(move || cat.mark_suspect(row_id, s.cause, &msg))
            .await
            .map_err(|e| crate::catalog::CatalogError::Internal(e.to_string()))??;
        Ok(Some(s))
    }

    async fn attempt(
        &self,
        report: &mut BackupReport,
        run_id: i64,
        server: &Target,
        outcome: AttemptOutcome,
        reason: &str,
    ) -> Result<(), String> {
        let attempt = Attempt {
            server_id: server.id,
            endpoint: server.location.to_string(),
            outcome,
            reason: reason.to_string(),
        };
        report.attempts.push(attempt.clone());
        let cat = self.catalog.clone();
        blocking(move || cat.record_attempt(run_id, &attempt)).await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::catalog::CatalogError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The longest a hook stage may take: each command's time limit and the
/// grace to stop it.
fn stage_limit(hooks: &crate::config::HooksConfig, stage: HookStage) -> Duration {
    let count = match stage {
        HookStage::Before => hooks.before.len(),
        HookStage::After => hooks.after.len(),
        HookStage::OnError => hooks.on_error.len(),
    } as u32;
    (Duration::from_secs(hooks.timeout_secs) + crate::process::KILL_GRACE) * count
}
