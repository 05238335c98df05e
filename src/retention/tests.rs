use super::*;
use crate::catalog::{SuspectCause, VerifyOutcome};
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
        verify_outcome: None,
        verify_error: None,
        suspect: None,
        suspect_reason: None,
    }
}

/// `row`, marked: `corrupt`, `inconclusive` (a failed download), `ok`,
/// `empty` or `shrunk` (suspect).
fn marked(mut r: ArchiveRow, mark: &str) -> ArchiveRow {
    match mark {
        "corrupt" => {
            r.verify_outcome = Some(VerifyOutcome::Corrupt);
            r.verify_error = Some("checksum mismatch".into());
        }
        "inconclusive" => {
            r.verify_outcome = Some(VerifyOutcome::Inconclusive);
            r.verify_error = Some("Connection error".into());
        }
        "ok" => r.verify_outcome = Some(VerifyOutcome::Ok),
        "empty" => r.suspect = Some(SuspectCause::EmptySite),
        "shrunk" => r.suspect = Some(SuspectCause::Shrunk),
        other => panic!("bad mark {other}"),
    }
    r
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
            "within" => p.keep_within = Some(parse_keep_within(v).unwrap()),
            _ => panic!("bad spec {k}"),
        }
    }
    p
}

const ALL: &[i64] = &[10, 9, 8, 7, 6, 5, 4, 3, 2, 1];

/// The policy table over [`fixture`]. Cases changed when the planner was
/// made to follow restic exactly (they encoded other behaviour before):
/// `last_0` (restic: a count of 0 is no rule, so `last=0` alone is an empty
/// policy and keeps everything; we kept only the newest), `within_3d`,
/// `within_4d` and `mixed` (restic measures `keep_within` back from the
/// newest archive, not from `now`; `mixed` also gains #1 by the oldest
/// rule, since `yearly=3` has a count left).
#[rstest]
#[case::empty_policy_keeps_everything("", ALL)]
#[case::last_1("last=1", &[10])]
#[case::last_3("last=3", &[10, 9, 8])]
#[case::last_more_than_exist("last=100", ALL)]
#[case::last_0_is_no_rule_keeps_everything("last=0", ALL)]
#[case::zero_counts_beside_a_rule_are_ignored("last=0, daily=1", &[10])]
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
#[case::yearly_3_keeps_the_oldest_too("yearly=3", &[10, 2, 1])]
#[case::within_3d_of_the_newest_archive("within=3d", &[10, 9, 8, 7, 6])]
#[case::within_4d("within=4d", &[10, 9, 8, 7, 6])]
#[case::within_1d_is_strictly_newer("within=1d", &[10, 9, 8])]
#[case::within_17h("within=17h", &[10])]
#[case::within_18h_excludes_the_archive_exactly_18h_older("within=18h", &[10, 9])]
#[case::within_19h("within=19h", &[10, 9, 8])]
#[case::within_1m_calendar_month("within=1m", &[10, 9, 8, 7, 6, 5])]
#[case::within_1y("within=1y", ALL)]
#[case::last_and_monthly("last=2, monthly=2", &[10, 9, 6])]
#[case::daily_and_yearly("daily=2, yearly=2", &[10, 9, 2])]
#[case::hourly_and_weekly("hourly=1, weekly=3", &[10, 5, 4])]
#[case::mixed("last=1, within=4d, yearly=3", &[10, 9, 8, 7, 6, 2, 1])]
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
    // (That the newest complete archive, #10, is kept although newer runs
    // failed is in every `expected_keep`.) Every decision gives a reason.
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

/// restic keeps the oldest archive too when a count rule still has counts
/// left (restic PR #4366), even if its bucket was already used; with no
/// counts left, or with `keep_within` alone, it does not.
#[rstest]
#[case::daily_with_counts_left_keeps_the_oldest("daily=5", &[4, 3, 2, 1])]
#[case::daily_with_counts_used_up_does_not("daily=2", &[4, 3])]
#[case::daily_used_up_on_the_oldest_day("daily=3", &[4, 3, 2])]
#[case::weekly_one_week_left("weekly=2", &[4, 1])]
#[case::weekly_used_up("weekly=1", &[4])]
#[case::last_keeps_the_oldest_anyway("last=10", &[4, 3, 2, 1])]
#[case::hourly_counts_left("hourly=9", &[4, 3, 2, 1])]
#[case::within_alone_does_not("within=1d", &[4, 3])]
#[case::within_and_monthly_with_counts_left("within=1d, monthly=3", &[4, 3, 1])]
fn the_oldest_archive_is_kept_while_a_rule_has_counts_left(#[case] spec: &str, #[case] expected_keep: &[i64]) {
    // Two on the oldest day (Mon 2024-01-01, 01:00 and 02:00), one the next
    // day, one a day later: all in ISO week 2024-W01 and January.
    let rows = vec![
        row(1, "2024-01-01T01:00:00Z", "complete"),
        row(2, "2024-01-01T02:00:00Z", "complete"),
        row(3, "2024-01-02T02:00:00Z", "complete"),
        row(4, "2024-01-03T01:00:00Z", "complete"),
    ];
    let now = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
    let plan = plan_retention(&rows, &policy(spec), now);
    let keep: Vec<i64> = plan.keep.iter().map(|a| a.id).collect();
    assert_eq!(keep, expected_keep, "policy {spec:?}");
    let oldest_reason = plan.keep.iter().find(|a| a.id == 1).map(|a| a.reasons.join("; "));
    if let Some(r) = oldest_reason
        && !spec.contains("last")
        && !spec.contains("hourly")
    {
        assert!(r.contains("oldest archive, counts left"), "{r}");
    }
}

/// `keep_within` counts back from the newest archive that is not in the
/// future, as restic does: a clock that jumped ahead does not make
/// everything else "old".
#[test]
fn keep_within_ignores_archives_in_the_future_when_finding_the_newest() {
    let now = Utc.with_ymd_and_hms(2024, 2, 4, 12, 0, 0).unwrap();
    let mut rows = fixture();
    rows.push(row(14, "2030-01-01T00:00:00Z", "complete"));
    let plan = plan_retention(&rows, &policy("within=3d"), now);
    let keep: Vec<i64> = plan.keep.iter().map(|a| a.id).collect();
    assert_eq!(keep, [14, 10, 9, 8, 7, 6]);
}

/// Corrupt archives fill no keep slot and always go; suspect ones fill no
/// slot and stay while newer than every clean archive. An inconclusive
/// verify (a dead server) changes nothing.
#[rstest]
#[case::corrupt_newest_goes_and_frees_its_slot("last=1", &[(10, "corrupt")], &[9], &[10])]
#[case::corrupt_goes_even_without_a_policy("", &[(5, "corrupt")], &[10, 9, 8, 7, 6, 4, 3, 2, 1], &[5])]
#[case::corrupt_in_the_middle_gives_the_day_to_the_earlier_archive("daily=2", &[(9, "corrupt")], &[10, 8], &[9])]
#[case::every_archive_corrupt("last=3", &[(10, "corrupt"), (9, "corrupt"), (8, "corrupt"), (7, "corrupt"), (6, "corrupt"), (5, "corrupt"), (4, "corrupt"), (3, "corrupt"), (2, "corrupt"), (1, "corrupt")], &[], &[10, 9, 8, 7, 6, 5, 4, 3, 2, 1])]
#[case::inconclusive_is_not_corrupt("last=1", &[(10, "inconclusive")], &[10], &[])]
#[case::verified_ok_is_clean("last=1", &[(10, "ok")], &[10], &[])]
#[case::suspect_newest_keeps_the_clean_one("last=1", &[(10, "empty")], &[10, 9], &[])]
#[case::two_suspect_newest_keep_the_clean_one("last=1", &[(10, "empty"), (9, "shrunk")], &[10, 9, 8], &[])]
#[case::suspect_older_than_a_clean_archive_goes("last=1", &[(9, "shrunk")], &[10], &[9])]
#[case::suspect_takes_no_daily_slot("daily=2", &[(10, "empty")], &[10, 9, 6], &[])]
#[case::suspect_without_a_policy_stays("", &[(9, "empty")], ALL, &[])]
#[case::suspect_is_not_the_newest_for_keep_within("within=1d", &[(10, "empty")], &[10, 9, 8, 7], &[])]
#[case::corrupt_and_suspect("last=1", &[(10, "corrupt"), (9, "empty")], &[9, 8], &[10])]
fn corrupt_and_suspect_archives(
    #[case] spec: &str,
    #[case] marks: &[(i64, &str)],
    #[case] expected_keep: &[i64],
    #[case] expected_removed_marked: &[i64],
) {
    let now = Utc.with_ymd_and_hms(2024, 2, 4, 12, 0, 0).unwrap();
    let rows: Vec<ArchiveRow> = fixture()
        .into_iter()
        .map(|r| match marks.iter().find(|(id, _)| *id == r.id) {
            Some((_, m)) => marked(r, m),
            None => r,
        })
        .collect();
    let plan = plan_retention(&rows, &policy(spec), now);
    let keep: Vec<i64> = plan.keep.iter().map(|a| a.id).collect();
    assert_eq!(keep, expected_keep, "policy {spec:?}, marks {marks:?}");
    let removed_marked: Vec<i64> = plan
        .remove
        .iter()
        .filter(|a| a.condition != Condition::Clean)
        .map(|a| a.id)
        .collect();
    assert_eq!(removed_marked, expected_removed_marked);
    for a in plan.keep.iter().chain(&plan.remove) {
        let mark = marks.iter().find(|(id, _)| *id == a.id).map(|(_, m)| *m);
        let expected = match mark {
            Some("corrupt") => Condition::Corrupt,
            Some("empty" | "shrunk") => Condition::Suspect,
            _ => Condition::Clean,
        };
        assert_eq!(a.condition, expected, "#{}", a.id);
        match a.condition {
            Condition::Corrupt => {
                assert!(plan.remove.contains(a), "a corrupt archive is never kept");
                assert_eq!(a.reasons, ["corrupt: checksum mismatch"]);
            }
            Condition::Suspect => assert!(a.reasons[0].contains("suspect"), "{:?}", a.reasons),
            Condition::Clean => {}
        }
    }
    let corrupt: Vec<i64> = plan.corrupt().map(|a| a.id).collect();
    let expected_corrupt: Vec<i64> = marks
        .iter()
        .filter(|(_, m)| *m == "corrupt")
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(corrupt, expected_corrupt);
    // The newest clean archive is always kept.
    if let Some(newest_clean) = rows
        .iter()
        .filter(|r| r.status == ArchiveStatus::Complete && r.condition() == Condition::Clean)
        .max_by_key(|r| (r.created_at.clone(), r.id))
    {
        assert!(keep.contains(&newest_clean.id));
    }
}
