//! The read-only pass of `verify`: the whole archive through zstd and tar
//! with the same checks as [`extract`](super::extract), writing nothing.

use super::*;

/// What `verify` learns from reading an archive without writing it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchiveSummary {
    pub stats: ExtractStats,
    /// `manifest.json`, if the archive has one.
    pub manifest: Option<serde_json::Value>,
    /// sitebackup writes the manifest last; anything after it is suspect.
    pub manifest_is_last: bool,
}

/// Manifests are small; refuse to buffer a huge entry with that name.
const MAX_MANIFEST: u64 = 16 * 1024 * 1024;

/// Longest total of symlink names `check` remembers (to refuse paths
/// through them): a site has a handful of symlinks.
const MAX_SYMLINK_NAMES: u64 = 16 * 1024 * 1024;

/// Read the whole archive through zstd and tar, applying the same checks as
/// [`extract`] (names, hard-link targets, paths through symlinks, special
/// files, the entry limit) without writing anything.
pub fn check<R: Read + Send>(input: R, limits: &ExtractLimits) -> Result<ArchiveSummary, ExtractError> {
    let mut summary = ArchiveSummary::default();
    let mut symlinks: HashSet<Vec<u8>> = HashSet::new();
    let mut symlink_bytes = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    for_each_entry(input, limits.max_entries, |entry, item| {
        let through_symlink = |comps: &[OsString]| {
            (1..comps.len())
                .find(|&i| symlinks.contains(&joined(&comps[..i])))
                .map(|i| display_comps(&comps[..i]))
        };
        if let Some(link) = through_symlink(item.path.components()) {
            return Err(ExtractError::Refused {
                entry: item.name,
                reason: Refusal::ThroughSymlink(link),
            });
        }
        summary.stats.entries += 1;
        summary.manifest_is_last = false;
        let in_entry = || format!("in entry {:?}", item.name);
        match &item.kind {
            ItemKind::Dir => summary.stats.dirs += 1,
            ItemKind::Symlink(_) => {
                summary.stats.symlinks += 1;
                let name = joined(item.path.components());
                symlink_bytes += name.len() as u64 + 32;
                if symlink_bytes > MAX_SYMLINK_NAMES {
                    return Err(ExtractError::Limit {
                        entry: item.name,
                        limit: LimitError::Symlinks(MAX_SYMLINK_NAMES),
                    });
                }
                symlinks.insert(name);
            }
            ItemKind::HardLink(target) => {
                if let Some(link) = through_symlink(target.components()) {
                    return Err(ExtractError::Refused {
                        entry: item.name,
                        reason: Refusal::ThroughSymlink(link),
                    });
                }
                summary.stats.hardlinks += 1;
            }
            ItemKind::File if item.path.components() == [OsString::from("manifest.json")] => {
                let mut data = Vec::new();
                entry
                    .take(MAX_MANIFEST)
                    .read_to_end(&mut data)
                    .map_err(format_error(in_entry()))?;
                let manifest = serde_json::from_slice(&data).map_err(|e| ExtractError::Format {
                    context: in_entry(),
                    cause: io::Error::new(io::ErrorKind::InvalidData, format!("manifest is not valid JSON: {e}")),
                })?;
                summary.stats.files += 1;
                summary.stats.file_bytes += data.len() as u64;
                summary.manifest = Some(manifest);
                summary.manifest_is_last = true;
            }
            ItemKind::File => {
                loop {
                    let n = entry.read(&mut buf).map_err(format_error(in_entry()))?;
                    if n == 0 {
                        break;
                    }
                    summary.stats.file_bytes += n as u64;
                }
                summary.stats.files += 1;
            }
            ItemKind::Skip => {}
        }
        Ok(())
    })?;
    Ok(summary)
}
