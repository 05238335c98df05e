use super::*;
use chrono::TimeZone;
use rstest::rstest;

fn row(id: i64, created_at: &str, status: &str) -> ArchiveRow {
    ArchiveRow {
        id,
        site: "blog".into(),
        server_id: 1,
        endpoint: "h".into(),
        bucket: "b".into(),
        key: format!("k{id}"),
        size_bytes: 100,
        sha256: None,
        created_at: created_at.into(),
        status: status.parse().unwrap(),
        error: None,
        verified_at: None,
        verify_ok: None,
    }
}

/// Spans a year boundary, month boundaries, several per day and per hour,
/// and ends with two failed runs newer than every complete archive.
fn fixture() -> Vec<ArchiveRow> {
    vec![
        row(1, "2023-11-15T03:00:00Z", "complete"),
        row(2, "2023-12-31T03:00:00Z", "complete"),
        row(3, "2024-01-01T03:00:00Z", "complete"),
        row(4, "2024-01-01T15:00:00Z", "complete"),
        row(5, "2024-01-15T03:00:00Z", "complete"),
        row(6, "2024-01-31T03:00:00Z", "complete"),
        row(7, "2024-02-01T03:00:00Z", "complete"),
        row(8, "2024-02-01T09:00:00Z", "complete"),
        row(9, "2024-02-01T09:30:00Z", "complete"),
        row(10, "2024-02-02T03:00:00Z", "complete"),
        row(11, "2024-02-03T03:00:00Z", "failed"),
        row(12, "2024-02-04T03:00:00Z", "failed"),
        row(13, "2023-10-01T03:00:00Z", "deleted"),
    ]
}

fn policy(spec: &str) -> RetentionPolicy {
    let mut p = RetentionPolicy::default();
    for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = part.split_once('=').unwrap();
        match k {
            "last" => p.keep_last = Some(v.parse().unwrap()),
            "hourly" => p.keep_hourly = Some(v.parse().unwrap()),
            "daily" => p.keep_daily = Some(v.parse().unwrap()),
            "weekly" => p.keep_weekly = Some(v.parse().unwrap()),
            "monthly" => p.keep_monthly = Some(v.parse().unwrap()),
            "yearly" => p.keep_yearly = Some(v.parse().unwrap()),
            "within" => p.keep_within = Some(parse_duration(v).unwrap()),
            _ => panic!("bad spec {k}"),
        }
    }
    p
}

const ALL: &[i64] = &[10, 9, 8, 7, 6, 5, 4, 3, 2, 1];

#[rstest]
#[case::empty_policy_keeps_everything("", ALL)]
#[case::last_1("last=1", &[10])]
#[case::last_3("last=3", &[10, 9, 8])]
#[case::last_more_than_exist("last=100", ALL)]
#[case::last_0_still_keeps_newest("last=0", &[10])]
#[case::hourly_2_same_hour_counts_once("hourly=2", &[10, 9])]
#[case::hourly_3("hourly=3", &[10, 9, 7])]
#[case::daily_1("daily=1", &[10])]
#[case::daily_2("daily=2", &[10, 9])]
#[case::daily_4_across_month("daily=4", &[10, 9, 6, 5])]
#[case::daily_7_across_year("daily=7", &[10, 9, 6, 5, 4, 2, 1])]
#[case::weekly_2("weekly=2", &[10, 5])]
#[case::weekly_4_iso_week_across_year("weekly=4", &[10, 5, 4, 2])]
#[case::monthly_1("monthly=1", &[10])]
#[case::monthly_2_newest_of_january("monthly=2", &[10, 6])]
#[case::monthly_3_across_year("monthly=3", &[10, 6, 2])]
#[case::monthly_12("monthly=12", &[10, 6, 2, 1])]
#[case::yearly_1("yearly=1", &[10])]
#[case::yearly_2("yearly=2", &[10, 2])]
#[case::within_3d("within=3d", &[10])]
#[case::within_4d("within=4d", &[10, 9, 8, 7])]
#[case::within_1m("within=1m", &[10, 9, 8, 7, 6, 5])]
#[case::within_1y("within=1y", ALL)]
#[case::last_and_monthly("last=2, monthly=2", &[10, 9, 6])]
#[case::daily_and_yearly("daily=2, yearly=2", &[10, 9, 2])]
#[case::hourly_and_weekly("hourly=1, weekly=3", &[10, 5, 4])]
#[case::mixed("last=1, within=4d, yearly=3", &[10, 9, 8, 7, 2])]
#[case::typical_drops_the_earlier_of_two_on_one_day("last=7, daily=14, weekly=8, monthly=12", &[10, 9, 8, 7, 6, 5, 4, 2, 1])]
fn retention_policies(#[case] spec: &str, #[case] expected_keep: &[i64]) {
    let now = Utc.with_ymd_and_hms(2024, 2, 4, 12, 0, 0).unwrap();
    let plan = plan_retention(&fixture(), &policy(spec), now);
    let keep: Vec<i64> = plan.keep.iter().map(|a| a.id).collect();
    assert_eq!(keep, expected_keep, "policy {spec:?}");
    // Everything complete is either kept or removed; failed/deleted rows are
    // never touched.
    let mut all: Vec<i64> = plan.keep.iter().chain(&plan.remove).map(|a| a.id).collect();
    all.sort_unstable();
    assert_eq!(all, (1..=10).collect::<Vec<_>>());
    // The newest complete archive is always kept, even though newer runs failed.
    assert!(keep.contains(&10));
    // Nothing removed is newer than the newest kept archive.
    assert!(plan.remove.iter().all(|r| r.id < 10));
    assert!(plan.remove.iter().all(|r| !r.reasons.is_empty()));
    assert!(plan.keep.iter().all(|k| !k.reasons.is_empty()));
}

#[test]
fn a_site_with_only_failed_backups_removes_nothing() {
    let now = Utc.with_ymd_and_hms(2024, 2, 4, 12, 0, 0).unwrap();
    let rows = vec![
        row(1, "2024-02-01T03:00:00Z", "failed"),
        row(2, "2024-02-02T03:00:00Z", "failed"),
    ];
    let plan = plan_retention(&rows, &policy("last=1"), now);
    assert!(plan.keep.is_empty() && plan.remove.is_empty());
}
