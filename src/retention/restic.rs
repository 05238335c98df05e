//! restic's `forget` rules, applied to one site's clean archives.
//!
//! A port of `ApplyPolicy` in restic's `internal/restic/snapshot_policy.go`
//! as of restic 0.16 (the "keep oldest" rule came with restic PR #4366,
//! closing issue #3624, released in 0.16.0):
//!
//! - Archives are taken newest first.
//! - A policy with no rule (every count unset or 0, no `keep_within`) keeps
//!   everything (restic: "no policy was specified, no snapshots will be
//!   removed"; `--keep-last 0` counts as no rule, restic issue #1519).
//! - Each count rule (`keep_last`, `keep_hourly`, `keep_daily`,
//!   `keep_weekly`, `keep_monthly`, `keep_yearly`) has its own counter and
//!   remembers the bucket of the last archive it kept. While its counter is
//!   above 0, an archive whose bucket differs from that one is kept and
//!   uses one count. Buckets are the hour, the day, the ISO week (with its
//!   ISO year), the month and the year (UTC here; restic uses each
//!   snapshot's own zone); for `keep_last` every archive is its own bucket.
//! - **Oldest:** the oldest archive is also kept by every count rule that
//!   still has counts left, even if its bucket was already seen.
//! - `keep_within D` keeps every archive strictly newer than `latest - D`,
//!   where `latest` is the newest archive that is not in the future (not
//!   `now`), and `latest - D` is computed with calendar years, months and
//!   days like Go's `AddDate`, then hours (see [`crate::config::KeepWithin::before`]).
//!
//! restic's `--keep-tag` and `--keep-within-{hourly,...}` have no
//! counterpart here.

use crate::config::RetentionPolicy;
use chrono::{DateTime, Datelike, Timelike, Utc};

/// The reasons to keep each archive of `times` (sorted newest first); an
/// empty list means the rules do not keep it.
pub(super) fn keep_reasons(times: &[DateTime<Utc>], policy: &RetentionPolicy, now: DateTime<Utc>) -> Vec<Vec<String>> {
    if policy.is_empty() {
        return vec![vec!["no retention policy: everything is kept".to_string()]; times.len()];
    }
    let mut reasons = vec![Vec::new(); times.len()];
    let Some(oldest) = times.len().checked_sub(1) else {
        return reasons;
    };
    let mut rules: Vec<CountRule> = [
        ("keep_last", policy.keep_last, Bucket::Each),
        ("keep_hourly", policy.keep_hourly, Bucket::Hour),
        ("keep_daily", policy.keep_daily, Bucket::Day),
        ("keep_weekly", policy.keep_weekly, Bucket::Week),
        ("keep_monthly", policy.keep_monthly, Bucket::Month),
        ("keep_yearly", policy.keep_yearly, Bucket::Year),
    ]
    .into_iter()
    .filter_map(|(name, count, bucket)| {
        count.filter(|n| *n > 0).map(|n| CountRule {
            name,
            count: n,
            left: n,
            bucket,
            last: None,
        })
    })
    .collect();
    let latest = times.iter().copied().filter(|t| *t < now).max();
    let within = policy.keep_within.map(|w| (w, latest.and_then(|l| w.before(l))));

    for (nr, (t, why)) in times.iter().zip(&mut reasons).enumerate() {
        if let Some((w, cutoff)) = within {
            match cutoff {
                Some(c) if *t > c => why.push(format!("keep_within {w} (newer than {})", c.format("%F %T"))),
                Some(_) => {}
                // No archive in the past (or a date out of range): restic's
                // cutoff is then before every archive.
                None => why.push(format!("keep_within {w}")),
            }
        }
        for rule in &mut rules {
            if rule.left == 0 {
                continue;
            }
            let val = rule.bucket.of(*t, nr);
            let new_bucket = rule.last != Some(val);
            if new_bucket || nr == oldest {
                rule.last = Some(val);
                rule.left -= 1;
                why.push(if new_bucket {
                    format!("{} {} ({})", rule.name, rule.count, rule.bucket.label(*t, nr))
                } else {
                    format!("{} {} (oldest archive, counts left)", rule.name, rule.count)
                });
            }
        }
    }
    reasons
}

struct CountRule {
    name: &'static str,
    count: u32,
    left: u32,
    bucket: Bucket,
    last: Option<i64>,
}

#[derive(Clone, Copy)]
enum Bucket {
    Each,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Bucket {
    /// restic's bucket numbers: `YYYYMMDDHH`, `YYYYMMDD`, `YYYYWW` (ISO),
    /// `YYYYMM`, `YYYY`, or the position for `keep_last`.
    fn of(self, t: DateTime<Utc>, nr: usize) -> i64 {
        let (y, m, d, h) = (
            i64::from(t.year()),
            i64::from(t.month()),
            i64::from(t.day()),
            i64::from(t.hour()),
        );
        match self {
            Bucket::Each => nr as i64,
            Bucket::Hour => y * 1_000_000 + m * 10_000 + d * 100 + h,
            Bucket::Day => y * 10_000 + m * 100 + d,
            Bucket::Week => {
                let w = t.iso_week();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }
            Bucket::Month => y * 100 + m,
            Bucket::Year => y,
        }
    }

    fn label(self, t: DateTime<Utc>, nr: usize) -> String {
        match self {
            Bucket::Each => format!("#{}", nr + 1),
            Bucket::Hour => t.format("%F %Hh").to_string(),
            Bucket::Day => t.format("%F").to_string(),
            Bucket::Week => {
                let w = t.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Bucket::Month => t.format("%Y-%m").to_string(),
            Bucket::Year => t.format("%Y").to_string(),
        }
    }
}
