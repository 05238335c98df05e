//! Pure decisions of the pipeline: the size estimate, whether a server has
//! room, the part size, and whether a stored archive looks suspect.

use crate::catalog::SuspectCause;
use std::fmt;

/// Why a server was skipped before any upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub usage: u64,
    pub estimate: u64,
    pub limit: u64,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Not enough space: usage {:.2} MB + estimated archive {:.2} MB exceeds the limit of {:.2} MB",
            self.usage as f64 / 1e6,
            self.estimate as f64 / 1e6,
            self.limit as f64 / 1e6
        )
    }
}

/// The expected archive size: the site's last archive plus a margin, or,
/// without history, the source size (zstd rarely makes a site bigger).
pub fn estimate_bytes(last_archive: Option<u64>, source_bytes: u64, margin_percent: u64) -> u64 {
    match last_archive {
        Some(last) => last.saturating_add(last.saturating_mul(margin_percent) / 100),
        None => source_bytes,
    }
}

/// `Ok` if the server has room for the estimate.
pub fn room_check(usage: u64, estimate: u64, limit: u64) -> Result<(), Skip> {
    if usage.saturating_add(estimate) > limit {
        Err(Skip { usage, estimate, limit })
    } else {
        Ok(())
    }
}

/// A server as the chooser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSlot {
    pub id: u32,
    pub usage: u64,
    pub limit: u64,
}

impl ServerSlot {
    /// The chooser's view of each target, in order.
    pub fn of(targets: &[crate::storage::Target]) -> Vec<ServerSlot> {
        targets
            .iter()
            .map(|t| ServerSlot {
                id: t.id,
                usage: t.usage_bytes,
                limit: t.limit_bytes,
            })
            .collect()
    }
}

/// What to do with one server, in the order they are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Try(u32),
    Skip(u32, Skip),
}

/// Order servers by id and decide, before any upload, which ones to try
/// and which to skip for lack of room.
pub fn plan_servers(slots: &[ServerSlot], estimate: u64) -> Vec<Choice> {
    let mut sorted: Vec<&ServerSlot> = slots.iter().collect();
    sorted.sort_by_key(|s| s.id);
    sorted
        .into_iter()
        .map(|s| match room_check(s.usage, estimate, s.limit) {
            Ok(()) => Choice::Try(s.id),
            Err(skip) => Choice::Skip(s.id, skip),
        })
        .collect()
}

/// After a failed attempt whose error has this class, is the next server
/// worth trying? Transient errors that outlived their retries and server
/// errors are; fatal ones (bad input, a bug) would fail everywhere.
pub fn fail_over_after(class: crate::storage::ErrorClass) -> bool {
    !matches!(class, crate::storage::ErrorClass::Fatal)
}

/// Why a stored archive is marked suspect, and the warning for the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspicion {
    pub cause: SuspectCause,
    pub message: String,
}

/// Is an archive of `files` files and `size` bytes suspect? It is when the
/// site had no files at all, or when it is smaller than `below_percent` %
/// of the site's previous complete archive (`previous`); 0 % turns the
/// size check off.
pub fn judge_archive(files: u64, size: u64, previous: Option<u64>, below_percent: u64) -> Option<Suspicion> {
    if files == 0 {
        return Some(Suspicion {
            cause: SuspectCause::EmptySite,
            message: "site directory is empty — is the volume mounted? The archive holds no files; it is kept, \
                      marked suspect, and fills no retention slot"
                .to_string(),
        });
    }
    let previous = previous.filter(|p| *p > 0)?;
    if u128::from(size) * 100 >= u128::from(previous) * u128::from(below_percent) {
        return None;
    }
    Some(Suspicion {
        cause: SuspectCause::Shrunk,
        message: format!(
            "archive is {:.2} MB ({size} bytes), less than {below_percent} % of the previous complete archive's \
             {:.2} MB ({previous} bytes) — were files deleted, or is a volume missing? It is kept, marked suspect, \
             and fills no retention slot",
            size as f64 / 1e6,
            previous as f64 / 1e6
        ),
    })
}

const MIB: u64 = 1024 * 1024;

/// The configured part size, grown so that twice the estimate fits in
/// 10,000 parts (rounded up to a whole MiB).
pub fn part_size_for(estimate: u64, configured: u64) -> u64 {
    let needed = estimate.saturating_mul(2).div_ceil(10_000);
    configured.max(needed.div_ceil(MIB) * MIB)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ErrorClass;
    use rstest::rstest;

    fn slot(id: u32, usage: u64, limit: u64) -> ServerSlot {
        ServerSlot { id, usage, limit }
    }

    fn tried(choices: &[Choice]) -> Vec<u32> {
        choices
            .iter()
            .filter_map(|c| match c {
                Choice::Try(id) => Some(*id),
                Choice::Skip(..) => None,
            })
            .collect()
    }

    #[rstest]
    #[case::all_have_room(vec![slot(1, 0, 100), slot(2, 0, 100)], 10, vec![1, 2])]
    #[case::ordered_by_number_not_text(vec![slot(10, 0, 100), slot(2, 0, 100), slot(1, 0, 100)], 10, vec![1, 2, 10])]
    #[case::gaps_are_fine(vec![slot(7, 0, 100), slot(3, 0, 100)], 10, vec![3, 7])]
    #[case::full_first_server_skipped(vec![slot(1, 95, 100), slot(2, 0, 100)], 10, vec![2])]
    #[case::exactly_at_the_limit_fits(vec![slot(1, 90, 100)], 10, vec![1])]
    #[case::one_byte_over_is_skipped(vec![slot(1, 91, 100), slot(2, 0, 5)], 10, vec![])]
    #[case::estimate_bigger_than_any_limit(vec![slot(1, 0, 100), slot(2, 0, 200)], 500, vec![])]
    #[case::overflow_to_the_third(vec![slot(1, 99, 100), slot(2, 199, 200), slot(3, 0, 1000)], 50, vec![3])]
    #[case::zero_estimate(vec![slot(1, 100, 100)], 0, vec![1])]
    #[case::no_servers(vec![], 10, vec![])]
    fn server_choice(#[case] slots: Vec<ServerSlot>, #[case] estimate: u64, #[case] expected: Vec<u32>) {
        let plan = plan_servers(&slots, estimate);
        assert_eq!(tried(&plan), expected);
        // Every server appears exactly once, in id order.
        let ids: Vec<u32> = plan
            .iter()
            .map(|c| match c {
                Choice::Try(id) | Choice::Skip(id, _) => *id,
            })
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted);
        assert_eq!(ids.len(), slots.len());
    }

    #[rstest]
    #[case::transient_after_retries(ErrorClass::Retry, true)]
    #[case::server_problem(ErrorClass::NextServer, true)]
    #[case::fatal(ErrorClass::Fatal, false)]
    fn failure_classes(#[case] class: ErrorClass, #[case] next: bool) {
        assert_eq!(fail_over_after(class), next);
    }

    #[rstest]
    #[case::history_plus_margin(Some(1000), 9999, 20, 1200)]
    #[case::history_no_margin(Some(1000), 9999, 0, 1000)]
    #[case::no_history_uses_source(None, 9999, 20, 9999)]
    #[case::empty_site(None, 0, 20, 0)]
    fn estimates(#[case] last: Option<u64>, #[case] source: u64, #[case] margin: u64, #[case] expected: u64) {
        assert_eq!(estimate_bytes(last, source, margin), expected);
    }

    #[test]
    fn estimate_uses_history_with_margin_else_source() {
        assert_eq!(estimate_bytes(Some(1000), 50_000, 20), 1200);
        assert_eq!(estimate_bytes(None, 50_000, 20), 50_000);
    }

    #[test]
    fn room_check_skips_only_when_over_the_limit() {
        assert!(room_check(0, 100, 100).is_ok());
        assert!(room_check(1, 100, 100).is_err());
        let skip = room_check(400_000_000, 200_000_000, 500_000_000).unwrap_err();
        assert!(skip.to_string().starts_with("Not enough space"), "{skip}");
    }

    #[rstest]
    #[case::empty_site(0, 500, Some(1000), 10, Some(SuspectCause::EmptySite))]
    #[case::empty_site_first_backup(0, 500, None, 10, Some(SuspectCause::EmptySite))]
    #[case::empty_site_even_with_the_check_off(0, 500, Some(1000), 0, Some(SuspectCause::EmptySite))]
    #[case::first_backup_has_nothing_to_compare(3, 1, None, 10, None)]
    #[case::just_under_ten_percent(3, 99, Some(1000), 10, Some(SuspectCause::Shrunk))]
    #[case::exactly_ten_percent_is_fine(3, 100, Some(1000), 10, None)]
    #[case::growth_is_fine(3, 5000, Some(1000), 10, None)]
    #[case::check_off(3, 1, Some(1000), 0, None)]
    #[case::stricter_threshold(3, 499, Some(1000), 50, Some(SuspectCause::Shrunk))]
    #[case::previous_of_zero_bytes(3, 0, Some(0), 10, None)]
    #[case::huge_sizes_do_not_overflow(3, u64::MAX / 20, Some(u64::MAX), 10, Some(SuspectCause::Shrunk))]
    fn suspect_archives(
        #[case] files: u64,
        #[case] size: u64,
        #[case] previous: Option<u64>,
        #[case] percent: u64,
        #[case] expected: Option<SuspectCause>,
    ) {
        let got = judge_archive(files, size, previous, percent);
        assert_eq!(got.as_ref().map(|s| s.cause), expected, "{got:?}");
        if let Some(s) = got {
            match s.cause {
                SuspectCause::EmptySite => {
                    assert!(
                        s.message
                            .starts_with("site directory is empty — is the volume mounted?")
                    )
                }
                SuspectCause::Shrunk => {
                    assert!(s.message.contains(&format!("({size} bytes)")), "{}", s.message);
                    assert!(s.message.contains(&format!("{percent} %")), "{}", s.message);
                }
            }
        }
    }

    #[test]
    fn part_size_grows_for_huge_archives() {
        let base = 16 * MIB;
        assert_eq!(part_size_for(1_000_000_000, base), base);
        let huge = 2_000_000_000_000; // 2 TB
        let p = part_size_for(huge, base);
        assert!(p > base && huge * 2 / p <= 10_000, "{p}");
        assert_eq!(p % MIB, 0);
    }
}
