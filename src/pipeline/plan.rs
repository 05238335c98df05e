//! Pure decisions of the pipeline: the size estimate, whether a server has
//! room, and the part size.

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
