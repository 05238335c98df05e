//! Pure schedule arithmetic on 6-field cron expressions (UTC).

use chrono::{DateTime, Utc};

/// The next fire time strictly after `after`.
pub fn next_after(expr: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = crate::config::parse_schedule(expr).ok()?;
    cron.find_next_occurrence(&after, false).ok()
}

/// The length of one period around `now`: the gap between the next two
/// fire times.
pub fn period(expr: &str, now: DateTime<Utc>) -> Option<chrono::Duration> {
    let first = next_after(expr, now)?;
    let second = next_after(expr, first)?;
    Some(second - first)
}

/// Should a site run once at start-up? Yes when it has never completed a
/// backup, or its last complete archive is older than one period.
pub fn missed_run(expr: &str, last_complete: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    match (last_complete, period(expr, now)) {
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
        assert_eq!(
            next_after("0 30 8 * * *", now),
            Some(Utc.with_ymd_and_hms(2024, 12, 25, 8, 30, 0).unwrap())
        );
        assert_eq!(period("0 30 8 * * *", now), Some(chrono::Duration::days(1)));
        assert_eq!(period("*/5 * * * * *", now), Some(chrono::Duration::seconds(5)));
    }

    #[test]
    fn missed_runs() {
        let now = Utc.with_ymd_and_hms(2024, 12, 25, 8, 0, 0).unwrap();
        let daily = "0 30 8 * * *";
        assert!(missed_run(daily, None, now));
        assert!(!missed_run(daily, Some(now - chrono::Duration::hours(20)), now));
        assert!(missed_run(daily, Some(now - chrono::Duration::hours(30)), now));
    }
}
