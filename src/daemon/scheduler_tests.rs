//! The schedule table test: the fire times the daemon's tokio-cron-scheduler
//! jobs produce (the jobs as built, re-parsed the way the scheduler does at
//! each tick, at their fixed offset, swapped at offset changes, through the
//! gate) against those croner computes directly in the real zone.

use super::*;
use chrono::Duration as D;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn instant(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc)
}

/// Croner in the real zone: its chained next occurrences in `[start, end)`.
fn croner_fires(schedule: &Schedule, tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = (start - D::seconds(1)).with_timezone(&tz);
    while let Some(next) = schedule
        .cron()
        .find_next_occurrence(&t, false)
        .ok()
        .filter(|n| *n < end)
    {
        out.push(next.with_timezone(&Utc));
        t = next;
    }
    out
}

/// `Schedule::next_after` chained: what STATUS= and catch-up use.
fn next_after_chain(schedule: &Schedule, tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = start - D::seconds(1);
    while let Some(next) = schedule.next_after(t, tz).filter(|n| *n < end) {
        out.push(next);
        t = next;
    }
    out
}

#[derive(Debug)]
enum Event {
    /// A plan's scheduler is started and installed in the gate.
    Install(u64, DateTime<Utc>),
    /// Its opening instant comes.
    Opening(u64),
    /// Job `usize` of plan `u64` fires.
    Fire(u64, usize),
    /// Its scheduler is shut down.
    Retire(u64),
}

/// What the daemon does over `[start, end)` for one site, simulated: the
/// plans it builds (the first at `start`, the next `LEAD` before each
/// offset change), each job built with `build_job` and run the way
/// tokio-cron-scheduler 0.15.1 runs it (scheduler.rs: the line re-parsed
/// by `JobStoredData::schedule`, the next tick `iter_after` the firing at
/// the job's `time_offset_seconds`), the old scheduler kept `GRACE` past a
/// swap, every firing through `on_fire` and the gate. Returns the admitted
/// backup instants, in order, and how many plans there were.
fn daemon_fires(schedule: &Schedule, tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>) -> (Vec<DateTime<Utc>>, usize) {
    let prune = prune_schedule(start).unwrap();
    let sites = [("site", schedule)];
    // The plans and when each is built and retired.
    let mut plans: Vec<(DateTime<Utc>, Plan, DateTime<Utc>)> = Vec::new();
    let mut next = Some((start - D::seconds(1), plan(&sites, tz, &prune, start)));
    while let Some((built, p)) = next.take() {
        let change = p.until.filter(|c| *c < end);
        if let Some(c) = change {
            next = Some((c - LEAD, plan(&sites, tz, &prune, c)));
        }
        let retire = change.map_or(end, |c| c + GRACE);
        plans.push((built, p, retire));
    }

    let mut events: Vec<(DateTime<Utc>, u8, Event)> = Vec::new();
    for (i, (built, p, retire)) in plans.iter().enumerate() {
        let generation = i as u64 + 1;
        events.push((*built, 0, Event::Install(generation, p.from)));
        events.push((p.from, 1, Event::Opening(generation)));
        events.push((*retire, 3, Event::Retire(generation)));
        for (j, spec) in p.jobs.iter().enumerate() {
            let mut job = build_job(spec, || {}).unwrap();
            let data = job.job_data().unwrap();
            let offset = FixedOffset::east_opt(data.time_offset_seconds).unwrap();
            assert_eq!(offset, spec.offset, "the job runs at the plan's offset");
            // The scheduler's own parse (day-of-month AND day-of-week).
            let cron = data.schedule().unwrap();
            for t in cron.iter_after(built.with_timezone(&offset)) {
                let t = t.with_timezone(&Utc);
                if t >= *retire || t >= end {
                    break;
                }
                events.push((t, 2, Event::Fire(generation, j)));
            }
        }
    }
    events.sort_by_key(|(t, order, _)| (*t, *order));

    let mut gate = Gate::default();
    let mut fired = Vec::new();
    let site = Tick::Backup("site".into());
    for (t, _, event) in events {
        match event {
            Event::Install(generation, from) => gate.install(generation, from),
            Event::Opening(generation) => {
                let p = &plans[generation as usize - 1].1;
                for spec in opening_ticks(p) {
                    if gate.admit(generation, &spec.tick, p.from) && spec.tick == site {
                        fired.push(p.from);
                    }
                }
            }
            Event::Fire(generation, j) => {
                let spec = &plans[generation as usize - 1].1.jobs[j];
                if let Some(at) = on_fire(&mut gate, generation, spec, t)
                    && spec.tick == site
                {
                    fired.push(at);
                }
            }
            Event::Retire(generation) => gate.retire(generation),
        }
    }
    (fired, plans.len())
}

const LINES: &[&str] = &[
    // Day-of-month together with day-of-week: the 13th OR a Friday
    // (2026-03-13 is a Friday the 13th).
    "0 0 12 13 * FRI",
    // Steps: every 15 minutes, through the skipped and the repeated hour.
    "0 */15 * * * *",
    // Ranges.
    "0 0 9-17 * * MON-FRI",
    // 5-field; a fixed time in London's skipped and repeated hour and New
    // York's repeated hour.
    "30 1 * * *",
    // A fixed time in New York's skipped hour.
    "0 30 2 * * *",
    // Seconds stepping through the repeated and skipped hours.
    "*/20 40 1,2 * * *",
    // The last day of the month OR a Sunday.
    "0 0 6 L * SUN",
    // Midnight: in London, the hour before the skipped hour.
    "0 0 0 * * *",
];

/// Where croner's chained search differs from its own rule for an instant
/// (`Schedule::fires_at`), the daemon follows the rule: a fixed time in the
/// hour before a skipped hour is not run again at the end of the gap.
const CRONER_CHAIN_EXTRA: &[(&str, &str, &str)] = &[
    ("30 1 * * *", "America/New_York", "2026-03-08T07:00:00Z"),
    ("0 0 0 * * *", "Europe/London", "2026-03-29T01:00:00Z"),
];

/// Both changes of 2026 in London (03-29, 10-25) and New York (03-08,
/// 11-01).
const WINDOWS: &[(&str, &str)] = &[
    ("2026-03-01T00:00:00Z", "2026-04-03T00:00:00Z"),
    ("2026-10-20T00:00:00Z", "2026-11-04T00:00:00Z"),
];

#[test]
fn daemon_fire_times_match_croner_in_the_real_zone() {
    let zones = [chrono_tz::UTC, chrono_tz::Europe::London, chrono_tz::America::New_York];
    for line in LINES {
        let schedule = Schedule::parse(line).unwrap();
        for tz in zones {
            for (start, end) in WINDOWS {
                let (start, end) = (instant(start), instant(end));
                let extra: Vec<DateTime<Utc>> = CRONER_CHAIN_EXTRA
                    .iter()
                    .filter(|(l, z, _)| l == line && *z == tz.name())
                    .map(|(_, _, t)| instant(t))
                    .filter(|t| (start..end).contains(t))
                    .collect();
                let croner = croner_fires(&schedule, tz, start, end);
                let want: Vec<_> = croner.iter().copied().filter(|t| !extra.contains(t)).collect();
                assert_eq!(
                    croner.len(),
                    want.len() + extra.len(),
                    "{line} in {tz}: {extra:?} are croner's"
                );
                let (got, plans) = daemon_fires(&schedule, tz, start, end);
                assert!(!want.is_empty(), "{line} in {tz}");
                assert_eq!(got, want, "{line} in {tz}, {start} to {end}");
                assert_eq!(
                    next_after_chain(&schedule, tz, start, end),
                    want,
                    "STATUS= agrees: {line} in {tz}"
                );
                let changes = if tz == chrono_tz::UTC { 0 } else { 1 };
                assert_eq!(plans, 1 + changes, "{line} in {tz}: one swap per offset change");
            }
        }
    }
}

/// The table test can fail: without the swap at the offset change (one
/// plan at the offset of the start), a daily job drifts by an hour.
#[test]
fn without_the_swap_the_fire_times_drift() {
    let schedule = Schedule::parse("0 30 8 * * *").unwrap();
    let tz = chrono_tz::Europe::London;
    let (start, end) = (utc(2026, 3, 27, 0, 0, 0), utc(2026, 4, 1, 0, 0, 0));
    let prune = prune_schedule(start).unwrap();
    let p = plan(&[("site", &schedule)], tz, &prune, start);
    let mut job = build_job(&p.jobs[0], || {}).unwrap();
    let data = job.job_data().unwrap();
    let offset = FixedOffset::east_opt(data.time_offset_seconds).unwrap();
    let unswapped: Vec<_> = data
        .schedule()
        .unwrap()
        .iter_after(start.with_timezone(&offset))
        .map(|t| t.with_timezone(&Utc))
        .take_while(|t| *t < end)
        .collect();
    let want = croner_fires(&schedule, tz, start, end);
    assert_eq!(want[2], utc(2026, 3, 29, 7, 30, 0), "08:30 BST");
    assert_eq!(want.len(), unswapped.len());
    assert_eq!(unswapped[2], utc(2026, 3, 29, 8, 30, 0), "08:30 at GMT's offset");
    assert_eq!(daemon_fires(&schedule, tz, start, end).0, want);
}

/// tokio-cron-scheduler re-parses with AND: the unsplit line would run on
/// Friday the 13th only.
#[test]
fn both_day_fields_become_two_jobs() {
    let s = |l: &str| Schedule::parse(l).unwrap();
    assert_eq!(job_lines(&s("0 0 12 13 * FRI")), ["0 0 12 13 * *", "0 0 12 * * FRI"]);
    assert_eq!(job_lines(&s("0 12 L * 0")), ["0 0 12 L * *", "0 0 12 * * 0"]);
    assert_eq!(job_lines(&s("0 0 12 13 * *")), ["0 0 12 13 * *"]);
    assert_eq!(job_lines(&s("0 0 12 ? * FRI")), ["0 0 12 ? * FRI"]);
    assert_eq!(job_lines(&s("0 0 12 13 * +FRI")), ["0 0 12 13 * +FRI"]);
    let and = tokio_cron_scheduler::Job::new_tz("0 0 12 13 * FRI", chrono_tz::UTC, |_, _| {})
        .unwrap()
        .job_data()
        .unwrap()
        .schedule()
        .unwrap();
    let monday_13th = utc(2026, 4, 13, 12, 0, 0);
    assert!(
        !and.is_time_matching(&monday_13th).unwrap(),
        "the scheduler's parse is AND"
    );
    assert!(s("0 0 12 13 * FRI").fires_at(monday_13th, chrono_tz::UTC));
}

#[test]
fn offset_changes_found_to_the_second() {
    let london = chrono_tz::Europe::London;
    let new_york = chrono_tz::America::New_York;
    let from = utc(2026, 1, 1, 0, 0, 0);
    assert_eq!(next_offset_change(london, from), Some(utc(2026, 3, 29, 1, 0, 0)));
    assert_eq!(
        next_offset_change(london, utc(2026, 3, 29, 1, 0, 0)),
        Some(utc(2026, 10, 25, 1, 0, 0))
    );
    assert_eq!(next_offset_change(new_york, from), Some(utc(2026, 3, 8, 7, 0, 0)));
    assert_eq!(
        next_offset_change(new_york, utc(2026, 3, 8, 7, 0, 0)),
        Some(utc(2026, 11, 1, 6, 0, 0))
    );
    assert_eq!(next_offset_change(chrono_tz::UTC, from), None);
    assert_eq!(next_offset_change(chrono_tz::Asia::Tokyo, from), None);
}

#[test]
fn the_gate_admits_each_tick_once_from_its_owner() {
    let mut gate = Gate::default();
    let t0 = utc(2026, 5, 1, 12, 0, 0);
    let site = Tick::Backup("blog".into());
    assert!(!gate.admit(1, &site, t0), "unknown plan");
    gate.install(1, t0);
    assert!(!gate.admit(1, &site, t0 - D::seconds(1)), "before its start");
    assert!(gate.admit(1, &site, t0));
    assert!(!gate.admit(1, &site, t0), "twice");
    assert!(gate.admit(1, &Tick::Prune, t0), "another job, same instant");
    // A swap at t0 + 10 s: the old plan keeps what comes before.
    gate.install(2, t0 + D::seconds(10));
    assert!(gate.admit(1, &site, t0 + D::seconds(9)));
    assert!(!gate.admit(1, &site, t0 + D::seconds(10)));
    assert!(!gate.admit(2, &site, t0 + D::seconds(9)));
    assert!(gate.admit(2, &site, t0 + D::seconds(10)));
    // A plan superseded before it started owns nothing.
    gate.install(3, t0 + D::seconds(100));
    gate.install(4, t0 + D::seconds(50));
    assert!(!gate.admit(3, &site, t0 + D::seconds(100)));
    assert!(gate.admit(4, &site, t0 + D::seconds(100)));
    gate.retire(4);
    assert!(!gate.admit(4, &site, t0 + D::seconds(101)));
}

#[test]
fn retention_runs_daily_at_the_start_time_in_utc() {
    let started = utc(2026, 3, 28, 13, 14, 15);
    let prune = prune_schedule(started).unwrap();
    assert_eq!(prune.six_field(), "15 14 13 * * *");
    let p = plan(&[], chrono_tz::Europe::London, &prune, started);
    assert_eq!(p.jobs.len(), 1);
    assert_eq!((p.jobs[0].tick.clone(), p.jobs[0].offset), (Tick::Prune, Utc.fix()));
    assert_eq!(prune.next_after(started, p.jobs[0].tz), Some(started + D::days(1)));
}

/// A firing late by a fraction of a second stands for its whole second, so
/// two firings of one instant are one tick.
#[test]
fn a_late_firing_stands_for_its_instant() {
    let schedule = Schedule::parse("0 0 12 13 * FRI").unwrap();
    let start = utc(2026, 3, 12, 0, 0, 0);
    let prune = prune_schedule(start).unwrap();
    let p = plan(&[("blog", &schedule)], chrono_tz::UTC, &prune, start);
    let mut gate = Gate::default();
    gate.install(1, start);
    let friday_13th = utc(2026, 3, 13, 12, 0, 0);
    let (dom_job, dow_job) = (&p.jobs[0], &p.jobs[1]);
    assert_eq!(
        on_fire(&mut gate, 1, dom_job, friday_13th + D::milliseconds(400)),
        Some(friday_13th)
    );
    assert_eq!(
        on_fire(&mut gate, 1, dow_job, friday_13th + D::milliseconds(900)),
        None,
        "one tick"
    );
    assert_eq!(
        on_fire(&mut gate, 1, dow_job, friday_13th + D::days(7)),
        Some(friday_13th + D::days(7))
    );
}
