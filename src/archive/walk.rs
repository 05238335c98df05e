//! The walk over a site: sorted, symlinks never followed, excluded entries
//! (see [`Excludes`]) skipped without entering an excluded directory. The
//! archive writer, the size estimate and `backup --dry-run`'s survey all
//! walk the same way.

use super::exclude::Excludes;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The entries of `root` an archive holds, in archive order; `root` itself
/// comes first.
pub(super) fn walk<'a>(
    root: &'a Path,
    excludes: &'a Excludes,
) -> impl Iterator<Item = walkdir::Result<walkdir::DirEntry>> + 'a {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(move |e| match e.path().strip_prefix(root) {
            Ok(rel) if rel.as_os_str().is_empty() => true,
            Ok(rel) => excludes.matched(rel, e.file_type().is_dir()).is_none(),
            Err(_) => true,
        })
}

/// Total size of the regular files that an archive of `root` would hold.
pub fn source_size(root: &Path, excludes: &Excludes) -> u64 {
    walk(root, excludes)
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Files and bytes under one exclude rule (or all of them).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ExcludedCount {
    /// Entries the rule matched (a directory counts once).
    pub entries: u64,
    /// Regular files left out, those inside excluded directories included.
    pub files: u64,
    pub file_bytes: u64,
}

/// One rule and what it left out.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExcludedRule {
    pub pattern: String,
    /// `exclude`, `.sitebackupignore`'s path or the `exclude_file`'s path.
    pub source: String,
    #[serde(flatten)]
    pub count: ExcludedCount,
}

/// What a backup of a site would read, without reading file contents.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SourceSurvey {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Sockets, FIFOs and devices: skipped by a backup.
    pub special: u64,
    /// Bytes of the regular files that would be archived.
    pub file_bytes: u64,
    /// Entries the walk could not stat or list.
    pub unreadable: u64,
    pub excluded: ExcludedCount,
    /// Per rule, most bytes first.
    pub excluded_by: Vec<ExcludedRule>,
}

/// Walk `root` as a backup would and count what it would hold and what
/// the rules leave out (entering excluded directories only to count them).
pub fn survey(root: &Path, excludes: &Excludes) -> SourceSurvey {
    let mut s = SourceSurvey::default();
    let mut per_rule: BTreeMap<(String, String), ExcludedCount> = BTreeMap::new();
    let mut it = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = it.next() {
        let Ok(entry) = entry else {
            s.unreadable += 1;
            continue;
        };
        let ft = entry.file_type();
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        if rel.as_os_str().is_empty() {
            continue;
        }
        if let Some(by) = excludes.matched(rel, ft.is_dir()) {
            let inside = if ft.is_dir() {
                it.skip_current_dir();
                count_tree(entry.path())
            } else {
                count_one(&entry)
            };
            let c = per_rule.entry((by.pattern.to_string(), by.source_label())).or_default();
            for total in [c, &mut s.excluded] {
                total.entries += 1;
                total.files += inside.files;
                total.file_bytes += inside.file_bytes;
            }
            continue;
        }
        if ft.is_dir() {
            s.dirs += 1;
        } else if ft.is_symlink() {
            s.symlinks += 1;
        } else if ft.is_file() {
            match entry.metadata() {
                Ok(m) => {
                    s.files += 1;
                    s.file_bytes += m.len();
                }
                Err(_) => s.unreadable += 1,
            }
        } else {
            s.special += 1;
        }
    }
    s.excluded_by = per_rule
        .into_iter()
        .map(|((pattern, source), count)| ExcludedRule { pattern, source, count })
        .collect();
    s.excluded_by
        .sort_by_key(|r| std::cmp::Reverse((r.count.file_bytes, r.count.entries)));
    s
}

fn count_one(entry: &walkdir::DirEntry) -> ExcludedCount {
    match entry.metadata() {
        Ok(m) if m.is_file() => ExcludedCount {
            entries: 0,
            files: 1,
            file_bytes: m.len(),
        },
        _ => ExcludedCount::default(),
    }
}

/// Regular files and their bytes under `dir`.
fn count_tree(dir: &Path) -> ExcludedCount {
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .fold(ExcludedCount::default(), |mut c, m| {
            c.files += 1;
            c.file_bytes += m.len();
            c
        })
}
