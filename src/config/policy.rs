//! `[sites.retention]`, validated into a [`RetentionPolicy`]. The planner
//! that applies it lives in [`crate::retention`].

use super::RawRetention;
use chrono::Duration;

/// The longest `keep_within` accepted: a hundred years. Longer values would
/// overflow date arithmetic, and no operator means them.
pub const MAX_KEEP_WITHIN_DAYS: i64 = 36_500;

/// A validated retention policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    pub keep_within: Option<Duration>,
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
            keep_within: raw.keep_within.as_deref().map(parse_duration).transpose()?,
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
            keep_within: self.keep_within.map(|d| {
                if d.num_hours() % 24 == 0 {
                    format!("{}d", d.num_days())
                } else {
                    format!("{}h", d.num_hours())
                }
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `30d`, `2w`, `1y6m`, `12h`: years (365 d), months (30 d), weeks, days,
/// hours; at most [`MAX_KEEP_WITHIN_DAYS`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like \"30d\", \"2w\", \"1y6m\" or \"12h\"");
    let too_long = || format!("{text:?} is longer than {MAX_KEEP_WITHIN_DAYS} days (100 years)");
    let mut hours: i64 = 0;
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
        let n: i64 = num.parse().map_err(|_| too_long())?;
        num.clear();
        let unit_hours: i64 = match c {
            'y' => 365 * 24,
            'm' => 30 * 24,
            'w' => 7 * 24,
            'd' => 24,
            'h' => 1,
            _ => return Err(bad()),
        };
        hours = n
            .checked_mul(unit_hours)
            .and_then(|h| hours.checked_add(h))
            .ok_or_else(too_long)?;
    }
    if !num.is_empty() || hours == 0 {
        return Err(bad());
    }
    if hours > MAX_KEEP_WITHIN_DAYS * 24 {
        return Err(too_long());
    }
    Ok(Duration::hours(hours))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30d").unwrap(), Duration::days(30));
        assert_eq!(parse_duration("1y6m").unwrap(), Duration::days(365 + 180));
        assert_eq!(parse_duration("12h").unwrap(), Duration::hours(12));
        assert_eq!(parse_duration("100y").unwrap(), Duration::days(36_500));
        for bad in ["", "d", "10", "5x", "0d", "y1"] {
            assert!(parse_duration(bad).unwrap_err().contains("is not a duration"), "{bad}");
        }
        // Huge values are configuration errors, not panics later.
        for huge in ["101y", "999999y", "99999999999999999999d", "9223372036854775807h"] {
            assert!(parse_duration(huge).unwrap_err().contains("100 years"), "{huge}");
        }
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
        let hours = RetentionPolicy::from_raw(&RawRetention {
            keep_within: Some("36h".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(hours.to_raw().keep_within.as_deref(), Some("36h"));
    }
}
