//! The listing pass of `ls`: every entry's type, mode, size, mtime and
//! name, read from the stream (nothing written), with the same checks as
//! [`check`](super::check) on names and entry types. Names are shown cut
//! to [`MAX_SHOWN`] characters.

use super::*;

/// One entry of an archive, as `ls` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ListedEntry {
    /// The archive path (`files/…`, `database/…`, `manifest.json`).
    pub path: String,
    /// `file`, `dir`, `symlink` or `hardlink`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Permission bits, e.g. 420 (0644).
    pub mode: u32,
    /// `drwxr-xr-x`, as `ls -l` and `tar -tv` show it.
    pub permissions: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Bytes of content (0 for all but files).
    pub size: u64,
    /// RFC 3339, UTC.
    pub mtime: String,
    /// Where a symlink points, or a hard link's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// Counters of a listing.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ListSummary {
    /// Entries read.
    pub entries: u64,
    /// Entries shown.
    pub shown: u64,
}

/// Read the whole compressed archive from `input` and call `f` on every
/// entry `selection` takes, in archive order.
pub fn list<R: Read + Send>(
    input: R,
    limits: &ExtractLimits,
    selection: &mut Selection,
    mut f: impl FnMut(ListedEntry),
) -> Result<ListSummary, ExtractError> {
    let mut summary = ListSummary::default();
    for_each_entry(input, limits.max_entries, |entry, item| {
        summary.entries += 1;
        let (kind, type_char, link) = match &item.kind {
            ItemKind::Dir => ("dir", 'd', None),
            ItemKind::File => ("file", '-', None),
            ItemKind::Symlink(target) => ("symlink", 'l', Some(display(target))),
            ItemKind::HardLink(target) => ("hardlink", 'h', Some(display_comps(target.components()))),
            ItemKind::Skip => return Ok(()),
        };
        if !selection.wants(&item.path, matches!(item.kind, ItemKind::Dir)) {
            return Ok(());
        }
        summary.shown += 1;
        let size = if matches!(item.kind, ItemKind::File) {
            entry.header().size().unwrap_or(0)
        } else {
            0
        };
        let mut path = display_comps(item.path.components());
        if matches!(item.kind, ItemKind::Dir) {
            path.push('/');
        }
        f(ListedEntry {
            path,
            kind,
            mode: item.mode & 0o7777,
            permissions: permissions(type_char, item.mode),
            uid: item.owner.map(|o| o.0),
            gid: item.owner.map(|o| o.1),
            size,
            mtime: chrono::DateTime::from_timestamp(item.mtime, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default(),
            link,
        });
        Ok(())
    })?;
    Ok(summary)
}

/// `-rwxr-xr-x` from a type letter and a mode (setuid, setgid and sticky
/// shown as `ls` does).
fn permissions(type_char: char, mode: u32) -> String {
    let mut out = String::with_capacity(10);
    out.push(type_char);
    let special = [(0o4000, 's'), (0o2000, 's'), (0o1000, 't')];
    for (i, shift) in [6u32, 3, 0].into_iter().enumerate() {
        let bits = (mode >> shift) & 0o7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        let (flag, letter) = special[i];
        out.push(match (bits & 1 != 0, mode & flag != 0) {
            (true, true) => letter,
            (false, true) => letter.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::permissions;

    #[test]
    fn permissions_read_like_ls() {
        assert_eq!(permissions('-', 0o644), "-rw-r--r--");
        assert_eq!(permissions('d', 0o755), "drwxr-xr-x");
        assert_eq!(permissions('-', 0o4755), "-rwsr-xr-x");
        assert_eq!(permissions('d', 0o1777), "drwxrwxrwt");
        assert_eq!(permissions('-', 0o2640), "-rw-r-S---");
    }
}
