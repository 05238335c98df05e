//! The daemon's schedules, run by tokio-cron-scheduler.
//!
//! A [`Plan`] is the set of scheduler jobs for one configuration at one UTC
//! offset: one job per site (two when both day fields are restricted, see
//! [`job_lines`]) and the daily retention job. Each plan runs on its own
//! `JobScheduler`. Jobs only hand a tick to the [`Gate`], which enqueues it
//! for the single runner; they never run a backup, and the daemon's exit
//! never waits on a scheduler beyond a short bounded shutdown.
//!
//! **Swaps.** A plan is replaced by building a new scheduler, starting it,
//! and shutting the old one down a few seconds later. Each plan owns the
//! ticks from its start on; the previous one keeps those before. The gate
//! admits a tick only from the plan that owns its instant and only once per
//! (job, instant), so across a swap no tick is lost or doubled. A SIGHUP
//! that validated is such a swap at the next whole second.
//!
//! **Daylight-saving time.** tokio-cron-scheduler captures a job's UTC
//! offset once, when the job is built. So every plan runs at a fixed offset
//! (its zone's at the plan's start) and ends where the zone's offset next
//! changes ([`next_offset_change`], chrono-tz): there the next plan, at the
//! new offset, takes over (built [`LEAD`] ahead so its first tick can be
//! the change instant itself). Within the repeated and the skipped hour the
//! daemon follows croner in the real zone ([`Schedule::fires_at`]): a tick
//! is admitted only at croner's fire times (the repeated hour runs once),
//! and a plan's opening instant gets the tick croner puts there (a fixed
//! time inside a skipped hour runs at the end of the gap).
//!
//! Traps of tokio-cron-scheduler 0.15.1 met here: `Job::new_tz` parses with
//! day-of-month AND day-of-week, and every job's line is re-parsed that way
//! at each tick (hence [`job_lines`]); it needs the seconds field (hence
//! [`Schedule::six_field`]); the offset is fixed per job (hence the plans).
//! Its shutdown only stops its ticking: a replaced scheduler leaves a few
//! idle tasks parked on its channels. Swaps are rare (reloads, two offset
//! changes a year), so this is accepted.

use super::{Shared, lock};
use crate::config::Config;
use crate::schedule::{Schedule, parse_cron};
use chrono::{DateTime, FixedOffset, Offset, SubsecRound, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_cron_scheduler::{Job, JobBuilder, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// A plan for a new offset is built this long before the change.
pub(super) const LEAD: chrono::Duration = chrono::Duration::seconds(5);
/// A replaced scheduler keeps running this long past the swap, so ticks it
/// owns (it checks every 500 ms) are not lost.
const GRACE: chrono::Duration = chrono::Duration::seconds(3);
/// How long a scheduler's own shutdown may take.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
/// How far ahead to look for an offset change; a plan without one is
/// renewed after this long anyway.
const CHANGE_HORIZON: chrono::Duration = chrono::Duration::days(400);
/// How long the gate remembers an admitted tick.
const REMEMBER: chrono::Duration = chrono::Duration::hours(1);

/// What a job hands to the runner.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Tick {
    Backup(String),
    Prune,
}

/// One scheduler job: a 6-field line at a fixed UTC offset.
#[derive(Debug, Clone)]
pub(super) struct JobSpec {
    pub tick: Tick,
    /// What tokio-cron-scheduler is given.
    pub line: String,
    /// `line`, parsed: finds the instant a firing stands for.
    pub cron: Cron,
    pub offset: FixedOffset,
    /// The schedule the job comes from and its zone: a tick is admitted
    /// only at this schedule's fire times.
    pub schedule: Schedule,
    pub tz: Tz,
}

/// The jobs that own the ticks from `from` on, until the zone's offset
/// changes at `until`.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub from: DateTime<Utc>,
    /// The zone's offset, at which the sites' jobs run.
    pub offset: FixedOffset,
    pub until: Option<DateTime<Utc>>,
    pub jobs: Vec<JobSpec>,
}

/// The daily retention job: at the daemon's start time of day, in UTC, so
/// retention runs every 24 hours from start (not reset by swaps).
pub(super) fn prune_schedule(started: DateTime<Utc>) -> Result<Schedule, String> {
    Schedule::parse(&format!(
        "{} {} {} * * *",
        started.second(),
        started.minute(),
        started.hour()
    ))
}

/// The jobs for `sites` (name, schedule) in `tz` from `from` on.
pub(super) fn plan(sites: &[(&str, &Schedule)], tz: Tz, prune: &Schedule, from: DateTime<Utc>) -> Plan {
    let from = from.trunc_subsecs(0);
    let offset = tz.offset_from_utc_datetime(&from.naive_utc()).fix();
    let mut jobs = Vec::new();
    let mut push = |tick: Tick, schedule: &Schedule, tz: Tz, offset: FixedOffset| {
        for line in job_lines(schedule) {
            match parse_cron(&line) {
                Ok(cron) => jobs.push(JobSpec {
                    tick: tick.clone(),
                    line,
                    cron,
                    offset,
                    schedule: schedule.clone(),
                    tz,
                }),
                Err(e) => error!(?tick, line, "Cannot schedule this job line: {e}"),
            }
        }
    };
    for (name, schedule) in sites {
        push(Tick::Backup(name.to_string()), schedule, tz, offset);
    }
    push(Tick::Prune, prune, chrono_tz::UTC, Utc.fix());
    Plan {
        from,
        offset,
        until: next_offset_change(tz, from),
        jobs,
    }
}

/// The lines tokio-cron-scheduler gets for `schedule`. It re-parses a job's
/// line at every tick with day-of-month AND day-of-week; cron means OR when
/// both are restricted. So such a line becomes two jobs, one per day field
/// with the other `*` (where one is `*`, AND and OR agree). A `+` before
/// the day-of-week asks croner for AND and stays one job.
pub(super) fn job_lines(schedule: &Schedule) -> Vec<String> {
    let fields: Vec<&str> = schedule.six_field().split_whitespace().collect();
    let star = |f: &str| f.replace('?', "*") == "*";
    match fields.as_slice() {
        [_, _, _, dom, _, dow] if !star(dom) && !star(dow) && !dow.starts_with('+') => [5, 3]
            .into_iter()
            .map(|i| {
                let mut f = fields.clone();
                f[i] = "*";
                f.join(" ")
            })
            .collect(),
        _ => vec![schedule.six_field().to_string()],
    }
}

/// The first instant after `from` at which `tz`'s UTC offset differs from
/// the one at `from`, looked for up to [`CHANGE_HORIZON`] ahead (hourly
/// steps, then bisection to the second).
pub(super) fn next_offset_change(tz: Tz, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let from = from.trunc_subsecs(0);
    let start = offset(from);
    let step = chrono::Duration::hours(1);
    let mut lo = from;
    while lo < from + CHANGE_HORIZON {
        let mut hi = lo + step;
        if offset(hi) != start {
            while hi - lo > chrono::Duration::seconds(1) {
                let mid = lo + chrono::Duration::seconds((hi - lo).num_seconds() / 2);
                if offset(mid) == start {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            return Some(hi);
        }
        lo = hi;
    }
    None
}

/// Admits each tick once, and only from the plan that owns its instant.
#[derive(Debug, Default)]
pub(super) struct Gate {
    /// Plan generation → the instants it owns, `[from, until)`.
    plans: BTreeMap<u64, (DateTime<Utc>, Option<DateTime<Utc>>)>,
    /// Recently admitted ticks.
    seen: BTreeSet<(DateTime<Utc>, Tick)>,
}

impl Gate {
    /// Plan `generation` owns every instant from `from` on; the others keep
    /// only what comes before.
    pub fn install(&mut self, generation: u64, from: DateTime<Utc>) {
        for (_, until) in self.plans.values_mut() {
            *until = Some(until.map_or(from, |u| u.min(from)));
        }
        self.plans.insert(generation, (from, None));
    }

    /// Forget a plan whose scheduler is shut down.
    pub fn retire(&mut self, generation: u64) {
        self.plans.remove(&generation);
    }

    /// Should `tick` at `at`, from plan `generation`, go to the runner?
    pub fn admit(&mut self, generation: u64, tick: &Tick, at: DateTime<Utc>) -> bool {
        let Some((from, until)) = self.plans.get(&generation) else {
            return false;
        };
        if at < *from || until.is_some_and(|u| at >= u) {
            return false;
        }
        while self.seen.first().is_some_and(|(t, _)| *t < at - REMEMBER) {
            self.seen.pop_first();
        }
        self.seen.insert((at, tick.clone()))
    }
}

/// A job of plan `generation` fired at `now`: the instant it stands for
/// (its latest fire time at its offset, in whole seconds), if the gate
/// admits it there.
pub(super) fn on_fire(gate: &mut Gate, generation: u64, spec: &JobSpec, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let at = spec
        .cron
        .find_previous_occurrence(&now.trunc_subsecs(0).with_timezone(&spec.offset), true)
        .ok()?
        .with_timezone(&Utc);
    (spec.schedule.fires_at(at, spec.tz) && gate.admit(generation, &spec.tick, at)).then_some(at)
}

/// The ticks croner puts at the plan's first instant, which its jobs may
/// not fire (a fixed time in a skipped hour runs at the gap's end, which
/// is where the plan for the new offset starts). Fired when `plan.from`
/// comes; the gate drops those the jobs fire too.
pub(super) fn opening_ticks(plan: &Plan) -> Vec<&JobSpec> {
    let mut ticks: Vec<&JobSpec> = plan
        .jobs
        .iter()
        .filter(|s| s.schedule.fires_at(plan.from, s.tz))
        .collect();
    ticks.dedup_by(|a, b| a.tick == b.tick);
    ticks
}

/// The tokio-cron-scheduler job for `spec`, built with
/// `JobBuilder::with_schedule` (OR semantics for the first tick too) at the
/// spec's fixed offset.
pub(super) fn build_job(spec: &JobSpec, run: impl FnMut() + Send + Sync + 'static) -> Result<Job, JobSchedulerError> {
    let mut run = run;
    JobBuilder::new()
        .with_timezone(spec.offset)
        .with_cron_job_type()
        .with_schedule(&spec.line)?
        .with_run_sync(Box::new(move |_id, _scheduler| run()))
        .build()
}

/// The next whole second after `t`.
pub(super) fn next_second(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(0) + chrono::Duration::seconds(1)
}

fn instant_at(t: DateTime<Utc>) -> tokio::time::Instant {
    tokio::time::Instant::now() + (t - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

struct Running {
    generation: u64,
    scheduler: JobScheduler,
    plan: Plan,
}

/// The running plans: the current one, and replaced ones until their grace
/// period ends.
pub(super) struct Schedules {
    shared: Arc<Shared>,
    prune: Schedule,
    generation: u64,
    current: Running,
    retiring: Vec<(DateTime<Utc>, Running)>,
    /// Opening ticks still to fire: (generation, instant).
    opening: Option<(u64, DateTime<Utc>)>,
}

impl Schedules {
    /// Start the first plan. An error here stops the daemon.
    pub async fn start(config: &Config, shared: Arc<Shared>, prune: Schedule) -> Result<Schedules, JobSchedulerError> {
        let current = launch(&shared, config, &prune, 1, next_second(Utc::now())).await?;
        Ok(Schedules {
            shared,
            prune,
            generation: 1,
            opening: Some((1, current.plan.from)),
            current,
            retiring: Vec::new(),
        })
    }

    /// Replace the current plan with one for `config` from `from` on; on
    /// failure the current plan keeps running (and `false` is returned).
    async fn swap(&mut self, config: &Config, from: DateTime<Utc>) -> bool {
        let generation = self.generation + 1;
        match launch(&self.shared, config, &self.prune, generation, from).await {
            Ok(next) => {
                self.generation = generation;
                self.opening = Some((generation, next.plan.from));
                let old = std::mem::replace(&mut self.current, next);
                let retire_at = self.current.plan.from.max(Utc::now()) + GRACE;
                self.retiring.push((retire_at, old));
                info!(
                    jobs = self.current.plan.jobs.len(),
                    from = %self.current.plan.from,
                    offset = %self.current.plan.offset,
                    "Schedules swapped in."
                );
                true
            }
            Err(e) => {
                error!("Could not start the new schedules; the previous ones keep running: {e}");
                false
            }
        }
    }

    /// Swap on every configuration change and offset change until `stop`,
    /// then shut the schedulers down (bounded).
    pub async fn run(mut self, mut config_rx: watch::Receiver<Arc<Config>>, stop: CancellationToken) {
        let far = Utc::now() + CHANGE_HORIZON;
        loop {
            let change = self
                .current
                .plan
                .until
                .unwrap_or(self.current.plan.from + CHANGE_HORIZON);
            let retire = self.retiring.iter().map(|(t, _)| *t).min();
            let opening = self.opening.map(|(_, t)| t);
            tokio::select! {
                _ = stop.cancelled() => break,
                changed = config_rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let config = config_rx.borrow_and_update().clone();
                    self.swap(&config, next_second(Utc::now())).await;
                }
                _ = tokio::time::sleep_until(instant_at(change - LEAD)) => {
                    let config = config_rx.borrow().clone();
                    if !self.swap(&config, change).await {
                        // Try again in a minute.
                        self.current.plan.until = Some(Utc::now() + LEAD + chrono::Duration::minutes(1));
                    }
                }
                _ = tokio::time::sleep_until(instant_at(opening.unwrap_or(far))), if opening.is_some() => {
                    if let Some((generation, _)) = self.opening.take() {
                        self.fire_opening(generation);
                    }
                }
                _ = tokio::time::sleep_until(instant_at(retire.unwrap_or(far))), if retire.is_some() => {
                    let now = Utc::now();
                    let (due, keep) = std::mem::take(&mut self.retiring).into_iter().partition(|(t, _)| *t <= now);
                    self.retiring = keep;
                    shut_down(&self.shared, due.into_iter().map(|(_, r)| r).collect()).await;
                }
            }
        }
        let mut all: Vec<Running> = self.retiring.into_iter().map(|(_, r)| r).collect();
        all.push(self.current);
        shut_down(&self.shared, all).await;
    }

    fn fire_opening(&self, generation: u64) {
        if generation != self.current.generation {
            return;
        }
        let plan = &self.current.plan;
        for spec in opening_ticks(plan) {
            let admitted = lock(&self.shared.gate).admit(generation, &spec.tick, plan.from);
            if admitted {
                self.shared.tick(&spec.tick);
            }
        }
    }
}

/// Build, add and start the jobs of a plan; then it owns its ticks.
async fn launch(
    shared: &Arc<Shared>,
    config: &Config,
    prune: &Schedule,
    generation: u64,
    from: DateTime<Utc>,
) -> Result<Running, JobSchedulerError> {
    let sites: Vec<(&str, &Schedule)> = config.sites.iter().map(|s| (s.name.as_str(), &s.schedule)).collect();
    let mut plan = plan(&sites, config.timezone, prune, from);
    let scheduler = JobScheduler::new().await?;
    for spec in &plan.jobs {
        let shared = shared.clone();
        let fired = spec.clone();
        let job = build_job(spec, move || {
            let admitted = on_fire(&mut lock(&shared.gate), generation, &fired, Utc::now());
            if admitted.is_some() {
                shared.tick(&fired.tick);
            }
        })?;
        scheduler.add(job).await?;
    }
    // The jobs cover the ticks after they were built; so does the plan.
    plan.from = plan.from.max(next_second(Utc::now()));
    if let Err(e) = scheduler.start().await {
        shut_down(
            shared,
            vec![Running {
                generation,
                scheduler,
                plan,
            }],
        )
        .await;
        return Err(e);
    }
    lock(&shared.gate).install(generation, plan.from);
    Ok(Running {
        generation,
        scheduler,
        plan,
    })
}

/// Shut schedulers down, waiting at most [`SHUTDOWN_TIMEOUT`] in all.
async fn shut_down(shared: &Shared, running: Vec<Running>) {
    let generations: Vec<u64> = running.iter().map(|r| r.generation).collect();
    let all = futures::future::join_all(
        running
            .into_iter()
            .map(|mut r| async move { r.scheduler.shutdown().await }),
    );
    match tokio::time::timeout(SHUTDOWN_TIMEOUT, all).await {
        Ok(results) => {
            for e in results.into_iter().filter_map(Result::err) {
                warn!("A scheduler did not shut down cleanly: {e}");
            }
        }
        Err(_) => warn!("A scheduler did not shut down in time; leaving it."),
    }
    let mut gate = lock(&shared.gate);
    for g in generations {
        gate.retire(g);
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
