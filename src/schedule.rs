//! A site's `schedule`, validated and parsed: a cron line of 5 fields
//! (minute first, as in crontab) or 6 fields (seconds first), evaluated in
//! the configured time zone (UTC by default).
//!
//! Owns the cron semantics of the whole crate: day-of-month and
//! day-of-week are OR-ed when both are restricted (as in cron), and a line
//! that matches no date (February 30) is refused when it is parsed. Also
//! owns the schedule arithmetic the daemon's scheduler does not expose:
//! the next run, the period, missed-run detection, and whether an instant
//! is a fire time. The daemon turns a [`Schedule`] into scheduler jobs
//! (`daemon::scheduler`); nothing here runs or sleeps.

use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use std::fmt;

/// How far ahead [`Schedule::parse`] looks for a first fire time. Without a
/// year field every satisfiable line fires within 8 years (February 29
/// skips at most one leap year, e.g. 2100).
const NEVER_FIRES_HORIZON_YEARS: i32 = 8;

/// A validated cron schedule.
#[derive(Clone)]
pub struct Schedule {
    /// As written in the configuration.
    written: String,
    /// The 6-field form (seconds first).
    six: String,
    cron: Cron,
}

impl Schedule {
    /// Parse a 5-field crontab line (minute first; runs at second 0) or a
    /// 6-field line (seconds first), told apart by the number of fields.
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let six = match fields.len() {
            5 => format!("0 {}", fields.join(" ")),
            6 => fields.join(" "),
            _ => {
                return Err(format!(
                    "{expr:?} is not a cron expression of 5 fields (minute hour day-of-month month day-of-week), e.g. \"30 8 * * *\", \
                     or 6 fields (seconds first), e.g. \"0 30 8 * * *\""
                ));
            }
        };
        let cron = parse_cron(&six).map_err(|e| format!("{expr:?} is not a valid cron expression: {e}"))?;
        // The same line limited to the horizon's years (a 7th field), so a
        // line that never fires is not searched for up to croner's limit.
        let first_year = 2024;
        let probe = parse_cron(&format!(
            "{six} {first_year}-{}",
            first_year + NEVER_FIRES_HORIZON_YEARS - 1
        ))
        .ok();
        let fires = probe
            .zip(Utc.with_ymd_and_hms(first_year, 1, 1, 0, 0, 0).single())
            .and_then(|(probe, from)| probe.find_next_occurrence(&from, true).ok());
        if fires.is_none() {
            return Err(format!(
                "{expr:?} never fires: no date matches its day-of-month, month and day-of-week (e.g. February 30)"
            ));
        }
        Ok(Schedule {
            written: expr.to_string(),
            six,
            cron,
        })
    }

    /// The line as written in the configuration, for output.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// The 6-field form, seconds first (what the scheduler is given).
    pub fn six_field(&self) -> &str {
        &self.six
    }

    /// The parsed line (day-of-month OR day-of-week).
    pub fn cron(&self) -> &Cron {
        &self.cron
    }

    /// The next fire time strictly after `after`: croner's next occurrence
    /// in `tz`, passing over any that [`Schedule::fires_at`] refuses.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let mut t = after;
        // A refused occurrence is followed by a real one within a day.
        for _ in 0..4 {
            let next = self.croner_next(t, tz)?;
            if self.fires_at(next, tz) {
                return Some(next);
            }
            t = next;
        }
        None
    }

    /// Is `at` a fire time? Croner's rule for one instant: `at` is the next
    /// occurrence after the second before it. In a repeated (fall-back)
    /// hour only the first pass fires; a fixed time inside a skipped
    /// (spring-forward) hour fires at the end of the gap.
    ///
    /// Croner's chained search also lands on the end of the gap from a fixed
    /// time in the hour *before* the gap (its minute carry enters the gap
    /// and snaps), so `30 1 * * *` in New York would run at 01:30 EST and
    /// again at 03:00 EDT on the spring-forward day. That second run is not
    /// a fire time by the rule above and never runs.
    pub fn fires_at(&self, at: DateTime<Utc>, tz: Tz) -> bool {
        self.croner_next(at - chrono::Duration::seconds(1), tz) == Some(at)
    }

    /// Croner's next occurrence, in whole seconds (croner keeps the
    /// fraction of the instant it starts from).
    fn croner_next(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.trunc_subsecs(0).with_timezone(&tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The length of one period around `now`: the gap between the next two
    /// fire times.
    pub fn period(&self, now: DateTime<Utc>, tz: Tz) -> Option<chrono::Duration> {
        let first = self.next_after(now, tz)?;
        let second = self.next_after(first, tz)?;
        Some(second - first)
    }

    /// Should a site run once at start-up? Yes when it has never completed
    /// a backup, or its last complete archive is older than one period.
    pub fn missed_run(&self, last_complete: Option<DateTime<Utc>>, now: DateTime<Utc>, tz: Tz) -> bool {
        match (last_complete, self.period(now, tz)) {
            (None, _) => true,
            (Some(last), Some(p)) => now - last > p,
            (Some(_), None) => false,
        }
    }
}

/// Parse a 6-field line the way this crate means it: seconds required,
/// day-of-month OR day-of-week (set explicitly; croner 3's default is OR
/// too, tokio-cron-scheduler's own parsers use AND).
///
/// A 7th field (years) is accepted here; [`Schedule::parse`] refuses it.
pub fn parse_cron(six: &str) -> Result<Cron, croner::errors::CronError> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(false)
        .build()
        .parse(six)
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.written)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.six == other.six
    }
}

impl Eq for Schedule {}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn s(expr: &str) -> Schedule {
        Schedule::parse(expr).unwrap()
    }

    #[test]
    fn five_and_six_fields() {
        let five = s("30 8 * * *");
        assert_eq!(five.as_str(), "30 8 * * *");
        assert_eq!(five.six_field(), "0 30 8 * * *");
        assert_eq!(five, s("0 30 8 * * *"));
        assert_eq!(s("  0  30 8 * * MON-FRI ").six_field(), "0 30 8 * * MON-FRI");
        for bad in ["", "* * * *", "0 0 0 * * * 2030", "@daily", "whenever"] {
            let err = Schedule::parse(bad).unwrap_err();
            assert!(err.contains("5 fields") && err.contains("6 fields"), "{bad:?}: {err}");
        }
        let err = Schedule::parse("0 61 8 * * *").unwrap_err();
        assert!(err.contains("is not a valid cron expression"), "{err}");
        let err = Schedule::parse("61 8 * * *").unwrap_err();
        assert!(err.contains("\"61 8 * * *\" is not a valid cron expression"), "{err}");
    }

    #[test]
    fn a_line_that_never_fires_is_refused() {
        for never in ["0 0 0 30 2 *", "0 0 31 4 *", "0 0 0 31 2,4,6,9,11 *"] {
            let err = Schedule::parse(never).unwrap_err();
            assert!(err.contains("never fires"), "{never}: {err}");
        }
        // Rare but real.
        let leap = s("0 0 29 2 *");
        assert_eq!(
            leap.next_after(utc(2097, 1, 1, 0, 0, 0), chrono_tz::UTC),
            Some(utc(2104, 2, 29, 0, 0, 0))
        );
        // Feb 30 OR Friday is every Friday (OR semantics).
        assert!(Schedule::parse("0 0 0 30 2 FRI").is_ok());
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // 13th of any month or any Friday, at noon: from Wed 2026-02-11.
        let sched = s("0 0 12 13 * FRI");
        let mut t = utc(2026, 2, 11, 0, 0, 0);
        let mut got = Vec::new();
        for _ in 0..4 {
            t = sched.next_after(t, chrono_tz::UTC).unwrap();
            got.push(t);
        }
        assert_eq!(
            got,
            [
                utc(2026, 2, 13, 12, 0, 0), // Friday the 13th
                utc(2026, 2, 20, 12, 0, 0), // Friday
                utc(2026, 2, 27, 12, 0, 0), // Friday
                utc(2026, 3, 6, 12, 0, 0),  // Friday
            ]
        );
        assert!(sched.fires_at(utc(2026, 3, 13, 12, 0, 0), chrono_tz::UTC)); // Friday the 13th again
        assert!(sched.fires_at(utc(2026, 4, 13, 12, 0, 0), chrono_tz::UTC)); // a Monday
        assert!(!sched.fires_at(utc(2026, 4, 14, 12, 0, 0), chrono_tz::UTC));
    }

    #[test]
    fn next_and_period() {
        let now = utc(2024, 12, 25, 8, 0, 0);
        let tz = chrono_tz::UTC;
        assert_eq!(s("0 30 8 * * *").next_after(now, tz), Some(utc(2024, 12, 25, 8, 30, 0)));
        let fraction = now + chrono::Duration::milliseconds(300);
        assert_eq!(
            s("0 30 8 * * *").next_after(fraction, tz),
            Some(utc(2024, 12, 25, 8, 30, 0))
        );
        assert_eq!(
            s("* * * * * *").next_after(fraction, tz),
            Some(utc(2024, 12, 25, 8, 0, 1))
        );
        assert_eq!(s("30 8 * * *").next_after(now, tz), Some(utc(2024, 12, 25, 8, 30, 0)));
        assert_eq!(s("0 30 8 * * *").period(now, tz), Some(chrono::Duration::days(1)));
        assert_eq!(s("*/5 * * * * *").period(now, tz), Some(chrono::Duration::seconds(5)));
        // 08:30 in Tokyo (UTC+9) is 23:30 UTC the day before.
        assert_eq!(
            s("0 30 8 * * *").next_after(now, chrono_tz::Asia::Tokyo),
            Some(utc(2024, 12, 25, 23, 30, 0))
        );
    }

    #[test]
    fn missed_runs() {
        let now = utc(2024, 12, 25, 8, 0, 0);
        let daily = s("0 30 8 * * *");
        let tz = chrono_tz::UTC;
        assert!(daily.missed_run(None, now, tz));
        assert!(!daily.missed_run(Some(now - chrono::Duration::hours(20)), now, tz));
        assert!(daily.missed_run(Some(now - chrono::Duration::hours(30)), now, tz));
    }

    #[test]
    fn daylight_saving_follows_croner() {
        let london = chrono_tz::Europe::London;
        // 2026-03-29: 01:00 GMT becomes 02:00 BST. 01:30 does not exist;
        // the fixed-time job runs at the end of the gap (01:00 UTC).
        let sched = s("30 1 * * *");
        assert_eq!(
            sched.next_after(utc(2026, 3, 28, 12, 0, 0), london),
            Some(utc(2026, 3, 29, 1, 0, 0))
        );
        assert!(sched.fires_at(utc(2026, 3, 29, 1, 0, 0), london));
        // 2026-10-25: 02:00 BST becomes 01:00 GMT; 01:30 happens twice and
        // the job runs at the first (00:30 UTC) only.
        assert_eq!(
            sched.next_after(utc(2026, 10, 24, 12, 0, 0), london),
            Some(utc(2026, 10, 25, 0, 30, 0))
        );
        assert!(!sched.fires_at(utc(2026, 10, 25, 1, 30, 0), london));
        assert_eq!(
            sched.next_after(utc(2026, 10, 25, 0, 30, 0), london),
            Some(utc(2026, 10, 26, 1, 30, 0))
        );
    }

    #[test]
    fn no_second_run_at_the_end_of_a_gap() {
        // New York, 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC).
        let ny = chrono_tz::America::New_York;
        let sched = s("30 1 * * *");
        let first = utc(2026, 3, 8, 6, 30, 0); // 01:30 EST
        let gap_end = utc(2026, 3, 8, 7, 0, 0);
        assert_eq!(
            sched
                .cron()
                .find_next_occurrence(&first.with_timezone(&ny), false)
                .unwrap(),
            gap_end,
            "croner's chained search lands on the end of the gap"
        );
        assert!(!sched.fires_at(gap_end, ny));
        assert_eq!(
            sched.next_after(first, ny),
            Some(utc(2026, 3, 9, 5, 30, 0)),
            "01:30 EDT next day"
        );
    }
}
