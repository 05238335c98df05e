//! Pure schedule arithmetic on 6-field cron expressions, evaluated in the
//! configured time zone (UTC by default).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The next fire time strictly after `after`.
pub fn next_after(expr: &str, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let cron = crate::config::parse_schedule(expr).ok()?;
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The length of one period around `now`: the gap between the next two
/// fire times.
pub fn period(expr: &str, now: DateTime<Utc>, tz: Tz) -> Option<chrono::Duration> {
    let first = next_after(expr, now, tz)?;
    let second = next_after(expr, first, tz)?;
    Some(second - first)
}

/// Should a site run once at start-up? Yes when it has never completed a
/// backup, or its last complete archive is older than one period.
pub fn missed_run(expr: &str, last_complete: Option<DateTime<Utc>>, now: DateTime<Utc>, tz: Tz) -> bool {
    match (last_complete, period(expr, now, tz)) {
        (None, _) => true,
        (Some(last), Some(p)) => now - last > p,
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn next_and_period() {
        let now = Utc.with_ymd_and_hms(2024, 12, 25, 8, 0, 0).unwrap();
        let utc = chrono_tz::UTC;
        assert_eq!(
            next_after("0 30 8 * * *", now, utc),
            Some(Utc.with_ymd_and_hms(2024, 12, 25, 8, 30, 0).unwrap())
        );
        assert_eq!(period("0 30 8 * * *", now, utc), Some(chrono::Duration::days(1)));
        assert_eq!(period("*/5 * * * * *", now, utc), Some(chrono::Duration::seconds(5)));
        // 08:30 in Tokyo (UTC+9) is 23:30 UTC the day before.
        assert_eq!(
            next_after("0 30 8 * * *", now, chrono_tz::Asia::Tokyo),
            Some(Utc.with_ymd_and_hms(2024, 12, 25, 23, 30, 0).unwrap())
        );
    }

    #[test]
    fn missed_runs() {
        let now = Utc.with_ymd_and_hms(2024, 12, 25, 8, 0, 0).unwrap();
        let daily = "0 30 8 * * *";
        let utc = chrono_tz::UTC;
        assert!(missed_run(daily, None, now, utc));
        assert!(!missed_run(daily, Some(now - chrono::Duration::hours(20)), now, utc));
        assert!(missed_run(daily, Some(now - chrono::Duration::hours(30)), now, utc));
    }
}
