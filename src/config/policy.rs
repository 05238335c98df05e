//! `[sites.retention]`, validated into a [`RetentionPolicy`]. The planner
//! that applies it lives in [`crate::retention`].

use super::RawRetention;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

/// The longest `keep_within` accepted: a hundred years (counting a year as
/// 365 days and a month as 30). Longer values would overflow date
/// arithmetic, and no operator means them.
pub const MAX_KEEP_WITHIN_DAYS: i64 = 36_500;

/// A validated retention policy. A count of 0 is no rule at all, as in
/// restic (`--keep-last 0` is an empty policy there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    pub keep_within: Option<KeepWithin>,
}

/// `keep_within`, as restic's `Duration`: calendar years, months and days
/// plus hours. `w` (weeks) is accepted as 7 days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepWithin {
    pub years: i32,
    pub months: i32,
    pub days: i32,
    pub hours: i32,
}

impl KeepWithin {
    /// `t` minus this duration, the way restic computes it: Go's
    /// `t.AddDate(-years, -months, -days)` (a day past the end of the
    /// month rolls over: March 31 minus one month is March 2 or 3, not
    /// February 28), then minus `hours`.
    pub fn before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let months =
            (i64::from(t.year()) - i64::from(self.years)) * 12 + i64::from(t.month0()) - i64::from(self.months);
        let year = i32::try_from(months.div_euclid(12)).ok()?;
        let month = u32::try_from(months.rem_euclid(12)).ok()? + 1;
        let first = NaiveDate::from_ymd_opt(year, month, 1)?;
        let day_offset = i64::from(t.day()) - 1 - i64::from(self.days);
        let date = first.checked_add_signed(Duration::try_days(day_offset)?)?;
        let shifted = date.and_time(t.time()).and_utc();
        shifted.checked_sub_signed(Duration::try_hours(i64::from(self.hours))?)
    }

    /// Rough length in hours (a year 365 days, a month 30), for the bound.
    fn approx_hours(&self) -> i64 {
        (i64::from(self.years) * 365 + i64::from(self.months) * 30 + i64::from(self.days)) * 24 + i64::from(self.hours)
    }
}

impl std::fmt::Display for KeepWithin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl RetentionPolicy {
    pub fn from_raw(raw: &RawRetention) -> Result<Self, String> {
        Ok(Self {
            keep_last: raw.keep_last,
            keep_hourly: raw.keep_hourly,
            keep_daily: raw.keep_daily,
            keep_weekly: raw.keep_weekly,
            keep_monthly: raw.keep_monthly,
            keep_yearly: raw.keep_yearly,
            keep_within: raw.keep_within.as_deref().map(parse_keep_within).transpose()?,
        })
    }

    /// The policy in the TOML's own keys (for `config check`).
    pub fn to_raw(&self) -> RawRetention {
        RawRetention {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self.keep_within.map(|d| d.to_string()),
        }
    }

    /// No rule at all: every count unset or 0, and no `keep_within`.
    /// restic keeps everything then, and so do we.
    pub fn is_empty(&self) -> bool {
        let counts = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ];
        counts.iter().all(|c| c.unwrap_or(0) == 0) && self.keep_within.is_none()
    }
}

/// `30d`, `2w`, `1y6m`, `12h`: years, months, weeks (7 days), days, hours;
/// at most [`MAX_KEEP_WITHIN_DAYS`].
pub fn parse_keep_within(text: &str) -> Result<KeepWithin, String> {
    let bad = || format!("{text:?} is not a duration like \"30d\", \"2w\", \"1y6m\" or \"12h\"");
    let too_long = || format!("{text:?} is longer than {MAX_KEEP_WITHIN_DAYS} days (100 years)");
    let mut d = KeepWithin::default();
    let mut num = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        if num.is_empty() {
            return Err(bad());
        }
        // Digits only, so a parse error can only be an overflow.
        let n: i32 = num.parse().map_err(|_| too_long())?;
        num.clear();
        let (field, times) = match c {
            'y' => (&mut d.years, 1),
            'm' => (&mut d.months, 1),
            'w' => (&mut d.days, 7),
            'd' => (&mut d.days, 1),
            'h' => (&mut d.hours, 1),
            _ => return Err(bad()),
        };
        *field = n
            .checked_mul(times)
            .and_then(|v| field.checked_add(v))
            .ok_or_else(too_long)?;
    }
    if !num.is_empty() || d == KeepWithin::default() {
        return Err(bad());
    }
    if d.approx_hours() > MAX_KEEP_WITHIN_DAYS * 24 {
        return Err(too_long());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn within(years: i32, months: i32, days: i32, hours: i32) -> KeepWithin {
        KeepWithin {
            years,
            months,
            days,
            hours,
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_keep_within("30d").unwrap(), within(0, 0, 30, 0));
        assert_eq!(parse_keep_within("2w").unwrap(), within(0, 0, 14, 0));
        assert_eq!(parse_keep_within("1y6m").unwrap(), within(1, 6, 0, 0));
        assert_eq!(parse_keep_within("12h").unwrap(), within(0, 0, 0, 12));
        assert_eq!(parse_keep_within("1w2d").unwrap(), within(0, 0, 9, 0));
        assert_eq!(parse_keep_within("100y").unwrap(), within(100, 0, 0, 0));
        for bad in ["", "d", "10", "5x", "0d", "y1"] {
            assert!(
                parse_keep_within(bad).unwrap_err().contains("is not a duration"),
                "{bad}"
            );
        }
        // Huge values are configuration errors, not panics later.
        for huge in [
            "101y",
            "999999y",
            "99999999999999999999d",
            "9223372036854775807h",
            "876001h",
        ] {
            assert!(parse_keep_within(huge).unwrap_err().contains("100 years"), "{huge}");
        }
    }

    /// restic subtracts `keep_within` with Go's `AddDate`, whose day
    /// overflow rolls into the next month.
    #[test]
    fn keep_within_subtracts_like_go_add_date() {
        let at = |y, m, d, h| Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap();
        let cases = [
            (at(2024, 3, 31, 5), within(0, 1, 0, 0), at(2024, 3, 2, 5)),
            (at(2023, 3, 31, 5), within(0, 1, 0, 0), at(2023, 3, 3, 5)),
            (at(2024, 2, 29, 0), within(1, 0, 0, 0), at(2023, 3, 1, 0)),
            (at(2024, 3, 1, 0), within(0, 0, 1, 0), at(2024, 2, 29, 0)),
            (at(2024, 1, 15, 3), within(0, 1, 0, 0), at(2023, 12, 15, 3)),
            (at(2024, 1, 2, 6), within(0, 0, 1, 36), at(2023, 12, 30, 18)),
            (at(2024, 5, 31, 0), within(1, 14, 0, 0), at(2022, 3, 31, 0)),
            (at(2024, 2, 2, 3), within(0, 0, 3, 0), at(2024, 1, 30, 3)),
        ];
        for (t, d, expected) in cases {
            assert_eq!(d.before(t), Some(expected), "{t} - {d}");
        }
        assert_eq!(within(100, 0, 0, 0).before(at(2024, 1, 1, 0)), Some(at(1924, 1, 1, 0)));
    }

    #[test]
    fn zero_counts_are_no_rule() {
        let zero = RetentionPolicy {
            keep_last: Some(0),
            keep_daily: Some(0),
            ..Default::default()
        };
        assert!(zero.is_empty());
        assert!(
            !RetentionPolicy {
                keep_last: Some(1),
                ..Default::default()
            }
            .is_empty()
        );
    }

    #[test]
    fn policies_print_with_their_own_keys() {
        let raw = RawRetention {
            keep_last: Some(3),
            keep_within: Some("2w".into()),
            ..Default::default()
        };
        let back = RetentionPolicy::from_raw(&raw).unwrap().to_raw();
        assert_eq!(back.keep_last, Some(3));
        assert_eq!(back.keep_within.as_deref(), Some("14d"));
        for (text, printed) in [("36h", "36h"), ("1y6m", "1y6m"), ("1y2w3h", "1y14d3h")] {
            let policy = RetentionPolicy::from_raw(&RawRetention {
                keep_within: Some(text.into()),
                ..Default::default()
            })
            .unwrap();
            assert_eq!(policy.to_raw().keep_within.as_deref(), Some(printed));
        }
    }
}
