//! `sitebackup daemon`: the long-running systemd service.
//!
//! Start-up: signal handlers first (SIGHUP, SIGTERM and SIGINT through one
//! signal-hook stream, [`crate::signals`]), then the catalog, crash
//! recovery (stale `uploading` rows → `failed`, open multipart uploads of
//! this host aborted on reachable servers), missed-run catch-up, the
//! schedules, and only then `READY=1`.
//!
//! Tasks: **tokio-cron-scheduler** runs one job per site's schedule (5 or 6
//! fields, in `timezone`) and a daily retention job; the jobs only
//! *enqueue* ([`scheduler`] explains how reloads and daylight-saving
//! changes swap schedulers without losing or doubling a tick). One
//! **runner** executes jobs in order, sharing the per-site lock with the
//! CLI, and prunes after each successful backup; a tick for a site still
//! queued or running is skipped. The **watchdog** pings systemd only while
//! the runner's heartbeat is fresh, so a stuck runner gets the unit
//! restarted. The daemon's exit never depends on the scheduler: its
//! shutdown gets a bounded time and is not waited for otherwise.
//!
//! Signals: SIGHUP validates the new config fully and swaps it in, or keeps
//! the old one and logs why. SIGTERM/SIGINT stop new jobs and let a running
//! upload finish within `daemon.drain_timeout_secs` (sending
//! `EXTEND_TIMEOUT_USEC` meanwhile), then abort it cleanly; exit 0. A second
//! SIGTERM or SIGINT exits at once.

mod liveness;

use liveness::{HEARTBEAT, Heartbeat, watched};
pub(crate) mod notify;
mod recover;
mod scheduler;
mod sync;

use crate::catalog::Catalog;
use crate::catalog::RunOutcome;
use crate::config::{self, Config, LoadOptions};
use crate::install::Installation;
use crate::pipeline::{BackupJob, Progress};
use crate::signals::{Signal, SignalStream};
use chrono::{DateTime, Utc};
use scheduler::{Gate, Schedules, Tick};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// After the drain deadline and the abort, how long cleanup may take.
const ABORT_GRACE: Duration = Duration::from_secs(20);

#[derive(Debug)]
enum Job {
    Backup { site: String, trigger: &'static str },
    PruneAll,
}

/// State shared by the daemon's tasks.
struct Shared {
    /// Sites queued or running: a tick for one of them is skipped.
    pending: Mutex<HashSet<String>>,
    /// The runner's last sign of life (see [`liveness`]).
    heartbeat: Heartbeat,
    /// The last job result, for STATUS=.
    last: Mutex<Option<String>>,
    /// Which scheduler ticks go to the runner.
    gate: Mutex<Gate>,
    jobs: mpsc::UnboundedSender<Job>,
    /// This installation (see [`crate::install`]).
    install: Arc<Installation>,
    /// Node mode: when the last sync with the master succeeded.
    last_sync: Mutex<Option<String>>,
    /// Node mode: sync now (SIGHUP).
    sync_now: Arc<tokio::sync::Notify>,
}

impl Shared {
    fn enqueue(&self, site: &str, trigger: &'static str) {
        let fresh = lock(&self.pending).insert(site.to_string());
        if !fresh {
            info!(
                site,
                trigger, "The previous run of this site is still queued or running; this tick is skipped."
            );
            return;
        }
        let _ = self.jobs.send(Job::Backup {
            site: site.to_string(),
            trigger,
        });
    }

    /// A scheduler tick the gate admitted.
    fn tick(&self, tick: &Tick) {
        match tick {
            Tick::Backup(site) => self.enqueue(site, "schedule"),
            Tick::Prune => {
                let _ = self.jobs.send(Job::PruneAll);
            }
        }
    }

    fn idle_status(&self, config: &Config) -> String {
        let last = lock(&self.last).clone().unwrap_or_else(|| "no backup yet".into());
        let status = match next_run(config, Utc::now()) {
            Some((at, site)) => format!("Idle. Last: {last}. Next: {site} at {}", crate::catalog::fmt_time(at)),
            None => format!("Idle. Last: {last}. No site scheduled"),
        };
        match (config.node().is_some(), lock(&self.last_sync).clone()) {
            (false, _) => status,
            (true, Some(at)) => format!("{status}. Last sync: {at}"),
            (true, None) => format!("{status}. Not synced with the master yet"),
        }
    }
}

/// The next scheduled backup after `now`, for STATUS=.
fn next_run(config: &Config, now: DateTime<Utc>) -> Option<(DateTime<Utc>, &str)> {
    config
        .sites
        .iter()
        .filter_map(|s| Some((s.schedule.next_after(now, config.timezone)?, s.name.as_str())))
        .min()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run the daemon until SIGTERM/SIGINT. Returns the exit code.
pub async fn run(opts: LoadOptions, config: Config) -> anyhow::Result<u8> {
    // Signal handlers first, before anything is spawned.
    let mut signals = SignalStream::install(&[Signal::Hangup, Signal::Terminate, Signal::Interrupt])?;
    // One daemon per state directory: a second one would run every job twice.
    let _instance = match crate::lock::DaemonLock::try_acquire(&config.state_dir) {
        Ok(lock) => lock,
        Err(e @ crate::lock::LockError::DaemonRunning { .. }) => {
            error!("{e}");
            return Ok(crate::EXIT_CONFIG);
        }
        Err(e) => return Err(e.into()),
    };

    let catalog = Arc::new(Catalog::open(&config.state_dir)?);
    let install = Arc::new(crate::install::load_or_create(&config.state_dir)?);
    recover::recover_after_crash(&config, &catalog).await;

    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        pending: Mutex::new(HashSet::new()),
        heartbeat: Heartbeat::new(),
        last: Mutex::new(None),
        gate: Mutex::new(Gate::default()),
        jobs: jobs_tx,
        install,
        last_sync: Mutex::new(None),
        sync_now: Arc::new(tokio::sync::Notify::new()),
    });
    if config.daemon.catch_up {
        catch_up(&config, &catalog, &shared).await;
    }
    let drain = Duration::from_secs(config.daemon.drain_timeout_secs);
    let prune = scheduler::prune_schedule(Utc::now()).map_err(anyhow::Error::msg)?;
    let schedules = Schedules::start(&config, shared.clone(), prune)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the scheduler: {e}"))?;
    let (config_tx, config_rx) = watch::channel(Arc::new(config));

    let stop = CancellationToken::new();
    // Cancels a running backup (clean abort); separate from `stop` so a
    // running upload can drain after SIGTERM.
    let abort_job = CancellationToken::new();
    let scheduler = tokio::spawn(schedules.run(config_rx.clone(), stop.child_token()));
    let mut runner = tokio::spawn(runner(
        config_rx.clone(),
        catalog.clone(),
        jobs_rx,
        shared.clone(),
        stop.child_token(),
        abort_job.clone(),
    ));
    let watchdog = tokio::spawn(watchdog(shared.clone(), stop.child_token()));
    let syncer = tokio::spawn(sync::sync_loop(
        config_rx.clone(),
        catalog.clone(),
        shared.clone(),
        shared.sync_now.clone(),
        stop.child_token(),
    ));

    notify::ready();
    notify::status(&shared.idle_status(&config_rx.borrow()));
    info!("Daemon ready.");

    while let Some(signal) = signals.recv().await {
        match signal {
            Signal::Hangup => {
                reload(&opts, &config_tx, &shared);
                shared.sync_now.notify_one();
            }
            Signal::Terminate | Signal::Interrupt => {
                info!("{} received: shutting down.", signal.name());
                break;
            }
        }
    }

    notify::stopping();
    stop.cancel();
    let deadline = tokio::time::Instant::now() + drain;
    // After the abort, cleaning up (abort the multipart upload, mark the row)
    // gets this long; then the daemon exits regardless.
    let hard_deadline = deadline + ABORT_GRACE;
    let mut extend = tokio::time::interval(Duration::from_secs(5));
    let mut signals_open = true;
    loop {
        tokio::select! {
            _ = &mut runner => break,
            _ = tokio::time::sleep_until(deadline), if !abort_job.is_cancelled() => {
                warn!(drain_secs = drain.as_secs(), "The running backup did not finish in time: aborting its upload.");
                abort_job.cancel();
            }
            _ = tokio::time::sleep_until(hard_deadline) => {
                error!("The running job did not stop after its abort; exiting without it. `sitebackup reconcile` or the next start cleans up.");
                break;
            }
            _ = extend.tick() => {
                let left = hard_deadline.saturating_duration_since(tokio::time::Instant::now());
                if !left.is_zero() {
                    notify::extend_timeout(left + Duration::from_secs(5));
                }
            }
            signal = signals.recv(), if signals_open => match signal {
                Some(Signal::Hangup) => info!("SIGHUP while stopping: ignored."),
                Some(s) => { error!("Second {}: exiting at once.", s.name()); std::process::exit(1); }
                None => signals_open = false,
            }
        }
    }
    for (name, task) in [("scheduler", scheduler), ("watchdog", watchdog), ("sync", syncer)] {
        if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
            warn!(task = name, "Task did not stop in time.");
        }
    }
    info!("Daemon stopped.");
    Ok(0)
}

fn reload(opts: &LoadOptions, config_tx: &watch::Sender<Arc<Config>>, shared: &Shared) {
    notify::reloading();
    info!("SIGHUP received: reloading the configuration.");
    match config::load_without_env_file(opts) {
        Ok(new) => {
            let old = config_tx.borrow().clone();
            if new.state_dir != old.state_dir {
                warn!("state_dir changed; the new value takes effect after a restart.");
            }
            info!(
                sites = new.sites.len(),
                servers = new.servers.len(),
                "Configuration reloaded."
            );
            notify::status(&shared.idle_status(&new));
            config_tx.send_replace(Arc::new(new));
        }
        Err(e) => {
            let problems = e.problems();
            error!("Reload failed; the previous configuration keeps running: {e}");
            notify::status(&format!(
                "Reload failed ({} problem(s)); running the previous configuration",
                problems.len()
            ));
        }
    }
    notify::ready();
}

/// Enqueue sites whose last complete archive is older than one period.
async fn catch_up(config: &Config, catalog: &Arc<Catalog>, shared: &Shared) {
    let now = Utc::now();
    for site in &config.sites {
        let cat = catalog.clone();
        let name = site.name.clone();
        let last = match tokio::task::spawn_blocking(move || cat.last_complete_at(&name)).await {
            Ok(Ok(v)) => v,
            _ => continue,
        };
        let last = last
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc));
        if site.schedule.missed_run(last, now, config.timezone) {
            info!(site = %site.name, "Missed run (last complete archive older than one period): running once now.");
            shared.enqueue(&site.name, "catch-up");
        }
    }
}

/// Execute jobs one at a time until `stop`; a running job finishes (or is
/// aborted through `abort_job`) before the runner returns.
async fn runner(
    config_rx: watch::Receiver<Arc<Config>>,
    catalog: Arc<Catalog>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    abort_job: CancellationToken,
) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        let job = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = tick.tick() => { shared.heartbeat.beat(); continue; }
            job = jobs.recv() => match job { Some(j) => j, None => break },
        };
        let config = config_rx.borrow().clone();
        let stall = config.network.idle_timeout();
        match job {
            Job::Backup { site, trigger } => {
                let Some(site_cfg) = config.site(&site).cloned() else {
                    info!(site = %site, "Site is no longer configured; skipping its queued run.");
                    lock(&shared.pending).remove(&site);
                    continue;
                };
                notify::status(&format!("Backing up {site} ({trigger})"));
                let progress = Arc::new(Progress::default());
                let work = async {
                    // Node mode may wait on the master here (registering a
                    // new site): a step within its retry time.
                    let retry = config.node().map_or(0, |n| n.retry_secs);
                    let step = progress.step(Duration::from_secs(retry + 60));
                    let servers = crate::node::BackupSource::for_site(&config, &catalog, &site_cfg).await;
                    drop(step);
                    let job = BackupJob {
                        config: config.clone(),
                        site: site_cfg.clone(),
                        catalog: catalog.clone(),
                        source: servers.source.clone(),
                        install: shared.install.clone(),
                        trigger,
                        progress: progress.clone(),
                        cancel: abort_job.clone(),
                    };
                    let report = job.run().await;
                    let master = crate::node::client(&config).and_then(Result::ok);
                    servers.report(&catalog, master.as_ref(), &report).await;
                    report
                };
                let report = watched(&shared.heartbeat, &mut tick, &progress, stall, work).await;
                lock(&shared.pending).remove(&site);
                let summary = match (&report.archive, report.outcome) {
                    (Some(a), outcome) => {
                        info!(
                            site = %site, server = a.server_id, key = %a.key, bytes = a.size_bytes,
                            duration = report.duration_secs, outcome = outcome.as_str(), "Backup finished."
                        );
                        format!("{site} {} at {}", outcome.as_str(), crate::catalog::now_rfc3339())
                    }
                    (None, _) => {
                        error!(
                            site = %site, duration = report.duration_secs,
                            "Backup failed: {}", report.error.as_deref().unwrap_or("unknown error")
                        );
                        format!("{site} FAILED at {}", crate::catalog::now_rfc3339())
                    }
                };
                *lock(&shared.last) = Some(summary);
                if report.outcome != RunOutcome::Failed && site_cfg.retention.is_some() && !stop.is_cancelled() {
                    pruning(
                        &shared,
                        &mut tick,
                        stall,
                        prune(&config, &catalog, &shared.install, &site_cfg),
                    )
                    .await;
                }
            }
            Job::PruneAll => {
                for site in config.sites.iter().filter(|s| s.retention.is_some()) {
                    if stop.is_cancelled() {
                        break;
                    }
                    pruning(
                        &shared,
                        &mut tick,
                        stall,
                        prune(&config, &catalog, &shared.install, site),
                    )
                    .await;
                }
            }
        }
        notify::status(&shared.idle_status(&config));
    }
}

/// A prune is one step, with [`liveness::PRUNE_STEP`] as its limit.
async fn pruning(
    shared: &Shared,
    tick: &mut tokio::time::Interval,
    stall: Duration,
    work: impl std::future::Future<Output = ()>,
) {
    let progress = Progress::default();
    let _step = progress.step(liveness::PRUNE_STEP);
    watched(&shared.heartbeat, tick, &progress, stall, work).await;
}

async fn prune(config: &Config, catalog: &Arc<Catalog>, install: &Installation, site: &config::SiteConfig) {
    let source = crate::node::read_source(config, catalog);
    match crate::retention::prune_site(source.as_ref(), install, catalog, site, Utc::now(), false).await {
        Ok((plan, results)) => {
            crate::node::report_pruned(config, catalog, &results).await;
            let deleted = results.iter().filter(|r| r.deleted).count();
            if !plan.remove.is_empty() {
                info!(site = %site.name, kept = plan.keep.len(), deleted, "Retention applied.");
            }
        }
        Err(e) => warn!(site = %site.name, "Retention failed: {e}"),
    }
}

/// Ping the systemd watchdog at half its interval, only while the runner's
/// heartbeat is fresh (see [`liveness`]).
async fn watchdog(shared: Arc<Shared>, stop: CancellationToken) {
    if let Some(interval) = notify::watchdog_interval() {
        liveness::watchdog(&shared.heartbeat, interval, stop, notify::watchdog).await;
    }
}
